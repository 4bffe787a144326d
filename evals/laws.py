"""Physical-law scores: pure functions of parsed tracks and the truth record.

The paper's metric (phyworld §4): velocities are finite differences of positions between
consecutive frames, ``v_k = (x_k - x_{k-1}) / dt``, for parsed and true positions alike, and
the error is the mean over valid (object, frame) pairs of ``|v_k - v̂_k|`` (Euclidean norm;
the paper's uniform code uses x only, where vy = 0 anyway). A frame is valid when it is
generated (``k >= n_cond``) and the true object lies fully inside the box at frames k-1 and k.

Frames where the generated object is not visible hold its last seen position (a vanished
object counts as stopped there); the abnormality checks flag the vanishing itself.
"""

from __future__ import annotations

import numpy as np

from physim import world

SCORERS = ("uniform", "collision", "parabola")


def frame_velocities(positions: np.ndarray, dt: float = world.FRAME_DT) -> np.ndarray:
    """Backward differences ``(x_k - x_{k-1}) / dt`` (..., T, N, 2); frame 0 is NaN."""
    positions = np.asarray(positions, dtype=np.float64)
    v = np.full(positions.shape, np.nan)
    v[..., 1:, :, :] = np.diff(positions, axis=-3) / dt
    return v


def inside_box(positions: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(..., T, N) bool: each object's disc of ``radii (N,)`` fully inside the world box."""
    r = np.asarray(radii, dtype=np.float64)[:, None]
    p = np.asarray(positions, dtype=np.float64)
    return np.all((p - r >= 0.0) & (p + r <= world.WORLD_SIZE), axis=-1)


def valid_frames(record) -> np.ndarray:
    """(T, N) bool: generated frames (``k >= n_cond``) whose velocity is fully in view."""
    inside = inside_box(record.trajectory.positions, record.objects.radii)
    valid = np.zeros_like(inside)
    valid[1:] = inside[1:] & inside[:-1]
    valid[: max(int(record.n_cond), 1)] = False
    return valid


def filled_positions(tracks, record) -> tuple[np.ndarray, np.ndarray]:
    """Parsed positions (T, N, 2) with gaps held at the last seen position.

    Before an object is first seen it sits at its true frame-0 position. Also returns the
    (T, N) bool mask of frames that were filled.
    """
    pos = np.array(tracks.positions, dtype=np.float64)
    seen = tracks.visible & np.all(np.isfinite(pos), axis=-1)
    if pos.shape != record.trajectory.positions.shape:
        raise ValueError(
            f"tracks are {pos.shape[:2]} (frames, objects) but the truth is "
            f"{record.trajectory.positions.shape[:2]}"
        )
    last = record.trajectory.positions[0].copy()
    for k in range(pos.shape[0]):
        last = np.where(seen[k][:, None], pos[k], last)
        pos[k] = last
    return pos, ~seen


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else float("nan")


def velocity_error_batch(pos_hat: np.ndarray, pos_true: np.ndarray, valid: np.ndarray):
    """Paper velocity error of a batch: (B,) mean over valid (frame, object) pairs.

    Args:
      pos_hat, pos_true: (B, T, N, 2) world units. valid: (B, T, N) bool.
    """
    err = np.linalg.norm(np.diff(pos_hat, axis=1) - np.diff(pos_true, axis=1), axis=-1)
    err /= world.FRAME_DT
    w = valid[:, 1:]
    n = w.sum(axis=(1, 2))
    with np.errstate(invalid="ignore"):
        return np.where(w, err, 0.0).sum(axis=(1, 2)) / n


def _velocity_part(tracks, record, mask=None) -> dict:
    pos, filled = filled_positions(tracks, record)
    v_hat = frame_velocities(pos)
    v = frame_velocities(record.trajectory.positions)
    valid = valid_frames(record) if mask is None else mask
    err = np.linalg.norm(v_hat - v, axis=-1)
    # Found: parsed in >= 90% of the generated frames where the true object is in view.
    shown = inside_box(record.trajectory.positions, record.objects.radii)
    shown[: record.n_cond] = False
    n_shown = shown.sum(axis=0)
    frac = (shown & ~filled).sum(axis=0) / np.maximum(n_shown, 1)
    out = {
        "velocity_error": _mean(err[valid]),
        "found_all": float(np.all((frac >= 0.9) | (n_shown == 0))),
        "n_valid": int(valid.sum()),
        "speed_true": _mean(np.linalg.norm(v, axis=-1)[valid]),
        "speed_hat": _mean(np.linalg.norm(v_hat, axis=-1)[valid]),
        "vx_true": _mean(v[..., 0][valid]),
        "vx_hat": _mean(v_hat[..., 0][valid]),
        "missing_frames": int((filled & (np.arange(len(filled))[:, None] >= record.n_cond)).sum()),
    }
    return out, pos, v_hat, v, valid


def score_uniform(tracks, record) -> dict:
    """Velocity error (paper metric) of every object over valid frames, plus mean speeds."""
    out, *_ = _velocity_part(tracks, record)
    return out


def collision_frame(record) -> int:
    """First frame whose time is at or after the first object-object collision (T if none)."""
    tr = record.trajectory
    pairs = np.asarray(tr.event_pairs).reshape(-1, 2)
    hit = np.nonzero(pairs[:, 1] >= 0)[0]
    return int(tr.event_frames[hit[0]]) if hit.size else tr.n_frames


def score_collision(tracks, record) -> dict:
    """Collision: post-collision velocity error per ball, momentum and kinetic-energy errors.

    Post-collision frames are those whose velocity spans only times after the first
    object-object collision (``k - 1 >= collision_frame``). Momentum error is
    ``|Σ m v̂ - Σ m v| / Σ m`` (velocity units); energy error is ``|KE(v̂) - KE(v)| / KE(v)``;
    both are averaged over post-collision frames where every object is valid.
    """
    valid = valid_frames(record)
    cf = collision_frame(record)
    post = valid.copy()
    post[: min(cf + 1, len(post))] = False
    out, pos, v_hat, v, _ = _velocity_part(tracks, record, mask=post)
    out["post_velocity_error"] = out["velocity_error"]
    pre = valid.copy()
    pre[cf:] = False
    out["pre_velocity_error"] = _mean(np.linalg.norm(v_hat - v, axis=-1)[pre])
    err = np.linalg.norm(v_hat - v, axis=-1)
    for i in range(err.shape[1]):
        out[f"post_velocity_error_{i}"] = _mean(err[post[:, i], i])
        out[f"post_vx_true_{i}"] = _mean(v[post[:, i], i, 0])  # the Fig. 4 form, per ball
        out[f"post_vx_hat_{i}"] = _mean(v_hat[post[:, i], i, 0])
    both = np.all(post, axis=1)
    m = np.asarray(record.objects.masses, dtype=np.float64)
    p_hat = np.einsum("n,tnd->td", m, v_hat[both])
    p_true = np.einsum("n,tnd->td", m, v[both])
    out["momentum_error"] = _mean(np.linalg.norm(p_hat - p_true, axis=-1) / m.sum())
    ke_hat = 0.5 * np.einsum("n,tn->t", m, np.sum(v_hat[both] ** 2, axis=-1))
    ke = 0.5 * np.einsum("n,tn->t", m, np.sum(v[both] ** 2, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["energy_error"] = _mean(np.abs(ke_hat - ke) / ke)
    out["collision_frame"] = cf
    return out


def fit_acceleration(times: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Least-squares constant acceleration (2,) of positions ``xy (K, 2)`` at ``times (K,)``.

    NaN when fewer than 3 frames are given.
    """
    if len(times) < 3:
        return np.full(2, np.nan)
    a = np.stack([0.5 * times**2, times, np.ones_like(times)], axis=1)
    coef, *_ = np.linalg.lstsq(a, xy, rcond=None)
    return coef[0]


def score_parabola(tracks, record) -> dict:
    """Parabola: velocity error and the fitted acceleration against the truth's.

    The acceleration is fitted (constant, least squares) to each object's positions over
    the generated frames where its truth is fully inside the box; the truth is fitted the
    same way, so ``accel_error = |â - a|`` (world units / s²) needs no gravity parameter.
    """
    out, pos, *_ = _velocity_part(tracks, record)
    inside = inside_box(record.trajectory.positions, record.objects.radii)
    t = record.trajectory.times
    errs, a_hat_y, a_true_y = [], [], []
    for i in range(pos.shape[1]):
        k = inside[:, i] & (np.arange(len(t)) >= record.n_cond - 1)
        a_hat = fit_acceleration(t[k], pos[k, i])
        a_true = fit_acceleration(t[k], record.trajectory.positions[k, i])
        errs.append(np.linalg.norm(a_hat - a_true))
        a_hat_y.append(a_hat[1])
        a_true_y.append(a_true[1])
    out["accel_error"] = float(np.mean(errs))
    out["accel_hat_y"] = float(np.mean(a_hat_y))
    out["accel_true_y"] = float(np.mean(a_true_y))
    return out


def _window_velocity(v: np.ndarray, ok: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Mean of frame velocities ``v (T, 2)`` over frames ``lo <= k < hi`` where ``ok``."""
    k = np.arange(len(v))
    sel = ok & (k >= lo) & (k < hi)
    return v[sel].mean(axis=0) if sel.any() else np.full(2, np.nan)


def score_bounce(tracks, record, out: dict | None = None) -> dict:
    """The first wall bounce of a video: restitution and reflection angle, parsed vs true.

    The bouncing ball's velocity is averaged over the frames between the previous event
    (or the conditioning frames) and the bounce, and between the bounce and the next event
    (or the end); ``bounce_restitution`` = |v_out,n| / |v_in,n| along the wall normal,
    ``bounce_angle`` = the angle of the outgoing velocity from the mirror image of the
    incoming one (radians, 0 for a perfect reflection). ``*_error`` compares with the same
    numbers measured on the truth; NaN when the video has no wall event.
    """
    out = {} if out is None else out
    tr = record.trajectory
    pairs = np.asarray(tr.event_pairs).reshape(-1, 2)
    walls = np.flatnonzero(pairs[:, 1] < 0)
    keys = ("bounce_restitution", "bounce_restitution_true", "bounce_restitution_error",
            "bounce_angle", "bounce_angle_error")
    if not walls.size:
        return {**out, **{k: float("nan") for k in keys}}
    w = int(walls[0])
    ball, wall = int(pairs[w, 0]), int(pairs[w, 1])
    axis = 0 if wall >= -2 else 1
    kb = int(tr.event_frames[w])
    prev = int(tr.event_frames[w - 1]) if w > 0 else 0
    nxt = int(tr.event_frames[w + 1]) if w + 1 < len(pairs) else tr.n_frames
    pos, filled = filled_positions(tracks, record)
    v_hat = frame_velocities(pos)[:, ball]
    v = frame_velocities(tr.positions)[:, ball]
    ok = valid_frames(record)[:, ball]
    ok_hat = ok & ~filled[:, ball] & np.concatenate([[False], ~filled[:-1, ball]])

    def measure(vel, good):
        # frame velocity k spans (k-1, k]: pre frames end at kb, post start at kb + 1
        vin = _window_velocity(vel, good, max(prev + 1, record.n_cond), kb)
        vout = _window_velocity(vel, good, kb + 1, nxt)
        with np.errstate(invalid="ignore", divide="ignore"):
            e = abs(vout[axis]) / abs(vin[axis])
        mirror = vin.copy()
        mirror[axis] = -mirror[axis]
        ang = np.arctan2(vout[1], vout[0]) - np.arctan2(mirror[1], mirror[0])
        return float(e), float(abs((ang + np.pi) % (2 * np.pi) - np.pi))

    e_hat, a_hat = measure(v_hat, ok_hat)
    e_true, a_true = measure(v, ok)
    out.update(bounce_restitution=e_hat, bounce_restitution_true=e_true,
               bounce_restitution_error=abs(e_hat - e_true), bounce_angle=a_hat,
               bounce_angle_error=abs(a_hat - a_true))
    return out


def score_composition_temporal(tracks, record) -> dict:
    """Temporal composition: velocity error of every ball, the collision's scores
    (:func:`score_collision`, when the video has a collision) and the first wall bounce's
    (:func:`score_bounce`, when it has one), so that each event type's numbers can be read
    on the composed videos against the videos that hold it alone (levels)."""
    out, *_ = _velocity_part(tracks, record)
    out["all_velocity_error"] = out["velocity_error"]
    pairs = np.asarray(record.trajectory.event_pairs).reshape(-1, 2)
    if record.objects.n > 1 and np.any(pairs[:, 1] >= 0):
        c = score_collision(tracks, record)
        out.update({k: v for k, v in c.items() if k.startswith(("post_", "pre_", "momentum",
                                                                "energy", "collision"))})
    return score_bounce(tracks, record, out)


def score_composition_spatial(tracks, record) -> dict:
    """Spatial composition: velocity error of every object, the moving one's and the
    resting one's apart, and how far the resting one drifts from where it was given
    (``static_drift``, world units, mean over generated frames where it is parsed)."""
    out, pos, v_hat, v, valid = _velocity_part(tracks, record)
    err = np.linalg.norm(v_hat - v, axis=-1)
    moving = np.any(record.trajectory.velocities[0] != 0, axis=-1)
    for name, sel in (("moving", moving), ("static", ~moving)):
        cols = np.flatnonzero(sel)
        out[f"{name}_velocity_error"] = _mean(err[:, cols][valid[:, cols]]) if cols.size \
            else float("nan")
    cols = np.flatnonzero(~moving)
    if cols.size:
        _, filled = filled_positions(tracks, record)
        k = np.arange(len(pos)) >= record.n_cond
        d = np.linalg.norm(pos[:, cols] - record.trajectory.positions[:1, cols], axis=-1)
        out["static_drift"] = _mean(d[k[:, None] & ~filled[:, cols]])
    else:
        out["static_drift"] = float("nan")
    return out


def score_ambiguity(tracks, record) -> dict:
    """Ambiguity: velocity error of both balls and the outcome read from the rollout and
    from the conditioning frames against the true one (:func:`evals.ambiguity.score`)."""
    from evals import ambiguity

    out, *_ = _velocity_part(tracks, record)
    out.update(ambiguity.score(tracks, record))
    return out


_SCORERS_BY_NAME = {"composition_temporal": "composition_temporal",
                    "composition_spatial": "composition_spatial", "ambiguity": "ambiguity"}


def scorer_for(scenario: str) -> str:
    """The law scorer of a scenario name (attribute and other one-body scenes use uniform)."""
    if scenario in _SCORERS_BY_NAME:
        return _SCORERS_BY_NAME[scenario]
    for name in ("collision", "parabola"):
        if scenario.startswith(name):
            return name
    return "uniform"


def score(tracks, record) -> dict:
    """Law scores of one parsed video against its truth record (dispatch on scenario)."""
    kind = scorer_for(record.scenario)
    fn = {"uniform": score_uniform, "collision": score_collision, "parabola": score_parabola,
          "composition_temporal": score_composition_temporal,
          "composition_spatial": score_composition_spatial, "ambiguity": score_ambiguity}
    out = fn[kind](tracks, record)
    out["scorer"] = kind
    return out


# --------------------------------------------------------------------------- aggregation


def bootstrap_ci(values, *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0):
    """Mean and percentile bootstrap (1 - alpha) interval of finite ``values``.

    Returns (mean, low, high, n); NaNs when no finite values.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan"), 0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(lo), float(hi), int(x.size)


def summarize(rows: list[dict], metrics: list[str] | None = None, **boot) -> dict:
    """Mean, CI and count of every numeric metric over ``rows`` (dicts of per-video scores)."""
    if metrics is None:
        skip = {"n_valid", "missing_frames", "collision_frame", "index", "seed", "resolution",
                "n_frames", "cond_mse"}
        metrics = sorted(
            k
            for k in {k for r in rows for k, v in r.items() if isinstance(v, float | int)}
            if k not in skip and not k.startswith(("param_", "_"))
        )
    out: dict = {"n_scored": len(rows)}
    for m in metrics:
        vals = [r.get(m, np.nan) for r in rows]
        mean, lo, hi, n = bootstrap_ci(vals, **boot)
        out[m] = mean
        out[f"{m}_ci"] = [lo, hi]
        out[f"{m}_n"] = n
    return out


def aggregate(rows: list[dict], metrics: list[str] | None = None, **boot) -> dict:
    """Overall summary plus per split (``splits``) and per ``"split/level"`` (``levels``).

    Each row needs ``split`` and ``level`` keys besides its metrics.
    """
    out = summarize(rows, metrics, **boot)
    groups: dict[str, dict[str, list]] = {"splits": {}, "levels": {}}
    for r in rows:
        groups["splits"].setdefault(str(r["split"]), []).append(r)
        groups["levels"].setdefault(f"{r['split']}/{r['level']}", []).append(r)
    for g, by in groups.items():
        out[g] = {k: summarize(v, metrics, **boot) for k, v in sorted(by.items())}
    return out
