"""A tiny Django 2.1 + Channels 1.1.8 project that Telex serves in the interop tests.

It runs only inside the Channels 1.x virtualenvs those tests build, never in
Telex's own environment.
"""
