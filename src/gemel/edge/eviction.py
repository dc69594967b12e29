"""Eviction policies: which resident, unpinned block leaves the device when room is needed.

Each policy is a small class behind one interface, chosen by name (:func:`make_policy`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gemel.errors import GemelError


@dataclass(frozen=True)
class EvictionContext:
    """What a policy may look at: when each block was last used, and when it is needed next."""

    last_used: dict[str, int]
    """block id -> turn number of its last use"""
    next_use: Callable[[str], float]
    """block id -> turns until a scheduled query needs it (``inf``: never in one cycle)"""


class EvictionPolicy:
    """Pick the victim among ``candidates`` (block ids, all evictable)."""

    name: str = ""

    def victim(self, candidates: Sequence[str], ctx: EvictionContext) -> str:
        raise NotImplementedError


class LRUPolicy(EvictionPolicy):
    """Evict the block used longest ago."""

    name = "lru"

    def victim(self, candidates: Sequence[str], ctx: EvictionContext) -> str:
        return min(candidates, key=lambda b: (ctx.last_used.get(b, -1), b))


class MRUPolicy(EvictionPolicy):
    """Evict the block used most recently (what the reference system used under round-robin)."""

    name = "mru"

    def victim(self, candidates: Sequence[str], ctx: EvictionContext) -> str:
        return max(candidates, key=lambda b: (ctx.last_used.get(b, -1), b))


class ScheduleAwarePolicy(EvictionPolicy):
    """Belady over the cyclic schedule: evict the block needed furthest in the future."""

    name = "schedule"

    def victim(self, candidates: Sequence[str], ctx: EvictionContext) -> str:
        return max(candidates, key=lambda b: (ctx.next_use(b), -ctx.last_used.get(b, -1), b))


EVICTION_POLICIES: dict[str, type[EvictionPolicy]] = {
    p.name: p for p in (LRUPolicy, MRUPolicy, ScheduleAwarePolicy)
}


def make_policy(name: str) -> EvictionPolicy:
    """The eviction policy called ``name`` (``lru``, ``mru`` or ``schedule``)."""
    try:
        return EVICTION_POLICIES[name]()
    except KeyError:
        known = ", ".join(sorted(EVICTION_POLICIES))
        raise GemelError(f"unknown eviction policy {name!r}: choose one of {known}") from None
