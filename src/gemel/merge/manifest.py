"""The bundle manifest: what each query uses, where each tensor and block lies, and checks.

``manifest.json`` sits beside the weights file of a bundle (see :mod:`gemel.merge.bundle`). It
is plain, versioned data: a reader refuses a manifest of a newer format version, and checks
that every tensor a query names is listed and lies inside its block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from gemel.errors import GemelError
from gemel.merge.config import MergeConfig
from gemel.workload import ModelSpec, Normalization, TaskSpec

FORMAT = "gemel-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
ALIGN = 64
"""Byte alignment of every tensor inside its block (relative to the block's start)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorEntry(_Frozen):
    """One distinct tensor: where it lies in the weights file and what it holds."""

    dtype: str
    shape: tuple[int, ...]
    block: int
    offset: int
    """absolute byte offset in the weights file"""
    block_offset: int
    """byte offset from the start of its block"""
    nbytes: int
    sha256: str


class BlockEntry(_Frozen):
    """The tensors used by exactly one set of queries: one contiguous byte range."""

    id: int
    name: str
    """the block's entry in the safetensors file"""
    queries: tuple[str, ...]
    offset: int
    """absolute byte offset in the weights file"""
    nbytes: int
    tensors: tuple[str, ...]
    sha256: str
    """digest of the block's contents (its tensors' digests and layout)"""


class QueryEntry(_Frozen):
    """What is needed to rebuild, run and score one query's model."""

    model: ModelSpec
    task: TaskSpec | None
    source: str | None
    input_size: tuple[int, int] | None
    normalization: Normalization
    target: float
    fps: float
    sla_ms: float
    blocks: tuple[int, ...]
    params: dict[str, str]
    """parameter name -> tensor id"""
    buffers: dict[str, str]
    """buffer name -> tensor id"""


class BundleManifest(_Frozen):
    """``manifest.json`` of a bundle."""

    format: Literal["gemel-bundle"] = FORMAT
    version: int = FORMAT_VERSION
    workload: str
    weights: str
    """file name of the weights file, in the bundle folder"""
    weights_nbytes: int
    queries: dict[str, QueryEntry]
    tensors: dict[str, TensorEntry]
    blocks: tuple[BlockEntry, ...]
    merge: MergeConfig
    extra: dict[str, Any] = {}

    def blocks_of(self, query: str) -> list[BlockEntry]:
        """The blocks ``query`` needs resident to run."""
        return [self.blocks[i] for i in self.queries[query].blocks]

    def users(self) -> dict[str, list[str]]:
        """Tensor id -> ``query:name`` of every parameter and buffer that uses it."""
        out: dict[str, list[str]] = {tid: [] for tid in self.tensors}
        for q, entry in self.queries.items():
            for table in (entry.params, entry.buffers):
                for name, tid in table.items():
                    out.setdefault(tid, []).append(f"{q}:{name}")
        return out


def read_manifest(bundle_dir: str | Path) -> BundleManifest:
    """The manifest of the bundle in ``bundle_dir``, checked for consistency."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if bundle_dir.exists() and not bundle_dir.is_dir():
        raise GemelError(f"{bundle_dir}: not a bundle: a file, not a folder")
    if not bundle_dir.is_dir():
        raise GemelError(f"{bundle_dir}: bundle folder not found")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise GemelError(f"{bundle_dir}: not a bundle: {MANIFEST_NAME} is missing") from None
    except (ValueError, UnicodeDecodeError):
        raise GemelError(f"{path}: corrupted manifest: not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GemelError(f"{path}: not a gemel bundle manifest (no format {FORMAT!r})")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise GemelError(f"{path}: corrupted manifest: bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise GemelError(
            f"{path}: bundle format version {version} is newer than this gemel reads "
            f"(up to {FORMAT_VERSION}); upgrade gemel"
        )
    try:
        manifest = BundleManifest.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise GemelError(f"{path}: invalid manifest: field '{loc}': {err['msg']}") from None
    _check_manifest(manifest, path)
    return manifest


def _check_manifest(m: BundleManifest, path: Path) -> None:
    for q, entry in m.queries.items():
        for kind, table in (("parameter", entry.params), ("buffer", entry.buffers)):
            for name, tid in table.items():
                if tid not in m.tensors:
                    raise GemelError(
                        f"{path}: query {q!r} {kind} {name!r} uses tensor {tid!r}, "
                        "which the manifest does not list"
                    )
    for i, b in enumerate(m.blocks):
        if b.id != i:
            raise GemelError(f"{path}: corrupted manifest: block {b.name} has id {b.id}, not {i}")
        for tid in b.tensors:
            e = m.tensors.get(tid)
            if e is None:
                raise GemelError(
                    f"{path}: block {b.name} names tensor {tid!r}, which is not listed"
                )
            if (
                e.block != i
                or e.offset != b.offset + e.block_offset
                or e.block_offset + e.nbytes > b.nbytes
            ):
                raise GemelError(f"{path}: tensor {tid!r} does not lie inside its block {b.name}")
    listed = {tid for b in m.blocks for tid in b.tensors}
    for tid in m.tensors:
        if tid not in listed:
            raise GemelError(f"{path}: tensor {tid!r} is in no block")


def dtype_of(name: str) -> torch.dtype:
    """The torch dtype a manifest names, e.g. ``"float16"``."""
    dt = getattr(torch, name, None)
    if not isinstance(dt, torch.dtype):
        raise GemelError(f"corrupted manifest: unknown dtype {name!r}")
    return dt
