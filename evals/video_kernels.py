"""Numba kernels of the default video metrics (:func:`evals.video_metrics.video_scores`).

The JAX functions of :mod:`evals.video_metrics` (``ssim``, ``motion_masks``) define the
metrics and stay their reference (the tests compare both); XLA on CPU runs their small
separable filters and 5x5 morphology 10-20x slower than these loops, and the default
``physim evaluate`` scores every video with them.

- :func:`ssim_mse`: per-frame SSIM (11x11 Gaussian window, sigma 1.5, channel mean) and
  squared-error sum of two videos, in one pass.
- :func:`motion_masks`: Physics-IQ motion masks of one video.

Frames are (T, H, W * 3) rows (channels interleaved, as stored), uint8 or float, read as
float32 ``x / div`` (so uint8 frames need no float copy), and every inner loop runs along a
contiguous row. The morphology runs on rows packed 64 pixels to a word.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _to_float(src, dst, div):
    """dst[...] = src / div in float32 (uint8 frames: div 255; float frames: div 1)."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = np.float32(src[i, j]) / div


@numba.njit(cache=True, fastmath=True)
def ssim_mse(a, b, g, c1, c2, div):
    """(ssim (T,), squared-error sum (T,)) of frames ``a``, ``b`` (T, H, W*C), uint8 or
    float, read as float32 ``x / div`` (uint8: div 255, values in [0, 1]).

    ``g``: the 1-D window (k,) float32; 'valid' filtering, as ``video_metrics.ssim``. One
    output row at a time: the five H-filtered sums (a, b, aa, bb, ab) of a row, then its
    W filter and SSIM map, so the working set stays in cache.
    """
    t_n, h_n, r_n = a.shape
    c_n = 3
    k = g.shape[0]
    h = h_n - k + 1
    r = r_n - c_n * (k - 1)  # valid outputs per row, channels interleaved
    ssim = np.zeros(t_n)
    sse = np.zeros(t_n)
    at = np.empty((h_n, r_n), np.float32)
    bt = np.empty((h_n, r_n), np.float32)
    col = np.empty((5, r_n), np.float32)  # one row of H-filtered a, b, aa, bb, ab
    out = np.empty((5, r), np.float32)  # ... and W-filtered: mu_a, mu_b, aa, bb, ab
    for t in range(t_n):
        _to_float(a[t], at, div)
        _to_float(b[t], bt, div)
        s = 0.0
        for i in range(h_n):
            for j in range(r_n):
                d = at[i, j] - bt[i, j]
                s += d * d
        sse[t] = s
        acc = 0.0
        for i in range(h):
            col[:] = 0.0
            ca, cb, caa, cbb, cab = col[0], col[1], col[2], col[3], col[4]
            for q in range(k):
                gq = g[q]
                ar, br = at[i + q], bt[i + q]
                for j in range(r_n):
                    x, y = ar[j], br[j]
                    gx, gy = gq * x, gq * y
                    ca[j] += gx
                    cb[j] += gy
                    caa[j] += gx * x
                    cbb[j] += gy * y
                    cab[j] += gx * y
            out[:] = 0.0
            for q in range(k):
                gq = g[q]
                o = c_n * q
                for m in range(5):
                    src = col[m]
                    dst = out[m]
                    for j in range(r):
                        dst[j] += gq * src[j + o]
            for j in range(r):
                ma, mb = out[0, j], out[1, j]
                sab = out[4, j] - ma * mb
                num = (2 * ma * mb + c1) * (2 * sab + c2)
                den = (ma * ma + mb * mb + c1) * (out[2, j] - ma * ma + out[3, j] - mb * mb + c2)
                acc += num / den
        ssim[t] = acc / (h * r)
    return ssim, sse


_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@numba.njit(cache=True)
def _shifted(row, wi, s, edge):
    """Word ``wi`` of a packed row read ``s`` bits further (bit j <- bit j + s, |s| < 64);
    words past either end read as ``edge``."""
    nw = row.shape[0]
    x = row[wi]
    if s == 0:
        return x
    if s > 0:
        nxt = row[wi + 1] if wi + 1 < nw else edge
        return (x >> np.uint64(s)) | (nxt << np.uint64(64 - s))
    prv = row[wi - 1] if wi > 0 else edge
    return (x << np.uint64(-s)) | (prv >> np.uint64(64 + s))


@numba.njit(cache=True)
def _extreme(m, w_n, size, is_max):
    """Separable 'SAME' dilation (``is_max``) or erosion of bit-packed masks (T, H, nw)
    uint64 (pixel j of a row at bit j % 64 of word j // 64, rows of ``w_n`` pixels) by a
    size x size square; outside the frame counts as neutral (as ``reduce_window`` with
    -inf / +inf padding). Bits past ``w_n`` are 0 on input and output."""
    t_n, h_n, nw = m.shape
    lo = size // 2
    hi = size - 1 - lo
    edge = np.uint64(0) if is_max else _ALL
    tail = w_n - 64 * (nw - 1)  # valid bits of the last word
    pad = _ALL if tail == 64 else (np.uint64(1) << np.uint64(tail)) - np.uint64(1)
    tmp = np.empty(nw, np.uint64)
    out = np.empty_like(m)
    for t in range(t_n):
        for i in range(h_n):
            for wi in range(nw):
                tmp[wi] = edge
            for q in range(max(0, i - lo), min(h_n, i + hi + 1)):
                for wi in range(nw):
                    tmp[wi] = (tmp[wi] | m[t, q, wi]) if is_max else (tmp[wi] & m[t, q, wi])
            if not is_max:
                tmp[nw - 1] |= ~pad  # outside the frame: neutral
            for wi in range(nw):
                acc = edge  # the op's identity (0 for dilation, all ones for erosion)
                for s in range(-lo, hi + 1):
                    v = _shifted(tmp, wi, s, edge)
                    acc = (acc | v) if is_max else (acc & v)
                out[t, i, wi] = acc
            out[t, i, nw - 1] &= pad
    return out


@numba.njit(cache=True)
def motion_masks(x, g, alpha, threshold, div):
    """Physics-IQ motion masks (T, H, W) bool of frames ``x`` (T, H, W*3), uint8 or float,
    read as float32 ``x / div`` (uint8: div 255).

    Grayscale (0.299, 0.587, 0.114), 'SAME' blur by ``g`` with edge padding, running-average
    background (``alpha``), |frame - background| > ``threshold``, then open and close with
    a 5x5 square on bit-packed rows; the first frame has no motion
    (``video_metrics.motion_masks``).
    """
    t_n, h_n, r_n = x.shape
    w_n = r_n // 3
    nw = (w_n + 63) // 64
    k = g.shape[0]
    p = k // 2
    gray = np.empty((h_n + k - 1, w_n + k - 1), np.float32)  # edge-padded by k // 2
    tmp = np.empty((h_n, w_n + k - 1), np.float32)
    blur = np.empty((h_n, w_n), np.float32)
    bg = np.empty((h_n, w_n), np.float32)
    raw = np.zeros((t_n, h_n, nw), np.uint64)
    for t in range(t_n):
        for i in range(h_n + k - 1):
            si = min(max(i - p, 0), h_n - 1)
            for j in range(w_n + k - 1):
                sj = 3 * min(max(j - p, 0), w_n - 1)
                gray[i, j] = (np.float32(0.299) * (np.float32(x[t, si, sj]) / div)
                              + np.float32(0.587) * (np.float32(x[t, si, sj + 1]) / div)
                              + np.float32(0.114) * (np.float32(x[t, si, sj + 2]) / div))
        tmp[:] = 0.0
        for i in range(h_n):
            for q in range(k):
                gq = g[q]
                for j in range(w_n + k - 1):
                    tmp[i, j] += gq * gray[i + q, j]
        blur[:] = 0.0
        for i in range(h_n):
            for q in range(k):
                gq = g[q]
                for j in range(w_n):
                    blur[i, j] += gq * tmp[i, j + q]
        if t == 0:
            bg[:] = blur
            continue
        for i in range(h_n):
            for j in range(w_n):
                bit = np.uint64(abs(blur[i, j] - bg[i, j]) > threshold)
                raw[t, i, j >> 6] |= bit << np.uint64(j & 63)
                bg[i, j] = (1 - alpha) * bg[i, j] + alpha * blur[i, j]
    opened = _extreme(_extreme(raw, w_n, 5, False), w_n, 5, True)
    closed = _extreme(_extreme(opened, w_n, 5, True), w_n, 5, False)
    out = np.empty((t_n, h_n, w_n), np.bool_)
    for t in range(t_n):
        for i in range(h_n):
            for j in range(w_n):
                out[t, i, j] = (closed[t, i, j >> 6] >> np.uint64(j & 63)) & np.uint64(1)
    return out
