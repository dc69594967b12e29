"""The one exception type that carries a user-facing message."""


class GemelError(Exception):
    """Bad input or an unrecoverable condition the user can fix.

    The CLI prints the message on one line and exits with status 2; nothing else in gemel
    catches it.
    """
