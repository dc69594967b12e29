"""Workload files: what is accepted, what defaults apply, and the one-line errors on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemel.errors import GemelError
from gemel.workload import (
    DEFAULT_MEAN,
    Defaults,
    SyntheticSource,
    VideoSource,
    load_workload,
    workload_from_dict,
)

MINIMAL = {
    "name": "w",
    "queries": [{"name": "cam1", "model": {"arch": "resnet50", "num_classes": 2}}],
}

FULL = """\
name: demo
description: every part of the schema
stage_budget_s: {data: 30, train: 200}
defaults:
  target: 0.9
  fps: 5
  sla_ms: 250
  train: {epochs: 3, batch_size: 16, lr: 0.01, weight_decay: 0.0}
splits: {train: 0.5, val: 0.25, test: 0.25}
sources:
  cam0: {kind: synthetic, camera: 2, seed: 7, frames: 500, resolution: [64, 48], fps: 5}
  gate: {kind: video, path: clips/gate.mp4, labels: clips/gate.labels.jsonl, fps: 5}
queries:
  - name: cam0-car
    source: cam0
    task: {kind: presence, classes: [car]}
    model:
      arch: resnet18
      num_classes: 2
      checkpoint: ckpt/cam0-car.pt
      input_size: 64
      normalization: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}
      kwargs: {zero_init_residual: true}
    target: 0.97
    fps: 10
    sla_ms: 100
    train: {epochs: 8}
  - name: gate-count
    source: gate
    task: {kind: count, classes: [person, bicycle], buckets: [0, 1, 3]}
    model: {factory: "mypkg.models:tiny"}
"""


def test_minimal_file_of_the_design_notes_is_accepted(write_workload, gemel_cli):
    path = write_workload(MINIMAL)
    wl = load_workload(path)
    assert wl.query_names == ["cam1"]
    q = wl.query("cam1")
    assert (q.model.arch, q.model.num_classes, q.source, q.task) == ("resnet50", 2, None, None)
    assert wl.path == path
    result = gemel_cli("analyze", path)
    assert result.status == 0, result.err
    assert result.err == ""


def test_defaults_fill_what_a_query_leaves_out(write_workload):
    wl = load_workload(write_workload(MINIMAL))
    q = wl.queries[0]
    d = Defaults()
    assert wl.target_of(q) == d.target == 0.95
    assert wl.fps_of(q) == d.fps
    assert wl.sla_ms_of(q) == d.sla_ms
    assert wl.train_of(q) == d.train
    assert q.model.normalization.mean == DEFAULT_MEAN
    with pytest.raises(GemelError, match=r"query 'cam1': field 'source' is required"):
        wl.source_of(q)
    with pytest.raises(GemelError, match=r"query 'cam1': field 'task' is required"):
        wl.task_of(q)
    with pytest.raises(GemelError, match="no query named 'cam9'"):
        wl.query("cam9")


def test_full_schema_loads_with_overrides_and_relative_paths(write_workload, tmp_path):
    wl = load_workload(write_workload(FULL))
    car, count = wl.queries
    assert wl.stage_budget_s == {"data": 30, "train": 200}
    assert (wl.target_of(car), wl.fps_of(car), wl.sla_ms_of(car)) == (0.97, 10, 100)
    assert (wl.target_of(count), wl.fps_of(count), wl.sla_ms_of(count)) == (0.9, 5, 250)
    assert wl.train_of(car).epochs == 8
    assert wl.train_of(count).epochs == 3
    assert (wl.splits.train, wl.splits.val, wl.splits.test) == (0.5, 0.25, 0.25)
    cam0 = wl.source_of(car)
    assert isinstance(cam0, SyntheticSource)
    assert (cam0.camera, cam0.seed, cam0.frames, cam0.resolution) == (2, 7, 500, (64, 48))
    gate = wl.source_of(count)
    assert isinstance(gate, VideoSource)
    # relative paths are relative to the workload file, not the working directory
    assert gate.path == tmp_path / "clips/gate.mp4"
    assert gate.labels == tmp_path / "clips/gate.labels.jsonl"
    assert car.model.checkpoint == tmp_path / "ckpt/cam0-car.pt"
    assert car.model.input_size == (64, 64)  # one int means a square
    assert car.model.kwargs == {"zero_init_residual": True}
    assert wl.task_of(count).buckets == (0, 1, 3)
    assert count.model.factory == "mypkg.models:tiny"
    assert count.model.label == "mypkg.models:tiny"


def test_workload_without_a_file_is_labelled_by_its_name():
    wl = workload_from_dict(MINIMAL)
    assert wl.path is None
    assert wl.label == "w"
    with pytest.raises(GemelError, match=r"^workload: field 'queries'"):
        workload_from_dict({"name": "w", "queries": []})


def _query(**extra) -> dict:
    return {"name": "cam1", "model": {"arch": "resnet18"}, **extra}


def _with(query_changes: dict | None = None, **top) -> dict:
    return {"name": "w", "queries": [_query(**(query_changes or {}))], **top}


# (workload, the query the message names or None, the field it names, a phrase of the reason)
BAD_WORKLOADS = {
    "unknown top-level key": ({**MINIMAL, "querys": []}, None, "querys", "unknown key"),
    "unknown query key": (_with({"fsp": 10}), "cam1", "fsp", "unknown key"),
    "unknown model key": (
        _with({"model": {"arch": "resnet18", "classes": 2}}),
        "cam1",
        "model.classes",
        "unknown key",
    ),
    "unknown task key": (
        _with({"task": {"kind": "presence", "classes": ["car"], "colour": "red"}}),
        "cam1",
        "task.colour",
        "unknown key",
    ),
    "unknown source key": (
        _with(sources={"cam0": {"kind": "synthetic", "camra": 1}}),
        None,
        "sources.cam0.camra",
        "unknown key",
    ),
    "unknown task kind": (
        _with({"task": {"kind": "segmentation", "classes": ["car"]}}),
        "cam1",
        "task.kind",
        "presence",
    ),
    "duplicate query names": (
        {"name": "w", "queries": [_query(), _query()]},
        "cam1",
        "name",
        "duplicate query name",
    ),
    "unknown source reference": (_with({"source": "cam7"}), "cam1", "source", "'cam7'"),
    "arch and factory together": (
        _with({"model": {"arch": "resnet18", "factory": "a.b:c"}}),
        "cam1",
        "model",
        "exactly one of 'arch' or 'factory'",
    ),
    "neither arch nor factory": (
        _with({"model": {"num_classes": 2}}),
        "cam1",
        "model",
        "exactly one of 'arch' or 'factory'",
    ),
    "factory without a function": (
        _with({"model": {"factory": "mypkg.models"}}),
        "cam1",
        "model.factory",
        "pkg.module:function",
    ),
    "num_classes not a number": (
        _with({"model": {"arch": "resnet18", "num_classes": "two"}}),
        "cam1",
        "model.num_classes",
        "integer",
    ),
    "negative input size": (
        _with({"model": {"arch": "resnet18", "input_size": [64, -1]}}),
        "cam1",
        "model.input_size",
        "positive",
    ),
    "count task without buckets": (
        _with({"task": {"kind": "count", "classes": ["car"]}}),
        "cam1",
        "task",
        "buckets",
    ),
    "target above one": (_with({"target": 1.5}), "cam1", "target", "less than or equal to 1"),
    "splits that do not sum to one": (
        _with(splits={"train": 0.5, "val": 0.2, "test": 0.2}),
        None,
        "splits",
        "sum to 1",
    ),
    "missing model": (
        {"name": "w", "queries": [{"name": "cam1"}]},
        "cam1",
        "model",
        "Field required",
    ),
    "bad query name": (
        {"name": "w", "queries": [{"name": "cam 1/x", "model": {"arch": "resnet18"}}]},
        "cam 1/x",
        "name",
        "pattern",
    ),
}


@pytest.mark.parametrize("case", list(BAD_WORKLOADS), ids=list(BAD_WORKLOADS))
def test_bad_workload_gives_one_line_naming_file_query_and_field(case, write_workload, gemel_cli):
    data, query, field, reason = BAD_WORKLOADS[case]
    path = write_workload(data)
    phrases = [str(path), f"field '{field}'", reason]
    if query is not None:
        phrases.append(f"query {query!r}")
    gemel_cli("analyze", path).assert_error(*phrases)
    with pytest.raises(GemelError):
        load_workload(path)


def test_error_names_a_nameless_query_by_its_position(write_workload, gemel_cli):
    path = write_workload({"name": "w", "queries": [_query(), {"model": {"arch": "resnet18"}}]})
    gemel_cli("analyze", path).assert_error("queries[1]", "field 'name'")


def test_several_problems_report_the_first_and_count_the_rest(write_workload, gemel_cli):
    path = write_workload(_with({"fsp": 1, "sla": 2, "tagret": 3}))
    gemel_cli("analyze", path).assert_error("query 'cam1'", "(and 2 more)")


@pytest.mark.parametrize(
    ("text", "line", "phrase"),
    [
        # a tab cannot start a token: the bad character is on line 4
        ("name: w\nqueries:\n  - name: cam1\n\tmodel: {arch: resnet18}\n", 4, "'\\t'"),
        # an unclosed flow mapping: the parser notices at the next key, on line 5
        ("name: w\nqueries:\n  - name: cam1\n    model: {arch: resnet18\n  - name: x\n", 5, ""),
        # a second value for a key on the same line
        ("name: w: x\nqueries: []\n", 1, "mapping values are not allowed"),
        # a key given twice, which YAML itself would silently resolve to the last value
        (
            "name: w\nqueries:\n  - name: cam1\n    model: {arch: resnet18}\n"
            "    model: {arch: vgg16}\n",
            5,
            "duplicate key 'model'",
        ),
    ],
    ids=["tab", "unclosed-brace", "mapping-value", "duplicate-key"],
)
def test_yaml_syntax_error_names_the_line(text, line, phrase, write_workload, gemel_cli):
    path = write_workload(text)
    gemel_cli("analyze", path).assert_error(f"{path}: line {line}: YAML syntax error", phrase)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [("", "expected a mapping"), ("- a\n- b\n", "expected a mapping"), ("name: w\n", "queries")],
    ids=["empty", "list", "no-queries"],
)
def test_file_that_is_not_a_workload(text, phrase, write_workload, gemel_cli):
    path = write_workload(text)
    gemel_cli("analyze", path).assert_error(str(path), phrase)


def test_missing_and_unreadable_workload_files(tmp_path, gemel_cli):
    missing = tmp_path / "nope.yaml"
    gemel_cli("analyze", missing).assert_error(str(missing), "not found")
    gemel_cli("analyze", tmp_path).assert_error(str(tmp_path), "cannot read")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name")
    gemel_cli("analyze", binary).assert_error(str(binary), "cannot read")


def test_workload_is_frozen_plain_data(write_workload):
    wl = load_workload(write_workload(FULL))
    with pytest.raises(Exception, match="frozen"):
        wl.queries[0].target = 0.5
    dumped = wl.model_dump(mode="json")
    assert "path" not in dumped
    again = workload_from_dict(dumped, Path(wl.path))
    assert again.queries == wl.queries
    assert again.sources == wl.sources
