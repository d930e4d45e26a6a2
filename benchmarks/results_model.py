"""One measured figure set (a table row) and the run context scenarios get."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# System names used in rows; ratios compare TELEX_* rows against the others.
TELEX_MEMORY = "telex memory://"
TELEX_REDIS = "telex redis"
# The same through one command's supervised processes: telex serve --workers 2, telex worker --processes 2.
TELEX_REDIS_WORKERS = "telex redis, --workers 2"
TELEX_LAYER = "telex layer"
DAPHNE = "daphne 1.4.2 stack"
# A peer, not a Telex row: Daphne in front of Telex's own layer and worker.
DAPHNE_TELEX = "daphne 1.4.2 + telex layer"
ASGI_REDIS = "asgi_redis 1.4.3"
# django-view's peers without a channel layer: Django 5.2 behind the usual WSGI and ASGI servers.
GUNICORN = "gunicorn, 2 sync workers"
UVICORN = "uvicorn, 1 worker"
# asgi3-servers: one ASGI 3 application, one process each (telex serve --asgi against the usual servers).
TELEX_ASGI = "telex serve --asgi"
UVICORN_ASYNCIO = "uvicorn, asyncio + h11"
HYPERCORN = "hypercorn, 1 worker"
DAPHNE4 = "daphne 4, 1 process"
TWISTED_BARE = "twisted bare (upper bound)"
# Not a layer: two PING round trips per message, the floor for the layer's
# one-after-the-other send+receive cases.
ROUND_TRIPS = "2 PINGs, no layer (floor)"


@dataclass
class Row:
    scenario: str
    case: str
    system: str
    primary: str = ""  # the metric the ratio column compares
    unit: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool = True
    note: str = ""
    skipped: str | None = None

    @property
    def is_telex(self) -> bool:
        return self.system.startswith("telex")

    def value(self) -> float | None:
        value = self.metrics.get(self.primary)
        return float(value) if isinstance(value, int | float) else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    quick: bool
    log_dir: Path
    cache_dir: Path
    deadline: float  # time.monotonic() by which the whole run must end
    info: dict[str, Any] = field(default_factory=dict)  # peer versions and modes, for the JSON

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full
