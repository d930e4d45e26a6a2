"""The peers' own code: a Channels 1.x project and a bare Twisted server.

``benchpeer`` runs inside the Daphne stack's virtualenv with this directory
on its PYTHONPATH; ``twisted_bare`` runs under the harness's interpreter.
"""
