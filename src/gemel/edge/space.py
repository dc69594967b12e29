"""Space sharing, the comparison mode: fixed memory slices and concurrent execution.

Queries are admitted in schedule order while their blocks (a block shared with an admitted
query is already there) and their batch-1 activations fit the budget; admitted queries keep
their blocks resident for the whole run (no swaps) and split what memory is left, in
proportion to their running memory, as room for larger batches. They run concurrently: on the
real runtime one thread per query (its own CUDA stream on a GPU); in the simulator each batch
takes its profiled time divided by the query's share of the device (1 / admitted queries).
Queries that do not fit are not served at all: their frames are answered by nothing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace

import torch

from gemel.edge.accuracy import FrameResult
from gemel.edge.blocks import BlockManager
from gemel.edge.engine import Clock, EngineResult, Executor, VirtualClock
from gemel.edge.scheduler import CostModel, StreamRate, predicted_fractions
from gemel.edge.streams import Stream
from gemel.errors import GemelError
from gemel.units import format_bytes


def admit(
    order: Sequence[str], blocks: BlockManager, cost: CostModel
) -> tuple[list[str], dict[str, int]]:
    """``(admitted queries, activation bytes each may use)`` under the block manager's budget."""
    admitted: list[str] = []
    resident: set[str] = set()
    used = blocks.overhead_bytes
    for q in order:
        new = sum(b.nbytes for b in blocks.blocks_of(q) if b.id not in resident)
        act = cost.activation(q, 1)
        if used + new + act <= blocks.budget_bytes:
            admitted.append(q)
            resident |= {b.id for b in blocks.blocks_of(q)}
            used += new + act
    left = blocks.budget_bytes - used
    running = {q: blocks.weight_bytes(q) + cost.activation(q, 1) for q in admitted}
    total = sum(running.values()) or 1
    return admitted, {q: cost.activation(q, 1) + left * running[q] // total for q in admitted}


def _best_batch(q: str, rate: StreamRate, cost: CostModel, room: int, sizes: Sequence[int]) -> int:
    """The smallest batch size that maximises the query's own fraction of frames processed."""
    best, best_frac = sizes[0], -1.0
    for b in sizes:
        if cost.activation(q, b) > room:
            break
        frac = predicted_fractions({q: b}, {q: rate}, cost, {})[q]
        if frac > best_frac + 1e-9:
            best, best_frac = b, frac
    return best


class SpaceSharingEngine:
    """Admitted queries run side by side, each in its own fixed slice of device memory."""

    def __init__(
        self,
        streams: Mapping[str, Stream],
        order: Sequence[str],
        blocks: BlockManager,
        executor: Executor,
        clock: Clock,
        cost: CostModel,
        *,
        batch_sizes: Sequence[int],
    ) -> None:
        self.streams = dict(streams)
        self.blocks = blocks
        self.executor = executor
        self.clock = clock
        self.admitted, self.room = admit(order, blocks, cost)
        if not self.admitted:
            raise GemelError(
                f"space sharing: no query fits the memory budget "
                f"{format_bytes(blocks.budget_bytes)} with its activations"
            )
        share = max(1, len(self.admitted))
        shared_cost = replace(
            cost,
            run_s={q: {b: s * share for b, s in t.items()} for q, t in cost.run_s.items()},
        )
        rates = {q: StreamRate(s.fps, s.sla_s) for q, s in self.streams.items()}
        self.batch = {
            q: _best_batch(q, rates[q], shared_cost, self.room[q], sorted(batch_sizes))
            for q in self.admitted
        }
        self.share = share

    def run(self, duration_s: float) -> EngineResult:
        """Load every admitted query's blocks once, then serve the streams concurrently."""
        for q in self.admitted:
            self.executor.apply(self.blocks.acquire(q, self.room[q]))
        results: dict[str, list[FrameResult]] = {q: [] for q in self.streams}
        batches = dict.fromkeys(self.streams, 0)
        if isinstance(self.clock, VirtualClock):
            self._run_virtual(duration_s, results, batches)
        else:
            self._run_threads(duration_s, results, batches)
        return EngineResult(
            duration_s=duration_s,
            results=results,
            batches=batches,
            batch_sizes=dict(self.batch),
            order=self.admitted,
            loads=self.blocks.loads,
            load_bytes=self.blocks.load_bytes,
            swaps=0,
            swap_bytes=0,
            swap_s=self.executor.swap_s,
            peak_bytes=self.blocks.peak_bytes,
        )

    def _run_virtual(self, duration_s: float, results, batches) -> None:
        clock = self.clock
        assert isinstance(clock, VirtualClock)
        free_at = dict.fromkeys(self.admitted, clock.now())
        while free_at:
            q = min(free_at, key=lambda name: (free_at[name], name))
            now = free_at[q]
            if now >= duration_s:
                del free_at[q]
                continue
            stream = self.streams[q]
            if not stream.has_work(now):
                nxt = stream.next_arrival(now)
                if nxt == math.inf:
                    del free_at[q]
                else:
                    free_at[q] = max(nxt, now)
                continue
            clock.t = now
            frames = stream.take(now, self.batch[q])
            answers = self.executor.run(q, frames)
            finish = now + (clock.now() - now) * self.share
            results[q].extend(FrameResult(i, finish, p) for i, p in answers)
            batches[q] += 1
            free_at[q] = finish

    def _run_threads(self, duration_s: float, results, batches) -> None:
        clock = self.clock
        cuda = torch.cuda.is_available() and getattr(self.executor, "cuda", False)
        device = getattr(self.executor, "device", None)  # each thread's stream goes there
        errors: list[BaseException] = []

        def serve(q: str) -> None:
            stream = self.streams[q]
            ctx = torch.cuda.stream(torch.cuda.Stream(device)) if cuda else None
            try:
                if ctx is not None:
                    ctx.__enter__()
                while (now := clock.now()) < duration_s:
                    if not stream.has_work(now):
                        nxt = stream.next_arrival(now)
                        if nxt == math.inf:
                            return
                        clock.wait_until(min(nxt, duration_s))
                        continue
                    frames = stream.take(now, self.batch[q])
                    answers = self.executor.run(q, frames)
                    finish = clock.now()
                    results[q].extend(FrameResult(i, finish, p) for i, p in answers)
                    batches[q] += 1
            except BaseException as e:  # reported after the other streams finish
                errors.append(e)
            finally:
                if ctx is not None:
                    ctx.__exit__(None, None, None)

        threads = [threading.Thread(target=serve, args=(q,), daemon=True) for q in self.admitted]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.0, duration_s - clock.now()) + 30.0)
        if errors:
            raise errors[0]
