"""``DelayedMessage``: one stored ``asgi.delay`` message, in the table Channels 1.x used."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.db import models
from django.utils import timezone

from ...layers.base import ChannelFull
from .. import DEFAULT_CHANNEL_LAYER
from ..channel import raw_layer

__all__ = ["LEGACY_TABLE", "DelayedMessage", "DelayedMessageQuerySet"]

#: Channels 1.x's app label was ``channels.delay``, so its table had this name;
#: keeping it lets ``migrate --fake-initial`` adopt the rows already stored.
LEGACY_TABLE = "channels.delay_delayedmessage"


class DelayedMessageQuerySet(models.QuerySet):
    def is_due(self) -> DelayedMessageQuerySet:
        return self.filter(due_date__lte=timezone.now())


class DelayedMessage(models.Model):
    """A message to send to ``channel_name`` at ``due_date``; ``content`` is its JSON."""

    due_date = models.DateTimeField(db_index=True)
    channel_name = models.CharField(max_length=512)
    content = models.TextField()

    objects = DelayedMessageQuerySet.as_manager()

    class Meta:
        db_table = LEGACY_TABLE

    @property
    def delay(self) -> float:
        """Milliseconds from now to ``due_date``, as it was set."""
        return self._delay

    @delay.setter
    def delay(self, milliseconds: float) -> None:
        self._delay = milliseconds
        self.due_date = timezone.now() + timedelta(milliseconds=milliseconds)

    def send(self, channel_layer: Any = None, requeue_delay: float = 1000) -> bool:
        """Send the content to its channel now and delete the row; True if sent.

        The row is deleted *before* the send, and only the caller whose delete
        removed it sends: several ``rundelay`` processes on one database never
        send a message twice (ASGI delivery is at most once anyway). A full
        channel stores the message again, due in ``requeue_delay`` ms.
        """
        layer = raw_layer(channel_layer, DEFAULT_CHANNEL_LAYER)
        if self.pk is not None:
            deleted, _ = type(self).objects.filter(pk=self.pk).delete()
            if not deleted:
                return False
        try:
            layer.send(self.channel_name, json.loads(self.content))
        except getattr(layer, "ChannelFull", ChannelFull):
            self.delay = requeue_delay
            self.save()
            return False
        return True

    def __str__(self) -> str:
        return f"{self.channel_name} at {self.due_date:%Y-%m-%d %H:%M:%S.%f}"
