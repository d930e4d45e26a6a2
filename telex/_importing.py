"""Import ``module:attribute`` strings the way Daphne 1.x users expect."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


class ImportStringError(ValueError):
    """A ``module:attribute`` string that cannot be resolved, with the reason."""


def import_string(spec: str, what: str = "object") -> Any:
    """Resolve ``"package.module:attr.sub"`` (or ``"package.module.attr"``).

    The current directory goes on ``sys.path`` first, as Daphne does, so a
    project's modules import without installing it.
    """
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    if ":" in spec:
        module_name, _, attr_path = spec.partition(":")
    else:
        module_name, _, attr_path = spec.rpartition(".")
    if not module_name or not attr_path:
        raise ImportStringError(f"{what} {spec!r} must look like 'module:attribute'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportStringError(f"cannot import module {module_name!r} for {what} {spec!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportStringError(
                f"module {module_name!r} has no attribute {attr_path!r} (for {what} {spec!r})"
            ) from None
    return target
