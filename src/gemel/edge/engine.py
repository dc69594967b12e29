"""The edge engine loop: scheduler, block manager and executor put together.

The same loop drives the real runtime (wall clock, :class:`~gemel.edge.executor.TorchExecutor`)
and the simulator (virtual clock, :class:`~gemel.edge.replay.ReplayExecutor`): only the clock
and the executor differ.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gemel.edge.accuracy import FrameResult
from gemel.edge.blocks import BlockManager, LoadPlan
from gemel.edge.executor import manifest_blocks
from gemel.edge.scheduler import (
    BATCH_SIZES,
    CostModel,
    StreamRate,
    TimeSharingScheduler,
    choose_batch_sizes,
    merge_aware_order,
    steady_state_swap_bytes,
)
from gemel.edge.streams import Stream


class Clock(Protocol):
    """Seconds since the run started: wall time for the runtime, virtual for the simulator."""

    def now(self) -> float: ...
    def wait_until(self, t: float) -> None: ...


class WallClock:
    """Seconds since construction, on the monotonic performance counter.

    Waiting sleeps until ``spin_s`` before the deadline and then yields in a loop: a plain
    sleep can wake milliseconds late on a busy machine, which would delay every frame.
    """

    def __init__(self, spin_s: float = 0.002) -> None:
        self._t0 = time.perf_counter()
        self.spin_s = spin_s

    def now(self) -> float:
        return time.perf_counter() - self._t0

    def wait_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > self.spin_s:
            time.sleep(delay - self.spin_s)
        while self.now() < t:
            time.sleep(0)


class VirtualClock:
    """A clock that moves only when told to (the simulator's)."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def wait_until(self, t: float) -> None:
        self.t = max(self.t, t)

    def advance(self, seconds: float) -> None:
        self.t += seconds


class UpdateSource(Protocol):
    """Newer bundles published while the engine runs (see :mod:`gemel.edge.updates`)."""

    def poll(self) -> tuple[Any, Any] | None:
        """A newer ``(manifest, host store)`` to adopt, or None."""


class Executor(Protocol):
    """Moves bytes and runs models on whatever the block manager made resident."""

    swap_s: float
    """seconds spent copying blocks in, so far (background copies included)"""

    def apply(self, plan: LoadPlan, *, background: bool = False) -> None:
        """Evict then load the plan's blocks; ``background`` overlaps with the next run."""

    def run(self, query: str, frames: list[int]) -> list[tuple[int, Any]]:
        """Answer ``frames`` of ``query``; returns ``(frame, prediction)`` for frames that
        could be read (a bad frame is skipped, never fatal)."""


@dataclass
class EngineResult:
    """What happened during one run of the loop."""

    duration_s: float
    results: dict[str, list[FrameResult]]
    batches: dict[str, int]
    batch_sizes: dict[str, int]
    order: list[str]
    loads: int
    load_bytes: int
    swaps: int
    swap_bytes: int
    swap_s: float
    peak_bytes: int
    sched_overhead_s: list[float] = field(default_factory=list)
    """per batch: wall time of the scheduler and the block manager"""
    turn_overhead_s: list[float] = field(default_factory=list)
    """per batch: wall time of the turn outside foreground copies and the model run"""
    updates: list[dict[str, Any]] = field(default_factory=list)
    """live bundle updates adopted during the run"""


class EdgeEngine:
    """Round-robin time sharing of the device between the queries' streams."""

    def __init__(
        self,
        streams: Mapping[str, Stream],
        scheduler: TimeSharingScheduler,
        blocks: BlockManager,
        executor: Executor,
        clock: Clock,
        cost: CostModel,
        *,
        prefetch: bool = True,
        batch_sizes: tuple[int, ...] = BATCH_SIZES,
        replan_every: int = 4,
        learn: bool = True,
        updates: UpdateSource | None = None,
    ) -> None:
        self.streams = dict(streams)
        self.scheduler = scheduler
        self.blocks = blocks
        self.executor = executor
        self.clock = clock
        self.cost = cost
        self.prefetch = prefetch
        self.batch_sizes = batch_sizes
        self.replan_every = replan_every
        self.learn = learn
        self.updates = updates
        self.adoptions: list[dict[str, Any]] = []
        self.rates = {q: StreamRate(s.fps, s.sla_s) for q, s in self.streams.items()}
        for q in scheduler.order:
            blocks.check_fits(q, cost.activation(q, 1))
        self._cycles = 0

    def plan_batches(self) -> None:
        """Re-choose batch sizes from the cost model and the steady-state swap volume."""
        sched, bm = self.scheduler, self.blocks
        act = {q: self.cost.activation(q, sched.batch.get(q, 1)) for q in sched.order}
        swaps = steady_state_swap_bytes(
            list(bm.blocks.values()), bm.budget_bytes, bm.overhead_bytes, bm.policy,
            sched.order, act,
        )  # fmt: skip

        def fits(q: str, b: int) -> bool:
            need = bm.overhead_bytes + bm.weight_bytes(q) + self.cost.activation(q, b)
            return need <= bm.budget_bytes

        sched.batch = choose_batch_sizes(
            sched.order, self.rates, self.cost, swaps, batch_sizes=self.batch_sizes, fits=fits
        )

    def adopt(self, manifest: Any, host: Any) -> set[str]:
        """Switch to a newer bundle between batches; returns the block ids now resident."""
        old = self.blocks
        hot = {q for q in self.scheduler.order if old.is_ready(q)}
        report = self.executor.adopt(manifest, host, hot)  # type: ignore[attr-defined]
        names = set(self.streams)
        blocks = [b for b in manifest_blocks(manifest) if b.queries & names]
        bm = BlockManager(blocks, old.budget_bytes, old.policy, overhead_bytes=old.overhead_bytes)
        bm.mark_resident(report["resident"])
        bm.loads, bm.load_bytes, bm.evictions = old.loads, old.load_bytes, old.evictions
        bm.peak_bytes = max(bm.peak_bytes, old.peak_bytes)
        self.blocks = bm
        self.scheduler.order = merge_aware_order(self.scheduler.order, bm.blocks_of)
        report = {k: v for k, v in report.items() if k != "resident"}
        self.adoptions.append({"at_s": self.clock.now(), **report})
        return set(bm.resident)

    def run(
        self, duration_s: float, on_turn: Callable[[EdgeEngine, float], None] | None = None
    ) -> EngineResult:
        """Play every stream for ``duration_s`` seconds (or until all have ended)."""
        sched, bm, clock = self.scheduler, self.blocks, self.clock
        results: dict[str, list[FrameResult]] = {q: [] for q in self.streams}
        batches = dict.fromkeys(self.streams, 0)
        overhead: list[float] = []
        turn_overhead: list[float] = []
        seen: set[str] = set()
        swapped: list[int] = []  # bytes of each load of a block that had been loaded before

        def count(plan: LoadPlan) -> None:
            for b in plan.load:
                if b.id in seen:
                    swapped.append(b.nbytes)
                seen.add(b.id)

        self.plan_batches()
        while True:
            now = clock.now()
            if now >= duration_s:
                break
            if self.updates is not None and (update := self.updates.poll()) is not None:
                seen.clear()
                seen.update(self.adopt(*update))
                bm = self.blocks
                self.plan_batches()
            t_sched = time.perf_counter()
            if sched.cycle_start:
                self._cycles += 1
                if self._cycles % self.replan_every == 0:
                    self.plan_batches()
            q = sched.next_query(lambda name, t=now: self.streams[name].has_work(t))
            if q is None:
                nxt = min(s.next_arrival(now) for s in self.streams.values())
                if nxt == math.inf:
                    break
                clock.wait_until(min(nxt, duration_s))
                continue
            frames = self.streams[q].take(now, sched.batch.get(q, 1))
            future = sched.future()
            plan = bm.acquire(q, self.cost.activation(q, len(frames)), future)
            overhead.append(time.perf_counter() - t_sched)
            count(plan)
            w0 = time.perf_counter()
            t0 = clock.now()
            self.executor.apply(plan)
            t1 = clock.now()
            w1 = time.perf_counter()
            if plan.load and self.learn:
                self.cost.observe_load(plan.load_bytes, t1 - t0)
            w_pre = 0.0
            if self.prefetch:
                t_pre = time.perf_counter()
                nq = next((n for n in future if n != q), None)
                pre = bm.prefetch(nq, future[1:]) if nq is not None else None
                overhead[-1] += time.perf_counter() - t_pre
                if pre is not None and (pre.load or pre.evict):
                    count(pre)
                    w = time.perf_counter()
                    self.executor.apply(pre, background=True)
                    w_pre = time.perf_counter() - w
            t2 = clock.now()
            w2 = time.perf_counter()
            answers = self.executor.run(q, frames)
            t3 = clock.now()
            w3 = time.perf_counter()
            bm.release(q)
            batches[q] += 1
            results[q].extend(FrameResult(i, t3, pred) for i, pred in answers)
            extra = (time.perf_counter() - t_sched) - (w1 - w0) - (w3 - w2) - w_pre
            turn_overhead.append(extra)
            if self.learn and frames:
                self.cost.observe_run(q, len(frames), t3 - t2)
                self.cost.observe_overhead(extra)
            if on_turn is not None:
                on_turn(self, t3)
        return EngineResult(
            duration_s=duration_s,
            results=results,
            batches=batches,
            batch_sizes=dict(sched.batch),
            order=list(sched.order),
            loads=bm.loads,
            load_bytes=bm.load_bytes,
            swaps=len(swapped),
            swap_bytes=sum(swapped),
            swap_s=self.executor.swap_s,
            peak_bytes=bm.peak_bytes,
            sched_overhead_s=overhead,
            turn_overhead_s=turn_overhead,
            updates=self.adoptions,
        )
