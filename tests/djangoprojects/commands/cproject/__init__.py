"""A small Django project for the tests of ``runserver`` and ``runworker`` (tests/test_django_commands.py)."""
