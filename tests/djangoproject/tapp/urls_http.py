"""Placeholder: filled by the HTTP tests."""

urlpatterns = []
