NAME = "ws-echo"


def run(ctx):
    return []
