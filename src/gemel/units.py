"""Parsing and printing of byte sizes and durations given on the command line or in files."""

from __future__ import annotations

import re

from gemel.errors import GemelError

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_bytes(text: str | int) -> int:
    """``"2GiB"`` -> 2147483648; plain integers are bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise GemelError(f"bad size {text!r}: use e.g. 512MiB, 2GiB or a byte count")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_seconds(text: str | float) -> float:
    """``"30s"``, ``"5m"``, ``"250ms"`` or a number of seconds."""
    if isinstance(text, int | float):
        return float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _TIME_UNITS:
        raise GemelError(f"bad duration {text!r}: use e.g. 30s, 5m or 250ms")
    return float(m.group(1)) * _TIME_UNITS[m.group(2).lower()]


def format_bytes(n: float) -> str:
    """Binary units with one decimal: ``97.5 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
