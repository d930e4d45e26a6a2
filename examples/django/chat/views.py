import re

from django.shortcuts import redirect, render

from .models import ChatMessage

ROOM_NAME = re.compile(r"^[a-zA-Z0-9_]+$")


def index(request):
    room = request.GET.get("room", "")
    if ROOM_NAME.match(room):
        return redirect("room", room=room)
    rooms = ChatMessage.objects.order_by("room").values_list("room", flat=True).distinct()
    return render(request, "chat/index.html", {"rooms": rooms, "bad_room": bool(room)})


def room(request, room):
    # The newest 50, oldest first; later ones arrive over the WebSocket.
    history = reversed(ChatMessage.objects.filter(room=room).order_by("-created", "-id")[:50])
    return render(request, "chat/room.html", {"room": room, "history": history})
