NAME = "layer"


def run(ctx):
    return []
