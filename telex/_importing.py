"""Import ``module:attribute`` strings the way Daphne 1.x users expect."""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
import traceback
from typing import Any

#: Frames in these directories are Telex's, the standard library's or installed
#: packages' (redis, Twisted, ...), not the user's.
_NOT_USERS = tuple(
    {os.path.dirname(os.path.abspath(__file__)) + os.sep}
    | {
        os.path.abspath(path) + os.sep
        for name, path in sysconfig.get_paths().items()
        if name in ("stdlib", "platstdlib", "purelib", "platlib")
    }
)


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


def _user_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen") and not frame.filename.startswith(_NOT_USERS)
    ]


def _causes(exc: BaseException | None) -> list[BaseException]:
    found = []
    while exc is not None and exc not in found:
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def failure_summary(message: str, cause: BaseException | None, verbosity: int) -> str:
    """``message``, with the user's own failing line when ``cause`` (or what caused it)
    was raised in the user's code, such as a module that fails while importing.

    With ``verbosity`` >= 2 the user's traceback (their frames only) is printed first.
    """
    for exc in reversed(_causes(cause)):  # the deepest first: where it really failed
        frames = _user_frames(exc)
        if not frames:
            continue
        if verbosity >= 2:
            first = traceback.extract_tb(exc.__traceback__).index(frames[0])
            tb = exc.__traceback__
            for _ in range(first):
                tb = tb.tb_next if tb is not None else None
            sys.stderr.write("".join(traceback.format_exception(type(exc), exc, tb)))
        frame = frames[-1]
        where = os.path.relpath(frame.filename) if frame.filename.startswith(os.getcwd()) else frame.filename
        return f"{message} (at {where}, line {frame.lineno}: {(frame.line or '').strip()})"
    return message
