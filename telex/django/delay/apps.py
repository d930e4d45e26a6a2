"""The delay app: ``"telex.django.delay"`` in ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class DelayConfig(AppConfig):
    """Channels 1.x labelled it ``channels.delay``; Django >= 3.2 refuses a label with a dot."""

    name = "telex.django.delay"
    label = "telex_delay"
    verbose_name = "Telex delay"
    default_auto_field = "django.db.models.AutoField"
