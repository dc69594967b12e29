"""Deterministic multi-camera street scenes: the embedded default data source.

Each camera (``SyntheticSource.camera``) looks at a street from its own viewpoint: its own
horizon, lane positions and scale, sky, buildings and road colours, sensor noise and lens blur.
The light drifts from day to dusk (darker, warmer then bluer, noisier) and back, once every
``day_cycle_s`` seconds, so every stretch of a clip at least that long (each split of a long
enough clip) sees the whole range of light rather than one split holding all the dusk. Cars, buses,
trucks, people and bicycles enter from either side, move at plausible speeds in their lane,
occlude one another (nearer lanes are drawn on top) and leave. Traffic density rises and falls
in waves of 15-60 s, so counts vary over time while every few minutes see rush and lull.

Ground truth per frame: the box (x1, y1, x2, y2 in pixels, clipped to the frame) and class of
every object of which at least ``VISIBLE_MIN`` of its pixels can be seen (occlusion and the frame
edge both hide pixels).

The scene is simulated in metres and seconds and drawn at any resolution. The same source spec
gives the same frames, bit for bit: the simulation draws from one random stream, and each
fixed-size chunk of frames draws its noise from its own stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gemel.data.truth import Clip, FrameTruth
from gemel.workload import SyntheticSource

CLASSES = ("car", "bus", "truck", "person", "bicycle")
VISIBLE_MIN = 0.3
CHUNK = 64  # frames rendered together; noise streams are keyed by chunk index

# per class: length (m), height (m), speed range (m/s); people and bicycles use the sidewalk
_SIZE = {
    "car": ((3.9, 4.8), (1.4, 1.6), (7.0, 13.0)),
    "bus": ((10.0, 12.0), (2.9, 3.2), (5.0, 9.0)),
    "truck": ((6.5, 8.5), (3.1, 3.6), (5.0, 9.0)),
    "person": ((0.5, 0.65), (1.6, 1.9), (1.0, 1.8)),
    "bicycle": ((1.7, 1.8), (1.6, 1.8), (3.0, 5.5)),
}
_BODY_COLOURS = np.array(
    [
        [200, 30, 30],
        [30, 60, 190],
        [190, 190, 195],
        [25, 25, 30],
        [235, 235, 235],
        [30, 130, 60],
        [120, 40, 120],
        [230, 190, 40],
    ],
    dtype=np.float32,
)
_BUS_COLOURS = np.array([[240, 180, 20], [220, 80, 20], [200, 30, 40], [20, 110, 200]], np.float32)
_CARGO_COLOURS = np.array([[225, 225, 220], [170, 170, 175], [140, 100, 60]], np.float32)
_SHIRT_COLOURS = np.array(
    [[200, 40, 40], [40, 90, 200], [40, 160, 80], [230, 200, 60], [240, 240, 240], [60, 60, 60]],
    np.float32,
)


@dataclass(frozen=True)
class Lane:
    """A horizontal track: objects stand on ``ground`` (fraction of height) at ``scale`` px/m
    (fraction of width per metre) and move in ``direction`` (+1 right, -1 left)."""

    ground: float
    scale: float
    direction: int
    classes: tuple[str, ...]
    rates: tuple[float, ...]  # arrivals per second per class at mean density


@dataclass(frozen=True)
class Camera:
    """Everything that makes one camera's view its own, drawn from ``(seed, camera)``."""

    horizon: float
    lanes: tuple[Lane, ...]
    sky: np.ndarray
    road: np.ndarray
    sidewalk: np.ndarray
    buildings: np.ndarray  # (k, 3) facade colours
    noise: float  # sensor noise std at full light (0..255 scale)
    blur: int  # passes of a 1-2-1 blur
    dusk: float  # brightness at the end of the clip


@dataclass(frozen=True)
class Track:
    """One object's path: in frame from ``start`` to ``stop`` (frame indices, exclusive)."""

    cls: str
    lane: int
    start: int
    stop: int
    x0: float  # left edge at ``start``, pixels
    vx: float  # pixels per frame
    sprite: np.ndarray  # (h, w, 3) float32
    mask: np.ndarray  # (h, w) bool
    top: int  # row of the sprite's top edge


def make_camera(seed: int, camera: int) -> Camera:
    """The viewpoint, palette and optics of one camera."""
    rng = np.random.default_rng([seed, camera, 7])
    horizon = float(rng.uniform(0.28, 0.42))
    span = 1.0 - horizon
    zoom = float(rng.uniform(0.9, 1.15))

    def at(depth: float) -> tuple[float, float]:
        ground = horizon + depth * span
        return ground, zoom * 0.1 * depth  # perspective: nearer (lower) is larger

    far_g, far_s = at(0.42)
    near_g, near_s = at(0.7)
    walk_g, walk_s = at(0.93)
    d = 1 if rng.random() < 0.5 else -1
    mix = rng.uniform(0.6, 1.4, size=5)  # this camera's traffic mix
    vehicles = ("car", "bus", "truck")
    v_rates = (0.22 * mix[0], 0.035 * mix[1], 0.05 * mix[2])
    lanes = (
        Lane(far_g, far_s, -d, vehicles, v_rates),
        Lane(near_g, near_s, d, vehicles, v_rates),
        Lane(walk_g, walk_s, d, ("person", "bicycle"), (0.05 * mix[3], 0.04 * mix[4])),
        Lane(walk_g + 0.02, walk_s * 1.03, -d, ("person", "bicycle"), (0.04 * mix[3], 0.025)),
    )
    return Camera(
        horizon=horizon,
        lanes=lanes,
        sky=rng.uniform([120, 160, 200], [170, 200, 240]).astype(np.float32),
        road=rng.uniform(70, 110, size=1).repeat(3).astype(np.float32) + rng.uniform(-6, 6, 3),
        sidewalk=rng.uniform(140, 175, size=1).repeat(3).astype(np.float32) + rng.uniform(-8, 8, 3),
        buildings=rng.uniform([90, 60, 50], [200, 170, 150], size=(6, 3)).astype(np.float32),
        noise=float(rng.uniform(2.0, 5.0)),
        blur=int(rng.integers(0, 2)),
        dusk=float(rng.uniform(0.55, 0.7)),
    )


def _background(cam: Camera, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = np.empty((h, w, 3), np.float32)
    hz = round(cam.horizon * h)
    walk_top = round((cam.lanes[1].ground + 0.05) * h)
    rows = np.linspace(0.85, 1.1, hz, dtype=np.float32)[:, None, None]
    img[:hz] = cam.sky * rows
    # buildings: facades of random widths and heights standing on the horizon, with windows
    x = 0
    while x < w:
        bw = int(rng.integers(max(2, w // 10), max(3, w // 4)))
        bh = int(rng.integers(max(2, hz // 3), max(3, hz)))
        colour = cam.buildings[int(rng.integers(len(cam.buildings)))]
        img[hz - bh : hz, x : x + bw] = colour
        step = max(2, w // 24)
        win = colour * 0.45
        img[hz - bh + 1 : hz - 1 : step, x + 1 : x + bw - 1 : step] = win
        x += bw
    img[hz:walk_top] = cam.road
    img[walk_top:] = cam.sidewalk
    lane_mark = round(((cam.lanes[0].ground + cam.lanes[1].ground) / 2 - 0.02) * h)
    dash = max(2, w // 16)
    for x0 in range(0, w, 2 * dash):
        img[lane_mark : lane_mark + max(1, h // 96), x0 : x0 + dash] = (220, 220, 200)
    img[walk_top : walk_top + max(1, h // 64)] = cam.sidewalk * 0.75  # kerb
    return img


def _wheels(mask: np.ndarray, sprite: np.ndarray, xs: list[float], r: float) -> None:
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    cy = h - r
    for cx in xs:
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        sprite[disc] = (20, 20, 20)
        mask |= disc


def _sprite(cls: str, length: float, height: float, rng: np.random.Generator):
    """Draw one object's appearance: (sprite (h, w, 3), mask (h, w))."""
    w = max(2, round(length))
    h = max(3, round(height))
    sprite = np.zeros((h, w, 3), np.float32)
    mask = np.zeros((h, w), bool)
    if cls == "car":
        body = _BODY_COLOURS[rng.integers(len(_BODY_COLOURS))]
        lower = h - round(h * 0.55)
        sprite[lower:] = body
        mask[lower:] = True
        c0, c1 = round(w * 0.2), round(w * 0.8)
        sprite[:lower, c0:c1] = (body * 0.5 + 60).clip(0, 255)
        sprite[max(0, lower - max(1, h // 3)) : lower, c0 + 1 : c1 - 1] = (90, 130, 160)
        mask[:lower, c0:c1] = True
        _wheels(mask, sprite, [w * 0.2, w * 0.8], max(1.0, h * 0.2))
    elif cls == "bus":
        body = _BUS_COLOURS[rng.integers(len(_BUS_COLOURS))]
        sprite[:] = body
        mask[:] = True
        band0, band1 = round(h * 0.2), max(round(h * 0.2) + 1, round(h * 0.5))
        sprite[band0:band1, 1:-1] = (40, 50, 70)
        step = max(2, w // 9)
        sprite[band0:band1, 1:-1:step] = body
        _wheels(mask, sprite, [w * 0.15, w * 0.85], max(1.0, h * 0.12))
    elif cls == "truck":
        cab = _BODY_COLOURS[rng.integers(len(_BODY_COLOURS))]
        cargo = _CARGO_COLOURS[rng.integers(len(_CARGO_COLOURS))]
        split = round(w * 0.72)
        sprite[:, :split] = cargo
        mask[:, :split] = True
        cab_top = round(h * 0.35)
        sprite[cab_top:, split + 1 :] = cab
        sprite[cab_top + 1 : cab_top + max(2, h // 4), split + 2 :] = (90, 130, 160)
        mask[cab_top:, split + 1 :] = True
        sprite[h - max(1, h // 6) :, :] = (50, 50, 50)
        mask[h - max(1, h // 6) :, :] = True
        _wheels(mask, sprite, [w * 0.12, w * 0.6, w * 0.9], max(1.0, h * 0.12))
    elif cls == "person":
        shirt = _SHIRT_COLOURS[rng.integers(len(_SHIRT_COLOURS))]
        head = max(1, round(h * 0.16))
        legs = round(h * 0.55)
        sprite[:head] = rng.uniform([150, 100, 70], [235, 190, 160])
        sprite[head:legs] = shirt
        sprite[legs:] = (40, 40, 70)
        mask[:] = True
    else:  # bicycle with its rider
        shirt = _SHIRT_COLOURS[rng.integers(len(_SHIRT_COLOURS))]
        r = max(1.0, w * 0.22)
        _wheels(mask, sprite, [r, w - r], r)
        hole = np.zeros_like(mask)
        _wheels(hole, np.zeros_like(sprite), [r, w - r], r * 0.55)
        mask &= ~hole
        sprite[h - round(r) - 1 : h - round(r), :] = (160, 160, 170)
        mask[h - round(r) - 1 : h - round(r), :] = True
        c0, c1 = round(w * 0.35), max(round(w * 0.35) + 1, round(w * 0.65))
        top = h - round(2 * r) - 1
        sprite[: max(1, top), c0:c1] = shirt
        sprite[: max(1, round(h * 0.15)), c0:c1] = rng.uniform([150, 100, 70], [235, 190, 160])
        mask[: max(1, top), c0:c1] = True
    return sprite, mask


def simulate(source: SyntheticSource, cam: Camera) -> list[Track]:
    """Every object's path through the clip, in frame order of arrival."""
    rng = np.random.default_rng([source.seed, source.camera, 11])
    h, w = source.resolution
    n, fps = source.frames, source.fps
    t = np.arange(n) / fps
    tracks: list[Track] = []
    for li, lane in enumerate(cam.lanes):
        px_m = lane.scale * w
        free_at = -1e9  # frame at which the lane entry is clear again
        leader_v, leader_stop = np.inf, -1
        density = _waves(rng, t, depth=0.85)  # rush and lull, lane by lane
        rates = np.array(lane.rates) / fps
        share = rates / rates.sum()
        arrive = rng.random(n) < 1.0 - np.exp(-rates.sum() * density)
        kinds = rng.choice(len(rates), size=n, p=share)
        for f in np.flatnonzero(arrive).tolist():
            cls = lane.classes[int(kinds[f])]
            vehicle = cls in ("car", "bus", "truck")
            if vehicle and f < free_at:
                continue  # the entry is blocked by the vehicle in front
            (l0, l1), (h0, h1), (v0, v1) = _SIZE[cls]
            length, height = rng.uniform(l0, l1) * px_m, rng.uniform(h0, h1) * px_m
            speed = rng.uniform(v0, v1) * px_m / fps
            sprite, mask = _sprite(cls, length, height, rng)
            sh, sw = mask.shape
            if vehicle:
                if f < leader_stop:
                    speed = min(speed, leader_v)  # never catch up with the vehicle in front
                free_at = f + (sw + 0.15 * w) / speed
            x0 = -sw if lane.direction > 0 else w
            vx = speed * lane.direction
            stop = f + int(np.ceil((w + sw) / speed)) + 1
            if vehicle:
                leader_v, leader_stop = speed, stop
            ground = lane.ground * h + rng.uniform(-0.01, 0.01) * h
            tracks.append(Track(cls, li, f, min(n, stop), x0, vx, sprite, mask, round(ground) - sh))
    return tracks


def _waves(rng: np.random.Generator, t: np.ndarray, depth: float) -> np.ndarray:
    """A slow positive fluctuation around 1: three waves with periods of 15-60 s."""
    periods = rng.uniform(15.0, 60.0, 3)
    phases = rng.uniform(0, 2 * np.pi, 3)
    w = np.sin(2 * np.pi * t[:, None] / periods + phases).mean(axis=1) / 0.6
    return np.clip(1.0 + depth * w, 0.05, None)


def _lighting(
    n: int, fps: float, cycle_s: float, dusk: float, rng: np.random.Generator
) -> np.ndarray:
    """Per-frame RGB gain: daylight fading to a dim blue dusk through a warm golden hour and
    back, once per ``cycle_s`` seconds, with passing clouds."""
    seconds = np.arange(n) / fps
    phase = (seconds / cycle_s) % 1.0
    t = (1.0 - np.abs(2.0 * phase - 1.0)).astype(np.float32)  # 0 at day, 1 at dusk
    clouds = _waves(rng, seconds, depth=0.08)
    bright = (1.0 - (1.0 - dusk) * t**1.5) * clouds
    warm = np.sin(np.pi * np.clip(t * 1.4, 0, 1))
    blue = np.clip((t - 0.7) / 0.3, 0, 1)
    tint = 1 + warm[:, None] * [0.12, 0.02, -0.15] + blue[:, None] * [-0.12, -0.03, 0.12]
    return (bright[:, None] * tint).astype(np.float32)


def _blur(x: np.ndarray, passes: int) -> np.ndarray:
    for _ in range(passes):
        p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        x = 0.25 * p[:, :-2] + 0.5 * p[:, 1:-1] + 0.25 * p[:, 2:]
        x = 0.25 * x[:, :, :-2] + 0.5 * x[:, :, 1:-1] + 0.25 * x[:, :, 2:]
    return x


def generate(source: SyntheticSource) -> Clip:
    """Render the whole clip of one synthetic camera."""
    h, w = source.resolution
    n = source.frames
    cam = make_camera(source.seed, source.camera)
    background = _background(cam, h, w, np.random.default_rng([source.seed, source.camera, 13]))
    tracks = simulate(source, cam)
    gain = _lighting(
        n,
        source.fps,
        source.day_cycle_s,
        cam.dusk,
        np.random.default_rng([source.seed, source.camera, 19]),
    )
    frames = np.empty((n, h, w, 3), np.uint8)
    truths: list[FrameTruth] = []
    # draw far lanes first so nearer objects occlude them
    order = sorted(range(len(tracks)), key=lambda i: (cam.lanes[tracks[i].lane].ground, i))
    for c0 in range(0, n, CHUNK):
        c1 = min(n, c0 + CHUNK)
        canvas = np.broadcast_to(background, (c1 - c0, h, w, 3)).copy()
        ids = np.full((c1 - c0, h, w), -1, np.int32)
        live = [i for i in order if tracks[i].start < c1 and tracks[i].stop > c0]
        boxes: list[list[tuple[int, tuple[float, float, float, float], int]]] = [
            [] for _ in range(c1 - c0)
        ]
        for i in live:
            tr = tracks[i]
            sh, sw = tr.mask.shape
            y0, y1 = max(0, tr.top), min(h, tr.top + sh)
            if y1 <= y0:
                continue
            for f in range(max(c0, tr.start), min(c1, tr.stop)):
                x = round(tr.x0 + tr.vx * (f - tr.start))
                xa, xb = max(0, x), min(w, x + sw)
                if xb <= xa:
                    continue
                part = (slice(y0 - tr.top, y1 - tr.top), slice(xa - x, xb - x))
                m = tr.mask[part]
                canvas[f - c0, y0:y1, xa:xb][m] = tr.sprite[part][m]
                ids[f - c0, y0:y1, xa:xb][m] = i
                box = (float(xa), float(y0), float(xb), float(y1))
                boxes[f - c0].append((i, box, int(tr.mask.sum())))
        chunk_rng = np.random.default_rng([source.seed, source.camera, 17, c0 // CHUNK])
        lit = canvas * gain[c0:c1, None, None, :]
        lit = _blur(lit, cam.blur)
        sigma = cam.noise * (1.0 + 2.0 * (1.0 - gain[c0:c1].mean(axis=1)))
        lit += chunk_rng.standard_normal(lit.shape, dtype=np.float32) * sigma[:, None, None, None]
        np.clip(lit, 0, 255, out=lit)
        frames[c0:c1] = (lit + 0.5).astype(np.uint8)
        for k, objs in enumerate(boxes):
            kept = []
            for i, box, full in objs:
                x1, y1, x2, y2 = (int(v) for v in box)
                visible = int((ids[k, y1:y2, x1:x2] == i).sum())
                if visible >= VISIBLE_MIN * full:
                    kept.append((box, tracks[i].cls))
            truths.append(
                FrameTruth(
                    boxes=np.array([b for b, _ in kept], np.float32).reshape(-1, 4),
                    classes=tuple(c for _, c in kept),
                )
            )
    return Clip(frames=frames, truths=truths, fps=source.fps, slots=np.arange(n))
