"""Video files decoded with PyAV, sampled at a chosen rate.

Sampling at ``fps`` (default: the file's own rate) keeps, for each slot ``k`` (the instant
``k / fps`` after the first frame), the first decoded frame at or after it; a slot with no
frame of its own is left out, so the slot index of a frame is its place in time and labels
keyed by slot stay aligned. A packet the decoder rejects is skipped and counted in
``skipped``; decoding goes on with the next packet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from gemel.errors import GemelError


@dataclass(frozen=True)
class DecodedVideo:
    """Sampled frames (``[N, H, W, 3]`` uint8 RGB), their slot indices, the sampling rate and
    the number of skipped packets."""

    frames: np.ndarray
    slots: np.ndarray
    fps: float
    skipped: int


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise GemelError(f"{path}: video file not found")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise GemelError(f"{path}: cannot decode video: {e}") from None
    if not container.streams.video:
        container.close()
        raise GemelError(f"{path}: no video stream in the file")
    return container


def _rate(stream: av.video.stream.VideoStream, path: Path) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise GemelError(f"{path}: the video stream has no frame rate; give 'fps'")
    return float(rate)


def video_rate(path: str | Path) -> float:
    """The file's own frame rate (frames per second)."""
    with _open(Path(path)) as container:
        return _rate(container.streams.video[0], Path(path))


def iter_video(
    path: str | Path,
    *,
    fps: float | None = None,
    resolution: tuple[int, int] | None = None,
    counter: list[int] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(slot, frame)`` for the sampled frames of a video (frame: ``[H, W, 3]`` uint8).

    ``resolution`` is ``(height, width)``; ``counter[0]`` (if given) counts skipped packets.
    """
    path = Path(path)
    skipped = counter if counter is not None else [0]
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = fps if fps is not None else _rate(stream, path)
        tb = stream.time_base
        origin: float | None = None
        next_slot = 0
        kwargs: dict[str, object] = {"format": "rgb24"}
        if resolution is not None:
            kwargs |= {"height": resolution[0], "width": resolution[1]}
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                skipped[0] += 1
                continue
            for frame in frames:
                if frame.pts is None or tb is None:
                    raise GemelError(f"{path}: frames carry no timestamps")
                t = float(frame.pts * tb)
                origin = t if origin is None else origin
                slot = int(np.floor((t - origin) * rate + 1e-3))
                if slot < next_slot:
                    continue
                next_slot = slot + 1
                yield slot, frame.to_ndarray(**kwargs)


def decode_video(
    path: str | Path, *, fps: float | None = None, resolution: tuple[int, int] | None = None
) -> DecodedVideo:
    """Decode a whole video (see :func:`iter_video`)."""
    counter = [0]
    slots, frames = [], []
    for slot, img in iter_video(path, fps=fps, resolution=resolution, counter=counter):
        slots.append(slot)
        frames.append(img)
    if not frames:
        raise GemelError(f"{path}: no decodable frames")
    rate = fps if fps is not None else video_rate(path)
    return DecodedVideo(np.stack(frames), np.array(slots, np.int64), rate, counter[0])
