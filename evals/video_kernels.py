"""Numba kernels of the default video metrics (:func:`evals.video_metrics.video_scores`).

The JAX functions of :mod:`evals.video_metrics` (``ssim``, ``motion_masks``) define the
metrics and stay their reference (the tests compare both); XLA on CPU runs their small
separable filters and 5x5 morphology 10-20x slower than these loops, and the default
``physim evaluate`` scores every video with them.

- :func:`ssim_mse`: per-frame SSIM (11x11 Gaussian window, sigma 1.5, channel mean) and
  squared-error sum of two videos, in one pass.
- :func:`motion_masks`: Physics-IQ motion masks of one video.

Frames are float32 (T, H, W * 3) rows in [0, 1] (channels interleaved, as stored), so every
inner loop runs along a contiguous row.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, fastmath=True)
def ssim_mse(a, b, g, c1, c2):
    """(ssim (T,), squared-error sum (T,)) of frames ``a``, ``b`` (T, H, W*C) float32.

    ``g``: the 1-D window (k,) float32; 'valid' filtering, as ``video_metrics.ssim``.
    """
    t_n, h_n, r_n = a.shape
    c_n = 3
    k = g.shape[0]
    h = h_n - k + 1
    r = r_n - c_n * (k - 1)  # valid outputs per row, channels interleaved
    ssim = np.zeros(t_n)
    sse = np.zeros(t_n)
    src = np.empty((5, h_n, r_n), np.float32)  # a, b, aa, bb, ab
    fa = np.empty((5, h, r_n), np.float32)  # the same, H-filtered
    for t in range(t_n):
        at, bt = a[t], b[t]
        s = 0.0
        for i in range(h_n):
            for j in range(r_n):
                x, y = at[i, j], bt[i, j]
                d = x - y
                s += d * d
                src[0, i, j] = x
                src[1, i, j] = y
                src[2, i, j] = x * x
                src[3, i, j] = y * y
                src[4, i, j] = x * y
        sse[t] = s
        fa[:] = 0.0
        for m in range(5):
            for i in range(h):
                dst = fa[m, i]
                for q in range(k):
                    gq = g[q]
                    srow = src[m, i + q]
                    for j in range(r_n):
                        dst[j] += gq * srow[j]
        acc = 0.0
        row = np.empty((5, r), np.float32)  # W-filtered: mu_a, mu_b, aa, bb, ab
        for i in range(h):
            row[:] = 0.0
            for q in range(k):
                gq = g[q]
                o = c_n * q
                for m in range(5):
                    hrow = fa[m, i]
                    dst = row[m]
                    for j in range(r):
                        dst[j] += gq * hrow[j + o]
            for j in range(r):
                ma, mb = row[0, j], row[1, j]
                sab = row[4, j] - ma * mb
                num = (2 * ma * mb + c1) * (2 * sab + c2)
                den = (ma * ma + mb * mb + c1) * (row[2, j] - ma * ma + row[3, j] - mb * mb + c2)
                acc += num / den
        ssim[t] = acc / (h * r)
    return ssim, sse


@numba.njit(cache=True)
def _extreme(m, size, is_max):
    """Separable 'SAME' dilation (``is_max``) or erosion of (T, H, W) uint8 0/1 masks by a
    size x size square; outside the frame counts as neutral (as ``reduce_window`` with
    -inf / +inf padding)."""
    t_n, h_n, w_n = m.shape
    lo = size // 2
    hi = size - 1 - lo
    neutral = 0 if is_max else 1
    tmp = np.empty((h_n, w_n), np.uint8)
    pad = np.empty(w_n + size - 1, np.uint8)
    out = np.empty_like(m)
    for t in range(t_n):
        for i in range(h_n):
            tmp[i] = neutral
            for q in range(max(0, i - lo), min(h_n, i + hi + 1)):
                src = m[t, q]
                row = tmp[i]
                if is_max:
                    for j in range(w_n):
                        row[j] = max(row[j], src[j])
                else:
                    for j in range(w_n):
                        row[j] = min(row[j], src[j])
        for i in range(h_n):
            pad[:] = neutral
            pad[lo:lo + w_n] = tmp[i]
            dst = out[t, i]
            dst[:] = neutral
            for q in range(size):
                if is_max:
                    for j in range(w_n):
                        dst[j] = max(dst[j], pad[j + q])
                else:
                    for j in range(w_n):
                        dst[j] = min(dst[j], pad[j + q])
    return out


@numba.njit(cache=True)
def motion_masks(x, g, alpha, threshold):
    """Physics-IQ motion masks (T, H, W) bool of frames ``x`` (T, H, W*3) float32.

    Grayscale (0.299, 0.587, 0.114), 'SAME' blur by ``g`` with edge padding, running-average
    background (``alpha``), |frame - background| > ``threshold``, then open and close with
    a 5x5 square; the first frame has no motion (``video_metrics.motion_masks``).
    """
    t_n, h_n, r_n = x.shape
    w_n = r_n // 3
    k = g.shape[0]
    p = k // 2
    gray = np.empty((h_n + k - 1, w_n + k - 1), np.float32)  # edge-padded by k // 2
    tmp = np.empty((h_n, w_n + k - 1), np.float32)
    blur = np.empty((h_n, w_n), np.float32)
    bg = np.empty((h_n, w_n), np.float32)
    raw = np.zeros((t_n, h_n, w_n), np.uint8)
    for t in range(t_n):
        for i in range(h_n + k - 1):
            si = min(max(i - p, 0), h_n - 1)
            for j in range(w_n + k - 1):
                sj = 3 * min(max(j - p, 0), w_n - 1)
                gray[i, j] = (np.float32(0.299) * x[t, si, sj]
                              + np.float32(0.587) * x[t, si, sj + 1]
                              + np.float32(0.114) * x[t, si, sj + 2])
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
                raw[t, i, j] = abs(blur[i, j] - bg[i, j]) > threshold
                bg[i, j] = (1 - alpha) * bg[i, j] + alpha * blur[i, j]
    opened = _extreme(_extreme(raw, 5, False), 5, True)
    return _extreme(_extreme(opened, 5, True), 5, False) > 0
