"""URLs of the test project: one module per area of the tests."""

from django.urls import include, path
from tapp import views

urlpatterns = [
    path("hello/", views.hello),
    path("http/", include("tapp.urls_http")),
]
