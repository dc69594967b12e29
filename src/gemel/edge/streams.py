"""Frame arrival and selection for one query's stream.

Frame ``i`` arrives at ``i / fps`` seconds after the stream starts. Frames older than the SLA
are stale and skipped; a turn takes the newest pending frames. A stream keeps indices only,
so its queue is bounded by construction; frame pixels come from the executor's source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Stream:
    """Arrivals of one query's frames (a source that ends early simply has fewer)."""

    query: str
    fps: float
    sla_s: float
    frames_total: int
    last_taken: int = -1
    taken: int = 0

    def arrived(self, now: float) -> int:
        """How many frames have arrived by ``now``."""
        if now < 0:
            return 0
        return min(self.frames_total, math.floor(now * self.fps + 1e-9) + 1)

    def _first_fresh(self, now: float) -> int:
        return max(self.last_taken + 1, math.ceil((now - self.sla_s) * self.fps - 1e-9))

    def has_work(self, now: float) -> bool:
        return self._first_fresh(now) < self.arrived(now)

    def take(self, now: float, batch: int) -> list[int]:
        """The newest ``batch`` fresh frames not taken yet (oldest first)."""
        hi = self.arrived(now)
        lo = max(self._first_fresh(now), hi - batch)
        frames = list(range(lo, hi))
        if frames:
            self.last_taken = frames[-1]
            self.taken += len(frames)
        return frames

    def next_arrival(self, now: float) -> float:
        """When the next frame arrives (``inf`` once the stream has no more frames)."""
        nxt = self.arrived(now)
        if nxt >= self.frames_total:
            return math.inf
        return nxt / self.fps
