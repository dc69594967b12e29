"""A workload source as a :class:`Clip`, decoded or generated once and cached on disk.

The cache lives in ``$GEMEL_CACHE`` (default ``~/.cache/gemel``), one folder per source keyed
by a hash of its spec (for a video: also the file's and the label file's size and mtime), with
``frames.npy``, ``truth.jsonl`` (a label file) and ``meta.json``. A folder is written atomically,
so an interrupted run leaves no partial entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from gemel.data.labels import read_labels, write_labels
from gemel.data.synthetic import generate
from gemel.data.truth import Clip
from gemel.data.video import decode_video
from gemel.errors import GemelError
from gemel.io import atomic_dir, write_json_atomic
from gemel.workload import SyntheticSource, VideoSource

GENERATOR_VERSION = 2  # bump when the synthetic scenes change


def cache_dir() -> Path:
    """Where gemel keeps generated data and base models (``$GEMEL_CACHE`` overrides)."""
    return Path(os.environ.get("GEMEL_CACHE") or Path.home() / ".cache" / "gemel")


def file_stamp(path: Path) -> list[int]:
    """Size and modification time of a file: a cheap "has it changed" key."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def source_key(source: SyntheticSource | VideoSource) -> str:
    """A short hash that changes whenever the source's frames or truth would change."""
    spec = source.model_dump(mode="json")
    if isinstance(source, SyntheticSource):
        spec["generator"] = GENERATOR_VERSION
    else:
        spec["path"] = str(Path(source.path).resolve())
        spec["stat"] = file_stamp(Path(source.path)) if Path(source.path).is_file() else None
        if source.labels is not None and Path(source.labels).is_file():
            spec["labels_stat"] = file_stamp(Path(source.labels))
    blob = json.dumps(spec, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _decode(source: VideoSource, where: str) -> Clip:
    if source.labels is None:
        raise GemelError(f"{where}: field 'labels': a video source needs a label file here")
    labels = read_labels(source.labels)
    video = decode_video(source.path, fps=source.fps, resolution=source.resolution)
    if abs(labels.fps - video.fps) > 1e-6:
        raise GemelError(
            f"{labels.path}: labelled at {labels.fps:g} fps but the source samples "
            f"{Path(source.path).name} at {video.fps:g} fps"
        )
    truths = labels.for_frames(video.slots.tolist())
    return Clip(video.frames, truths, video.fps, video.slots)


def load_clip(source: SyntheticSource | VideoSource, *, where: str = "source") -> Clip:
    """The source's frames and truth, from the cache or made now (and cached).

    Clips read from the cache stay memoised in the process (frames memory-mapped), so the
    splits of one source are read once.
    """
    folder = cache_dir() / "sources" / f"{source.kind}-{source_key(source)}"
    if folder in _OPEN and (folder / "meta.json").is_file():
        return _OPEN[folder]
    clip = _read_or_make(source, folder, where)
    _OPEN[folder] = clip
    while len(_OPEN) > _OPEN_MAX:
        del _OPEN[next(iter(_OPEN))]
    return clip


_OPEN: dict[Path, Clip] = {}
_OPEN_MAX = 16


def forget_open_clips() -> None:
    """Drop the clips memoised in this process (the next load reads the cache again)."""
    _OPEN.clear()


def _read_or_make(source: SyntheticSource | VideoSource, folder: Path, where: str) -> Clip:
    if not (folder / "meta.json").is_file():
        clip = generate(source) if isinstance(source, SyntheticSource) else _decode(source, where)
        with atomic_dir(folder) as tmp:
            np.save(tmp / "frames.npy", clip.frames)
            np.save(tmp / "slots.npy", clip.slots)
            write_labels(tmp / "truth.jsonl", clip.truths, clip.fps)
            write_json_atomic(
                tmp / "meta.json", {"source": source.model_dump(mode="json"), "fps": clip.fps}
            )
        return clip
    meta = json.loads((folder / "meta.json").read_text())
    frames = np.load(folder / "frames.npy", mmap_mode="r")
    slots = np.load(folder / "slots.npy")
    truths = read_labels(folder / "truth.jsonl").for_frames(range(len(frames)))
    return Clip(frames, truths, float(meta["fps"]), slots)
