"""Signals a worker sends around consumers, as Channels 1.x did.

``consumer_finished`` closes stale database connections, as Django's
``request_finished`` does around a request, so a long-lived worker thread
never keeps a broken or over-aged connection.
"""

from __future__ import annotations

from django.db import close_old_connections, reset_queries
from django.dispatch import Signal

__all__ = ["consumer_finished", "consumer_started", "worker_process_ready", "worker_ready"]

#: Sent before each consumer runs, with ``environ={}`` as Channels did.
consumer_started = Signal()
#: Sent after each consumer returned (or raised) and its held sends went out.
consumer_finished = Signal()
#: Sent by each worker (thread) when it is ready to receive.
worker_ready = Signal()
#: Sent once per worker process, before its threads start.
worker_process_ready = Signal()

#: dispatch_uids of the connection-closing receivers (telex.django.test switches them off in tests).
CLOSE_CONNECTIONS_UIDS = ("telex.django.close_old_connections_start", "telex.django.close_old_connections")

# Django does both around a request (django.db.__init__): queries logged with
# DEBUG would otherwise grow without bound in a worker that never restarts.
consumer_started.connect(reset_queries, dispatch_uid="telex.django.reset_queries")
consumer_started.connect(close_old_connections, dispatch_uid=CLOSE_CONNECTIONS_UIDS[0])
consumer_finished.connect(close_old_connections, dispatch_uid=CLOSE_CONNECTIONS_UIDS[1])
