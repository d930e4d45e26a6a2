"""``manage.py rundelay``: the delay server of ``telex.django.delay``, until SIGTERM/SIGINT.

Receives ``asgi.delay`` messages from a cross-process layer, stores them in
the database and sends each to its channel when due. Options and the
protocol: ``docs/django.md`` (the delay app).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections, router

from .... import DEFAULT_CHANNEL_LAYER
from ....management import cross_process_layer, setup_logging
from ...models import DelayedMessage
from ...worker import DEFAULT_SLEEP, Worker


class Command(BaseCommand):
    help = "Stores the messages sent to asgi.delay and sends each to its channel when it is due."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER,
            help="the CHANNEL_LAYERS alias to receive asgi.delay on and send to (default: %(default)s)",
        )
        parser.add_argument(
            "--sleep",
            type=float,
            default=DEFAULT_SLEEP,
            metavar="SECONDS",
            help="the longest wait between two looks at the database for due messages (default: %(default)s)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        setup_logging(options["verbosity"])
        alias, sleep = options["layer"], options["sleep"]
        if not sleep > 0:
            raise CommandError(f"--sleep must be a positive number of seconds, got {sleep}")
        wrapper = cross_process_layer(alias)
        check_table()
        worker = Worker(wrapper, database_sleep_duration=sleep)
        worker.run()


def check_table() -> None:
    """Fail with one line when the table is missing, rather than on the first message."""
    table = DelayedMessage._meta.db_table
    connection = connections[router.db_for_write(DelayedMessage)]
    try:
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
    except DatabaseError as exc:
        raise CommandError(f"DATABASES: cannot reach the delay database: {exc}") from None
    finally:
        connection.close()
    if table not in tables:
        raise CommandError(
            f"the table {table!r} of telex.django.delay does not exist: run 'manage.py migrate telex_delay'"
        )
