"""Consumers of tests/test_django_http.py."""


def raising(message):
    """An ``http.request`` consumer that is not Django's view: the worker answers with Django's 500."""
    raise ValueError("boom from a consumer")
