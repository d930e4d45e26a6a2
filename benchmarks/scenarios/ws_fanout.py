NAME = "ws-fanout"


def run(ctx):
    return []
