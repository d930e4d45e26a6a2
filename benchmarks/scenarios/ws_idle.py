NAME = "ws-idle"


def run(ctx):
    return []
