"""Load generators and measuring processes the harness starts as children.

Each module runs as ``python -m benchmarks.clients.NAME`` (or as a plain
script under a peer's interpreter) and prints its result as one JSON line.
"""
