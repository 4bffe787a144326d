"""Numba kernels of :mod:`physim.raster` for convex polygons, and the blend of a pixel that
all primitives share."""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _blend(o, c, a):
    """Channel value o (uint8) covered by colour c (uint8) with coverage a: the channel
    becomes ``o + (c - o) * a`` rounded half up, a clipped to [0, 1]. Scalars in and
    out, inlined: every kernel's pixel loop calls it."""
    a = min(max(a, 0.0), 1.0)
    return np.uint8(int(float(o) + (float(c) - float(o)) * a + 0.5))


@numba.njit(cache=True)
def _clip(su, sv, n, du, dv, axis, bound, keep_less):
    """Sutherland–Hodgman: clip polygon (su, sv)[:n] to the half-plane coord <= bound
    (keep_less) or >= bound; writes (du, dv), returns the new vertex count."""
    m = 0
    for i in range(n):
        j = i + 1 if i + 1 < n else 0
        pc = su[i] if axis == 0 else sv[i]
        qc = su[j] if axis == 0 else sv[j]
        pin = pc <= bound if keep_less else pc >= bound
        qin = qc <= bound if keep_less else qc >= bound
        if pin:
            du[m], dv[m] = su[i], sv[i]
            m += 1
        if pin != qin:
            f = (bound - pc) / (qc - pc)
            if axis == 0:
                du[m], dv[m] = bound, sv[i] + f * (sv[j] - sv[i])
            else:
                du[m], dv[m] = su[i] + f * (su[j] - su[i]), bound
            m += 1
    return m


@numba.njit(cache=True)
def _profile(u, v, m, xs, hs, cum):
    """Height profile of a convex polygon (u, v)[:m]: its vertical extent hs at the sorted
    distinct vertex abscissae xs (linear in between) and the area cum left of each.
    Returns the number of breakpoints k."""
    k = 0
    for i in range(m):  # insertion sort of the distinct u
        x, j = u[i], k
        while j > 0 and xs[j - 1] > x:
            j -= 1
        if j > 0 and xs[j - 1] == x:
            continue
        for q in range(k, j, -1):
            xs[q] = xs[q - 1]
        xs[j] = x
        k += 1
    for q in range(k):
        x, lo, hi = xs[q], np.inf, -np.inf
        for i in range(m):
            j = i + 1 if i + 1 < m else 0
            a, b = u[i], u[j]
            if a == x:
                lo, hi = min(lo, v[i]), max(hi, v[i])
            elif min(a, b) < x < max(a, b):
                y = v[i] + (x - a) / (b - a) * (v[j] - v[i])
                lo, hi = min(lo, y), max(hi, y)
        hs[q] = hi - lo
        cum[q] = 0.0 if q == 0 else cum[q - 1] + 0.5 * (hs[q - 1] + hs[q]) * (x - xs[q - 1])
    return k


@numba.njit(cache=True)
def _line_span(u, v, n, y):
    """Min and max u of the clipped polygon's vertices lying on the line v = y."""
    lo, hi = np.inf, -np.inf
    for i in range(n):
        if v[i] == y:
            lo, hi = min(lo, u[i]), max(hi, u[i])
    return lo, hi


@numba.njit(cache=True)
def _draw_poly(img, cov, direct, pu, pv, n, col, buf):
    """Convex polygon with pixel vertices (pu, pv)[:n]; returns its row range.

    Each row band clips the polygon (exactly) and integrates its piecewise-linear height
    profile, so a pixel's coverage is the profile's integral over the pixel's columns.
    """
    h, w = img.shape[0], img.shape[1]
    au, av, bu, bv, xs, hs, cum = buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6]
    vmin, vmax = pv[:n].min(), pv[:n].max()
    k0, k1, k2 = col[0], col[1], col[2]
    r0 = int(min(max(math.floor(vmin), 0.0), h))
    r1 = int(min(max(math.ceil(vmax), 0.0), h))
    for r in range(r0, r1):
        m = _clip(pu, pv, n, au, av, 1, float(r), False)
        m = _clip(au, av, m, bu, bv, 1, float(r + 1), True)
        if m < 3:
            continue
        k = _profile(bu, bv, m, xs, hs, cum)
        if k < 2:
            continue
        e0 = int(min(max(math.floor(xs[0]), 0.0), w))
        e1 = int(min(max(math.ceil(xs[k - 1]), 0.0), w))
        f0 = f1 = 0
        if vmin <= r and vmax >= r + 1:  # left edge is convex in v, right concave: check ends
            a0, b0 = _line_span(bu, bv, m, float(r))
            a1, b1 = _line_span(bu, bv, m, float(r + 1))
            f0 = int(min(max(math.ceil(max(a0, a1)), 0.0), w))
            f1 = max(f0, int(min(max(math.floor(min(b0, b1)), 0.0), w)))
        row, crow = img[r], cov[r if not direct else 0]
        q, last_c, last = 0, -1, 0.0  # profile segment; band area left of column last_c
        for c in range(e0, e1):
            if f0 <= c < f1:
                continue  # fully covered, filled below
            for x in range(c, c + 2):  # band area left of x, from the height profile
                if x == last_c:
                    continue
                if x <= xs[0]:
                    v = 0.0
                elif x >= xs[k - 1]:
                    v = cum[k - 1]
                else:
                    while xs[q + 1] <= x:
                        q += 1
                    t = x - xs[q]
                    v = cum[q] + t * (hs[q] + 0.5 * (hs[q + 1] - hs[q]) * t / (xs[q + 1] - xs[q]))
                if x == c:
                    last = v
                elif direct:
                    row[c, 0] = _blend(row[c, 0], k0, v - last)
                    row[c, 1] = _blend(row[c, 1], k1, v - last)
                    row[c, 2] = _blend(row[c, 2], k2, v - last)
                    last_c, last = x, v
                else:
                    crow[c] += v - last
                    last_c, last = x, v
        for c in range(f0, f1):
            if direct:
                row[c, 0] = k0
                row[c, 1] = k1
                row[c, 2] = k2
            else:
                crow[c] += 1.0
    return r0, r1
