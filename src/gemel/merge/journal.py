"""The merge journal: an append-only record of every step's outcome, for ``--resume``.

One JSON object per line in ``journal.jsonl`` of the output folder: first a ``start`` record
with the run's settings, then one ``step`` record per finished step, written (and fsynced)
after the step's bundle is published. A line torn by a crash is dropped when the journal is
reopened, so a resumed run repeats that step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gemel.errors import GemelError

JOURNAL_NAME = "journal.jsonl"


class Journal:
    """Append-only JSON-lines journal of a merge run."""

    def __init__(self, path: Path, header: dict[str, Any], steps: list[dict[str, Any]]) -> None:
        self.path = path
        self.header = header
        self.steps = steps

    @classmethod
    def open(cls, out_dir: str | Path, header: dict[str, Any], *, resume: bool) -> Journal:
        """Start a journal in ``out_dir``, or with ``resume`` continue the one there.

        A journal without any finished step may be started over; one with steps only resumed.

        A resumed journal must have been started with the same ``header`` (strategy, seed,
        settings), else the run could not end where an uninterrupted one would.
        """
        path = Path(out_dir) / JOURNAL_NAME
        if not resume:
            if path.exists() and any(r.get("kind") == "step" for r in _read(path)):
                raise GemelError(
                    f"{out_dir}: already holds a merge run; pass --resume or choose another --out"
                )
            path.unlink(missing_ok=True)  # a run that ended before its first step
            path.parent.mkdir(parents=True, exist_ok=True)
            journal = cls(path, header, [])
            journal._write({"kind": "start", **header})
            return journal
        if not path.exists():
            raise GemelError(f"{out_dir}: no merge journal to resume ({JOURNAL_NAME} missing)")
        records = _read(path)
        if not records or records[0].get("kind") != "start":
            raise GemelError(f"{path}: not a merge journal (no start record)")
        started = {k: v for k, v in records[0].items() if k != "kind"}
        changed = sorted(k for k in set(started) | set(header) if started.get(k) != header.get(k))
        if changed:
            k = changed[0]
            raise GemelError(
                f"{path}: cannot resume: {k} was {started.get(k)!r}, now {header.get(k)!r}"
            )
        return cls(path, header, [r for r in records[1:] if r.get("kind") == "step"])

    def step(self, index: int) -> dict[str, Any] | None:
        """The record of step ``index``, if it finished before."""
        return self.steps[index] if index < len(self.steps) else None

    def append_step(self, record: dict[str, Any]) -> None:
        """Record a finished step (durably)."""
        record = {"kind": "step", **record}
        self._write(record)
        self.steps.append(record)

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _read(path: Path) -> list[dict[str, Any]]:
    """Records of a journal file; a torn last line (no newline yet) is cut off the file."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        with open(path, "r+b") as f:
            f.truncate(len(complete))
    records: list[dict[str, Any]] = []
    for n, line in enumerate(complete.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            raise GemelError(f"{path}: line {n} is not JSON") from None
    return records
