"""Every GPU check and benchmark of the edge in one short script (needs a CUDA device).

Usage: python benchmarks/gpu_checks.py [--json OUT]

1. The GPU tests (``pytest -m gpu tests``: every ``tests/test_*_gpu.py``).
2. Swap-in bandwidth: loading a query's blocks from the pinned host store into the arena, as a
   fraction of one flat pinned copy of the same bytes (target >= 0.85), for resnet18 and
   resnet50; beside it per-tensor pinned copies and ``module.to('cuda')``.
3. Prefetch overlap: a query's blocks copied on the side stream while another query's model
   runs; the fraction of the copy hidden under compute.
4. ``gemel demo --quick --device cuda`` from a cold cache: its exit status and stage times.
Exits 1 if a test fails, a target is missed or the demo fails. Takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_edge import bench_copies

from gemel.edge.blocks import LoadPlan
from gemel.edge.executor import TorchExecutor, manifest_blocks
from gemel.edge.profiler import bundle_answers
from gemel.merge import MergeConfig, load_bundle, read_manifest, save_bundle
from gemel.models import build_model
from gemel.workload import workload_from_dict

TARGET_SWAP_FRACTION = 0.85
DEMO_TIMEOUT_S = 600


def quick_demo(tmp: Path, device: str = "cuda") -> dict:
    """``gemel demo --quick --device DEVICE`` in a fresh cache: exit status, wall time and the
    demo's own stage times (from its demo.json)."""
    out = tmp / "demo"
    env = {**os.environ, "GEMEL_CACHE": str(tmp / "cache")}
    cmd = [sys.executable, "-m", "gemel", "demo", "--quick", "--device", device, "--out", str(out)]
    t0 = time.perf_counter()
    try:
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S)
        status, tail = run.returncode, (run.stdout + run.stderr).strip().splitlines()[-5:]
    except subprocess.TimeoutExpired:
        status, tail = None, [f"timed out after {DEMO_TIMEOUT_S} s"]
    res: dict = {"status": status, "wall_s": round(time.perf_counter() - t0, 1), "tail": tail}
    meta = out / "demo.json"
    if meta.is_file():
        demo = json.loads(meta.read_text())
        res["device"] = demo.get("device")
        res["demo_wall_s"] = demo.get("wall_s")
        res["stages"] = {s["stage"]: s["wall_s"] for s in demo.get("stages", [])}
    return res


def module_to_ms(arch: str, repeats: int = 5) -> float:
    model = build_model(workload_from_dict(
        {"name": "m", "queries": [{"name": "a", "model": {"arch": arch, "num_classes": 10}}]}
    ).queries[0].model)  # fmt: skip
    times = []
    for _ in range(repeats + 1):
        model.to("cpu")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.to("cuda")
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) * 1000


def prefetch_overlap(tmp: Path, arch: str = "resnet50", batch: int = 8, repeats: int = 5) -> dict:
    names = ["a", "b"]
    wl = workload_from_dict({"name": "p", "queries": [
        {"name": q, "model": {"arch": arch, "num_classes": 10}} for q in names]})  # fmt: skip
    torch.manual_seed(0)
    save_bundle(tmp / "p", {q.name: build_model(q.model) for q in wl.queries}, workload=wl,
                config=MergeConfig())  # fmt: skip
    manifest = read_manifest(tmp / "p")
    blocks = manifest_blocks(manifest)
    x = torch.randn(batch, 3, 224, 224)
    ex = TorchExecutor(
        tmp / "p", manifest, load_bundle(tmp / "p"), device="cuda",
        arena_bytes=sum(b.nbytes for b in blocks),
        prepare=lambda q, f: (x, list(range(batch))), answer=bundle_answers(manifest),
    )  # fmt: skip
    of = {q: [b for b in blocks if q in b.queries] for q in names}
    ex.apply(LoadPlan("a", load=of["a"]))
    ex.apply(LoadPlan("b", load=of["b"]))

    def run_a() -> None:
        ex.run("a", list(range(batch)))

    def copy_b() -> None:
        ex.apply(LoadPlan("b", evict=of["b"]))
        ex.apply(LoadPlan("b", load=of["b"]))

    def both() -> None:
        ex.apply(LoadPlan("b", evict=of["b"]))
        ex.apply(LoadPlan("b", load=of["b"]), background=True)
        run_a()
        ex.copy_stream.synchronize()

    res = {}
    for name, fn in (("run_ms", run_a), ("copy_ms", copy_b), ("both_ms", both)):
        fn()
        times = []
        for _ in range(repeats):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        res[name] = statistics.median(times) * 1000
    hidden = (res["run_ms"] + res["copy_ms"] - res["both_ms"]) / res["copy_ms"]
    res["copy_hidden_fraction"] = float(np.clip(hidden, 0.0, 1.0))
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_checks: no CUDA device here", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parent.parent
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "gpu", str(root / "tests")],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    results: dict = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "gpu_tests": {"status": tests.returncode, "tail": tests.stdout.strip().splitlines()[-1:]},
        "swap_in": {},
    }
    ok = tests.returncode == 0
    with tempfile.TemporaryDirectory() as d:
        for arch in ("resnet18", "resnet50"):
            (Path(d) / arch).mkdir()
            copies = bench_copies(Path(d) / arch, "cuda", arch)
            copies["module_to_ms"] = module_to_ms(arch)
            copies["target"] = TARGET_SWAP_FRACTION
            copies["pass"] = copies["swap_in_fraction_of_flat"] >= TARGET_SWAP_FRACTION
            ok &= copies["pass"]
            results["swap_in"][arch] = copies
        results["prefetch_overlap"] = prefetch_overlap(Path(d))
        results["demo_quick"] = quick_demo(Path(d))
        ok &= results["demo_quick"]["status"] == 0 and results["demo_quick"].get("device") == "cuda"
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    print("gpu_checks:", "PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
