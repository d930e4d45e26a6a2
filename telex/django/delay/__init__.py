"""Delayed sends: a message to ``asgi.delay`` is stored and sent to its channel when due.

``INSTALLED_APPS = [..., "telex.django.delay"]`` (in place of
``"channels.delay"``), ``manage.py migrate``, then run ``manage.py
rundelay`` beside the workers. See ``docs/django.md`` (the delay app) for the
protocol and for carrying over a Channels 1.x database.
"""
