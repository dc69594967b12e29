"""Analysis of real torchvision models and of the example workloads, checked against figures this
test computes on its own: bytes summed from the parameters, and the max-merge bound from an
independent count of identical layers.

The bound, counted independently: for layers of one signature that occur c_1..c_n times in n
models, the k-th occurrences pair up, so instance k has as many members as models with more than
k such layers, and sharing all of them saves bytes x (c_1 + ... + c_n - max c).
"""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import gemel
from gemel.analyze import analyze_models
from gemel.models import build_model
from gemel.workload import ModelSpec, load_workload

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHAREABLE = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)


def _torchvision(arch: str, **kwargs) -> nn.Module:
    """Build a torchvision model on the meta device, without gemel."""
    builder = torchvision.models.get_model_builder(arch)
    if "weights_backbone" in inspect.signature(builder).parameters:
        kwargs["weights_backbone"] = None
    with torch.device("meta"):
        return builder(weights=None, **kwargs)


def _nbytes(params) -> int:
    return sum(p.numel() * p.element_size() for p in params)


def _layer_key(m: nn.Module) -> tuple:
    """Identity of a layer for pairing: type, geometry, and each own parameter's shape/dtype."""
    if isinstance(m, nn.Linear):
        geometry = (m.in_features, m.out_features)
    else:
        geometry = (
            m.in_channels,
            m.out_channels,
            m.kernel_size,
            m.stride,
            m.padding,
            m.dilation,
            m.groups,
            m.padding_mode,
            m.output_padding,
        )
    own = tuple((n, tuple(p.shape), p.dtype) for n, p in m.named_parameters(recurse=False))
    return (type(m).__name__, geometry, own)


def _shareable(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, SHAREABLE)]


def _expected_bound(models: list[nn.Module]) -> int:
    counts: list[Counter] = [Counter(_layer_key(m) for m in _shareable(x)) for x in models]
    size = {}
    for x in models:
        for m in _shareable(x):
            size[_layer_key(m)] = _nbytes(m.parameters(recurse=False))
    total = 0
    for key, nbytes in size.items():
        per_model = [c[key] for c in counts]
        total += nbytes * (sum(per_model) - max(per_model))
    return total


def _meta(arch: str, **kwargs) -> nn.Module:
    return build_model(ModelSpec(arch=arch, **kwargs), device="meta")


def test_resnet18_and_resnet34_against_an_independent_count():
    analysis = analyze_models({"r18": _meta("resnet18"), "r34": _meta("resnet34")})
    r18, r34 = _torchvision("resnet18"), _torchvision("resnet34")
    assert analysis.total_param_bytes == _nbytes(r18.parameters()) + _nbytes(r34.parameters())
    assert analysis.total_param_bytes == 4 * (11_689_512 + 21_797_672)  # published sizes
    assert analysis.max_savings_bytes == _expected_bound([r18, r34])
    stats = {q.name: q for q in analysis.queries}
    for name, model in (("r18", r18), ("r34", r34)):
        assert stats[name].params == sum(p.numel() for p in model.parameters())
        assert stats[name].buffer_bytes == _nbytes(model.buffers())
        assert stats[name].shareable_bytes == sum(
            _nbytes(m.parameters(recurse=False)) for m in _shareable(model)
        )
    # every resnet18 layer has a partner in resnet34 (a deeper net of the same blocks)
    assert stats["r18"].mergeable_bytes == stats["r18"].shareable_bytes
    assert analysis.max_savings_bytes == stats["r18"].shareable_bytes
    members = {m for inst in analysis.instances for m in inst.members}
    assert ("r18", "fc") in members
    assert ("r34", "fc") in members
    assert not any("bn" in path for _, path in members)


def test_identical_models_save_all_their_shareable_bytes():
    models = {f"cam{i}": _meta("resnet50", num_classes=2) for i in range(3)}
    analysis = analyze_models(models)
    reference = _torchvision("resnet50", num_classes=2)
    shareable = sum(_nbytes(m.parameters(recurse=False)) for m in _shareable(reference))
    assert analysis.max_savings_bytes == 2 * shareable
    assert len(analysis.instances) == len(_shareable(reference))
    for inst in analysis.instances:
        paths = {path for _, path in inst.members}
        assert len(paths) == 1  # the same layer of each copy
        assert inst.queries == set(models)
    assert len(analysis.groups) < len(analysis.instances)  # consecutive same-kind runs merge


def test_detector_backbone_pairs_layer_for_layer_with_resnet50():
    analysis = analyze_models(
        {"det": _meta("fasterrcnn_resnet50_fpn", num_classes=3), "cls": _meta("resnet50")}
    )
    det = _torchvision("fasterrcnn_resnet50_fpn", num_classes=3)
    cls = _torchvision("resnet50")
    assert analysis.max_savings_bytes == _expected_bound([det, cls])
    pairs = {}
    for inst in analysis.instances:
        where = dict(inst.members)
        assert set(where) == {"det", "cls"}
        pairs[where["cls"]] = where["det"]
    conv_paths = {p for p, m in cls.named_modules() if isinstance(m, nn.Conv2d)}
    assert set(pairs) == conv_paths  # every resnet50 convolution, and not its fc
    assert all(pairs[p] == f"backbone.body.{p}" for p in conv_paths)
    det_modules = dict(det.named_modules())
    assert all(isinstance(det_modules[p], nn.Conv2d) for p in pairs.values())
    # the backbone's norm layers (BatchNorm2d without pretrained weights, FrozenBatchNorm2d
    # with them) stay private
    norms = [
        p
        for p, m in det.named_modules()
        if p.startswith("backbone.body.")
        and type(m).__name__ in ("BatchNorm2d", "FrozenBatchNorm2d")
    ]
    assert len(norms) == len(conv_paths)  # one after every convolution
    assert not set(norms) & set(pairs.values())
    assert analysis.max_savings_bytes == sum(
        _nbytes(m.parameters(recurse=False)) for m in cls.modules() if isinstance(m, nn.Conv2d)
    )


def _example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("path", _example_files(), ids=lambda p: p.stem)
def test_every_example_analyzes(path, gemel_cli, tmp_path):
    wl = load_workload(path)
    result = gemel_cli("analyze", path, "--json", tmp_path / "a.json")
    assert result.status == 0, result.err
    analysis = gemel.analyze(wl)
    if any(q.model.arch is None or q.model.checkpoint for q in wl.queries):
        return  # the independent count below builds plain torchvision models only
    models = []
    for q in wl.queries:
        kwargs = dict(q.model.kwargs)
        if q.model.num_classes is not None:
            kwargs["num_classes"] = q.model.num_classes
        models.append(_torchvision(q.model.arch, **kwargs))
    assert analysis.total_param_bytes == sum(_nbytes(m.parameters()) for m in models)
    assert analysis.max_savings_bytes == _expected_bound(models)


def _bound_fraction(name: str) -> float:
    return gemel.analyze(load_workload(EXAMPLES / name)).max_savings_fraction


@pytest.mark.slow
def test_examples_span_much_to_almost_nothing_to_share():
    three = gemel.analyze(load_workload(EXAMPLES / "three_cameras.yaml"))
    one = three.queries[0]
    assert three.max_savings_bytes == 2 * one.shareable_bytes  # one model on three cameras
    vgg = gemel.analyze(load_workload(EXAMPLES / "vgg.yaml"))
    heaviest = vgg.instances[0]
    assert heaviest.kind == "Linear"
    assert heaviest.nbytes == (25088 * 4096 + 4096) * 4  # vgg's first fully-connected layer
    assert _bound_fraction("mix.yaml") < 0.01
    for name in ("three_cameras.yaml", "family.yaml", "vgg.yaml", "detector_backbone.yaml"):
        assert _bound_fraction(name) > 0.4, name
