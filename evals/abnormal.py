"""Automatic abnormality checks that stand in for the paper's human judges.

Every check looks only at generated frames (``k >= n_cond``) and compares the parsed tracks
with what the conditioning frames and the truth allow:

- ``vanish``: an object is not visible while its truth is fully inside the box.
- ``appear``: an object is visible while its truth is entirely outside the box, or a blob of
  a colour no object has appears (and no object lost its area at the same time).
- ``color``: an object's colour changes: it loses most of its area while an unknown colour
  appears, or two objects swap identities (a track lands on another's last position).
- ``shape``: the parsed shape differs from the conditioning frames' shape.
- ``size``: the area-equivalent radius drifts from the conditioning frames' beyond tolerance.
- ``jump``: a frame-to-frame displacement exceeds what the truth's total kinetic energy allows.
- ``interpenetration``: two objects' centres come closer than a fraction of their radii sum.

:func:`check` returns one bool per check, ``abnormal`` (any), and the numbers behind them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from evals.laws import inside_box
from evals.parse import MOMENT_RATIO
from physim import world

CHECKS = ("vanish", "appear", "color", "shape", "size", "jump", "interpenetration")


@dataclasses.dataclass(frozen=True)
class AbnormalConfig:
    """Tolerances of the checks.

    Attributes:
      min_frames: frames a shape or size deviation must persist to be flagged.
      shape_tol: change of log shape moment (vs the conditioning frames) that, with a
        changed shape label, flags a shape change.
      size_tol: relative radius drift allowed (0.15 = 15 %).
      area_lost: fraction of its conditioning area an object must lose for ``color``.
      unknown_area: unknown-colour area flagged, as a fraction of the smallest object's area.
      jump_factor: allowed multiple of the energy speed bound per frame.
      jump_tol: extra displacement allowed per frame, world units.
      overlap: centres closer than ``overlap * (r_i + r_j)`` interpenetrate.
    """

    min_frames: int = 2
    shape_tol: float = 0.02
    size_tol: float = 0.15
    area_lost: float = 0.5
    unknown_area: float = 0.3
    jump_factor: float = 2.0
    jump_tol: float = 0.3
    overlap: float = 0.7


ABNORMAL_PRESETS: dict[str, AbnormalConfig] = {
    "exact": AbnormalConfig(),
    "lossy": AbnormalConfig(size_tol=0.2, unknown_area=0.5, min_frames=3, shape_tol=0.03),
}


def parse_moment(shape: str) -> float:
    return MOMENT_RATIO[shape]


def _mode(x: np.ndarray, default: int) -> int:
    x = x[x >= 0]
    return int(np.bincount(x).argmax()) if x.size else default


def _runs_at_least(mask: np.ndarray, n: int) -> bool:
    """Whether ``mask`` (T,) has ``n`` consecutive True."""
    run = 0
    for m in mask:
        run = run + 1 if m else 0
        if run >= n:
            return True
    return False


def check(tracks, record, config: AbnormalConfig | str = "exact") -> dict:
    """Abnormality flags of one parsed video against its truth record.

    Args:
      tracks: :class:`evals.parse.Tracks` (T frames, N objects).
      record: the truth :class:`physim.record.Record`.
      config: an :class:`AbnormalConfig` or a preset name.
    """
    cfg = ABNORMAL_PRESETS[config] if isinstance(config, str) else config
    tr = record.trajectory
    n_t, n = tr.positions.shape[:2]
    if tracks.positions.shape[:2] != (n_t, n):
        raise ValueError(f"tracks {tracks.positions.shape[:2]} do not match truth {(n_t, n)}")
    gen = np.arange(n_t) >= record.n_cond
    cond = ~gen
    radii = np.asarray(record.objects.radii, dtype=np.float64)
    inside = inside_box(tr.positions, radii)
    # Entirely outside: beyond the box on some axis by more than the radius.
    lo, hi = tr.positions + radii[:, None], tr.positions - radii[:, None]
    beyond = (lo < 0) | (hi > world.WORLD_SIZE)
    outside = np.any(beyond, axis=-1)
    vis = tracks.visible
    pos = tracks.positions
    out: dict = {}

    # Vanish / appear of tracked objects.
    vanished = gen[:, None] & inside & ~vis
    out["vanish"] = bool(vanished.any())
    appeared = gen[:, None] & outside & vis
    # Reference per-object quantities from the conditioning frames.
    cond_view = cond[:, None] & tracks.in_view
    ref_area = np.array(
        [np.median(tracks.areas[cond_view[:, i], i]) if cond_view[:, i].any() else np.nan
         for i in range(n)]
    )  # fmt: skip
    ref_area = np.where(np.isfinite(ref_area), ref_area, np.pi * radii**2)
    lost = gen[:, None] & inside & (tracks.areas < (1 - cfg.area_lost) * ref_area)
    unknown = gen & (tracks.unknown_area > cfg.unknown_area * np.min(np.pi * radii**2))
    out["color"] = bool(np.any(unknown & lost.any(axis=1)))
    out["appear"] = bool(appeared.any() or np.any(unknown & ~lost.any(axis=1)))
    out["unknown_area_max"] = float(np.max(tracks.unknown_area[gen], initial=0.0))

    # Identity swaps (e.g. red and blue exchange colours): a track lands on another's spot.
    swapped = False
    for k in np.nonzero(gen)[0]:
        for i in range(n):
            if not (vis[k, i] and vis[k - 1, i]):
                continue
            own = np.linalg.norm(pos[k, i] - pos[k - 1, i])
            for j in range(n):
                if j == i or not vis[k - 1, j]:
                    continue
                other = np.linalg.norm(pos[k, i] - pos[k - 1, j])
                if own > radii[i] and other < 0.5 * own:
                    swapped = True
    out["color"] = out["color"] or swapped

    # Shape and size against the conditioning frames.
    shape_bad = np.zeros(n, dtype=bool)
    size_bad = np.zeros(n, dtype=bool)
    drift = np.zeros(n)
    codes = record.objects.shape_codes
    for i in range(n):
        view = gen & tracks.in_view[:, i] & inside[:, i]
        ref_shape = _mode(tracks.shapes[cond_view[:, i], i], int(codes[i]))
        # A changed label only counts when the shape moment moved too (a codec's blur
        # shifts it a little in all frames alike; ball to square is a 4.6 % change).
        m_cond = tracks.moments[cond_view[:, i], i]
        m_ref = np.median(m_cond) if m_cond.size else parse_moment(record.objects.shapes[i])
        with np.errstate(invalid="ignore", divide="ignore"):
            moved = np.abs(np.log(tracks.moments[:, i] / m_ref)) > cfg.shape_tol
        changed = (tracks.shapes[:, i] != ref_shape) & moved
        shape_bad[i] = _runs_at_least(view & changed, cfg.min_frames)
        r_eq = np.sqrt(tracks.areas[:, i] / np.pi)
        r_ref = np.sqrt(ref_area[i] / np.pi)
        rel = np.abs(r_eq / r_ref - 1.0)
        drift[i] = float(np.max(rel[view], initial=0.0))
        size_bad[i] = _runs_at_least(view & (rel > cfg.size_tol), cfg.min_frames)
    out["shape"] = bool(shape_bad.any())
    out["size"] = bool(size_bad.any())
    out["size_drift_max"] = float(drift.max(initial=0.0))

    # Jumps: no object can move faster than if it held all the truth's kinetic energy.
    m = np.asarray(record.objects.masses, dtype=np.float64)
    ke = 0.5 * np.einsum("n,tn->t", m, np.sum(tr.velocities**2, axis=-1)).max()
    v_bound = np.sqrt(2.0 * ke / m)  # (N,)
    step = np.linalg.norm(np.diff(pos, axis=0), axis=-1)  # (T-1, N) NaN where unseen
    allowed = cfg.jump_factor * v_bound * world.FRAME_DT + cfg.jump_tol
    both = vis[1:] & vis[:-1] & gen[1:, None]
    ratio = np.where(both, step / allowed, 0.0)
    out["jump"] = bool(np.any(ratio > 1.0))
    out["jump_ratio_max"] = float(np.max(ratio, initial=0.0))

    # Interpenetration of pairs.
    pen = False
    min_gap = np.inf
    for i in range(n):
        for j in range(i + 1, n):
            k = gen & vis[:, i] & vis[:, j]
            if not k.any():
                continue
            d = np.linalg.norm(pos[k, i] - pos[k, j], axis=-1) / (radii[i] + radii[j])
            min_gap = min(min_gap, float(d.min()))
            pen = pen or bool(np.any(d < cfg.overlap))
    out["interpenetration"] = pen
    out["min_center_gap"] = min_gap if np.isfinite(min_gap) else float("nan")
    out["abnormal"] = any(out[c] for c in CHECKS)
    return out
