"""What every disc scenario shares: columnar batches, grids, sampling with retries.

A scenario is a frozen dataclass. It turns (seed, split, video indices) into a
:class:`Batch`: the columnar states of M videos, computed in one vectorized pass
(counter-based draws from :mod:`physim.rng`, one batched Numba simulation). A
:class:`~physim.record.Record` is a view of one row. Because every draw depends
only on (seed, index, stream), any subset of indices gives the same videos as the
whole set: shards, workers and executors cannot change a byte.

Splits: ``train`` draws parameters at random from the in-distribution ranges;
evaluation splits (``id``, ``ood``, ...) enumerate a Cartesian grid, like the paper's
evaluation sets, and a video's index is its grid row.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import ClassVar

import numpy as np

from physim import physics, rng, world
from physim.record import Record, Trajectory

COLOR_NAMES: tuple[str, ...] = tuple(world.PALETTE)
COLOR_CODES = {c: i for i, c in enumerate(COLOR_NAMES)}

Interval = tuple[float, float]


def check_interval(name: str, iv: Interval, lo: float = 0.0) -> None:
    """Raise ``ValueError`` unless ``iv`` is a finite, non-empty interval above ``lo``."""
    a, b = iv
    if not (np.isfinite(a) and np.isfinite(b)) or a > b:
        raise ValueError(f"{name}: empty or invalid range [{a}, {b}]")
    if a < lo:
        raise ValueError(f"{name}: range [{a}, {b}] goes below {lo}")


def linspace(iv: Interval, n: int) -> np.ndarray:
    """``n`` grid values over a closed interval (its midpoint when n == 1)."""
    return np.array([(iv[0] + iv[1]) / 2]) if n == 1 else np.linspace(iv[0], iv[1], n)


@dataclasses.dataclass(frozen=True)
class Batch:
    """Columnar states of M videos with N discs and T frames.

    Attributes:
      scenario, split: names; seed: the dataset seed.
      index: (M,) int64 video indices within the split.
      levels: level-name table; level: (M,) int16 codes into it.
      params: name -> (M,) float64 scalar parameters.
      radii, masses: (M, N) float64; shapes: (M, N) int8 codes into ``world.SHAPES``;
      colors: (M, N) int8 codes into :data:`COLOR_NAMES`.
      positions, velocities: (M, T, N, 2) float64 world units, units / s.
      angles, angular_velocities: (M, T, N) float64 radians, radians / s.
      event_times: (M, E) float64 s; event_pairs: (M, E, 2) int32; event_counts: (M,) int32.
      n_cond: conditioning frames; dt: seconds between frames.
    """

    scenario: str
    split: str
    seed: int
    index: np.ndarray
    levels: tuple[str, ...]
    level: np.ndarray
    params: dict[str, np.ndarray]
    radii: np.ndarray
    masses: np.ndarray
    shapes: np.ndarray
    colors: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    angles: np.ndarray
    angular_velocities: np.ndarray
    event_times: np.ndarray
    event_pairs: np.ndarray
    event_counts: np.ndarray
    n_cond: int
    dt: float = world.FRAME_DT

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def video_id(self, k: int) -> str:
        return f"{self.scenario}-{self.split}-{int(self.index[k]):07d}"

    def record(self, k: int) -> Record:
        """Row ``k`` as a :class:`Record`."""
        ne = int(self.event_counts[k])
        times = self.event_times[k, :ne].astype(np.float64)
        traj = Trajectory(
            times=world.frame_times(self.positions.shape[1], self.dt),
            positions=self.positions[k],
            velocities=self.velocities[k],
            angles=self.angles[k],
            angular_velocities=self.angular_velocities[k],
            event_times=times,
            event_frames=physics.event_frames(times, self.dt),
            event_pairs=self.event_pairs[k, :ne].astype(np.int32),
        )
        objects = world.Objects(
            radii=self.radii[k].astype(np.float64),
            masses=self.masses[k].astype(np.float64),
            shapes=tuple(world.SHAPES[c] for c in self.shapes[k]),
            colors=tuple(COLOR_NAMES[c] for c in self.colors[k]),
        )
        return Record(
            id=self.video_id(k),
            scenario=self.scenario,
            split=self.split,
            level=self.levels[int(self.level[k])],
            seed=self.seed,
            params={name: float(v[k]) for name, v in self.params.items()},
            objects=objects,
            trajectory=traj,
            n_cond=self.n_cond,
        )

    def records(self) -> list[Record]:
        return [self.record(k) for k in range(len(self))]


# Frames per video at most: states of a 1,000-video shard stay below a few hundred MB
# (n_frames=100000000 would be refused here, not killed by the out-of-memory killer).
MAX_FRAMES = 10_000


@dataclasses.dataclass(frozen=True)
class DiscScenario:
    """Base of the disc scenarios. Subclasses define ranges and three hooks:

    - ``level_names(split)``: the level table of a split;
    - ``grid(split)``: (level codes (G,), params columns (G,)) of an evaluation split;
    - ``draw_params(seed, index, attempt)``: random training parameters (level code 0);
    - ``place(seed, index, params, attempt)``: objects, initial state and an ok mask.
    """

    name: ClassVar[str] = "disc"
    n_frames: int = world.N_FRAMES
    dt: float = world.FRAME_DT
    n_cond: int = 3
    max_tries: int = 50

    # Physics of the scenario (overridden by subclasses' defaults).
    gravity: tuple[float, float] = (0.0, 0.0)
    restitution: float = 1.0
    # The most collision events one video may have (``physics.simulate_batch``); more is an
    # error naming this field. Raise it for many fast discs (``--set max_events=4096``).
    max_events: int = physics.MAX_EVENTS

    splits: ClassVar[tuple[str, ...]] = ("train", "id", "ood")
    random_splits: ClassVar[tuple[str, ...]] = ("train",)

    def __post_init__(self):
        if not 2 <= self.n_frames <= MAX_FRAMES or not 0 < self.dt < np.inf:
            raise ValueError(f"need 2 <= n_frames <= {MAX_FRAMES} and a finite dt > 0, got "
                             f"{self.n_frames}, {self.dt}")
        g = np.asarray(self.gravity, dtype=np.float64)
        if g.shape != (2,) or not np.all(np.isfinite(g)):
            raise ValueError(f"gravity must be two finite numbers (world units/s²), got "
                             f"{self.gravity}")
        if not 0.0 <= self.restitution <= 1.0:
            raise ValueError(f"restitution must be in [0, 1], got {self.restitution}")
        if not 0 <= self.n_cond < self.n_frames:
            raise ValueError(f"n_cond must be in [0, n_frames), got {self.n_cond}")
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {self.max_tries}")
        if not 1 <= self.max_events <= physics.MAX_EVENTS_LIMIT:
            raise ValueError(f"max_events must be in [1, {physics.MAX_EVENTS_LIMIT}], got "
                             f"{self.max_events}")

    # -- hooks ---------------------------------------------------------------------
    def level_names(self, split: str) -> tuple[str, ...]:
        raise NotImplementedError

    def grid(self, split: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        raise NotImplementedError

    def draw_params(self, seed: int, index: np.ndarray, attempt: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def random_levels(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """Level codes (M,) of randomly drawn videos (default: all level 0)."""
        return np.zeros(len(next(iter(params.values()))), dtype=np.int16)

    def place(self, seed, index, params, attempt):
        """Objects and initial state of M videos.

        Returns (radii (M,N), shapes (M,N), colors (M,N), pos0 (M,N,2), vel0 (M,N,2), ok (M,)).
        """
        raise NotImplementedError

    # -- generic machinery -------------------------------------------------------------
    def sim_kwargs(self) -> dict:
        """Keywords of :func:`physim.physics.simulate_batch` that this scenario's videos are
        simulated with (JSON-able: compact shards store them). ``max_events`` appears only
        when it is not the default, so shards of default scenarios keep their bytes."""
        kw = {"gravity": [float(g) for g in self.gravity],
              "restitution": float(self.restitution), "n_frames": int(self.n_frames),
              "dt": float(self.dt)}
        if self.max_events != physics.MAX_EVENTS:
            kw["max_events"] = int(self.max_events)
        return kw

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"{self.name}: unknown split {split!r}; known: {list(self.splits)}")

    def size(self, split: str) -> int | None:
        """Number of videos of an evaluation split (its grid rows); None for random splits."""
        self.check_split(split)
        return None if split in self.random_splits else len(self.grid(split)[0])

    def batch(self, seed: int, split: str, indices) -> Batch:
        """Simulate the videos ``indices`` of ``split``.

        Random splits redraw parameters until placement succeeds (at most
        ``max_tries``, else ``ValueError``). Grid splits keep their parameters; a
        grid row whose placement is impossible is dropped from the batch.
        """
        self.check_split(split)
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if np.any(index < 0):
            raise ValueError("video indices must be >= 0")
        m = index.shape[0]
        if split in self.random_splits:
            params: dict[str, np.ndarray] | None = None
            placed = None
            pending = np.arange(m)
            for attempt in range(self.max_tries):
                p = self.draw_params(seed, index[pending], attempt)
                out = self.place(seed, index[pending], p, attempt)
                if params is None:
                    params = {k: np.empty(m) for k in p}
                    placed = [np.empty((m,) + a.shape[1:], a.dtype) for a in out[:-1]]
                ok = out[-1]
                dst = pending[ok]
                for k in p:
                    params[k][dst] = p[k][ok]
                for buf, a in zip(placed, out[:-1], strict=True):
                    buf[dst] = a[ok]
                pending = pending[~ok]
                if pending.size == 0:
                    break
            if pending.size:
                raise ValueError(
                    f"{self.name}: placement impossible after {self.max_tries} tries for "
                    f"video {int(index[pending[0]])}; check the parameter ranges"
                )
            radii, shapes, colors, pos0, vel0 = placed
            level = self.random_levels(params)
        else:
            codes, columns = self.grid(split)
            if m and index.max() >= len(codes):
                raise ValueError(
                    f"{self.name}/{split}: index {index.max()} >= grid size {len(codes)}"
                )
            params = {k: v[index] for k, v in columns.items()}
            radii, shapes, colors, pos0, vel0, ok = self.place(seed, index, params, 0)
            for attempt in range(1, self.max_tries):
                if ok.all():
                    break
                redo = ~ok
                out = self.place(
                    seed, index[redo], {k: v[redo] for k, v in params.items()}, attempt
                )
                for buf, a in zip((radii, shapes, colors, pos0, vel0, ok), out, strict=True):
                    buf[redo] = a
            index, level = index[ok], codes[index][ok]
            params = {k: v[ok] for k, v in params.items()}
            radii, shapes, colors, pos0, vel0 = (a[ok] for a in (radii, shapes, colors, pos0, vel0))
        masses = world.disc_mass(radii)
        sim = physics.simulate_batch(radii, masses, pos0, vel0, **self.sim_kwargs())
        mt, n = len(index), radii.shape[1]
        zeros = np.zeros((mt, self.n_frames, n))
        e = max(int(sim["event_counts"].max(initial=0)), 1)
        return Batch(
            scenario=self.name,
            split=split,
            seed=int(seed),
            index=index,
            levels=self.level_names(split),
            level=level.astype(np.int16),
            params=params,
            radii=radii,
            masses=masses,
            shapes=shapes.astype(np.int8),
            colors=colors.astype(np.int8),
            positions=sim["positions"],
            velocities=sim["velocities"],
            angles=zeros,
            angular_velocities=zeros.copy(),
            event_times=sim["event_times"][:, :e],
            event_pairs=sim["event_pairs"][:, :e],
            event_counts=sim["event_counts"],
            n_cond=self.n_cond,
            dt=self.dt,
        )

    def sample(self, seed: int = 0, split: str = "train", index: int = 0) -> Record:
        """The single video ``index`` of ``split`` as a :class:`Record`."""
        b = self.batch(seed, split, [index])
        if len(b) == 0:
            raise ValueError(f"{self.name}/{split}: grid row {index} cannot be placed")
        return b.record(0)


def sided_values(seed, index, stream, side, iv_id, iv_low, iv_high):
    """Draw per video from the ID interval (side 0), the low (-1) or high (+1) OOD one."""
    u = rng.uniform(seed, index, stream)
    lo = np.where(side < 0, iv_low[0], np.where(side > 0, iv_high[0], iv_id[0]))
    hi = np.where(side < 0, iv_low[1], np.where(side > 0, iv_high[1], iv_id[1]))
    return lo + (hi - lo) * u


def axis_points(ood: bool, n_id: int, n_side: int, iv_id, iv_low, iv_high):
    """(value, side) grid points of one parameter: the ID grid (side 0), or both OOD
    sides (side -1 low, +1 high) when ``ood``."""
    if not ood:
        return [(float(v), 0.0) for v in linspace(iv_id, n_id)]
    low = [(float(v), -1.0) for v in linspace(iv_low, n_side)]
    return low + [(float(v), 1.0) for v in linspace(iv_high, n_side)]


def level_grid(points: dict[str, list[tuple[float, float]]]) -> dict[str, np.ndarray]:
    """Cartesian product of per-parameter (value, side) points, as columns
    ``name`` and ``name_side`` (first parameter slowest)."""
    names = list(points)
    cols: dict[str, list[float]] = {k: [] for n in names for k in (n, n + "_side")}
    for combo in itertools.product(*(points[n] for n in names)):
        for n, (v, s) in zip(names, combo, strict=True):
            cols[n].append(v)
            cols[n + "_side"].append(s)
    return {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}


def stack_levels(
    per_level: list[dict[str, np.ndarray]],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Concatenate the grids of levels 0..L-1 into (level codes, columns)."""
    codes = np.concatenate(
        [np.full(len(next(iter(g.values()))), i, dtype=np.int16) for i, g in enumerate(per_level)]
    )
    cols = {k: np.concatenate([g[k] for g in per_level]) for k in per_level[0]}
    return codes, cols
