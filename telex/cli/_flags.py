"""Parsers built from settings fields (``telex._options``): flags, variables, help.

A command lists its settings dataclasses and names its help sections; every
field declared with ``option()`` becomes an argument whose default comes from
its ``TELEX_*`` variable when that is set (the flag still wins), and whose
help line ends with its default and its variable.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .._options import Option, field_default, option_of


def read_switch(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (1/0, true/false), got {value!r}")


def read_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def read_size(value: str) -> int:
    """Sizes in bytes, with an optional k/m/g suffix (powers of 1024)."""
    text = value.strip().lower()
    factor = 1
    if text and text[-1] in "kmg":
        factor = 1024 ** ("kmg".index(text[-1]) + 1)
        text = text[:-1]
    try:
        number = int(text) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 65536, 64k or 16m, got {value!r}"
        ) from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"a size cannot be negative: {value!r}")
    return number


def read_seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None


#: The argparse arguments for each kind of option (``telex._options.KINDS``).
ARGUMENTS: dict[str, dict[str, Any]] = {
    "text": {},
    "int": {"type": int},
    "seconds": {"type": read_seconds},
    "size": {"type": read_size},
    "list": {"type": read_list},
    "switch": {"action": "store_true"},
    "repeat": {"action": "append"},
    "repeat-list": {"action": "append"},
    "several": {"nargs": "+"},
}


def settings_fields(settings_class: type) -> list[tuple[dataclasses.Field, Option]]:
    """The fields of ``settings_class`` that are options, in their order."""
    found = []
    for settings_field in dataclasses.fields(settings_class):
        declared = option_of(settings_field)
        if declared is not None:
            found.append((settings_field, declared))
    return found


def add_options(
    parser: argparse.ArgumentParser,
    settings_classes: Sequence[type],
    sections: Mapping[str, str],
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Add every option of ``settings_classes``: positional ones and those
    without a section first, then each section of ``sections`` (name → title)
    in its order, holding the options of the first class, then the next."""
    declared = [pair for settings_class in settings_classes for pair in settings_fields(settings_class)]
    unknown = {opt.group for _, opt in declared if opt.group is not None} - set(sections)
    if unknown:
        raise ValueError(f"options in sections {sorted(unknown)} that the command does not name")
    for settings_field, opt in declared:
        if opt.group is None:
            _add(parser, settings_field, opt, environ)
    for name, title in sections.items():
        group = parser.add_argument_group(title)
        for settings_field, opt in declared:
            if opt.group == name:
                _add(group, settings_field, opt, environ)


def _add(parser: Any, settings_field: dataclasses.Field, opt: Option, environ: Mapping[str, str]) -> None:
    kwargs = dict(ARGUMENTS[opt.kind])
    default = field_default(settings_field)
    raw = environ.get(opt.env) if opt.env else None
    if raw is not None:
        if opt.kind == "switch":
            default = read_switch(raw)
        elif opt.kind in ("repeat", "repeat-list", "several"):
            default = raw.split()
        else:
            default = raw  # argparse applies ``type`` to str defaults
    help_text = opt.help
    if not (default in (None, False, [], "") or "%(default)" in help_text):
        shown = ",".join(default) if isinstance(default, list) else "%(default)s"
        help_text += f" (default: {shown})"
    if opt.env:
        help_text += f" [env {opt.env}]"
    kwargs.update(default=default, help=help_text)
    if opt.choices is not None:
        kwargs["choices"] = opt.choices
    if opt.metavar is not None:
        kwargs["metavar"] = opt.metavar
    if opt.positional:
        if settings_field.default is not dataclasses.MISSING:
            kwargs["nargs"] = "?"
        else:
            del kwargs["default"]
        parser.add_argument(settings_field.name, metavar=opt.flags[0], **kwargs)
    else:
        parser.add_argument(*opt.flags, dest=settings_field.name, **kwargs)


def values(settings_class: type, args: argparse.Namespace) -> dict[str, Any]:
    """The parsed values of ``settings_class``'s options, as keyword arguments for it."""
    found = {}
    for settings_field, opt in settings_fields(settings_class):
        value = getattr(args, settings_field.name)
        if opt.kind == "repeat-list":
            value = [item for text in value for item in read_list(text)]
        found[settings_field.name] = value
    return found
