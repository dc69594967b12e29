"""The block manager: which weight blocks are on the device, under a budget in bytes.

A block is the unit of residency (DESIGN.md): the tensors used by one exact set of queries,
stored contiguously. The manager does the accounting only — an executor moves the bytes — so
the real runtime and the simulator share it unchanged. The budget covers the framework's fixed
overhead, the resident blocks (a shared block counts once) and the activation memory reserved
by the query that is running; it is checked at every load.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gemel.edge.eviction import EvictionContext, EvictionPolicy
from gemel.errors import GemelError
from gemel.units import format_bytes


@dataclass(frozen=True)
class Block:
    """A contiguous range of weights used by exactly the queries in ``queries``."""

    id: str
    nbytes: int
    queries: frozenset[str]


@dataclass
class LoadPlan:
    """What the executor must do before ``query`` runs (or, for a prefetch, may do now)."""

    query: str
    evict: list[Block] = field(default_factory=list)
    load: list[Block] = field(default_factory=list)

    @property
    def load_bytes(self) -> int:
        return sum(b.nbytes for b in self.load)


class BlockManager:
    """Reference-counted blocks on the device, evicted by ``policy`` when room is needed."""

    def __init__(
        self,
        blocks: Iterable[Block],
        budget_bytes: int,
        policy: EvictionPolicy,
        *,
        overhead_bytes: int = 0,
    ) -> None:
        self.blocks = {b.id: b for b in blocks}
        self.budget_bytes = int(budget_bytes)
        self.policy = policy
        self.overhead_bytes = int(overhead_bytes)
        self._of_query: dict[str, list[Block]] = {}
        for b in self.blocks.values():
            for q in b.queries:
                self._of_query.setdefault(q, []).append(b)
        self.resident: dict[str, Block] = {}
        self.refs: Counter[str] = Counter()
        self.activation: dict[str, int] = {}
        self._prefetched: dict[str, list[str]] = {}
        self.turn = 0
        self.last_used: dict[str, int] = {}
        self.loads = 0
        self.load_bytes = 0
        self.evictions = 0
        self.peak_bytes = self.overhead_bytes

    # -- queries ----------------------------------------------------------------------------
    def blocks_of(self, query: str) -> list[Block]:
        """The blocks ``query`` needs (every block whose set contains it)."""
        return self._of_query.get(query, [])

    def weight_bytes(self, query: str) -> int:
        return sum(b.nbytes for b in self.blocks_of(query))

    @property
    def used_bytes(self) -> int:
        resident = sum(b.nbytes for b in self.resident.values())
        return self.overhead_bytes + resident + sum(self.activation.values())

    def is_ready(self, query: str) -> bool:
        return all(b.id in self.resident for b in self.blocks_of(query))

    def check_fits(self, query: str, activation_bytes: int) -> None:
        """Raise a clear error if ``query`` cannot run even with the device to itself."""
        need = self.overhead_bytes + self.weight_bytes(query) + activation_bytes
        if need > self.budget_bytes:
            raise GemelError(
                f"query {query!r} needs {format_bytes(need)} (weights "
                f"{format_bytes(self.weight_bytes(query))} + activations "
                f"{format_bytes(activation_bytes)} + overhead {format_bytes(self.overhead_bytes)})"
                f" but the memory budget is {format_bytes(self.budget_bytes)}"
            )

    # -- residency --------------------------------------------------------------------------
    def acquire(self, query: str, activation_bytes: int, future: Sequence[str] = ()) -> LoadPlan:
        """Pin ``query``'s blocks and reserve its activations; returns what to evict and load.

        ``future`` is the order in which queries run next (for schedule-aware eviction).
        """
        self.turn += 1
        plan = LoadPlan(query)
        mine = self.blocks_of(query)
        for b in mine:
            self.refs[b.id] += 1
        for bid in self._prefetched.pop(query, []):
            self._unref(bid)
        self.activation[query] = int(activation_bytes)
        self._make_room(0, plan, future)
        for b in mine:
            if b.id not in self.resident:
                if not self._make_room(b.nbytes, plan, future):
                    raise GemelError(
                        f"query {query!r} does not fit the memory budget "
                        f"{format_bytes(self.budget_bytes)} beside pinned blocks"
                    )
                self._load(b, plan)
            self.last_used[b.id] = self.turn
        if self.used_bytes > self.budget_bytes:
            raise GemelError(
                f"query {query!r}: activations do not fit the memory budget "
                f"{format_bytes(self.budget_bytes)}"
            )
        return plan

    def release(self, query: str) -> None:
        """``query`` finished its batch: unpin its blocks and free its activation memory."""
        for b in self.blocks_of(query):
            self._unref(b.id)
        self.activation.pop(query, None)

    def prefetch(self, query: str, future: Sequence[str] = ()) -> LoadPlan:
        """Load ``query``'s missing blocks now, as far as memory allows without touching pinned
        blocks; the loaded blocks stay pinned until ``query`` is acquired."""
        plan = LoadPlan(query)
        pinned = self._prefetched.setdefault(query, [])
        for b in self.blocks_of(query):
            if b.id not in self.resident:
                if not self._make_room(b.nbytes, plan, future, protect=query):
                    break
                self._load(b, plan)
            if b.id not in pinned:
                self.refs[b.id] += 1
                pinned.append(b.id)
        return plan

    def mark_resident(self, block_ids: Iterable[str]) -> None:
        """Record blocks already on the device (after a live bundle update)."""
        for bid in block_ids:
            self.resident[bid] = self.blocks[bid]
        used = self.used_bytes
        assert used <= self.budget_bytes, f"budget exceeded: {used} > {self.budget_bytes}"
        self.peak_bytes = max(self.peak_bytes, used)

    # -- internals --------------------------------------------------------------------------
    def _unref(self, bid: str) -> None:
        self.refs[bid] -= 1
        if self.refs[bid] <= 0:
            del self.refs[bid]

    def _load(self, b: Block, plan: LoadPlan) -> None:
        self.resident[b.id] = b
        plan.load.append(b)
        self.loads += 1
        self.load_bytes += b.nbytes
        used = self.used_bytes
        assert used <= self.budget_bytes, f"budget exceeded: {used} > {self.budget_bytes}"
        self.peak_bytes = max(self.peak_bytes, used)

    def _make_room(
        self, nbytes: int, plan: LoadPlan, future: Sequence[str], protect: str | None = None
    ) -> bool:
        """Evict unpinned blocks until ``nbytes`` more fit; False if that is impossible.

        With ``protect`` (a prefetch for that query) nothing is evicted unless the policy would
        pick the same victims with the pinned blocks as candidates too: a prefetch must not
        evict a block that the policy would keep once the running query has finished.
        """
        if self.used_bytes + nbytes <= self.budget_bytes:
            return True
        keep = {b.id for b in self.blocks_of(protect)} if protect else set()
        candidates = [bid for bid in self.resident if bid not in self.refs and bid not in keep]
        freeable = sum(self.resident[bid].nbytes for bid in candidates)
        if self.used_bytes - freeable + nbytes > self.budget_bytes:
            return False
        ctx = EvictionContext(self.last_used, self._next_use_fn(future))
        if protect is not None:
            pool = [bid for bid in self.resident if bid not in keep]
            need = self.used_bytes + nbytes - self.budget_bytes
            victims: list[str] = []
            while need > 0:
                victim = self.policy.victim(pool, ctx)
                if victim in self.refs:
                    return False
                pool.remove(victim)
                victims.append(victim)
                need -= self.resident[victim].nbytes
            for victim in victims:
                plan.evict.append(self.resident.pop(victim))
                self.evictions += 1
            return True
        while self.used_bytes + nbytes > self.budget_bytes:
            victim = self.policy.victim(candidates, ctx)
            candidates.remove(victim)
            plan.evict.append(self.resident.pop(victim))
            self.evictions += 1
        return True

    def _next_use_fn(self, future: Sequence[str]):
        first: dict[str, int] = {}
        for i, q in enumerate(future):
            for b in self.blocks_of(q):
                first.setdefault(b.id, i)
        return lambda bid: first.get(bid, float("inf"))
