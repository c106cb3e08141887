"""User-facing errors: bad input files and impossible configurations.

Entry points print these as one line (no traceback) and exit non-zero.
"""


class RecattnError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class DataError(RecattnError):
    """A data file is missing, empty or malformed; the message names the file and the line."""


class ConfigError(RecattnError):
    """A configuration value is impossible; the message names the key."""
