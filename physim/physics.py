"""Exact event-driven dynamics of discs (Numba).

Between events every disc flies on a closed-form path ``p(t) = p0 + v t + g t²/2``
under one shared gravity vector ``g``. Because gravity is shared, the relative
motion of two discs is linear, so the time of impact of a pair is the root of a
quadratic in closed form; a wall impact is the root of a quadratic too. The
simulator jumps from event to event and samples states exactly at frame times
``t_k = k * dt``: there is no time step and no integration error.

Collisions are instantaneous impulses along the line of centres with restitution
``e`` (``e = 1``: exactly elastic at every speed). Walls (optional) are the sides of
the box ``[0, WORLD_SIZE]²`` with their own restitution.

Resting contact: a disc that touches a wall with (almost) no normal speed left while
gravity presses it into that wall (an inelastic wall, or the end of a series of ever
smaller bounces) is *held*: its normal velocity and acceleration become exactly zero and
it slides along the wall (no friction) until an impulse lifts it off. A held disc no
longer shares the gravity of flying discs; the time of impact of such a mixed pair is the
first root of a quartic, found by bracketing and bisection to round-off.

The kernels are batched: one call simulates M independent videos of N discs, which
is how datasets are generated. :func:`simulate` is the single-video convenience.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from physim import world
from physim.record import Trajectory

MAX_EVENTS = 256  # per video by default; exceeding it is an error (e.g. a Zeno cascade)
MAX_EVENTS_LIMIT = 1 << 20  # the most a scenario may ask for (2 arrays of M x E per batch)
# A wall bounce that leaves less normal speed than this (world units/s) ends in resting
# contact when gravity presses the disc into the wall; it would otherwise bounce forever.
REST_SPEED = 1e-6
# Subintervals of the search for the first contact of a held and a flying disc.
_QUARTIC_STEPS = 64
# An event within EVENT_EPS seconds after a frame time belongs to that frame: float
# round-off must not decide whether a frame shows the state before or after it.
EVENT_EPS = 1e-9
_INF = np.inf


@nb.njit(cache=True)
def _first_entry_root(a, b, c):
    """Smallest ``tau >= 0`` with ``a tau² + b tau + c = 0`` and the function decreasing.

    ``c`` is the current signed gap (>= 0 when apart); returns ``inf`` if none.
    A gap that is already closed (``c <= 0``) and closing (``b < 0``) returns 0.
    """
    if c <= 0.0 and b < 0.0:
        return 0.0
    if a == 0.0:
        if b < 0.0:
            return max(-c / b, 0.0)
        return _INF
    disc = b * b - 4.0 * a * c
    if disc < 0.0:
        return _INF
    s = np.sqrt(disc)
    q = -0.5 * (b + s) if b >= 0.0 else -0.5 * (b - s)
    r1 = q / a
    r2 = c / q if q != 0.0 else _INF
    best = _INF
    for r in (r1, r2):
        if r >= 0.0 and 2.0 * a * r + b < 0.0 and r < best:
            best = r
    return best


@nb.njit(cache=True)
def _pair_toi(p, v, i, j, rsum):
    """Time until discs i and j touch (inf if never). Relative motion is linear."""
    dx = p[j, 0] - p[i, 0]
    dy = p[j, 1] - p[i, 1]
    dvx = v[j, 0] - v[i, 0]
    dvy = v[j, 1] - v[i, 1]
    b = dx * dvx + dy * dvy
    if b >= 0.0:  # not approaching
        return _INF
    a = dvx * dvx + dvy * dvy
    c = dx * dx + dy * dy - rsum * rsum
    if c <= 0.0:
        return 0.0
    disc = b * b - a * c
    if disc < 0.0:
        return _INF
    # Stable form of (-b - sqrt(disc)) / a.
    return c / (-b + np.sqrt(disc))


@nb.njit(cache=True)
def _gap2(cx, cy, bx, by, ax, ay, rsum, tau):
    """Squared centre distance minus ``rsum²`` at ``tau`` for relative motion
    ``c + b tau + a tau²`` (a: half the relative acceleration)."""
    x = cx + (bx + ax * tau) * tau
    y = cy + (by + ay * tau) * tau
    return x * x + y * y - rsum * rsum


@nb.njit(cache=True)
def _pair_toi_accel(p, v, acc, i, j, rsum, horizon):
    """Time until discs i and j touch when their accelerations differ (inf if not within
    ``horizon`` seconds): the first sign change of the quartic gap, bisected to round-off.
    """
    cx, cy = p[j, 0] - p[i, 0], p[j, 1] - p[i, 1]
    bx, by = v[j, 0] - v[i, 0], v[j, 1] - v[i, 1]
    ax, ay = 0.5 * (acc[j, 0] - acc[i, 0]), 0.5 * (acc[j, 1] - acc[i, 1])
    f0 = _gap2(cx, cy, bx, by, ax, ay, rsum, 0.0)
    if f0 <= 0.0:  # touching: an event now if approaching
        return 0.0 if cx * bx + cy * by < 0.0 else _INF
    if not horizon < _INF:
        return _INF
    lo = 0.0
    step = horizon / _QUARTIC_STEPS
    for k in range(1, _QUARTIC_STEPS + 1):
        hi = step * k
        fhi = _gap2(cx, cy, bx, by, ax, ay, rsum, hi)
        if fhi <= 0.0:
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if mid <= lo or mid >= hi:
                    break
                if _gap2(cx, cy, bx, by, ax, ay, rsum, mid) <= 0.0:
                    hi = mid
                else:
                    lo = mid
            return hi
        lo = hi
    return _INF


@nb.njit(cache=True)
def _advance(p, v, acc, tau):
    n = p.shape[0]
    h = 0.5 * tau * tau
    for i in range(n):
        p[i, 0] += v[i, 0] * tau + acc[i, 0] * h
        p[i, 1] += v[i, 1] * tau + acc[i, 1] * h
        v[i, 0] += acc[i, 0] * tau
        v[i, 1] += acc[i, 1] * tau


@nb.njit(cache=True)
def _next_event(p, v, acc, r, walls, size, horizon):
    """(tau, i, j) of the earliest event; j < 0 for walls (-1 L, -2 R, -3 B, -4 T).

    ``acc`` (N, 2): each disc's acceleration (gravity, or zero along a wall it rests on);
    ``horizon``: events later than this may be missed (mixed-acceleration pairs only).
    """
    n = p.shape[0]
    best, bi, bj = _INF, -1, 0
    for i in range(n):
        for j in range(i + 1, n):
            if acc[i, 0] == acc[j, 0] and acc[i, 1] == acc[j, 1]:
                tau = _pair_toi(p, v, i, j, r[i] + r[j])
            else:
                tau = _pair_toi_accel(p, v, acc, i, j, r[i] + r[j], min(best, horizon))
            if tau < best:
                best, bi, bj = tau, i, j
        if walls:
            # gap to each wall and its derivative sign: left x - r, right size - r - x, ...
            a = acc[i]
            taus = (
                _first_entry_root(0.5 * a[0], v[i, 0], p[i, 0] - r[i]),
                _first_entry_root(-0.5 * a[0], -v[i, 0], size - r[i] - p[i, 0]),
                _first_entry_root(0.5 * a[1], v[i, 1], p[i, 1] - r[i]),
                _first_entry_root(-0.5 * a[1], -v[i, 1], size - r[i] - p[i, 1]),
            )
            for w in range(4):
                if taus[w] < best:
                    best, bi, bj = taus[w], i, -(w + 1)
    return best, bi, bj


@nb.njit(cache=True)
def _settle(p, v, acc, g, r, i, axis, size, ew):
    """After an impulse on disc i: keep, start or end its resting contact on ``axis``.

    A disc touching the wall of ``axis`` that gravity presses it into is held there
    (normal velocity and acceleration exactly 0, position exactly at contact) when its
    normal speed into or off the wall is below :data:`REST_SPEED`; moving into the wall
    faster it bounces with ``ew``; moving off it is released to free flight.
    """
    if g[axis] == 0.0:
        return
    low = g[axis] < 0.0  # gravity presses towards the wall at 0 (else towards size)
    wall = r[i] if low else size - r[i]
    if abs(p[i, axis] - wall) > 1e-9:
        acc[i, axis] = g[axis]
        return
    into = -v[i, axis] if low else v[i, axis]  # normal speed into the wall
    if into > REST_SPEED:  # pushed into the wall: it answers like a wall impact
        v[i, axis] = -ew * v[i, axis]
        into = -ew * into
    if abs(into) <= REST_SPEED:
        v[i, axis] = 0.0
        p[i, axis] = wall
        acc[i, axis] = 0.0
    else:
        acc[i, axis] = g[axis]


@nb.njit(cache=True)
def _resolve(p, v, m, i, j, e, ew):
    if j < 0:
        axis = 0 if j >= -2 else 1
        v[i, axis] = -ew * v[i, axis]
        return
    nx = p[j, 0] - p[i, 0]
    ny = p[j, 1] - p[i, 1]
    d = np.sqrt(nx * nx + ny * ny)
    nx /= d
    ny /= d
    u = (v[i, 0] - v[j, 0]) * nx + (v[i, 1] - v[j, 1]) * ny  # closing speed > 0
    if u <= 0.0:
        return
    jimp = (1.0 + e) * u / (1.0 / m[i] + 1.0 / m[j])
    v[i, 0] -= jimp / m[i] * nx
    v[i, 1] -= jimp / m[i] * ny
    v[j, 0] += jimp / m[j] * nx
    v[j, 1] += jimp / m[j] * ny


@nb.njit(cache=True)
def simulate_batch_kernel(
    radii,
    masses,
    pos0,
    vel0,
    gravity,
    restitution,
    walls,
    wall_restitution,
    n_frames,
    dt,
    size,
    out_pos,
    out_vel,
    ev_time,
    ev_pair,
    ev_count,
):
    """Simulate M videos in place. Shapes: radii/masses (M,N), pos0/vel0 (M,N,2),
    out_pos/out_vel (M,T,N,2), ev_time (M,E), ev_pair (M,E,2), ev_count (M,).

    Returns -1 on success, else the index of the first video that exceeded E events.
    """
    n_vid, n = radii.shape
    max_ev = ev_time.shape[1]
    p = np.empty((n, 2))
    v = np.empty((n, 2))
    acc = np.empty((n, 2))
    for b in range(n_vid):
        p[:, :] = pos0[b]
        v[:, :] = vel0[b]
        r = radii[b]
        m = masses[b]
        for i in range(n):
            acc[i, 0] = gravity[0]
            acc[i, 1] = gravity[1]
            if walls:  # a disc that starts at rest on a wall stays there
                for axis in range(2):
                    if abs(v[i, axis]) <= REST_SPEED:
                        _settle(p, v, acc, gravity, r, i, axis, size, wall_restitution)
        t = 0.0
        ne = 0
        for k in range(n_frames):
            t_frame = k * dt
            while True:
                tau, i, j = _next_event(p, v, acc, r, walls, size, t_frame + EVENT_EPS - t)
                if t + tau > t_frame + EVENT_EPS:
                    break
                _advance(p, v, acc, tau)
                t += tau
                if ne >= max_ev:
                    ev_count[b] = ne
                    return b
                ev_time[b, ne] = t
                ev_pair[b, ne, 0] = i
                ev_pair[b, ne, 1] = j
                ne += 1
                _resolve(p, v, m, i, j, restitution, wall_restitution)
                if walls:
                    if j < 0:
                        _settle(p, v, acc, gravity, r, i, 0 if j >= -2 else 1, size,
                                wall_restitution)
                    else:
                        for d in (i, j):
                            for axis in range(2):
                                if acc[d, axis] != gravity[axis]:
                                    _settle(p, v, acc, gravity, r, d, axis, size,
                                            wall_restitution)
            _advance(p, v, acc, t_frame - t)
            t = t_frame
            out_pos[b, k] = p
            out_vel[b, k] = v
        ev_count[b] = ne
    return -1


_INVALID = {
    1: "radii must be finite",
    2: "masses must be finite",
    3: "positions must be finite",
    4: "velocities must be finite",
    5: "radii and masses must be > 0",
    6: "discs overlap at t = 0 in video {bad}",
}


@nb.njit(cache=True)
def _first_invalid(radii, masses, pos0, vel0):
    """(code, video) of the first problem of a batch (codes of ``_INVALID``; 0: none), in
    the order of the checks: finite radii, masses, positions, velocities; radii and masses
    > 0; no two discs overlapping at t = 0 by more than 1e-9 (one loop instead of numpy
    temporaries: a single-video call is dominated by its checks otherwise)."""
    m, n = radii.shape
    for a, code in ((radii.ravel(), 1), (masses.ravel(), 2)):
        for x in a:
            if not np.isfinite(x):
                return code, 0
    for a, code in ((pos0.ravel(), 3), (vel0.ravel(), 4)):
        for x in a:
            if not np.isfinite(x):
                return code, 0
    for b in range(m):
        for i in range(n):
            if radii[b, i] <= 0 or masses[b, i] <= 0:
                return 5, b
    for b in range(m):
        for i in range(n):
            for j in range(i + 1, n):
                dx = pos0[b, i, 0] - pos0[b, j, 0]
                dy = pos0[b, i, 1] - pos0[b, j, 1]
                if np.sqrt(dx * dx + dy * dy) - (radii[b, i] + radii[b, j]) < -1e-9:
                    return 6, b
    return 0, 0


def _check_batch(radii, masses, pos0, vel0):
    radii = np.ascontiguousarray(radii, dtype=np.float64)
    masses = np.ascontiguousarray(masses, dtype=np.float64)
    pos0 = np.ascontiguousarray(pos0, dtype=np.float64)
    vel0 = np.ascontiguousarray(vel0, dtype=np.float64)
    m, n = radii.shape
    if n > 16:
        raise ValueError(f"at most 16 discs per video are supported, got {n}")
    if masses.shape != (m, n) or pos0.shape != (m, n, 2) or vel0.shape != (m, n, 2):
        raise ValueError(
            f"shape mismatch: radii {radii.shape}, masses {masses.shape}, "
            f"positions {pos0.shape}, velocities {vel0.shape} (want (M,N), (M,N), (M,N,2)x2)"
        )
    code, bad = _first_invalid(radii, masses, pos0, vel0)
    if code:
        raise ValueError(_INVALID[code].format(bad=bad))
    return radii, masses, pos0, vel0


def _check_scalars(restitution, wall_restitution, n_frames, dt, max_events) -> None:
    if not 0.0 <= restitution <= 1.0 or not 0.0 <= wall_restitution <= 1.0:
        raise ValueError(f"restitution must be in [0, 1], got {restitution}, {wall_restitution}")
    if n_frames < 1 or not 0 < dt < np.inf:
        raise ValueError(f"need n_frames >= 1 and a finite dt > 0, got {n_frames}, {dt}")
    if int(max_events) < 1:
        raise ValueError(f"max_events must be >= 1, got {max_events}")


_TOO_MANY = ("video {bad} exceeded {max_events} collision events in {n_frames} frames; "
             "raise max_events for many fast discs (a scenario field: physim generate "
             "--set max_events=N), or check for discs resting on each "
             "other with restitution < 1 (an endless cascade of impacts)")


def simulate_batch(
    radii,
    masses,
    positions0,
    velocities0,
    *,
    gravity=(0.0, 0.0),
    restitution: float = 1.0,
    walls: bool = False,
    wall_restitution: float = 1.0,
    n_frames: int = world.N_FRAMES,
    dt: float = world.FRAME_DT,
    max_events: int = MAX_EVENTS,
):
    """Simulate M independent videos of N discs exactly.

    Args:
      radii: (M, N) world units.
      masses: (M, N) mass units.
      positions0: (M, N, 2) world units at t = 0.
      velocities0: (M, N, 2) world units / s at t = 0.
      gravity: (2,) world units / s², shared by all discs (the paper's parabola: (0, -2.5)).
      restitution: disc–disc coefficient in [0, 1]; 1 is exactly elastic.
      walls: whether the box sides reflect discs.
      wall_restitution: wall coefficient in [0, 1].
      n_frames: T, frames sampled at t_k = k * dt.
      dt: seconds between frames.
      max_events: E, the most events one video may have.

    Returns:
      dict with ``positions`` (M,T,N,2), ``velocities`` (M,T,N,2), ``event_times``
      (M,E) seconds, ``event_pairs`` (M,E,2) int32 and ``event_counts`` (M,) int32.
    """
    radii, masses, pos0, vel0 = _check_batch(radii, masses, positions0, velocities0)
    _check_scalars(restitution, wall_restitution, n_frames, dt, max_events)
    g = np.array(_gravity_xy(gravity))
    m, n = radii.shape
    out_pos = np.empty((m, n_frames, n, 2))
    out_vel = np.empty((m, n_frames, n, 2))
    ev_time = np.zeros((m, max_events))
    ev_pair = np.zeros((m, max_events, 2), dtype=np.int32)
    ev_count = np.zeros(m, dtype=np.int32)
    bad = simulate_batch_kernel(
        radii,
        masses,
        pos0,
        vel0,
        g,
        float(restitution),
        bool(walls),
        float(wall_restitution),
        int(n_frames),
        float(dt),
        world.WORLD_SIZE,
        out_pos,
        out_vel,
        ev_time,
        ev_pair,
        ev_count,
    )
    if bad >= 0:
        raise ValueError(_TOO_MANY.format(bad=bad, max_events=max_events, n_frames=n_frames))
    return {
        "positions": out_pos,
        "velocities": out_vel,
        "event_times": ev_time,
        "event_pairs": ev_pair,
        "event_counts": ev_count,
    }


def event_frames(event_times, dt: float = world.FRAME_DT) -> np.ndarray:
    """Index of the first frame at or after each event time (int32, same shape)."""
    # Same tolerance as the kernel: an event just after a frame time is shown at it.
    return np.ceil((np.asarray(event_times) - EVENT_EPS) / dt).astype(np.int32)


def trajectory_from_batch(out: dict, b: int, dt: float = world.FRAME_DT) -> Trajectory:
    """The :class:`Trajectory` of video ``b`` of a :func:`simulate_batch` result."""
    ne = int(out["event_counts"][b])
    pos = out["positions"][b]
    t, n = pos.shape[:2]
    times = out["event_times"][b, :ne].copy()
    return Trajectory(
        times=world.frame_times(t, dt),
        positions=pos,
        velocities=out["velocities"][b],
        angles=np.zeros((t, n)),
        angular_velocities=np.zeros((t, n)),
        event_times=times,
        event_frames=event_frames(times, dt) if ne else np.zeros(0, np.int32),
        event_pairs=out["event_pairs"][b, :ne].copy(),
    )


@nb.njit(cache=True)
def _simulate_one(radii, masses, pos0, vel0, gx, gy, restitution, walls, wall_restitution,
                  dt, size, times, positions, velocities, ev_time, ev_frame, ev_pair):
    """One video in one dispatch: its checks, its simulation and the arrays of its
    Trajectory, written into caller-allocated arrays (allocating and boxing arrays in Numba
    costs more than simulating one video).

    Shapes: radii/masses (N,), pos0/vel0 (N,2); gravity (gx, gy); times (T,); positions and
    velocities (T,N,2); ev_time (E,), ev_frame (E,) int32, ev_pair (E,2) int32. Returns
    (code, number of events); code 0 is success, 1-6 are :data:`_INVALID`'s, 7 means more
    than E events.
    """
    n = radii.shape[0]
    t, e = times.shape[0], ev_time.shape[0]
    r2, m2 = radii.reshape(1, n), masses.reshape(1, n)
    p2, v2 = pos0.reshape(1, n, 2), vel0.reshape(1, n, 2)
    code, _ = _first_invalid(r2, m2, p2, v2)
    if code:
        return code, 0
    for k in range(t):
        times[k] = k * dt
    ev_count = np.zeros(1, dtype=np.int32)
    if simulate_batch_kernel(r2, m2, p2, v2, np.array((gx, gy)), restitution, walls,
                             wall_restitution, t, dt, size, positions.reshape(1, t, n, 2),
                             velocities.reshape(1, t, n, 2),
                             ev_time.reshape(1, e), ev_pair.reshape(1, e, 2), ev_count) >= 0:
        return 7, 0
    ne = ev_count[0]
    for k in range(ne):
        ev_frame[k] = np.int32(np.ceil((ev_time[k] - EVENT_EPS) / dt))
    return 0, ne


def _gravity_xy(gravity) -> tuple[float, float]:
    """(gx, gy) floats of a 2-vector (a tuple is read without a numpy round trip)."""
    if isinstance(gravity, tuple) and len(gravity) == 2:
        gx, gy = float(gravity[0]), float(gravity[1])
    else:
        g = np.asarray(gravity, dtype=np.float64).reshape(2)
        gx, gy = float(g[0]), float(g[1])
    if not (math.isfinite(gx) and math.isfinite(gy)):
        raise ValueError(f"gravity must be finite, got {(gx, gy)}")
    return gx, gy


_F64 = np.dtype(np.float64)
_I32 = np.dtype(np.int32)
_NDARRAY = np.ndarray
_SIZE = world.WORLD_SIZE
# ndarray.flags.num bits: C-contiguous | aligned.
_PLAIN = 0x1 | 0x100
# The compiled entry point of _simulate_one for the argument types of simulate()'s common
# path, once _call_one has found it.
_one_entry = None


def _f64(a) -> np.ndarray:
    """``a`` as a C-contiguous float64 array; ``a`` itself when it is one already (without
    the 0.3 µs of ``np.ascontiguousarray``, a tenth of a per-video call)."""
    if type(a) is np.ndarray and a.dtype == _F64 and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a, dtype=np.float64)


def _call_one(plain: bool, args: tuple):
    """``_simulate_one(*args)`` through Numba's dispatcher, which types the 16 arguments
    (2 of the 7 µs of a per-video call) and compiles or loads the overload.

    ``plain`` says that the four input arrays are float64 ndarrays, C-contiguous and
    aligned, with 1-D radii (2-D positions and velocities are checked by then): the types
    of every such call are the same, so the overload's entry point is kept, and
    :func:`simulate` calls it directly from then on. The entry point unboxes the arguments
    as the dispatcher would, without typing them; it does not check them, which is why any
    other input (unaligned, other dtypes, layouts or dimensions) keeps coming here. Read-only
    inputs (e.g. a loaded shard's columns) do take the entry point of the writeable
    overload: ``_simulate_one`` only reads its four inputs.
    """
    global _one_entry
    out = _simulate_one(*args)
    if plain and _one_entry is None and all(a.flags.writeable for a in args[:4]):
        try:
            sig = tuple(_simulate_one.typeof_pyval(a) for a in args)
            _one_entry = _simulate_one.overloads[sig].entry_point
        except (AttributeError, KeyError):  # another Numba: the dispatcher it is
            pass
    return out


def simulate(
    objects: world.Objects,
    positions0,
    velocities0,
    *,
    gravity=(0.0, 0.0),
    restitution: float = 1.0,
    walls: bool = False,
    wall_restitution: float = 1.0,
    n_frames: int = world.N_FRAMES,
    dt: float = world.FRAME_DT,
    max_events: int = MAX_EVENTS,
) -> Trajectory:
    """Simulate one video of the discs ``objects`` exactly.

    Args:
      objects: the N discs (radii and masses are used).
      positions0: (N, 2) world units at t = 0; discs must not overlap.
      velocities0: (N, 2) world units / s at t = 0.
      gravity, restitution, walls, wall_restitution, n_frames, dt, max_events: see
        :func:`simulate_batch`.

    Returns:
      A :class:`~physim.record.Trajectory` with T = ``n_frames`` states.
    """
    radii, masses, pos0, vel0 = objects.radii, objects.masses, positions0, velocities0
    # The common case in one test (see _call_one); a float64 dtype that is not numpy's own
    # object, or anything else, takes the general path, which converts and dispatches.
    plain = (type(radii) is _NDARRAY and type(masses) is _NDARRAY and type(pos0) is _NDARRAY
             and type(vel0) is _NDARRAY and radii.dtype is _F64 and masses.dtype is _F64
             and pos0.dtype is _F64 and vel0.dtype is _F64 and radii.ndim == 1
             and (radii.flags.num & masses.flags.num & pos0.flags.num & vel0.flags.num
                  & _PLAIN) == _PLAIN)
    if not plain:
        radii, masses = _f64(radii), _f64(masses)
        pos0, vel0 = _f64(pos0), _f64(vel0)
    n = radii.shape[0]
    if n > 16:
        raise ValueError(f"at most 16 discs per video are supported, got {n}")
    if masses.shape != (n,) or pos0.shape != (n, 2) or vel0.shape != (n, 2):
        raise ValueError(
            f"positions0 and velocities0 must be ({n}, 2), got {pos0.shape}, {vel0.shape}"
        )
    _check_scalars(restitution, wall_restitution, n_frames, dt, max_events)
    gx, gy = _gravity_xy(gravity)
    t, e = int(n_frames), int(max_events)
    # Eight arrays allocated separately: cheaper than views of fewer, larger ones.
    times, pos, vel = np.empty(t), np.empty((t, n, 2)), np.empty((t, n, 2))
    ev_time, ev_frame, ev_pair = np.empty(e), np.empty(e, _I32), np.empty((e, 2), _I32)
    entry = _one_entry
    if plain and entry is not None:
        code, ne = entry(radii, masses, pos0, vel0, gx, gy, float(restitution), bool(walls),
                         float(wall_restitution), float(dt), _SIZE, times, pos, vel,
                         ev_time, ev_frame, ev_pair)
    else:
        code, ne = _call_one(plain, (radii, masses, pos0, vel0, gx, gy, float(restitution),
                                     bool(walls), float(wall_restitution), float(dt), _SIZE,
                                     times, pos, vel, ev_time, ev_frame, ev_pair))
    if code == 7:
        raise ValueError(_TOO_MANY.format(bad=0, max_events=max_events, n_frames=n_frames))
    if code:
        raise ValueError(_INVALID[code].format(bad=0))
    # discs do not turn
    return Trajectory.of(times, pos, vel, np.zeros((t, n)), np.zeros((t, n)), ev_time[:ne],
                         ev_frame[:ne], ev_pair[:ne])
