"""Synthetic scenes: time to render frames, and to read a query's split back from the cache.

Renders one camera's clip (default 10,000 frames at 96x96) with the embedded generator (wall
and CPU time: on a shared machine the CPU time is the steadier figure), then times
``load_split`` of a 64 px query's train split from a fresh cache: cold (render, write the
cache, preprocess) and warm (read the cache in a new process state, preprocess).

    .venv/bin/python benchmarks/bench_synthetic.py [--frames N] [--size PX] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from gemel.data import load_split
from gemel.data.sources import forget_open_clips
from gemel.data.synthetic import generate
from gemel.workload import SyntheticSource, workload_from_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=96, help="frame height and width (px)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()

    source = SyntheticSource(camera=0, frames=args.frames, resolution=(args.size, args.size))
    start, cpu = time.perf_counter(), time.process_time()
    clip = generate(source)
    render_s = time.perf_counter() - start
    render_cpu_s = time.process_time() - cpu
    objects = sum(len(t.classes) for t in clip.truths)

    with tempfile.TemporaryDirectory() as cache:
        os.environ["GEMEL_CACHE"] = cache
        wl = workload_from_dict(
            {
                "name": "bench",
                "sources": {"cam": source.model_dump(mode="json")},
                "queries": [
                    {
                        "name": "cars",
                        "source": "cam",
                        "task": {"kind": "presence", "classes": ["car"]},
                        "model": {"arch": "resnet18", "num_classes": 2, "input_size": 64},
                    }
                ],
            }
        )
        start = time.perf_counter()
        load_split(wl, "cars", "train")
        cold_s = time.perf_counter() - start
        forget_open_clips()  # read the clip back from disk
        start = time.perf_counter()
        train = load_split(wl, "cars", "train")
        warm_s = time.perf_counter() - start

    figures = {
        "frames": args.frames,
        "resolution": [args.size, args.size],
        "render_s": round(render_s, 2),
        "render_cpu_s": round(render_cpu_s, 2),
        "frames_per_s": round(args.frames / render_s),
        "objects_per_frame": round(objects / args.frames, 2),
        "load_split_cold_s": round(cold_s, 2),
        "load_split_warm_s": round(warm_s, 2),
        "train_frames": len(train),
        "mean_pixel": round(float(np.mean(clip.frames[:: max(1, args.frames // 100)])), 1),
    }
    for k, v in figures.items():
        print(f"{k:>20}: {v}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
