NAME = "upload"


def run(ctx):
    return []
