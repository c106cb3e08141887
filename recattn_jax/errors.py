"""User-facing errors: bad input files and impossible configurations.

Entry points print these as one line (no traceback) and exit non-zero.
"""


class RecattnError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class DataError(RecattnError):
    """A data file is missing, empty or malformed; the message names the file and the line."""


class ConfigError(RecattnError):
    """A configuration value is impossible; the message names the key."""


class TrainingDiverged(RecattnError):
    """The loss or the parameters became NaN or infinite; nothing of the run is reported or kept as best."""


class OutOfMemory(RecattnError):
    """A training step or an evaluation needs more device memory than there is; the message names the config
    keys that size it."""


class CheckpointError(RecattnError):
    """A checkpoint on disk is truncated, corrupt or incomplete, or does not fit the model."""


def cut(token: object, limit: int = 60) -> str:
    """`repr(token)`, shortened to about `limit` characters for error messages (a bad 5 MB field stays short)."""
    text = repr(token)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 5]}...' ({len(str(token)):,} characters)"
