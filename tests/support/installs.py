"""Installs made the way a user makes them: from a fresh copy of the checkout, into
virtualenvs cached outside the repository, with an environment that points nowhere else."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.processes import ROOT


def copy_checkout(destination: str) -> None:
    """What a fresh clone holds: tracked files and new ones git does not ignore."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = os.path.join(ROOT, name)
        if os.path.isfile(source):
            target = os.path.join(destination, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(source, target)


def cache_root() -> Path:
    """Where test virtualenvs are cached, outside the checkout."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "telex-tests"


def clean_env() -> dict[str, str]:
    """The environment without anything that would point a child at the checkout or another venv."""
    prefixes = ("TELEX_", "PYTHON", "VIRTUAL_ENV", "DJANGO_", "CHANNELS1_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
