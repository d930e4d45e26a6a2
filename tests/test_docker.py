"""The Dockerfile and deploy/docker-compose.yml, checked without a Docker engine.

No engine runs on the build machines, so this runs what the image would run:
the Dockerfile's install command in a fresh virtualenv on a copy of the build
context (the checkout minus .dockerignore), then its entrypoint with its
environment (binding 127.0.0.1 here, not the image's 0.0.0.0) in front of a
real Redis and a worker, then its HEALTHCHECK command against that server.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import venv
from fnmatch import fnmatch

import pytest

from tests.support.http import request
from tests.support.processes import ROOT, TelexProcess
from tests.support.redis_server import free_port

DOCKERFILE = os.path.join(ROOT, "Dockerfile")
COMPOSE = os.path.join(ROOT, "deploy", "docker-compose.yml")


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)``: continuation lines joined, comments dropped."""
    result, pending = [], ""
    with open(DOCKERFILE) as dockerfile:
        for line in dockerfile:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            keyword, _, arguments = (pending + stripped).partition(" ")
            result.append((keyword.upper(), arguments.strip()))
            pending = ""
    return result


def arguments_of(keyword: str) -> list[str]:
    return [arguments for name, arguments in instructions() if name == keyword]


def image_environment() -> dict[str, str]:
    env = {}
    for arguments in arguments_of("ENV"):
        for assignment in shlex.split(arguments):
            name, _, value = assignment.partition("=")
            env[name] = value
    return env


def install_command() -> tuple[str, str]:
    """The RUN that installs Telex: (shell command, where it mounts the build context)."""
    (run,) = [arguments for arguments in arguments_of("RUN") if "pip install" in arguments]
    options = re.match(r"((?:--\S+\s+)*)(.*)", run)
    assert options is not None
    mount = re.search(r"--mount=\S*type=bind\S*", options.group(1))
    assert mount is not None, "the install step should bind-mount the build context, not COPY it"
    target = re.search(r"target=([^,\s]+)", mount.group(0))
    assert target is not None
    return options.group(2), target.group(1)


def copy_build_context(destination: str) -> None:
    """The checkout as Docker would send it: .dockerignore's patterns left out
    (the subset used there: paths from the root, and ``**/NAME`` anywhere)."""
    with open(os.path.join(ROOT, ".dockerignore")) as ignore:
        patterns = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]

    def ignored(directory: str, names: list[str]) -> set[str]:
        relative = os.path.relpath(directory, ROOT)
        skipped = set()
        for name in names:
            path = name if relative == "." else f"{relative}/{name}"
            for pattern in patterns:
                anywhere = pattern.removeprefix("**/")
                if fnmatch(path, pattern) or (anywhere != pattern and fnmatch(name, anywhere)):
                    skipped.add(name)
        return skipped

    shutil.copytree(ROOT, destination, ignore=ignored)


def test_the_image_is_slim_runs_unprivileged_and_serves_on_every_interface():
    assert arguments_of("FROM") == ["python:3.11-slim"]
    (user,) = arguments_of("USER")
    assert user not in ("root", "0")
    assert json.loads(arguments_of("ENTRYPOINT")[0]) == ["telex", "serve"]
    env = image_environment()
    assert env["TELEX_BIND"] == "0.0.0.0" and env["TELEX_PORT"] == "8000"
    assert env["TELEX_HEALTH_PATH"]


def test_the_build_context_holds_only_what_the_install_needs(tmp_path):
    context = tmp_path / "context"
    copy_build_context(str(context))
    top = set(os.listdir(context))
    assert {"setup.cfg", "pyproject.toml", "README.md", "telex"} <= top
    assert not top & {".git", "tests", "docs", "benchmarks", "deploy"}
    assert not list(context.rglob("__pycache__"))


@pytest.mark.slow
@pytest.mark.redis
def test_the_images_install_and_start_commands_serve_and_pass_the_healthcheck(tmp_path, redis_server):
    context = tmp_path / "context"
    copy_build_context(str(context))
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    bin_dir = str(environment / "bin")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TELEX_", "PYTHON", "VIRTUAL_ENV"))},
        **image_environment(),
        "PATH": bin_dir + os.pathsep + os.environ["PATH"],
    }
    command, mounted_at = install_command()
    install = subprocess.run(
        ["/bin/sh", "-c", command.replace(mounted_at, str(context))],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    # As `docker run -e TELEX_LAYER=...`: the entrypoint, the image's variables, in a
    # directory without the checkout, so only the installed package can be imported.
    port = free_port()
    run_env = {**env, "TELEX_BIND": "127.0.0.1", "TELEX_PORT": str(port), "TELEX_LAYER": redis_server.url}
    run_env["PYTHONPATH"] = ""  # TelexProcess would put the checkout there
    entrypoint = json.loads(arguments_of("ENTRYPOINT")[0])
    entrypoint[0] = shutil.which(entrypoint[0], path=bin_dir)
    worker_command = [entrypoint[0], "worker", "telex.demo:routing", "--threads", "2"]
    with (
        TelexProcess([], env=run_env, command=entrypoint, cwd=str(tmp_path)) as server,
        TelexProcess([], env=run_env, command=worker_command, cwd=str(tmp_path), ready="worker listening"),
    ):
        server.port = port
        assert "0.0.0.0" not in server.output
        assert f"listening on http://127.0.0.1:{port}" in server.output
        status, headers, _ = request(server, "GET", "/")  # the demo page, from the worker
        content_type = {k.lower(): v for k, v in headers.items()}["content-type"]
        assert status == 200 and content_type.startswith("text/html")

        (healthcheck,) = arguments_of("HEALTHCHECK")
        probe = json.loads(healthcheck.split("CMD", 1)[1])
        probe[0] = shutil.which(probe[0], path=bin_dir)
        healthy = subprocess.run(probe, env=run_env, capture_output=True, timeout=30, check=False)
        assert healthy.returncode == 0, healthy.stderr
    down = subprocess.run(probe, env=run_env, capture_output=True, timeout=30, check=False)
    assert down.returncode != 0


def compose_services() -> dict[str, str]:
    """Each service's text (no PyYAML here: a structural reading of the file)."""
    with open(COMPOSE) as compose:
        services = compose.read().split("\nservices:\n", 1)[1]
    blocks = re.split(r"^  (\w[\w-]*):\s*$", services, flags=re.M)
    return dict(zip(blocks[1::2], blocks[2::2], strict=True))


def test_the_compose_file_runs_redis_two_servers_and_workers_on_one_layer():
    with open(COMPOSE) as compose:
        text = compose.read()
    try:
        import yaml
    except ImportError:
        pass
    else:
        assert set(yaml.safe_load(text)["services"]) == {"redis", "server1", "server2", "worker"}
    services = compose_services()
    assert set(services) == {"redis", "server1", "server2", "worker"}
    # Every Telex service merges the anchor that names the Redis layer.
    assert "TELEX_LAYER: redis://redis:6379/0" in text.split("\nservices:\n")[0]
    for name in ("server1", "server2", "worker"):
        assert "<<: *telex" in services[name], name
    for name in ("server1", "server2"):
        assert re.search(r'"127\.0\.0\.1:\d+:8000"', services[name]), name
    # Servers and workers wait for Redis to answer its healthcheck, not merely to have started.
    anchor = text.split("\nservices:\n")[0]
    assert re.search(r"depends_on:\s+redis:\s+condition: service_healthy", anchor)
    assert "healthcheck:" in services["redis"] and "redis-cli" in services["redis"]
    assert '["telex", "worker"]' in services["worker"]
    routing = re.search(r'"(examples\.[\w.]+):(\w+)"', services["worker"])
    assert routing is not None
    module = importlib.import_module(routing.group(1))
    assert getattr(module, routing.group(2))
