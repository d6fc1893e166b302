"""Errors raised while reading or writing checkpoints."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as, or does not match, the expected model.

    The message names the file or parameter, the expected and found shapes, and the fix.
    """
