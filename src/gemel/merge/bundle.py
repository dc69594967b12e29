"""The bundle: a merged workload on disk, each distinct tensor stored once, block by block.

A bundle folder holds ``manifest.json`` (:mod:`gemel.merge.manifest`) and one
``weights-<digest>.safetensors`` file. Every tensor (parameter or buffer) used by the models
belongs to the block of the set of queries that use it: one private block per query and one per
distinct set of queries sharing anything. The weights file holds one ``uint8`` entry per block
(named ``b00000``, ``b00001``...), so each block is ONE contiguous byte range of the file; inside
a block, tensors start at multiples of :data:`ALIGN` bytes from the block's start, whatever
their dtypes. The layout is checked against the written safetensors header on every save.

Saving is atomic: the weights go to a new file first, then ``manifest.json`` is replaced (the
commit point), then weights files the manifest no longer names are removed. A crash at any
moment leaves a manifest that names a complete weights file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from gemel.errors import GemelError
from gemel.io import atomic_path, write_json_atomic
from gemel.merge.config import MergeConfig
from gemel.merge.manifest import (
    ALIGN,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    BlockEntry,
    BundleManifest,
    QueryEntry,
    TensorEntry,
    dtype_of,
    read_manifest,
)
from gemel.models import build_model
from gemel.workload import ModelSpec, Workload

__all__ = [
    "ALIGN",
    "FORMAT_VERSION",
    "BlockEntry",
    "BundleManifest",
    "QueryEntry",
    "TensorEntry",
    "block_views",
    "load_bundle",
    "read_header",
    "read_manifest",
    "read_tensors",
    "save_bundle",
    "weights_path",
]


# ---------------------------------------------------------------------------------------------
# layout: which tensor goes in which block


@dataclass
class _Tensor:
    value: torch.Tensor
    users: list[str]


def _collect(models: dict[str, nn.Module]) -> tuple[dict[int, _Tensor], dict[str, list]]:
    """Distinct tensors by identity, and per query its ``(kind, name, tensor key)`` list."""
    tensors: dict[int, _Tensor] = {}
    uses: dict[str, list] = {}
    for q, model in models.items():
        rows = []
        named = [("param", n, t) for n, t in model.named_parameters(remove_duplicate=False)]
        named += [("buffer", n, t) for n, t in model.named_buffers(remove_duplicate=False)]
        for kind, name, t in named:
            if t.device.type == "meta":
                raise GemelError(f"query {q!r}: {kind} {name!r} is on the meta device (no data)")
            entry = tensors.setdefault(id(t), _Tensor(t, []))
            if q not in entry.users:
                entry.users.append(q)
            rows.append((kind, name, id(t)))
        uses[q] = rows
    return tensors, uses


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _tensor_bytes(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes as a flat uint8 CPU tensor."""
    return t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)


def _block_digest(entries: list[TensorEntry]) -> str:
    h = hashlib.sha256()
    for e in entries:
        h.update(f"{e.block_offset}:{e.dtype}:{list(e.shape)}:{e.sha256};".encode())
    return h.hexdigest()


def _check_models(models: dict[str, nn.Module], workload: Workload, config: MergeConfig) -> None:
    if not models:
        raise GemelError("save_bundle: no models given")
    known = set(workload.query_names)
    for q in models:
        if q not in known:
            raise GemelError(
                f"save_bundle: model {q!r} is not a query of workload {workload.name!r}"
            )
    config.validate_for(models)
    for layer in config.shared:
        modules = [models[q].get_submodule(p) for q, p in layer.members]
        for name, p in modules[0]._parameters.items():
            if p is not None and any(m._parameters[name] is not p for m in modules[1:]):
                raise GemelError(
                    f"save_bundle: the merge configuration shares [{layer.describe()}] but the "
                    f"models hold separate {name!r} tensors there (apply_merge first)"
                )


# ---------------------------------------------------------------------------------------------
# the weights file


def read_header(path: Path) -> tuple[int, dict[str, Any]]:
    """``(data_start, header)`` of a safetensors file; GemelError if it is not a complete one."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise GemelError(f"{path}: truncated weights file ({size} bytes, no header)")
            n = int.from_bytes(raw, "little")
            if n > size - 8:
                raise GemelError(
                    f"{path}: truncated or corrupted weights file: header of {n} bytes "
                    f"but the file has {size}"
                )
            header = json.loads(f.read(n))
    except FileNotFoundError:
        raise GemelError(f"{path}: weights file is missing") from None
    except (ValueError, UnicodeDecodeError):
        raise GemelError(f"{path}: corrupted weights file: its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise GemelError(f"{path}: corrupted weights file: its header is not a mapping")
    ends = [0]
    for k, v in header.items():
        if k == "__metadata__":
            continue
        offsets = v.get("data_offsets") if isinstance(v, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(x, int) for x in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise GemelError(f"{path}: corrupted weights file: bad entry {k!r} in its header")
        ends.append(offsets[1])
    expected = 8 + n + max(ends)
    if size < expected:
        raise GemelError(
            f"{path}: truncated weights file: {size} bytes, its header needs {expected}"
        )
    return 8 + n, header


def _verify_layout(path: Path, blocks: list[tuple[str, int]]) -> list[int]:
    """Check the written file holds each block as one range, in order; their absolute offsets."""
    start, header = read_header(path)
    offsets = []
    pos = 0
    for name, nbytes in blocks:
        e = header.get(name)
        if e is None or e["dtype"] != "U8" or e["data_offsets"] != [pos, pos + nbytes]:
            raise RuntimeError(
                f"{path}: safetensors laid out block {name} unexpectedly ({e}); gemel needs "
                "entries of one dtype written in name order"
            )
        offsets.append(start + pos)
        pos += nbytes
    return offsets


@dataclass
class _Packed:
    """Blocks ready to write: their bytes, and the manifest entries of their tensors."""

    rows: list[tuple[str, tuple[str, ...], list[str]]]
    """``(block name, queries, tensor ids)`` in file order"""
    buffers: dict[str, torch.Tensor]
    entries: dict[str, TensorEntry]
    """offsets are relative to the block until :meth:`placed`"""
    ids: dict[int, str]
    """tensor key -> tensor id"""
    digest: str
    """of contents and layout: names the weights file"""

    def placed(self, offsets: list[int]) -> list[BlockEntry]:
        """Block entries at the given absolute offsets (tensor entries made absolute too)."""
        blocks = []
        for b, ((name, users, tids), start) in enumerate(zip(self.rows, offsets, strict=True)):
            for tid in tids:
                e = self.entries[tid]
                self.entries[tid] = e.model_copy(update={"offset": start + e.block_offset})
            blocks.append(
                BlockEntry(
                    id=b,
                    name=name,
                    queries=users,
                    offset=start,
                    nbytes=len(self.buffers[name]),
                    tensors=tuple(tids),
                    sha256=_block_digest([self.entries[tid] for tid in tids]),
                )
            )
        return blocks


def _pack(tensors: dict[int, _Tensor], order: dict[str, int]) -> _Packed:
    """Group tensors into blocks by the set of queries using them and copy them in, aligned.

    Private blocks come first in query order, then shared ones by the size of their query set.
    """
    by_set: dict[tuple[str, ...], list[int]] = {}
    for key, t in tensors.items():
        users = tuple(sorted(t.users, key=order.__getitem__))
        by_set.setdefault(users, []).append(key)
    block_sets = sorted(by_set, key=lambda s: (len(s), [order[q] for q in s]))
    packed = _Packed([], {}, {}, {}, "")
    width = max(5, len(str(len(tensors))))
    digest = hashlib.sha256()
    for b, users in enumerate(block_sets):
        layout = []
        pos = 0
        for key in by_set[users]:
            t = tensors[key].value
            layout.append((key, pos, t.numel() * t.element_size()))
            pos = _align(pos + layout[-1][2])
        buf = torch.empty(pos, dtype=torch.uint8)
        tids = []
        for key, off, nbytes in layout:
            tid = f"t{len(packed.ids):0{width}d}"
            packed.ids[key] = tid
            tids.append(tid)
            t = tensors[key].value
            raw = _tensor_bytes(t)
            buf[off : off + nbytes] = raw
            buf[off + nbytes : _align(off + nbytes)] = 0  # padding
            sha = hashlib.sha256(raw.numpy()).hexdigest()
            digest.update(f"{b}:{users}:{off}:{t.dtype}:{list(t.shape)}:{sha};".encode())
            packed.entries[tid] = TensorEntry(
                dtype=str(t.dtype).removeprefix("torch."),
                shape=tuple(t.shape),
                block=b,
                offset=off,
                block_offset=off,
                nbytes=nbytes,
                sha256=sha,
            )
        name = f"b{b:05d}"
        packed.buffers[name] = buf
        packed.rows.append((name, users, tids))
    packed.digest = digest.hexdigest()
    return packed


def _query_entry(
    workload: Workload, q: str, uses: list, ids: dict[int, str], blocks: list[BlockEntry]
) -> QueryEntry:
    spec = workload.query(q)
    return QueryEntry(
        model=spec.model.model_copy(update={"checkpoint": None}),
        task=spec.task,
        source=spec.source,
        input_size=spec.model.input_size,
        normalization=spec.model.normalization,
        target=workload.target_of(spec),
        fps=workload.fps_of(spec),
        sla_ms=workload.sla_ms_of(spec),
        blocks=tuple(b.id for b in blocks if q in b.queries),
        params={n: ids[k] for kind, n, k in uses if kind == "param"},
        buffers={n: ids[k] for kind, n, k in uses if kind == "buffer"},
    )


def save_bundle(
    out_dir: str | Path,
    models: dict[str, nn.Module],
    *,
    workload: Workload,
    config: MergeConfig,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``models`` (keyed by query name, tied per ``config``) as a bundle in ``out_dir``.

    Each distinct tensor object is stored once. Other files in ``out_dir`` are left alone.
    Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise GemelError(f"{out_dir}: cannot write a bundle there: it is a file, not a folder")
    _check_models(models, workload, config)
    tensors, uses = _collect(models)
    packed = _pack(tensors, {q: i for i, q in enumerate(models)})

    weights_name = f"weights-{packed.digest[:16]}.safetensors"
    target = out_dir / weights_name
    with atomic_path(target) as tmp:
        save_file(
            packed.buffers, str(tmp), metadata={"format": FORMAT, "version": str(FORMAT_VERSION)}
        )
        offsets = _verify_layout(tmp, [(n, len(packed.buffers[n])) for n, _, _ in packed.rows])
        weights_nbytes = tmp.stat().st_size
    blocks = packed.placed(offsets)
    manifest = BundleManifest(
        workload=workload.name,
        weights=weights_name,
        weights_nbytes=weights_nbytes,
        queries={q: _query_entry(workload, q, uses[q], packed.ids, blocks) for q in models},
        tensors=packed.entries,
        blocks=tuple(blocks),
        merge=config,
        extra=extra or {},
    )
    del packed

    previous = _referenced_weights(out_dir)
    try:
        write_json_atomic(out_dir / MANIFEST_NAME, manifest.model_dump(mode="json"))
    except BaseException:
        if previous != weights_name:
            target.unlink(missing_ok=True)
        raise
    for stale in out_dir.glob("weights-*.safetensors"):
        if stale.name != weights_name:
            stale.unlink(missing_ok=True)
    return out_dir


def _referenced_weights(bundle_dir: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return json.loads((bundle_dir / MANIFEST_NAME).read_text()).get("weights")
    return None


# ---------------------------------------------------------------------------------------------
# reading


def weights_path(bundle_dir: str | Path, manifest: BundleManifest) -> Path:
    """The weights file of a bundle, checked to hold every block where the manifest says."""
    path = Path(bundle_dir) / manifest.weights
    start, header = read_header(path)
    for b in manifest.blocks:
        e = header.get(b.name)
        if not isinstance(e, dict):
            raise GemelError(
                f"{path}: the manifest names block {b.name} (queries {', '.join(b.queries)}) "
                "which the weights file does not hold"
            )
        lo, hi = e["data_offsets"]
        if start + lo != b.offset or hi - lo != b.nbytes:
            raise GemelError(
                f"{path}: block {b.name} lies at bytes {start + lo}..{start + hi} but the "
                f"manifest says {b.offset}..{b.offset + b.nbytes}; manifest and file do not match"
            )
    return path


def read_tensors(
    bundle_dir: str | Path,
    manifest: BundleManifest | None = None,
    *,
    device: str | torch.device = "cpu",
    verify: bool = True,
) -> dict[str, torch.Tensor]:
    """Every tensor of a bundle by id, each in its own storage (sha256-checked if ``verify``)."""
    manifest = manifest or read_manifest(bundle_dir)
    path = weights_path(bundle_dir, manifest)
    out: dict[str, torch.Tensor] = {}
    with open(path, "rb") as f:
        for tid, e in sorted(manifest.tensors.items(), key=lambda kv: kv[1].offset):
            t = torch.empty(e.shape, dtype=dtype_of(e.dtype))
            if t.numel() * t.element_size() != e.nbytes:
                raise GemelError(f"{path}: corrupted manifest: tensor {tid!r} size mismatch")
            raw = t.reshape(-1).view(torch.uint8).numpy()
            f.seek(e.offset)
            if f.readinto(memoryview(raw)) != e.nbytes:
                raise GemelError(f"{path}: truncated weights file: tensor {tid!r} is cut short")
            if verify and hashlib.sha256(raw).hexdigest() != e.sha256:
                raise GemelError(
                    f"{path}: sha256 mismatch for tensor {tid!r} "
                    f"(used by {', '.join(manifest.users()[tid]) or 'nothing'}): "
                    "the weights file is corrupted"
                )
            out[tid] = t.to(device)
    return out


def block_views(
    manifest: BundleManifest, block: BlockEntry | int, buffer: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Typed views of a block's tensors into ``buffer``, a uint8 tensor of the block's bytes.

    ``buffer`` may live on any device (e.g. a slice of a device arena); it must start at a
    multiple of :data:`ALIGN` bytes so every view is aligned to its dtype.
    """
    b = manifest.blocks[block] if isinstance(block, int) else block
    if buffer.dtype != torch.uint8 or buffer.numel() < b.nbytes:
        raise ValueError(f"block {b.name} needs a uint8 buffer of {b.nbytes} bytes")
    views = {}
    for tid in b.tensors:
        e = manifest.tensors[tid]
        raw = buffer[e.block_offset : e.block_offset + e.nbytes]
        views[tid] = raw.view(dtype_of(e.dtype)).view(e.shape)
    return views


def _holds_plain_tensors(model: nn.Module) -> bool:
    """Whether any module keeps tensors outside its parameters and buffers (e.g. anchors)."""
    for module in model.modules():
        for v in vars(module).values():
            if isinstance(v, torch.Tensor):
                return True
            if isinstance(v, list | tuple) and any(isinstance(x, torch.Tensor) for x in v):
                return True
    return False


def _build(spec: ModelSpec, where: str) -> nn.Module:
    """The bare model of ``spec``: on ``meta`` (no initialisation) when that is safe."""
    model = build_model(spec, where=where, device="meta", load_checkpoint=False)
    if _holds_plain_tensors(model):
        model = build_model(spec, where=where, load_checkpoint=False)
    return model


def _bind(
    model: nn.Module,
    entry: QueryEntry,
    manifest: BundleManifest,
    values: dict[str, torch.Tensor],
    params: dict[str, nn.Parameter],
    where: str,
) -> None:
    for kind, table in (("parameter", entry.params), ("buffer", entry.buffers)):
        for name, tid in table.items():
            path, _, attr = name.rpartition(".")
            try:
                module = model.get_submodule(path)
            except AttributeError:
                module = None
            slots = None
            if module is not None:
                slots = module._parameters if kind == "parameter" else module._buffers
            if slots is None or slots.get(attr) is None:
                raise GemelError(
                    f"{where}: the built model has no {kind} {name!r}; "
                    "the bundle does not fit this version of the model"
                )
            old = slots[attr]
            if tuple(old.shape) != manifest.tensors[tid].shape:
                raise GemelError(
                    f"{where}: {kind} {name!r} has shape {list(old.shape)} in the model but "
                    f"{list(manifest.tensors[tid].shape)} in the bundle"
                )
            if kind == "parameter":
                if tid not in params:
                    params[tid] = nn.Parameter(values[tid], requires_grad=old.requires_grad)
                slots[attr] = params[tid]
            else:
                slots[attr] = values[tid]
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.device.type == "meta":
            raise GemelError(f"{where}: the bundle holds no value for {name!r}")


def _read_current(
    bundle_dir: Path, device: str | torch.device, verify: bool, attempts: int = 3
) -> tuple[BundleManifest, dict[str, torch.Tensor]]:
    for attempt in range(attempts):
        manifest = read_manifest(bundle_dir)
        try:
            return manifest, read_tensors(bundle_dir, manifest, device=device, verify=verify)
        except GemelError:
            republished = _referenced_weights(bundle_dir) not in (None, manifest.weights)
            if not republished or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def load_bundle(
    bundle_dir: str | Path, device: str | torch.device = "cpu", *, verify: bool = True
) -> dict[str, nn.Module]:
    """``{query: model}`` of a bundle, in eval mode.

    A tensor shared by several models is ONE ``nn.Parameter`` object in all of them; distinct
    tensors are distinct objects. Every tensor is checked against its sha256 (``verify``).
    A bundle republished while it is being read (the manifest names a new weights file) is
    read again.
    """
    bundle_dir = Path(bundle_dir)
    manifest, values = _read_current(bundle_dir, device, verify)
    params: dict[str, nn.Parameter] = {}
    models: dict[str, nn.Module] = {}
    for q, entry in manifest.queries.items():
        where = f"{bundle_dir}: query {q!r}"
        model = _build(entry.model, where)
        _bind(model, entry, manifest, values, params, where)
        models[q] = model.to(device).eval()
    return models
