"""telex.django on the newest Django: Django 6.x needs Python >= 3.12, so it gets a virtualenv of its own.

The main suite runs on the interpreter CI uses (Django 5.2 LTS there). Here a
Python 3.12+ found on the machine gets ``telex[django,redis,test]`` with
Django 6, and runs the in-process Django tests with it. Skipped (and said so)
where no such interpreter exists. The virtualenv is cached like the Channels
1.x ones (tests/test_channels1_interop.py), keyed by setup.cfg.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.installs import cache_root, clean_env, copy_checkout

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

DJANGO_6 = "Django>=6.0,<7"
TESTS = ("tests/test_django_core.py", "tests/test_django_http.py")


def newer_python() -> str | None:
    """A Python >= 3.12: on PATH, or one pyenv keeps without putting it on PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = [shutil.which(name) for name in ("python3.13", "python3.12")]
    candidates += [str(path) for path in sorted(pyenv.glob("3.1[2-9]*/bin/python3"), reverse=True)]
    check = "import sys, venv; assert sys.version_info >= (3, 12)"
    for found in filter(None, candidates):
        if subprocess.run([found, "-c", check], capture_output=True, check=False).returncode == 0:
            return found
    return None


def test_django_6_runs_the_django_tests(tmp_path):
    python = newer_python()
    if python is None:
        pytest.skip("no Python >= 3.12 on this machine: Django 6 needs one")
    checkout = tmp_path / "telex"
    copy_checkout(str(checkout))
    key = hashlib.sha256(
        json.dumps([python, DJANGO_6, (checkout / "setup.cfg").read_text()]).encode()
    ).hexdigest()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"django6-{key[:12]}"
    with open(root / "django6.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "ok").exists():
            for old in root.glob("django6-*"):
                shutil.rmtree(old, ignore_errors=True)
            subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", "install"]
            subprocess.run(
                [*pip, f"{checkout}[django,redis,test]", DJANGO_6], check=True, timeout=400, env=clean_env()
            )
            (venv / "ok").write_text("")
    # The checkout under test, not the one the venv was built from.
    env = {**clean_env(), "PYTHONPATH": str(checkout)}
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import django; print(django.__version__)"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=checkout,
    ).stdout.strip()
    assert version.startswith("6."), version
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
        capture_output=True,
        text=True,
        env=env,
        cwd=checkout,
        timeout=400,
        check=False,
    )
    print(done.stdout[-2000:], file=sys.stderr)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
