"""Building a query's model: torchvision builders, user factories, checkpoints and their errors."""

from __future__ import annotations

import functools
import os
import sys

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from gemel.errors import GemelError
from gemel.models import build_model, check_device, read_state_dict
from gemel.workload import ModelSpec

FACTORY_MODULE = "gemel_test_factories"
FACTORIES = '''
import torch
from torch import nn


def tiny(num_classes=2, width=8):
    """conv -> norm -> relu -> pool -> linear"""
    return nn.Sequential(
        nn.Conv2d(3, width, 3),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, num_classes),
    )


def not_a_module(**kwargs):
    return 42


def refuses(**kwargs):
    raise ValueError("width must be a power of two\\nsecond line")


NOT_CALLABLE = 3
'''


@pytest.fixture
def factories(tmp_path, monkeypatch):
    """An importable module of model factories (and one that fails on import)."""
    (tmp_path / f"{FACTORY_MODULE}.py").write_text(FACTORIES)
    (tmp_path / "gemel_test_broken.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in (FACTORY_MODULE, "gemel_test_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def _tiny_state_dict(num_classes: int = 2, dtype: torch.dtype = torch.float32) -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}


def test_torchvision_builder_gets_no_weights_and_the_classes(monkeypatch):
    calls = {}
    real = torchvision.models.get_model_builder

    def spy(name):
        builder = real(name)

        @functools.wraps(builder)  # keeps the signature gemel inspects
        def wrapped(**kwargs):
            calls[name] = kwargs
            return builder(**kwargs)

        return wrapped

    monkeypatch.setattr(torchvision.models, "get_model_builder", spy)
    model = build_model(
        ModelSpec(arch="resnet18", num_classes=3, kwargs={"zero_init_residual": True}),
        device="meta",
    )
    assert calls["resnet18"] == {"weights": None, "num_classes": 3, "zero_init_residual": True}
    assert model.fc.out_features == 3
    assert not model.training
    assert all(p.device.type == "meta" for p in model.parameters())

    build_model(ModelSpec(arch="fasterrcnn_resnet50_fpn", num_classes=3), device="meta")
    assert calls["fasterrcnn_resnet50_fpn"]["weights"] is None
    assert calls["fasterrcnn_resnet50_fpn"]["weights_backbone"] is None


def test_factory_model_gets_num_classes_and_kwargs(factories):
    spec = ModelSpec(factory=f"{FACTORY_MODULE}:tiny", num_classes=5, kwargs={"width": 4})
    model = build_model(spec)
    assert isinstance(model, nn.Sequential)
    assert model[0].out_channels == 4
    assert model[-1].out_features == 5


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoint_is_loaded_with_its_dtype(tmp_path, factories, suffix):
    sd = _tiny_state_dict(dtype=torch.float16)
    path = tmp_path / f"ckpt{suffix}"
    if suffix == ".pt":
        torch.save({"state_dict": sd, "epoch": 3}, path)  # a wrapped state dict is unwrapped
    else:
        save_file(sd, str(path))
    spec = ModelSpec(factory=f"{FACTORY_MODULE}:tiny", checkpoint=path)
    for device in (None, "meta"):
        model = build_model(spec, device=device)
        for name, tensor in model.state_dict().items():
            assert tensor.dtype == sd[name].dtype
            assert torch.equal(tensor.cpu(), sd[name])
    untouched = build_model(spec, load_checkpoint=False)
    assert untouched[0].weight.dtype == torch.float32


def test_torchvision_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.squeezenet1_1(weights=None, num_classes=3)
    path = tmp_path / "squeeze.pt"
    torch.save(source.state_dict(), path)
    model = build_model(ModelSpec(arch="squeezenet1_1", num_classes=3, checkpoint=path))
    for (name, a), (_, b) in zip(
        source.state_dict().items(), model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_read_state_dict_rejects_non_tensor_values(tmp_path):
    path = tmp_path / "mixed.pt"
    torch.save({"w": torch.zeros(2), "note": "hello"}, path)
    with pytest.raises(GemelError, match="is not a state dict"):
        read_state_dict(path, "here")


def _workload(model: dict) -> dict:
    return {"name": "w", "queries": [{"name": "cam1", "model": model}]}


def test_unknown_architecture_suggests_the_near_name(write_workload, gemel_cli):
    path = write_workload(_workload({"arch": "resnet5O"}))
    gemel_cli("analyze", path).assert_error(
        str(path),
        "query 'cam1'",
        "field 'model.arch'",
        "unknown architecture 'resnet5O'",
        "did you mean 'resnet50'",
    )


def test_builder_that_refuses_its_kwargs(write_workload, gemel_cli):
    path = write_workload(_workload({"arch": "resnet18", "kwargs": {"depth": 7}}))
    gemel_cli("analyze", path).assert_error(str(path), "query 'cam1'", "field 'model'", "'depth'")


@pytest.mark.parametrize("key", ["weights", "weights_backbone"])
def test_pretrained_weights_are_refused(key, write_workload, gemel_cli):
    spec = {"arch": "fasterrcnn_resnet50_fpn", "kwargs": {key: "DEFAULT"}}
    path = write_workload(_workload(spec))
    gemel_cli("analyze", path).assert_error(
        str(path),
        "query 'cam1'",
        "field 'model.kwargs'",
        f"{key!r} is not allowed",
    )


BAD_FACTORIES = {
    "module not found": ("gemel_no_such_module:tiny", "cannot import 'gemel_no_such_module'"),
    "module fails on import": ("gemel_test_broken:make", "broken on import"),
    "no such function": (f"{FACTORY_MODULE}:huge", "has no callable 'huge'"),
    "not callable": (f"{FACTORY_MODULE}:NOT_CALLABLE", "has no callable 'NOT_CALLABLE'"),
    "returns no module": (f"{FACTORY_MODULE}:not_a_module", "returned int, not an nn.Module"),
    "raises": (f"{FACTORY_MODULE}:refuses", "ValueError: width must be a power of two"),
}


@pytest.mark.parametrize("case", list(BAD_FACTORIES), ids=list(BAD_FACTORIES))
def test_bad_factory(case, factories, write_workload, gemel_cli):
    factory, phrase = BAD_FACTORIES[case]
    path = write_workload(_workload({"factory": factory}))
    field = "field 'model'" if case == "raises" else "field 'model.factory'"
    gemel_cli("analyze", path).assert_error(str(path), "query 'cam1'", field, phrase)


def _bad_checkpoints(tmp_path) -> dict[str, tuple[str, str]]:
    """Checkpoint files that cannot serve the factory's tiny model, and a phrase of each error."""
    good = _tiny_state_dict()
    wrong_shape = dict(good, **{"5.weight": torch.zeros(3, 8), "5.bias": torch.zeros(3)})
    wrong_keys = {("head." + k if k.startswith("5.") else k): v for k, v in good.items()}
    files = {
        "missing": (None, "file not found"),
        "garbage.pt": (b"this is not a checkpoint", "not a file of tensors written by torch.save"),
        "garbage.safetensors": (b"\x08\x00\x00\x00\x00\x00\x00\x00{", "cannot read"),
        "list.pt": ([torch.zeros(1)], "is not a state dict"),
        "shapes.pt": (wrong_shape, "2 shape mismatches (e.g. '5.weight': checkpoint [3, 8]"),
        "keys.pt": (wrong_keys, "2 missing keys (e.g. '5.weight'); 2 unexpected keys"),
    }
    out = {}
    for name, (content, phrase) in files.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            torch.save(content, path)
        out[name] = (str(path), phrase)
    (tmp_path / "folder.pt").mkdir()
    out["folder.pt"] = (str(tmp_path / "folder.pt"), "file not found")
    return out


def test_checkpoints_that_cannot_serve_the_model(tmp_path, factories, write_workload, gemel_cli):
    for name, (ckpt, phrase) in _bad_checkpoints(tmp_path).items():
        path = write_workload(
            _workload({"factory": f"{FACTORY_MODULE}:tiny", "checkpoint": ckpt}), f"{name}.yaml"
        )
        result = gemel_cli("analyze", path)
        result.assert_error(str(path), "query 'cam1'", "field 'model.checkpoint'", phrase)


def test_relative_checkpoint_is_found_beside_the_workload(tmp_path, write_workload, gemel_cli):
    (tmp_path / "ckpt").mkdir()
    torch.save(
        torchvision.models.squeezenet1_1(weights=None, num_classes=3).state_dict(),
        tmp_path / "ckpt/cam1.pt",
    )
    spec = {"arch": "squeezenet1_1", "num_classes": 3, "checkpoint": "ckpt/cam1.pt"}
    path = write_workload(_workload(spec))
    assert gemel_cli("analyze", path).status == 0
    wrong = write_workload(_workload({**spec, "num_classes": 4}), "wrong.yaml")
    gemel_cli("analyze", wrong).assert_error(
        "query 'cam1'",
        "field 'model.checkpoint'",
        "does not fit the architecture",
        "checkpoint [3, 512, 1, 1] vs model [4, 512, 1, 1]",
    )


def test_unreadable_checkpoint_file(tmp_path, factories, write_workload, gemel_cli, monkeypatch):
    ckpt = tmp_path / "locked.pt"
    torch.save(_tiny_state_dict(), ckpt)
    if os.geteuid() == 0:  # permissions do not bind root: refuse the read the way the OS would

        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(torch, "load", denied)
    else:
        ckpt.chmod(0)
    path = write_workload(_workload({"factory": f"{FACTORY_MODULE}:tiny", "checkpoint": str(ckpt)}))
    gemel_cli("analyze", path).assert_error(
        "query 'cam1'",
        "field 'model.checkpoint'",
        f"cannot read {ckpt}: Permission denied",
    )


@pytest.mark.gpu
def test_checkpoint_model_lands_on_the_requested_device(tmp_path, factories):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    path = tmp_path / "ckpt.pt"
    torch.save(_tiny_state_dict(dtype=torch.float16), path)
    model = build_model(ModelSpec(factory=f"{FACTORY_MODULE}:tiny", checkpoint=path), device="cuda")
    assert all(t.device.type == "cuda" for t in model.state_dict().values())
    assert model[0].weight.dtype == torch.float16


def test_device_check_refuses_a_cuda_index_beyond_the_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda") == torch.device("cuda")
    assert check_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(GemelError, match=r"device 'cuda:1': there are 1 CUDA devices here"):
        check_device("cuda:1")
