"""The simulator's executor: advances a virtual clock by profiled durations and answers each
frame with the prediction the bundle's model made on it (a per-frame prediction record)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gemel.edge.blocks import Block, LoadPlan
from gemel.edge.engine import VirtualClock
from gemel.edge.profile import Profile


class ReplayExecutor:
    """Copies take ``profile.load_s`` on one copy engine (overlapping with compute only when the
    profiled device could overlap them); a batch takes the profiled run time of its size."""

    def __init__(
        self,
        clock: VirtualClock,
        profile: Profile,
        predictions: Mapping[str, Sequence[Any]],
        blocks_of: Callable[[str], list[Block]],
    ) -> None:
        self.clock = clock
        self.profile = profile
        self.cost = profile.cost_model()
        self.predictions = predictions
        self.blocks_of = blocks_of
        self.swap_s = 0.0
        self._copy_free = 0.0
        self._ready: dict[str, float] = {}

    def apply(self, plan: LoadPlan, *, background: bool = False) -> None:
        for b in plan.evict:
            self._ready.pop(b.id, None)
        for b in plan.load:
            seconds = self.profile.load_s(b.id, b.nbytes)
            start = max(self._copy_free, self.clock.now())
            self._copy_free = start + seconds
            self._ready[b.id] = self._copy_free
            self.swap_s += seconds
        if not (background and self.profile.overlap_copies):
            self.clock.wait_until(self._copy_free)

    def run(self, query: str, frames: list[int]) -> list[tuple[int, Any]]:
        ready = max((self._ready.get(b.id, 0.0) for b in self.blocks_of(query)), default=0.0)
        self.clock.wait_until(ready)
        if frames:
            self.clock.advance(self.cost.run(query, len(frames)) + self.profile.overhead_s)
        preds = self.predictions[query]
        return [(i, preds[i]) for i in frames if i < len(preds) and preds[i] is not None]
