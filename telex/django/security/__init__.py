"""Checks on incoming connections (``telex.django.security.websockets``)."""
