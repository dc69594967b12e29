"""What merging a demo's models would gain at the min memory level on a reference GPU, and the
most any scheduler could gain on the demo's streams.

Usage: python benchmarks/bench_reference_gpu.py DEMO_DIR --reference GPU_JSON
           [--workload W] [--arch QUERY=ARCH ...] [--fps 5,40,80,160,320,640]
           [--duration 100s] [--h2d-gbps G] [--json OUT]

``DEMO_DIR`` is a folder written by ``gemel demo`` (its ``merge-none/``, ``merge/`` and
``profile.json``). ``GPU_JSON`` holds figures measured on a GPU: ``h2d_pinned_GBps`` and, per
torchvision architecture, ``lat_ms_bs1_fp32`` and ``lat_ms_bs8_fp32`` (batch-1 and batch-8
inference). The demo's CPU profile keeps its blocks and activation memory; every block copy
takes ``nbytes / h2d_pinned_GBps`` and every batch the reference latency of the query's
architecture (interpolated between batch 1 and 8), copies overlapping inference as on a CUDA
side stream. ``--arch`` names a stand-in where the reference lacks a query's architecture;
``--h2d-gbps`` replaces the measured copy bandwidth with an assumed one (a slower link, e.g.
PCIe gen3).

Printed: the mean stream accuracy of the unmerged and the ``gemel`` bundle at ``min`` per
stream rate (time sharing, schedule-aware eviction), and the accuracy of the unmerged models
when only every k-th frame is answered (at once), which bounds what fewer swaps can win.
"""

from __future__ import annotations

import argparse
import json
import statistics
from importlib.resources import files
from pathlib import Path

from gemel.edge.accuracy import FrameResult, stream_accuracy
from gemel.edge.feeds import workload_feeds
from gemel.edge.profile import Profile, read_profile
from gemel.edge.simulate import record_predictions, simulate_bundle
from gemel.merge import read_manifest
from gemel.units import parse_seconds
from gemel.workload import load_workload

STRIDES = (1, 2, 4, 8, 16)


def reference_profile(
    cpu: Profile, reference: dict, archs: dict[str, str], overlap: bool = True
) -> Profile:
    """``cpu`` with its copy and run times replaced by the reference GPU's figures."""
    bandwidth = reference["h2d_pinned_GBps"] * 1e9
    data = cpu.model_dump(mode="json")
    data["device"] = f"reference: {reference.get('device', 'GPU')}"
    data["overlap_copies"] = overlap
    data["load_bytes_per_s"] = bandwidth
    for block in data["blocks"].values():
        block["load_s"] = block["nbytes"] / bandwidth
    for q, query in data["queries"].items():
        model = reference["models"].get(archs[q])
        if model is None:
            raise SystemExit(f"the reference has no {archs[q]!r} (query {q}); pass --arch {q}=...")
        one, eight = model["lat_ms_bs1_fp32"] / 1e3, model["lat_ms_bs8_fp32"] / 1e3
        for size, cost in query["batches"].items():
            cost["run_s"] = one + (eight - one) * (int(size) - 1) / 7
    return Profile.model_validate(data)


def stride_accuracy(feeds, preds, k: int) -> float:
    """Mean stream accuracy when every k-th frame is answered the moment it arrives."""
    accs = []
    for q, feed in feeds.items():
        n = feed.frames_total
        results = [FrameResult(j, j / feed.fps, preds[q][j]) for j in range(0, n, k)]
        accs.append(stream_accuracy(n, feed.fps, feed.sla_s, results, feed.score).accuracy)
    return statistics.mean(accs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo_dir", type=Path)
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--workload", type=Path, default=files("gemel") / "examples" / "demo.yaml")
    ap.add_argument("--arch", action="append", default=[], metavar="QUERY=ARCH")
    ap.add_argument("--fps", default="5,40,80,160,320,640")
    ap.add_argument("--duration", default="100s")
    ap.add_argument("--h2d-gbps", type=float, help="assume this copy bandwidth (GB/s)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    wl = load_workload(Path(str(args.workload)))
    archs = {q.name: q.model.arch for q in wl.queries}
    archs.update(dict(pair.split("=", 1) for pair in args.arch))
    reference = json.loads(args.reference.read_text())
    if args.h2d_gbps:
        reference["h2d_pinned_GBps"] = args.h2d_gbps
        reference["device"] = (
            f"{reference.get('device', 'GPU')} at an assumed {args.h2d_gbps:g} GB/s"
        )
    profile = reference_profile(read_profile(args.demo_dir / "profile.json"), reference, archs)
    feeds = workload_feeds(wl, wl.query_names)
    bundles = {"none": args.demo_dir / "merge-none", "gemel": args.demo_dir / "merge"}
    preds = {s: record_predictions(b, feeds) for s, b in bundles.items()}
    manifests = {s: read_manifest(b) for s, b in bundles.items()}
    duration = parse_seconds(args.duration)

    rows = []
    print(f"min level, time sharing, {profile.device}, {duration:g} s of streams")
    print(f"{'fps':>5} {'none acc':>9} {'processed':>9} {'gemel acc':>9} {'processed':>9} gain")
    for fps in (float(f) for f in args.fps.split(",")):
        row = {"fps": fps}
        for s in bundles:
            run = simulate_bundle(
                manifests[s], profile, feeds, preds[s], memory_budget="min",
                duration_s=duration, sharing="time", fps=fps,
            )  # fmt: skip
            row[s] = {k: run[k] for k in ("accuracy", "frames_processed_fraction", "swaps")}
        row["gain_points"] = 100 * (row["gemel"]["accuracy"] - row["none"]["accuracy"])
        rows.append(row)
        n, g = row["none"], row["gemel"]
        print(
            f"{fps:5g} {n['accuracy']:9.3f} {n['frames_processed_fraction']:9.3f}"
            f" {g['accuracy']:9.3f} {g['frames_processed_fraction']:9.3f} {row['gain_points']:+.1f}"
        )
    strides = {k: stride_accuracy(feeds, preds["none"], k) for k in STRIDES}
    print("unmerged models answering every k-th frame: " + "  ".join(
        f"k={k} {a:.3f}" for k, a in strides.items()
    ))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "every_kth_frame": strides}, indent=1))


if __name__ == "__main__":
    main()
