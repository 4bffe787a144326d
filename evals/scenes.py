"""Abnormality checks and scores for PHYRE-like multi-object rigid scenes.

The paper (reference §2) asked human judges whether combinatorial videos obey physics;
these checks stand in for them, from pixels only. A generated video is parsed into colour
memberships and blobs (:mod:`evals.scene_parse`); the truth record is used only for its
first frame (the conditioning frame the model saw) and its object list, never for its
later states. Every quantity the checks compare is a conservation law of the rendered
rigid world: objects neither overlap nor leave the box, so each colour's area, each
object's area and shape, and the static objects' pixels are constant over the clip.

Checks (each frame ``k >= n_cond``, per dynamic colour class):

- ``vanish``: an object's area is found in no blob (the blobs explain all but it).
- ``appear``: a blob no object accounts for, more blobs than objects, or an unknown
  colour's area (not explained by a colour change).
- ``color``: area one colour lost is gained by other colours (or an unknown colour):
  an object changed colour. Frames where this fires skip the per-colour accounting below.
- ``shape``: a blob that stands in for an object has the wrong area (shrunk, grown), or a
  blob that is one object has the wrong principal RMS extents (deformed); rigid bodies keep
  both under rotation.
- ``static``: static (black) pixels differ from the first frame: static mass is lost (and
  not covered by a dynamic object) or black appears where nothing static was.
- ``penetration``: dynamic and static coverage of a pixel add up to more than one (they
  overlap), or an object seen on both frames crosses a static object between them (it
  is on the far side of a bar it was resting on: the straight path of its centroid, which
  for a convex body stays within it, runs through static pixels).
- ``jump``: colour mass appears farther from the previous frame's mass of that colour (or
  disappears farther from the next frame's) than any point can move in one frame: speed
  ``jump_factor * sqrt(2 g H)``, H the height of the highest dynamic point at the start
  (objects start at rest and gravity is the only source of energy; the factor covers
  points of rotating bodies, which move faster than their centre of mass).

Blobs are matched to objects by area: each blob must equal the area of a set of objects
(touching objects of one colour merge into one blob); the best disjoint assignment is
searched exhaustively (objects of one colour are few).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np

from evals import scene_parse as sp
from physim import world

CHECKS = ("vanish", "appear", "color", "shape", "static", "penetration", "jump")


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """Parsing and tolerances (areas in px², lengths in px of the video's resolution).

    Attributes:
      bg_tol, res_tol: background tolerance and colour residual of the membership parse
        (:func:`evals.scene_parse.memberships`).
      support: membership above which a pixel is part of a blob.
      min_blob: blobs below this area are noise specks and ignored.
      area_rel, area_px: a blob matches a set of objects when the areas differ by at most
        ``area_rel * area + area_px * n_objects + mixed / 4``: where two edges share a
        pixel the colour drawn first loses up to a quarter pixel to the blend
        (``mixed`` counts such pixels shared with other colours; same-colour contacts
        inside a merged blob are what ``area_px`` per object covers).
      extent_rel, extent_px: allowed difference of principal RMS extents of a lone object.
      color_frac: area moved between colours tolerated, as a fraction of the smallest
        dynamic object's area.
      unknown_px: unknown-colour area tolerated per frame.
      static_frac, static_px: static mass lost or stray black tolerated: fraction of the
        smallest static body's area plus an absolute allowance (contact edges).
      pen_px: overlap area of dynamic on static tolerated per frame.
      tunnel: static membership that counts as "inside" a static object on a path.
      jump_factor, jump_px: multiple of the free-fall speed bound, and extra pixels.
      wall_depth: world units a body may sink into a wall for a frame (pymunk's contacts
        are soft: fast impacts sink up to 0.05 in 250 truth videos), so a blob on the
        frame border may miss that much per border pixel of area and of extent.
      speck_frac: blobs smaller than this fraction of the smallest object of their colour
        are specks (codec noise), not objects, and are left out of the accounting.
      confine: faint-rim rule of the parse (:func:`evals.scene_parse.memberships`); 0 off.
      calibrate: take each colour's object areas scaled to the total the parse sees in
        frame 0, and the static pixels from frame 0 itself, instead of the exact truth
        render (lossy inputs shift how much of each colour a parse recovers).
    """

    bg_tol: int = 0
    res_tol: float = 3.0
    support: float = 0.1
    min_blob: float = 0.5
    area_rel: float = 0.1
    area_px: float = 1.0
    extent_rel: float = 0.1
    extent_px: float = 0.3
    color_frac: float = 0.5
    unknown_px: float = 1.0
    static_frac: float = 0.5
    static_px: float = 1.0
    pen_px: float = 1.0
    tunnel: float = 0.5
    jump_factor: float = 2.0
    jump_px: float = 1.5
    wall_depth: float = 0.06
    speck_frac: float = 0.1
    confine: float = 0.0
    calibrate: bool = False


SCENE_PRESETS: dict[str, SceneConfig] = {
    "exact": SceneConfig(),
    # mp4 / VAE decodes / model samples: noisy colours and soft edges.
    "lossy": SceneConfig(
        bg_tol=12,
        res_tol=60.0,
        min_blob=3.0,
        area_rel=0.2,
        area_px=3.0,
        extent_rel=0.2,
        extent_px=0.6,
        unknown_px=6.0,
        static_px=4.0,
        pen_px=3.0,
        jump_px=3.0,
        confine=0.4,
        calibrate=True,
    ),
}


def _config(config) -> SceneConfig:
    if isinstance(config, SceneConfig):
        return config
    try:
        return SCENE_PRESETS[config]
    except KeyError:
        raise ValueError(f"unknown scene config {config!r}; known: {list(SCENE_PRESETS)}") from None


# --------------------------------------------------------------------------- truth side


@dataclasses.dataclass(frozen=True)
class SceneReference:
    """What the checks know of the truth: its first frame and object list, in pixels.

    Attributes:
      resolution: R, pixels per side of the videos it scores.
      n_cond: conditioning frames (not checked).
      colors: (K, 3) uint8 distinct object colours (the parse palette).
      static_class: index into ``colors`` of the static objects' colour (-1: none).
      body_class: (N,) colour index of each body.
      static: (N,) bool static bodies.
      convex: (N,) bool bodies whose centroid lies inside them (balls and bars).
      area: (N,) px² of each body drawn alone in the first frame.
      extents: (N, 2) px principal RMS extents of each body drawn alone.
      static_map: (R, R) membership of the static colour with only static bodies drawn.
      min_static_area: px² of the smallest static body (inf without static bodies).
      jump_px: the most any point may move in one frame, px (see module doc).
    """

    resolution: int
    n_cond: int
    colors: np.ndarray
    static_class: int
    body_class: np.ndarray
    static: np.ndarray
    convex: np.ndarray
    area: np.ndarray
    extents: np.ndarray
    static_map: np.ndarray
    min_static_area: float
    jump_px: float

    @property
    def dynamic_classes(self) -> list[int]:
        return sorted({int(c) for c, s in zip(self.body_class, self.static, strict=True) if not s})


def _only(geom, keep):
    """The geometry table restricted to primitives of bodies where ``keep`` (bool (N,))."""
    from physim.geometry import Geometry

    m = np.asarray(keep)[geom.body]
    return Geometry(geom.kind[m], geom.body[m], geom.params[m], geom.verts,
                    geom.vert_start[m], geom.vert_count[m], geom.colors[m])  # fmt: skip


def reference(record, resolution: int, config: SceneConfig | str = "exact") -> SceneReference:
    """The :class:`SceneReference` of a combinatorial truth record at ``resolution``.

    Uses only the first frame's poses and the per-body geometry, colours and static flags
    (``record.extra["bodies"]``), plus gravity and the frame interval.
    """
    from physim.render import render_bodies
    from physim.scenarios.combinatorial import geometry

    cfg = _config(config)
    bodies = record.extra.get("bodies")
    if not bodies:
        raise ValueError(f"record {record.id!r} has no extra['bodies'] (not a scene record)")
    geom = geometry(record)
    n = len(bodies)
    static = np.array([bool(b["static"]) for b in bodies])
    names = [b["color"] for b in bodies]
    uniq = list(dict.fromkeys(names))
    if set(names[i] for i in np.nonzero(static)[0]) & set(names[i] for i in np.nonzero(~static)[0]):
        raise ValueError("a colour is shared by static and dynamic bodies; cannot tell them apart")
    colors = np.stack([world.color_rgb(c) for c in uniq])
    body_class = np.array([uniq.index(c) for c in names])
    tr = record.trajectory
    pos, ang = tr.positions[:1], tr.angles[:1]
    area, ext, top = np.zeros(n), np.zeros((n, 2)), np.zeros(n)
    for i in range(n):
        frame = render_bodies(_only(geom, np.arange(n) == i), pos, ang, resolution)
        w = sp.memberships(frame, colors).memb[0, ..., body_class[i]]
        b = sp.blobs(w, cfg.support)
        area[i] = b.area.sum()
        ext[i] = b.extents[np.argmax(b.area)] if b.n else 0.0
        rows = np.nonzero((w > cfg.support).any(axis=1))[0]
        top[i] = world.WORLD_SIZE * (1 - rows.min() / resolution) if rows.size else 0.0
    static_class = int(body_class[static][0]) if static.any() else -1
    static_map = np.zeros((resolution, resolution))
    if static.any():
        frame = render_bodies(_only(geom, static), pos, ang, resolution)
        static_map = sp.memberships(frame, colors).memb[0, ..., static_class].astype(np.float64)
    g = float(np.hypot(*record.extra["physics"]["gravity"]))
    dt = float(tr.times[1] - tr.times[0]) if tr.n_frames > 1 else world.FRAME_DT
    h = float(top[~static].max(initial=0.0))
    v0 = float(np.linalg.norm(tr.velocities[0], axis=-1).max(initial=0.0))
    v_max = np.sqrt(v0**2 + 2 * g * h)  # energy: start speed plus the fall from the top
    jump_px = cfg.jump_factor * v_max * dt * resolution / world.WORLD_SIZE + cfg.jump_px
    convex = np.array([b["kind"] in ("ball", "bar") for b in bodies])
    return SceneReference(
        resolution=int(resolution), n_cond=int(record.n_cond), colors=colors,
        static_class=static_class, body_class=body_class, static=static, convex=convex,
        area=area, extents=ext, static_map=static_map,
        min_static_area=float(area[static].min(initial=np.inf)), jump_px=float(jump_px),
    )  # fmt: skip


# --------------------------------------------------------------------------- video side


@dataclasses.dataclass(frozen=True)
class SceneParse:
    """A video parsed into colour memberships and per-colour blobs.

    Attributes:
      memb: (T, R, R, K) float32 colour memberships (palette = ``reference.colors``).
      unknown: (T, R, R) float32 unknown-colour weight.
      blobs: blobs[t][k], :class:`evals.scene_parse.Blobs` of colour k in frame t.
    """

    memb: np.ndarray
    unknown: np.ndarray
    blobs: list[list[sp.Blobs]]

    @property
    def n_frames(self) -> int:
        return int(self.memb.shape[0])


def parse_scene(frames, ref: SceneReference, config: SceneConfig | str = "exact") -> SceneParse:
    """Parse a (T, R, R, 3) uint8 video with the palette of ``ref``."""
    cfg = _config(config)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1] != ref.resolution:
        raise ValueError(
            f"frames {frames.shape} do not match the reference resolution {ref.resolution}"
        )
    # Static objects never move: their faint rims lie where the first frame's are.
    faint = {ref.static_class: ref.static_map > 0} if ref.static_class >= 0 else None
    m = sp.memberships(frames, ref.colors, bg_tol=cfg.bg_tol, res_tol=cfg.res_tol,
                       confine=cfg.confine, faint=faint)  # fmt: skip
    total = m.memb.sum(-1) + m.unknown
    bl = [[sp.blobs(m.memb[t, ..., k], cfg.support, cfg.min_blob, total[t] - m.memb[t, ..., k])
           for k in range(len(ref.colors))] for t in range(frames.shape[0])]  # fmt: skip
    return SceneParse(memb=m.memb, unknown=m.unknown, blobs=bl)


# --------------------------------------------------------------------------- checks


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
    """
    n, m = len(area), b.n
    bits = _subsets(n)
    sub_area, sub_n = bits @ area, bits.sum(1)
    live = b.area >= cfg.speck_frac * area.min()  # smaller blobs are specks: ignored
    m_live = int(live.sum())
    cands = []  # per blob: [(object mask, shape ok)], best first
    unique = np.zeros(m, dtype=bool)
    for j in range(m):
        if not live[j]:
            cands.append([])
            continue
        err = np.abs(b.area[j] - sub_area)
        tol = cfg.area_rel * sub_area + cfg.area_px * sub_n + 0.25 * b.mixed[j]
        tol = tol + wall * b.border[j]
        opts = []
        for s in np.nonzero(err <= tol)[0]:
            ok = True
            if sub_n[s] == 1:
                i = int(np.argmax(bits[s]))
                etol = cfg.extent_rel * ext[i] + cfg.extent_px + (wall if b.border[j] else 0.0)
                ok = bool(np.all(np.abs(b.extents[j] - ext[i]) <= etol))
            opts.append((not ok, int(sub_n[s] > 1), err[s] / tol[s], s, ok))
        n_ok = sum(o[4] and o[1] == 0 for o in opts)  # lone objects it could be
        unique[j] = n_ok == 1
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
                singles[i] = j
    left = list(np.nonzero(~covered)[0])
    appeared = 0
    unexplained = [j for j in range(m) if choice[j] is None and live[j]]
    for j in sorted(unexplained, key=lambda j: -b.area[j]):
        if not left:
            appeared += 1
            continue
        # An unexplained blob stands in for the uncovered object closest in area.
        i = min(left, key=lambda i: abs(np.log(b.area[j] / area[i])))
        left.remove(i)
        misshapen += 1
    return len(left), appeared, misshapen, singles


def check(parsed: SceneParse, ref: SceneReference, config: SceneConfig | str = "exact") -> dict:
    """Abnormality flags of one parsed scene video (see the module doc for the checks).

    Returns:
      dict with a bool per name in :data:`CHECKS`, ``abnormal`` (any), ``first_frame``
      ({check: first flagged frame}), ``frames`` ({check: flagged frames}) and the
      largest measured quantity of some checks (``*_max``: px² or px at the video's
      resolution; ``jump_ratio_max`` is the largest move over its bound).
    """
    cfg = _config(config)
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
            elif u > cfg.unknown_px:
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
        lost = float(np.maximum(s0 - black - dyn_w, 0.0).sum())
        stray = float(np.maximum(black - s0, 0.0).sum())
        # (inside static objects only: pixels at least half static)
        overlap = float(np.where(s0 >= 0.5, np.maximum(s0 + dyn_w - 1.0, 0.0), 0.0).sum())
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


# --------------------------------------------------------------------------- scoring

SPLITS = ("in-template", "out-of-template")
# The paper's fixed numbers of videos per evaluation set (FVD depends on the count).
PAPER_COUNTS = {"in-template": 600, "out-of-template": 500}
VIDEO_METRICS = ("psnr", "ssim", "lpips", "fvd")


def check_video(frames, record, config: SceneConfig | str = "exact") -> dict:
    """Abnormality flags of one generated video (T, R, R, 3) uint8 against its truth
    record (its first frame and objects only): :func:`reference`, :func:`parse_scene`
    and :func:`check` in one call."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] != record.trajectory.n_frames:
        raise ValueError(
            f"frames {frames.shape} do not match the record's {record.trajectory.n_frames} frames"
        )
    ref = reference(record, frames.shape[1], config)
    return check(parse_scene(frames, ref, config), ref, config)


def score(videos, records, *, config: SceneConfig | str = "exact",
          metrics: tuple[str, ...] = ("psnr", "ssim"), counts: dict | None = None,
          truth=None) -> dict:  # fmt: skip
    """Score generated scene videos against their truth records, grouped by split.

    Args:
      videos: sequence of (T, R, R, 3) uint8 generated videos (conditioning frames
        included), one per record.
      records: the truth :class:`~physim.record.Record` of each video (same order).
      config: scene check tolerances (:data:`SCENE_PRESETS` name or :class:`SceneConfig`).
      metrics: video metrics against the truth renders, a subset of
        :data:`VIDEO_METRICS` (PSNR, SSIM: generated frames ``k >= n_cond``, per frame then
        averaged; LPIPS: all frames; FVD: I3D features per split). FVD depends on the
        number of videos: compare FVDs only at equal counts (see ``counts``).
      counts: {split: n} to require and use exactly the first n videos of a split
        (the paper: :data:`PAPER_COUNTS`); raises ``ValueError`` when a split has fewer.
      truth: optional sequence of truth videos (same shapes as ``videos``); rendered from
        the records at the videos' resolution when None.

    Returns:
      ``{"splits": {split: summary}, "videos": [per-video row]}``; a summary holds ``n``,
      ``abnormal`` (rate), ``checks`` ({check: rate}) and the mean of each video metric
      (``fvd`` per split).
    """
    from physim.scenarios.combinatorial import render

    if len(videos) != len(records) or (truth is not None and len(truth) != len(records)):
        raise ValueError("videos, records (and truth) must have the same length")
    bad = set(metrics) - set(VIDEO_METRICS)
    if bad:
        raise ValueError(f"unknown metrics {sorted(bad)}; known: {list(VIDEO_METRICS)}")
    vm = None
    if metrics:
        from evals import video_metrics as vm
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(r.split, []).append(i)
    for split, n in (counts or {}).items():
        if len(groups.get(split, [])) < n:
            raise ValueError(f"split {split!r} has {len(groups.get(split, []))} videos, need {n}")
        groups[split] = groups[split][:n]
    rows, summary = [], {}
    for split, idx in groups.items():
        feats: tuple[list, list] = ([], [])
        split_rows = []
        for i in idx:
            gen, rec = np.asarray(videos[i]), records[i]
            row = {"id": rec.id, "split": rec.split, "template": rec.params.get("template")}
            row.update(check_video(gen, rec, config))
            if vm is not None:
                tv = render(rec, gen.shape[1]) if truth is None else np.asarray(truth[i])
                if {"psnr", "ssim"} & set(metrics):
                    vs = vm.video_scores(tv, gen, rec.n_cond)
                    row.update({m: vs[m] for m in ("psnr", "ssim") if m in metrics})
                if "lpips" in metrics:
                    row["lpips"] = vm.lpips(tv[rec.n_cond :], gen[rec.n_cond :])
                if "fvd" in metrics:
                    feats[0].append(vm.i3d_features(tv))
                    feats[1].append(vm.i3d_features(gen))
            split_rows.append(row)
        s = {
            "n": len(split_rows),
            "abnormal": float(np.mean([r["abnormal"] for r in split_rows])),
            "checks": {c: float(np.mean([r[c] for r in split_rows])) for c in CHECKS},
        }
        for m in ("psnr", "ssim", "lpips"):
            if m in metrics:
                s[m] = float(np.mean([r[m] for r in split_rows]))
        if "fvd" in metrics:
            s["fvd"] = vm.fvd(np.concatenate(feats[0]), np.concatenate(feats[1]))
        summary[split] = s
        rows += split_rows
    return {"splits": summary, "videos": rows}
