"""``gemel inspect`` and ``gemel diff`` on small bundles."""

from __future__ import annotations

import json

import pytest
import torch

from bundle_models import build, make_workload, tie_all
from gemel import read_manifest, save_bundle
from gemel.analyze import find_instances
from gemel.merge import MergeConfig, apply_merge
from gemel.merge.diff import diff_bundles

torch.set_num_threads(1)


@pytest.fixture
def two_bundles(tmp_path):
    """Bundle A, and bundle B: the same models after b's first norm layer changed."""
    wl = make_workload(("a", "small_convnet", 3), ("b", "small_convnet", 3))
    models = build(wl)
    config = tie_all(models)
    save_bundle(tmp_path / "A", models, workload=wl, config=config)
    with torch.no_grad():
        models["b"][1].weight.add_(0.5)
    save_bundle(tmp_path / "B", models, workload=wl, config=config)
    return tmp_path / "A", tmp_path / "B", models


def test_inspect_prints_and_writes_memory_and_sharing(two_bundles, gemel_cli, tmp_path):
    a, _, models = two_bundles
    res = gemel_cli("inspect", a, "--json", tmp_path / "inspect.json")
    assert res.status == 0, res.err
    assert "shared layers" in res.out and "saves" in res.out
    data = json.loads((tmp_path / "inspect.json").read_text())
    per_model = sum(p.numel() * p.element_size() for p in models["a"].parameters())
    shared = sum(
        p.numel() * p.element_size()
        for path in ("0", "3", "8")
        for p in models["a"].get_submodule(path).parameters()
    )
    assert data["unmerged_param_bytes"] == 2 * per_model
    assert data["distinct_param_bytes"] == 2 * per_model - shared
    assert data["saved_bytes"] == shared
    assert data["queries"]["a"]["shared_param_bytes"] == shared
    assert {tuple(map(tuple, s["members"])) for s in data["shared_layers"]} == {
        (("a", p), ("b", p)) for p in ("0", "3", "8")
    }
    stdout = gemel_cli("inspect", a, "--json", "-")
    assert json.loads(stdout.out) == data


def test_diff_names_the_changed_block_and_the_bytes_to_fetch(two_bundles, gemel_cli, tmp_path):
    a, b, _ = two_bundles
    res = gemel_cli("diff", a, b, "--json", tmp_path / "diff.json")
    assert res.status == 0, res.err
    assert "fetches" in res.out
    data = json.loads((tmp_path / "diff.json").read_text())
    mb = read_manifest(b)
    private_b = next(blk for blk in mb.blocks if blk.queries == ("b",))
    status = {tuple(blk["queries"]): blk["status"] for blk in data["blocks"]}
    assert status == {("a",): "same", ("b",): "changed", ("a", "b"): "same"}
    assert data["fetch_bytes"] == private_b.nbytes
    [tensor] = data["tensors"]
    assert tensor["used_by"] == ["b:1.weight"] and tensor["status"] == "changed"
    assert data["changed_tensor_bytes"] == mb.tensors[tensor["tensor"]].nbytes
    same = diff_bundles(a, a)
    assert same.identical and same.fetch_bytes == 0


def test_diff_after_sharing_more_layers(tmp_path):
    wl = make_workload(("a", "small_convnet", 3), ("b", "small_convnet", 3))
    models = build(wl)
    instances = find_instances(models)
    first = MergeConfig.from_instances(instances[:1])
    apply_merge(models, first)
    save_bundle(tmp_path / "A", models, workload=wl, config=first)
    grown = first.add(instances[1:])
    apply_merge(models, grown)
    save_bundle(tmp_path / "B", models, workload=wl, config=grown)
    diff = diff_bundles(tmp_path / "A", tmp_path / "B")
    # the shared block grew, the private blocks of 'b' lost layers; 'a' kept its tensors
    by_queries = {blk.queries: blk.status for blk in diff.blocks}
    assert by_queries[("a", "b")] == "changed"
    assert by_queries[("a",)] == "changed"  # a's layers moved out of its private block
    assert diff.changed_tensor_bytes == 0  # every tensor of B existed in A (taken from 'a')
    assert diff.fetch_bytes == sum(blk.nbytes for blk in read_manifest(tmp_path / "B").blocks)


def test_bad_bundle_paths_fail_with_one_line(gemel_cli, tmp_path):
    res = gemel_cli("inspect", tmp_path / "nope")
    assert res.status == 2
    assert res.err.strip().count("\n") == 0 and "bundle folder not found" in res.err
    res = gemel_cli("diff", tmp_path, tmp_path)
    assert res.status == 2 and "manifest.json is missing" in res.err


def test_json_into_a_folder_is_refused(two_bundles, gemel_cli, tmp_path):
    a, b, _ = two_bundles
    for args in (("inspect", a), ("diff", a, b)):
        res = gemel_cli(*args, "--json", tmp_path)
        assert res.status == 2 and "is a folder" in res.err
        gemel_cli(*args, "--top", "-1").assert_error("argument --top: must be 0 or more, not -1")
