"""Numba kernels of the rasterizer behind :mod:`physim.render` (see there for the method).

Every pixel value is a fixed float64 expression of the primitive's pose (no fastmath, no
threads), so all entry points (a :class:`~physim.geometry.Geometry` table, or the disc fast
path that builds the same primitives inline) give the same bytes. The entry kernels
release the GIL, so threads (data loaders, exports) render in parallel. Polygons are in
:mod:`physim.raster_polygon`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from physim import world
from physim.geometry import POLYGON, RING
from physim.raster_polygon import _blend, _draw_poly

_WS = world.WORLD_SIZE
_SEG = 0.25 * math.pi  # ∫_0^r sqrt(r² - t²) dt = _SEG * r²
_RING_INNER = world.RING_INNER
_SQUARE, _RING = world.SHAPE_CODES["square"], world.SHAPE_CODES["ring"]
_CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])  # square, unit half side


@numba.njit(cache=True)
def _seg(t, r):
    """∫_0^t sqrt(r² - τ²) dτ with t clipped to [-r, r]."""
    if t >= r:
        return _SEG * r * r
    if t <= -r:
        return -_SEG * r * r
    return 0.5 * (t * math.sqrt(r * r - t * t) + r * r * math.asin(t / r))


@numba.njit(cache=True, inline="always")
def _quadrant(x, y, r, w, sw, sx):
    """Area of the centred disc of radius r with X < x and Y < y (px²).

    Precomputed: ``w = sqrt(r² - y²)`` (negative when |y| >= r), ``sw = _seg(w, r)`` and
    ``sx = _seg(x, r)``, so no transcendental function is evaluated per pixel.
    """
    ay = abs(y)
    low = 0.0  # area with X < x and Y < -|y|: ∫_{-w}^{min(x, w)} (sqrt(r² - t²) - |y|) dt
    if w >= 0.0 and x > -w:
        if x < w:
            low = -ay * (x + w) + sx + sw
        else:
            low = -2.0 * ay * w + 2.0 * sw
    if y <= 0.0:
        return low
    return 2.0 * sx + 2.0 * _SEG * r * r - low  # area with X < x, minus the part below -y


@numba.njit(cache=True)
def _round_tables(cu, cv, r, c_lo, c_hi, r_lo, r_hi, tab, k, cols, lines):
    """Fill tab[k] with _seg(c - cu) for columns c_lo..c_hi (if cols), tab[k + 2] with w
    and tab[k + 4] with _seg(w) for lines r_lo..r_hi (if lines); see :func:`_quadrant`."""
    if cols:
        for c in range(c_lo, c_hi + 1):
            tab[k, c - c_lo] = _seg(c - cu, r)
    if lines:
        for ln in range(r_lo, r_hi + 1):
            y = ln - cv
            w = math.sqrt(r * r - y * y) if abs(y) < r else -1.0
            tab[k + 2, ln - r_lo] = w
            tab[k + 4, ln - r_lo] = _seg(w, r) if w >= 0.0 else 0.0


@numba.njit(cache=True)
def _tables(cu, cv, r_out, r_in, c0, c1, r0, r1, tab, key):
    """Make a disc's or ring's tables in tab, keeping those still valid from its last
    frame: columns are a function of (cu, r_out, r_in) alone (their range too), lines of
    (cv, r_out, r_in), and key (4,) holds the values of the tables in tab (NaN: none). A
    ball moving horizontally reuses its line tables."""
    same_r = r_out == key[2] and r_in == key[3]
    cols, lines = not (same_r and cu == key[0]), not (same_r and cv == key[1])
    _round_tables(cu, cv, r_out, c0, c1, r0, r1, tab, 0, cols, lines)
    if r_in > 0.0:
        _round_tables(cu, cv, r_in, c0, c1, r0, r1, tab, 1, cols, lines)
    key[0], key[1], key[2], key[3] = cu, cv, r_out, r_in


@numba.njit(cache=True)
def _disc_cols(cu, y0, r, w):
    """Column ranges of a disc (centre column cu, radius r px) on the band [y0, y0 + 1)
    relative to its centre row: [e0, e1) columns it touches, [f0, f1) columns it fills."""
    y1 = y0 + 1.0
    lo = 0.0 if y0 < 0.0 < y1 else min(abs(y0), abs(y1))
    hi = max(abs(y0), abs(y1))
    if r <= 0.0 or lo >= r:
        return 0, 0, 0, 0
    smax = math.sqrt(r * r - lo * lo)
    e0 = int(min(max(math.floor(cu - smax), 0.0), w))
    e1 = int(min(max(math.ceil(cu + smax), 0.0), w))
    if hi >= r:
        return e0, e1, 0, 0
    smin = math.sqrt(r * r - hi * hi)
    f0 = int(min(max(math.ceil(cu - smin), 0.0), w))
    f1 = int(min(max(math.floor(cu + smin), 0.0), w))
    return e0, e1, f0, max(f0, f1)


@numba.njit(cache=True, inline="always")
def _disc_cols_tab(cu, y0, yb, r, wa, wb, w_mid, w):
    """:func:`_disc_cols` (r > 0) from the row's line values: ``wa``, ``wb`` the half
    chords of lines y0 and yb (as :func:`_round_tables` makes them), ``w_mid`` that of the
    centre line; a square root is taken only if ``y0 + 1.0`` is not exactly ``yb``."""
    y1 = y0 + 1.0
    lo = 0.0 if y0 < 0.0 < y1 else min(abs(y0), abs(y1))
    hi = max(abs(y0), abs(y1))
    if lo >= r:
        return 0, 0, 0, 0
    if lo == 0.0 and not (y0 == 0.0 or y1 == 0.0):
        smax = w_mid
    elif lo == abs(y0):
        smax = wa
    elif y1 == yb:
        smax = wb
    else:
        smax = math.sqrt(r * r - lo * lo)
    e0 = int(min(max(math.floor(cu - smax), 0.0), w))
    e1 = int(min(max(math.ceil(cu + smax), 0.0), w))
    if hi >= r:
        return e0, e1, 0, 0
    if hi == abs(y0):
        smin = wa
    elif y1 == yb:
        smin = wb
    else:
        smin = math.sqrt(r * r - hi * hi)
    f0 = int(min(max(math.ceil(cu - smin), 0.0), w))
    f1 = int(min(max(math.floor(cu + smin), 0.0), w))
    return e0, e1, f0, max(f0, f1)


@numba.njit(cache=True, inline="always")
def _band_area(u, ya, yb, r_out, wa, sa, wb, sb, sx, r_in, ia, ja, ib, jb, si):
    """Area of the disc (annulus) on the row band [ya, yb) left of the column line at u
    from the centre; the other arguments are the tables' values (see :func:`_quadrant`)."""
    v = _quadrant(u, yb, r_out, wb, sb, sx) - _quadrant(u, ya, r_out, wa, sa, sx)
    if r_in > 0.0:
        v -= _quadrant(u, yb, r_in, ib, jb, si) - _quadrant(u, ya, r_in, ia, ja, si)
    return v


@numba.njit(cache=True)
def _draw_round(img, cov, direct, cu, cv, r_out, r_in, col, tab, key):
    """Disc (r_in = 0) or annulus, centre (cu, cv) and radii in pixels; returns its rows.

    Per row: the pixels its boundary crosses (runs of columns) get exact coverage, each
    from the band area left of its two column lines; the columns it fills are filled.
    """
    h, w = img.shape[0], img.shape[1]
    r0 = int(min(max(math.floor(cv - r_out), 0.0), h))
    r1 = int(min(max(math.ceil(cv + r_out), 0.0), h))
    c0 = int(min(max(math.floor(cu - r_out), 0.0), w))
    c1 = int(min(max(math.ceil(cu + r_out), 0.0), w))
    if r0 >= r1 or c0 >= c1:
        return r0, r0
    _tables(cu, cv, r_out, r_in, c0, c1, r0, r1, tab, key)
    mid, mid_in = math.sqrt(r_out * r_out - 0.0 * 0.0), math.sqrt(r_in * r_in - 0.0 * 0.0)
    k0, k1, k2 = col[0], col[1], col[2]
    for r in range(r0, r1):
        i, ya, yb = r - r0, r - cv, r + 1.0 - cv
        wa, sa, wb, sb = tab[2, i], tab[4, i], tab[2, i + 1], tab[4, i + 1]
        ia, ja, ib, jb = tab[3, i], tab[5, i], tab[3, i + 1], tab[5, i + 1]
        e0, e1, f0, f1 = _disc_cols_tab(cu, ya, yb, r_out, wa, wb, mid, w)
        h0 = h1 = g0 = g1 = 0  # [h0, h1) touched by the hole, [g0, g1) inside it
        if r_in > 0.0:
            h0, h1, g0, g1 = _disc_cols_tab(cu, ya, yb, r_in, ia, ib, mid_in, w)
        row, crow = img[r], cov[r if not direct else 0]
        # Columns [e0, e1) minus the skipped runs, which are disjoint and in this order:
        # filled left of the hole's outline, the hole, filled right of it.
        c = e0
        for k in range(4):
            if k == 0:
                s0, s1 = f0, min(f1, h0)
            elif k == 1:
                s0, s1 = g0, g1
            elif k == 2:
                s0, s1 = max(f0, h1), f1
            else:
                s0, s1 = e1, e1
            if s0 >= s1 and k < 3:
                continue
            if c < s0:  # a run of boundary pixels [c, s0)
                sx, si = tab[0, c - c0], tab[1, c - c0]
                last = _band_area(
                    c - cu, ya, yb, r_out, wa, sa, wb, sb, sx, r_in, ia, ja, ib, jb, si
                )
                for x in range(c + 1, s0 + 1):
                    sx, si = tab[0, x - c0], tab[1, x - c0]
                    v = _band_area(
                        x - cu, ya, yb, r_out, wa, sa, wb, sb, sx, r_in, ia, ja, ib, jb, si
                    )
                    a = v - last
                    last = v
                    if direct:
                        row[x - 1, 0] = _blend(row[x - 1, 0], k0, a)
                        row[x - 1, 1] = _blend(row[x - 1, 1], k1, a)
                        row[x - 1, 2] = _blend(row[x - 1, 2], k2, a)
                    else:
                        crow[x - 1] += a
            if k != 1:
                for x in range(s0, s1):
                    if direct:
                        row[x, 0] = k0
                        row[x, 1] = k1
                        row[x, 2] = k2
                    else:
                        crow[x] += 1.0
            c = max(c, s1)
    return r0, r1


@numba.njit(cache=True)
def _draw_disc(img, cu, cv, r_out, col, tab, key):
    """:func:`_draw_round` for a disc drawn directly (the common case), same values."""
    h, w = img.shape[0], img.shape[1]
    r0 = int(min(max(math.floor(cv - r_out), 0.0), h))
    r1 = int(min(max(math.ceil(cv + r_out), 0.0), h))
    c0 = int(min(max(math.floor(cu - r_out), 0.0), w))
    c1 = int(min(max(math.ceil(cu + r_out), 0.0), w))
    if r0 >= r1 or c0 >= c1:
        return r0, r0
    _tables(cu, cv, r_out, 0.0, c0, c1, r0, r1, tab, key)
    w_mid = math.sqrt(r_out * r_out - 0.0 * 0.0)
    k0, k1, k2 = col[0], col[1], col[2]
    for r in range(r0, r1):
        i, ya, yb = r - r0, r - cv, r + 1.0 - cv
        wa, sa, wb, sb = tab[2, i], tab[4, i], tab[2, i + 1], tab[4, i + 1]
        e0, e1, f0, f1 = _disc_cols_tab(cu, ya, yb, r_out, wa, wb, w_mid, w)
        row = img[r]
        a, b = e0, (f0 if f0 < f1 else e1)  # boundary runs [e0, f0) and [f1, e1)
        while True:
            if a < b:
                u, sx = a - cu, tab[0, a - c0]
                last = _quadrant(u, yb, r_out, wb, sb, sx) - _quadrant(u, ya, r_out, wa, sa, sx)
                for c in range(a, b):
                    u, sx = c + 1 - cu, tab[0, c + 1 - c0]
                    v = _quadrant(u, yb, r_out, wb, sb, sx) - _quadrant(u, ya, r_out, wa, sa, sx)
                    row[c, 0] = _blend(row[c, 0], k0, v - last)
                    row[c, 1] = _blend(row[c, 1], k1, v - last)
                    row[c, 2] = _blend(row[c, 2], k2, v - last)
                    last = v
            if b == e1:
                break
            a, b = f1, e1
        for c in range(f0, f1):
            row[c, 0] = k0
            row[c, 1] = k1
            row[c, 2] = k2
    return r0, r1


@numba.njit(cache=True)
def _fill_background(out, bg):
    """Set every pixel of the uint8 array out (..., 3), C-contiguous, to bg."""
    if bg[0] == bg[1] and bg[1] == bg[2]:
        out.fill(bg[0])
    else:
        flat = out.reshape(out.size)
        for i in range(0, out.size, 3):
            flat[i], flat[i + 1], flat[i + 2] = bg[0], bg[1], bg[2]


@numba.njit(cache=True, inline="always")
def _pose(x, y, cs, sn, lx, ly, scale):
    """Pixel (col, row) of body-frame point (lx, ly) of a body at (x, y), turned (cs, sn).
    A point at the body origin needs no rotation (same value, up to the sign of zero)."""
    if lx == 0.0 and ly == 0.0:
        return x * scale, (_WS - y) * scale
    return (x + cs * lx - sn * ly) * scale, (_WS - (y + sn * lx + cs * ly)) * scale


@numba.njit(cache=True, nogil=True)
def render_geometry(
    out, kind, body, params, verts, vstart, vcount, colors, layer_end, pos, ang, bg
):
    """Draw a geometry table (see :class:`~physim.geometry.Geometry`) posed by pos (T, B, 2)
    and ang (T, B) into out (T, H, W, 3) uint8 over background bg (3,) uint8."""
    n_t, h, w = out.shape[0], out.shape[1], out.shape[2]
    scale = w / _WS
    _fill_background(out, bg)
    n_p = kind.shape[0]
    layered = False  # does any layer have several primitives (coverage summed in cov)?
    p = 0
    while p < n_p:
        layered |= layer_end[p] - p > 1
        p = layer_end[p]
    cov = np.zeros((h, w) if layered else (1, 1))
    nv = (vcount.max() if vcount.size else 0) + 8
    pu, pv = np.empty(nv), np.empty(nv)  # posed polygon
    buf = np.empty((7, nv))  # polygon scratch, see _draw_poly
    tabs = np.empty((n_p, 6, max(h, w) + 2))  # disc tables of each primitive, see _tables
    keys = np.full((n_p, 4), np.nan)
    for t in range(n_t):
        img = out[t]
        p = 0
        while p < n_p:
            end = layer_end[p]
            direct = end - p == 1
            lo, hi = h, 0
            for q in range(p, end):
                b = body[q]
                x, y, th = pos[t, b, 0], pos[t, b, 1], ang[t, b]
                cs, sn = (1.0, 0.0) if th == 0.0 else (math.cos(th), math.sin(th))
                if kind[q] == POLYGON:
                    s0, n = vstart[q], vcount[q]
                    for i in range(n):
                        pu[i], pv[i] = _pose(
                            x, y, cs, sn, verts[s0 + i, 0], verts[s0 + i, 1], scale
                        )
                    r0, r1 = _draw_poly(img, cov, direct, pu, pv, n, colors[q], buf)
                else:
                    cu, cv = _pose(x, y, cs, sn, params[q, 0], params[q, 1], scale)
                    r_in = params[q, 3] * scale if kind[q] == RING else 0.0
                    r_out = params[q, 2] * scale
                    if direct and r_in == 0.0:
                        r0, r1 = _draw_disc(img, cu, cv, r_out, colors[q], tabs[q], keys[q])
                    else:
                        r0, r1 = _draw_round(
                            img, cov, direct, cu, cv, r_out, r_in, colors[q], tabs[q], keys[q]
                        )
                lo, hi = min(lo, r0), max(hi, r1)
            if not direct:  # blend the layer's summed coverage, then clear it
                for r in range(lo, hi):
                    for c in range(w):
                        if cov[r, c] > 0.0:
                            for ch in range(3):
                                img[r, c, ch] = _blend(img[r, c, ch], colors[p, ch], cov[r, c])
                            cov[r, c] = 0.0
            p = end


@numba.njit(cache=True)
def _check_discs(pos, ang, radii, shapes):
    """0 if the disc inputs are valid, else the code of the first problem found."""
    for v in range(pos.shape[0]):
        for t in range(pos.shape[1]):
            for q in range(pos.shape[2]):
                x, y, th = pos[v, t, q, 0], pos[v, t, q, 1], ang[v, t, q]
                if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(th)):
                    return 1
    for v in range(radii.shape[0]):
        for q in range(radii.shape[1]):
            if not (math.isfinite(radii[v, q]) and radii[v, q] >= 0.0):
                return 2
            if not 0 <= shapes[v, q] < len(world.SHAPES):
                return 3
    return 0


DISC_ERRORS = (
    "",
    "positions and angles must be finite",
    "radii must be finite and >= 0",
    f"shape_codes must be codes of {list(world.SHAPES)}",
)


@numba.njit(cache=True, nogil=True)
def render_discs(out, pos, ang, radii, shapes, rgb, bg):
    """Draw V videos of N objects each (one primitive per object, body i = object i, as
    :meth:`~physim.geometry.Geometry.from_objects` builds them) into out (V, T, H, W, 3).

    pos (V, T, N, 2) world units; ang (V, T, N) radians; radii (V, N) world units (objects
    with radius 0 are not drawn); shapes (V, N) codes of ``world.SHAPES``; rgb (V, N, 3)
    uint8; bg (3,) uint8. Returns 0, or leaves out untouched and returns the index of a
    message in :data:`DISC_ERRORS` if the inputs are invalid.
    """
    err = _check_discs(pos, ang, radii, shapes)
    if err:
        return err
    n_v, n_t, h, w = out.shape[0], out.shape[1], out.shape[2], out.shape[3]
    n_o = radii.shape[1]
    scale = w / _WS
    cov = np.zeros((1, 1))  # every primitive is its own layer: drawn directly
    pu, pv = np.empty(4), np.empty(4)
    buf = np.empty((7, 12))
    tabs = np.empty((n_o, 6, max(h, w) + 2))  # disc tables of each object, see _tables
    keys = np.full((n_o, 4), np.nan)
    for v in range(n_v):
        for t in range(n_t):
            img = out[v, t]
            _fill_background(img, bg)  # frame by frame: drawing finds it in cache
            for q in range(n_o):
                rad = radii[v, q]
                if rad == 0.0:
                    continue
                x, y, col = pos[v, t, q, 0], pos[v, t, q, 1], rgb[v, q]
                if shapes[v, q] == _SQUARE:
                    th = ang[v, t, q]
                    cs, sn = (1.0, 0.0) if th == 0.0 else (math.cos(th), math.sin(th))
                    for i in range(4):
                        lx, ly = _CORNERS[i, 0] * rad, _CORNERS[i, 1] * rad
                        pu[i], pv[i] = _pose(x, y, cs, sn, lx, ly, scale)
                    _draw_poly(img, cov, True, pu, pv, 4, col, buf)
                    continue
                cu, cv, r_out = x * scale, (_WS - y) * scale, rad * scale
                if shapes[v, q] == _RING:
                    r_in = _RING_INNER * rad * scale
                    _draw_round(img, cov, True, cu, cv, r_out, r_in, col, tabs[q], keys[q])
                else:
                    _draw_disc(img, cu, cv, r_out, col, tabs[q], keys[q])
    return 0
