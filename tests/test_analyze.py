"""Signatures, instances, groups and memory on small hand-built models, worked out by hand.

Sizes used below (float32, 4 bytes per value):
- Conv2d(3, 8, 3):  8*3*3*3 weights + 8 bias = 224 values =  896 bytes
- Conv2d(8, 8, 3):  8*8*3*3 weights + 8 bias = 584 values = 2336 bytes
- Linear(8, 4):     8*4 weights     + 4 bias =  36 values =  144 bytes
- BatchNorm2d(8):   8 weight        + 8 bias =  16 values =   64 bytes (+ buffers)
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

import gemel
from gemel.analyze import (
    Instance,
    analyze_models,
    find_instances,
    is_shareable,
    make_groups,
    shareable_layers,
    signature_of,
)
from gemel.workload import load_workload

CONV3 = 896
CONV8 = 2336
LIN = 144
BN = 64


def _three_models() -> dict[str, nn.Module]:
    """A: conv3, bn, conv8, conv8, linear.  B: conv3, conv8, linear.  C: conv8 x3."""
    torch.manual_seed(0)
    return {
        "A": nn.Sequential(
            nn.Conv2d(3, 8, 3),
            nn.BatchNorm2d(8),
            nn.Conv2d(8, 8, 3),
            nn.Conv2d(8, 8, 3),
            nn.Linear(8, 4),
        ),
        "B": nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Linear(8, 4)),
        "C": nn.Sequential(nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3)),
    }


def test_signature_is_type_hyperparameters_shapes_and_dtypes():
    base = signature_of(nn.Conv2d(3, 8, 3))
    assert base == signature_of(nn.Conv2d(3, 8, 3))  # fresh weights, same signature
    assert base.kind == "Conv2d"
    assert base.nbytes == CONV3
    different = [
        nn.Conv2d(3, 8, 3, stride=2),
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Conv2d(3, 8, 3, dilation=2),
        nn.Conv2d(3, 8, 3, bias=False),
        nn.Conv2d(3, 8, 3, padding_mode="reflect"),
        nn.Conv2d(3, 8, 5),
        nn.Conv2d(3, 16, 3),
        nn.Conv2d(3, 8, 3).half(),
        nn.ConvTranspose2d(3, 8, 3),
    ]
    for module in different:
        assert signature_of(module) != base, module
    assert signature_of(nn.Conv2d(8, 8, 3, groups=2)) != signature_of(nn.Conv2d(8, 8, 3))
    assert signature_of(nn.Linear(8, 4)).nbytes == LIN
    assert signature_of(nn.Linear(8, 4, bias=False)).nbytes == 8 * 4 * 4
    assert signature_of(nn.Linear(8, 4)) != signature_of(nn.Linear(8, 4, bias=False))
    assert signature_of(nn.Linear(8, 4).half()).nbytes == LIN // 2
    assert signature_of(nn.Linear(8, 4).double()).nbytes == LIN * 2
    assert signature_of(nn.Linear(8, 4, device="meta")) == signature_of(nn.Linear(8, 4))


def test_only_convolutions_and_linear_layers_are_shareable():
    shareable = [
        nn.Conv1d(2, 2, 3),
        nn.Conv2d(2, 2, 3),
        nn.Conv3d(2, 2, 3),
        nn.ConvTranspose1d(2, 2, 3),
        nn.ConvTranspose2d(2, 2, 3),
        nn.ConvTranspose3d(2, 2, 3),
        nn.Linear(2, 2),
    ]
    private = [
        nn.BatchNorm1d(2),
        nn.BatchNorm2d(2),
        nn.LayerNorm(2),
        nn.GroupNorm(1, 2),
        nn.InstanceNorm2d(2, affine=True),
        nn.Embedding(4, 2),
        nn.PReLU(),
        nn.LazyLinear(2),
        nn.Sequential(nn.Linear(2, 2)),
    ]
    assert all(is_shareable(m) for m in shareable)
    assert not any(is_shareable(m) for m in private)


def test_shareable_layers_in_module_order_with_paths():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 8, bias=False)),
    )
    assert [p for p, _ in shareable_layers(model)] == ["0", "2.0", "2.2"]


def test_instances_pair_repeated_layers_in_module_order():
    instances = find_instances(_three_models())
    found = [(inst.kind, inst.members, inst.nbytes, inst.savings) for inst in instances]
    # conv8: A has 2 (paths 2, 3), B has 1 (path 1), C has 3 (paths 0, 1, 2).
    # rank 0 -> A:2, B:1, C:0; rank 1 -> A:3, C:1; rank 2 -> C:2 alone, so no instance.
    # conv3 and linear pair A with B. Heaviest saving first.
    assert found == [
        ("Conv2d", (("A", "2"), ("B", "1"), ("C", "0")), CONV8, 2 * CONV8),
        ("Conv2d", (("A", "3"), ("C", "1")), CONV8, CONV8),
        ("Conv2d", (("A", "0"), ("B", "0")), CONV3, CONV3),
        ("Linear", (("A", "4"), ("B", "2")), LIN, LIN),
    ]
    for inst in instances:
        queries = [q for q, _ in inst.members]
        assert len(queries) == len(set(queries))  # never two locations of one model


def test_one_model_alone_has_no_instances():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8))
    assert find_instances({"solo": model}) == []
    analysis = analyze_models({"solo": model})
    assert analysis.max_savings_bytes == 0
    assert analysis.queries[0].mergeable_bytes == 0
    assert analysis.queries[0].shareable_bytes == 3 * (8 * 8 + 8) * 4


def test_norm_layers_are_never_in_an_instance():
    models = {
        q: nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.BatchNorm1d(4)) for q in ("x", "y")
    }
    instances = find_instances(models)
    assert [inst.members for inst in instances] == [(("x", "0"), ("y", "0"))]


def test_memory_per_query_and_the_bound():
    analysis = analyze_models(_three_models(), "hand")
    stats = {q.name: q for q in analysis.queries}
    assert stats["A"].param_bytes == CONV3 + BN + 2 * CONV8 + LIN
    assert stats["B"].param_bytes == CONV3 + CONV8 + LIN
    assert stats["C"].param_bytes == 3 * CONV8
    # BatchNorm2d(8) buffers: running mean and var (8 float32 each) + num_batches_tracked (int64)
    assert stats["A"].buffer_bytes == 8 * 4 * 2 + 8
    assert stats["B"].buffer_bytes == 0
    assert stats["A"].shareable_bytes == CONV3 + 2 * CONV8 + LIN
    assert stats["C"].shareable_bytes == 3 * CONV8
    assert stats["A"].mergeable_bytes == CONV3 + 2 * CONV8 + LIN
    assert stats["C"].mergeable_bytes == 2 * CONV8  # its third conv8 has no partner
    assert stats["A"].params == (CONV3 + BN + 2 * CONV8 + LIN) // 4
    assert stats["A"].model == "Sequential"
    assert (
        analysis.total_param_bytes
        == (CONV3 + BN + 2 * CONV8 + LIN) + (CONV3 + CONV8 + LIN) + 3 * CONV8
    )
    assert analysis.max_savings_bytes == 2 * CONV8 + CONV8 + CONV3 + LIN
    assert analysis.max_savings_fraction == pytest.approx(
        analysis.max_savings_bytes / analysis.total_param_bytes
    )


def test_half_precision_counts_half_and_does_not_pair_with_float32():
    full = {q: nn.Sequential(nn.Linear(8, 4)) for q in ("x", "y")}
    half = {q: nn.Sequential(nn.Linear(8, 4)).half() for q in ("x", "y")}
    assert analyze_models(full).max_savings_bytes == LIN
    assert analyze_models(half).max_savings_bytes == LIN // 2
    assert analyze_models(half).total_param_bytes == LIN  # two models, half each
    mixed = {"x": full["x"], "y": half["y"]}
    assert find_instances(mixed) == []


def test_parameters_shared_inside_one_model_count_once():
    layer = nn.Linear(8, 4)
    model = nn.Sequential(layer, nn.ReLU(), layer)  # the same module twice
    analysis = analyze_models({"m": model, "n": nn.Sequential(nn.Linear(8, 4))})
    stats = {q.name: q for q in analysis.queries}
    assert stats["m"].param_bytes == LIN
    assert [inst.members for inst in analysis.instances] == [(("m", "0"), ("n", "0"))]


def _linears(*sizes: int) -> nn.Sequential:
    return nn.Sequential(*(nn.Linear(s, s) for s in sizes))


def test_groups_are_runs_of_one_kind_over_one_query_set():
    # savings (bytes) of an instance of two members = one layer's bytes:
    # Linear(64,64): 4160*4 = 16640; Linear(60,60): 3660*4 = 14640;
    # Conv2d(16,16,3): 2320*4 = 9280;  Linear(8,8): 72*4 = 288
    def model() -> nn.Sequential:
        return nn.Sequential(_linears(64, 60), nn.Conv2d(16, 16, 3), nn.Linear(8, 8))

    groups = make_groups(find_instances({"a": model(), "b": model()}))
    assert [(g.index, g.kind, len(g.instances), g.savings) for g in groups] == [
        (0, "Linear", 2, 16640 + 14640),
        (1, "Conv2d", 1, 9280),
        (2, "Linear", 1, 288),
    ]
    assert all(g.queries == {"a", "b"} for g in groups)

    # a third model with only Linear(60,60) makes that instance the heaviest (2 x 14640) and
    # splits it from Linear(64,64): same kind, different query sets.
    groups = make_groups(find_instances({"a": model(), "b": model(), "c": _linears(60)}))
    assert [(g.kind, sorted(g.queries), g.savings) for g in groups] == [
        ("Linear", ["a", "b", "c"], 2 * 14640),
        ("Linear", ["a", "b"], 16640),
        ("Conv2d", ["a", "b"], 9280),
        ("Linear", ["a", "b"], 288),
    ]


def test_make_groups_keeps_the_given_order():
    instances = find_instances(_three_models())
    groups = make_groups(instances)
    assert [i for g in groups for i in g.instances] == list(instances)
    assert [g.index for g in groups] == list(range(len(groups)))
    same = Instance(instances[0].signature, instances[0].members)
    assert [len(g.instances) for g in make_groups([instances[0], same])] == [2]
    assert make_groups([]) == ()


FACTORY_MODULE = "gemel_test_analyze_factories"
FACTORIES = """
from torch import nn


def a():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 3),
        nn.Conv2d(8, 8, 3),
        nn.Linear(8, 4),
    )


def b():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Linear(8, 4))


def c():
    return nn.Sequential(nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3))
"""


@pytest.fixture
def hand_workload(tmp_path, monkeypatch, write_workload):
    """The three hand-built models as a workload of factories (C from a float16 checkpoint)."""
    (tmp_path / f"{FACTORY_MODULE}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, FACTORY_MODULE, raising=False)
    return write_workload(
        {
            "name": "hand",
            "queries": [
                {"name": q, "model": {"factory": f"{FACTORY_MODULE}:{q.lower()}"}}
                for q in ("A", "B", "C")
            ],
        }
    )


def test_analyze_json_contract(hand_workload, tmp_path, gemel_cli):
    out = tmp_path / "out" / "analysis.json"
    result = gemel_cli("analyze", hand_workload, "--json", out)
    assert result.status == 0, result.err
    data = json.loads(out.read_text())
    assert data["total_param_bytes"] == (CONV3 + BN + 2 * CONV8 + LIN) + (CONV3 + CONV8 + LIN) + (
        3 * CONV8
    )
    assert data["max_savings_bytes"] == 3 * CONV8 + CONV3 + LIN
    assert [(i["bytes"], i["members"]) for i in data["instances"]] == [
        (CONV8, [["A", "2"], ["B", "1"], ["C", "0"]]),
        (CONV8, [["A", "3"], ["C", "1"]]),
        (CONV3, [["A", "0"], ["B", "0"]]),
        (LIN, [["A", "4"], ["B", "2"]]),
    ]
    assert [i["savings_bytes"] for i in data["instances"]] == [2 * CONV8, CONV8, CONV3, LIN]
    assert set(data["queries"]) == {"A", "B", "C"}
    assert data["queries"]["B"]["param_bytes"] == CONV3 + CONV8 + LIN
    assert [g["queries"] for g in data["groups"]] == [
        ["A", "B", "C"],
        ["A", "C"],
        ["A", "B"],
        ["A", "B"],
    ]
    assert sorted(p.name for p in out.parent.iterdir()) == ["analysis.json"]  # no temp files
    assert "max merge" in result.out


def test_analyze_table_and_groups_output(hand_workload, gemel_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")  # the table's width, whatever the caller's terminal
    result = gemel_cli("analyze", hand_workload)
    assert result.status == 0, result.err
    total = (CONV3 + BN + 2 * CONV8 + LIN) + (CONV3 + CONV8 + LIN) + 3 * CONV8
    saved = 3 * CONV8 + CONV3 + LIN
    assert f"saves {saved / 1024:.1f} KiB of {total / 1024:.1f} KiB" in result.out
    assert f"({100 * saved / total:.1f}%)" in result.out
    assert "heaviest 4 of 4 instances" in result.out
    assert "A:2, B:1, C:0" in result.out

    result = gemel_cli("analyze", hand_workload, "--groups")
    assert result.status == 0, result.err
    assert "4 groups in planner order" in result.out
    rows = [line for line in result.out.splitlines() if "Conv2d" in line or "Linear" in line]
    assert [("Conv2d" in r, r.split("│")[4].strip()) for r in rows] == [
        (True, "A, B, C"),
        (True, "A, C"),
        (True, "A, B"),
        (False, "A, B"),
    ]


def test_analyze_json_to_a_folder_is_refused(hand_workload, tmp_path, gemel_cli):
    result = gemel_cli("analyze", hand_workload, "--json", tmp_path)
    assert result.status == 2
    assert f"{tmp_path}: is a folder" in result.err


def test_analyze_negative_top_is_refused(hand_workload, gemel_cli):
    result = gemel_cli("analyze", hand_workload, "--top", "-1")
    result.assert_error("--top: must be 0 or more, not -1")


def test_python_api_groups(hand_workload):
    analysis = gemel.analyze(load_workload(hand_workload))
    assert analysis.workload == "hand"
    assert [(g.kind, sorted(g.queries), g.savings) for g in analysis.groups] == [
        ("Conv2d", ["A", "B", "C"], 2 * CONV8),
        ("Conv2d", ["A", "C"], CONV8),
        ("Conv2d", ["A", "B"], CONV3),
        ("Linear", ["A", "B"], LIN),
    ]
    assert analysis.to_json()["groups"][0] == {
        "index": 0,
        "kind": "Conv2d",
        "queries": ["A", "B", "C"],
        "savings_bytes": 2 * CONV8,
        "instances": 1,
    }
    assert "groups" not in analysis.to_json(with_groups=False)


def test_float16_checkpoint_counts_half(hand_workload, tmp_path, write_workload):
    c = nn.Sequential(nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3)).half()
    torch.save(c.state_dict(), tmp_path / "c16.pt")
    wl = load_workload(hand_workload)
    data = wl.model_dump(mode="json")
    data["queries"][2]["model"]["checkpoint"] = "c16.pt"
    analysis = gemel.analyze(load_workload(write_workload(data, "half.yaml")))
    stats = {q.name: q for q in analysis.queries}
    assert stats["C"].param_bytes == 3 * CONV8 // 2
    # C's float16 convs no longer pair with A's and B's float32 ones
    assert all("C" not in inst.queries for inst in analysis.instances)
    assert analysis.max_savings_bytes == CONV8 + CONV3 + LIN
