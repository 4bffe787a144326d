"""The paper's three basic scenarios: uniform motion, parabola, two-ball collision.

Ranges and placement rules follow the paper's code (reference §1): one ball of
radius r moving right at speed v (uniform: no gravity; parabola: gravity 2.5
downwards, initial vy = 0, starting near the top), and two balls on one horizontal
line moving towards each other (collision). OOD values are drawn from the low or
the high side of each OOD range and the side is recorded per video (``*_side``
parameters: -1 low, 0 in-distribution, +1 high).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from physim import rng, world
from physim.scenarios.base import COLOR_CODES as _CC
from physim.scenarios.base import (
    DiscScenario,
    Interval,
    axis_points,
    check_interval,
    level_grid,
    stack_levels,
)

# Draw streams of a video (independent draws; retries add rng.RETRY_STRIDE * attempt).
_S_R, _S_V, _S_X, _S_Y, _S_R2, _S_V2, _S_D = range(7)


def _check_ranges(spec) -> None:
    """Radius ranges must be positive, speed ranges non-negative; none empty."""
    for k in ("r_id", "r_low", "r_high"):
        check_interval(k, getattr(spec, k), lo=1e-6)
    for k in ("v_id", "v_low", "v_high"):
        check_interval(k, getattr(spec, k))


def _stream(s: int, attempt: int) -> int:
    return s + rng.RETRY_STRIDE * attempt


@dataclasses.dataclass(frozen=True)
class OneBall(DiscScenario):
    """One ball moving right; the uniform-motion and parabola scenarios.

    Placement (paper code): ``x0 ~ U(r, 10 - (min_visible * v * dt + r))`` so the ball
    stays fully in view for ``min_visible`` frames; if that bound is below r (fast
    balls: ``min_visible * v * dt + 2r > 10``, where no placement can keep it fully in
    view that long) ``x0 = r + U(0, 0.5)``: every in-distribution ball (v <= 4) is then
    still at least partly visible for 24 frames; OOD balls faster than about 4.1 leave
    the view earlier, as in the paper. ``y0 ~ U(r + 0.5, 9.5 - r)`` (``start="any"``)
    or ``U(8.5 - r, 9.5 - r)`` (``start="top"``, parabola).
    """

    name: ClassVar[str] = "uniform"
    r_id: Interval = (0.7, 1.4)
    v_id: Interval = (1.0, 4.0)
    r_low: Interval = (0.3, 0.6)
    r_high: Interval = (1.5, 2.0)
    v_low: Interval = (0.0, 0.8)
    v_high: Interval = (4.5, 6.0)
    start: str = "any"
    min_visible: int = 24
    color: str = "red"
    shape: str = "ball"
    # Evaluation grid sizes: values per ID axis and per OOD side.
    grid_r: int = 10
    grid_v: int = 16
    grid_r_side: int = 4
    grid_v_side: int = 8

    levels: ClassVar[tuple[str, ...]] = ("id", "r", "v", "rv")

    def __post_init__(self):
        super().__post_init__()
        _check_ranges(self)
        if max(self.r_id[1], self.r_high[1]) > 4.5:
            raise ValueError("radius above 4.5 cannot fit the box")
        if self.start not in ("any", "top"):
            raise ValueError(f"start must be 'any' or 'top', got {self.start!r}")
        world.color_rgb(self.color)
        world.shape_code(self.shape)
        if min(self.grid_r, self.grid_v, self.grid_r_side, self.grid_v_side) < 1:
            raise ValueError("grid sizes must be >= 1")

    def level_names(self, split):
        return ("id",) if split in ("train", "id") else self.levels

    def grid(self, split):
        self.check_split(split)

        def pts(ood_r, ood_v):
            return {
                "r": axis_points(
                    ood_r, self.grid_r, self.grid_r_side, self.r_id, self.r_low, self.r_high
                ),
                "v": axis_points(
                    ood_v, self.grid_v, self.grid_v_side, self.v_id, self.v_low, self.v_high
                ),
            }

        if split == "id":
            return stack_levels([level_grid(pts(False, False))])
        if split == "ood":
            g = [
                level_grid(pts(*f))
                for f in ((False, False), (True, False), (False, True), (True, True))
            ]
            codes, cols = stack_levels(g)
            keep = codes > 0  # level 0 ("id") is the id split's
            return codes[keep], {k: v[keep] for k, v in cols.items()}
        return np.zeros(0, np.int16), {}

    def draw_params(self, seed, index, attempt):
        z = np.zeros(index.shape[0])
        return {
            "r": rng.uniform(seed, index, _stream(_S_R, attempt), *self.r_id),
            "v": rng.uniform(seed, index, _stream(_S_V, attempt), *self.v_id),
            "r_side": z,
            "v_side": z.copy(),
        }

    def place(self, seed, index, params, attempt):
        r, v = params["r"], params["v"]
        m = r.shape[0]
        upper = world.WORLD_SIZE - (self.min_visible * v * self.dt + r)
        ux = rng.uniform(seed, index, _stream(_S_X, attempt))
        x0 = np.where(upper >= r, r + (upper - r) * ux, r + 0.5 * ux)
        uy = rng.uniform(seed, index, _stream(_S_Y, attempt))
        if self.start == "top":
            y0 = (8.5 - r) + uy
        else:
            y0 = (r + 0.5) + (9.0 - 2 * r) * uy
        pos0 = np.stack([x0, y0], -1)[:, None, :]
        vel0 = np.stack([v, np.zeros(m)], -1)[:, None, :]
        shapes = np.full((m, 1), world.shape_code(self.shape))
        colors = np.full((m, 1), _CC[self.color])
        return r[:, None].copy(), shapes, colors, pos0, vel0, np.ones(m, bool)


@dataclasses.dataclass(frozen=True)
class Uniform(OneBall):
    """Uniform motion: one ball, no gravity."""

    name: ClassVar[str] = "uniform"


@dataclasses.dataclass(frozen=True)
class Parabola(OneBall):
    """Parabola: one ball thrown horizontally under gravity (0, -2.5), from near the top."""

    name: ClassVar[str] = "parabola"
    gravity: tuple[float, float] = (0.0, -2.5)
    start: str = "top"


@dataclasses.dataclass(frozen=True)
class Collision(DiscScenario):
    """Two balls on one horizontal line: ball 1 (red) moves right at v1, ball 2 (blue)
    left at v2; they collide elastically.

    Placement (paper code): centre distance ``d ~ U(dmin, min(dmax, 10 - r1 - r2))``
    with ``dmin = min_pre (v1 + v2) dt + r1 + r2`` and ``dmax = (T - min_post) dt (v1 + v2)
    + r1 + r2``, so the collision happens at frame >= ``min_pre`` with >= ``min_post``
    frames after it; ``x1 ~ U(r1, 10 - r2 - d)``, ``x2 = x1 + d``,
    ``y ~ U(max r + 0.5, 9.5 - max r)``. Parameters for which no such d exists
    (e.g. v1 = v2 = 0) are redrawn (training) or dropped (evaluation grids).
    """

    name: ClassVar[str] = "collision"
    r_id: Interval = (0.5, 1.5)
    v_id: Interval = (1.0, 4.0)
    r_low: Interval = (0.3, 0.4)
    r_high: Interval = (1.7, 2.0)
    v_low: Interval = (0.0, 0.8)
    v_high: Interval = (4.5, 6.0)
    min_pre: int = 8
    min_post: int = 8
    colors: tuple[str, str] = ("red", "blue")
    grid_r: int = 4
    grid_v: int = 6
    grid_r_side: int = 1
    grid_v_side: int = 2

    levels: ClassVar[tuple[str, ...]] = ("id", "r1", "v1", "r1r2", "v1v2", "r1v1", "all")
    _ood_axes: ClassVar[dict[str, tuple[str, ...]]] = {
        "id": (),
        "r1": ("r1",),
        "v1": ("v1",),
        "r1r2": ("r1", "r2"),
        "v1v2": ("v1", "v2"),
        "r1v1": ("r1", "v1"),
        "all": ("r1", "r2", "v1", "v2"),
    }

    def __post_init__(self):
        super().__post_init__()
        _check_ranges(self)
        for c in self.colors:
            world.color_rgb(c)
        if self.min_pre + self.min_post > self.n_frames:
            raise ValueError("min_pre + min_post exceeds the number of frames")

    def level_names(self, split):
        return ("id",) if split in ("train", "id") else self.levels

    def grid(self, split):
        self.check_split(split)
        if split == "train":
            return np.zeros(0, np.int16), {}
        names = self.levels[:1] if split == "id" else self.levels
        per_level = []
        for lv in names:
            ood = self._ood_axes[lv]
            pts = {}
            for p in ("r1", "r2", "v1", "v2"):
                kind = p[0]
                pts[p] = axis_points(
                    p in ood,
                    self.grid_r if kind == "r" else self.grid_v,
                    self.grid_r_side if kind == "r" else self.grid_v_side,
                    getattr(self, f"{kind}_id"),
                    getattr(self, f"{kind}_low"),
                    getattr(self, f"{kind}_high"),
                )
            per_level.append(level_grid(pts))
        codes, cols = stack_levels(per_level)
        if split == "ood":
            keep = codes > 0
            return codes[keep], {k: v[keep] for k, v in cols.items()}
        return codes, cols

    def draw_params(self, seed, index, attempt):
        z = np.zeros(index.shape[0])
        out = {}
        for p, s in (("r1", _S_R), ("r2", _S_R2), ("v1", _S_V), ("v2", _S_V2)):
            out[p] = rng.uniform(seed, index, _stream(s, attempt), *getattr(self, f"{p[0]}_id"))
            out[p + "_side"] = z.copy()
        return out

    def place(self, seed, index, params, attempt):
        r1, r2, v1, v2 = params["r1"], params["r2"], params["v1"], params["v2"]
        m = r1.shape[0]
        vs, rs = v1 + v2, r1 + r2
        dmin = self.min_pre * vs * self.dt + rs
        dmax = np.minimum(
            (self.n_frames - self.min_post) * self.dt * vs + rs, world.WORLD_SIZE - rs
        )
        ok = (vs > 0) & (dmin <= dmax) & (np.maximum(r1, r2) <= 4.5)
        d = dmin + (dmax - dmin) * rng.uniform(seed, index, _stream(_S_D, attempt))
        x1 = r1 + (world.WORLD_SIZE - rs - d) * rng.uniform(seed, index, _stream(_S_X, attempt))
        rmax = np.maximum(r1, r2)
        y = (rmax + 0.5) + (9.0 - 2 * rmax) * rng.uniform(seed, index, _stream(_S_Y, attempt))
        pos0 = np.stack([np.stack([x1, y], -1), np.stack([x1 + d, y], -1)], 1)
        vel0 = np.stack([np.stack([v1, 0 * v1], -1), np.stack([-v2, 0 * v2], -1)], 1)
        radii = np.stack([r1, r2], 1)
        shapes = np.full((m, 2), world.shape_code("ball"))
        colors = np.tile([_CC[self.colors[0]], _CC[self.colors[1]]], (m, 1))
        return radii, shapes, colors, pos0, vel0, ok
