"""Errors raised while reading or writing checkpoints."""

import tokenize


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as, or does not match, the expected model.

    The message names the file or parameter, the expected and found shapes, and the fix.
    """


# What decoding a corrupt or foreign file can raise from numpy (its .npy header is parsed
# as Python literals: SyntaxError, tokenize.TokenError), json, zipfile, msgpack, struct or
# our own parsers; readers turn these into their own error naming the file.
PARSE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    EOFError,
    OSError,
    OverflowError,
    RecursionError,
    UnicodeDecodeError,
    SyntaxError,
    tokenize.TokenError,
)
