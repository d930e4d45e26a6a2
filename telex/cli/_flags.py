"""Parsers built from settings fields (``telex._options``): flags, variables, help.

A command lists its settings dataclasses and names its help sections; every
field declared with ``option()`` becomes an argument whose default comes from
its ``TELEX_*`` variable when that is set (the flag still wins), and whose
help line ends with its default and its variable. A variable's value is read
when the parser is built, so a bad one is a usage error naming the variable.

Options taking several values (``--ws-protocol a b``) stop at the first value
containing ``:``, which can be neither a subprotocol token nor a channel name:
it is the command's positional argument (``LAYER``, ``ROUTING``), which
Daphne 1.x's ``--ws-protocol`` swallowed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING
from typing import Any

from .._options import ENV_PREFIX, Option, field_default, option_of


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
}

#: Where a list option puts a value containing ``:`` for :func:`finish` to hand on.
_HANDED_ON = "_telex_handed_on"
#: The list options given on the command line so far (the first use replaces the variable's list).
_GIVEN = "_telex_given"
#: The parser and the fields it was built from, for :func:`finish`.
PARSER = "_telex_parser"


class Several(argparse.Action):
    """One flag, one or more values (``several``, ``several-list``): a value containing
    ``:`` and all after it are not its values but the positional argument."""

    def __init__(self, *args: Any, split_commas: bool = False, hand_on: bool = True, **kwargs: Any) -> None:
        kwargs["nargs"] = "+"
        super().__init__(*args, **kwargs)
        self.split_commas = split_commas
        self.hand_on = hand_on

    def __call__(self, parser: Any, namespace: Any, given: Any, option_string: str | None = None) -> None:
        mine = list(given)
        for index, value in enumerate(mine):
            if ":" in value and self.hand_on:
                vars(namespace).setdefault(_HANDED_ON, []).extend(mine[index:])
                mine = mine[:index]
                break
        if not mine:
            parser.error(f"argument {option_string}: expected at least one value without ':'")
        if self.split_commas:
            mine = [item for value in mine for item in read_list(value)]
        seen = vars(namespace).setdefault(_GIVEN, set())  # per parse, not a shared default
        earlier = getattr(namespace, self.dest) if self.dest in seen else []
        seen.add(self.dest)
        setattr(namespace, self.dest, [*earlier, *mine])


def settings_fields(settings_class: type) -> list[tuple[dataclasses.Field, Option]]:
    """The fields of ``settings_class`` that are options, in their order."""
    found = []
    for settings_field in dataclasses.fields(settings_class):
        declared = option_of(settings_field)
        if declared is not None:
            found.append((settings_field, declared))
    return found


def variable(opt: Option, env_prefix: str = ENV_PREFIX) -> str | None:
    """The variable a command reads for ``opt``: a name derived from the flag takes
    the command's prefix (``TELEX_WORKER_THREADS``); a name declared (``TELEX_LAYER``) is kept."""
    if opt.env is None or opt.env_named:
        return opt.env
    return env_prefix + opt.env[len(ENV_PREFIX) :]


def add_options(
    parser: argparse.ArgumentParser,
    settings_classes: Sequence[type],
    sections: Mapping[str, str],
    environ: Mapping[str, str] = os.environ,
    *,
    env_prefix: str = ENV_PREFIX,
    only: Sequence[str] | None = None,
    hand_on: bool = True,
) -> None:
    """Add every option of ``settings_classes`` (those named in ``only``, if given):
    positional ones and those without a section first, then each section of
    ``sections`` (name → title) in its order, holding the options of the first
    class, then the next. ``hand_on=False``: the parser has no positional argument
    for list options to hand a ``:`` value on to (``manage.py runworker``)."""
    declared = [pair for settings_class in settings_classes for pair in settings_fields(settings_class)]
    if only is not None:
        declared = [(f, opt) for f, opt in declared if f.name in only]
    parser.set_defaults(**{PARSER: (parser, [f for f, _ in declared])})
    unknown = {opt.group for _, opt in declared if opt.group is not None} - set(sections)
    if unknown:
        raise ValueError(f"options in sections {sorted(unknown)} that the command does not name")
    errors: list[str] = []
    common: dict[str, Any] = {
        "environ": environ,
        "env_prefix": env_prefix,
        "errors": errors,
        "hand_on": hand_on,
    }
    for settings_field, opt in declared:
        if opt.group is None:
            _add(parser, parser, settings_field, opt, **common)
    for name, title in sections.items():
        members = [(f, opt) for f, opt in declared if opt.group == name]
        if members:
            group = parser.add_argument_group(title)
            for settings_field, opt in members:
                _add(parser, group, settings_field, opt, **common)
    if errors:
        # Read with the parser, so even --help reports it: a bad value must not wait for a deploy.
        parser.error("; ".join(errors))


def from_variable(opt: Option, raw: str) -> Any:
    """The value of an option given as a variable's text (ArgumentTypeError if it is not one)."""
    if opt.kind == "switch":
        return read_switch(raw)
    if opt.kind in ("repeat", "several"):
        return raw.split()
    if opt.kind == "several-list":
        return [item for word in raw.split() for item in read_list(word)]
    reader = ARGUMENTS[opt.kind].get("type")
    try:
        value = reader(raw) if reader is not None else raw
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if opt.choices is not None and value not in opt.choices:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(str(choice) for choice in opt.choices)}, got {raw!r}"
        )
    return value


def _add(
    parser: argparse.ArgumentParser,
    container: Any,
    settings_field: dataclasses.Field,
    opt: Option,
    *,
    environ: Mapping[str, str],
    env_prefix: str,
    errors: list[str],
    hand_on: bool,
) -> None:
    kwargs = dict(ARGUMENTS.get(opt.kind, {}))
    if opt.kind in ("several", "several-list"):
        kwargs.update(action=Several, split_commas=opt.kind == "several-list", hand_on=hand_on)
    default = field_default(settings_field)
    name = variable(opt, env_prefix)
    raw = environ.get(name) if name else None
    if raw is not None:
        try:
            default = from_variable(opt, raw)
        except argparse.ArgumentTypeError as exc:
            errors.append(f"environment variable {name}: {exc}")
    help_text = opt.help
    if not (default in (None, False, [], "") or "%(default)" in help_text):
        shown = ",".join(default) if isinstance(default, list) else "%(default)s"
        help_text += f" (default: {shown})"
    if name:
        help_text += f" [env {name}]"
    kwargs.update(default=default, help=help_text)
    if opt.choices is not None:
        kwargs["choices"] = opt.choices
    if opt.metavar is not None:
        kwargs["metavar"] = opt.metavar
    if opt.positional:
        # Optional to argparse even when required: a list option may hand it on
        # (see Several); :func:`finish` checks it is there.
        container.add_argument(settings_field.name, metavar=opt.flags[0], nargs="?", **kwargs)
    else:
        container.add_argument(*opt.flags, dest=settings_field.name, **kwargs)


def finish(args: argparse.Namespace) -> None:
    """After parsing: give the positional argument a value a list option handed on,
    and require it when its field has no default (usage errors exit, status 2)."""
    parser, declared = getattr(args, PARSER)
    handed_on = getattr(args, _HANDED_ON, [])
    for settings_field in declared:
        opt = option_of(settings_field)
        if opt is None or not opt.positional:
            continue
        if handed_on and getattr(args, settings_field.name) is None:
            setattr(args, settings_field.name, handed_on.pop(0))
        required = settings_field.default is MISSING and settings_field.default_factory is MISSING
        if required and getattr(args, settings_field.name) is None:
            parser.error(f"the following arguments are required: {opt.flags[0]}")
    if handed_on:
        parser.error(f"unrecognized arguments: {' '.join(handed_on)}")


def values(settings_class: type, args: argparse.Namespace) -> dict[str, Any]:
    """The parsed values of ``settings_class``'s options, as keyword arguments for it."""
    return {
        settings_field.name: getattr(args, settings_field.name)
        for settings_field, _ in settings_fields(settings_class)
    }
