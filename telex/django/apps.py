"""The Django app: ``INSTALLED_APPS = ["telex.django", ...]`` in place of ``"channels"``."""

from __future__ import annotations

from django.apps import AppConfig


class TelexDjangoConfig(AppConfig):
    name = "telex.django"
    label = "telex_django"
    verbose_name = "Telex"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .binding.base import BindingMetaclass

        BindingMetaclass.register_all()
