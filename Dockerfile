# Telex interface server image: `docker build -t telex .`
# Configured entirely by TELEX_* environment variables (docs/server.md);
# arguments after the image name are passed to `telex serve`.
# See docs/deployment.md.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Runtime dependencies only: the package and the Redis layer's extra. The
# build context is mounted for this step alone, so no source stays in the image.
RUN --mount=type=bind,target=/src,rw \
    pip install --no-cache-dir "/src[redis]"

RUN useradd --system --uid 10001 --user-group --home-dir /app --create-home --shell /usr/sbin/nologin telex
WORKDIR /app
USER telex

# Inside the container Telex must listen on every interface; publish the port
# (-p 8000:8000) to choose who can reach it.
ENV TELEX_BIND=0.0.0.0 \
    TELEX_PORT=8000 \
    TELEX_HEALTH_PATH=/healthz
EXPOSE 8000

# The health path is answered by Telex itself (no worker needed) and reports
# whether the channel layer is reachable. slim has no curl: the standard library does it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TELEX_PORT', '8000') + os.environ.get('TELEX_HEALTH_PATH', '/healthz'), timeout=4)"]

ENTRYPOINT ["telex", "serve"]
