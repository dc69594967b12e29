"""Shareable-layer analysis of a set of models: instances, groups and the max-merge bound."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from gemel.analyze.signature import Signature, shareable_layers, signature_of

Location = tuple[str, str]
"""``(query_name, module_path)``"""


@dataclass(frozen=True)
class Instance:
    """Locations with one signature, at most one per query, that could hold one set of weights."""

    signature: Signature
    members: tuple[Location, ...]

    @property
    def kind(self) -> str:
        return self.signature.kind

    @property
    def nbytes(self) -> int:
        """Bytes of one copy of the layer's parameters."""
        return self.signature.nbytes

    @property
    def savings(self) -> int:
        """Bytes saved by sharing: one copy instead of one per member."""
        return self.nbytes * (len(self.members) - 1)

    @property
    def queries(self) -> frozenset[str]:
        return frozenset(q for q, _ in self.members)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "signature": self.signature.describe(),
            "bytes": self.nbytes,
            "savings_bytes": self.savings,
            "members": [list(m) for m in self.members],
        }


@dataclass(frozen=True)
class Group:
    """Consecutive instances (in planner order) of one layer kind shared by the same queries."""

    index: int
    instances: tuple[Instance, ...]

    @property
    def kind(self) -> str:
        return self.instances[0].kind

    @property
    def queries(self) -> frozenset[str]:
        return self.instances[0].queries

    @property
    def savings(self) -> int:
        return sum(i.savings for i in self.instances)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "queries": sorted(self.queries),
            "savings_bytes": self.savings,
            "instances": len(self.instances),
        }


@dataclass(frozen=True)
class QueryStats:
    """Exact memory of one query's model."""

    name: str
    model: str
    params: int
    param_bytes: int
    buffer_bytes: int
    shareable_bytes: int
    """bytes in layers of shareable kinds"""
    mergeable_bytes: int
    """bytes in layers that belong to some instance (shareable with another query)"""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Analysis:
    """What a workload's models could share, heaviest instance first."""

    workload: str
    queries: tuple[QueryStats, ...]
    instances: tuple[Instance, ...]
    groups: tuple[Group, ...] = field(default=())

    @property
    def total_param_bytes(self) -> int:
        return sum(q.param_bytes for q in self.queries)

    @property
    def max_savings_bytes(self) -> int:
        """The bound: bytes saved if every instance were shared ("max merge")."""
        return sum(i.savings for i in self.instances)

    @property
    def max_savings_fraction(self) -> float:
        total = self.total_param_bytes
        return self.max_savings_bytes / total if total else 0.0

    def to_json(self, *, with_groups: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "workload": self.workload,
            "total_param_bytes": self.total_param_bytes,
            "max_savings_bytes": self.max_savings_bytes,
            "max_savings_fraction": self.max_savings_fraction,
            "queries": {q.name: q.to_json() for q in self.queries},
            "instances": [i.to_json() for i in self.instances],
        }
        if with_groups:
            out["groups"] = [g.to_json() for g in self.groups]
        return out


def _param_bytes(params: list[nn.Parameter]) -> int:
    return sum(p.numel() * p.element_size() for p in params)


def find_instances(models: dict[str, nn.Module]) -> list[Instance]:
    """Instances across ``models`` in planner order: most bytes saved first.

    Layers with one signature pair up by their rank in module order: the k-th such layer of
    each model joins instance k, so a model never has two locations in one instance.
    Instances with a single member are dropped (nothing to share).
    """
    by_sig: dict[Signature, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for qname, model in models.items():
        for path, module in shareable_layers(model):
            by_sig[signature_of(module)][qname].append(path)
    found: list[Instance] = []
    for sig, per_query in by_sig.items():  # insertion order: first seen, workload order
        depth = max(len(paths) for paths in per_query.values())
        for k in range(depth):
            members = tuple((q, paths[k]) for q, paths in per_query.items() if k < len(paths))
            if len(members) > 1:
                found.append(Instance(sig, members))
    found.sort(key=lambda i: -i.savings)  # stable: ties keep first-seen order
    return found


def make_groups(instances: list[Instance] | tuple[Instance, ...]) -> tuple[Group, ...]:
    """Cut planner-ordered instances into groups: runs of one kind over one query set."""
    groups: list[list[Instance]] = []
    for inst in instances:
        last = groups[-1][-1] if groups else None
        if last is not None and last.kind == inst.kind and last.queries == inst.queries:
            groups[-1].append(inst)
        else:
            groups.append([inst])
    return tuple(Group(i, tuple(g)) for i, g in enumerate(groups))


def analyze_models(
    models: dict[str, nn.Module],
    workload: str = "workload",
    labels: dict[str, str] | None = None,
) -> Analysis:
    """Analyze already-built models keyed by query name (works on ``meta`` models too).

    ``labels`` names each query's model in the tables (default: its class name).
    """
    instances = find_instances(models)
    in_instance: dict[str, set[str]] = defaultdict(set)
    for inst in instances:
        for q, path in inst.members:
            in_instance[q].add(path)
    stats = []
    for qname, model in models.items():
        layers = dict(shareable_layers(model))
        params = list(model.parameters())
        stats.append(
            QueryStats(
                name=qname,
                model=(labels or {}).get(qname, type(model).__name__),
                params=sum(p.numel() for p in params),
                param_bytes=_param_bytes(params),
                buffer_bytes=sum(b.numel() * b.element_size() for b in model.buffers()),
                shareable_bytes=sum(
                    _param_bytes(list(m.parameters(recurse=False))) for m in layers.values()
                ),
                mergeable_bytes=sum(
                    _param_bytes(list(layers[p].parameters(recurse=False)))
                    for p in in_instance[qname]
                ),
            )
        )
    return Analysis(workload, tuple(stats), tuple(instances), make_groups(instances))
