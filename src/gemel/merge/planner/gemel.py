"""``gemel``: the memory-first incremental heuristic with halving back-off."""

from __future__ import annotations

from gemel.analyze.analysis import make_groups
from gemel.merge.planner.base import Candidate, Stepper, Strategy


class GemelStrategy(Strategy):
    """Try groups heaviest first, each on top of what is accepted.

    The candidate that would add the most bytes goes next (savings are recomputed against the
    accepted configuration, so a partly accepted group only counts its missing members). When
    some queries miss their target, the heavier half of the group's layers goes back into the
    queue: it is retried next unless some other group would save more, which is tried first.
    Once such a half is accepted (fully or in part), the lighter half joins the queue too.
    """

    name = "gemel"
    summary = "memory-first incremental merging with halving back-off"

    def run(self, stepper: Stepper) -> None:
        queue = [Candidate(f"group {g.index}", g.instances) for g in make_groups(stepper.instances)]
        rest_of: dict[str, Candidate] = {}  # heavy half's label -> its light half
        while queue and not stepper.exhausted():
            gains = [stepper.added_savings(c.instances) for c in queue]
            best = max(range(len(queue)), key=lambda i: (gains[i], -i))
            if gains[best] <= 0:
                return
            candidate = queue.pop(best)
            outcome = stepper.try_step(candidate)
            rest = rest_of.pop(candidate.label, None)
            if rest is not None and outcome.accepted:
                queue.append(rest)
            n = len(candidate.instances)
            if outcome.failed and n > 1:
                cut = (n + 1) // 2
                heavy = Candidate(f"{candidate.label} half", candidate.instances[:cut])
                rest_of[heavy.label] = Candidate(
                    f"{candidate.label} rest", candidate.instances[cut:]
                )
                queue.append(heavy)
