"""The entry codec: messages to stored entries and back (``_scripts`` is the only other framer).

A payload is msgpack with bin type, Fernet-encrypted when keys are set. A
stored entry is ``DEADLINE CHANNEL " " PAYLOAD`` (``_scripts`` explains why),
or a group entry ``DEADLINE "#" VERSION PREFIX " " NAMES "\\n" PAYLOAD`` that
carries one message for several members of one ``prefix!`` queue (``_take``
expands it); a parked ``telex.ordering`` record is QUEUEKEY, CHANNEL and
PAYLOAD on lines of their own.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Iterable

import msgpack

logger = logging.getLogger("telex.layers.redis")

#: Width of the deadline (Unix milliseconds) at the start of a stored entry.
DEADLINE_DIGITS = 13

#: The byte after the deadline that marks a group entry: no channel name starts with it.
GROUP_MARK = ord("#")

#: The group entry format this version writes and reads (the byte after the mark).
GROUP_FORMAT = b"1"


def derive_fernet_key(key: str | bytes) -> bytes:
    """The Fernet key asgi_redis derives from a configured string, so settings carry over."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    return base64.urlsafe_b64encode(hashlib.sha256(key).digest())


class Codec:
    """Turns checked messages into stored payloads and back.

    msgpack with ``use_bin_type=True``/``raw=False`` keeps ``bytes`` and
    ``str`` distinct (the spec's Strings and Unicode section).
    """

    def __init__(self, symmetric_encryption_keys: Iterable[str | bytes] | None = None) -> None:
        self._fernet = None
        # msgpack.packb builds a Packer (and its buffer) per call; one kept
        # per thread (a Packer is not thread-safe) packs about a third faster.
        self._local = threading.local()
        keys = list(symmetric_encryption_keys or [])
        if keys:
            from cryptography.fernet import Fernet, MultiFernet

            # The first key encrypts; every key decrypts (rotation).
            self._fernet = MultiFernet([Fernet(derive_fernet_key(key)) for key in keys])

    def pack(self, message: dict) -> bytes:
        """msgpack bytes of a message (the size limit applies to these)."""
        try:
            packer = self._local.packer
        except AttributeError:
            packer = self._local.packer = msgpack.Packer(use_bin_type=True)
        return packer.pack(message)

    def seal(self, packed: bytes) -> bytes:
        return packed if self._fernet is None else self._fernet.encrypt(packed)

    def decode(self, payload: bytes, where: str) -> dict | None:
        """The message in ``payload``, or None (logged) if no key decrypts it."""
        if self._fernet is not None:
            payload = self.unseal(payload, where)  # type: ignore[assignment]
            if payload is None:
                return None
        return msgpack.unpackb(payload, raw=False)

    def unseal(self, payload: bytes, where: str) -> bytes | None:
        """The msgpack bytes in ``payload``, or None (logged) if no key decrypts it."""
        if self._fernet is None:
            return payload
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(payload)
        except InvalidToken:
            logger.warning(
                "dropped a message on %r that none of the symmetric_encryption_keys decrypts", where
            )
            return None


def now_ms() -> int:
    """The clock deadlines are written and judged by: Unix time in milliseconds."""
    return int(time.time() * 1000)


def deadline_field(deadline_ms: int) -> bytes:
    """An entry's first field (the Lua scripts that frame entries take it ready-made)."""
    return b"%013d" % deadline_ms


def channel_field(channel: str) -> bytes:
    """An entry's second field with its separator; worked out once per channel name by senders."""
    return channel.encode("ascii") + b" "


def frame_entry(deadline_ms: int, channel: bytes, payload: bytes) -> bytes:
    """A stored entry; ``channel`` is :func:`channel_field`'s bytes."""
    return b"%013d" % deadline_ms + channel + payload


def group_head(prefix: str, names: list[str]) -> bytes:
    """What follows the deadline in a group entry for ``names`` (their parts after ``prefix``)."""
    return b"#" + GROUP_FORMAT + f"{prefix} {' '.join(names)}\n".encode("ascii")


def entry_queue(entry: bytes) -> str:
    """The queue a stored entry belongs on (a group entry's ``prefix!``)."""
    if entry[DEADLINE_DIGITS] == GROUP_MARK:
        return entry[DEADLINE_DIGITS + 2 : entry.index(b" ", DEADLINE_DIGITS)].decode("ascii")
    channel = entry[DEADLINE_DIGITS : entry.index(b" ", DEADLINE_DIGITS)].decode("ascii")
    bang = channel.find("!")
    return channel if bang < 0 else channel[: bang + 1]


def split_entry(entry: bytes) -> tuple[int, str, bytes]:
    """(deadline_ms, channel, payload) of a stored entry."""
    space = entry.index(b" ", DEADLINE_DIGITS)
    return int(entry[:DEADLINE_DIGITS]), entry[DEADLINE_DIGITS:space].decode("ascii"), entry[space + 1 :]


def parked_record(queue_key: str, channel: str, payload: bytes) -> bytes:
    """A message ``ordering_claim`` parks; ``queue_key`` is empty when its queue is on another shard."""
    return queue_key.encode() + b"\n" + channel.encode() + b"\n" + payload
