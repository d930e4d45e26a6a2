"""Logging for ``telex serve`` and ``telex worker``: one set of flags, one line format.

``-v 0/1/2/3`` sets the level (warning, info, debug, debug with Twisted's own
lines); ``--log-level`` overrides it; ``--log-format json`` writes one JSON
object per line; ``--log-config`` (``.json`` → ``dictConfig``, ``.ini``/``.conf``
→ ``fileConfig``) is applied last, over all of that, as uvicorn and gunicorn
take theirs. :class:`JsonFormatter` is public for ``--log-config`` files
(``"()": "telex._logging.JsonFormatter"``) and for other writers of JSON lines.
Standard library only: a worker imports it without Twisted.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from ._options import option

#: ``-v`` → level. 3 is debug too, with Twisted's own log lines let through.
VERBOSITY_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}
LEVEL_NAMES = ("critical", "error", "warning", "info", "debug")
#: The one line format of both commands (and of ``manage.py runworker``/``runserver``).
LINE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s %(message)s"


@dataclass
class LogSettings:
    """The logging options every Telex command takes."""

    #: 0 warning, 1 info, 2 debug (and the tracebacks of start-up errors), 3 debug
    #: with Twisted's own lines.
    verbosity: int = option(
        "-v",
        "--verbosity",
        kind="int",
        group="logging",
        choices=(0, 1, 2, 3),
        default=1,
        help="0 warning, 1 info, 2 debug and start-up tracebacks, 3 debug with Twisted's own lines",
    )
    #: Overrides the level ``-v`` sets (not its tracebacks or Twisted's lines).
    log_level: str | None = option(
        "--log-level",
        group="logging",
        choices=LEVEL_NAMES,
        default=None,
        help="log level, overriding -v's",
    )
    #: ``text`` (the line format above) or ``json`` (one object per line).
    log_format: str = option(
        "--log-format",
        group="logging",
        choices=("text", "json"),
        default="text",
        help="stderr log lines as text or one JSON object per line",
    )
    #: A logging configuration file applied after everything else.
    log_config: str | None = option(
        "--log-config",
        group="logging",
        default=None,
        metavar="FILE",
        help="logging configuration: .json (dictConfig) or .ini/.conf (fileConfig), applied after -v",
    )


class LogConfigError(ValueError):
    """A ``--log-config`` file that cannot be read or applied; the message says why."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, and ``exception`` (the formatted traceback) when there is one.

    Fields a caller passes with ``extra=`` that are JSON-friendly are added too.
    """

    #: Attributes every LogRecord has; anything else came from ``extra=``.
    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and key not in entry and isinstance(value, str | int | float | bool):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def check_log_config(path: str | None) -> None:
    """Refuse, before anything starts, a ``--log-config`` that is missing or of an unknown kind."""
    if path is None:
        return
    if not path.endswith((".json", ".ini", ".conf", ".cfg")):
        raise LogConfigError(f"--log-config {path}: expected a .json (dictConfig) or .ini file (fileConfig)")
    if not os.path.isfile(path):
        raise LogConfigError(f"--log-config {path}: no such file")


def configure(settings: LogSettings, twisted: bool = False) -> None:
    """Set up the root logger on stderr from ``settings``; route Twisted's log into
    the ``twisted`` logger when ``twisted`` is true (``telex serve``)."""
    level = VERBOSITY_LEVELS[settings.verbosity]
    if settings.log_level is not None:
        level = getattr(logging, settings.log_level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(LINE_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if twisted:
        from twisted.logger import STDLibLogObserver, globalLogBeginner

        globalLogBeginner.beginLoggingTo(
            [STDLibLogObserver(name="twisted")],  # type: ignore[list-item]  # a zope @implementer
            redirectStandardIO=False,
        )
        # Twisted's informational lines ("Starting factory", "Port closed") only at -v 3;
        # its errors (unhandled errors in Deferreds) always.
        logging.getLogger("twisted").setLevel(logging.NOTSET if settings.verbosity >= 3 else logging.WARNING)
    if settings.log_config is not None:
        apply_log_config(settings.log_config)


def apply_log_config(path: str) -> None:
    import logging.config  # ~9 ms of imports, only for those who ask

    try:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                config = json.load(file)
            config.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(config)
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except Exception as exc:  # anything Python's configurators raise: the user's file is wrong
        raise LogConfigError(f"--log-config {path}: {type(exc).__name__}: {exc}") from exc
