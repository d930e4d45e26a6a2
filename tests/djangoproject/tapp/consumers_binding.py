"""Data binding of tests/test_django_binding.py: Note changes on the "notes" stream of /binding/notes/."""

from telex.django.binding.websockets import WebsocketBindingWithMembers
from telex.django.generic.websockets import WebsocketDemultiplexer


class NoteBinding(WebsocketBindingWithMembers):
    model = "tapp.Note"
    stream = "notes"
    exclude = ["secret"]
    send_members = ["shout"]

    @classmethod
    def group_names(cls, instance):
        # Notes titled "hidden..." are seen by nobody: saving one out of view sends a delete.
        return [] if instance.title.startswith("hidden") else ["notes"]

    def has_permission(self, user, action, pk):
        # Anonymous sockets may create and update, not delete.
        return action != "delete" or user.is_authenticated


class NotesDemux(WebsocketDemultiplexer):
    groups = ["notes"]
    http_user = True  # the login of the handshake is the user of the binding
    strict_ordering = True
    consumers = {"notes": NoteBinding.consumer}
