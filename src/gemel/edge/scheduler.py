"""The scheduler: which query runs next and on how many frames.

Round-robin time sharing over a merge-aware order (queries that share blocks sit next to each
other, so a shared block stays resident across their turns). Batch sizes maximise the sorted
vector of per-query fractions of frames processed, worst-off query first, by a greedy search
over a cost model (run time per batch size, load bandwidth, activation memory).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gemel.edge.blocks import Block, BlockManager
from gemel.edge.eviction import EvictionPolicy
from gemel.errors import GemelError

BATCH_SIZES = (1, 2, 4, 8)


def batch_sizes(max_batch: int) -> tuple[int, ...]:
    """The batch sizes of :data:`BATCH_SIZES` up to ``max_batch`` (at least 1)."""
    if max_batch < 1:
        raise GemelError(f"the largest batch size must be at least 1, not {max_batch}")
    return tuple(b for b in BATCH_SIZES if b <= max_batch)


@dataclass
class CostModel:
    """Estimated costs the scheduler plans with; updated from observations while running."""

    run_s: dict[str, dict[int, float]]
    """query -> batch size -> seconds per batch"""
    activation_bytes: dict[str, dict[int, int]]
    """query -> batch size -> peak activation bytes"""
    load_bytes_per_s: float
    turn_overhead_s: float = 0.0
    smoothing: float = 0.3

    def run(self, query: str, batch: int) -> float:
        """Seconds per batch; never less than a smaller batch's (noisy measurements can make
        a larger batch look faster, which would mislead the batch-size search)."""
        table = self.run_s[query]
        return max([_interpolate(table, batch), *(v for b, v in table.items() if b < batch)])

    def activation(self, query: str, batch: int) -> int:
        return int(_interpolate(self.activation_bytes[query], batch))

    def load(self, nbytes: int) -> float:
        return nbytes / self.load_bytes_per_s if nbytes else 0.0

    def observe_run(self, query: str, batch: int, seconds: float) -> None:
        table = self.run_s.setdefault(query, {})
        old = table.get(batch)
        table[batch] = seconds if old is None else old + self.smoothing * (seconds - old)

    def observe_overhead(self, seconds: float) -> None:
        """Time of a turn spent outside copies and the model (bookkeeping, frames, results)."""
        self.turn_overhead_s += self.smoothing * (seconds - self.turn_overhead_s)

    def observe_load(self, nbytes: int, seconds: float) -> None:
        if nbytes > 0 and seconds > 0:
            old = self.load_bytes_per_s
            self.load_bytes_per_s = old + self.smoothing * (nbytes / seconds - old)


def _interpolate(table: Mapping[int, float], x: int) -> float:
    """Piecewise-linear in the batch size; proportional beyond the largest known one."""
    if x in table:
        return table[x]
    keys = sorted(table)
    if x < keys[0]:
        return table[keys[0]]
    if x > keys[-1]:
        return table[keys[-1]] * x / keys[-1]
    hi = next(k for k in keys if k > x)
    lo = max(k for k in keys if k < x)
    return table[lo] + (table[hi] - table[lo]) * (x - lo) / (hi - lo)


@dataclass(frozen=True)
class StreamRate:
    """What the scheduler needs to know of a query's stream."""

    fps: float
    sla_s: float


def merge_aware_order(queries: Sequence[str], blocks_of: Callable[[str], list[Block]]) -> list[str]:
    """Chain queries so that neighbours share as many bytes as possible (greedy nearest
    neighbour, starting from the query sharing most); ties keep the given order."""

    def shared(a: str, b: str) -> int:
        mine = {blk.id: blk.nbytes for blk in blocks_of(a)}
        return sum(blk.nbytes for blk in blocks_of(b) if blk.id in mine)

    left = list(queries)
    if len(left) <= 2:
        return left
    totals = {q: sum(shared(q, o) for o in left if o != q) for q in left}
    order = [max(left, key=lambda q: (totals[q], -left.index(q)))]
    left.remove(order[0])
    while left:
        nxt = max(left, key=lambda q: (shared(order[-1], q), totals[q], -queries.index(q)))
        order.append(nxt)
        left.remove(nxt)
    return order


def steady_state_swap_bytes(
    blocks: Sequence[Block],
    budget_bytes: int,
    overhead_bytes: int,
    policy: EvictionPolicy,
    order: Sequence[str],
    activation: Mapping[str, int],
) -> dict[str, int]:
    """Bytes each query loads per cycle once the cyclic schedule is in steady state
    (a dry run of the block manager over two cycles)."""
    bm = BlockManager(blocks, budget_bytes, policy, overhead_bytes=overhead_bytes)
    loaded = dict.fromkeys(order, 0)
    n = len(order)
    for cycle in range(2):
        for i, q in enumerate(order):
            future = [order[(i + k) % n] for k in range(1, n + 1)]
            plan = bm.acquire(q, activation[q], future)
            if cycle == 1:
                loaded[q] += plan.load_bytes
            bm.release(q)
    return loaded


def lexi_key(fractions: Mapping[str, float]) -> tuple[float, ...]:
    """Sorted vector of fractions, worst-off first: larger tuples are better."""
    return tuple(round(f, 9) for f in sorted(fractions.values()))


def predicted_fractions(
    batch: Mapping[str, int],
    rates: Mapping[str, StreamRate],
    cost: CostModel,
    swap_bytes: Mapping[str, int],
) -> dict[str, float]:
    """Fraction of each stream's frames processed within the SLA, per the cost model."""
    turn = {
        q: cost.load(swap_bytes.get(q, 0)) + cost.run(q, b) + cost.turn_overhead_s
        for q, b in batch.items()
    }
    cycle = sum(turn.values())
    out: dict[str, float] = {}
    for q, b in batch.items():
        r = rates[q]
        # the k-th newest frame of a batch waited k/fps before the turn began
        slack = r.sla_s - turn[q]
        useful = 0 if slack < 0 else min(b, math.floor(slack * r.fps) + 1)
        arriving = max(r.fps * cycle, 1e-12)
        out[q] = min(1.0, useful / arriving)
    return out


def choose_batch_sizes(
    queries: Sequence[str],
    rates: Mapping[str, StreamRate],
    cost: CostModel,
    swap_bytes: Mapping[str, int],
    *,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    fits: Callable[[str, int], bool] = lambda q, b: True,
) -> dict[str, int]:
    """Greedy ascent on the sorted fraction vector, worst-off first.

    Each step tries moving one query, the worst-off queries together, or every query to its
    next larger batch size, and takes the move that improves the vector most; it stops when no
    move improves it (at most ``len(queries) * len(batch_sizes)`` steps).
    """
    sizes = sorted(batch_sizes)
    batch = {q: sizes[0] for q in queries}
    best = predicted_fractions(batch, rates, cost, swap_bytes)

    def step_up(current: dict[str, int], group: Sequence[str]) -> dict[str, int] | None:
        trial = dict(current)
        for q in group:
            i = sizes.index(current[q])
            if i + 1 >= len(sizes) or not fits(q, sizes[i + 1]):
                return None
            trial[q] = sizes[i + 1]
        return trial

    while True:
        worst = min(best.values())
        groups = [[q] for q in queries]
        groups.append([q for q in queries if best[q] <= worst + 1e-9])
        groups.append(list(queries))
        move = None
        for group in groups:
            trial = step_up(batch, group)
            if trial is None:
                continue
            frac = predicted_fractions(trial, rates, cost, swap_bytes)
            if lexi_key(frac) > lexi_key(best if move is None else move[1]):
                move = (trial, frac)
        if move is None:
            return batch
        batch, best = move


@dataclass
class TimeSharingScheduler:
    """Round-robin over ``order`` with per-query batch sizes, re-planned every few cycles."""

    order: list[str]
    batch: dict[str, int] = field(default_factory=dict)
    _cursor: int = 0

    def next_query(self, has_work: Callable[[str], bool]) -> str | None:
        """The next query in round-robin order that has frames to process (None if none)."""
        n = len(self.order)
        for k in range(n):
            q = self.order[(self._cursor + k) % n]
            if has_work(q):
                self._cursor = (self._cursor + k + 1) % n
                return q
        return None

    def future(self) -> list[str]:
        """The next full cycle of queries, starting after the one just returned."""
        n = len(self.order)
        return [self.order[(self._cursor + k) % n] for k in range(n)]

    @property
    def cycle_start(self) -> bool:
        return self._cursor == 0
