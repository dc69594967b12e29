"""One run of the engine as the JSON record ``gemel run`` and ``gemel simulate`` write.

Keys per DESIGN.md's contract: ``strategy``, ``memory_level``, ``budget_bytes``, ``sharing``,
``eviction``, ``order``, ``swaps`` (block loads after a block's first load), ``swap_bytes``
(their bytes) and ``queries`` (``frames_total``, ``frames_processed``, ``accuracy``); plus
``copied_bytes`` (every byte copied into the arena, first loads included), ``swap_s``,
latency percentiles of processed frames and the scheduler's per-batch overhead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from gemel.edge.accuracy import stream_accuracy
from gemel.edge.engine import EngineResult
from gemel.edge.streams import Stream

Scorer = Callable[[list[Any], list[int]], Sequence[float]]


def _percentiles_ms(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    a = np.asarray(values) * 1000.0
    return {f"p{p}": float(np.percentile(a, p)) for p in (50, 95, 99)}


def run_record(
    result: EngineResult,
    streams: Mapping[str, Stream],
    scorers: Mapping[str, Scorer],
    **labels: Any,
) -> dict[str, Any]:
    """The run's JSON record; ``labels`` (strategy, memory_level, ...) come first."""
    queries = {}
    latencies: list[float] = []
    for q, s in streams.items():
        score = stream_accuracy(s.frames_total, s.fps, s.sla_s, result.results[q], scorers[q])
        queries[q] = {
            **score.to_json(),
            "batches": result.batches[q],
            "batch_size": result.batch_sizes.get(q, 1),
        }
        latencies += [r.finish_s - r.frame / s.fps for r in result.results[q]]
    n = len(queries)
    total = sum(v["frames_total"] for v in queries.values())
    return {
        **labels,
        "order": result.order,
        "swaps": result.swaps,
        "swap_bytes": result.swap_bytes,
        "copied_bytes": result.load_bytes,
        "swap_s": result.swap_s,
        "peak_bytes": result.peak_bytes,
        "duration_s": result.duration_s,
        "accuracy": sum(v["accuracy"] for v in queries.values()) / n if n else 0.0,
        "frames_processed_fraction": (
            sum(v["frames_processed"] for v in queries.values()) / total if total else 0.0
        ),
        "latency_ms": _percentiles_ms(latencies),
        "sched_overhead_ms": _percentiles_ms(result.sched_overhead_s),
        "turn_overhead_ms": _percentiles_ms(result.turn_overhead_s),
        "queries": queries,
        "updates": result.updates,
    }
