"""Option values shared by the commands: argument types (a bad value is a one-line usage error
at parse time) and checks that keep the option's own wording."""

from __future__ import annotations

import argparse

from gemel.errors import GemelError
from gemel.units import parse_seconds


def non_negative_int(text: str) -> int:
    """An integer >= 0 (e.g. how many rows to list)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (e.g. how many timed repeats)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_seconds(text: str, option: str) -> float:
    """The seconds of a duration such as ``30s``; an error unless positive."""
    seconds = parse_seconds(text)
    if seconds <= 0:
        raise GemelError(f"{option} must be positive, not {text!r}")
    return seconds


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
