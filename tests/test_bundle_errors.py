"""Bundles that are damaged, from the future, or half-written: each fails with a named cause."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bundle_models import build, make_workload, tie_all
from gemel import GemelError, load_bundle, read_manifest, save_bundle
from gemel.merge import MergeConfig, SharedLayer
from gemel.merge import bundle as bundle_module

torch.set_num_threads(1)


@pytest.fixture
def saved(tmp_path: Path):
    wl = make_workload(("a", "small_convnet", 3), ("b", "small_convnet", 3))
    models = build(wl)
    config = tie_all(models)
    out = tmp_path / "bundle"
    save_bundle(out, models, workload=wl, config=config)
    return out, wl, models, config


def edit_manifest(bundle: Path, change) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def weights_of(bundle: Path) -> Path:
    return bundle / read_manifest(bundle).weights


def test_truncated_weights_file(saved):
    out = saved[0]
    w = weights_of(out)
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(GemelError, match="truncated weights file"):
        load_bundle(out)
    w.write_bytes(w.read_bytes()[:5])
    with pytest.raises(GemelError, match="truncated weights file"):
        load_bundle(out)


def test_corrupted_header(saved):
    out = saved[0]
    w = weights_of(out)
    raw = bytearray(w.read_bytes())
    raw[8:16] = b"\xff" * 8
    w.write_bytes(bytes(raw))
    with pytest.raises(GemelError, match="corrupted weights file: its header is not valid JSON"):
        load_bundle(out)


def test_flipped_byte_fails_the_hash_check_of_its_tensor(saved):
    out = saved[0]
    m = read_manifest(out)
    tid = m.queries["b"].params["3.weight"]
    w = weights_of(out)
    raw = bytearray(w.read_bytes())
    raw[m.tensors[tid].offset + 5] ^= 0x01
    w.write_bytes(bytes(raw))
    with pytest.raises(GemelError, match=f"sha256 mismatch for tensor '{tid}' .*b:3.weight"):
        load_bundle(out)


def test_manifest_of_a_newer_format(saved):
    out = saved[0]
    edit_manifest(out, lambda d: d.update(version=99))
    with pytest.raises(GemelError, match="format version 99 is newer"):
        load_bundle(out)


def test_manifest_naming_a_block_the_file_lacks(saved):
    out = saved[0]
    edit_manifest(out, lambda d: d["blocks"][1].update(name="b00042"))
    with pytest.raises(GemelError, match=r"block b00042 .* which the weights file does not hold"):
        load_bundle(out)


def test_manifest_naming_a_tensor_it_does_not_list(saved):
    out = saved[0]
    edit_manifest(out, lambda d: d["queries"]["a"]["params"].update({"0.weight": "t99999"}))
    with pytest.raises(GemelError, match="uses tensor 't99999', which the manifest does not list"):
        load_bundle(out)


def test_manifest_and_file_that_disagree_on_the_layout(saved):
    out = saved[0]

    def grow(d):
        d["blocks"][0]["nbytes"] += 64

    edit_manifest(out, grow)
    with pytest.raises(GemelError, match="manifest and file do not match"):
        load_bundle(out)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda out: (out / "manifest.json").unlink(), "manifest.json is missing"),
        (lambda out: weights_of(out).unlink(), "weights file is missing"),
        (lambda out: (out / "manifest.json").write_text("{not json"), "not valid JSON"),
        (lambda out: edit_manifest(out, lambda d: d.pop("tensors")), "field 'tensors'"),
    ],
)
def test_missing_or_broken_files(saved, damage, message):
    out = saved[0]
    damage(out)
    with pytest.raises(GemelError, match=message):
        load_bundle(out)


def test_missing_bundle_folder(tmp_path):
    with pytest.raises(GemelError, match="bundle folder not found"):
        load_bundle(tmp_path / "nowhere")


def test_a_file_is_not_a_bundle(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("name: w\n")
    with pytest.raises(GemelError, match="not a bundle: a file, not a folder"):
        read_manifest(path)


def test_save_refuses_models_the_configuration_does_not_describe(saved):
    out, wl, models, config = saved
    untied = build(wl, seed=1)
    with pytest.raises(GemelError, match="apply_merge first"):
        save_bundle(out, untied, workload=wl, config=config)
    with pytest.raises(GemelError, match="'zz' is not a query"):
        save_bundle(out, {"zz": models["a"]}, workload=wl, config=MergeConfig())
    bad = MergeConfig(shared=(SharedLayer(members=(("a", "0"), ("b", "3"))),))
    with pytest.raises(GemelError, match="equal signatures"):
        save_bundle(out, models, workload=wl, config=bad)


def reference_outputs(bundle: Path) -> dict[str, torch.Tensor]:
    x = torch.ones(1, 3, 16, 16)
    with torch.no_grad():
        return {q: m(x) for q, m in load_bundle(bundle).items()}


def crash_in_writer(tensors, filename, metadata=None):
    Path(filename).write_bytes(b"half a file")
    raise OSError("disk full")


def crash_in_manifest(path, data):
    raise OSError("disk full")


@pytest.mark.parametrize(
    ("target", "crash"), [("save_file", crash_in_writer), ("write_json_atomic", crash_in_manifest)]
)
def test_a_crash_mid_save_leaves_the_previous_bundle_intact(saved, monkeypatch, target, crash):
    out, wl, models, config = saved
    before = reference_outputs(out)
    files_before = sorted(p.name for p in out.iterdir())
    with torch.no_grad():
        for m in models.values():
            for p in m.parameters():
                p.mul_(2)
    monkeypatch.setattr(bundle_module, target, crash)
    with pytest.raises(OSError, match="disk full"):
        save_bundle(out, models, workload=wl, config=config)
    assert sorted(p.name for p in out.iterdir()) == files_before
    after = reference_outputs(out)
    for q in before:
        assert torch.equal(after[q], before[q])
    monkeypatch.undo()
    save_bundle(out, models, workload=wl, config=config)
    assert len(list(out.glob("*.safetensors"))) == 1
    changed = reference_outputs(out)
    assert not torch.equal(changed["a"], before["a"])


def test_saving_again_removes_stale_weights_and_keeps_other_files(saved):
    out, wl, models, config = saved
    (out / "weights-0000000000000000.safetensors").write_bytes(b"left by a crash")
    (out / "report.json").write_text("{}")
    save_bundle(out, models, workload=wl, config=config)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["manifest.json", "report.json", read_manifest(out).weights])


def test_header_entry_without_offsets(saved):
    out = saved[0]
    w = weights_of(out)
    raw = w.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header["b00000"]["data_offsets"] = "x"
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= n
    w.write_bytes(raw[:8] + text.ljust(n) + raw[8 + n :])
    with pytest.raises(GemelError, match="bad entry 'b00000' in its header"):
        load_bundle(out)


def test_save_into_a_file_path_is_refused(saved, tmp_path):
    _, wl, models, config = saved
    (tmp_path / "file").write_text("")
    with pytest.raises(GemelError, match="it is a file, not a folder"):
        save_bundle(tmp_path / "file", models, workload=wl, config=config)


def test_a_bundle_republished_mid_read_is_read_again(saved, monkeypatch):
    out, wl, models, config = saved
    stale = read_manifest(out)
    with torch.no_grad():
        models["a"][0].weight.add_(1.0)
    save_bundle(out, models, workload=wl, config=config)  # removes the weights `stale` names
    fresh = read_manifest(out)
    assert fresh.weights != stale.weights
    answers = iter([stale])
    monkeypatch.setattr(bundle_module, "read_manifest", lambda d: next(answers, fresh))
    loaded = load_bundle(out)
    assert torch.equal(loaded["a"][0].weight, models["a"][0].weight)
