"""Parse videos into per-object tracks by colour membership.

A frame rendered with area-coverage anti-aliasing holds, at every pixel,
``p = bg + sum_k a_k (c_k - bg)`` where ``a_k`` is the fraction of the pixel covered by
object ``k`` of colour ``c_k``. Decomposing ``bg - p`` over the known object colours gives
those fractions back ("membership"), so the membership-weighted centroid is the exact
centroid of the covered area, up to uint8 quantisation: that is what lets the parse
floor sit far below the paper's threshold-and-centroid parse.

Each frame is parsed in two passes (one Numba kernel per batch of videos):

1. a coarse pass over a ``stride``-spaced grid finds where each colour (and any unknown
   colour) is, as bounding boxes;
2. a fine pass over the union of those boxes (each pixel once) decomposes every
   non-background pixel into memberships of the best single colour or, where two objects'
   anti-aliased edges meet, the best pair of colours; pixels no colour explains are
   counted as unknown colour (area and mean RGB).

From memberships: centroid (world units, y up), area, radius from area (by the parsed
shape), a shape label from the normalised second moment, visibility and whether the
object touches the frame border. Objects sharing a colour are tracked as one group
(each member gets the group centroid; see ``Tracks.shared_color``).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from evals.parse_kernels import _finalize, _parse_frames
from evals.shapes import blur_invariant_shapes
from physim import world

# Normalised second moment m2 / area of each shape (rotation invariant): a disc gives
# 1/(2 pi), a square 1/6, a ring of inner radius k*R gives (1 + k^2) / (2 pi (1 - k^2)).
_K = world.RING_INNER
MOMENT_RATIO = {
    "ball": 1.0 / (2.0 * np.pi),
    "square": 1.0 / 6.0,
    "ring": (1.0 + _K**2) / (2.0 * np.pi * (1.0 - _K**2)),
}
# Area of each shape per squared "radius" (half side for squares, outer radius for rings).
AREA_FACTOR = np.array([np.pi, 4.0, np.pi * (1.0 - _K**2)])


@dataclasses.dataclass(frozen=True)
class ParseConfig:
    """How frames are parsed.

    Attributes:
      stride: coarse-pass grid spacing in pixels; must be small enough that every object
        covers a grid point (2.8 px radius at stride 4). Capped at R / 32 so that at any
        resolution R a 0.3-unit object covers one.
      bg_tol: max per-channel deviation (0-255) from the background still called background.
      res_tol: max RGB residual (L2, 0-255 units) of a colour decomposition; worse pixels
        are unknown colour.
      min_area: pixels of membership below which an object is not visible in a frame.
      margin: extra pixels around each coarse box in the fine pass.
      lossy: membership of a pixel explained by one colour from its luma, and the colour
        from its chroma direction (cosine to the colour's at least ``cos_tol``): lossy codecs
        keep luma at full resolution but blur and shift chroma (yuv420).
      cos_tol: see ``lossy``.
      min_memb: memberships below this are dropped (codec noise far from any object would
        otherwise weigh on second moments).
      coarse_memb: membership a coarse sample needs to place an object's box there.
      temporal: after the first frame, look for known objects in a box predicted from the
        previous two frames plus a sparse grid (every fourth grid row, four rotating
        phases that together make the full grid),
        and fall back to the full grid for that frame if any object reaches its box's
        edge, an object is lost, or an unknown colour shows. Results equal the full-grid
        parse whenever the fast attempt is kept, up to float round-off where boxes
        overlap or differ (rows summed in another order: ~1e-15 units measured on
        collision videos); it only saves work.
      blur_invariant_shapes: relabel each visible object's shape per frame from moments a
        blur does not change (:mod:`evals.shapes`) in frames where it is in view; the
        radius follows the label. False: the second-moment label only, which reads a
        ball softened by 0.5 px as a square.
    """

    stride: int = 4
    bg_tol: int = 0
    res_tol: float = 24.0
    min_area: float = 2.0
    margin: int = 2
    lossy: bool = False
    cos_tol: float = 0.85
    min_memb: float = 0.0
    coarse_memb: float = 0.0
    temporal: bool = True
    blur_invariant_shapes: bool = True


# Presets: lossless renders, and lossy inputs (mp4, VAE decodes, model samples).
PARSE_PRESETS: dict[str, ParseConfig] = {
    "exact": ParseConfig(),
    "lossy": ParseConfig(
        bg_tol=8, res_tol=40.0, min_area=4.0, lossy=True, min_memb=0.02, coarse_memb=0.25
    ),
}


@dataclasses.dataclass(frozen=True)
class Tracks:
    """Per-object tracks parsed from one video of T frames, N objects.

    Attributes:
      positions: (T, N, 2) float64 world units (y up); NaN where not visible.
      areas: (T, N) float64 world units² of membership.
      radii: (T, N) float64 world units from the area by the parsed shape (half side for
        squares, outer radius for rings); NaN where not visible.
      moments: (T, N) float64 normalised second moment m2 / area (see ``MOMENT_RATIO``).
      shapes: (T, N) int32 shape codes (:data:`physim.world.SHAPES`), -1 where not visible.
      visible: (T, N) bool, membership area above ``min_area``.
      in_view: (T, N) bool, visible and not touching the frame border.
      unknown_area: (T,) float64 world units² of pixels no object colour explains.
      unknown_rgb: (T, 3) float64 mean colour of those pixels (NaN where none).
      colors: (N, 3) uint8 object colours used.
      shared_color: (N,) bool, objects whose colour another object shares (group centroid).
      resolution: frame side in pixels.
    """

    positions: np.ndarray
    areas: np.ndarray
    radii: np.ndarray
    moments: np.ndarray
    shapes: np.ndarray
    visible: np.ndarray
    in_view: np.ndarray
    unknown_area: np.ndarray
    unknown_rgb: np.ndarray
    colors: np.ndarray
    shared_color: np.ndarray
    resolution: int

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_objects(self) -> int:
        return int(self.positions.shape[1])


def _palette_setup(colors: np.ndarray, background):
    """Unique colours (K,3) float64, object→colour index (N,), pair inverse Gram (K,K,2,2)."""
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    bg = np.asarray(background, dtype=np.float64).reshape(3)
    return _palette_cached(colors.tobytes(), bg.tobytes())


@functools.lru_cache(maxsize=256)
def _palette_cached(colors_b: bytes, bg_b: bytes):
    colors = np.frombuffer(colors_b, dtype=np.uint8).reshape(-1, 3)
    bg = np.frombuffer(bg_b, dtype=np.float64)
    uniq, inverse = np.unique(colors, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    cols = uniq.astype(np.float64)
    if np.any(np.all(cols == bg, axis=1)):
        raise ValueError("an object colour equals the background colour")
    k_n = cols.shape[0]
    gram_inv = np.zeros((k_n, k_n, 2, 2))
    e = bg[None] - cols
    for i in range(k_n):
        for j in range(i + 1, k_n):
            g = np.array([[e[i] @ e[i], e[i] @ e[j]], [e[j] @ e[i], e[j] @ e[j]]])
            if abs(np.linalg.det(g)) > 1e-6 * g[0, 0] * g[1, 1]:
                gram_inv[i, j] = np.linalg.inv(g)
    return bg, cols, inverse, gram_inv


def parse_batch(
    frames: np.ndarray,
    colors,
    *,
    background=world.PALETTE[world.BACKGROUND],
    config: ParseConfig | str = "exact",
    luma: np.ndarray | None = None,
) -> list[Tracks]:
    """Parse a batch of videos with the same object colours.

    Args:
      frames: (B, T, R, R, 3) uint8 videos (row 0 at the top, world y up).
      colors: (N, 3) uint8 RGB of the N objects (from the truth record).
      background: RGB of the background.
      config: a :class:`ParseConfig` or a preset name from :data:`PARSE_PRESETS`.
      luma: optional (B, T, R, R) luma (0-255, BT.601 full range) straight from a codec's
        luma plane (see :func:`evals.run.decode_mp4_luma`); with a lossy config it gives
        the membership of single-colour pixels, avoiding yuv420 chroma and RGB clipping.

    Returns:
      One :class:`Tracks` per video.
    """
    cfg = PARSE_PRESETS[config] if isinstance(config, str) else config
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (B, T, R, R, 3), got {frames.dtype} {frames.shape}")
    nb, nt, h, w_, _ = frames.shape
    if h != w_:
        raise ValueError(f"frames must be square, got {h}x{w_}")
    if cfg.stride < 1:
        raise ValueError(f"stride must be >= 1, got {cfg.stride}")
    frames = np.ascontiguousarray(frames)
    bg, cols, obj_col, gram_inv = _palette_setup(colors, background)
    k_n = cols.shape[0]
    acc = np.zeros((nb, nt, k_n, 10))
    unk = np.zeros((nb, nt, 5))
    if luma is None:
        luma = np.zeros((0, 0, 0, 0), np.float32)
    else:
        luma = np.ascontiguousarray(luma, dtype=np.float32)
        if luma.shape != frames.shape[:4]:
            raise ValueError(f"luma must be (B, T, R, R) {frames.shape[:4]}, got {luma.shape}")
        if not cfg.lossy:
            raise ValueError("a luma plane is only used by a lossy parse config")
    _parse_frames(
        frames,
        luma,
        bg,
        cols,
        gram_inv,
        max(1, min(cfg.stride, h // 32)),  # objects of 0.3 units still cover grid points
        cfg.bg_tol,
        float(cfg.res_tol) ** 2,
        cfg.margin,
        cfg.lossy,
        cfg.cos_tol,
        cfg.min_memb,
        cfg.coarse_memb,
        cfg.temporal,
        acc,
        unk,
    )
    out = _tracks_from_acc(acc, unk, cols, obj_col, h, cfg)
    if cfg.blur_invariant_shapes:
        for b, tr in enumerate(out):
            _relabel_shapes(tr, frames[b], bg, cfg)
    return out


def _relabel_shapes(tr: Tracks, frames: np.ndarray, bg, cfg: ParseConfig) -> None:
    """Replace ``tr``'s shape labels (and the radii that follow them) by the blur-invariant
    ones of :func:`evals.shapes.blur_invariant_shapes`, where it gives one."""
    codes = blur_invariant_shapes(frames, tr.positions, tr.areas, tr.in_view, tr.colors, bg,
                                  bg_tol=cfg.bg_tol, res_tol=cfg.res_tol,
                                  skip=tr.shared_color)  # fmt: skip
    new = codes >= 0
    if new.any():
        tr.shapes[new] = codes[new]
        tr.radii[new] = np.sqrt(tr.areas[new] / AREA_FACTOR[codes[new]])


def parse(frames: np.ndarray, colors, **kwargs) -> Tracks:
    """Parse one video (T, R, R, 3) uint8 into :class:`Tracks` (see :func:`parse_batch`)."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, R, R, 3), got shape {frames.shape}")
    if kwargs.get("luma") is not None:
        kwargs["luma"] = np.asarray(kwargs["luma"])[None]
    return parse_batch(frames[None], colors, **kwargs)[0]


def parse_record(frames: np.ndarray, record, **kwargs) -> Tracks:
    """Parse one video using the colours of a :class:`physim.record.Record`."""
    return parse(frames, record.objects.rgb, **kwargs)


def _tracks_from_acc(acc, unk, cols, obj_col, res, cfg: ParseConfig) -> list[Tracks]:
    """Per-object tracks of every video from the kernel's accumulators (B, T, K, 10)."""
    if world.WORLD_SIZE != 10.0:  # _finalize hard-codes the box size
        raise AssertionError("world size changed; update evals.parse._finalize")
    nb, nt = acc.shape[:2]
    n = obj_col.shape[0]
    pos = np.empty((nb, nt, n, 2))
    area, rad, mom = np.empty((nb, nt, n)), np.empty((nb, nt, n)), np.empty((nb, nt, n))
    shp = np.empty((nb, nt, n), dtype=np.int32)
    vis, inv = np.empty((nb, nt, n), dtype=bool), np.empty((nb, nt, n), dtype=bool)
    unk_area, unk_rgb = np.empty((nb, nt)), np.empty((nb, nt, 3))
    obj_col = np.ascontiguousarray(obj_col, dtype=np.int64)
    _finalize(acc, unk, obj_col, res, cfg.min_area, _LOG_REF, AREA_FACTOR, pos, area, rad, mom,
              shp, vis, inv, unk_area, unk_rgb)  # fmt: skip
    counts = np.bincount(obj_col, minlength=cols.shape[0])
    colors = cols[obj_col].astype(np.uint8)
    shared = counts[obj_col] > 1
    res = int(res)
    # Same fields as Tracks(...), without the frozen dataclass's per-field __init__ cost
    # (a batch of short videos creates many of them).
    out = []
    for b in range(nb):
        tr = object.__new__(Tracks)
        tr.__dict__.update(
            positions=pos[b], areas=area[b], radii=rad[b], moments=mom[b], shapes=shp[b],
            visible=vis[b], in_view=inv[b], unknown_area=unk_area[b], unknown_rgb=unk_rgb[b],
            colors=colors, shared_color=shared, resolution=res,
        )  # fmt: skip
        out.append(tr)
    return out


_LOG_REF = np.log(np.array([MOMENT_RATIO[s] for s in world.SHAPES]))
