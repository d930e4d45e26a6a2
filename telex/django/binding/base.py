"""``Binding``: a two-way link between a Django model and groups of sockets.

Outbound: after a save or delete, the instance goes to the groups
``group_names(instance)`` returns, as ``create``, ``update`` or ``delete`` —
an instance that leaves a group is sent there as ``delete``, one that joins
as ``create``. The sends are Group sends: held until the consumer returns
when the save happens in one, immediate elsewhere (a view, a shell, a task).
Inbound: ``Binding.consumer`` is a consumer (put it in a demultiplexer) that
decodes an action and runs it when ``has_permission`` allows.

Bindings register their signal receivers when the ``telex.django`` app is
ready; a binding defined later registers at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from django.apps import apps
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from ..auth import channel_session_user
from ..channel import Group
from ..sessions import channel_session

__all__ = ["CREATE", "DELETE", "UPDATE", "Binding", "BindingMetaclass"]

CREATE = "create"
UPDATE = "update"
DELETE = "delete"


class BindingMetaclass(type):
    """Keeps every binding class, so their receivers connect once the apps are ready."""

    register_immediately: ClassVar[bool] = False
    binding_classes: ClassVar[list[type]] = []

    def __new__(mcs, name: str, bases: tuple[type, ...], body: dict[str, Any]) -> BindingMetaclass:
        klass = super().__new__(mcs, name, bases, body)
        if any(isinstance(base, BindingMetaclass) for base in bases):
            mcs.binding_classes.append(klass)
            if mcs.register_immediately:
                klass.register()  # type: ignore[attr-defined]
        return klass

    @classmethod
    def register_all(cls) -> None:
        """Connect the receivers of every binding defined so far, and of later ones at once."""
        for binding_class in cls.binding_classes:
            binding_class.register()  # type: ignore[attr-defined]
        cls.register_immediately = True


class Binding(metaclass=BindingMetaclass):
    """Subclass with ``model`` (a class or ``"app_label.Model"``), ``stream``, ``fields`` or ``exclude``.

    Outbound: implement ``group_names(instance)`` and ``serialize(instance,
    action)``. Inbound: ``deserialize(message)`` → ``(action, pk, data)``,
    ``has_permission(user, action, pk)``, ``create(data)``, ``update(pk, data)``;
    ``delete(pk)`` is done here. A subclass that sets ``model = None`` is abstract.
    """

    model: Any = None
    #: Fields sent and accepted (``["__all__"]`` for all); or ``exclude``.
    fields: Iterable[str] | None = None
    exclude: Iterable[str] | None = None
    stream: str | None = None
    #: Inbound messages get ``message.user`` from the channel session (``channel_session_user``).
    channel_session_user: bool = True
    channel_session: bool = False
    #: The keyword arguments of the signal that triggered the current outbound send.
    signal_kwargs: dict[str, Any] | None = None
    model_label: str = ""
    # Set per outbound send (instance) or inbound message (the rest).
    instance: Any
    message: Any
    kwargs: dict[str, Any]
    action: str
    pk: Any
    data: Any
    user: Any

    # -- registration ------------------------------------------------------------------------

    @classmethod
    def register(cls) -> None:
        for model in cls.get_registered_models():
            pre_save.connect(cls.pre_save_receiver, sender=model)
            post_save.connect(cls.post_save_receiver, sender=model)
            pre_delete.connect(cls.pre_delete_receiver, sender=model)
            post_delete.connect(cls.post_delete_receiver, sender=model)

    @classmethod
    def get_registered_models(cls) -> list[Any]:
        """The model (resolved from its label); none for an abstract binding."""
        if cls.model is None:
            if "model" in cls.__dict__:
                return []
            raise ValueError(f"binding {cls.__qualname__} has no model attribute")
        if cls.fields is None and cls.exclude is None:
            raise ValueError(
                f"binding {cls.__qualname__} sets neither fields nor exclude "
                f"(use fields = ['__all__'] to send every field)"
            )
        if isinstance(cls.model, str):
            try:
                cls.model = apps.get_model(cls.model)
            except (LookupError, ValueError) as exc:
                raise ValueError(f"binding {cls.__qualname__}: model {cls.model!r}: {exc}") from None
        meta = cls.model._meta
        cls.model_label = f"{meta.app_label.lower()}.{meta.object_name.lower()}"
        return [cls.model]

    # -- outbound ----------------------------------------------------------------------------

    @classmethod
    def encode(cls, stream: str, payload: Any) -> dict[str, Any]:
        """The message sent to the groups for ``payload`` on ``stream``."""
        raise NotImplementedError(f"{cls.__qualname__} must implement encode(stream, payload)")

    @classmethod
    def pre_save_receiver(cls, instance: Any, **kwargs: Any) -> None:
        cls.pre_change_receiver(instance, CREATE if instance._state.adding else UPDATE)

    @classmethod
    def post_save_receiver(cls, instance: Any, created: bool, **kwargs: Any) -> None:
        cls.post_change_receiver(instance, CREATE if created else UPDATE, **kwargs)

    @classmethod
    def pre_delete_receiver(cls, instance: Any, **kwargs: Any) -> None:
        cls.pre_change_receiver(instance, DELETE)

    @classmethod
    def post_delete_receiver(cls, instance: Any, **kwargs: Any) -> None:
        cls.post_change_receiver(instance, DELETE, **kwargs)

    @classmethod
    def pre_change_receiver(cls, instance: Any, action: str) -> None:
        """Remember the groups the instance was in before the change."""
        groups = set() if action == CREATE else set(cls.group_names(instance))
        instance.__dict__.setdefault("_binding_group_names", {})[cls] = groups

    @classmethod
    def post_change_receiver(cls, instance: Any, action: str, **kwargs: Any) -> None:
        """Send ``delete`` to the groups left, ``update`` to those kept, ``create`` to those joined."""
        old = instance.__dict__.get("_binding_group_names", {}).pop(cls, set())
        new = set() if action == DELETE else set(cls.group_names(instance))
        self = cls()
        self.instance = instance
        # Delete, update, create: a client that follows along never sees an object twice.
        self.send_messages(instance, old - new, DELETE, **kwargs)
        self.send_messages(instance, old & new, UPDATE, **kwargs)
        self.send_messages(instance, new - old, CREATE, **kwargs)

    def send_messages(self, instance: Any, group_names: set[str], action: str, **kwargs: Any) -> None:
        """Serialize the instance once and send it to ``group_names``; an empty payload sends nothing."""
        if not group_names:
            return
        self.signal_kwargs = kwargs
        payload = self.serialize(instance, action)
        if payload == {}:
            return
        if self.stream is None:
            raise ValueError(f"binding {type(self).__qualname__} has no stream")
        message = self.encode(self.stream, payload)
        for group_name in group_names:
            Group(group_name).send(message)

    @classmethod
    def group_names(cls, instance: Any) -> Iterable[str]:
        """The groups that see ``instance``."""
        raise NotImplementedError(f"{cls.__qualname__} must implement group_names(instance)")

    def serialize(self, instance: Any, action: str) -> dict[str, Any]:
        """The payload sent for ``instance`` (``{}`` to send nothing)."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement serialize(instance, action)")

    # -- inbound -----------------------------------------------------------------------------

    @classmethod
    def trigger_inbound(cls, message: Any, **kwargs: Any) -> None:
        """Decode the message and run its action if allowed."""
        from django.contrib.auth.models import AnonymousUser

        self = cls()
        self.message = message
        self.kwargs = kwargs
        self.action, self.pk, self.data = self.deserialize(message)
        self.user = getattr(message, "user", None) or AnonymousUser()
        self.run_action(self.action, self.pk, self.data)

    @classmethod
    def get_handler(cls) -> Callable[..., Any]:
        """``trigger_inbound`` with the session decorators asked for."""
        if cls.channel_session_user:
            return channel_session_user(cls.trigger_inbound)
        if cls.channel_session:
            return channel_session(cls.trigger_inbound)
        return cls.trigger_inbound

    @classmethod
    def consumer(cls, message: Any, **kwargs: Any) -> None:
        """The inbound consumer: route it, or put it in a demultiplexer's ``consumers``."""
        cls.get_handler()(message, **kwargs)

    def deserialize(self, message: Any) -> tuple[str, Any, Any]:
        """``(action, pk, data)`` of an inbound message (pk None to create, data None to delete)."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement deserialize(message)")

    def has_permission(self, user: Any, action: str, pk: Any) -> bool:
        """True if ``user`` (maybe an ``AnonymousUser``) may ``action`` the object ``pk``."""
        raise NotImplementedError(
            f"{type(self).__qualname__} must implement has_permission(user, action, pk)"
        )

    def run_action(self, action: str, pk: Any, data: Any) -> None:
        """Run an allowed action: ``create``, ``update`` or ``delete``."""
        if not self.has_permission(self.user, action, pk):
            return
        if action == CREATE:
            self.create(data)
        elif action == UPDATE:
            self.update(pk, data)
        elif action == DELETE:
            self.delete(pk)
        else:
            raise ValueError(f"binding {type(self).__qualname__}: unknown action {action!r}")

    def create(self, data: Any) -> None:
        raise NotImplementedError(f"{type(self).__qualname__} must implement create(data)")

    def update(self, pk: Any, data: Any) -> None:
        raise NotImplementedError(f"{type(self).__qualname__} must implement update(pk, data)")

    def delete(self, pk: Any) -> None:
        self.model.objects.filter(pk=pk).delete()
