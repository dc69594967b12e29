"""Real video through PyAV: a round trip, sampling, a damaged packet, unreadable files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from gemel.data.video import decode_video, video_rate
from gemel.errors import GemelError

N, H, W = 12, 48, 64


def colour(i: int) -> tuple[int, int, int]:
    return (i * 20, 255 - i * 20, 100)


def encode(path: Path, rate: int = 10) -> list[tuple[int, int]]:
    """Write N flat-coloured frames as MJPEG (every packet one whole frame); return the
    (byte offset, size) of each packet in the file."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=rate)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuvj420p"
        for i in range(N):
            img = np.zeros((H, W, 3), np.uint8)
            img[:] = colour(i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(path)) as inp:
        return [(p.pos, p.size) for p in inp.demux(inp.streams.video[0]) if p.size]


@pytest.fixture
def clip(tmp_path: Path) -> tuple[Path, list[tuple[int, int]]]:
    path = tmp_path / "clip.avi"
    return path, encode(path)


def close_to(frame: np.ndarray, i: int) -> bool:
    return bool(np.abs(frame.reshape(-1, 3).mean(0) - colour(i)).max() < 8)


def test_round_trip(clip):
    path, _ = clip
    video = decode_video(path)
    assert video.frames.shape == (N, H, W, 3) and video.frames.dtype == np.uint8
    assert video.slots.tolist() == list(range(N)) and video.skipped == 0
    assert video.fps == pytest.approx(10) == video_rate(path)
    assert all(close_to(f, i) for i, f in enumerate(video.frames))


def test_sampling_and_resizing(clip):
    path, _ = clip
    video = decode_video(path, fps=5, resolution=(24, 32))
    assert video.frames.shape == (N // 2, 24, 32, 3)
    assert all(close_to(f, 2 * i) for i, f in enumerate(video.frames))


def test_damaged_packet_is_skipped_and_counted(clip):
    path, packets = clip
    data = bytearray(path.read_bytes())
    pos, size = packets[5]
    data[pos + 8 : pos + size - 8] = b"\xff" * (size - 16)  # no valid JPEG left in it
    path.write_bytes(bytes(data))
    video = decode_video(path)
    assert video.skipped == 1
    assert video.slots.tolist() == [i for i in range(N) if i != 5]
    assert all(close_to(f, s) for s, f in zip(video.slots, video.frames, strict=True))


def test_missing_and_undecodable_files(tmp_path: Path):
    with pytest.raises(GemelError, match="video file not found"):
        decode_video(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 50)
    with pytest.raises(GemelError, match=r"junk\.mp4: cannot decode video"):
        decode_video(junk)
