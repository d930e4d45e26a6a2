from django.urls import path

from chatproject import views

urlpatterns = [path("request/", views.describe_request)]
