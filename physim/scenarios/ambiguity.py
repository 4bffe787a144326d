"""Visual ambiguity (the paper's §5.5): outcomes that hinge on sub-pixel differences.

The paper steps gaps by 0.0005 and block positions by 1e-4 of the scene ("1 pixel is about
0.026 radius at 256²") and finds the model gives plausible but wrong outcomes. Two exact
disc versions, each with a signed margin ``m`` (world units) whose sign decides the outcome:

- ``pass``: ball A (red) moves right past ball B (blue, at rest), no gravity. Their paths
  are ``r1 + r2 + m`` apart vertically: ``m < 0`` they touch (``outcome`` 1, "hit": B is
  pushed), ``m > 0`` A passes by (0, "miss").
- ``edge``: ball A moves straight down onto ball B at rest, A's centre ``m`` to the right
  of B's: A glances off to the right (``outcome`` 1) or, for ``m < 0``, to the left (0),
  and B is pushed the other way (the disc version of a block's edge deciding the side).

Splits: ``train`` draws margins uniformly in ``±m_train``; ``id`` is a grid of clear
margins (``|m|`` in ``m_clear``, at least about a pixel at 32 px) on both event types;
``ood`` is a log-spaced grid of margins from ``m_fine[0]`` (sub-pixel at 256 px) to
``m_fine[1]``, both signs, where the outcome is decided below the pixel. The outcome is
read off the exact simulation (``outcome``; ``contact`` for ``pass``), never assumed.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from physim import world
from physim.scenarios import register
from physim.scenarios.base import Interval, check_interval, linspace
from physim.scenarios.composition import EventScenario, _u

_S_KIND, _S_R1, _S_R2, _S_V, _S_M, _S_SIDE, _S_X, _S_Y, _S_T = range(9)


@dataclasses.dataclass(frozen=True)
class Ambiguity(EventScenario):
    """Sub-pixel margins decide the outcome (see the module docstring).

    Attributes:
      r_id: radius range of both balls (world units); v_id: A's speed (units/s).
      m_train: training margins are uniform in [-m_train, m_train].
      m_clear: |margin| range of the ``id`` grid; m_fine: of the log-spaced ``ood`` grid.
      grid_m, grid_r: margins per sign and radii per ball of the grids.
    """

    name: ClassVar[str] = "ambiguity"
    kinds: ClassVar[tuple[str, ...]] = ("pass", "edge", "pass_fine", "edge_fine")
    r_id: Interval = (0.6, 1.0)
    v_id: Interval = (1.5, 3.0)
    m_train: float = 1.0
    m_clear: Interval = (0.3, 1.0)
    m_fine: Interval = (0.0005, 0.256)
    grid_m: int = 10
    grid_r: int = 2
    min_pre: int = 8

    def __post_init__(self):
        super().__post_init__()
        check_interval("r_id", self.r_id, lo=1e-6)
        check_interval("v_id", self.v_id, lo=1e-6)
        check_interval("m_clear", self.m_clear, lo=1e-9)
        check_interval("m_fine", self.m_fine, lo=1e-9)
        if self.r_id[1] > 1.5:
            raise ValueError(f"r_id above 1.5 does not fit the scenes: {self.r_id}")
        if not 0 < self.m_train <= 2 * self.r_id[0]:
            raise ValueError(f"need 0 < m_train <= 2 r_id[0] (edge videos must touch), got "
                             f"{self.m_train}")
        if min(self.grid_m, self.grid_r) < 1:
            raise ValueError("grid sizes must be >= 1")
        if self.min_pre + 8 > self.n_frames:
            raise ValueError("min_pre + 8 exceeds the number of frames")

    def level_names(self, split):
        return self.kinds[2:] if split == "ood" else self.kinds[:2]

    def _grid_rows(self, kind):
        if kind.endswith("_fine"):
            lo, hi = np.log(self.m_fine[0]), np.log(self.m_fine[1])
            mags = np.exp(np.linspace(lo, hi, self.grid_m)) if self.grid_m > 1 else \
                np.array([self.m_fine[0]])
        else:
            mags = linspace(self.m_clear, self.grid_m)
        margins = np.concatenate([-mags[::-1], mags])
        rs = linspace(self.r_id, self.grid_r)
        v = float(np.mean(self.v_id))
        return [{"margin": float(m), "r1": float(r1), "r2": float(r2), "v": v}
                for m in margins for r1 in rs for r2 in rs]

    def _draw(self, seed, index, attempt):
        kind = "pass" if _u(seed, index, _S_KIND, attempt) < 0.5 else "edge"
        return kind, {"margin": _u(seed, index, _S_M, attempt, -self.m_train, self.m_train),
                      "r1": _u(seed, index, _S_R1, attempt, *self.r_id),
                      "r2": _u(seed, index, _S_R2, attempt, *self.r_id),
                      "v": _u(seed, index, _S_V, attempt, *self.v_id)}

    def _build(self, kind, p, seed, index, attempt):
        r1, r2, m = p["r1"], p["r2"], p["margin"]
        objects = world.Objects.make([r1, r2], colors=["red", "blue"])
        size = world.WORLD_SIZE
        if kind.startswith("pass"):
            v = p["v"]
            # A crosses B's column at frame k* in [min_pre, T - 8]
            t_star = _u(seed, index, _S_T, attempt, self.min_pre * self.dt,
                        (self.n_frames - 8) * self.dt)
            side = 1.0 if _u(seed, index, _S_SIDE, attempt) < 0.5 else -1.0
            gap = r1 + r2 + m
            room = size - 1.0 - (r1 + r2 + abs(gap))  # vertical extent of the pair
            if room <= 0:
                return None
            y_low = 0.5 + (r1 if side > 0 else r2) + room * _u(seed, index, _S_Y, attempt)
            y_a, y_b = (y_low, y_low + gap) if side > 0 else (y_low + gap, y_low)
            x_b = size / 2 + (size / 2 - r2 - 0.5) * (2 * _u(seed, index, _S_X, attempt) - 1)
            x_a = x_b - v * t_star
            if x_a < r1 or not (r2 <= x_b <= size - r2):
                return None
            if np.hypot(x_b - x_a, gap) <= r1 + r2:  # a hit this early starts overlapping
                return None
            pos0 = np.array([[x_a, y_a], [x_b, y_b]])
            return objects, pos0, np.array([[v, 0.0], [0.0, 0.0]]), {}
        # edge: A moves down onto B at rest, m to its right; they touch at time t*
        v = p["v"]
        if abs(m) >= r1 + r2:
            return None
        t_star = _u(seed, index, _S_T, attempt, self.min_pre * self.dt,
                    (self.n_frames - 8) * self.dt)
        dy = np.sqrt((r1 + r2) ** 2 - m * m)
        hi = size - r1 - dy - v * t_star
        if hi < r2 + 0.5:
            return None
        y_b = (r2 + 0.5) + (hi - r2 - 0.5) * _u(seed, index, _S_Y, attempt)
        x_b = (r2 + 1.5) + (size - 2 * r2 - 3.0) * _u(seed, index, _S_X, attempt)
        x_a = x_b + m
        if not r1 <= x_a <= size - r1:
            return None
        pos0 = np.array([[x_a, y_b + dy + v * t_star], [x_b, y_b]])
        return objects, pos0, np.array([[0.0, -v], [0.0, 0.0]]), {}

    def _accept(self, kind, traj):
        if kind.startswith("edge"):  # A must meet B before the end, with frames after it
            hit = np.flatnonzero(traj.event_pairs[:, 1] == 1)
            return hit.size > 0 and traj.event_frames[hit[0]] <= self.n_frames - 6
        return True

    def _derived(self, kind, traj):
        """``outcome`` (pass: 1 hit, 0 miss; edge: 1 right, 0 left) and ``contact``."""
        contact = float(np.any(traj.event_pairs[:, 1] == 1))
        if kind.startswith("pass"):
            return {"outcome": contact, "contact": contact}
        hit = int(np.flatnonzero(traj.event_pairs[:, 1] == 1)[0])
        k = min(int(traj.event_frames[hit]), traj.n_frames - 1)
        return {"outcome": float(traj.velocities[k, 0, 0] > 0), "contact": contact}


register("ambiguity", Ambiguity)
