"""Save and load a merged 3 x resnet50 bundle against torch.save/torch.load of 3 state dicts.

Usage: python benchmarks/bench_bundle.py [--queries 3] [--arch resnet50] [--json OUT]

The merged bundle shares every shareable layer (the max merge), so it holds one copy of the
shared weights; the baseline writes and reads each model's full state dict. An unmerged bundle
of the same models separates the format's own cost from the bytes merging saves. Loading is
timed twice for the baseline: the state dicts alone, and models ready to run (build +
load_state_dict), which is what ``load_bundle`` returns (it also checks every sha256). Each
figure is the best of 3 calls in one run (writes vary with the page cache more than the code).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from gemel.analyze import build_models, find_instances
from gemel.merge import MergeConfig, apply_merge, load_bundle, save_bundle
from gemel.models import build_model
from gemel.workload import workload_from_dict

REPEAT = 3


def timed(fn):
    """``(result, best seconds of REPEAT calls)``."""
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=3)
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)

    wl = workload_from_dict(
        {
            "name": "bench",
            "queries": [
                {"name": f"cam{i}", "model": {"arch": args.arch, "num_classes": 10}}
                for i in range(args.queries)
            ],
        }
    )
    torch.manual_seed(0)
    models = build_models(wl)
    state_dicts = {q: {k: v.clone() for k, v in m.state_dict().items()} for q, m in models.items()}
    config = MergeConfig.from_instances(find_instances(models))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _, save_u = timed(
            lambda: save_bundle(tmp / "unmerged", models, workload=wl, config=MergeConfig())
        )
        _, load_u = timed(lambda: load_bundle(tmp / "unmerged"))
        apply_merge(models, config)
        _, save_b = timed(lambda: save_bundle(tmp / "bundle", models, workload=wl, config=config))

        def torch_save():
            for q, sd in state_dicts.items():
                torch.save(sd, tmp / f"{q}.pt")

        _, save_t = timed(torch_save)
        loaded, load_b = timed(lambda: load_bundle(tmp / "bundle"))
        _, load_t = timed(
            lambda: {q: torch.load(tmp / f"{q}.pt", weights_only=True) for q in state_dicts}
        )

        def torch_models():
            out = {}
            for q in state_dicts:
                m = build_model(wl.query(q).model, load_checkpoint=False)
                m.load_state_dict(torch.load(tmp / f"{q}.pt", weights_only=True))
                out[q] = m
            return out

        _, load_tm = timed(torch_models)
        bundle_bytes = sum(p.stat().st_size for p in (tmp / "bundle").iterdir())
        torch_bytes = sum((tmp / f"{q}.pt").stat().st_size for q in state_dicts)
    assert len(loaded) == args.queries

    result = {
        "models": f"{args.queries} x {args.arch}",
        "shared_layers": len(config.shared),
        "bundle_bytes": bundle_bytes,
        "torch_bytes": torch_bytes,
        "save_unmerged_bundle_s": save_u,
        "load_unmerged_bundle_s": load_u,
        "save_bundle_s": save_b,
        "torch_save_s": save_t,
        "load_bundle_s": load_b,
        "torch_load_state_dicts_s": load_t,
        "torch_load_models_s": load_tm,
        "bytes_ratio": bundle_bytes / torch_bytes,
        "save_ratio": save_b / save_t,
        "load_ratio_vs_state_dicts": load_b / load_t,
        "load_ratio_vs_models": load_b / load_tm,
        "unmerged_save_ratio": save_u / save_t,
        "unmerged_load_ratio_vs_models": load_u / load_tm,
    }
    for k, v in result.items():
        print(f"{k:28s} {v:.3f}" if isinstance(v, float) else f"{k:28s} {v}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
