"""Composition of disjoint events (the paper's §5.4, "Other findings"; its generators were
never released): the training set holds each event type alone, the test set composes them.

- ``composition_temporal``: training videos are either a two-ball collision with no walls
  (level ``collision``: balls leave the view, as in ``collision``) or one ball bouncing
  off a side wall with no second ball (level ``bounce``). Test videos (split ``ood``, level
  ``composed``) hold a collision *followed by* a wall bounce of one of its balls, in a box
  with walls. The ``id`` split is the two event types alone, on grids.
- ``composition_spatial``: training videos are either a moving square alone (level
  ``moving``, uniform motion) or a ball at rest alone (level ``static``); test videos
  (``ood``/``composed``) hold both, in horizontal bands far enough apart that they never
  touch. The paper finds the model composes both kinds; its failure mode is an object
  that vanishes when it never appeared in the training cases of an event type
  (``bounce_color``: the colour of the training bounce ball).

Every video is simulated exactly (:func:`physim.physics.simulate`; walls only where the
level has them) and every event is recorded (wall partners are negative). Videos hold one
or two bodies, so these are record scenarios (``sample``), shard columns padding bodies.

Placement of a composed temporal video is solved, not searched: with the collision at
``tc`` and the bounce of ball k (the faster after the collision, speed u) at ``tb = tc +
Δ``, both balls start inside the box and meet no wall before ``tc`` exactly when
``u Δ >= p tc`` and ``u Δ + q tc <= 10 - 2 (r1 + r2)`` (p, q: the other/own ball's
approach speeds); ``tc`` and ``Δ`` are drawn inside that region, and grid rows without
one are left out of the grid.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import ClassVar

import numpy as np

from physim import physics, rng, world
from physim.record import Record
from physim.scenarios import register
from physim.scenarios.base import MAX_FRAMES, Interval, check_interval, linspace

# Draw streams (retries add rng.RETRY_STRIDE * attempt).
_S_KIND, _S_R1, _S_R2, _S_V1, _S_V2, _S_SIDE, _S_T1, _S_T2, _S_Y, _S_X = range(10)


def _u(seed: int, index: int, stream: int, attempt: int, lo=0.0, hi=1.0) -> float:
    s = stream + rng.RETRY_STRIDE * attempt
    return float(rng.uniform(seed, np.array([index]), s, lo, hi)[0])


@dataclasses.dataclass(frozen=True)
class EventScenario:
    """A record scenario built from designed events (composition, ambiguity): splits, grids
    of parameter rows per level, random training draws, placement retries, exact
    simulation. Subclasses set ``name`` and ``kinds`` (the two id/train levels, then the
    ood level) and define ``_grid_rows``, ``_draw`` and ``_build`` (and optionally
    ``_accept`` / ``_derived``)."""

    name: ClassVar[str] = "composition"
    n_frames: int = world.N_FRAMES
    dt: float = world.FRAME_DT
    n_cond: int = 3
    max_tries: int = 50

    splits: ClassVar[tuple[str, ...]] = ("train", "id", "ood")
    kinds: ClassVar[tuple[str, str, str]] = ("a", "b", "composed")  # id levels, then ood

    def __post_init__(self):
        if not 2 <= self.n_frames <= MAX_FRAMES or not 0 < self.dt < np.inf:
            raise ValueError(f"need 2 <= n_frames <= {MAX_FRAMES} and a finite dt > 0, got "
                             f"{self.n_frames}, {self.dt}")
        if not 0 <= self.n_cond < self.n_frames:
            raise ValueError(f"n_cond must be in [0, n_frames), got {self.n_cond}")
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {self.max_tries}")

    # -- hooks -------------------------------------------------------------------------
    def _grid_rows(self, kind: str) -> list[dict]:
        raise NotImplementedError

    def _draw(self, seed: int, index: int, attempt: int) -> tuple[str, dict]:
        raise NotImplementedError

    def _build(self, kind, params, seed, index, attempt):
        """(objects, pos0 (N,2), vel0 (N,2), walls) or None when this attempt fails; a
        dict of :func:`physim.physics.simulate` keywords may stand in for ``walls``."""
        raise NotImplementedError

    def _accept(self, kind: str, traj) -> bool:
        return True

    def _derived(self, kind: str, traj) -> dict:
        """Parameters read off the simulated video (recorded beside the drawn ones)."""
        return {}

    # -- machinery ---------------------------------------------------------------------
    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"{self.name}: unknown split {split!r}; known: {list(self.splits)}")

    def level_names(self, split: str) -> tuple[str, ...]:
        return self.kinds[2:] if split == "ood" else self.kinds[:2]

    def _rows(self, split: str) -> list[tuple[str, dict]]:
        kinds = self.level_names(split)
        return [(k, row) for k in kinds for row in self._grid_rows(k)]

    def size(self, split: str) -> int | None:
        """Grid rows of an evaluation split; None for ``train`` (random draws)."""
        self.check_split(split)
        return None if split == "train" else len(self._rows(split))

    def grid(self, split: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(level codes (G,), parameter columns (G,), NaN where a level lacks one)."""
        self.check_split(split)
        if split == "train":
            return np.zeros(0, np.int16), {}
        rows, levels = self._rows(split), self.level_names(split)
        names = list(dict.fromkeys(k for _, r in rows for k in r))
        cols = {n: np.array([r.get(n, np.nan) for _, r in rows]) for n in names}
        return np.array([levels.index(k) for k, _ in rows], dtype=np.int16), cols

    def sample(self, seed: int = 0, split: str = "train", index: int = 0) -> Record:
        """Video ``index`` of ``split`` (train: random draws; id/ood: grid row ``index``)."""
        self.check_split(split)
        index = int(index)
        if index < 0:
            raise ValueError("video indices must be >= 0")
        if split != "train":
            rows = self._rows(split)
            if index >= len(rows):
                raise ValueError(f"{self.name}/{split}: index {index} >= grid size {len(rows)}")
            kind, params = rows[index]
        for attempt in range(self.max_tries):
            if split == "train":
                kind, params = self._draw(seed, index, attempt)
            built = self._build(kind, params, seed, index, attempt)
            if built is None:
                continue
            objects, pos0, vel0, sim = built
            sim = sim if isinstance(sim, dict) else {"walls": bool(sim)}
            traj = physics.simulate(objects, pos0, vel0, n_frames=self.n_frames, dt=self.dt,
                                    **sim)
            if self._accept(kind, traj):
                params = {**params, **self._derived(kind, traj)}
                return Record(id=f"{self.name}-{split}-{index:07d}", scenario=self.name,
                              split=split, level=kind, seed=int(seed),
                              params={k: float(v) for k, v in params.items()},
                              objects=objects, trajectory=traj, n_cond=self.n_cond)
        raise ValueError(f"{self.name}/{split}: video {index} cannot be placed in "
                         f"{self.max_tries} tries; check the parameter ranges")


def _elastic_1d(m1, m2, a, b):
    """Velocities after a 1-D elastic impact of masses m1, m2 moving at a, b."""
    s = m1 + m2
    return ((m1 - m2) * a + 2 * m2 * b) / s, ((m2 - m1) * b + 2 * m1 * a) / s


@dataclasses.dataclass(frozen=True)
class TemporalComposition(EventScenario):
    """A collision, then a wall bounce (see the module docstring).

    Attributes:
      r_id, v_id: radius and speed ranges (world units, units/s) of every ball.
      min_pre: frames before the collision (or the bounce of a ``bounce`` video) at least;
      min_post: frames after the (last designed) event at least.
      colors: the collision's balls (ball 1 moves right, ball 2 left).
      bounce_color: the single ball of ``bounce`` videos.
      grid_r, grid_v: values per axis of the collision and composed grids (r1, r2, v1, v2);
      grid_bounce_r, grid_bounce_v: of the bounce grid (x 2 walls).
    """

    name: ClassVar[str] = "composition_temporal"
    kinds: ClassVar[tuple[str, str, str]] = ("collision", "bounce", "composed")
    r_id: Interval = (0.5, 1.2)
    v_id: Interval = (1.0, 3.0)
    min_pre: int = 6
    min_post: int = 6
    colors: tuple[str, str] = ("red", "blue")
    bounce_color: str = "blue"
    grid_r: int = 3
    grid_v: int = 4
    grid_bounce_r: int = 6
    grid_bounce_v: int = 8

    def __post_init__(self):
        super().__post_init__()
        check_interval("r_id", self.r_id, lo=1e-6)
        check_interval("v_id", self.v_id, lo=1e-6)
        if self.r_id[1] > 2.0:
            raise ValueError(f"r_id above 2 leaves no room for a composed video: {self.r_id}")
        for c in (*self.colors, self.bounce_color):
            world.color_rgb(c)
        if min(self.min_pre, self.min_post) < 1 or self.min_pre + self.min_post + 2 > \
                self.n_frames:
            raise ValueError("need min_pre, min_post >= 1 and min_pre + min_post + 2 <= "
                             "n_frames")
        if min(self.grid_r, self.grid_v, self.grid_bounce_r, self.grid_bounce_v) < 1:
            raise ValueError("grid sizes must be >= 1")

    @property
    def _t_first(self) -> float:
        return self.min_pre * self.dt

    @property
    def _t_last(self) -> float:
        return (self.n_frames - 1 - self.min_post) * self.dt

    def _objects(self, kind, p):
        if kind == "bounce":
            return world.Objects.make([p["r1"]], colors=[self.bounce_color])
        return world.Objects.make([p["r1"], p["r2"]], colors=list(self.colors))

    def _composed_plan(self, p):
        """(k, u, p_speed, q_speed, tc_lo, tc_hi) of a composed row, or None if infeasible.

        k: the ball that bounces (0 or 1), u: its speed after the collision.
        """
        m1, m2 = world.disc_mass(p["r1"]), world.disc_mass(p["r2"])
        a, b = _elastic_1d(m1, m2, p["v1"], -p["v2"])
        k = 0 if abs(a) > abs(b) else 1
        if (k == 0 and a >= 0) or (k == 1 and b <= 0):  # the faster ball must head outwards
            k = 1 - k
        u = abs(a if k == 0 else b)
        if u <= 1e-9:
            return None
        pp, qq = (p["v1"], p["v2"]) if k == 0 else (p["v2"], p["v1"])
        room = world.WORLD_SIZE - 2 * (p["r1"] + p["r2"])
        dmin = 2 * self.dt
        tc_lo = self._t_first
        tc_hi = min(self._t_last - dmin, (room - dmin * u) / qq if qq > 0 else np.inf)

        def feasible(tc):
            lo = max(dmin, pp * tc / u)
            hi = min(self._t_last - tc, (room - qq * tc) / u)
            return lo <= hi

        if tc_hi < tc_lo or not feasible(tc_lo):
            return None
        # the feasible tc form an interval starting at tc_lo: bisect its end
        hi_ok, lo_ok = tc_hi, tc_lo
        if not feasible(hi_ok):
            for _ in range(60):
                mid = 0.5 * (lo_ok + hi_ok)
                lo_ok, hi_ok = (mid, hi_ok) if feasible(mid) else (lo_ok, mid)
            tc_hi = lo_ok
        return k, u, pp, qq, tc_lo, tc_hi

    def _grid_rows(self, kind):
        rs, vs = linspace(self.r_id, self.grid_r), linspace(self.v_id, self.grid_v)
        if kind == "bounce":
            return [{"r1": r, "v1": v, "side": s}
                    for r in linspace(self.r_id, self.grid_bounce_r)
                    for v in linspace(self.v_id, self.grid_bounce_v) for s in (-1.0, 1.0)]
        rows = [{"r1": r1, "r2": r2, "v1": v1, "v2": v2}
                for r1, r2, v1, v2 in itertools.product(rs, rs, vs, vs)]
        if kind == "collision":
            return [r for r in rows if self._collision_range(r) is not None]
        return [r for r in rows if self._composed_plan(r) is not None]

    def _collision_range(self, p):
        """(dmin, dmax) of the centre distance of a collision video (the collision
        scenario's rule), or None if none fits."""
        vs, rs = p["v1"] + p["v2"], p["r1"] + p["r2"]
        dmin = self.min_pre * vs * self.dt + rs
        dmax = min((self.n_frames - self.min_post) * self.dt * vs + rs, world.WORLD_SIZE - rs)
        return (dmin, dmax) if vs > 0 and dmin <= dmax else None

    def _draw(self, seed, index, attempt):
        kind = "collision" if _u(seed, index, _S_KIND, attempt) < 0.5 else "bounce"
        p = {"r1": _u(seed, index, _S_R1, attempt, *self.r_id),
             "v1": _u(seed, index, _S_V1, attempt, *self.v_id)}
        if kind == "bounce":
            p["side"] = -1.0 if _u(seed, index, _S_SIDE, attempt) < 0.5 else 1.0
        else:
            p["r2"] = _u(seed, index, _S_R2, attempt, *self.r_id)
            p["v2"] = _u(seed, index, _S_V2, attempt, *self.v_id)
        return kind, p

    def _y(self, seed, index, attempt, rmax):
        return (rmax + 0.5) + (9.0 - 2 * rmax) * _u(seed, index, _S_Y, attempt)

    def _build(self, kind, p, seed, index, attempt):
        objects = self._objects(kind, p)
        if kind == "bounce":
            r, v, side = p["r1"], p["v1"], p["side"]
            tb = _u(seed, index, _S_T1, attempt, self._t_first, self._t_last)
            if v * tb > world.WORLD_SIZE - 2 * r:
                return None
            x0 = (world.WORLD_SIZE - r - v * tb) if side > 0 else (r + v * tb)
            y = self._y(seed, index, attempt, r)
            return objects, np.array([[x0, y]]), np.array([[side * v, 0.0]]), True
        r1, r2, v1, v2 = p["r1"], p["r2"], p["v1"], p["v2"]
        y = self._y(seed, index, attempt, max(r1, r2))
        vel0 = np.array([[v1, 0.0], [-v2, 0.0]])
        if kind == "collision":
            rng_d = self._collision_range(p)
            if rng_d is None:
                return None
            dmin, dmax = rng_d
            d = dmin + (dmax - dmin) * _u(seed, index, _S_T1, attempt)
            x1 = r1 + (world.WORLD_SIZE - r1 - r2 - d) * _u(seed, index, _S_X, attempt)
            return objects, np.array([[x1, y], [x1 + d, y]]), vel0, False
        plan = self._composed_plan(p)
        if plan is None:
            return None
        k, u, pp, qq, tc_lo, tc_hi = plan
        tc = _u(seed, index, _S_T1, attempt, tc_lo, tc_hi)
        room = world.WORLD_SIZE - 2 * (r1 + r2)
        lo = max(2 * self.dt, pp * tc / u)
        hi = min(self._t_last - tc, (room - qq * tc) / u)
        if lo > hi:
            return None
        delta = _u(seed, index, _S_T2, attempt, lo, hi)
        if k == 1:  # ball 2 bounces off the right wall
            xc2 = world.WORLD_SIZE - r2 - u * delta
            xc1 = xc2 - (r1 + r2)
        else:  # ball 1 off the left wall
            xc1 = r1 + u * delta
            xc2 = xc1 + r1 + r2
        pos0 = np.array([[xc1 - v1 * tc, y], [xc2 + v2 * tc, y]])
        return objects, pos0, vel0, True

    def _derived(self, kind, traj):
        """``bouncer``: the ball of the first wall bounce (0: ball 1, 1: ball 2), if any."""
        walls = np.flatnonzero(traj.event_pairs[:, 1] < 0)
        return {"bouncer": float(traj.event_pairs[walls[0], 0])} if walls.size else {}

    def _accept(self, kind, traj):
        pairs = traj.event_pairs
        if kind == "bounce":
            return len(pairs) > 0 and pairs[0, 1] < 0
        if kind == "collision":
            return len(pairs) > 0 and pairs[0].tolist() == [0, 1]
        # composed: the collision first, then a wall bounce no later than the last frame
        # with min_post frames after it
        last = self.n_frames - 1 - self.min_post
        walls = np.flatnonzero(pairs[:, 1] < 0)
        return (len(pairs) > 1 and pairs[0].tolist() == [0, 1] and walls.size > 0
                and traj.event_frames[walls[0]] <= last)


@dataclasses.dataclass(frozen=True)
class SpatialComposition(EventScenario):
    """A moving square and a ball at rest, alone in training, together at test.

    Attributes:
      r_id: half side of the square and radius of the ball (world units).
      v_id: the square's speed (units/s, moving right).
      min_visible: frames the square stays fully in view (the uniform scenario's rule).
      moving_shape/moving_color, static_shape/static_color: the two objects.
      grid_r, grid_v: grid values per axis; the composed grid is (r1, v1, r2).
    """

    name: ClassVar[str] = "composition_spatial"
    kinds: ClassVar[tuple[str, str, str]] = ("moving", "static", "composed")
    r_id: Interval = (0.7, 1.2)
    v_id: Interval = (1.0, 4.0)
    min_visible: int = 24
    moving_shape: str = "square"
    moving_color: str = "blue"
    static_shape: str = "ball"
    static_color: str = "red"
    grid_r: int = 4
    grid_v: int = 8

    def __post_init__(self):
        super().__post_init__()
        check_interval("r_id", self.r_id, lo=1e-6)
        check_interval("v_id", self.v_id)
        for c in (self.moving_color, self.static_color):
            world.color_rgb(c)
        for s in (self.moving_shape, self.static_shape):
            world.shape_code(s)
        if self._gap(self.r_id[1], self.r_id[1]) + 2 * self.r_id[1] > world.WORLD_SIZE - 1:
            raise ValueError(f"r_id {self.r_id}: the two objects do not fit one above the other")
        if min(self.grid_r, self.grid_v) < 1:
            raise ValueError("grid sizes must be >= 1")

    @staticmethod
    def _gap(r_move: float, r_static: float) -> float:
        """Least centre distance across the motion: the square's corner reach (√2 r) plus
        the ball's radius plus 0.2, so that they never touch, even in pixels."""
        return np.sqrt(2.0) * r_move + r_static + 0.2

    def _grid_rows(self, kind):
        rs, vs = linspace(self.r_id, self.grid_r), linspace(self.v_id, self.grid_v)
        if kind == "moving":
            return [{"r1": r, "v1": v} for r in rs for v in vs]
        if kind == "static":
            return [{"r2": r} for r in linspace(self.r_id, self.grid_r * self.grid_v)]
        return [{"r1": r1, "v1": v, "r2": r2} for r1 in rs for v in vs for r2 in rs]

    def _draw(self, seed, index, attempt):
        kind = "moving" if _u(seed, index, _S_KIND, attempt) < 0.5 else "static"
        if kind == "moving":
            return kind, {"r1": _u(seed, index, _S_R1, attempt, *self.r_id),
                          "v1": _u(seed, index, _S_V1, attempt, *self.v_id)}
        return kind, {"r2": _u(seed, index, _S_R2, attempt, *self.r_id)}

    def _x_moving(self, seed, index, attempt, r, v):
        upper = world.WORLD_SIZE - (self.min_visible * v * self.dt + r)
        ux = _u(seed, index, _S_X, attempt)
        return r + (upper - r) * ux if upper >= r else r + 0.5 * ux

    def _build(self, kind, p, seed, index, attempt):
        mv = (self.moving_shape, self.moving_color)
        st = (self.static_shape, self.static_color)
        size = world.WORLD_SIZE
        if kind == "moving":
            r, v = p["r1"], p["v1"]
            y = (r + 0.5) + (9.0 - 2 * r) * _u(seed, index, _S_Y, attempt)
            objects = world.Objects.make([r], shapes=[mv[0]], colors=[mv[1]])
            x0 = self._x_moving(seed, index, attempt, r, v)
            return objects, np.array([[x0, y]]), np.array([[v, 0.0]]), False
        if kind == "static":
            r = p["r2"]
            x = (r + 0.5) + (9.0 - 2 * r) * _u(seed, index, _S_X, attempt)
            y = (r + 0.5) + (9.0 - 2 * r) * _u(seed, index, _S_Y, attempt)
            objects = world.Objects.make([r], shapes=[st[0]], colors=[st[1]])
            return objects, np.array([[x, y]]), np.zeros((1, 2)), False
        r1, v, r2 = p["r1"], p["v1"], p["r2"]
        gap = self._gap(r1, r2)
        # the square's band [r1 + 0.5, 9.5 - r1], the ball's likewise, |y1 - y2| >= gap
        y1 = (r1 + 0.5) + (9.0 - 2 * r1) * _u(seed, index, _S_Y, attempt)
        lo2, hi2 = r2 + 0.5, size - 0.5 - r2
        below, above = (lo2, y1 - gap), (y1 + gap, hi2)
        spans = [max(0.0, b - a) for a, b in (below, above)]
        if sum(spans) <= 0:
            return None
        s = _u(seed, index, _S_T1, attempt) * sum(spans)
        y2 = below[0] + s if s < spans[0] else above[0] + (s - spans[0])
        x2 = (r2 + 0.5) + (9.0 - 2 * r2) * _u(seed, index, _S_X + 1, attempt)
        objects = world.Objects.make([r1, r2], shapes=[mv[0], st[0]], colors=[mv[1], st[1]])
        x1 = self._x_moving(seed, index, attempt, r1, v)
        pos0 = np.array([[x1, y1], [x2, y2]])
        return objects, pos0, np.array([[v, 0.0], [0.0, 0.0]]), False


register("composition_temporal", TemporalComposition)
register("composition_spatial", SpatialComposition)
