"""Anti-aliased rasterizer: body geometry and poses in, uint8 video frames out.

Each pixel gets, from every primitive, its exact covered area fraction ``a`` and is blended
as ``pixel + (colour - pixel) * a`` (rounded half up), so a rendered ball's colour-weighted
centroid and area are those of the true disc. Circles and rings use the closed-form area of
a disc cut by a pixel's corner lines (one ``asin`` per row and column line of the bounding
box, none per pixel); a convex polygon is clipped to each pixel row and its piecewise-linear
height profile integrated over each pixel's columns. Only a primitive's bounding box is
visited and only pixels its boundary crosses get exact coverage; covered runs are filled
directly. Arithmetic is plain float64 (no fastmath, no threads), so frames are
bit-identical across runs and processes.

Coordinates follow :mod:`physim.world`: world ``(x, y)`` maps to continuous pixel
``col = x / 10 * R``, ``row = (10 - y) / 10 * R``; pixel ``(row, col)`` covers
``[row, row + 1) × [col, col + 1)``.

A scene's drawing is a :class:`Geometry` table of primitives (circle, ring, convex
polygon), each attached to a body whose pose (position, angle) moves it::

    geom = Geometry.from_objects(objects)                        # one primitive per object
    frames = render_bodies(geom, positions, angles, resolution=128)  # (T, R, R, 3) uint8

Scenes of discs (one ball, square or ring per body, as in :class:`~physim.world.Objects`)
have a fast path that needs no table and draws a whole batch of videos in one Numba call,
byte for byte the same as the table path (the data loaders' entry point)::

    render_discs_into(out, positions, radii, shape_codes, rgb, angles)  # out (V, T, R, R, 3)

The Numba kernels live in :mod:`physim.raster`.
"""

from __future__ import annotations

import sys
import types

import numpy as np

from physim import raster, world
from physim.geometry import CIRCLE, POLYGON, RING, Geometry

__all__ = [
    "CIRCLE",
    "POLYGON",
    "RING",
    "Geometry",
    "render",
    "render_bodies",
    "render_discs_into",
    "render_into",
]

_WHITE = np.array([255, 255, 255], dtype=np.uint8)

# --------------------------------------------------------------------------- public API


def _check_resolution(resolution) -> int:
    if not isinstance(resolution, int | np.integer) or isinstance(resolution, bool):
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    if resolution <= 0:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    return int(resolution)


def _check_background(background) -> np.ndarray:
    if isinstance(background, tuple) and background == (255, 255, 255):
        return _WHITE  # the default, without array work
    bg = np.asarray(background)
    if bg.shape != (3,) or not np.all((bg >= 0) & (bg <= 255) & (bg == np.round(bg))):
        raise ValueError(f"background must be an RGB triple of integers 0..255, got {background!r}")
    return bg.astype(np.uint8)


def _check_out(out, lead: tuple, n_t: int) -> None:
    """``out`` must be a C-contiguous uint8 array ``lead + (n_t, R, R, 3)``, R >= 1."""
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous uint8 numpy array")
    k = len(lead)
    ok = out.ndim == k + 4 and out.shape[: k + 1] == lead + (n_t,) and out.shape[-1] == 3
    if not ok or out.shape[-3] != out.shape[-2] or out.shape[-2] <= 0:
        want = ", ".join(str(d) for d in lead + (n_t,))
        raise ValueError(f"out must be ({want}, R, R, 3), got {out.shape}")


def _check_poses(positions, angles, n_bodies: int):
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    if pos.ndim < 3 or pos.shape[-1] != 2 or pos.shape[-2] < n_bodies:
        raise ValueError(
            f"positions must be (..., T, B, 2) with B >= {n_bodies} bodies, got {pos.shape}"
        )
    if angles is None:
        ang = np.zeros(pos.shape[:-1])
    else:
        ang = np.ascontiguousarray(angles, dtype=np.float64)
        if ang.shape != pos.shape[:-1]:
            raise ValueError(f"angles must be {pos.shape[:-1]}, got {ang.shape}")
    if not (np.isfinite(pos).all() and np.isfinite(ang).all()):
        raise ValueError("positions and angles must be finite")
    return pos, ang


def render_into(out, geometry: Geometry, positions, angles=None, background=(255, 255, 255)):
    """Render into a preallocated buffer and return it (no allocation; for data loaders).

    Args:
      out: (T, R, R, 3) C-contiguous uint8 array, overwritten; R is the resolution.
      geometry, positions, angles, background: as in :func:`render_bodies`.
    """
    if not isinstance(geometry, Geometry):
        raise ValueError(f"geometry must be a Geometry, got {type(geometry).__name__}")
    pos, ang = _check_poses(positions, angles, geometry.n_bodies)
    if pos.ndim != 3:
        raise ValueError(f"positions must be (T, B, 2), got {pos.shape}")
    bg = _check_background(background)
    _check_out(out, (), pos.shape[0])
    g = geometry
    raster.render_geometry(out, g.kind, g.body, g.params, g.verts, g.vert_start, g.vert_count,
                           g.colors, g.layer_end, pos, ang, bg)  # fmt: skip
    return out


def render_bodies(
    geometry: Geometry,
    positions,
    angles=None,
    resolution: int = world.DEFAULT_RESOLUTION,
    background=(255, 255, 255),
) -> np.ndarray:
    """Draw a geometry table posed by body states, anti-aliased by exact area coverage.

    Args:
      geometry: the primitives and the bodies that carry them.
      positions: (T, B, 2) world units, body origins (y up); B >= ``geometry.n_bodies``.
      angles: (T, B) radians, counter-clockwise body rotations; None means all zero.
      resolution: R, pixels per side.
      background: RGB triple 0..255 (default white).

    Returns:
      (T, R, R, 3) uint8 frames, row 0 at the top of the world (y = 10).
    """
    res = _check_resolution(resolution)
    n_t = np.shape(positions)[0] if np.ndim(positions) else 0
    out = np.empty((n_t, res, res, 3), dtype=np.uint8)
    return render_into(out, geometry, positions, angles, background)


def render_discs_into(
    out, positions, radii, shape_codes, rgb, angles=None, background=(255, 255, 255)
):
    """Draw scenes of discs into a preallocated buffer, one video or a batch in one call.

    Object i is body i, drawn as :meth:`Geometry.from_objects` draws it (ball: circle,
    square: half side r, ring: inner radius ``RING_INNER * r``), in object order; the
    frames are byte for byte those of :func:`render_into` with that geometry. Objects with
    radius 0 are not drawn (padding in batches of unequal object counts).

    Args:
      out: (V, T, R, R, 3), or (T, R, R, 3) for one video, C-contiguous uint8, overwritten.
      positions: (V, T, N, 2) (or (T, N, 2)) world units, object centres (y up).
      radii: (V, N) (or (N,)) world units, >= 0.
      shape_codes: (V, N) (or (N,)) integer codes of :data:`physim.world.SHAPES`.
      rgb: (V, N, 3) (or (N, 3)) colours, integers 0..255.
      angles: (V, T, N) (or (T, N)) radians CCW (only squares show them); None means zero.
      background: RGB triple 0..255 (default white).

    Returns:
      ``out``.
    """
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    one = pos.ndim == 3
    if pos.ndim not in (3, 4) or pos.shape[-1] != 2:
        raise ValueError(f"positions must be (V, T, N, 2) or (T, N, 2), got {pos.shape}")
    n_t, n = pos.shape[-3], pos.shape[-2]
    lead = pos.shape[:-3]
    ang = np.zeros(pos.shape[:-1]) if angles is None else np.ascontiguousarray(angles, np.float64)
    if ang.shape != pos.shape[:-1]:
        raise ValueError(f"angles must be {pos.shape[:-1]}, got {ang.shape}")
    rad = np.ascontiguousarray(radii, dtype=np.float64)
    shp = np.asarray(shape_codes)
    if rad.shape != lead + (n,) or shp.shape != lead + (n,):
        raise ValueError(f"radii and shape_codes must be {lead + (n,)}, got "
                         f"{rad.shape} and {shp.shape}")  # fmt: skip
    if shp.dtype.kind not in "iu":
        raise ValueError(f"shape_codes must be integer codes of {list(world.SHAPES)}")
    col = np.ascontiguousarray(rgb)
    if col.shape != lead + (n, 3):
        raise ValueError(f"rgb must be {lead + (n, 3)}, got {col.shape}")
    if col.dtype != np.uint8:
        if not (col.dtype.kind in "iu" and ((col >= 0) & (col <= 255)).all()):
            raise ValueError("rgb must hold integers 0..255")
        col = col.astype(np.uint8)
    bg = _check_background(background)
    _check_out(out, lead, n_t)
    if one:  # a batch of one video (views, no copies)
        out5, pos, ang = out[None], pos[None], ang[None]
        rad, shp, col = rad[None], shp[None], col[None]
    else:
        out5 = out
    err = raster.render_discs(out5, pos, ang, rad, shp.astype(np.int32), col, bg)
    if err:
        raise ValueError(raster.DISC_ERRORS[err])
    return out


def render(trajectory, objects: world.Objects, resolution: int = world.DEFAULT_RESOLUTION):
    """Frames of a simulated video: (T, R, R, 3) uint8, objects drawn in order on white.

    Args:
      trajectory: :class:`physim.record.Trajectory` with positions (T, N, 2) world units and
        angles (T, N) radians.
      objects: :class:`physim.world.Objects` of the same N bodies (shapes, colours, radii).
      resolution: R, pixels per side (default 128).
    """
    if trajectory.positions.shape[1] != objects.n:
        raise ValueError(
            f"trajectory has {trajectory.positions.shape[1]} bodies, objects has {objects.n}"
        )
    res = _check_resolution(resolution)
    out = np.empty((trajectory.positions.shape[0], res, res, 3), dtype=np.uint8)
    return render_discs_into(out, trajectory.positions, objects.radii, objects.shape_codes,
                             objects.rgb, trajectory.angles)  # fmt: skip


class _CallableModule(types.ModuleType):
    """``physim.render`` names both this module and :func:`render` (the package re-exports
    the function lazily, but importing the submodule rebinds the name to the module), so
    calling the module calls :func:`render` and ``physim.render(traj, objects)`` always works."""

    def __call__(self, trajectory, objects, resolution=world.DEFAULT_RESOLUTION):
        return render(trajectory, objects, resolution)


sys.modules[__name__].__class__ = _CallableModule
