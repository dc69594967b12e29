"""Tie live models' parameters so shared layers hold ONE ``nn.Parameter`` each.

After :func:`apply_merge`, every member of a shared instance holds the very same parameter
objects (weight and bias), so an optimiser step through any model updates all of them, and
gradients from every model accumulate in one tensor. Buffers and normalisation layers stay
private. :class:`Snapshot` saves and restores a set of queries' parameters (objects and values)
so the planner can roll a step back; :func:`untie` gives locations private copies again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from gemel.merge.config import Init, Member, MergeConfig


def apply_merge(
    models: dict[str, nn.Module], config: MergeConfig, init: Init | None = None
) -> None:
    """Tie the parameters of every shared instance of ``config`` in place.

    ``init`` (default: ``config.init``) sets where a newly shared tensor starts: ``"first"``
    takes the first member's values (its parameter object is kept), ``"mean"`` the element-wise
    mean of the members' distinct tensors. An instance whose members already hold one object is
    left as it is, so re-applying a grown configuration keeps retrained weights.
    """
    config.validate_for(models)
    init = init or config.init
    for layer in config.shared:
        modules = [models[q].get_submodule(path) for q, path in layer.members]
        for name in list(modules[0]._parameters):
            params = [m._parameters[name] for m in modules]
            if params[0] is None:
                continue
            distinct = list({id(p): p for p in params}.values())
            if len(distinct) == 1:
                continue
            if init == "mean":
                with torch.no_grad():
                    mean = torch.stack([p.detach() for p in distinct]).mean(dim=0)
                shared = nn.Parameter(mean.to(params[0].dtype), params[0].requires_grad)
            else:
                shared = params[0]
            for m in modules:
                m._parameters[name] = shared


def untie(models: dict[str, nn.Module], members: Iterable[Member]) -> None:
    """Give each ``(query, module_path)`` its own copy of its current parameters."""
    for q, path in members:
        module = models[q].get_submodule(path)
        for name, p in list(module._parameters.items()):
            if p is not None:
                module._parameters[name] = nn.Parameter(p.detach().clone(), p.requires_grad)


def shared_locations(models: dict[str, nn.Module]) -> list[tuple[Member, ...]]:
    """The sharing structure of live models: locations whose parameters are one object.

    Each entry lists the ``(query, module_path)`` pairs that hold the same parameters, in
    model order; only parameters used by two or more locations are listed.
    """
    users: dict[int, list[Member]] = {}
    for q, model in models.items():
        for path, module in model.named_modules(remove_duplicate=False):
            for p in module._parameters.values():
                if p is not None:
                    loc = (q, path)
                    lst = users.setdefault(id(p), [])
                    if loc not in lst:
                        lst.append(loc)
    out: list[tuple[Member, ...]] = []
    seen: set[tuple[Member, ...]] = set()
    for locs in users.values():
        key = tuple(locs)
        if len(key) > 1 and key not in seen:
            seen.add(key)
            out.append(key)
    return out


@dataclass
class Snapshot:
    """The parameters and buffers of some queries' models: objects and values, to roll back."""

    entries: list[tuple[nn.Module, str, str, torch.Tensor, torch.Tensor]]
    """``(module, kind, name, object, saved value)``, kind ``"param"`` or ``"buffer"``"""

    @classmethod
    def take(cls, models: dict[str, nn.Module], queries: Iterable[str]) -> Snapshot:
        """Remember the given queries' parameters and buffers (values are copied once each)."""
        saved: dict[int, torch.Tensor] = {}
        entries = []
        for q in queries:
            for _, module in models[q].named_modules(remove_duplicate=False):
                for kind, table in (("param", module._parameters), ("buffer", module._buffers)):
                    for name, t in table.items():
                        if t is None:
                            continue
                        if id(t) not in saved:
                            saved[id(t)] = t.detach().clone()
                        entries.append((module, kind, name, t, saved[id(t)]))
        return cls(entries)

    def restore(self) -> None:
        """Put the remembered objects back in place, holding the remembered values.

        Ties made after the snapshot are undone for these queries; a parameter also used by a
        query outside the snapshot gets its old value back there too.
        """
        done: set[int] = set()
        with torch.no_grad():
            for module, kind, name, obj, value in self.entries:
                table = module._parameters if kind == "param" else module._buffers
                table[name] = obj
                if id(obj) not in done:
                    done.add(id(obj))
                    obj.copy_(value)
                    if isinstance(obj, nn.Parameter):
                        obj.grad = None
