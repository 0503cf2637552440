"""Errors that the CLI reports as one line (what went wrong and how to fix it)."""


class UpsampleZooError(Exception):
    """Base class: the message is complete and user-facing; no traceback is needed."""


class ConfigError(UpsampleZooError, ValueError):
    """An invalid hyper-parameter or config combination."""


class DataError(UpsampleZooError):
    """A dataset that is missing, empty, corrupt or cannot be downloaded."""


class DivergenceError(UpsampleZooError):
    """Training produced a non-finite loss."""


def flat(text: object) -> str:
    """``text`` on one line: runs of whitespace, newlines included, become one space."""
    return " ".join(str(text).split())


def one_line(exc: BaseException) -> str:
    """The user-facing line for an exception: our errors (anywhere in the ``__cause__`` chain: Hydra wraps a
    constructor's error in its own) carry a complete message; any other gets its type prefixed."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, UpsampleZooError):
            return flat(cause)
        cause = cause.__cause__
    msg = flat(exc)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
