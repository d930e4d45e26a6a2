"""Options declared once: every settings field is a flag, a variable and a documented line.

``telex serve`` and ``telex worker`` build their parsers from the settings
dataclasses (``telex/_options.py``, ``telex/cli/_flags.py``); these tests keep
each field reachable from the command line and the environment, and written
down for users, unless it is on the short list of fields the CLI derives.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys

import pytest

from telex._options import env_name, option_of
from telex.cli import _flags, build_parser
from telex.cli import serve as serve_cli
from telex.server.settings import ServerSettings
from telex.worker.settings import WorkerSettings
from tests.support.processes import ROOT, telex_env

#: ServerSettings fields with no flag: the CLI derives them, or they are internal.
DERIVED = {
    "endpoints": "from -b/-p, -u and -e",
    "tls_endpoints": "from -b/-p when --ssl-certfile is given",
    "adopt_fds": "from --fd",
    "reply_channel_prefix": "internal: every process's reply channels, a random part appended",
}
#: Worker options without a variable: a worker often shares its environment
#: with telex serve, whose TELEX_THREADS or TELEX_VERBOSITY must not reach it.
WORKER_FLAG_ONLY = {
    "routing",
    "threads",
    "only_channels",
    "exclude_channels",
    "ordering_timeout",
    "stop_timeout",
    "processes",
    "outage_summary_interval",
    "reload",
    "verbosity",
}

#: A value of each kind, as typed, and what it becomes.
SAMPLES = {
    "text": ("sample", "sample"),
    "int": ("7", 7),
    "seconds": ("7.5", 7.5),
    "size": ("3k", 3072),
    "list": ("a, b", ["a", "b"]),
    "repeat": ("tcp:1", ["tcp:1"]),
    "repeat-list": ("a,b", ["a", "b"]),
}

SERVE = [serve_cli.ServeCommand, ServerSettings]


def _docs(name: str) -> str:
    with open(os.path.join(ROOT, "docs", name), encoding="utf-8") as file:
        return file.read()


def _options(classes: list[type]) -> list[tuple[str, dataclasses.Field]]:
    return [(c.__name__, f) for c in classes for f in dataclasses.fields(c)]


def _parse(classes: list[type], sections: dict, words: list[str], environ: dict) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    _flags.add_options(parser, classes, sections, environ)
    return parser.parse_args(words)


@pytest.mark.parametrize(("owner", "field"), _options(SERVE), ids=lambda v: getattr(v, "name", v))
def test_every_serve_field_has_a_flag_a_variable_and_a_line_in_docs_server_md(owner, field):
    declared = option_of(field)
    if declared is None:
        assert owner == "ServerSettings" and field.name in DERIVED, f"{field.name} has no flag"
        return
    assert owner == "ServeCommand" or field.name not in DERIVED
    if declared.positional:
        assert declared.env == "TELEX_LAYER" and f"`{declared.flags[0]}`" in _docs("server.md")
        return
    # docs/server.md promises TELEX_<FLAG> for every flag: upper case, dashes as underscores.
    assert declared.env == env_name(declared.flags)
    assert f"`{_long(declared)}" in _docs("server.md")


def _long(declared) -> str:
    return next(flag for flag in declared.flags if flag.startswith("--"))


@pytest.mark.parametrize("field", dataclasses.fields(WorkerSettings), ids=lambda f: f.name)
def test_every_worker_field_has_a_flag_and_a_line_in_docs_worker_md(field):
    declared = option_of(field)
    assert declared is not None, f"{field.name} has no flag"
    name = declared.flags[0] if declared.positional else _long(declared)
    assert f"`{name}" in _docs("worker.md")
    if field.name in WORKER_FLAG_ONLY:
        assert declared.env is None
    else:
        assert declared.env == env_name(declared.flags)


def test_the_worker_layer_keeps_its_variable():
    assert (
        option_of(next(f for f in dataclasses.fields(WorkerSettings) if f.name == "layer")).env
        == "TELEX_LAYER"
    )


@pytest.mark.parametrize("field", [f for _, f in _options(SERVE) if option_of(f)], ids=lambda f: f.name)
def test_a_variable_sets_a_serve_option_and_its_flag_wins(field):
    declared = option_of(field)
    kind = declared.kind
    if kind == "switch":
        from_env = _parse(SERVE, serve_cli.SECTIONS, [], {declared.env: "yes"})
        assert getattr(from_env, field.name) is True
        assert getattr(_parse(SERVE, serve_cli.SECTIONS, [], {declared.env: "0"}), field.name) is False
        return
    if declared.choices:
        text, value = declared.choices[-1], declared.choices[-1]
    else:
        text, value = SAMPLES[kind]
    from_env = _flags.values(type_of(field), _parse(SERVE, serve_cli.SECTIONS, [], {declared.env: text}))
    assert from_env[field.name] == value
    if declared.positional:
        return
    other = (
        declared.choices[0] if declared.choices else {"int": "9", "seconds": "9", "size": "9"}.get(kind, "z")
    )
    words = [declared.flags[-1], other]
    from_flag = _flags.values(type_of(field), _parse(SERVE, serve_cli.SECTIONS, words, {declared.env: text}))
    if kind == "repeat":
        assert from_flag[field.name] == [*value, other]  # a repeated flag adds to the variable's list
    else:
        assert from_flag[field.name] != value


def type_of(field: dataclasses.Field) -> type:
    return next(c for c in SERVE if field in dataclasses.fields(c))


def test_without_flags_or_variables_the_settings_are_the_dataclass_defaults():
    args = _parse(SERVE, serve_cli.SECTIONS, [], {})
    command, settings = serve_cli.settings_from_args(args)
    assert settings == ServerSettings(endpoints=["tcp:port=8000:interface=127.0.0.1"])
    assert command == serve_cli.ServeCommand()
    worker = _parse([WorkerSettings], {}, ["app.routing:channel_routing"], {})
    assert WorkerSettings(**_flags.values(WorkerSettings, worker)) == WorkerSettings(
        "app.routing:channel_routing"
    )


def test_an_option_in_a_section_the_command_does_not_name_is_refused():
    with pytest.raises(ValueError, match="WebSocket"):
        _parse(SERVE, {k: v for k, v in serve_cli.SECTIONS.items() if k != "WebSocket"}, [], {})


def test_telex_worker_builds_its_parser_without_loading_server_code():
    code = (
        "import sys\n"
        "from telex.cli import main\n"
        "try:\n"
        "    main(['worker', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [m for m in sys.modules if m.startswith(('telex.server', 'telex.protocols', 'twisted'))]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=telex_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--ordering-timeout" in result.stdout


def test_both_commands_build_when_every_parser_is_built():
    parser = build_parser()
    assert parser.parse_args(["worker", "x:y"]).routing == "x:y"
    assert parser.parse_args(["serve", "-p", "1"]).port == 1
