"""The interface server: reactor, endpoints, reply reader, timeouts, lifecycle.

Import ``telex.server.reactor`` and call ``install_reactor()`` before any
other module of this package: they import ``twisted.internet.reactor``.
"""
