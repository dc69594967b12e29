"""Base-model training: above chance on test, records, resume after an interruption, CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from gemel.data import base_models, load_split
from gemel.data.train import evaluate, model_dir, recalibrate_norms
from gemel.errors import GemelError
from gemel.workload import load_workload


def small_cnn(num_classes: int = 2) -> nn.Module:
    """Three conv-bn-relu stages and a linear head: a few thousand weights."""
    layers: list[nn.Module] = []
    c_in = 3
    for c in (12, 24, 32):
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c
    return nn.Sequential(
        *layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)
    )


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMEL_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def workload_dict(epochs: int = 5) -> dict:
    return {
        "name": "w",
        "defaults": {"train": {"epochs": epochs, "batch_size": 32, "lr": 0.01}},
        "sources": {
            "cam": {
                "kind": "synthetic",
                "camera": 3,
                "frames": 900,
                "resolution": [32, 32],
                "fps": 5,
            }
        },
        "queries": [
            {
                "name": "cars",
                "source": "cam",
                "task": {"kind": "presence", "classes": ["car", "bus", "truck"]},
                "model": {"factory": "test_data_train:small_cnn", "num_classes": 2},
            }
        ],
    }


@pytest.mark.slow
def test_base_model_beats_chance(write_workload: Callable[..., Path]):
    wl = load_workload(write_workload(workload_dict()))
    record = base_models(wl)["cars"]
    # Bound: 20 points above chance. Cars, buses and trucks are large coloured shapes on a grey
    # road, visible even at 32 px and at dusk (training adds brightness jitter), and this
    # camera's test segment is balanced (chance near 0.5), so a model that learnt the task
    # sits far above a guesser; one that learnt nothing scores about chance.
    assert record.unmerged_accuracy >= record.chance_accuracy + 0.20
    assert record.trained and record.epochs == 5 and record.checkpoint.is_file()
    test = load_split(wl, "cars", "test")
    assert record.chance_accuracy == pytest.approx(test.chance_accuracy)
    assert evaluate(record.load_model(wl), test) == pytest.approx(record.unmerged_accuracy)
    # a second call reads the record instead of training again
    assert base_models(wl)["cars"] == record


@pytest.mark.slow
def test_interrupted_training_resumes(write_workload: Callable[..., Path]):
    wl = load_workload(write_workload(workload_dict(epochs=2)))
    steps: list[int] = []

    def stop_in_epoch_two(query: str, done: int, total: int) -> None:
        steps.append(done)
        if done > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        base_models(wl, progress=stop_in_epoch_two)
    folder = model_dir(wl, "cars")
    assert (folder / "state.pt").is_file() and not (folder / "record.json").exists()
    resumed: list[int] = []
    record = base_models(wl, progress=lambda q, done, total: resumed.append(done))["cars"]
    assert record.epochs == 2 and (folder / "record.json").is_file()
    assert not (folder / "state.pt").exists(), "the resume state goes once the model is done"
    assert resumed[0] == steps[-1], "resumes at the first step of the unfinished epoch"


def test_given_checkpoint_is_evaluated_not_trained(write_workload: Callable[..., Path], tmp_path):
    torch.manual_seed(0)
    torch.save(small_cnn(2).state_dict(), tmp_path / "given.pt")
    data = workload_dict()
    data["queries"][0]["model"]["checkpoint"] = "given.pt"
    data["sources"]["cam"]["frames"] = 100
    wl = load_workload(write_workload(data))
    record = base_models(wl)["cars"]
    assert not record.trained and record.epochs == 0
    assert record.checkpoint == tmp_path / "given.pt"
    assert 0 <= record.unmerged_accuracy <= 1


def test_model_with_wrong_outputs(write_workload: Callable[..., Path]):
    data = workload_dict()
    data["queries"][0]["model"] = {
        "factory": "test_data_train:small_cnn",
        "kwargs": {"num_classes": 5},
    }
    data["sources"]["cam"]["frames"] = 100
    wl = load_workload(write_workload(data))
    with pytest.raises(GemelError, match=r"outputs of shape \[\d+, 5\], its task needs \[N, 2\]"):
        base_models(wl)


@pytest.mark.slow
def test_train_cli(write_workload: Callable[..., Path], gemel_cli, tmp_path: Path):
    data = workload_dict(epochs=1)
    data["sources"]["cam"]["frames"] = 200
    path = write_workload(data)
    res = gemel_cli("train", path, "--json", tmp_path / "records.json")
    assert res.status == 0, res.err
    records = json.loads((tmp_path / "records.json").read_text())
    assert set(records) == {"cars"} and records["cars"]["epochs"] == 1
    assert {"unmerged_accuracy", "chance_accuracy", "val_accuracy", "checkpoint"} <= set(
        records["cars"]
    )
    assert "cars" in res.out
    bad = gemel_cli("train", path, "--query", "nope")
    assert bad.status == 2 and "no query named 'nope'" in bad.err
    gemel_cli("train", path, "--json", tmp_path).assert_error("is a folder; --json needs a file")


def test_recalibrated_norms_hold_the_training_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, momentum=0.01))
    inputs = torch.randn(300, 3, 4, 4) * 3 + 5
    recalibrate_norms(model, inputs, frames=300, batch_size=60)  # 5 equal batches
    with torch.no_grad():
        feats = model[0](inputs)
    bn = model[1]
    assert torch.allclose(bn.running_mean, feats.mean(dim=(0, 2, 3)), atol=1e-4)
    assert bn.momentum == 0.01 and not model.training


class _DeviceProbe(nn.Module):
    """A batch-norm layer beside a forward pass that notes where its inputs are."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.seen: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.device.type)
        return x


def test_recalibration_takes_host_inputs_for_a_model_on_another_device():
    # training passes its split's inputs as they are (on the host); each batch moves to the
    # model's device ("meta" stands in for a GPU)
    model = _DeviceProbe().to("meta")
    recalibrate_norms(model, torch.randn(8, 3, 4, 4), frames=8, batch_size=4)
    assert model.seen == ["meta", "meta"]
    assert model.bn.running_mean.device.type == "meta" and not model.training
