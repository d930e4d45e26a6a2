"""URLs of tests/test_django_http.py, mounted at /http/ by tproject/urls.py."""

from django.urls import path

from tapp import views_http as views

urlpatterns = [
    path("meta/", views.meta),
    path("count/", views.count),
    path("login/", views.log_in),
    path("whoami/", views.whoami),
    path("form/", views.form),
    path("messages/add/", views.add_message),
    path("messages/", views.read_messages),
    path("boom/", views.boom),
    path("async/", views.hello_async),
    path("upload/", views.upload),
    path("raw/", views.raw_body),
    path("catch/", views.read_and_catch),
    path("protected/", views.protected_post),
    path("stream/", views.stream),
    path("endless/", views.endless),
    path("stream-async/", views.stream_async),
    path("file/", views.file),
    path("cookies/", views.cookies),
    path("later/", views.later),
]
