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

import numpy as np

from evals import scene_checks
from evals import scene_parse as sp
from evals.scene_checks import CHECKS
from physim import world

__all__ = [
    "CHECKS", "PAPER_COUNTS", "SCENE_PRESETS", "SceneConfig", "SceneParse", "SceneReference",
    "check", "check_video", "parse_scene", "reference", "score",
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """Parsing and tolerances, in px and px² of the video. The absolute px² allowances
    (``min_blob``, ``area_px``, ``unknown_px``, ``static_px``, ``pen_px``) are given at
    128² and scale linearly with the resolution (they cover edge effects).

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
      unknown_px: unknown-colour area tolerated per frame (at least a speck's area).
      static_frac, static_px: static mass lost or stray black tolerated: fraction of the
        smallest static body's area plus an absolute allowance (contact edges).
      pen_px: overlap area of dynamic on static tolerated per frame.
      tunnel: static membership that counts as "inside" a static object on a path.
      jump_factor, jump_px: multiple of the free-fall speed bound, and extra pixels.
      wall_depth: world units a body may sink into a wall for a frame (pymunk's contacts
        are soft: a bar landing flat sank 0.11 in one of ~1000 truth videos checked), so a blob on
        the frame border may miss that much per border pixel of area and of extent.
      speck_frac: blobs smaller than this fraction of the smallest object of their colour
        are specks (codec noise), not objects, and are left out of the accounting.
      deadband: per-pixel membership differences ignored by the static and overlap sums
        (pixel noise would otherwise add up over the many pixels of static objects).
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
    wall_depth: float = 0.12
    speck_frac: float = 0.1
    deadband: float = 0.0
    confine: float = 0.0
    calibrate: bool = False


SCENE_PRESETS: dict[str, SceneConfig] = {
    "exact": SceneConfig(),
    # mp4 / VAE decodes / model samples: noisy colours and soft edges. Checked on truth
    # through H.264 round trips (0 of 140 flagged at 128², 0 of 24 at 256²; at 64² thin
    # bars do not survive chroma subsampling: 10 of 60) and pixel noise up to sigma 8
    # with a 3-tap blur at 128² (0 of 20).
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
        speck_frac=0.5,
        deadband=0.15,
        confine=0.4,
        calibrate=True,
    ),
}


REFERENCE_RESOLUTION = 128  # the px and px² tolerances are given at this resolution


def _config(config, resolution: int = REFERENCE_RESOLUTION) -> SceneConfig:
    """The config (preset name or instance) with its px² allowances scaled to
    ``resolution``: they cover edge effects (contacts, codec ringing), which grow with
    the objects' perimeters in pixels, i.e. linearly with the resolution."""
    if not isinstance(config, SceneConfig):
        try:
            config = SCENE_PRESETS[config]
        except KeyError:
            known = list(SCENE_PRESETS)
            raise ValueError(f"unknown scene config {config!r}; known: {known}") from None
    f = resolution / REFERENCE_RESOLUTION
    return dataclasses.replace(
        config,
        min_blob=config.min_blob * f,
        area_px=config.area_px * f,
        unknown_px=config.unknown_px * f,
        static_px=config.static_px * f,
        pen_px=config.pen_px * f,
    )


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

    cfg = _config(config, resolution)
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
    cfg = _config(config, ref.resolution)
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


def check(parsed: SceneParse, ref: SceneReference, config: SceneConfig | str = "exact") -> dict:
    """Abnormality flags of one parsed scene video (see the module doc for the checks).

    Returns:
      dict with a bool per name in :data:`CHECKS`, ``abnormal`` (any), ``first_frame``
      ({check: first flagged frame}), ``frames`` ({check: flagged frames}) and the
      largest measured quantity of some checks (``*_max``: px² or px at the video's
      resolution; ``jump_ratio_max`` is the largest move over its bound).
    """
    return scene_checks.run(parsed, ref, _config(config, ref.resolution))


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
        averaged; LPIPS: the same frames; FVD: I3D features of whole videos, per split).
        FVD depends on the number of videos: compare FVDs only at equal counts.
      counts: {split: n} to require and use exactly the first n videos of a split
        (the paper: :data:`PAPER_COUNTS`; it took every second of its 1000
        out-of-template videos, so pick such a subset before calling); raises
        ``ValueError`` when a split has fewer.
      truth: optional sequence of truth videos (same shapes as ``videos``); rendered from
        the records at the videos' resolution when None.

    Returns:
      ``{"splits": {split: summary}, "videos": [per-video row]}``; a summary holds ``n``,
      ``abnormal`` (rate of videos with any check flagged: the automatic stand-in for the
      paper's human "abnormal ratio"), ``checks`` ({check: rate}) and the mean of each
      video metric (``fvd`` per split). Splits come in-template, out-of-template first.
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
    groups: dict[str, list[int]] = {s: [] for s in SPLITS}
    for i, r in enumerate(records):
        groups.setdefault(r.split, []).append(i)
    groups = {s: idx for s, idx in groups.items() if idx}
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
