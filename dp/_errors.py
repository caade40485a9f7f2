"""The exception tree of :mod:`dp`."""


class DPError(Exception):
    """Root of every error raised by :mod:`dp`."""


class DPValueError(DPError, ValueError):
    """An argument breaks a rule; the message names the argument and the rule."""
