"""The paper's evaluation protocol (phyworld ``id_ood_data/evaluate.py``), restated.

Our metrics (:mod:`evals.laws`) are exact per-frame means over (frame, object) pairs with
a membership parser. The paper's released code computes other numbers, and its published
values are only comparable with these (see ``reference/phyworld-paper.md`` §4, §4b):

- **Parser.** Colour thresholds at 127 (red: R > 127, G < 127, B < 127; blue likewise),
  centroid = mean (column, row) of the mask pixels with rows counted from the bottom,
  scaled by 10 / W (no half-pixel offset). An empty mask puts the ball at x = 10 (one
  ball; collision: x = 0 for the left ball, 10 for the right one), y held.
- **Frames.** Only frames ``i >= 3`` whose truth is fully in the box (one ball: the whole
  disc in [0, 10]²; collision: left ball's left edge >= 0 and right ball's right edge
  <= 10) are kept, and velocities are differences between consecutive KEPT frames, so the
  first velocity is ``x_4 - x_3`` (ours starts at ``x_3 - x_2``). Only x is used.
- **Uniform / parabola:** ``vel_error = |mean_t(v̂x) - v0|`` (error of the mean velocity;
  v0 the initial x velocity); ``vel_error_per_frame = mean_t |v̂x - vx|``.
- **Collision:** the collision index c is the first i >= 1 where either ball's true x
  velocity changes by more than 0.1 between kept differences (the last one if none);
  post-collision differences are those after c (``[c + 1:]``); ``post_vel_error`` is the
  mean over the two balls of ``|mean_t v̂x - mean_t vx|``; ``post_vel_err_avg`` the mean
  over (difference, ball); momentum and energy errors use m = r² (not normalised) against
  the initial ``m1 v1 + m2 v2`` and ``Σ m v0² / 2``.
- **Filters.** One-ball videos with r < 0.6 and collisions with r1 <= 0.5 or r2 <= 0.5
  are skipped ("disappearing balls").

Everything here is a pure function of frames and a truth record; :mod:`evals.metrics`
wraps it as the ``paper`` metric.
"""

from __future__ import annotations

import numpy as np

from evals.laws import scorer_for
from physim import world

FIRST_FRAME = 3  # the paper's CONDITION_FRAMES - 1
R_MIN_ONE = 0.6  # one-ball videos need r >= 0.6
R_MIN_COLLISION = 0.5  # collisions need r1, r2 > 0.5
JUMP = 0.1  # change of true x velocity that marks the collision, units / s
SCALE = world.WORLD_SIZE


def paper_parse(frames: np.ndarray, colors, missing_x) -> np.ndarray:
    """Positions (T, N, 2) world units by the paper's threshold-and-centroid parser.

    Args:
      frames: (T, W, W, 3) uint8 RGB, row 0 at the top.
      colors: (N, 3) uint8 pure object colours (each channel 0 or 255).
      missing_x: (N,) x given to an object whose mask is empty in a frame (its y is held
        from the previous frame, NaN before any).
    """
    f = np.asarray(frames)
    t, h, w, _ = f.shape
    cols = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    hi = cols >= 128  # (N, 3) channel above or below the threshold
    over = f > 127  # (T, H, W, 3)
    under = f < 127
    rows_up = (h - 1 - np.arange(h, dtype=np.float64))[None, :, None]  # rows from the bottom
    cols_x = np.arange(w, dtype=np.float64)[None, None, :]
    out = np.empty((t, cols.shape[0], 2))
    for n in range(cols.shape[0]):
        m = np.ones((t, h, w), dtype=bool)
        for c in range(3):
            m &= over[..., c] if hi[n, c] else under[..., c]
        area = m.sum(axis=(1, 2)).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            x = (m * cols_x).sum(axis=(1, 2)) / area / w * SCALE
            y = (m * rows_up).sum(axis=(1, 2)) / area / w * SCALE
        last_y = np.nan
        for k in range(t):
            if area[k] > 0.15:
                last_y = y[k]
            else:
                x[k], y[k] = missing_x[n], last_y
        out[:, n, 0], out[:, n, 1] = x, y
    return out


def kept_frames(record, n_frames: int) -> np.ndarray:
    """Indices (K,) of the frames the paper scores among the first ``n_frames``."""
    p = record.trajectory.positions[:n_frames]
    r = np.asarray(record.objects.radii, dtype=np.float64)
    i = np.arange(n_frames)
    if scorer_for(record.scenario) == "collision":
        left, right = _left_right(record)
        ok = (p[:, left, 0] - r[left] >= 0) & (p[:, right, 0] + r[right] <= SCALE)
    else:
        ok = np.all((p[:, 0] - r[0] >= 0) & (p[:, 0] + r[0] <= SCALE), axis=-1)
    return i[(i >= FIRST_FRAME) & ok]


def _left_right(record) -> tuple[int, int]:
    x0 = record.trajectory.positions[0, :, 0]
    return (0, 1) if x0[0] <= x0[1] else (1, 0)


def included(record) -> bool:
    """The paper's radius filter: whether it scores this video at all."""
    r = np.asarray(record.objects.radii, dtype=np.float64)
    if scorer_for(record.scenario) == "collision":
        return bool(np.all(r[:2] > R_MIN_COLLISION))
    return bool(r[0] >= R_MIN_ONE)


def _mean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x)) if x.size else float("nan")


def paper_scores(frames: np.ndarray, record) -> dict:
    """The paper's metrics of one generated video (the first ``len(frames)`` truth frames).

    Returns ``velocity_error`` (the published metric: ``vel_error`` / ``x_vel_error`` for
    one ball, ``post_vel_error`` for collisions), ``velocity_error_per_frame`` and, for
    collisions, ``momentum_error`` and ``energy_error`` (post-collision, m = r²), all in
    world units (per second); ``included`` (the radius filter). Values are NaN when the
    video is filtered out or no frame is kept.
    """
    frames = np.asarray(frames)
    n_t = frames.shape[0]
    kind = scorer_for(record.scenario)
    inc = included(record)
    nan = float("nan")
    out = {"velocity_error": nan, "velocity_error_per_frame": nan, "included": inc}
    if kind == "collision":
        out.update(momentum_error=nan, energy_error=nan)
    if not inc:
        return out
    idx = kept_frames(record, n_t)
    tr = record.trajectory
    r = np.asarray(record.objects.radii, dtype=np.float64)
    if kind == "collision":
        left, right = _left_right(record)
        order = [left, right]
        colors = np.asarray(record.objects.rgb)[order]
        x_hat = paper_parse(frames[idx], colors, missing_x=[0.0, SCALE])[..., 0]  # (K, 2)
        x_true = tr.positions[idx][:, order, 0]
        v_hat = np.diff(x_hat, axis=0) / world.FRAME_DT  # (K-1, 2)
        v = np.diff(x_true, axis=0) / world.FRAME_DT
        c = len(v) - 1
        for i in range(1, len(v)):
            if np.any(np.abs(v[i] - v[i - 1]) > JUMP):
                c = i
                break
        post = slice(c + 1, None)
        with np.errstate(invalid="ignore"):
            per_ball = np.abs(np.mean(v_hat[post], axis=0) - np.mean(v[post], axis=0)) \
                if len(v[post]) else np.full(2, np.nan)  # fmt: skip
        m = r[order] ** 2
        v0 = tr.velocities[0][order, 0]
        p_hat = v_hat[post] @ m
        e_hat = 0.5 * (v_hat[post] ** 2) @ m
        out.update(
            velocity_error=float(np.mean(per_ball)),
            velocity_error_per_frame=_mean(np.abs(v_hat[post] - v[post])),
            momentum_error=_mean(np.abs(p_hat - m @ v0)),
            energy_error=_mean(np.abs(e_hat - 0.5 * m @ v0**2)),
        )
        return out
    colors = np.asarray(record.objects.rgb)[:1]
    x_hat = paper_parse(frames[idx], colors, missing_x=[SCALE])[:, 0, 0]  # (K,)
    v_hat = np.diff(x_hat) / world.FRAME_DT
    v = np.diff(tr.positions[idx][:, 0, 0]) / world.FRAME_DT
    out["velocity_error"] = abs(_mean(v_hat) - float(tr.velocities[0, 0, 0]))
    out["velocity_error_per_frame"] = _mean(np.abs(v_hat - v))
    return out
