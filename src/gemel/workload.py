"""The workload file: the queries that run together on one edge box, validated on load.

A workload is plain data (pydantic models) that can be printed, diffed and saved. Only
``name`` and, per query, ``name`` + ``model`` are required; sources, tasks, targets, fps and
SLA are optional so that a file written for ``gemel analyze`` keeps working when later stages
read more of it.
"""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gemel.errors import GemelError

DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Normalization(_Strict):
    """Per-channel mean and std applied to RGB frames scaled to [0, 1]."""

    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD


class ModelSpec(_Strict):
    """How to build one query's model: a torchvision builder name or a user factory."""

    arch: str | None = None
    factory: str | None = Field(default=None, description="'pkg.module:function'")
    num_classes: int | None = Field(default=None, gt=0)
    checkpoint: Path | None = None
    input_size: tuple[int, int] | None = Field(default=None, description="[height, width]")
    normalization: Normalization = Normalization()
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("input_size", mode="before")
    @classmethod
    def _square(cls, v: Any) -> Any:
        return (v, v) if isinstance(v, int) else v

    @field_validator("input_size")
    @classmethod
    def _positive(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and min(v) <= 0:
            raise ValueError("input_size must be positive")
        return v

    @field_validator("factory")
    @classmethod
    def _factory_form(cls, v: str | None) -> str | None:
        if v is not None and (v.count(":") != 1 or not all(v.split(":"))):
            raise ValueError(f"factory must look like 'pkg.module:function', got {v!r}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.arch is None) == (self.factory is None):
            raise ValueError("give exactly one of 'arch' or 'factory'")
        return self

    @property
    def label(self) -> str:
        """The architecture name, or the factory path."""
        return self.arch or str(self.factory)


class SyntheticSource(_Strict):
    """A camera of the embedded synthetic street-scene generator."""

    kind: Literal["synthetic"] = "synthetic"
    camera: int = Field(default=0, ge=0)
    seed: int = 0
    frames: int = Field(default=3000, gt=0)
    resolution: tuple[int, int] = Field(default=(96, 96), description="[height, width]")
    fps: float = Field(default=10.0, gt=0)
    day_cycle_s: float = Field(
        default=100.0, gt=0, description="seconds from day to dusk and back to day"
    )


class VideoSource(_Strict):
    """A video file decoded with PyAV, with a label file beside it."""

    kind: Literal["video"] = "video"
    path: Path
    labels: Path | None = None
    fps: float | None = Field(default=None, gt=0, description="sampling rate; file rate if unset")
    resolution: tuple[int, int] | None = None


Source = Annotated[SyntheticSource | VideoSource, Field(discriminator="kind")]


class Splits(_Strict):
    """Contiguous time segments of a source, as fractions of its length, in this order."""

    train: float = Field(default=0.6, gt=0)
    val: float = Field(default=0.2, gt=0)
    test: float = Field(default=0.2, gt=0)

    @model_validator(mode="after")
    def _sum(self) -> Splits:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError("train + val + test must sum to 1")
        return self


class TaskSpec(_Strict):
    """What a query answers about its source's frames.

    ``presence``: is any object of ``classes`` in the frame (binary).
    ``dominant``: which of ``classes`` has the most objects (plus 'none').
    ``count``: how many objects of ``classes``, bucketed by ``buckets`` lower edges.
    ``detection``: boxes of ``classes``.
    """

    kind: Literal["presence", "dominant", "count", "detection"]
    classes: tuple[str, ...] = Field(min_length=1)
    buckets: tuple[int, ...] | None = None
    min_area: float = Field(default=0.0, ge=0, description="ignore boxes smaller than this (px^2)")

    @model_validator(mode="after")
    def _buckets(self) -> TaskSpec:
        if self.kind == "count":
            b = self.buckets
            if not b or b[0] != 0 or any(x >= y for x, y in itertools.pairwise(b)):
                raise ValueError("count tasks need 'buckets': increasing lower edges from 0")
        elif self.buckets is not None:
            raise ValueError(f"'buckets' only applies to count tasks, not {self.kind}")
        return self


class TrainSpec(_Strict):
    """How a base model is trained (``gemel train``)."""

    epochs: int = Field(default=6, gt=0)
    batch_size: int = Field(default=64, gt=0)
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)


class QuerySpec(_Strict):
    """One query: a video source, a model, a task and an accuracy target."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    model: ModelSpec
    source: str | None = None
    task: TaskSpec | None = None
    target: float | None = Field(
        default=None, gt=0, le=1, description="fraction of unmerged accuracy to keep"
    )
    fps: float | None = Field(default=None, gt=0)
    sla_ms: float | None = Field(default=None, gt=0)
    train: TrainSpec | None = None


class Defaults(_Strict):
    """Values a query takes when it does not set its own."""

    target: float = Field(default=0.95, gt=0, le=1)
    fps: float = Field(default=10.0, gt=0)
    sla_ms: float = Field(default=500.0, gt=0)
    train: TrainSpec = TrainSpec()


class Workload(_Strict):
    """The queries that run together on one edge box."""

    name: str = Field(min_length=1)
    description: str | None = None
    stage_budget_s: dict[str, float] | None = Field(
        default=None, description="per-stage wall-time budget of the full demo"
    )
    defaults: Defaults = Defaults()
    splits: Splits = Splits()
    sources: dict[str, Source] = Field(default_factory=dict)
    queries: list[QuerySpec] = Field(min_length=1)
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _references(self) -> Workload:
        seen: set[str] = set()
        for q in self.queries:
            if q.name in seen:
                raise ValueError(f"query {q.name!r}: field 'name': duplicate query name")
            seen.add(q.name)
            if q.source is not None and q.source not in self.sources:
                raise ValueError(
                    f"query {q.name!r}: field 'source': {q.source!r} is not in 'sources'"
                )
        return self

    def query(self, name: str) -> QuerySpec:
        """The query called ``name``."""
        for q in self.queries:
            if q.name == name:
                return q
        raise GemelError(f"{self.label}: no query named {name!r}")

    @property
    def query_names(self) -> list[str]:
        """The queries' names, in file order."""
        return [q.name for q in self.queries]

    @property
    def label(self) -> str:
        """How errors name this workload: its file, or its name."""
        return str(self.path) if self.path else self.name

    def target_of(self, q: QuerySpec) -> float:
        """The fraction of its unmerged accuracy ``q`` must keep (its own, else the default)."""
        return q.target if q.target is not None else self.defaults.target

    def fps_of(self, q: QuerySpec) -> float:
        """Frames per second of ``q``'s stream (its own, else the default)."""
        return q.fps if q.fps is not None else self.defaults.fps

    def sla_ms_of(self, q: QuerySpec) -> float:
        """Milliseconds within which ``q``'s answers count (its own, else the default)."""
        return q.sla_ms if q.sla_ms is not None else self.defaults.sla_ms

    def train_of(self, q: QuerySpec) -> TrainSpec:
        """Base-model training settings of ``q`` (its own, else the defaults)."""
        return q.train if q.train is not None else self.defaults.train

    def source_of(self, q: QuerySpec) -> SyntheticSource | VideoSource:
        """``q``'s video source; an error when the query names none."""
        if q.source is None:
            raise GemelError(f"{self.label}: query {q.name!r}: field 'source' is required here")
        return self.sources[q.source]

    def task_of(self, q: QuerySpec) -> TaskSpec:
        """``q``'s task; an error when the query has none."""
        if q.task is None:
            raise GemelError(f"{self.label}: query {q.name!r}: field 'task' is required here")
        return q.task


def _where(data: Any, loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location, naming queries by their name."""
    parts: list[str] = []
    i = 0
    if len(loc) >= 2 and loc[0] == "queries" and isinstance(loc[1], int):
        qname = None
        with contextlib.suppress(KeyError, IndexError, TypeError, AttributeError):
            qname = data["queries"][loc[1]].get("name")
        parts.append(f"query {qname!r}" if qname else f"queries[{loc[1]}]")
        i = 2
    field = ".".join(str(x) for x in loc[i:] if not str(x).startswith("function-"))
    if field:
        parts.append(f"field '{field}'")
    return ": ".join(parts)


def _message(data: Any, err: dict[str, Any]) -> str:
    loc = tuple(x for x in err["loc"] if x not in ("synthetic", "video"))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    where = _where(data, loc)
    return f"{where}: {msg}" if where else msg


def workload_from_dict(data: Any, path: Path | None = None) -> Workload:
    """Validate a parsed workload; errors name the file, the query and the field."""
    label = str(path) if path else "workload"
    if not isinstance(data, dict):
        raise GemelError(f"{label}: expected a mapping with 'name' and 'queries'")
    try:
        wl = Workload.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise GemelError(f"{label}: {_message(data, first)}{more}") from None
    if path is not None:
        base = path.parent
        wl = wl.model_copy(update={"path": path})
        _resolve_paths(wl, base)
    return wl


def _resolve_paths(wl: Workload, base: Path) -> None:
    """Make checkpoint, video and label paths relative to the workload file."""
    for q in wl.queries:
        ck = q.model.checkpoint
        if ck is not None and not ck.is_absolute():
            object.__setattr__(q.model, "checkpoint", base / ck)
    for src in wl.sources.values():
        if isinstance(src, VideoSource):
            for attr in ("path", "labels"):
                p = getattr(src, attr)
                if p is not None and not p.is_absolute():
                    object.__setattr__(src, attr, base / p)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_workload(path: str | Path) -> Workload:
    """Read and validate a workload YAML file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise GemelError(f"{path}: workload file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GemelError(f"{path}: cannot read workload file: {e}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}: line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise GemelError(f"{where}: YAML syntax error: {problem}") from None
    return workload_from_dict(data, path)
