from chat import views
from django.contrib import admin
from django.urls import include, path, re_path

urlpatterns = [
    path("", views.index, name="index"),
    # The same path as the room's WebSocket: the page is HTTP, the socket is routed by example/routing.py.
    re_path(r"^chat/(?P<room>[a-zA-Z0-9_]+)/$", views.room, name="room"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
