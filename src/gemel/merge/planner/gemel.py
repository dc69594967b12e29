"""``gemel``: the memory-first incremental heuristic with halving back-off."""

from __future__ import annotations

from gemel.analyze.analysis import make_groups
from gemel.merge.planner.base import Candidate, Stepper, Strategy


class GemelStrategy(Strategy):
    """Try groups heaviest first, each on top of what is accepted.

    The candidate that would add the most bytes goes next (savings are recomputed against the
    accepted configuration, so a partly accepted group only counts its missing members). When
    some queries miss their target, the heaviest half of the group's layers goes back into the
    queue: it is retried unless some other group would save more, which is tried first.
    """

    name = "gemel"
    summary = "memory-first incremental merging with halving back-off"

    def run(self, stepper: Stepper) -> None:
        queue = [Candidate(f"group {g.index}", g.instances) for g in make_groups(stepper.instances)]
        while queue and not stepper.exhausted():
            gains = [stepper.added_savings(c.instances) for c in queue]
            best = max(range(len(queue)), key=lambda i: (gains[i], -i))
            if gains[best] <= 0:
                return
            candidate = queue.pop(best)
            outcome = stepper.try_step(candidate)
            n = len(candidate.instances)
            if outcome.failed and n > 1:
                half = candidate.instances[: (n + 1) // 2]
                queue.append(Candidate(f"{candidate.label} half", half))
