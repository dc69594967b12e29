"""The merge configuration: which layers of which queries' models hold one set of weights.

A configuration is plain, frozen data (pydantic): it prints, diffs and saves as JSON. Each
shared instance lists its members as ``(query, module_path)`` pairs, at most one per query; the
first member is where shared weights come from when ``init`` is ``"first"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from torch import nn

from gemel.analyze.analysis import Instance
from gemel.analyze.signature import is_shareable, signature_of
from gemel.errors import GemelError
from gemel.io import write_json_atomic

Init = Literal["first", "mean"]
Member = tuple[str, str]
"""``(query_name, module_path)``"""


class SharedLayer(BaseModel):
    """One shared instance: layers of several queries' models that hold one set of weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    members: tuple[Member, ...] = Field(min_length=2)

    @field_validator("members")
    @classmethod
    def _one_per_query(cls, v: tuple[Member, ...]) -> tuple[Member, ...]:
        queries = [q for q, _ in v]
        dup = next((q for q in queries if queries.count(q) > 1), None)
        if dup is not None:
            raise ValueError(f"query {dup!r} appears twice in one shared layer")
        return v

    @property
    def queries(self) -> frozenset[str]:
        return frozenset(q for q, _ in self.members)

    def describe(self) -> str:
        """``q1:layer4.0.conv1 = q2:layer4.0.conv1``"""
        return " = ".join(f"{q}:{p}" for q, p in self.members)


class MergeConfig(BaseModel):
    """The set of shared instances whose weights are tied, and how shared tensors start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    init: Init = "first"
    shared: tuple[SharedLayer, ...] = ()

    @field_validator("shared")
    @classmethod
    def _disjoint(cls, v: tuple[SharedLayer, ...]) -> tuple[SharedLayer, ...]:
        seen: set[Member] = set()
        for layer in v:
            for m in layer.members:
                if m in seen:
                    raise ValueError(f"{m[0]}:{m[1]} is in two shared layers")
                seen.add(m)
        return v

    @classmethod
    def from_instances(
        cls, instances: Iterable[Instance | SharedLayer], *, init: Init = "first"
    ) -> MergeConfig:
        """A configuration that shares every given analysis instance (or shared layer)."""
        return cls(init=init).add(instances)

    @property
    def queries_touched(self) -> frozenset[str]:
        """Queries that share at least one layer."""
        return frozenset(q for layer in self.shared for q in layer.queries)

    @property
    def members(self) -> frozenset[Member]:
        """Every shared location."""
        return frozenset(m for layer in self.shared for m in layer.members)

    def add(self, instances: Iterable[Instance | SharedLayer]) -> MergeConfig:
        """This configuration with more instances shared.

        An instance that overlaps an already shared one joins it (their members merge); a merge
        that would put two layers of one query in one instance is refused.
        """
        layers = [list(layer.members) for layer in self.shared]
        for inst in instances:
            new = [tuple(m) for m in inst.members]
            hits = [i for i, ms in enumerate(layers) if set(ms) & set(new)]
            merged: list[Member] = []
            for i in hits:
                merged += layers[i]
            merged += [m for m in new if m not in merged]
            layers = [ms for i, ms in enumerate(layers) if i not in hits] + [merged]
        return self._with(layers)

    def without(self, members: Iterable[Member]) -> MergeConfig:
        """This configuration with the given locations made private again.

        An instance left with fewer than two members is dropped.
        """
        drop = {tuple(m) for m in members}
        return self._with([[m for m in layer.members if m not in drop] for layer in self.shared])

    def without_queries(self, queries: Iterable[str]) -> MergeConfig:
        """This configuration with every layer of the given queries made private again."""
        qs = set(queries)
        return self.without(m for m in self.members if m[0] in qs)

    def _with(self, layers: list[list[Member]]) -> MergeConfig:
        try:
            return MergeConfig(
                init=self.init,
                shared=tuple(SharedLayer(members=tuple(ms)) for ms in layers if len(ms) > 1),
            )
        except ValidationError as e:
            raise GemelError(f"merge configuration: {_first_error(e)}") from None

    def shared_bytes(self, models: dict[str, nn.Module]) -> int:
        """Bytes saved by this configuration on ``models`` (one copy per instance, not one each)."""
        total = 0
        for layer in self.shared:
            q, path = layer.members[0]
            module = models[q].get_submodule(path)
            nbytes = sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))
            total += nbytes * (len(layer.members) - 1)
        return total

    def validate_for(self, models: dict[str, nn.Module]) -> None:
        """Refuse a configuration that does not fit ``models`` (raises GemelError).

        Every member must name a known query and module path, of a shareable kind, and all
        members of one instance must have equal signatures.
        """
        for layer in self.shared:
            first_sig = None
            for q, path in layer.members:
                if q not in models:
                    known = ", ".join(sorted(models))
                    raise GemelError(
                        f"merge configuration: unknown query {q!r} in shared layer "
                        f"[{layer.describe()}] (queries: {known})"
                    )
                try:
                    module = models[q].get_submodule(path)
                except AttributeError:
                    raise GemelError(
                        f"merge configuration: query {q!r} has no module {path!r}"
                    ) from None
                if not is_shareable(module):
                    raise GemelError(
                        f"merge configuration: {q}:{path} is a {type(module).__name__}, "
                        "which is not a shareable layer kind"
                    )
                sig = signature_of(module)
                if first_sig is None:
                    first_sig, first = sig, (q, path)
                elif sig != first_sig:
                    raise GemelError(
                        f"merge configuration: {q}:{path} is {sig.describe()} but "
                        f"{first[0]}:{first[1]} is {first_sig.describe()}; "
                        "only layers with equal signatures can share weights"
                    )

    def to_json(self) -> dict:
        return self.model_dump(mode="json")

    def save(self, path: str | Path) -> None:
        """Write as JSON (atomically)."""
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> MergeConfig:
        """Read a configuration written by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise GemelError(f"{path}: merge configuration not found") from None
        except (OSError, ValueError) as e:
            raise GemelError(f"{path}: cannot read merge configuration: {e}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise GemelError(f"{path}: {_first_error(e)}") from None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"field '{loc}': {msg}" if loc else msg
