"""Shared test helpers: write workload files and run the CLI in-process."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from gemel.cli import main


@dataclass
class CliResult:
    """Exit status and captured output of one in-process ``gemel`` call."""

    status: int
    out: str
    err: str

    def assert_error(self, *phrases: str) -> None:
        """Exit status 2, nothing on stdout, and one ``gemel: error:`` line (``gemel CMD: error:``
        for a usage error) holding ``phrases``."""
        assert self.status == 2
        assert self.out == ""
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert re.match(r"gemel( [a-z]+)?: error: ", lines[0]), lines[0]
        assert "Traceback" not in self.err
        for phrase in phrases:
            assert phrase in lines[0], (phrase, lines[0])


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh ``GEMEL_CACHE`` shared by one test module, and torch on one thread (the models
    are tiny; more threads only fight over a loaded machine)."""
    torch.set_num_threads(1)
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEMEL_CACHE", str(cache))
        yield cache


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
    """Run ``gemel ARGS...`` in-process; returns its status and captured stdout/stderr (a usage
    error's exit status too)."""

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        try:
            status = main([str(a) for a in args])
        except SystemExit as e:
            status = e.code
        captured = capsys.readouterr()
        return CliResult(status, captured.out, captured.err)

    return run
