"""Shared test helpers: write workload files and run the CLI in-process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from gemel.cli import main


@dataclass
class CliResult:
    """Exit status and captured output of one in-process ``gemel`` call."""

    status: int
    out: str
    err: str


@pytest.fixture
def write_workload(tmp_path: Path) -> Callable[..., Path]:
    """Write a workload (a dict, dumped as YAML, or raw YAML text) to a file in ``tmp_path``."""

    def write(content: dict | str, name: str = "workload.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        return path

    return write


@pytest.fixture
def gemel_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``gemel ARGS...`` in-process; returns its status and captured stdout/stderr."""

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        status = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(status, captured.out, captured.err)

    return run
