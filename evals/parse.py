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

import numba
import numpy as np

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
        previous two frames plus a sparse grid (twice the stride, four rotating phases),
        and fall back to the full grid for that frame if any object reaches its box's
        edge, an object is lost, or an unknown colour shows. Results equal the full-grid
        parse whenever the fast attempt is kept; it only saves work.
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


@numba.njit(cache=True)
def _decompose(p0, p1, p2, bg, cols, gram_inv, res_tol2, out):
    """Memberships of one pixel into ``out (K,)``; returns the unexplained weight (0..1)."""
    k_n = cols.shape[0]
    d0 = bg[0] - float(p0)
    d1 = bg[1] - float(p1)
    d2 = bg[2] - float(p2)
    for k in range(k_n):
        out[k] = 0.0
    best_k = -1
    best_r = 1e30
    best_a = 0.0
    for k in range(k_n):
        e0 = bg[0] - cols[k, 0]
        e1 = bg[1] - cols[k, 1]
        e2 = bg[2] - cols[k, 2]
        ee = e0 * e0 + e1 * e1 + e2 * e2
        if ee == 0.0:
            continue
        a = (d0 * e0 + d1 * e1 + d2 * e2) / ee
        a = min(max(a, 0.0), 1.0)
        r0 = d0 - a * e0
        r1 = d1 - a * e1
        r2 = d2 - a * e2
        r = r0 * r0 + r1 * r1 + r2 * r2
        if r < best_r:
            best_r = r
            best_k = k
            best_a = a
    if best_r <= res_tol2:
        out[best_k] = best_a
        return 0.0
    # Two objects' edges in one pixel: best non-negative pair.
    best_pr = 1e30
    best_i = -1
    best_j = -1
    best_ai = 0.0
    best_aj = 0.0
    for i in range(k_n):
        ei0 = bg[0] - cols[i, 0]
        ei1 = bg[1] - cols[i, 1]
        ei2 = bg[2] - cols[i, 2]
        for j in range(i + 1, k_n):
            if gram_inv[i, j, 0, 0] == 0.0 and gram_inv[i, j, 1, 1] == 0.0:
                continue
            ej0 = bg[0] - cols[j, 0]
            ej1 = bg[1] - cols[j, 1]
            ej2 = bg[2] - cols[j, 2]
            bi = d0 * ei0 + d1 * ei1 + d2 * ei2
            bj = d0 * ej0 + d1 * ej1 + d2 * ej2
            ai = gram_inv[i, j, 0, 0] * bi + gram_inv[i, j, 0, 1] * bj
            aj = gram_inv[i, j, 1, 0] * bi + gram_inv[i, j, 1, 1] * bj
            if ai < 0.0 or aj < 0.0 or ai + aj > 1.05:
                continue
            r0 = d0 - ai * ei0 - aj * ej0
            r1 = d1 - ai * ei1 - aj * ej1
            r2 = d2 - ai * ei2 - aj * ej2
            r = r0 * r0 + r1 * r1 + r2 * r2
            if r < best_pr:
                best_pr = r
                best_i = i
                best_j = j
                best_ai = ai
                best_aj = aj
    if best_pr <= res_tol2:
        out[best_i] = best_ai
        out[best_j] = best_aj
        return 0.0
    # Unknown colour: weight by how far the pixel is from the background.
    m = max(abs(d0), max(abs(d1), abs(d2))) / 255.0
    return min(m, 1.0)


@numba.njit(cache=True)
def _decompose_lossy(p0, p1, p2, bg, cols, gram_inv, res_tol2, cos_tol, yl, out):
    """Like :func:`_decompose` for lossy frames: luma membership, chroma-direction colour.

    ``yl`` is the pixel's luma (0-255, BT.601) from the codec's own luma plane, or < 0 to
    compute it from the RGB values.

    The colour is the one whose direction from the background is closest to the pixel's
    (cosine >= ``cos_tol``); only when none is close is a pair of colours tried (both at
    least 10 %), then the pixel is unknown.
    """
    k_n = cols.shape[0]
    d0 = bg[0] - float(p0)
    d1 = bg[1] - float(p1)
    d2 = bg[2] - float(p2)
    dn = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    best_k = -1
    best_cos = -2.0
    for k in range(k_n):
        out[k] = 0.0
        e0 = bg[0] - cols[k, 0]
        e1 = bg[1] - cols[k, 1]
        e2 = bg[2] - cols[k, 2]
        en = np.sqrt(e0 * e0 + e1 * e1 + e2 * e2)
        if en == 0.0 or dn == 0.0:
            continue
        cs = (d0 * e0 + d1 * e1 + d2 * e2) / (dn * en)
        if cs > best_cos:
            best_cos = cs
            best_k = k
    if best_k >= 0 and best_cos >= cos_tol:
        e0 = bg[0] - cols[best_k, 0]
        e1 = bg[1] - cols[best_k, 1]
        e2 = bg[2] - cols[best_k, 2]
        le = 0.299 * e0 + 0.587 * e1 + 0.114 * e2
        if abs(le) < 20.0:  # a colour of about the background's luma: project instead
            a = (d0 * e0 + d1 * e1 + d2 * e2) / (e0 * e0 + e1 * e1 + e2 * e2)
        elif yl >= 0.0:
            a = (0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2] - yl) / le
        else:
            a = (0.299 * d0 + 0.587 * d1 + 0.114 * d2) / le
        out[best_k] = min(max(a, 0.0), 1.0)
        return 0.0
    u = _decompose(p0, p1, p2, bg, cols, gram_inv, res_tol2, out)
    n_pos = 0
    for k in range(k_n):
        if out[k] >= 0.1:
            n_pos += 1
    if u == 0.0 and n_pos == 2:
        return 0.0
    for k in range(k_n):
        out[k] = 0.0
    return min(max(abs(d0), max(abs(d1), abs(d2))) / 255.0, 1.0)


@numba.njit(cache=True)
def _parse_frames(
    frames, luma, bg, cols, gram_inv, stride, bg_tol, res_tol2, margin, lossy, cos_tol,
    min_memb, coarse_memb, temporal, acc, unk,
):  # fmt: skip
    """Accumulate memberships of frames (B, T, H, W, 3) uint8.

    acc (B, T, K, 10): w, sx, sy, sxx, syy, sxy, rmin, rmax, cmin, cmax (pixel units).
    unk (B, T, 5): weight, sum r, sum g, sum b, count.
    The hot loops only test for background and exact colours; anything else goes through
    :func:`_decompose`.
    """
    nb, nt, h, w_, _ = frames.shape
    k_n = cols.shape[0]
    use_luma = luma.shape[0] == nb
    memb = np.zeros(k_n)
    # Per-channel background tables: is value v within bg_tol of the background?
    okt = np.zeros((3, 256), dtype=np.bool_)
    for j in range(3):
        for v in range(256):
            okt[j, v] = abs(v - np.int64(bg[j])) <= bg_tol
    ok0, ok1, ok2 = okt[0], okt[1], okt[2]
    icols = np.empty((k_n, 3), dtype=np.uint8)
    for k in range(k_n):
        for j in range(3):
            icols[k, j] = np.uint8(cols[k, j])
    # Coarse samples: a stride grid anchored on the first and last rows and columns, so
    # that objects entering or leaving are seen as soon as they reach the border.
    rs = np.unique(np.append(np.arange(0, h, stride), h - 1))
    cs = np.unique(np.append(np.arange(0, w_, stride), w_ - 1))
    n_s = rs.size * cs.size
    sr = np.empty(n_s, dtype=np.int64)
    sc = np.empty(n_s, dtype=np.int64)
    i = 0
    for r in rs:
        for c in cs:
            sr[i] = r
            sc[i] = c
            i += 1
    # Sparse grids (twice the stride, four phases that together make the full grid) for
    # frames after the first, whose known objects are looked for where they were.
    stride2 = 2 * stride
    n_sp = np.zeros(4, dtype=np.int64)
    spr = np.empty((4, n_s), dtype=np.int64)
    spc = np.empty((4, n_s), dtype=np.int64)
    for ph in range(4):
        for r in range((ph // 2) * stride, h, stride2):
            for c in range((ph % 2) * stride, w_, stride2):
                spr[ph, n_sp[ph]] = r
                spc[ph, n_sp[ph]] = c
                n_sp[ph] += 1
    hits = np.empty(n_s, dtype=np.int64)
    pbox = np.zeros((k_n, 4), dtype=np.int64)
    box = np.zeros((k_n + 1, 4), dtype=np.int64)  # K colours then unknown; inclusive
    lo = np.zeros(k_n + 1, dtype=np.int64)
    hi = np.zeros(k_n + 1, dtype=np.int64)
    rw = np.zeros((k_n, 3))
    cmin = np.zeros(k_n, dtype=np.int64)
    cmax = np.zeros(k_n, dtype=np.int64)
    for b in range(nb):
        for t in range(nt):
            f = frames[b, t]
            # Fast attempt: sparse grid plus boxes predicted from the previous frame; it is
            # kept only if no object reaches the edge of its box (else: full grid).
            fast = temporal and t >= 1
            while True:
                for k in range(k_n + 1):
                    box[k, 0] = h
                    box[k, 1] = -1
                    box[k, 2] = w_
                    box[k, 3] = -1
                n_hit = 0
                if fast:
                    ph = t % 4
                    for i in range(n_sp[ph]):
                        r = spr[ph, i]
                        c = spc[ph, i]
                        if not (ok0[f[r, c, 0]] and ok1[f[r, c, 1]] and ok2[f[r, c, 2]]):
                            hits[n_hit] = i
                            n_hit += 1
                else:
                    for i in range(n_s):
                        r = sr[i]
                        c = sc[i]
                        if not (ok0[f[r, c, 0]] and ok1[f[r, c, 1]] and ok2[f[r, c, 2]]):
                            hits[n_hit] = i
                            n_hit += 1
                for q in range(n_hit):
                    if fast:
                        r = spr[t % 4, hits[q]]
                        c = spc[t % 4, hits[q]]
                    else:
                        r = sr[hits[q]]
                        c = sc[hits[q]]
                    u = _decompose(
                        f[r, c, 0], f[r, c, 1], f[r, c, 2], bg, cols, gram_inv, res_tol2, memb
                    )
                    for k in range(k_n + 1):
                        if (u > coarse_memb) if k == k_n else (memb[k] > coarse_memb):
                            box[k, 0] = min(box[k, 0], r)
                            box[k, 1] = max(box[k, 1], r)
                            box[k, 2] = min(box[k, 2], c)
                            box[k, 3] = max(box[k, 3], c)
                e = (stride2 if fast else stride) + margin
                for k in range(k_n + 1):
                    if box[k, 1] >= 0:
                        box[k, 0] = max(box[k, 0] - e, 0)
                        box[k, 1] = min(box[k, 1] + e, h - 1)
                        box[k, 2] = max(box[k, 2] - e, 0)
                        box[k, 3] = min(box[k, 3] + e, w_ - 1)
                if fast:
                    if box[k_n, 1] >= 0:  # unknown colour: look everywhere
                        fast = False
                        continue
                    for k in range(k_n):
                        a = acc[b, t - 1, k]
                        if a[7] < 0:
                            pbox[k, 1] = -1
                            continue
                        dr = 0.0
                        dc = 0.0
                        if t >= 2 and acc[b, t - 2, k, 0] > 0 and a[0] > 0:
                            p2 = acc[b, t - 2, k]
                            dc = a[1] / a[0] - p2[1] / p2[0]
                            dr = a[2] / a[0] - p2[2] / p2[0]
                        pm = 2 + int(0.25 * (abs(dr) + abs(dc)))
                        pbox[k, 0] = max(int(np.floor(a[6] + dr)) - pm, 0)
                        pbox[k, 1] = min(int(np.ceil(a[7] + dr)) + pm, h - 1)
                        pbox[k, 2] = max(int(np.floor(a[8] + dc)) - pm, 0)
                        pbox[k, 3] = min(int(np.ceil(a[9] + dc)) + pm, w_ - 1)
                        if box[k, 1] < 0 or (
                            box[k, 0] + e >= pbox[k, 0]
                            and box[k, 1] - e <= pbox[k, 1]
                            and box[k, 2] + e >= pbox[k, 2]
                            and box[k, 3] - e <= pbox[k, 3]
                        ):  # every hit where predicted: the tight box will do
                            for j in range(4):
                                box[k, j] = pbox[k, j]
                        else:
                            box[k, 0] = min(box[k, 0], pbox[k, 0])
                            box[k, 1] = max(box[k, 1], pbox[k, 1])
                            box[k, 2] = min(box[k, 2], pbox[k, 2])
                            box[k, 3] = max(box[k, 3], pbox[k, 3])
                for k in range(k_n):
                    for j in range(6):
                        acc[b, t, k, j] = 0.0
                for j in range(5):
                    unk[b, t, j] = 0.0
                for k in range(k_n):
                    acc[b, t, k, 6] = h
                    acc[b, t, k, 7] = -1
                    acc[b, t, k, 8] = w_
                    acc[b, t, k, 9] = -1
                # Fine pass: per row, the union of the boxes' column intervals (each pixel once).
                for r in range(h):
                    n_iv = 0
                    for k in range(k_n + 1):
                        if box[k, 1] >= 0 and box[k, 0] <= r <= box[k, 1]:
                            j = n_iv  # insertion by start column
                            while j > 0 and lo[j - 1] > box[k, 2]:
                                lo[j] = lo[j - 1]
                                hi[j] = hi[j - 1]
                                j -= 1
                            lo[j] = box[k, 2]
                            hi[j] = box[k, 3]
                            n_iv += 1
                    if n_iv == 0:
                        continue
                    for k in range(k_n):
                        rw[k, 0] = 0.0
                        rw[k, 1] = 0.0
                        rw[k, 2] = 0.0
                        cmin[k] = w_
                        cmax[k] = -1
                    c_next = 0
                    for iv in range(n_iv):
                        c = max(lo[iv], c_next)
                        c_end = hi[iv] + 1
                        while c < c_end:
                            p0 = f[r, c, 0]
                            p1 = f[r, c, 1]
                            p2 = f[r, c, 2]
                            if ok0[p0] and ok1[p1] and ok2[p2]:
                                c += 1
                                continue
                            exact = -1
                            for k in range(k_n):
                                if p0 == icols[k, 0] and p1 == icols[k, 1] and p2 == icols[k, 2]:
                                    exact = k
                                    break
                            if exact >= 0:  # a run of interior pixels, summed in closed form
                                c0 = c
                                c += 1
                                while (
                                    c < c_end
                                    and f[r, c, 0] == p0
                                    and f[r, c, 1] == p1
                                    and f[r, c, 2] == p2
                                ):
                                    c += 1
                                n = float(c - c0)
                                a0 = float(c0)
                                b1 = float(c - 1)
                                # sum of j and j^2 for j = c0..c-1; x = j + 0.5
                                s1 = n * (a0 + b1) / 2.0
                                sq = (
                                    b1 * (b1 + 1) * (2 * b1 + 1) - (a0 - 1) * a0 * (2 * a0 - 1)
                                ) / 6.0
                                rw[exact, 0] += n
                                rw[exact, 1] += s1 + 0.5 * n
                                rw[exact, 2] += sq + s1 + 0.25 * n
                                cmin[exact] = min(cmin[exact], c0)
                                cmax[exact] = max(cmax[exact], c - 1)
                                continue
                            x = c + 0.5
                            if lossy:
                                yl = luma[b, t, r, c] if use_luma else -1.0
                                u = _decompose_lossy(
                                    p0, p1, p2, bg, cols, gram_inv, res_tol2, cos_tol, yl, memb
                                )
                            else:
                                u = _decompose(p0, p1, p2, bg, cols, gram_inv, res_tol2, memb)
                            if u > 0.0:
                                unk[b, t, 0] += u
                                unk[b, t, 1] += p0
                                unk[b, t, 2] += p1
                                unk[b, t, 3] += p2
                                unk[b, t, 4] += 1.0
                                c += 1
                                continue
                            for k in range(k_n):
                                a = memb[k]
                                # Only inside the colour's own box: noise in another
                                # object's box must not weigh on this one's moments.
                                inside = box[k, 0] <= r <= box[k, 1] and box[k, 2] <= c <= box[k, 3]
                                if a > min_memb and inside:
                                    rw[k, 0] += a
                                    rw[k, 1] += a * x
                                    rw[k, 2] += a * x * x
                                    cmin[k] = min(cmin[k], c)
                                    cmax[k] = max(cmax[k], c)
                            c += 1
                        c_next = max(c_next, hi[iv] + 1)
                    y = r + 0.5
                    for k in range(k_n):
                        if cmax[k] < 0:
                            continue
                        acc[b, t, k, 0] += rw[k, 0]
                        acc[b, t, k, 1] += rw[k, 1]
                        acc[b, t, k, 2] += y * rw[k, 0]
                        acc[b, t, k, 3] += rw[k, 2]
                        acc[b, t, k, 4] += y * y * rw[k, 0]
                        acc[b, t, k, 5] += y * rw[k, 1]
                        acc[b, t, k, 6] = min(acc[b, t, k, 6], r)
                        acc[b, t, k, 7] = max(acc[b, t, k, 7], r)
                        acc[b, t, k, 8] = min(acc[b, t, k, 8], cmin[k])
                        acc[b, t, k, 9] = max(acc[b, t, k, 9], cmax[k])

                if fast:  # keep the fast attempt only if nothing reached its box's edge
                    bad = False
                    for k in range(k_n):
                        a = acc[b, t, k]
                        if acc[b, t - 1, k, 7] >= 0 and a[7] < 0:
                            bad = True  # an object seen before was not found
                        elif a[7] >= 0 and (
                            (a[6] <= box[k, 0] and box[k, 0] > 0)
                            or (a[7] >= box[k, 1] and box[k, 1] < h - 1)
                            or (a[8] <= box[k, 2] and box[k, 2] > 0)
                            or (a[9] >= box[k, 3] and box[k, 3] < w_ - 1)
                        ):
                            bad = True
                    if bad:
                        fast = False
                        continue
                break


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
    return _tracks_from_acc(acc, unk, cols, obj_col, h, cfg)


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


@numba.njit(cache=True)
def _finalize(acc, unk, obj_col, res, min_area, log_ref, area_factor, pos, area, rad, mom,
              shp, vis, inv, unk_area, unk_rgb):  # fmt: skip
    """Per-object quantities (world units) from the accumulators, for every video."""
    nb, nt = acc.shape[0], acc.shape[1]
    s = 10.0 / res  # world.WORLD_SIZE / res
    for b in range(nb):
        for t in range(nt):
            for i in range(obj_col.shape[0]):
                a = acc[b, t, obj_col[i]]
                w = a[0]
                area[b, t, i] = w * s * s
                if w < min_area:
                    pos[b, t, i, 0] = np.nan
                    pos[b, t, i, 1] = np.nan
                    rad[b, t, i] = np.nan
                    mom[b, t, i] = np.nan if w <= 0 else 0.0
                    shp[b, t, i] = -1
                    vis[b, t, i] = False
                    inv[b, t, i] = False
                    continue
                cx = a[1] / w
                cy = a[2] / w
                # Second moment about the centroid. Summing at pixel centres overestimates
                # a shape's moment by about 1/6 px² per px² of area (measured on exact
                # renders of balls, squares and rings from 4 to 18 px); remove it.
                m = ((a[3] + a[4]) / w - cx * cx - cy * cy - 1.0 / 6.0) / w
                lm = np.log(max(m, 1e-9))
                best = 0
                for k in range(1, log_ref.shape[0]):
                    if abs(lm - log_ref[k]) < abs(lm - log_ref[best]):
                        best = k
                pos[b, t, i, 0] = cx * s
                pos[b, t, i, 1] = 10.0 - cy * s
                mom[b, t, i] = m
                shp[b, t, i] = best
                rad[b, t, i] = np.sqrt(w * s * s / area_factor[best])
                vis[b, t, i] = True
                inv[b, t, i] = not (a[6] <= 0 or a[8] <= 0 or a[7] >= res - 1 or a[9] >= res - 1)
            unk_area[b, t] = unk[b, t, 0] * s * s
            for j in range(3):
                unk_rgb[b, t, j] = unk[b, t, 1 + j] / unk[b, t, 4] if unk[b, t, 4] > 0 else np.nan


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
    return [
        Tracks(
            pos[b],
            area[b],
            rad[b],
            mom[b],
            shp[b],
            vis[b],
            inv[b],
            unk_area[b],
            unk_rgb[b],
            colors,
            shared,
            int(res),
        )  # fmt: skip
        for b in range(nb)
    ]


_LOG_REF = np.log(np.array([MOMENT_RATIO[s] for s in world.SHAPES]))
