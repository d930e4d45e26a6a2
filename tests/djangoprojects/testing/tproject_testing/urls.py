from chat.models import Note
from django.http import HttpResponse
from django.urls import path


def notes(request):
    return HttpResponse(
        ",".join(Note.objects.order_by("pk").values_list("text", flat=True)), content_type="text/plain"
    )


urlpatterns = [path("notes/", notes)]
