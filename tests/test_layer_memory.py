"""The in-memory layer against the layer contract, plus what is its own."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from telex.layers import InMemoryChannelLayer, LayerSpecError, get_channel_layer
from tests.layer_contract import LayerContract, check_receive_twisted_woken_by_thread

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def make_layer():
    return InMemoryChannelLayer


class TestInMemoryLayer(LayerContract):
    pass


def test_receive_twisted_is_woken_by_a_send_from_another_thread():
    check_receive_twisted_woken_by_thread("memory://", ROOT)


def test_an_expired_message_drops_its_channel_from_groups():
    layer = InMemoryChannelLayer(expiry=0.05)
    layer.group_add("g", "proc!gone")
    layer.send("proc!gone", {"unread": True})
    threading.Event().wait(0.1)
    assert layer.receive(["proc!"]) == (None, None)
    assert layer.group_channels("g") == []


def test_flush_releases_blocked_receivers_at_once():
    layer = InMemoryChannelLayer()
    result = []
    thread = threading.Thread(target=lambda: result.append(layer.receive(["x"], block=True)))
    thread.start()
    while not layer._waiters:
        threading.Event().wait(0.001)
    layer.flush()
    thread.join(2)
    assert result == [(None, None)]


def test_cancelled_receive_async_loses_no_message():
    layer = InMemoryChannelLayer()

    async def main():
        task = asyncio.ensure_future(layer.receive_async(["c"]))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        layer.send("c", {"kept": True})
        return layer.receive(["c"])

    assert asyncio.run(main()) == ("c", {"kept": True})


# -- get_channel_layer ---------------------------------------------------------


def test_memory_url_builds_an_in_memory_layer_with_query_options():
    layer = get_channel_layer("memory://?expiry=30&capacity=5&group_expiry=600")
    assert isinstance(layer, InMemoryChannelLayer)
    assert (layer.expiry, layer.capacity, layer.group_expiry) == (30, 5, 600)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("memory://?capacity=lots", "capacity='lots'.*must be int"),
        ("memory://?colour=blue", "unknown option 'colour'"),
        ("memory://?capacity=0", "capacity must be a positive integer"),
        ("postgres://db", "unknown channel layer URL scheme 'postgres'"),
        ("no_such_module_xyz:layer", "cannot import module 'no_such_module_xyz'"),
        ("telex.layers:nothing_here", "has no attribute 'nothing_here'"),
        ("telex.layers:__all__", "is not an ASGI channel layer"),
        ("justaword", "must look like 'module:attribute'"),
    ],
)
def test_bad_layer_specs_fail_with_a_message_naming_the_problem(spec, message):
    with pytest.raises(LayerSpecError, match=message):
        get_channel_layer(spec)


def test_module_attribute_may_name_a_layer_or_a_callable_returning_one(tmp_path, monkeypatch):
    (tmp_path / "myproject_asgi.py").write_text(
        "from telex.layers import InMemoryChannelLayer\n"
        "channel_layer = InMemoryChannelLayer(capacity=7)\n"
        "def make():\n    return InMemoryChannelLayer(capacity=8)\n"
    )
    monkeypatch.chdir(tmp_path)
    assert get_channel_layer("myproject_asgi:channel_layer").capacity == 7
    assert get_channel_layer("myproject_asgi:make").capacity == 8
