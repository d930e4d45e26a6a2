NAME = "http-hello"


def run(ctx):
    return []
