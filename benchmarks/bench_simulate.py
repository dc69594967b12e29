"""Simulated frames processed and accuracy of several bundles at the three memory levels, and the
simulator's error against the real CPU runtime at one level.

Usage: python benchmarks/bench_simulate.py WORKLOAD --bundle DIR [--bundle DIR ...]
           [--duration 30s] [--fps F] [--runtime-level min] [--json OUT]

The bundles are those of one workload merged with different strategies (e.g. ``gemel merge
--strategy none|all|gemel``). One CPU profile of the first bundle drives every simulation; the
runtime plays the same streams for the same duration on this machine. ``--fps`` plays every
stream's frames at another rate (the same frames, faster), in both.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gemel.edge.feeds import frame_sizes, workload_feeds
from gemel.edge.profiler import profile_bundle
from gemel.edge.runtime import run_bundle
from gemel.edge.simulate import record_predictions, simulate_bundle
from gemel.merge import read_manifest
from gemel.units import parse_seconds
from gemel.workload import load_workload

LEVELS = ("min", "50", "75")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", type=Path)
    ap.add_argument("--bundle", type=Path, action="append", required=True)
    ap.add_argument("--duration", default="30s")
    ap.add_argument("--fps", type=float)
    ap.add_argument("--runtime-level", default="min")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    wl = load_workload(args.workload)
    duration = parse_seconds(args.duration)

    def streams():
        feeds = workload_feeds(wl, wl.query_names)
        for f in feeds.values():
            f.fps = args.fps or f.fps
            keep = min(f.frames_total, round(duration * f.fps))
            f.images, f.targets = f.images[:keep], f.targets[:keep]
        return feeds

    feeds = streams()
    sizes = frame_sizes(feeds)
    t0 = time.perf_counter()
    profile = profile_bundle(args.bundle[0], "cpu", repeats=5, frame_size=sizes)
    out: dict = {"profile_s": time.perf_counter() - t0, "simulated": [], "runtime": []}
    for bundle in args.bundle:
        manifest = read_manifest(bundle)
        preds = record_predictions(bundle, feeds)
        for level in LEVELS:
            t0 = time.perf_counter()
            run = simulate_bundle(manifest, profile, feeds, preds, memory_budget=level,
                                  duration_s=duration)  # fmt: skip
            run["simulate_s"] = time.perf_counter() - t0
            out["simulated"].append(run)
        level = args.runtime_level
        real = run_bundle(bundle, streams(), memory_budget=level, duration_s=duration,
                          profile=profile)  # fmt: skip
        sim = next(r for r in out["simulated"] if r["strategy"] == real["strategy"]
                   and r["memory_level"] == args.runtime_level)  # fmt: skip
        errors = {
            q: {
                "processed": (real["queries"][q]["frames_processed"]
                              - sim["queries"][q]["frames_processed"])
                / max(1, real["queries"][q]["frames_total"]),
                "accuracy": real["queries"][q]["accuracy"] - sim["queries"][q]["accuracy"],
            }
            for q in real["queries"]
        }  # fmt: skip
        out["runtime"].append({"run": real, "error_real_minus_sim": errors})
    for r in out["simulated"]:
        mib = r["budget_bytes"] / 2**20
        print(f"{r['strategy']:>6} {r['memory_level']:>4} budget {mib:7.1f} MiB"
              f"  processed {r['frames_processed_fraction']:.3f}  accuracy {r['accuracy']:.3f}"
              f"  swaps {r['swaps']:5d}  ({r['simulate_s']:.2f} s)")  # fmt: skip
    for item in out["runtime"]:
        r = item["run"]
        worst_p = max(abs(e["processed"]) for e in item["error_real_minus_sim"].values())
        worst_a = max(abs(e["accuracy"]) for e in item["error_real_minus_sim"].values())
        print(f"runtime {r['strategy']:>6} @ {r['memory_level']}: processed "
              f"{r['frames_processed_fraction']:.3f} accuracy {r['accuracy']:.3f}; "
              f"worst |real - sim|: processed {worst_p:.3f}, accuracy {worst_a:.3f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
