"""``WebsocketBinding``: model changes as JSON frames on a stream of a multiplexed WebSocket.

Outbound frames are ``{"stream": stream, "payload": {"action", "pk",
"data", "model"}}`` (``model`` is ``"app_label.modelname"``, ``data`` the
fields Django's JSON serializer gives). Inbound, put ``MyBinding.consumer``
in a ``WebsocketDemultiplexer``'s ``consumers`` under its stream; the client
sends ``{"stream": ..., "payload": {"action": "create"|"update"|"delete",
"pk": ..., "data": {...}}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder

from ..generic.websockets import WebsocketMultiplexer
from ..sessions import enforce_ordering
from .base import Binding

__all__ = ["WebsocketBinding", "WebsocketBindingWithMembers"]


class WebsocketBinding(Binding):
    """Implement ``group_names(instance)`` and ``has_permission(user, action, pk)``; set ``stream``.

    ``strict_ordering`` runs the inbound messages of a socket in order;
    ``slight_ordering`` is accepted (connect always runs before receive in Telex).
    """

    model: Any = None  # abstract
    strict_ordering: bool = False
    slight_ordering: bool = False

    @classmethod
    def encode(cls, stream: str, payload: Any) -> dict[str, Any]:
        return WebsocketMultiplexer.encode(stream, payload)

    def serialize(self, instance: Any, action: str) -> dict[str, Any]:
        return {
            "action": action,
            "pk": instance.pk,
            "data": self.serialize_data(instance),
            "model": self.model_label,
        }

    def _all_fields(self) -> bool:
        return self.fields == "__all__" or (self.fields is not None and list(self.fields) == ["__all__"])

    def _field_names(self, instance: Any) -> list[str] | None:
        """The fields to serialize; None for all of them."""
        if self._all_fields():
            return None
        if self.fields is not None:
            return list(self.fields)
        exclude = set(self.exclude or ())
        return [field.name for field in instance._meta.get_fields() if field.name not in exclude]

    def serialize_data(self, instance: Any) -> dict[str, Any]:
        """The instance's fields as JSON-safe values, by Django's JSON serializer."""
        text = serializers.serialize("json", [instance], fields=self._field_names(instance))
        return json.loads(text)[0]["fields"]

    @classmethod
    def get_handler(cls) -> Callable[..., Any]:
        handler = super().get_handler()
        if cls.strict_ordering:
            return enforce_ordering(handler)
        if cls.slight_ordering:
            return enforce_ordering(handler, slight=True)
        return handler

    @classmethod
    def trigger_inbound(cls, message: Any, **kwargs: Any) -> None:
        """Only frames carry actions; connect and disconnect pass through."""
        if message.channel.name != "websocket.receive":
            return
        super().trigger_inbound(message, **kwargs)

    def deserialize(self, message: Any) -> tuple[str, Any, Any]:
        body = json.loads(message["text"])
        if not isinstance(body, dict) or "action" not in body:
            raise ValueError(f"binding {type(self).__qualname__}: the payload has no 'action'")
        return body["action"], body.get("pk"), body.get("data")

    def _hydrate(self, pk: Any, data: Any) -> Any:
        """``data`` (field values) as an unsaved deserialized object of the model."""
        objects = serializers.deserialize("python", [{"pk": pk, "model": self.model_label, "fields": data}])
        return next(iter(objects))

    def _accepts(self, name: str) -> bool:
        if self.fields is not None:
            return self._all_fields() or name in self.fields
        return name not in (self.exclude or ())

    def create(self, data: Any) -> None:
        self._hydrate(None, data).save()

    def update(self, pk: Any, data: Any) -> None:
        """Set the accepted fields of ``data`` on the stored object and save it."""
        instance = self.model.objects.get(pk=pk)
        hydrated = self._hydrate(pk, data)
        for name in data:
            if self._accepts(name):
                setattr(instance, name, getattr(hydrated.object, name))
        instance.save()


class WebsocketBindingWithMembers(WebsocketBinding):
    """Also sends ``send_members``: attributes, properties or no-argument methods (dotted paths allowed).

    A dotted member ``"owner.name"`` is sent under the key ``"owner__name"``.
    """

    model: Any = None  # abstract
    send_members: Iterable[str] = []
    encoder = DjangoJSONEncoder()

    def serialize_data(self, instance: Any, **kwargs: Any) -> dict[str, Any]:
        data = super().serialize_data(instance)
        members: dict[str, Any] = {}
        for path in self.send_members:
            value = instance
            for part in path.split("."):
                value = getattr(value, part)
            members[path.replace(".", "__")] = value() if callable(value) else value
        data.update(json.loads(self.encoder.encode(members)))
        return data
