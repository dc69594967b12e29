"""``gemel.io``: atomic writes never replace a folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemel.errors import GemelError
from gemel.io import check_output_file, write_json_atomic


def test_an_output_file_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "kept").mkdir(parents=True)
    with pytest.raises(GemelError, match="is a folder; --json needs a file path"):
        check_output_file(folder, "--json")
    with pytest.raises(GemelError, match="is a folder, not a file path"):
        write_json_atomic(folder, {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary file left
    assert (folder / "kept").is_dir()
    check_output_file(tmp_path / "new.json", "--json")
    write_json_atomic(tmp_path / "new.json", {"a": 1})
    assert (tmp_path / "new.json").read_text() == '{\n  "a": 1\n}\n'
