"""Pixel-level parsing of multi-object scene videos: colour memberships, blobs, distances.

Combinatorial (PHYRE-like) scenes hold many objects that share a colour (every dynamic
object is gray, every static one black), so objects cannot be told apart by colour the
way :mod:`evals.parse` tracks red and blue balls. This module gives the per-pixel
material: each pixel ``p`` of a frame rendered with area-coverage anti-aliasing is
``bg + sum_k a_k (c_k - bg)``; decomposing ``bg - p`` over the K palette colours (best
single colour, else best pair where two edges meet, else "unknown colour") gives
membership maps ``a_k`` in [0, 1]. Connected blobs of each colour and their moments,
and Euclidean distance transforms, are what :mod:`evals.scenes` scores.

Everything here is in pixel units (row, col; pixel centres at +0.5); :mod:`evals.scenes`
converts to world units.
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

_FAR = 1e20  # "no pixel" in squared distance transforms


@dataclasses.dataclass(frozen=True)
class Memberships:
    """Colour memberships of a video of T frames, R x R pixels, K palette colours.

    Attributes:
      memb: (T, R, R, K) float32 covered fraction of each pixel by colour k.
      unknown: (T, R, R) float32 weight (0..1) of pixels no palette colour explains.
      colors: (K, 3) uint8 palette used.
    """

    memb: np.ndarray
    unknown: np.ndarray
    colors: np.ndarray

    @property
    def resolution(self) -> int:
        return int(self.memb.shape[1])


@numba.njit(cache=True)
def _pixel(p0, p1, p2, bg, cols, allowed, gram_inv, res_tol2, out):
    """Memberships of one pixel into ``out (K,)`` over the ``allowed`` colours; returns
    the unknown weight (0..1)."""
    k_n = cols.shape[0]
    d = np.empty(3)
    d[0], d[1], d[2] = bg[0] - p0, bg[1] - p1, bg[2] - p2
    for k in range(k_n):
        out[k] = 0.0
    best_k, best_r, best_a = -1, 1e30, 0.0
    for k in range(k_n):
        if not allowed[k]:
            continue
        e = bg - cols[k]
        a = min(max((d @ e) / (e @ e), 0.0), 1.0)
        r = d - a * e
        rr = r @ r
        if rr < best_r:
            best_k, best_r, best_a = k, rr, a
    if best_r <= res_tol2:
        out[best_k] = best_a
        return 0.0
    best_r, best_i, best_j, best_ai, best_aj = 1e30, -1, -1, 0.0, 0.0
    for i in range(k_n):
        ei = bg - cols[i]
        for j in range(i + 1, k_n):
            if not (allowed[i] and allowed[j]):
                continue
            ej = bg - cols[j]
            bi, bj = d @ ei, d @ ej
            ai = gram_inv[i, j, 0, 0] * bi + gram_inv[i, j, 0, 1] * bj
            aj = gram_inv[i, j, 1, 0] * bi + gram_inv[i, j, 1, 1] * bj
            if ai < 0.0 or aj < 0.0 or ai + aj > 1.05:
                continue
            r = d - ai * ei - aj * ej
            rr = r @ r
            if rr < best_r:
                best_r, best_i, best_j, best_ai, best_aj = rr, i, j, ai, aj
    if best_r <= res_tol2:
        out[best_i], out[best_j] = best_ai, best_aj
        return 0.0
    return min(max(abs(d[0]), abs(d[1]), abs(d[2])) / 255.0, 1.0)


@numba.njit(cache=True)
def _memberships(frames, bg, cols, gram_inv, bg_tol, res_tol2, memb, unk):
    nt, h, w = frames.shape[0], frames.shape[1], frames.shape[2]
    buf = np.zeros(cols.shape[0])
    allowed = np.ones(cols.shape[0], dtype=np.bool_)
    for t in range(nt):
        for r in range(h):
            for c in range(w):
                p0, p1, p2 = (
                    float(frames[t, r, c, 0]),
                    float(frames[t, r, c, 1]),
                    float(frames[t, r, c, 2]),
                )
                if (
                    abs(p0 - bg[0]) <= bg_tol
                    and abs(p1 - bg[1]) <= bg_tol
                    and abs(p2 - bg[2]) <= bg_tol
                ):
                    continue
                unk[t, r, c] = _pixel(p0, p1, p2, bg, cols, allowed, gram_inv, res_tol2, buf)
                for k in range(cols.shape[0]):
                    memb[t, r, c, k] = buf[k]


@numba.njit(cache=True)
def _confine(frames, bg, cols, gram_inv, res_tol2, thr, rule, memb, unk):
    """Re-decompose, without that colour, pixels holding a faint colour k (membership
    < thr) where ``rule[k]`` forbids it: 0 unless an 8-neighbour is solidly k (>= thr),
    1 allowed, 2 forbidden."""
    nt, h, w, k_n = memb.shape
    solid = np.zeros((h, w, k_n), dtype=np.bool_)
    allowed = np.ones(k_n, dtype=np.bool_)
    buf = np.zeros(k_n)
    for t in range(nt):
        for r in range(h):
            for c in range(w):
                for k in range(k_n):
                    solid[r, c, k] = False
                    for dr in range(-1, 2):
                        for dc in range(-1, 2):
                            rr, cc = r + dr, c + dc
                            if 0 <= rr < h and 0 <= cc < w and memb[t, rr, cc, k] >= thr:
                                solid[r, c, k] = True
        for r in range(h):
            for c in range(w):
                redo = False
                for k in range(k_n):
                    ok = rule[k, r, c] == 1 or (rule[k, r, c] == 0 and solid[r, c, k])
                    allowed[k] = not (0.0 < memb[t, r, c, k] < thr) or ok
                    redo = redo or not allowed[k]
                if not redo:
                    continue
                p = frames[t, r, c]
                unk[t, r, c] = _pixel(float(p[0]), float(p[1]), float(p[2]), bg, cols, allowed,
                                      gram_inv, res_tol2, buf)  # fmt: skip
                for k in range(k_n):
                    memb[t, r, c, k] = buf[k]


def memberships(frames, colors, background=(255, 255, 255), *, bg_tol=0, res_tol=24.0,
                confine=0.0, faint=None):  # fmt: skip
    """Colour memberships of frames.

    Args:
      frames: (T, R, R, 3) uint8 video (row 0 at the top).
      colors: (K, 3) uint8 palette (distinct, none equal to the background).
      background: RGB of the background.
      bg_tol: per-channel deviation (0..255) from the background still called background.
      res_tol: max RGB residual (L2, 0..255 units) of a single- or two-colour explanation.
      confine: if > 0, a colour may hold a pixel with membership below ``confine`` only
        next to a pixel it holds at least that much (an anti-aliased rim borders its solid
        body); other such pixels are decomposed again without it. For lossy frames, where
        e.g. a desaturated light gray pixel is also "a fifth of black".
      faint: optional {colour index: (R, R) bool} where that colour's faint pixels are
        allowed (and nowhere else), replacing the neighbour rule (e.g. static objects'
        rims lie where the first frame's static objects are).

    Returns:
      :class:`Memberships`.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, R, R, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1] != frames.shape[2]:
        raise ValueError(f"frames must be square, got {frames.shape[1]}x{frames.shape[2]}")
    cols = np.asarray(colors, dtype=np.float64).reshape(-1, 3)
    bg = np.asarray(background, dtype=np.float64).reshape(3)
    if len(np.unique(cols, axis=0)) != len(cols) or np.any(np.all(cols == bg, axis=1)):
        raise ValueError("palette colours must be distinct and differ from the background")
    k_n = cols.shape[0]
    e = bg[None] - cols
    gram_inv = np.zeros((k_n, k_n, 2, 2))
    for i in range(k_n):
        for j in range(i + 1, k_n):
            g = np.array([[e[i] @ e[i], e[i] @ e[j]], [e[j] @ e[i], e[j] @ e[j]]])
            if abs(np.linalg.det(g)) > 1e-6 * g[0, 0] * g[1, 1]:
                gram_inv[i, j] = np.linalg.inv(g)
    t, r = frames.shape[:2]
    memb = np.zeros((t, r, r, k_n), dtype=np.float32)
    unk = np.zeros((t, r, r), dtype=np.float32)
    _memberships(np.ascontiguousarray(frames), bg, cols, gram_inv, float(bg_tol),
                 float(res_tol) ** 2, memb, unk)  # fmt: skip
    if confine > 0:
        rule = np.zeros((k_n, r, r), dtype=np.uint8)
        for k, region in (faint or {}).items():
            rule[k] = np.where(region, 1, 2)
        _confine(np.ascontiguousarray(frames), bg, cols, gram_inv, float(res_tol) ** 2,
                 float(confine), rule, memb, unk)  # fmt: skip
    return Memberships(memb=memb, unknown=unk, colors=cols.astype(np.uint8))


@numba.njit(cache=True)
def _label(mask, labels):
    """8-connected labels of ``mask`` (H, W) into ``labels`` (-1 background); returns count."""
    h, w = mask.shape
    stack = np.empty((h * w, 2), dtype=np.int64)
    n = 0
    for r0 in range(h):
        for c0 in range(w):
            if not mask[r0, c0] or labels[r0, c0] >= 0:
                continue
            labels[r0, c0] = n
            top = 1
            stack[0, 0], stack[0, 1] = r0, c0
            while top > 0:
                top -= 1
                r, c = stack[top, 0], stack[top, 1]
                for dr in range(-1, 2):
                    for dc in range(-1, 2):
                        rr, cc = r + dr, c + dc
                        if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and labels[rr, cc] < 0:
                            labels[rr, cc] = n
                            stack[top, 0], stack[top, 1] = rr, cc
                            top += 1
            n += 1
    return n


@numba.njit(cache=True)
def _attach_faint(weight, labels):
    """Give unlabelled pixels with some membership the label of a labelled 8-neighbour
    (the faint anti-aliased rim of a blob belongs to it; its area counts)."""
    h, w = weight.shape
    src = labels.copy()
    for r in range(h):
        for c in range(w):
            if src[r, c] >= 0 or weight[r, c] <= 0.0:
                continue
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < h and 0 <= cc < w and src[rr, cc] >= 0 and labels[r, c] < 0:
                        labels[r, c] = src[rr, cc]


@dataclasses.dataclass(frozen=True)
class Blobs:
    """Connected blobs of one colour in one frame (pixel units).

    Attributes:
      labels: (R, R) int32 blob index per pixel, -1 outside every blob.
      area: (M,) membership-weighted area, px².
      centroid: (M, 2) membership-weighted centroid (col, row), px.
      extents: (M, 2) RMS extents along the principal axes (major, minor), px: square roots
        of the eigenvalues of the covariance, with the pixel's own spread (1/12 px² per
        axis) removed.
      mixed: (M,) pixels of the blob shared with another colour (``other > 0``). Where two
        colours' edges meet in a pixel, the one drawn first loses ``a1 * a2 <= 1/4`` of
        its coverage to the blend, so these bound the area lost at contacts.
      border: (M,) pixels of the blob on the frame's outermost rows and columns (where
        part of it may lie outside the frame).
      angle: (M,) direction of the major axis, radians in (-pi/2, pi/2] from the +col axis
        towards +row (meaningless for a round blob: see ``extents``).
    """

    labels: np.ndarray
    area: np.ndarray
    centroid: np.ndarray
    extents: np.ndarray
    mixed: np.ndarray
    border: np.ndarray
    angle: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.area.shape[0])


def blobs(weight: np.ndarray, support: float = 0.1, min_area: float = 0.0, other=None) -> Blobs:
    """8-connected blobs of pixels with ``weight > support`` and their moments; fainter
    pixels next to a blob join it (its anti-aliased rim).

    Args:
      weight: (R, R) membership of one colour in one frame.
      support: membership above which a pixel belongs to a blob.
      min_area: blobs of smaller area (px²) are dropped (noise specks).
      other: (R, R) membership of every other colour (for :attr:`Blobs.mixed`).
    """
    weight = np.asarray(weight, dtype=np.float64)
    labels = np.full(weight.shape, -1, dtype=np.int32)
    n = _label(weight > support, labels)
    _attach_faint(weight, labels)
    idx = labels.ravel()
    on = idx >= 0
    w, idx = weight.ravel()[on], idx[on]
    rows, cols = np.divmod(np.nonzero(on)[0], weight.shape[1])
    x, y = cols + 0.5, rows + 0.5

    def s(v, w=w):
        return np.bincount(idx, weights=w * v, minlength=n)

    shared = np.zeros(idx.shape) if other is None else np.asarray(other).ravel()[on] > 0

    area = s(1.0)
    keep = area >= max(min_area, 1e-12)
    safe = np.where(area > 0, area, 1.0)
    cx, cy = s(x) / safe, s(y) / safe
    cxx = s(x * x) / safe - cx**2 - 1 / 12
    cyy = s(y * y) / safe - cy**2 - 1 / 12
    cxy = s(x * y) / safe - cx * cy
    half_tr, det = (cxx + cyy) / 2, cxx * cyy - cxy**2
    disc = np.sqrt(np.maximum(half_tr**2 - det, 0.0))
    ext = np.sqrt(np.maximum(np.stack([half_tr + disc, half_tr - disc], axis=-1), 0.0))
    remap = np.full(n + 1, -1, dtype=np.int32)
    remap[:n][keep] = np.arange(int(keep.sum()), dtype=np.int32)
    labels = remap[labels]  # -1 stays -1 (index n)
    mixed = s(1.0, shared.astype(np.float64))
    h, wd = weight.shape
    ring = (rows == 0) | (rows == h - 1) | (cols == 0) | (cols == wd - 1)
    border = s(1.0, ring.astype(np.float64))
    centroid = np.stack([cx, cy], -1)
    angle = 0.5 * np.arctan2(2 * cxy, cxx - cyy)
    return Blobs(labels, area[keep], centroid[keep], ext[keep], mixed[keep], border[keep],
                 angle[keep])


@numba.njit(cache=True)
def _dt1d(f, n, d, v, z):
    """Felzenszwalb-Huttenlocher 1-D squared distance transform of samples f[:n]."""
    k = 0
    v[0] = 0
    z[0], z[1] = -np.inf, np.inf
    for q in range(1, n):
        s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2.0 * (q - v[k]))
        while s <= z[k]:
            k -= 1
            s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2.0 * (q - v[k]))
        k += 1
        v[k] = q
        z[k], z[k + 1] = s, np.inf
    k = 0
    for q in range(n):
        while z[k + 1] < q:
            k += 1
        d[q] = (q - v[k]) ** 2 + f[v[k]]


@numba.njit(cache=True)
def _edt_sq(mask):
    h, w = mask.shape
    n = max(h, w)
    f = np.empty(n)
    d = np.empty(n)
    v = np.empty(n, dtype=np.int64)
    z = np.empty(n + 1)
    out = np.empty((h, w))
    for c in range(w):
        for r in range(h):
            f[r] = 0.0 if mask[r, c] else _FAR
        _dt1d(f, h, d, v, z)
        for r in range(h):
            out[r, c] = d[r]
    for r in range(h):
        for c in range(w):
            f[c] = out[r, c]
        _dt1d(f, w, d, v, z)
        for c in range(w):
            out[r, c] = d[c]
    return out


def distance_to(mask: np.ndarray) -> np.ndarray:
    """(R, R) Euclidean distance (px) from each pixel centre to the nearest True pixel
    centre of ``mask``; ``inf`` everywhere when ``mask`` is empty."""
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return np.sqrt(_edt_sq(mask))


def bilinear(img: np.ndarray, colrow: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``img`` (R, R) at continuous pixel points ``colrow`` (P, 2)."""
    h, w = img.shape
    u = np.clip(colrow[:, 0] - 0.5, 0, w - 1)
    v = np.clip(colrow[:, 1] - 0.5, 0, h - 1)
    c0, r0 = np.minimum(u.astype(int), w - 2), np.minimum(v.astype(int), h - 2)
    fu, fv = u - c0, v - r0
    return (
        img[r0, c0] * (1 - fu) * (1 - fv)
        + img[r0, c0 + 1] * fu * (1 - fv)
        + img[r0 + 1, c0] * (1 - fu) * fv
        + img[r0 + 1, c0 + 1] * fu * fv
    )
