"""Drawing geometry of a scene: a table of primitives carried by bodies.

A body is anything with a pose (position in world units, angle in radians CCW) at every
frame: a simulated ball, a jar, a static bar. Each primitive (circle, ring, convex polygon)
is fixed in its body's frame; :func:`physim.render.render_bodies` poses and draws them.
Composite bodies are several primitives on one body (a jar is three rectangles, a static
chain is several circles)::

    g = Geometry.from_objects(objects)                      # bodies 0..N-1: the objects
    g = g.add_rect(body=N, width=0.2, height=1.0, color="black", center=(-0.5, 0.0))
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from physim import world

CIRCLE, RING, POLYGON = 0, 1, 2  # Geometry.kind codes
_SQUARE_CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
# Geometry kind of each world.SHAPES code (ball, square, ring).
_KIND_OF_SHAPE = np.array([{"ball": CIRCLE, "square": POLYGON, "ring": RING}[s]
                           for s in world.SHAPES], dtype=np.int32)  # fmt: skip


def _rgb(color) -> np.ndarray:
    if isinstance(color, str):
        return world.color_rgb(color)
    c = np.asarray(color)
    if c.shape != (3,) or not np.all((c >= 0) & (c <= 255) & (c == np.round(c))):
        raise ValueError(f"colour must be a palette name or an RGB triple in 0..255, got {color!r}")
    return c.astype(np.uint8)


def _check_convex(v: np.ndarray) -> None:
    if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3 or not np.all(np.isfinite(v)):
        raise ValueError(f"polygon needs >= 3 finite (x, y) vertices, got shape {v.shape}")
    e = np.roll(v, -1, axis=0) - v
    cross = e[:, 0] * np.roll(e[:, 1], -1) - e[:, 1] * np.roll(e[:, 0], -1)
    turn = np.arctan2(cross, np.sum(e * np.roll(e, -1, axis=0), axis=1))
    if not (np.all(cross >= 0) or np.all(cross <= 0)) or abs(abs(turn.sum()) - 2 * np.pi) > 1e-6:
        raise ValueError("polygon must be convex and simple (vertices in order around it)")


@dataclasses.dataclass(frozen=True, eq=False)
class Geometry:
    """Table of P drawing primitives, each moved rigidly by one body's pose.

    Primitives are drawn in table order (later over earlier). Consecutive primitives with the
    same body and colour form one layer: their coverages add (clipped to 1) before blending,
    so a composite body built from pieces that abut without overlapping shows no seams.
    Where such pieces overlap, pixels crossed by both outlines are drawn slightly too
    strongly (interiors are exact); pieces in separate layers blend one over the other.

    Attributes:
      kind: (P,) int32, :data:`CIRCLE`, :data:`RING` or :data:`POLYGON`.
      body: (P,) int32 index of the body whose pose moves the primitive.
      params: (P, 4) float64 world units in the body frame: circle ``(cx, cy, r, 0)``,
        ring ``(cx, cy, r_out, r_in)``, polygon unused (zeros).
      verts: (V, 2) float64 polygon vertices in the body frame, world units, each polygon's
        vertices in order around it (either direction), convex.
      vert_start: (P,) int32 first row of ``verts`` of each polygon (0 for others).
      vert_count: (P,) int32 number of vertices of each polygon (0 for others).
      colors: (P, 3) uint8 RGB.
    """

    kind: np.ndarray
    body: np.ndarray
    params: np.ndarray
    verts: np.ndarray
    vert_start: np.ndarray
    vert_count: np.ndarray
    colors: np.ndarray
    layer_end: np.ndarray = dataclasses.field(init=False, repr=False)
    n_bodies: int = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        # Fixed dtypes and C order: the Numba kernels compile once for these.
        for name, dtype in [("kind", np.int32), ("body", np.int32), ("params", np.float64),
                            ("verts", np.float64), ("vert_start", np.int32),
                            ("vert_count", np.int32), ("colors", np.uint8)]:  # fmt: skip
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype))
        p = self.kind.shape[0]
        shapes = [self.kind.shape, self.body.shape, self.vert_start.shape, self.vert_count.shape]
        if any(s != (p,) for s in shapes) or self.params.shape != (p, 4):
            raise ValueError("Geometry arrays disagree on the number of primitives")
        if self.colors.shape != (p, 3) or self.verts.ndim != 2 or self.verts.shape[1] != 2:
            raise ValueError("Geometry needs colors (P, 3) and verts (V, 2)")
        if ((self.kind < CIRCLE) | (self.kind > POLYGON)).any() or (self.body < 0).any():
            raise ValueError("Geometry kinds must be CIRCLE, RING or POLYGON and bodies >= 0")
        poly = self.kind == POLYGON
        start, count = self.vert_start[poly], self.vert_count[poly]
        if (count < 3).any() or (start < 0).any() or (start + count > len(self.verts)).any():
            raise ValueError("Geometry polygons need >= 3 vertices inside verts")
        if not (np.isfinite(self.params).all() and np.isfinite(self.verts).all()):
            raise ValueError("Geometry params and verts must be finite")
        # Layer p spans primitives [p, layer_end[p]); only entries at layer starts are used.
        same = (self.body[:-1] == self.body[1:]) & (self.colors[:-1] == self.colors[1:]).all(1)
        last = np.append(np.flatnonzero(~same), p - 1)  # last primitive of each layer
        end = last[np.searchsorted(last, np.arange(p))] + 1 if p else np.zeros(0)
        object.__setattr__(self, "layer_end", end.astype(np.int32))
        # Number of bodies the table refers to (max(body) + 1; 0 when empty).
        object.__setattr__(self, "n_bodies", int(self.body.max()) + 1 if p else 0)

    @staticmethod
    def empty() -> Geometry:
        """A table with no primitives."""
        z = np.zeros(0, dtype=np.int32)
        return Geometry(z, z, np.zeros((0, 4)), np.zeros((0, 2)), z, z, np.zeros((0, 3), np.uint8))

    @property
    def n_primitives(self) -> int:
        return int(self.kind.shape[0])

    def _append(self, kind, body, params, color, verts=None) -> Geometry:
        if int(body) != body or body < 0:
            raise ValueError(f"body must be a non-negative integer, got {body!r}")
        verts = np.zeros((0, 2)) if verts is None else verts
        i32 = np.int32
        return Geometry(
            kind=np.append(self.kind, i32(kind)),
            body=np.append(self.body, i32(body)),
            params=np.vstack([self.params, np.asarray(params, dtype=np.float64)[None]]),
            verts=np.vstack([self.verts, verts]),
            vert_start=np.append(self.vert_start, i32(self.verts.shape[0] if len(verts) else 0)),
            vert_count=np.append(self.vert_count, i32(len(verts))),
            colors=np.vstack([self.colors, _rgb(color)[None]]),
        )

    def add_circle(self, body: int, radius: float, color, center=(0.0, 0.0)) -> Geometry:
        """Table with a disc of ``radius`` world units at ``center`` (body frame) appended."""
        if not (np.isfinite(radius) and radius > 0) or not np.all(np.isfinite(center)):
            raise ValueError(f"circle needs a finite radius > 0 and centre, got {radius}, {center}")
        return self._append(CIRCLE, body, (center[0], center[1], radius, 0.0), color)

    def add_ring(self, body: int, radius: float, color, inner=None, center=(0.0, 0.0)) -> Geometry:
        """Table with an annulus appended; ``inner`` defaults to ``world.RING_INNER * radius``."""
        inner = world.RING_INNER * radius if inner is None else inner
        if not (np.isfinite(radius) and 0 < inner < radius) or not np.all(np.isfinite(center)):
            raise ValueError(f"ring needs 0 < inner < radius, got {inner}, {radius}")
        return self._append(RING, body, (center[0], center[1], radius, inner), color)

    def add_polygon(self, body: int, verts, color) -> Geometry:
        """Table with a convex polygon appended; ``verts`` (n, 2) world units, body frame."""
        v = np.asarray(verts, dtype=np.float64)
        _check_convex(v)
        return self._append(POLYGON, body, (0.0, 0.0, 0.0, 0.0), color, v)

    def add_rect(
        self, body: int, width: float, height: float, color, center=(0.0, 0.0), angle=0.0
    ) -> Geometry:
        """Table with a ``width × height`` rectangle (world units) appended, centred at
        ``center`` and turned ``angle`` radians CCW in the body frame."""
        if not (width > 0 and height > 0):
            raise ValueError(f"rectangle needs width, height > 0, got {width}, {height}")
        c, s = math.cos(angle), math.sin(angle)
        local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * (0.5 * width, 0.5 * height)
        rot = local @ np.array([[c, s], [-s, c]]) + np.asarray(center, dtype=np.float64)
        return self.add_polygon(body, rot, color)

    @staticmethod
    def from_objects(objects: world.Objects) -> Geometry:
        """One primitive per object, body i = object i: ball → circle of its radius,
        square → square of half side r, ring → ring with inner radius ``RING_INNER * r``."""
        codes = np.array([world.shape_code(s) for s in objects.shapes], dtype=np.int32)
        return Geometry.from_discs(objects.radii, codes, objects.rgb)

    @staticmethod
    def from_discs(radii, shape_codes, rgb) -> Geometry:
        """:meth:`from_objects` from arrays (the same table), without per-object Python work.

        Args:
          radii: (N,) world units (a square's half side, a ring's outer radius), finite.
          shape_codes: (N,) integer codes of :data:`physim.world.SHAPES`.
          rgb: (N, 3) colours, integers 0..255.
        """
        r = np.ascontiguousarray(radii, dtype=np.float64)
        code, c = np.asarray(shape_codes), np.asarray(rgb)
        n = r.shape[0] if r.ndim == 1 else -1
        if n < 0 or code.shape != (n,) or code.dtype.kind not in "iu" or c.shape != (n, 3):
            raise ValueError(f"need radii (N,), integer shape_codes (N,) and rgb (N, 3), got "
                             f"{r.shape}, {code.shape} {code.dtype} and {c.shape}")  # fmt: skip
        if n and (code.min() < 0 or code.max() >= len(world.SHAPES)):
            raise ValueError(f"cannot draw shape codes {np.unique(code).tolist()}")
        if c.dtype != np.uint8:
            if c.dtype.kind not in "iu" or (n and (c.min() < 0 or c.max() > 255)):
                raise ValueError("rgb must hold integers 0..255")
            c = c.astype(np.uint8)
        if not np.isfinite(r).all():
            raise ValueError("Geometry params and verts must be finite")
        kind = _KIND_OF_SHAPE[code]
        square = kind == POLYGON
        params = np.zeros((n, 4))
        params[:, 2] = np.where(square, 0.0, r)
        params[:, 3] = np.where(kind == RING, world.RING_INNER * r, 0.0)
        count = 4 * square.astype(np.int32)
        start = np.where(square, np.cumsum(count, dtype=np.int32) - 4, 0).astype(np.int32)
        verts = (_SQUARE_CORNERS * r[square, None, None]).reshape(-1, 2)
        # Valid by construction: bypass __post_init__ (every body is its own layer).
        g = object.__new__(Geometry)
        body = np.arange(n, dtype=np.int32)
        for name, value in [("kind", kind), ("body", body), ("params", params),
                            ("verts", verts), ("vert_start", start), ("vert_count", count),
                            ("colors", np.ascontiguousarray(c)), ("layer_end", body + 1),
                            ("n_bodies", n)]:  # fmt: skip
            object.__setattr__(g, name, value)
        return g
