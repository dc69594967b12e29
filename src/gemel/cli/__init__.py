"""The ``gemel`` command: a thin layer over the Python API.

Each area registers its subcommands from its own module; every command maps its options onto
the arguments of one API function. A :class:`~gemel.errors.GemelError` becomes a one-line
message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from gemel import __version__
from gemel.cli import (
    analyze_cmd,
    demo_cmd,
    diff_cmd,
    evaluate_cmd,
    inspect_cmd,
    label_cmd,
    merge_cmd,
    profile_cmd,
    report_cmd,
    run_cmd,
    simulate_cmd,
    train_cmd,
)
from gemel.errors import GemelError

COMMAND_MODULES = (
    analyze_cmd,
    label_cmd,
    train_cmd,
    inspect_cmd,
    diff_cmd,
    profile_cmd,
    run_cmd,
    simulate_cmd,
    merge_cmd,
    evaluate_cmd,
    demo_cmd,
    report_cmd,
)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line naming the command's help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (all subcommands)."""
    parser = OneLineParser(
        prog="gemel", description="Merge edge video-analytics models so they fit one GPU."
    )
    parser.add_argument("--version", action="version", version=f"gemel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GemelError as e:
        print(f"gemel: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gemel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
