"""Saving and loading bundles: outputs, sharing, layout, memory accounting."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from bundle_models import build, make_workload, tie_all
from gemel import load_bundle, read_manifest, save_bundle
from gemel.analyze import analyze_models, build_models, find_instances
from gemel.merge import ALIGN, MergeConfig, apply_merge, block_views, shared_locations
from gemel.merge.bundle import read_header
from gemel.merge.memory import (
    bundle_memory,
    memory_of_models,
    shared_layers,
    shared_layers_of_models,
)
from gemel.workload import workload_from_dict

torch.set_num_threads(1)


def forward(models: dict[str, nn.Module], size: int = 32) -> dict[str, torch.Tensor]:
    torch.manual_seed(2)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        return {q: m(x) for q, m in models.items()}


def distinct_bytes(models: dict[str, nn.Module]) -> int:
    seen = {}
    for m in models.values():
        for t in [*m.parameters(), *m.buffers()]:
            seen[id(t)] = t.numel() * t.element_size()
    return sum(seen.values())


@pytest.fixture(scope="module")
def resnet_bundle(tmp_path_factory):
    """Two resnet18 (3 classes) with every shareable layer tied, saved once."""
    wl = workload_from_dict(
        {
            "name": "pair",
            "queries": [
                {"name": q, "model": {"arch": "resnet18", "num_classes": 3, "input_size": 32}}
                for q in ("cam1", "cam2")
            ],
        }
    )
    torch.manual_seed(0)
    models = build_models(wl)
    unmerged = forward(models)
    config = MergeConfig.from_instances(find_instances(models)[:12])
    apply_merge(models, config)
    out = tmp_path_factory.mktemp("bundle")
    save_bundle(out, models, workload=wl, config=config, extra={"note": "test"})
    return out, models, config, unmerged


@pytest.mark.slow
def test_round_trip_keeps_outputs_and_sharing(resnet_bundle):
    out, models, config, unmerged = resnet_bundle
    tied = forward(models)
    # the first member (cam1) gave every shared tensor: its outputs are its unmerged ones
    assert torch.equal(tied["cam1"], unmerged["cam1"])
    loaded = load_bundle(out)
    assert set(loaded) == {"cam1", "cam2"}
    again = forward(loaded)
    for q in models:
        assert torch.equal(again[q], tied[q])
    assert shared_locations(loaded) == shared_locations(models)
    assert len(shared_locations(loaded)) == len(config.shared) == 12
    m = read_manifest(out)
    assert m.merge == config and m.extra == {"note": "test"}


@pytest.mark.slow
def test_shared_parameters_are_one_object_and_distinct_ones_are_not(resnet_bundle):
    out, _, config, _ = resnet_bundle
    loaded = load_bundle(out)
    ids = {}
    for q, model in loaded.items():
        for name, p in model.named_parameters():
            ids.setdefault(id(p), []).append((q, name))
    shared = [users for users in ids.values() if len(users) > 1]
    expected = [
        [(q, f"{path}.{name}") for q, path in layer.members]
        for layer in config.shared
        for name, _ in loaded["cam1"].get_submodule(layer.members[0][1]).named_parameters()
    ]
    assert sorted(shared) == sorted(expected)
    assert len(ids) == 2 * len(list(loaded["cam1"].parameters())) - len(expected)
    # an in-place change to a shared parameter in one model shows in the other
    q, path = config.shared[0].members[0]
    other = config.shared[0].members[1]
    with torch.no_grad():
        loaded[q].get_submodule(path).weight.add_(1.0)
    assert torch.equal(
        loaded[q].get_submodule(path).weight, loaded[other[0]].get_submodule(other[1]).weight
    )
    # private layers stay private
    with torch.no_grad():
        loaded["cam1"].bn1.weight.add_(1.0)
    assert not torch.equal(loaded["cam1"].bn1.weight, loaded["cam2"].bn1.weight)


@pytest.mark.slow
def test_weights_file_holds_distinct_tensors_once(resnet_bundle):
    out, models, _, _ = resnet_bundle
    m = read_manifest(out)
    weights = out / m.weights
    assert sorted(p.name for p in out.iterdir()) == sorted(["manifest.json", m.weights])
    expected = distinct_bytes(models)
    assert sum(e.nbytes for e in m.tensors.values()) == expected
    assert expected <= weights.stat().st_size <= 1.01 * expected
    mem = bundle_memory(out)
    assert mem.to_json() == memory_of_models(models).to_json()
    assert mem.saved_bytes == sum(
        p.numel() * p.element_size()
        for layer in m.merge.shared
        for p in models["cam1"].get_submodule(layer.members[0][1]).parameters(recurse=False)
    )
    layers = shared_layers(out)
    assert {s.members for s in layers} == {layer.members for layer in m.merge.shared}
    assert {(s.members, s.nbytes) for s in shared_layers_of_models(models)} == {
        (s.members, s.nbytes) for s in layers
    }


def test_blocks_are_contiguous_ranges_with_aligned_mixed_dtype_tensors(tmp_path):
    wl = make_workload(
        ("a", "mixed_dtype_net", 3), ("b", "mixed_dtype_net", 3), ("c", "small_convnet", 3)
    )
    models = build(wl)
    config = tie_all(models)
    assert config.queries_touched == {"a", "b"}
    save_bundle(tmp_path, models, workload=wl, config=config)
    m = read_manifest(tmp_path)

    # one private block per query, and one for what a and b share
    assert [b.queries for b in m.blocks] == [("a",), ("b",), ("c",), ("a", "b")]
    shared_dtypes = {m.tensors[t].dtype for t in m.blocks[3].tensors}
    assert shared_dtypes == {"float16", "bfloat16", "float64"}
    private_dtypes = {m.tensors[t].dtype for t in m.blocks[0].tensors}
    assert {"int64", "int32", "bool", "float32", "bfloat16"} <= private_dtypes

    # the header of the written file agrees: block after block, nothing in between
    start, header = read_header(tmp_path / m.weights)
    pos = start
    for b in m.blocks:
        lo, hi = header[b.name]["data_offsets"]
        assert start + lo == b.offset == pos
        assert hi - lo == b.nbytes
        pos += b.nbytes
        spans = sorted((m.tensors[t].offset, m.tensors[t].nbytes) for t in b.tensors)
        for off, n in spans:
            assert (off - b.offset) % ALIGN == 0
            assert b.offset <= off and off + n <= b.offset + b.nbytes
    assert pos == (tmp_path / m.weights).stat().st_size

    # reading one block as one byte range, into an arena slice, gives every tensor of it
    raw = (tmp_path / m.weights).read_bytes()
    block = m.blocks[3]
    arena = torch.zeros(2 * ALIGN + block.nbytes, dtype=torch.uint8)
    buf = arena[ALIGN : ALIGN + block.nbytes]
    buf.copy_(
        torch.frombuffer(
            bytearray(raw[block.offset : block.offset + block.nbytes]), dtype=torch.uint8
        )
    )
    views = block_views(m, block, buf)
    for q, path in [layer.members[0] for layer in config.shared]:
        for name, p in models[q].get_submodule(path).named_parameters():
            view = views[m.queries[q].params[f"{path}.{name}"]]
            assert view.dtype == p.dtype and torch.equal(view, p)

    loaded = load_bundle(tmp_path)
    for q, model in models.items():
        got = {**dict(loaded[q].named_parameters()), **dict(loaded[q].named_buffers())}
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            assert got[name].dtype == t.dtype and torch.equal(got[name], t), name
    assert loaded["a"][0].weight is loaded["b"][0].weight


def test_manifest_describes_each_query(tmp_path):
    wl = make_workload(("a", "small_convnet", 3), ("b", "small_convnet", 4))
    models = build(wl)
    config = tie_all(models)
    save_bundle(tmp_path, models, workload=wl, config=config)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["format"] == "gemel-bundle" and data["version"] == 1
    assert data["workload"] == "t"
    a = data["queries"]["a"]
    assert a["model"]["num_classes"] == 3 and a["model"]["factory"].endswith(":small_convnet")
    assert a["task"]["kind"] == "presence" and a["input_size"] == [16, 16]
    assert a["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert set(a["params"]) == {n for n, _ in models["a"].named_parameters()}
    assert set(a["buffers"]) == {n for n, _ in models["a"].named_buffers()}
    assert a["params"]["0.weight"] == data["queries"]["b"]["params"]["0.weight"]
    assert a["params"]["1.weight"] != data["queries"]["b"]["params"]["1.weight"]
    for tid, e in data["tensors"].items():
        assert len(e["sha256"]) == 64 and tid in data["blocks"][e["block"]]["tensors"]


def test_models_with_plain_tensor_attributes_are_rebuilt_for_real(tmp_path):
    wl = make_workload(("a", "anchored_net", 3), ("b", "anchored_net", 3))
    models = build(wl)
    config = tie_all(models)
    save_bundle(tmp_path, models, workload=wl, config=config)
    loaded = load_bundle(tmp_path)
    assert loaded["a"].offsets[0].device.type == "cpu"
    want, got = forward(models, 16), forward(loaded, 16)
    for q in models:
        assert torch.equal(got[q], want[q])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_load_onto_cuda_keeps_sharing_and_outputs(tmp_path):
    wl = make_workload(("a", "small_convnet", 3), ("b", "small_convnet", 3))
    models = build(wl)
    config = tie_all(models)
    save_bundle(tmp_path, models, workload=wl, config=config)
    loaded = load_bundle(tmp_path, device="cuda")
    assert loaded["a"][0].weight.is_cuda and loaded["a"][1].running_mean.is_cuda
    assert loaded["a"][0].weight is loaded["b"][0].weight
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        for q in models:
            assert torch.allclose(loaded[q](x.cuda()).cpu(), models[q](x), atol=1e-5)
    m = read_manifest(tmp_path)
    raw = (tmp_path / m.weights).read_bytes()
    block = m.blocks[-1]
    arena = torch.zeros(block.nbytes + ALIGN, dtype=torch.uint8, device="cuda")
    buf = arena[ALIGN : ALIGN + block.nbytes]
    host = torch.frombuffer(
        bytearray(raw[block.offset : block.offset + block.nbytes]), dtype=torch.uint8
    )
    buf.copy_(host)
    views = block_views(m, block, buf)
    tid = m.queries["a"].params["0.weight"]
    assert views[tid].is_cuda and torch.equal(views[tid].cpu(), models["a"][0].weight.detach())


def test_memory_of_models_agrees_with_the_analysis_and_the_configuration():
    wl = make_workload(
        ("a", "small_convnet", 3), ("b", "small_convnet", 3), ("c", "small_convnet", 5)
    )
    models = build(wl)
    total = analyze_models(models).total_param_bytes
    before = memory_of_models(models)
    assert before.unmerged_param_bytes == before.distinct_param_bytes == total
    assert before.saved_bytes == 0
    config = tie_all(models)
    after = memory_of_models(models)
    assert after.unmerged_param_bytes == total
    assert after.saved_bytes == config.shared_bytes(models) > 0
    assert after.distinct_buffer_bytes == before.distinct_buffer_bytes
    # c shares both convolutions with a and b; its norm layers and 5-class head stay private
    private_c = [p for i in (1, 4, 8) for p in models["c"][i].parameters()]
    by_query = {q.name: q for q in after.queries}
    assert by_query["c"].private_param_bytes == sum(p.numel() * p.element_size() for p in private_c)
