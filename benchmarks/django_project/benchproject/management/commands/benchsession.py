"""``manage.py benchsession``: store one session and print its key, for the load generator's cookie.

Each stack makes its own with its own Django: the stored encoding differs
between Django 2.1 and 5.2.
"""

from importlib import import_module

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Stores a session holding visits=42 and prints its key."

    def handle(self, *args, **options):
        store = import_module(settings.SESSION_ENGINE).SessionStore()
        store["visits"] = 42
        store.save()
        self.stdout.write(store.session_key)
