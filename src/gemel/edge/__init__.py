"""The edge: serve a bundle's queries on live video under a device memory budget.

Scheduler (:mod:`~gemel.edge.scheduler`), block manager (:mod:`~gemel.edge.blocks`) and
executor (:mod:`~gemel.edge.executor`, :mod:`~gemel.edge.replay`) are separate objects; the
real runtime and the simulator share the first two and the engine loop
(:mod:`~gemel.edge.engine`, driven for both by :mod:`~gemel.edge.play`), and swap only the
clock and the executor.

Public API:

- :func:`run_bundle` -- the real-time runtime (``gemel run``);
- :func:`profile_bundle` -- measure a bundle on a device (``gemel profile``);
- :func:`simulate_bundle`, :func:`simulate_bundles`, :func:`record_predictions` -- the
  simulator (``gemel simulate``);
- :func:`workload_feeds` -- the queries' test streams;
- :func:`stream_accuracy` -- the one stream-accuracy rule;
- :func:`memory_levels`, :func:`profile_levels` -- the min / 50 / 75 / all budgets;
- :func:`plot_runs` -- accuracy and frames processed against budget and fps.
"""

from gemel.edge.accuracy import FrameResult, StreamScore, stream_accuracy
from gemel.edge.blocks import Block, BlockManager, LoadPlan
from gemel.edge.eviction import EVICTION_POLICIES, make_policy
from gemel.edge.feeds import QueryFeed, workload_feeds
from gemel.edge.levels import memory_levels, profile_levels
from gemel.edge.plots import plot_runs
from gemel.edge.profile import Profile, read_profile
from gemel.edge.profiler import profile_bundle
from gemel.edge.runtime import run_bundle
from gemel.edge.simulate import record_predictions, simulate_bundle, simulate_bundles

__all__ = [
    "EVICTION_POLICIES",
    "Block",
    "BlockManager",
    "FrameResult",
    "LoadPlan",
    "Profile",
    "QueryFeed",
    "StreamScore",
    "make_policy",
    "memory_levels",
    "plot_runs",
    "profile_bundle",
    "profile_levels",
    "read_profile",
    "record_predictions",
    "run_bundle",
    "simulate_bundle",
    "simulate_bundles",
    "stream_accuracy",
    "workload_feeds",
]
