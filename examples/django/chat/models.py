from django.db import models


class ChatMessage(models.Model):
    """One message said in a room; saved by the ``chat-messages`` consumer."""

    room = models.CharField(max_length=100, db_index=True)
    username = models.CharField(max_length=150)
    message = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"[{self.room}] {self.username}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        """What the chat page's JavaScript receives, as JSON."""
        return {"room": self.room, "user": self.username, "message": self.message}
