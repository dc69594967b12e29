"""The synthetic street-scene generator: determinism, sane ground truth, variety."""

from __future__ import annotations

import numpy as np
import pytest

from gemel.data.synthetic import CLASSES, generate, make_camera
from gemel.workload import SyntheticSource


@pytest.fixture(scope="module")
def clip():
    return generate(SyntheticSource(camera=1, seed=3, frames=300, resolution=(48, 64), fps=5))


def test_same_seed_same_bits(clip):
    again = generate(SyntheticSource(camera=1, seed=3, frames=300, resolution=(48, 64), fps=5))
    assert np.array_equal(clip.frames, again.frames)
    assert all(
        np.array_equal(a.boxes, b.boxes) and a.classes == b.classes
        for a, b in zip(clip.truths, again.truths, strict=True)
    )


def test_other_seed_or_camera_differs(clip):
    for other in (dict(camera=1, seed=4), dict(camera=2, seed=3)):
        src = SyntheticSource(frames=300, resolution=(48, 64), fps=5, **other)
        assert not np.array_equal(generate(src).frames, clip.frames)


def test_frames_shape_and_time(clip):
    assert clip.frames.shape == (300, 48, 64, 3) and clip.frames.dtype == np.uint8
    assert len(clip.truths) == 300 and clip.fps == 5
    assert np.array_equal(clip.slots, np.arange(300))


def test_boxes_inside_frame_with_valid_classes(clip):
    seen = set()
    for t in clip.truths:
        assert t.boxes.shape == (len(t.classes), 4)
        if len(t.classes):
            x1, y1, x2, y2 = t.boxes.T
            assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= 64).all() and (y2 <= 48).all()
            assert (x1 < x2).all() and (y1 < y2).all()
        seen.update(t.classes)
        assert set(t.classes) <= set(CLASSES)
    assert seen == set(CLASSES), "300 frames at 5 fps (60 s) should show every class"


def test_boxes_cover_drawn_objects(clip):
    # every labelled box holds pixels that differ from the empty street at the same place:
    # compare with the per-pixel median over the clip, which is (nearly) the background
    background = np.median(clip.frames[:60].astype(np.float32), axis=0)
    for t, frame in zip(clip.truths[:60], clip.frames[:60], strict=True):
        for x1, y1, x2, y2 in t.boxes.astype(int):
            diff = np.abs(frame[y1:y2, x1:x2].astype(np.float32) - background[y1:y2, x1:x2])
            assert diff.max() > 40


def test_traffic_varies(clip):
    counts = np.array([len(t.classes) for t in clip.truths])
    assert counts.min() == 0 or counts.max() >= 3
    assert len(np.unique(counts)) >= 3


def test_light_fades_to_dusk_and_returns_each_cycle():
    # 20 s cycle at 5 fps: day at frames 0 and 100, dusk at frame 50
    src = SyntheticSource(camera=0, frames=110, resolution=(32, 32), fps=5, day_cycle_s=20)
    frames = generate(src).frames.astype(np.float32)
    day, dusk, next_day = frames[:10].mean(), frames[45:55].mean(), frames[96:106].mean()
    assert dusk < 0.85 * day
    assert dusk < 0.85 * next_day


def test_cameras_look_different():
    a, b = make_camera(0, 0), make_camera(0, 1)
    assert a.horizon != b.horizon and not np.array_equal(a.sky, b.sky)
