"""TODO."""


def build(ctx, body):
    return None
