"""Numba kernels of :mod:`evals.parse` (see its docstring for the method).

- :func:`_decompose`: memberships of one pixel in the object colours (best single colour,
  else best non-negative pair, else unknown).
- :func:`_decompose_lossy`: the same for lossy frames (colour by chroma direction,
  membership by luma).
- :func:`_parse_frames`: coarse search and fine accumulation over a batch of videos.
- :func:`_finalize`: per-object quantities in world units from the accumulators.
"""

from __future__ import annotations

import sys

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

PAIR_COS = 0.97  # lossy parse: below this cosine a pixel may be two colours' edges


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


@numba.njit(cache=True, inline="always")
def _best_single(p0, p1, p2, bg, ev, ee_):
    """Best single colour of one pixel as in :func:`_decompose`: (k, residual², membership);
    ``ev (K, 3)`` background minus each colour, ``ee_ (K,)`` its squared norm."""
    d0 = bg[0] - float(p0)
    d1 = bg[1] - float(p1)
    d2 = bg[2] - float(p2)
    best_k = -1
    best_r = 1e30
    best_a = 0.0
    for k in range(ev.shape[0]):
        if ee_[k] == 0.0:
            continue
        a = (d0 * ev[k, 0] + d1 * ev[k, 1] + d2 * ev[k, 2]) / ee_[k]
        a = min(max(a, 0.0), 1.0)
        r0 = d0 - a * ev[k, 0]
        r1 = d1 - a * ev[k, 1]
        r2 = d2 - a * ev[k, 2]
        rr = r0 * r0 + r1 * r1 + r2 * r2
        if rr < best_r:
            best_r = rr
            best_k = k
            best_a = a
    return best_k, best_r, best_a


@numba.njit(cache=True, inline="always")
def _pair_explains(p0, p1, p2, bg, cols, gram_inv, res_tol2, out):
    """Whether a pair of colours, each at least 10 %, explains the pixel (lossy parse):
    then ``out (K,)`` holds their memberships; otherwise ``out`` is all zeros."""
    u = _decompose(p0, p1, p2, bg, cols, gram_inv, res_tol2, out)
    n_pos = 0
    for k in range(cols.shape[0]):
        if out[k] >= 0.1:
            n_pos += 1
    if u == 0.0 and n_pos == 2:
        return True
    for k in range(cols.shape[0]):
        out[k] = 0.0
    return False


@numba.njit(cache=True)
def _decompose_lossy(p0, p1, p2, bg, cols, gram_inv, res_tol2, cos_tol, yl, pair_first, out):
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
    # Where two objects' boxes overlap and the pixel is not clearly one colour, it may be
    # their edges meeting (yuv420 mixes both chromas there): try the pair first.
    if pair_first and best_cos < PAIR_COS and _pair_explains(
            p0, p1, p2, bg, cols, gram_inv, res_tol2, out):
        return 0.0
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
    if _pair_explains(p0, p1, p2, bg, cols, gram_inv, res_tol2, out):
        return 0.0
    return min(max(abs(d0), max(abs(d1), abs(d2))) / 255.0, 1.0)


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Hint the CPU to load the cache line of ``arr[idx]`` (1-D array); no effect on results."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0"
        )
        # Locality 1 (prefetcht2: to the outer caches, not L1): the frames ahead are read
        # ~10 us later, and filling L1 with them presumably evicts lines being parsed (measured:
        # locality 3 made a parse streaming from memory ~1.7x slower than locality 1 or 2).
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(1), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _load_u64(typingctx, arr, idx):
    """The 8 bytes of ``arr[idx:idx + 8]`` (1-D uint8, any alignment) as one native uint64."""
    sig = types.uint64(arr, types.intp)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        i64 = ir.IntType(64)
        return builder.load(builder.bitcast(ptr, i64.as_pointer()), align=1, typ=i64)

    return sig, codegen


@intrinsic
def _cttz(typingctx, x):
    """Number of trailing zero bits of a non-zero uint64."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


# _match_len finds the first differing byte of a word by its trailing zeros: that is byte
# order dependent; elsewhere it compares byte by byte.
_LITTLE_ENDIAN = sys.byteorder == "little"


@numba.njit(cache=True, inline="always")
def _match_len(flat, i, n_max, pw):
    """How many pixels (3 bytes each) from byte ``i`` of ``flat``, up to ``n_max``, equal
    the pixel repeated in ``pw (3,)`` (8 pixels as 3 native uint64 words).

    Eight pixels (24 bytes, whole pixels at any offset) are compared per step with
    unaligned word loads; in the first word that differs, the first differing byte (lowest
    address: trailing zero bits on a little-endian machine) gives the pixel. The last step
    may read up to 23 bytes past the ``n_max`` pixels (never past ``flat``); the count is
    clipped to ``n_max``.
    """
    n = 0
    if _LITTLE_ENDIAN:
        while n < n_max and i + 24 <= flat.size:
            x = _load_u64(flat, i) ^ pw[0]
            if x != 0:
                return min(n + np.int64(_cttz(x) >> np.uint64(3)) // 3, n_max)
            x = _load_u64(flat, i + 8) ^ pw[1]
            if x != 0:
                return min(n + (8 + np.int64(_cttz(x) >> np.uint64(3))) // 3, n_max)
            x = _load_u64(flat, i + 16) ^ pw[2]
            if x != 0:
                return min(n + (16 + np.int64(_cttz(x) >> np.uint64(3))) // 3, n_max)
            n += 8
            i += 24
        if n >= n_max:
            return n_max
    b0 = np.uint8(pw[0] & np.uint64(255))  # the pixel's bytes (any byte order: 3 | 24)
    b1 = np.uint8((pw[0] >> np.uint64(8)) & np.uint64(255))
    b2 = np.uint8((pw[0] >> np.uint64(16)) & np.uint64(255))
    if not _LITTLE_ENDIAN:
        b0 = np.uint8(pw[0] >> np.uint64(56))
        b1 = np.uint8((pw[0] >> np.uint64(48)) & np.uint64(255))
        b2 = np.uint8((pw[0] >> np.uint64(40)) & np.uint64(255))
    while n < n_max and flat[i] == b0 and flat[i + 1] == b1 and flat[i + 2] == b2:
        n += 1
        i += 3
    return n


@numba.njit(cache=True, inline="always")
def _prefetch_span(flat, i0, i1):
    """Prefetch the cache lines of ``flat[i0:i1]`` (uint8)."""
    for i in range(i0, i1, 64):
        _prefetch(flat, i)
    if i1 > i0:
        _prefetch(flat, i1 - 1)


PREFETCH_AHEAD = 2  # frames between the one parsed and the one prefetched


@numba.njit(cache=True)
def _prefetch_next(flat, nb, nt, h, w_, b, t, temporal, stride, rs, acc):
    """Prefetch what the frame ``PREFETCH_AHEAD`` after (b, t) will read first: its coarse
    sample rows and, within the same video, the boxes of frame t - 1 (generously widened)."""
    row = w_ * 3
    if t + PREFETCH_AHEAD < nt:
        b1, t1 = b, t + PREFETCH_AHEAD
    elif b + 1 < nb:
        b1, t1 = b + 1, t + PREFETCH_AHEAD - nt
    else:
        return
    if t1 >= nt:
        return
    base = (b1 * nt + t1) * h * row
    if temporal and t1 >= 1:
        ph = t1 % 4
        for r in range(ph * stride, h, 4 * stride):
            _prefetch_span(flat, base + r * row, base + (r + 1) * row)
    else:
        for r in rs:
            _prefetch_span(flat, base + r * row, base + (r + 1) * row)
    if b1 != b or t < 1:
        return
    # The boxes of frame t1 will be those of frame t - 1 moved by (t1 - t + 1) frames of
    # motion, plus the fine pass's margin (see the fast attempt in _parse_frames). With the
    # motion known (two earlier frames), prefetch just that plus 2 px of slack; else the
    # box widened by a generous 4 strides. Prefetching more than is read costs memory
    # bandwidth, which bounds a parse that streams frames from memory.
    n_ahead = float(t1 - t + 1)
    for k in range(acc.shape[2]):
        a = acc[b, t - 1, k]
        if a[7] < 0:
            continue
        if t >= 2 and acc[b, t - 2, k, 0] > 0 and a[0] > 0:
            p2 = acc[b, t - 2, k]
            dc = a[1] / a[0] - p2[1] / p2[0]
            dr = a[2] / a[0] - p2[2] / p2[0]
            m = 4 + int(0.25 * (abs(dr) + abs(dc)))
            r0 = int(np.floor(a[6] + n_ahead * dr)) - m
            r1 = int(np.ceil(a[7] + n_ahead * dr)) + m
            q0 = int(np.floor(a[8] + n_ahead * dc)) - m
            q1 = int(np.ceil(a[9] + n_ahead * dc)) + m
        else:
            e = 4 * stride
            r0 = int(a[6]) - e
            r1 = int(a[7]) + e
            q0 = int(a[8]) - e
            q1 = int(a[9]) + e
        c0 = max(q0, 0) * 3
        c1 = min(q1 + 1, w_) * 3
        if c1 <= c0:
            continue
        for r in range(max(r0, 0), min(r1 + 1, h)):
            _prefetch_span(flat, base + r * row + c0, base + r * row + c1)


@numba.njit(cache=True, inline="always")
def _words_bg(words, i0, n, pat):
    """Whether ``n`` (a multiple of 3) uint64 words from ``i0`` all repeat ``pat (3,)``."""
    x = np.uint64(0)
    for i in range(0, n, 3):
        x |= (words[i0 + i] ^ pat[0]) | (words[i0 + i + 1] ^ pat[1]) | (words[i0 + i + 2] ^ pat[2])
    return x == 0


@numba.njit(cache=True)
def _parse_frames(
    frames, luma, bg, cols, gram_inv, stride, bg_tol, res_tol2, margin, lossy, cos_tol,
    min_memb, coarse_memb, temporal, acc, unk,
):  # fmt: skip
    """Accumulate memberships of frames (B, T, H, W, 3) uint8.

    Where ``bg_tol == 0`` and W % 8 == 0 (a row is a whole number of 3-word blocks of 8
    pixels), the coarse pass recognises whole rows of exact background a uint64 word at a
    time. The fine pass skips runs of exact background (``bg_tol == 0``) and sums runs of
    one exact colour 8 pixels at a time (:func:`_match_len`).

    acc (B, T, K, 10): w, sx, sy, sxx, syy, sxy, rmin, rmax, cmin, cmax (pixel units).
    unk (B, T, 5): weight, sum r, sum g, sum b, count.
    The hot loops only test for background and exact colours; anything else goes through
    :func:`_decompose`.
    """
    nb, nt, h, w_, _ = frames.shape
    k_n = cols.shape[0]
    use_luma = luma.shape[0] == nb
    n_w = w_ * 3 // 8  # words per row
    flat = frames.reshape(nb * nt * h * w_ * 3)
    bg_int = True
    for j in range(3):
        bg_int = bg_int and 0.0 <= bg[j] <= 255.0 and bg[j] == np.floor(bg[j])
    bg_exact = bg_tol == 0 and bg_int  # background pixels are one exact value
    use_words = bg_exact and w_ % 8 == 0
    words = flat.view(np.uint64) if use_words else np.zeros(0, dtype=np.uint64)
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
    # Each colour's bytes over 8 pixels as 3 words (native byte order, like ``words``).
    cbytes = np.empty((k_n, 24), dtype=np.uint8)
    for k in range(k_n):
        for i in range(24):
            cbytes[k, i] = icols[k, i % 3]
    cpat = cbytes.view(np.uint64)
    bbytes = np.empty(24, dtype=np.uint8)
    for i in range(24):
        bbytes[i] = np.uint8(bg[i % 3]) if bg_exact else 0
    pat = bbytes.view(np.uint64)
    ev = np.empty((k_n, 3))  # background minus each colour, and its squared norm
    ee_ = np.empty(k_n)
    for k in range(k_n):
        for j in range(3):
            ev[k, j] = bg[j] - cols[k, j]
        ee_[k] = ev[k, 0] * ev[k, 0] + ev[k, 1] * ev[k, 1] + ev[k, 2] * ev[k, 2]
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
    # Sparse grids (every fourth row of the grid, four phases that together make the full
    # grid: a quarter of the samples on a quarter of the rows, so a quarter of the memory)
    # for frames after the first, whose known objects are looked for where they were.
    stride4 = 4 * stride
    n_sp = np.zeros(4, dtype=np.int64)
    spr = np.empty((4, n_s), dtype=np.int64)
    spc = np.empty((4, n_s), dtype=np.int64)
    for ph in range(4):
        for r in range(ph * stride, h, stride4):
            for c in range(0, w_, stride):
                spr[ph, n_sp[ph]] = r
                spc[ph, n_sp[ph]] = c
                n_sp[ph] += 1
    # End (exclusive) of each sample's row segment, to skip background rows at once.
    se = np.empty(n_s, dtype=np.int64)
    for i in range(n_s - 1, -1, -1):
        se[i] = se[i + 1] if i + 1 < n_s and sr[i + 1] == sr[i] else i + 1
    spe = np.empty((4, n_s), dtype=np.int64)
    for ph in range(4):
        for i in range(n_sp[ph] - 1, -1, -1):
            same = i + 1 < n_sp[ph] and spr[ph, i + 1] == spr[ph, i]
            spe[ph, i] = spe[ph, i + 1] if same else i + 1
    hits = np.empty(n_s, dtype=np.int64)
    pbox = np.zeros((k_n, 4), dtype=np.int64)
    box = np.zeros((k_n + 1, 4), dtype=np.int64)  # K colours then unknown; inclusive
    lo = np.zeros(k_n + 1, dtype=np.int64)
    hi = np.zeros(k_n + 1, dtype=np.int64)
    rw = np.zeros((k_n, 3))
    cmin = np.zeros(k_n, dtype=np.int64)
    cmax = np.zeros(k_n, dtype=np.int64)
    # The first frames of the batch: their coarse rows, all at once (the loop below
    # prefetches PREFETCH_AHEAD frames ahead from the frame it parses).
    if nb > 0:
        for t in range(-PREFETCH_AHEAD, 0):
            _prefetch_next(flat, nb, nt, h, w_, 0, t, temporal, stride, rs, acc)
    for b in range(nb):
        for t in range(nt):
            f = frames[b, t]
            fw0 = (b * nt + t) * h * n_w  # first word of the frame
            _prefetch_next(flat, nb, nt, h, w_, b, t, temporal, stride, rs, acc)
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
                    i = 0
                    while i < n_sp[ph]:
                        i_end = spe[ph, i]
                        if use_words and _words_bg(words, fw0 + spr[ph, i] * n_w, n_w, pat):
                            i = i_end
                            continue
                        for q in range(i, i_end):
                            r = spr[ph, q]
                            c = spc[ph, q]
                            if not (ok0[f[r, c, 0]] and ok1[f[r, c, 1]] and ok2[f[r, c, 2]]):
                                hits[n_hit] = q
                                n_hit += 1
                        i = i_end
                else:
                    i = 0
                    while i < n_s:
                        i_end = se[i]
                        if use_words and _words_bg(words, fw0 + sr[i] * n_w, n_w, pat):
                            i = i_end
                            continue
                        for q in range(i, i_end):
                            r = sr[q]
                            c = sc[q]
                            if not (ok0[f[r, c, 0]] and ok1[f[r, c, 1]] and ok2[f[r, c, 2]]):
                                hits[n_hit] = q
                                n_hit += 1
                        i = i_end
                for q in range(n_hit):
                    if fast:
                        r = spr[t % 4, hits[q]]
                        c = spc[t % 4, hits[q]]
                    else:
                        r = sr[hits[q]]
                        c = sc[hits[q]]
                    p0 = f[r, c, 0]
                    p1 = f[r, c, 1]
                    p2 = f[r, c, 2]
                    if coarse_memb >= 0.0:  # one colour explains it: no call (as _decompose)
                        best_k, best_r, best_a = _best_single(p0, p1, p2, bg, ev, ee_)
                        if best_r <= res_tol2:
                            if best_a > coarse_memb:
                                box[best_k, 0] = min(box[best_k, 0], r)
                                box[best_k, 1] = max(box[best_k, 1], r)
                                box[best_k, 2] = min(box[best_k, 2], c)
                                box[best_k, 3] = max(box[best_k, 3], c)
                            continue
                    u = _decompose(p0, p1, p2, bg, cols, gram_inv, res_tol2, memb)
                    for k in range(k_n + 1):
                        if (u > coarse_memb) if k == k_n else (memb[k] > coarse_memb):
                            box[k, 0] = min(box[k, 0], r)
                            box[k, 1] = max(box[k, 1], r)
                            box[k, 2] = min(box[k, 2], c)
                            box[k, 3] = max(box[k, 3], c)
                e = (stride4 if fast else stride) + margin
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
                r_lo = h
                r_hi = -1
                for k in range(k_n + 1):
                    if box[k, 1] >= 0:
                        r_lo = min(r_lo, box[k, 0])
                        r_hi = max(r_hi, box[k, 1])
                for r in range(r_lo, r_hi + 1):
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
                        rb = ((b * nt + t) * h + r) * w_ * 3  # first byte of the row
                        while c < c_end:
                            p0 = flat[rb + 3 * c]
                            p1 = flat[rb + 3 * c + 1]
                            p2 = flat[rb + 3 * c + 2]
                            if ok0[p0] and ok1[p1] and ok2[p2]:
                                c += 1
                                if bg_exact:  # the rest of a background run, 8 px a step
                                    c += _match_len(flat, rb + 3 * c, c_end - c, pat)
                                continue
                            exact = -1
                            for k in range(k_n):
                                if p0 == icols[k, 0] and p1 == icols[k, 1] and p2 == icols[k, 2]:
                                    exact = k
                                    break
                            if exact >= 0:  # a run of interior pixels, summed in closed form
                                c0 = c
                                c += 1
                                c += _match_len(flat, rb + 3 * c, c_end - c, cpat[exact])
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
                                n_in = 0
                                for k in range(k_n):
                                    if box[k, 0] <= r <= box[k, 1] and box[k, 2] <= c <= box[k, 3]:
                                        n_in += 1
                                u = _decompose_lossy(
                                    p0, p1, p2, bg, cols, gram_inv, res_tol2, cos_tol, yl,
                                    n_in >= 2, memb,
                                )  # fmt: skip
                            else:
                                # Best single colour (inlined, as in _decompose); the call
                                # only for pairs of colours and unknown colours.
                                best_k, best_r, best_a = _best_single(p0, p1, p2, bg, ev, ee_)
                                if best_r <= res_tol2:
                                    k = best_k
                                    if (
                                        best_a > min_memb
                                        and box[k, 0] <= r <= box[k, 1]
                                        and box[k, 2] <= c <= box[k, 3]
                                    ):
                                        rw[k, 0] += best_a
                                        rw[k, 1] += best_a * x
                                        rw[k, 2] += best_a * x * x
                                        cmin[k] = min(cmin[k], c)
                                        cmax[k] = max(cmax[k], c)
                                    c += 1
                                    continue
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
