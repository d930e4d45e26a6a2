"""The layer Daphne 1.4.2 is pointed at in the "daphne 1.4.2 + telex layer" system.

``daphne daphne_telex:channel_layer`` serves in front of Telex's Redis layer
and Telex's own worker (``telex worker benchmarks.telex_app:routing``), so
only the interface server differs from the ``telex redis`` rows.
"""

import os
import sys

import telex
from telex.layers.redis import RedisChannelLayer

channel_layer = RedisChannelLayer.from_url(os.environ["BENCH_REDIS_URL"])

# Daphne imports its reactor before this module. The layer lists "twisted", so
# Daphne calls receive_twisted(), which stays on the reactor only under
# Twisted's asyncio reactor and otherwise runs a blocking receive in the
# reactor's thread pool: say which one this process got.
from twisted.internet import reactor  # noqa: E402

print(
    f"daphne_telex: reactor {type(reactor).__name__}, telex from {telex.__file__}",
    file=sys.stderr,
    flush=True,
)
