"""One Django project served by every stack of the ``django-view`` scenario (Django 2.1 and 5.2 alike)."""
