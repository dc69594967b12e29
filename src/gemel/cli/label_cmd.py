"""``gemel label``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from gemel.errors import GemelError
from gemel.io import check_output_file
from gemel.workload import ModelSpec

# the model spec field each option sets, for error messages
OPTIONS = {
    "checkpoint": "--checkpoint",
    "num_classes": "--num-classes",
    "input_size": "--input-size",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="write a video's label file with a golden model")
    p.add_argument("video", type=Path, help="video file (mp4, avi, mkv, ...)")
    p.add_argument(
        "--golden",
        required=True,
        metavar="MODEL",
        help="torchvision builder name (detector or classifier), or 'pkg.module:function'",
    )
    p.add_argument("--checkpoint", type=Path, help="state dict of the golden model")
    p.add_argument("--num-classes", type=int, help="outputs of the golden model")
    p.add_argument("--input-size", type=int, help="classifier input size (square, pixels)")
    p.add_argument("--categories", help="comma-separated class names, in output order")
    p.add_argument("--fps", type=float, help="sampling rate (default: the file's)")
    p.add_argument("--threshold", type=float, default=0.5, help="detector score threshold")
    p.add_argument("--out", type=Path, help="label file (default: VIDEO with .labels.jsonl)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gemel.data.golden import label_video

    golden = args.golden
    factory = ":" in golden
    try:
        spec = ModelSpec(
            arch=None if factory else golden,
            factory=golden if factory else None,
            checkpoint=args.checkpoint,
            num_classes=args.num_classes,
            input_size=args.input_size,
        )
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        option = OPTIONS.get(field, f"--golden {golden}")
        raise GemelError(f"{option}: {err['msg'].removeprefix('Value error, ')}") from None
    if args.fps is not None and not args.fps > 0:
        raise GemelError(f"--fps must be positive, not {args.fps:g}")
    if not 0 <= args.threshold <= 1:
        raise GemelError(f"--threshold must be in [0, 1], not {args.threshold:g}")
    categories = args.categories.split(",") if args.categories else None
    out = args.out or args.video.with_suffix(".labels.jsonl")
    check_output_file(out, "--out")
    err = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,  # an error then stands alone on its line
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task(f"label {args.video.name}: 0 frames", total=None)
        seen = [0]

        def progress(n: int) -> None:
            seen[0] += n
            bar.update(task, description=f"label {args.video.name}: {seen[0]} frames")

        summary = label_video(
            args.video,
            out,
            model=spec,
            categories=categories,
            fps=args.fps,
            score_threshold=args.threshold,
            device=args.device,
            progress=progress,
        )
    Console().print(
        f"wrote {summary.out}: {summary.frames} frames ({summary.kind} labels, "
        f"{summary.objects} objects), {summary.skipped} undecodable packets skipped"
    )
    return 0
