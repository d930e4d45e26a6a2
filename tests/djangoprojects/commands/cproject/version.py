"""Rewritten by the autoreloader test: the answer of /hello/ shows which code runs."""

VERSION = 1
