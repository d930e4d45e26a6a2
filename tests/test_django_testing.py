"""telex.django.test under Django's own runner: ``manage.py test`` on a project whose tests are
written as a Channels 1.x project's (tests/djangoprojects/testing/chat/tests.py).

Its tests use ChannelTestCase, TransactionChannelTestCase, Client, WSClient
(login, cookies, ordering), apply_routes and ChannelLiveServerTestCase (a
real Telex server and worker on a loopback port). Its CHANNEL_LAYERS names a
Redis layer that is never started: every test must run on the swapped-in
in-memory layer.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("django")

from tests.support.processes import telex_env

PROJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "djangoprojects", "testing")


def manage_test(tmp_path, *labels: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "test", "--noinput", *labels],
        cwd=PROJECT,
        env=telex_env({"TELEX_TEST_DIR": str(tmp_path)}),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_channels_1_test_suite_passes_under_djangos_test_runner(tmp_path):
    result = manage_test(tmp_path, "chat.tests")
    assert result.returncode == 0, result.stderr
    assert "Ran 23 tests" in result.stderr
    assert "\nOK\n" in result.stderr


def test_require_reports_a_missing_message_as_a_test_failure(tmp_path):
    result = manage_test(tmp_path, "chat.failing")
    assert result.returncode == 1
    assert "AssertionError: Expected a message on channel never.sent, got none" in result.stderr
    assert "FAILED (failures=1)" in result.stderr
