"""Telex as a new user meets it: README's command in a fresh virtualenv, and a browser.

These are the slowest tests (an install from PyPI, a real Chromium); they are
marked ``slow`` for local runs with ``-m 'not slow'``, and CI always runs them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading

import pytest
import websockets

from tests.support.browser import Browser, find_chromium, in_ci
from tests.support.installs import copy_checkout
from tests.support.processes import ROOT, TelexServer
from tests.support.redis_server import free_port

pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    """The indented command lines of README's set-up section, in order."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
        text = readme.read()
    section = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ") and line.strip()]


async def chat_from_two_clients(port: int) -> tuple[str, str]:
    url = f"ws://127.0.0.1:{port}/chat/"
    async with websockets.connect(url) as first, websockets.connect(url) as second:
        await first.send("hello from the first client")
        return (
            await asyncio.wait_for(first.recv(), 10),
            await asyncio.wait_for(second.recv(), 10),
        )


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_second():
    install_and_demo, install_and_test = readme_commands()
    assert (
        "pip install ." in install_and_demo and "telex serve --routing telex.demo:routing" in install_and_demo
    )
    assert "pip install -e '.[test,redis,django]'" in install_and_test
    test_command = install_and_test.rsplit("&&", 1)[1].strip().replace(".venv/bin/", "")
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as script:
        ci = script.read()
    assert test_command in ci


def test_readme_first_command_installs_and_serves_the_chat_in_a_fresh_virtualenv(tmp_path):
    checkout = tmp_path / "telex"
    copy_checkout(str(checkout))
    command = readme_commands()[0]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEX_", "PYTHON", "VIRTUAL_ENV"))}
    env["TELEX_PORT"] = str(port)  # README's command as written; only the port differs
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    listening = []

    def collect():
        for line in process.stdout:
            lines.append(line)
            if "listening on" in line:
                listening.append(line)
                ready.set()
        ready.set()  # the process ended: stop waiting

    threading.Thread(target=collect, daemon=True).start()
    try:
        assert ready.wait(300) and listening, "".join(lines[-40:])
        import urllib.request

        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
        assert b"Telex chat" in page
        assert asyncio.run(chat_from_two_clients(port)) == ("hello from the first client",) * 2
        # The core install stays free of Django, Redis's client and asgiref (extras carry them).
        python = str(checkout / ".venv" / "bin" / "python")
        for module in ("django", "redis", "asgiref"):
            found = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False)
            assert found.returncode != 0, f"the core install brought in {module}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def test_the_demo_chat_works_between_two_browser_tabs(tmp_path):
    binary = find_chromium()
    if binary is None:
        if in_ci():
            pytest.fail("Chromium is missing in CI: .ci/run should have installed Debian's chromium")
        pytest.skip("Chromium is not installed (Debian package 'chromium'); CI installs it")
    with TelexServer("--routing", "telex.demo:routing") as server:
        browser = Browser(binary)
        try:
            first = browser.open_tab(server.url + "/")
            second = browser.open_tab(server.url + "/")
            for tab in (first, second):
                assert tab.wait_for("document.getElementById('status').textContent === 'connected'")
            first.evaluate(
                "document.getElementById('text').value = 'hello from tab one';"
                "document.getElementById('form').requestSubmit(); true"
            )
            seen = (
                "[...document.querySelectorAll('#log .message')]"
                ".some(p => p.textContent === 'hello from tab one')"
            )
            assert first.wait_for(seen) and second.wait_for(seen)
            second.screenshot(str(tmp_path / "second-tab.png"))
        finally:
            browser.close()


def readme_install_commands() -> list[str]:
    """The indented command lines of README's install section: from a checkout, from a git URL."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
        section = readme.read().split("## Installing", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ") and line.strip()]


def test_readme_installs_from_a_checkout_and_from_a_git_url(tmp_path):
    from_checkout, from_git = readme_install_commands()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEX_", "PYTHON", "VIRTUAL_ENV"))}
    copy_checkout(str(tmp_path / "telex"))
    subprocess.run(["python3", "-m", "venv", "venv"], cwd=tmp_path, check=True, env=env)
    venv = tmp_path / "venv" / "bin"
    env["PATH"] = f"{venv}{os.pathsep}{env['PATH']}"

    def run(command: str) -> None:
        result = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # README's first command as written, run next to the clone.
    run(from_checkout)
    run("telex --version && python -c 'import redis, telex.layers.redis'")
    # The second from a git repository of the same files: only the URL's host differs.
    repository = tmp_path / "telex"
    for git in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"],
    ):
        subprocess.run(["git", *git], cwd=repository, check=True, capture_output=True)
    assert "git+https://github.com/telex/telex.git" in from_git
    # (A git+file URL needs a host for pip's requirement parser: localhost.)
    local = from_git.replace("https://github.com/telex/telex.git", f"file://localhost{repository}")
    run("pip uninstall -q -y telex && " + local.replace("pip install", "pip install -q"))
    run("telex --version && python -c 'import redis, telex.layers.redis'")
