"""Time ``gemel analyze`` on a six-model workload of full-size torchvision models.

Two figures, each the median of ``--repeat`` runs:
- in-process: ``gemel.analyze(gemel.load_workload(path))`` (the first call of the process, which
  also imports torchvision's model zoo, is reported apart as "cold");
- CLI: ``python -m gemel analyze PATH --json OUT`` as a subprocess, start-up included; the
  start-up alone (``python -m gemel --help``: interpreter, torch and gemel imports) is timed too.

Usage: ``.venv/bin/python benchmarks/bench_analyze.py [--repeat 3] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ARCHS = (
    "resnet50",
    "resnet101",
    "resnet152",
    "vgg16",
    "vgg19",
    "fasterrcnn_resnet50_fpn",
)
TARGET_S = 15.0


def six_model_workload() -> dict:
    """One query per architecture, as a user would write it for ``gemel analyze``."""
    return {
        "name": "six-models",
        "queries": [
            {"name": f"q{i}-{arch}", "model": {"arch": arch}} for i, arch in enumerate(ARCHS)
        ],
    }


def time_in_process(path: Path, repeat: int) -> tuple[float, list[float], dict]:
    import gemel

    def once() -> tuple[float, gemel.Analysis]:
        start = time.perf_counter()
        analysis = gemel.analyze(gemel.load_workload(path))
        return time.perf_counter() - start, analysis

    cold, analysis = once()
    warm = [once()[0] for _ in range(repeat)]
    return cold, warm, analysis.to_json(with_groups=False)


def time_cli(args: list[str], repeat: int) -> list[float]:
    """Wall seconds of ``python -m gemel ARGS`` as a subprocess, ``repeat`` times."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "gemel", *args], capture_output=True, text=True
        )
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"gemel {args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each kind")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "six_models.yaml"
        path.write_text(yaml.safe_dump(six_model_workload(), sort_keys=False))
        cold, warm, analysis = time_in_process(path, args.repeat)
        cli = time_cli(["analyze", str(path), "--json", str(Path(tmp) / "a.json")], args.repeat)
        startup = time_cli(["--help"], args.repeat)

    figures = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"python {platform.python_version()}, torch {torch.__version__}",
        "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine
        "models": list(ARCHS),
        "total_param_bytes": analysis["total_param_bytes"],
        "max_savings_bytes": analysis["max_savings_bytes"],
        "instances": len(analysis["instances"]),
        "in_process_cold_s": round(cold, 3),
        "in_process_median_s": round(statistics.median(warm), 3),
        "cli_median_s": round(statistics.median(cli), 3),
        "cli_runs_s": [round(t, 3) for t in cli],
        "cli_startup_median_s": round(statistics.median(startup), 3),  # gemel --help
        "target_s": TARGET_S,
    }
    print(json.dumps(figures, indent=2))
    slowest = max(cold, *warm, *cli)
    print(
        f"slowest run {slowest:.2f} s = {slowest / TARGET_S:.2f} x the {TARGET_S:.0f} s target",
        file=sys.stderr,
    )
    if args.json:
        from gemel.io import write_json_atomic

        write_json_atomic(args.json, figures)
    return 0 if slowest < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
