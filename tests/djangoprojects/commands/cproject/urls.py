from django.urls import path

from cproject import views

urlpatterns = [path("hello/", views.hello)]
