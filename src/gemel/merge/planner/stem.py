"""``stem``: share a common prefix of layers (the earlier practice of sharing model stems)."""

from __future__ import annotations

from collections import Counter

from torch import nn

from gemel.analyze.analysis import Instance
from gemel.analyze.signature import shareable_layers, signature_of
from gemel.merge.planner.base import Candidate, Stepper, Strategy


def common_stem(models: dict[str, nn.Module]) -> tuple[Instance, ...]:
    """The longest prefix of shareable layers common to the most queries.

    The queries are those whose first shareable layer has the most common signature (at least
    two); instance ``k`` shares their ``k``-th layers, for as long as all signatures agree.
    """
    layers = {q: list(shareable_layers(m)) for q, m in models.items()}
    sigs = {q: [signature_of(mod) for _, mod in ls] for q, ls in layers.items()}
    firsts = Counter(s[0] for s in sigs.values() if s)
    if not firsts:
        return ()
    first, count = firsts.most_common(1)[0]
    if count < 2:
        return ()
    members = [q for q, s in sigs.items() if s and s[0] == first]
    stem: list[Instance] = []
    for k in range(min(len(sigs[q]) for q in members)):
        sig = sigs[members[0]][k]
        if any(sigs[q][k] != sig for q in members):
            break
        stem.append(Instance(sig, tuple((q, layers[q][k][0]) for q in members)))
    return tuple(stem)


class StemStrategy(Strategy):
    """Find the longest stem that meets every target by binary search over its length.

    Each step extends the accepted stem (all or nothing: a stem is shared by all its queries);
    a failed extension halves the range.
    """

    name = "stem"
    summary = "share the longest common prefix of layers that meets targets"

    def run(self, stepper: Stepper) -> None:
        stem = common_stem(stepper.models)
        lo, hi = 0, len(stem)
        while lo < hi and not stepper.exhausted():
            mid = (lo + hi + 1) // 2
            outcome = stepper.try_step(Candidate(f"stem {mid}", stem[lo:mid]), partial=False)
            if outcome.accepted:
                lo = mid
            else:
                hi = mid - 1
