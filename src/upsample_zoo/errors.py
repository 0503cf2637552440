"""Errors that the CLI reports as one line (what went wrong and how to fix it)."""


class UpsampleZooError(Exception):
    """Base class: the message is complete and user-facing; no traceback is needed."""


class ConfigError(UpsampleZooError, ValueError):
    """An invalid hyper-parameter or config combination."""


class DataError(UpsampleZooError):
    """A dataset that is missing, empty, corrupt or cannot be downloaded."""


class DivergenceError(UpsampleZooError):
    """Training produced a non-finite loss."""
