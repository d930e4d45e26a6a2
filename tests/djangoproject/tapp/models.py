"""Models of the test project (data binding, background saves)."""

from django.db import models


class Note(models.Model):
    """Bound to WebSockets by tapp.consumers_binding.NoteBinding."""

    title = models.CharField(max_length=100)
    value = models.IntegerField(default=0)
    secret = models.CharField(max_length=100, blank=True, default="")

    def shout(self):
        return self.title.upper()


# Bindings connect their signals when the apps are ready, so they are imported with the models.
from tapp import consumers_binding  # noqa: E402, F401
