"""The abnormality checks of :mod:`evals.scenes` (see its docstring for what each
check means): blob-to-object accounting, static pixels, crossings and jumps.

:func:`run` takes a parsed video, the truth reference and a resolved config; use
:func:`evals.scenes.check` or :func:`evals.scenes.check_video`.
"""

from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING

import numpy as np

from evals import scene_parse as sp
from physim import world

if TYPE_CHECKING:
    from evals.scenes import SceneConfig, SceneParse, SceneReference

CHECKS = ("vanish", "appear", "color", "shape", "static", "penetration", "jump")


@functools.lru_cache(maxsize=64)
def _subsets(n: int) -> np.ndarray:
    """(S, n) bool: all non-empty subsets of n objects (sizes <= 3 beyond 10 objects)."""
    if n <= 10:
        bits = (np.arange(1, 2**n)[:, None] >> np.arange(n)) & 1
    else:
        bits = np.zeros((0, n), dtype=np.int64)
        for k in range(1, 4):
            for c in itertools.combinations(range(n), k):
                bits = np.vstack([bits, np.isin(np.arange(n), c)[None]])
    out = bits.astype(bool)
    out.flags.writeable = False
    return out


def _account(b: sp.Blobs, area, ext, cfg: SceneConfig, wall: float = 0.0):
    """Match the blobs of one colour to its objects (areas (n,), extents (n, 2), px);
    ``wall``: px a blob on the frame border may have sunk out of view (per border pixel).

    Returns ``(vanished, appeared, misshapen, singles)``: counts of objects found in no
    blob, of blobs no object accounts for, of objects present with the wrong size or
    shape, and {object: blob} for blobs that are one object of the right shape and
    could be no other object.

    Blobs on the frame border are pooled into one (their area only): a body sunk into a
    wall may show as slivers that split apart, and its clipped moments say nothing.
    """
    b_area, b_ext, b_mixed, b_border = b.area, b.extents, b.mixed, b.border
    ids = np.arange(b.n)  # original blob of each entry (-1: the pooled border blobs)
    edge = b_border > 0
    if edge.sum() > 1:
        keep = ~edge
        ids = np.append(ids[keep], -1)
        b_area = np.append(b_area[keep], b_area[edge].sum())
        b_ext = np.vstack([b_ext[keep], np.full((1, 2), np.nan)])
        b_mixed = np.append(b_mixed[keep], b_mixed[edge].sum())
        b_border = np.append(b_border[keep], b_border[edge].sum())
    n, m = len(area), len(ids)
    bits = _subsets(n)
    sub_area, sub_n = bits @ area, bits.sum(1)
    live = b_area >= cfg.speck_frac * area.min()  # smaller blobs are specks: ignored
    m_live = int(live.sum())
    cands = []  # per blob: [(object mask, shape ok)], best first
    unique = np.zeros(m, dtype=bool)
    for j in range(m):
        if not live[j]:
            cands.append([])
            continue
        err = np.abs(b_area[j] - sub_area)
        tol = cfg.area_rel * sub_area + cfg.area_px * sub_n + 0.25 * b_mixed[j]
        tol = tol + wall * b_border[j]
        checkable = not np.isnan(b_ext[j]).any()
        opts = []
        for s in np.nonzero(err <= tol)[0]:
            ok = True
            if sub_n[s] == 1 and checkable:
                i = int(np.argmax(bits[s]))
                etol = cfg.extent_rel * ext[i] + cfg.extent_px + (wall if b_border[j] else 0.0)
                ok = bool(np.all(np.abs(b_ext[j] - ext[i]) <= etol))
            opts.append((not ok, int(sub_n[s] > 1), err[s] / tol[s], s, ok))
        n_ok = sum(o[4] and o[1] == 0 for o in opts)  # lone objects it could be
        unique[j] = n_ok == 1 and checkable
        cands.append([(bits[o[3]], o[4]) for o in sorted(opts)[:32]])
    order = np.argsort([len(c) for c in cands], kind="stable")  # most constrained first
    best: list = [(-1, -1, -1), None]

    def dfs(q, used, choice, score):
        if best[0] == (m_live, n, m_live):
            return
        if q == m:
            if score > best[0]:
                best[0], best[1] = score, list(choice)
            return
        if score[0] + (m - q) < best[0][0]:
            return
        j = order[q]
        for mask, ok in cands[j]:
            if not np.any(mask & used):
                choice[j] = (mask, ok)
                sc = (score[0] + 1, score[1] + int(mask.sum()), score[2] + int(ok))
                dfs(q + 1, used | mask, choice, sc)
        choice[j] = None
        dfs(q + 1, used, choice, score)

    dfs(0, np.zeros(n, bool), [None] * m, (0, 0, 0))
    choice = best[1] if best[1] is not None else [None] * m
    covered = np.zeros(n, bool)
    singles, misshapen = {}, 0
    for j, c in enumerate(choice):
        if c is None:
            continue
        covered |= c[0]
        if c[0].sum() == 1:
            i = int(np.argmax(c[0]))
            if not c[1]:
                misshapen += 1
            elif unique[j]:
                singles[i] = int(ids[j])
    left = list(np.nonzero(~covered)[0])
    appeared = 0
    unexplained = [j for j in range(m) if choice[j] is None and live[j]]
    for j in sorted(unexplained, key=lambda j: -b_area[j]):
        if not left:
            appeared += 1
            continue
        # An unexplained blob stands in for the uncovered object closest in area.
        i = min(left, key=lambda i: abs(np.log(b_area[j] / area[i])))
        left.remove(i)
        misshapen += 1
    return len(left), appeared, misshapen, singles


def run(parsed: SceneParse, ref: SceneReference, cfg: SceneConfig) -> dict:
    """The checks of :func:`evals.scenes.check` with a config already scaled to the
    video's resolution (``evals.scenes._config``)."""
    memb, unk = parsed.memb, parsed.unknown
    n_t = parsed.n_frames
    dyn = ref.dynamic_classes
    objs = {c: np.nonzero((ref.body_class == c) & ~ref.static)[0] for c in dyn}
    area, s0 = ref.area.copy(), ref.static_map
    if cfg.calibrate:  # measure areas and static pixels as this video's parse sees them
        for c in dyn:
            seen = float(parsed.blobs[0][c].area.sum())
            area[objs[c]] *= seen / area[objs[c]].sum() if seen > 0 else 1.0
        if ref.static_class >= 0:
            s0 = np.clip(memb[0][..., ref.static_class].astype(np.float64), 0.0, 1.0)
    ref_tot = {c: float(area[objs[c]].sum()) for c in dyn}
    min_dyn = float(min(area[o].min() for o in objs.values())) if dyn else 0.0
    cons_tol = cfg.color_frac * min_dyn + cfg.area_px
    wall = cfg.wall_depth * ref.resolution / world.WORLD_SIZE
    static_tol = cfg.static_frac * ref.min_static_area + cfg.static_px
    flags = {c: [] for c in CHECKS}  # flagged frames per check
    stats = dict.fromkeys(("color_moved", "unknown_area", "static_lost", "static_stray",
                           "overlap", "jump_ratio"), 0.0)  # fmt: skip
    singles_prev: dict = {}
    dist_cache: dict = {}
    for k in range(n_t):
        checked = k >= ref.n_cond
        # Colour accounting over the dynamic classes.
        tot = {c: float(parsed.blobs[k][c].area.sum()) for c in dyn}
        delta = np.array([tot[c] - ref_tot[c] for c in dyn])
        u = float(unk[k].sum())
        # Area one colour lost that other colours (or unknown ones) gained.
        moved = min(float(np.maximum(-delta, 0).sum()), float(np.maximum(delta, 0).sum()) + u)
        recolored = moved > cons_tol
        singles = {}
        if checked:
            stats["color_moved"] = max(stats["color_moved"], moved if recolored else 0.0)
            stats["unknown_area"] = max(stats["unknown_area"], u)
            if recolored:
                flags["color"].append(k)
            elif u > max(cfg.unknown_px, cfg.speck_frac * min_dyn):  # (smaller: noise)
                flags["appear"].append(k)
        if not recolored:
            for c in dyn:
                o = objs[c]
                v, a, s, single = _account(parsed.blobs[k][c], area[o], ref.extents[o], cfg, wall)
                singles.update({int(o[i]): (c, j) for i, j in single.items()})
                for name, bad in (("vanish", v), ("appear", a), ("shape", s)):
                    if checked and bad:
                        flags[name].append(k)
        if not checked:
            singles_prev = singles
            continue
        # Static objects stay, and nothing overlaps them.
        dyn_w = memb[k][..., dyn].sum(-1) + unk[k] if dyn else unk[k]
        black = memb[k][..., ref.static_class] if ref.static_class >= 0 else np.zeros_like(s0)
        db = cfg.deadband
        lost = float(np.maximum(s0 - black - dyn_w - db, 0.0).sum())
        stray = float(np.maximum(black - s0 - db, 0.0).sum())
        # (inside static objects only: pixels at least half static)
        over = np.maximum(s0 + dyn_w - 1.0 - db, 0.0)
        overlap = float(np.where(s0 >= 0.5, over, 0.0).sum())
        stats["static_lost"] = max(stats["static_lost"], lost)
        stats["static_stray"] = max(stats["static_stray"], stray)
        stats["overlap"] = max(stats["overlap"], overlap)
        if max(lost, stray) > static_tol:
            flags["static"].append(k)
        crossed = any(
            ref.convex[i] and _crosses(parsed.blobs[k - 1][c].centroid[j0],
                                       parsed.blobs[k][c].centroid[singles[i][1]], s0, cfg,
                                       ref.jump_px)
            for i, (c, j0) in singles_prev.items() if i in singles
        )  # fmt: skip
        if overlap > cfg.pen_px or crossed:
            flags["penetration"].append(k)
        singles_prev = singles
        # Jumps: colour mass moving farther than any point can in one frame.
        for c in dyn:
            speck = cfg.speck_frac * area[objs[c]].min()
            ratio = _hausdorff(parsed, k, c, speck, dist_cache) / ref.jump_px
            stats["jump_ratio"] = max(stats["jump_ratio"], ratio)
            if ratio > 1.0:
                flags["jump"].append(k)
    out: dict = {c: bool(flags[c]) for c in CHECKS}
    out["abnormal"] = any(out[c] for c in CHECKS)
    out["first_frame"] = {c: min(f) for c, f in flags.items() if f}
    out["frames"] = {c: sorted(set(f)) for c, f in flags.items() if f}
    out.update({f"{k}_max": v for k, v in stats.items()})
    return out


def _crosses(p0, p1, s0, cfg: SceneConfig, reach: float) -> bool:
    """Whether the segment p0 -> p1 (px), no longer than ``reach`` (longer moves are
    jumps), runs through static pixels while both ends lie outside them."""
    if np.hypot(*(p1 - p0)) > reach:
        return False
    n = int(np.ceil(np.hypot(*(p1 - p0)) / 0.25)) + 1
    pts = p0 + np.linspace(0.0, 1.0, n)[:, None] * (p1 - p0)
    s = sp.bilinear(s0, pts)
    return bool(s[0] < cfg.tunnel and s[-1] < cfg.tunnel and np.any(s >= cfg.tunnel))


def _solid(b: sp.Blobs, speck: float) -> np.ndarray:
    """(R, R) bool pixels of the blobs of at least ``speck`` area."""
    keep = np.append(b.area >= speck, False)  # label -1 -> False
    return keep[b.labels]


def _hausdorff(parsed: SceneParse, k: int, c: int, speck: float, cache: dict) -> float:
    """Symmetric Hausdorff distance (px) between the colour-c blob pixels of frames k - 1
    and k; 0 when either is empty (vanish and appear handle those). ``cache`` keeps each
    frame's distance map for the next call."""
    ma, mb = _solid(parsed.blobs[k - 1][c], speck), _solid(parsed.blobs[k][c], speck)
    if not ma.any() or not mb.any():
        return 0.0
    da = cache.pop((k - 1, c), None)
    da = sp.distance_to(ma) if da is None else da
    db = cache[(k, c)] = sp.distance_to(mb)
    return float(max(da[mb].max(), db[ma].max()))
