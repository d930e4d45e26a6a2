"""An option declared once: a settings field that knows its flag, variable and help line.

Settings dataclasses declare each option with :func:`option`; ``telex.cli``
builds its parsers from these fields, so a new option is one field plus its
line in the docs. It lives at the top of the package because the server's
settings and the worker's both use it, and neither may import the other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass
from typing import Any

ENV_PREFIX = "TELEX_"

#: How the CLI reads an option's text (``telex/cli/_flags.py`` has one reader each).
KINDS = (
    "text",  # as given
    "int",
    "seconds",  # a number, may have a fraction
    "size",  # bytes, with an optional k/m/g suffix
    "list",  # comma-separated
    "switch",  # a flag without a value; from the environment 1/0, true/false
    "repeat",  # the flag repeated, one value each; the variable takes several, space-separated
    "several",  # one flag followed by one or more values; a value with ":" ends the list (the positional)
    "several-list",  # like several, and each value may also be comma-separated
)


@dataclass(frozen=True)
class Option:
    """The command-line side of a settings field."""

    #: ``("-t", "--http-timeout")``; one bare name (``"LAYER"``) for a positional argument.
    flags: tuple[str, ...]
    help: str
    kind: str
    #: The help section it is listed under (the CLI names the sections).
    group: str | None
    #: The ``TELEX_*`` variable that gives its default, or None for none.
    env: str | None
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    #: The variable was named in the declaration: every command reads it under that
    #: name (``TELEX_LAYER``), where a derived one takes the command's prefix.
    env_named: bool = False

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")


def env_name(flags: tuple[str, ...]) -> str:
    """``TELEX_<FLAG>``, from the first long flag (upper case, dashes as underscores)."""
    long_flag = next(flag for flag in flags if flag.startswith("--"))
    return ENV_PREFIX + long_flag[2:].replace("-", "_").upper()


def option(
    *flags: str,
    help: str,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    kind: str = "text",
    group: str | None = None,
    env: str | bool = True,
    choices: tuple[Any, ...] | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field that is also a command-line option.

    ``env=True`` names its variable after the first long flag (a command may read
    it under its own prefix), ``env=False`` gives it none, a string names it for
    every command (a positional argument needs one).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown option kind {kind!r}")
    variable = env_name(flags) if env is True else (env or None)
    meta = Option(flags, help, kind, group, variable, choices, metavar, env_named=isinstance(env, str))
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"option": meta})


def option_of(settings_field: dataclasses.Field) -> Option | None:
    """The option a settings field declares, or None for a derived or internal field."""
    return settings_field.metadata.get("option")


def field_default(settings_field: dataclasses.Field) -> Any:
    """A fresh copy of the field's default (a new list for list fields); None for a required field."""
    if settings_field.default_factory is not MISSING:
        return settings_field.default_factory()
    return None if settings_field.default is MISSING else settings_field.default
