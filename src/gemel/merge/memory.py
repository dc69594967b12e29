"""Memory of merged models, each distinct tensor counted once, and which layers are shared.

The same accounting reads live models (tensors are distinct by object identity) or a bundle's
manifest (by tensor id), so the merger's report and ``gemel inspect`` agree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from gemel.merge.manifest import BundleManifest, read_manifest

Use = tuple[str, str, str, object, int]
"""``(query, kind, name, tensor key, nbytes)``, kind ``"param"`` or ``"buffer"``"""


@dataclass(frozen=True)
class QueryMemory:
    """Bytes one query's model uses, whether or not other queries use them too."""

    name: str
    param_bytes: int
    shared_param_bytes: int
    """of ``param_bytes``, bytes held by tensors that other queries use too"""
    buffer_bytes: int

    @property
    def private_param_bytes(self) -> int:
        return self.param_bytes - self.shared_param_bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "param_bytes": self.param_bytes,
            "shared_param_bytes": self.shared_param_bytes,
            "private_param_bytes": self.private_param_bytes,
            "buffer_bytes": self.buffer_bytes,
        }


@dataclass(frozen=True)
class BundleMemory:
    """Memory of a set of merged models: per query, and distinct tensors counted once."""

    queries: tuple[QueryMemory, ...]
    distinct_param_bytes: int
    """every distinct parameter tensor once (buffers excluded)"""
    distinct_buffer_bytes: int

    @property
    def unmerged_param_bytes(self) -> int:
        """Parameters counted once per model, as if nothing were shared."""
        return sum(q.param_bytes for q in self.queries)

    @property
    def saved_bytes(self) -> int:
        return self.unmerged_param_bytes - self.distinct_param_bytes

    @property
    def saved_fraction(self) -> float:
        total = self.unmerged_param_bytes
        return self.saved_bytes / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "unmerged_param_bytes": self.unmerged_param_bytes,
            "distinct_param_bytes": self.distinct_param_bytes,
            "distinct_buffer_bytes": self.distinct_buffer_bytes,
            "saved_bytes": self.saved_bytes,
            "saved_fraction": self.saved_fraction,
            "queries": {q.name: q.to_json() for q in self.queries},
        }


@dataclass(frozen=True)
class SharedTensors:
    """Locations that use the same parameter tensors: one shared layer (or several alike)."""

    members: tuple[tuple[str, str], ...]
    """``(query, module_path)`` pairs"""
    nbytes: int
    """bytes of one copy"""

    @property
    def queries(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(q for q, _ in self.members))

    def to_json(self) -> dict[str, Any]:
        return {"members": [list(m) for m in self.members], "bytes": self.nbytes}


def _account(uses: list[Use], queries: list[str]) -> BundleMemory:
    users: dict[object, set[str]] = defaultdict(set)
    size: dict[object, tuple[str, int]] = {}
    for q, kind, _, key, nbytes in uses:
        users[key].add(q)
        size[key] = (kind, nbytes)
    per_query = []
    for q in queries:
        keys = {(kind, key): nbytes for qq, kind, _, key, nbytes in uses if qq == q}
        params = {key: n for (kind, key), n in keys.items() if kind == "param"}
        per_query.append(
            QueryMemory(
                name=q,
                param_bytes=sum(params.values()),
                shared_param_bytes=sum(n for key, n in params.items() if len(users[key]) > 1),
                buffer_bytes=sum(n for (kind, _), n in keys.items() if kind == "buffer"),
            )
        )
    return BundleMemory(
        queries=tuple(per_query),
        distinct_param_bytes=sum(n for kind, n in size.values() if kind == "param"),
        distinct_buffer_bytes=sum(n for kind, n in size.values() if kind == "buffer"),
    )


def _shared(uses: list[Use]) -> list[SharedTensors]:
    by_key: dict[object, list[tuple[str, str]]] = defaultdict(list)
    nbytes: dict[object, int] = {}
    for q, kind, name, key, n in uses:
        if kind == "param":
            loc = (q, name.rpartition(".")[0])
            if loc not in by_key[key]:
                by_key[key].append(loc)
            nbytes[key] = n
    groups: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
    for key, locs in by_key.items():
        if len({q for q, _ in locs}) > 1:
            groups[tuple(locs)] += nbytes[key]
    return [SharedTensors(members, n) for members, n in groups.items()]


def _uses_of_models(models: dict[str, nn.Module]) -> list[Use]:
    uses: list[Use] = []
    for q, model in models.items():
        for kind, named in (
            ("param", model.named_parameters()),
            ("buffer", model.named_buffers()),
        ):
            for name, t in named:
                uses.append((q, kind, name, id(t), t.numel() * t.element_size()))
    return uses


def _uses_of_manifest(m: BundleManifest) -> list[Use]:
    uses: list[Use] = []
    for q, entry in m.queries.items():
        for kind, table in (("param", entry.params), ("buffer", entry.buffers)):
            for name, tid in table.items():
                uses.append((q, kind, name, tid, m.tensors[tid].nbytes))
    return uses


def _manifest(bundle: str | Path | BundleManifest) -> BundleManifest:
    return bundle if isinstance(bundle, BundleManifest) else read_manifest(bundle)


def memory_of_models(models: dict[str, nn.Module]) -> BundleMemory:
    """Memory of live (possibly tied) models, keyed by query name."""
    return _account(_uses_of_models(models), list(models))


def bundle_memory(bundle: str | Path | BundleManifest) -> BundleMemory:
    """Memory of a bundle (a folder or its manifest)."""
    m = _manifest(bundle)
    return _account(_uses_of_manifest(m), list(m.queries))


def shared_layers_of_models(models: dict[str, nn.Module]) -> list[SharedTensors]:
    """Which queries' layers share parameters in live models."""
    return _shared(_uses_of_models(models))


def shared_layers(bundle: str | Path | BundleManifest) -> list[SharedTensors]:
    """Which queries' layers share parameters in a bundle."""
    return _shared(_uses_of_manifest(_manifest(bundle)))
