"""The scenarios, in the order a full run takes them.

Each module has ``NAME`` and ``run(ctx) -> list[Row]``; a row that cannot
run here carries ``skipped`` with the reason instead of figures.
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = (
    "memory_layer",
    "layer",
    "http_hello",
    "h2",
    "ws_echo",
    "ws_fanout",
    "ws_idle",
    "upload",
    "django_view",
    "asgi3_servers",
)


def load() -> dict[str, ModuleType]:
    scenarios = {}
    for module_name in MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        scenarios[module.NAME] = module
    return scenarios
