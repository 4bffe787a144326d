"""Rigid-body simulation on pymunk: the only module of physim that imports pymunk.

Two uses:

* :func:`simulate_bodies` simulates general 2D rigid bodies (circles and convex
  polygons, static or dynamic, several shapes per body such as a jar) and samples
  their states exactly at frame times. The combinatorial (PHYRE-like) scenes use it.
* :func:`simulate_discs_pymunk` simulates the same disc scenes as the exact
  event-driven simulator (:func:`physim.physics.simulate`) with a small time step; it is
  the independent cross-check of the exact physics.

Scenes are plain frozen dataclasses (:class:`ShapeSpec`, :class:`BodySpec`,
:class:`RigidConfig`) so they can be stored as JSON. Determinism: a fresh
``pymunk.Space`` is built from the description for every video and stepped with a
fixed step and one thread (Chipmunk keeps hidden contact caches, so only a rebuild
from scratch replays bit-identically; pymunk#181). Results are identical for the same
pymunk version and build, which is why the version is pinned and recorded
(:data:`ENGINE`).

Units are world units (the box ``[0, WORLD_SIZE]²``, y up), seconds and radians.
Contact materials follow Box2D's mixing rules so that one per-scene value means the
same as in Box2D: a contact's restitution is ``restitution`` and its friction
``friction`` (pymunk multiplies the two shapes' values, so each shape gets the
square root).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pymunk

from physim import world
from physim.record import WALL_BOTTOM, WALL_LEFT, WALL_RIGHT, WALL_TOP, Trajectory

ENGINE = f"pymunk {pymunk.version} (chipmunk {pymunk.chipmunk_version})"

_WALL_CODES = (WALL_LEFT, WALL_RIGHT, WALL_BOTTOM, WALL_TOP)
_COLLIDE_BODY, _COLLIDE_WALL = 1, 2  # pymunk collision types


@dataclasses.dataclass(frozen=True)
class ShapeSpec:
    """One collision shape of a body, in the body's own frame (world units).

    Attributes:
      kind: ``"circle"`` or ``"poly"``.
      radius: circle radius (> 0) for circles; ignored for polygons.
      offset: circle centre (x, y) in the body frame.
      vertices: convex polygon vertices ((x, y), ...) counter-clockwise, body frame.
    """

    kind: str
    radius: float = 0.0
    offset: tuple[float, float] = (0.0, 0.0)
    vertices: tuple[tuple[float, float], ...] = ()

    def __post_init__(self):
        if self.kind == "circle":
            if not (math.isfinite(self.radius) and self.radius > 0):
                raise ValueError(f"circle radius must be finite and > 0, got {self.radius}")
        elif self.kind == "poly":
            if len(self.vertices) < 3:
                raise ValueError(f"polygon needs >= 3 vertices, got {len(self.vertices)}")
            v = np.asarray(self.vertices, dtype=np.float64)
            if v.shape[1:] != (2,) or not np.all(np.isfinite(v)):
                raise ValueError(f"polygon vertices must be finite (K, 2), got {v.shape}")
            if _signed_area(v) <= 0:
                raise ValueError("polygon vertices must be counter-clockwise with area > 0")
        else:
            raise ValueError(f"shape kind must be 'circle' or 'poly', got {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        if self.kind == "circle":
            return {"kind": "circle", "radius": self.radius, "offset": list(self.offset)}
        return {"kind": "poly", "vertices": [list(v) for v in self.vertices]}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ShapeSpec:
        if d["kind"] == "circle":
            return ShapeSpec("circle", radius=float(d["radius"]), offset=tuple(d["offset"]))
        return ShapeSpec("poly", vertices=tuple(tuple(map(float, v)) for v in d["vertices"]))


@dataclasses.dataclass(frozen=True)
class BodySpec:
    """A rigid body: shapes attached to a reference point (the body origin).

    Attributes:
      kind: descriptive name (``"ball"``, ``"bar"``, ``"jar"``, ``"sticks"``, ...).
      shapes: the body's :class:`ShapeSpec` tuple (body frame).
      position: (x, y) of the body origin in world units at t = 0.
      angle: radians, counter-clockwise, at t = 0.
      static: a static body never moves (infinite mass).
      color: colour name from :data:`physim.world.PALETTE` (for rendering).
      velocity: (vx, vy) of the body origin at t = 0, world units / s.
      angular_velocity: rad / s at t = 0.
      density: mass per unit area of this body's shapes (``None``: the config's).
    """

    kind: str
    shapes: tuple[ShapeSpec, ...]
    position: tuple[float, float]
    angle: float = 0.0
    static: bool = False
    color: str = "phyre_gray"
    velocity: tuple[float, float] = (0.0, 0.0)
    angular_velocity: float = 0.0
    density: float | None = None

    def __post_init__(self):
        if self.density is not None and not self.density > 0:
            raise ValueError(f"body {self.kind!r} density must be > 0, got {self.density}")
        if not self.shapes:
            raise ValueError(f"body {self.kind!r} has no shapes")
        world.color_rgb(self.color)
        vals = (*self.position, self.angle, *self.velocity, self.angular_velocity)
        if not all(math.isfinite(float(x)) for x in vals):
            raise ValueError(f"body {self.kind!r} has a non-finite state {vals}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        return {
            "kind": self.kind,
            "shapes": [s.to_dict() for s in self.shapes],
            "position": list(self.position),
            "angle": self.angle,
            "static": self.static,
            "color": self.color,
            "velocity": list(self.velocity),
            "angular_velocity": self.angular_velocity,
            "density": self.density,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> BodySpec:
        return BodySpec(
            kind=d["kind"],
            shapes=tuple(ShapeSpec.from_dict(s) for s in d["shapes"]),
            position=tuple(map(float, d["position"])),
            angle=float(d["angle"]),
            static=bool(d["static"]),
            color=d["color"],
            velocity=tuple(map(float, d.get("velocity", (0.0, 0.0)))),
            angular_velocity=float(d.get("angular_velocity", 0.0)),
            density=d.get("density"),
        )

    def world_vertices(self) -> list[np.ndarray]:
        """Per shape, its outline in world coordinates at t = 0: polygon vertices (K, 2),
        or for a circle the (1, 2) centre (use the shape's radius)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        rot = np.array([[c, -s], [s, c]])
        out = []
        for sh in self.shapes:
            local = np.atleast_2d(sh.offset if sh.kind == "circle" else sh.vertices)
            out.append(np.asarray(local, np.float64) @ rot.T + np.asarray(self.position))
        return out


@dataclasses.dataclass(frozen=True)
class RigidConfig:
    """Physics constants of a rigid scene (world units, seconds).

    Attributes:
      gravity: (gx, gy) world units / s².
      density: mass per unit area of every dynamic shape.
      friction: Coulomb friction of a contact (body-body and body-wall).
      restitution: restitution of a body-body contact.
      wall_restitution: restitution of a body-wall contact (``None``: ``restitution``).
      angular_damping: Box2D-style angular damping c (1/s): ``w *= 1 / (1 + h c)`` per
        step of length h (applied as the compounded factor once per frame).
      substeps: pymunk steps per frame interval (step ``h = dt / substeps``).
      iterations: pymunk solver iterations per step.
      collision_slop: allowed overlap, world units (pymunk's default 0.1 suits pixels).
      overlap_correction: fraction of an overlap (beyond the slop) removed per step by
        pymunk's position bias (Box2D's Baumgarte factor is 0.2; pymunk's default
        removes 10 % per 1/60 s, far too slow for our short steps).
      walls: add the four static sides of the box ``[0, WORLD_SIZE]²``.
      wall_thickness: thickness of those walls (outside the box), world units.
    """

    gravity: tuple[float, float] = (0.0, 0.0)
    density: float = world.DENSITY
    friction: float = 0.0
    restitution: float = 1.0
    wall_restitution: float | None = None
    angular_damping: float = 0.0
    substeps: int = 100
    iterations: int = 20
    collision_slop: float = 1e-4
    overlap_correction: float = 0.2
    walls: bool = False
    wall_thickness: float = 1.0

    def __post_init__(self):
        checks = {
            "density": self.density > 0,
            "friction": self.friction >= 0,
            "restitution": self.restitution >= 0,
            "wall_restitution": self.wall_restitution is None or self.wall_restitution >= 0,
            "angular_damping": self.angular_damping >= 0,
            "substeps": self.substeps >= 1,
            "iterations": self.iterations >= 1,
            "collision_slop": self.collision_slop >= 0,
            "overlap_correction": 0 < self.overlap_correction < 1,
            "wall_thickness": self.wall_thickness > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid RigidConfig field(s) {bad}: {self}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self) | {"engine": ENGINE}
        return d | {"gravity": [float(g) for g in self.gravity]}  # JSON-native (no tuples)


@dataclasses.dataclass(frozen=True)
class RigidRollout:
    """Result of :func:`simulate_bodies`.

    Attributes:
      trajectory: states of the B bodies at T frame times (positions and velocities of
        each body origin, angles, angular velocities) and contact-begin events
        (``event_pairs`` ``(i, j)`` body indices, ``j < 0`` a wall).
      masses: (B,) float64 (``inf`` for static bodies).
      moments: (B,) float64 moments of inertia about the centre of gravity.
      centers_of_gravity: (B, 2) float64 centre of gravity in each body's frame.
      kinetic_energy: (T,) float64 total kinetic energy.
      potential_energy: (T,) float64 total gravitational potential energy
        (``-m g·x_cog``, zero at the origin).
    """

    trajectory: Trajectory
    masses: np.ndarray
    moments: np.ndarray
    centers_of_gravity: np.ndarray
    kinetic_energy: np.ndarray
    potential_energy: np.ndarray

    @property
    def energy(self) -> np.ndarray:
        """(T,) total mechanical energy."""
        return self.kinetic_energy + self.potential_energy


def _signed_area(v: np.ndarray) -> float:
    x, y = v[:, 0], v[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _make_shape(body: pymunk.Body, spec: ShapeSpec) -> pymunk.Shape:
    if spec.kind == "circle":
        return pymunk.Circle(body, spec.radius, offset=spec.offset)
    return pymunk.Poly(body, list(spec.vertices))


def build_space(bodies, config: RigidConfig, step: float = world.FRAME_DT / 100):
    """A fresh ``pymunk.Space`` holding ``bodies`` (and the walls if configured), to be
    stepped with steps of ``step`` seconds.

    Returns:
      ``(space, pm_bodies, owner)``: the space, the B pymunk bodies in order, and a
      dict from each pymunk shape to its body index (walls map to wall codes < 0).
    """
    space = pymunk.Space(threaded=False)
    space.gravity = tuple(map(float, config.gravity))
    space.iterations = int(config.iterations)
    space.collision_slop = float(config.collision_slop)
    # Fraction of overlap left after 1 s; floored so that it cannot underflow to 0 (which
    # pymunk reads as "correct everything at once") for very short steps.
    space.collision_bias = max((1.0 - config.overlap_correction) ** (1.0 / step), 1e-300)
    mu = math.sqrt(config.friction)
    e_body = math.sqrt(config.restitution)
    owner: dict[pymunk.Shape, int] = {}
    pm_bodies = []
    for i, b in enumerate(bodies):
        kind = pymunk.Body.STATIC if b.static else pymunk.Body.DYNAMIC
        body = pymunk.Body(body_type=kind)
        body.position = tuple(map(float, b.position))
        body.angle = float(b.angle)
        shapes = [_make_shape(body, s) for s in b.shapes]
        for sh in shapes:
            sh.friction = mu
            sh.elasticity = e_body
            sh.collision_type = _COLLIDE_BODY
            if not b.static:
                sh.density = float(config.density if b.density is None else b.density)
            owner[sh] = i
        space.add(body, *shapes)
        if not b.static:
            # Velocities refer to the body origin; pymunk's refer to the centre of gravity.
            w = float(b.angular_velocity)
            r = body.local_to_world(body.center_of_gravity) - body.position
            body.velocity = (b.velocity[0] - w * r.y, b.velocity[1] + w * r.x)
            body.angular_velocity = w
        pm_bodies.append(body)
    if config.walls:
        s, t = world.WORLD_SIZE, config.wall_thickness
        boxes = (  # (left, bottom, right, top) of each wall, in _WALL_CODES order
            (-t, -t, 0.0, s + t),
            (s, -t, s + t, s + t),
            (-t, -t, s + t, 0.0),
            (-t, s, s + t, s + t),
        )
        for code, (x0, y0, x1, y1) in zip(_WALL_CODES, boxes, strict=True):
            sh = pymunk.Poly(space.static_body, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
            sh.friction = mu
            sh.elasticity = e_body
            sh.collision_type = _COLLIDE_WALL
            owner[sh] = code
            space.add(sh)
        e_wall = config.wall_restitution
        if e_wall is not None and e_wall != config.restitution:

            def set_wall_restitution(arbiter, space_, data):
                arbiter.restitution = e_wall

            space.on_collision(_COLLIDE_BODY, _COLLIDE_WALL, pre_solve=set_wall_restitution)
    return space, pm_bodies, owner


def _state_reader(space: pymunk.Space, pm: list[pymunk.Body]):
    """A function filling a (B, 6) array with (x, y, angle, vx, vy, w) of ``pm``.

    Uses pymunk's batch API (one C call per frame) when available, else per-body reads.
    """
    try:
        import pymunk.batch as batch
    except ImportError:  # pragma: no cover - pymunk without the batch module
        batch = None
    if batch is None:

        def read_each(out):
            for i, b in enumerate(pm):
                out[i] = (*b.position, b.angle, *b.velocity, b.angular_velocity)

        return read_each
    f = batch.BodyFields
    fields = f.BODY_ID | f.POSITION | f.ANGLE | f.VELOCITY | f.ANGULAR_VELOCITY
    where = {b.id: i for i, b in enumerate(pm)}
    buf = batch.Buffer()

    def read_batch(out):
        buf.clear()
        batch.get_space_bodies(space, fields, buf)
        ids = np.frombuffer(buf.int_buf(), dtype=np.uintp)
        vals = np.frombuffer(buf.float_buf(), dtype=np.float64).reshape(len(ids), 6)
        rows = np.array([where.get(int(i), -1) for i in ids])
        keep = rows >= 0
        if keep.sum() != len(pm):
            raise RuntimeError("pymunk.batch did not report every body")
        out[rows[keep]] = vals[keep]

    return read_batch


def simulate_bodies(
    bodies,
    config: RigidConfig,
    *,
    n_frames: int = world.N_FRAMES,
    dt: float = world.FRAME_DT,
) -> RigidRollout:
    """Simulate rigid ``bodies`` and sample their states at ``t_k = k * dt``.

    Args:
      bodies: sequence of B :class:`BodySpec` (static ones included; their states are
        recorded too and stay constant).
      config: :class:`RigidConfig` (gravity, materials, step, walls).
      n_frames: T, number of frames (>= 1).
      dt: seconds between frames (> 0); each frame interval takes ``config.substeps``
        pymunk steps.

    Returns:
      A :class:`RigidRollout`. Positions (T, B, 2) are body origins (the reference point
      the shapes are attached to), velocities (T, B, 2) the origin's velocity, angles and
      angular velocities (T, B). Events are contact begins between two bodies or a body
      and a wall, timed at the end of the step that detected them; a pair that touches
      again less than one frame interval after separating is not a new event.
    """
    bodies = tuple(bodies)
    if not bodies:
        raise ValueError("need at least one body")
    if n_frames < 1 or not dt > 0:
        raise ValueError(f"need n_frames >= 1 and dt > 0, got {n_frames}, {dt}")
    h = dt / config.substeps
    space, pm, owner = build_space(bodies, config, h)
    nb = len(bodies)
    step_now = [0]
    events: list[tuple[int, int, int]] = []
    touching: dict[tuple[int, int], int] = {}  # body pair -> shape contacts now
    last_sep: dict[tuple[int, int], int] = {}  # body pair -> step it last separated

    def pair_of(arbiter):
        a, b = (owner.get(s) for s in arbiter.shapes)
        if a is None or b is None or a == b:
            return None
        return (max(a, b), min(a, b)) if min(a, b) < 0 else (min(a, b), max(a, b))

    def on_begin(arbiter, space_, data):
        p = pair_of(arbiter)
        if p is not None:
            touching[p] = touching.get(p, 0) + 1
            # A pair that re-touches within one frame interval (resting contacts flicker)
            # is the same contact, not a new event.
            if (
                touching[p] == 1
                and step_now[0] - last_sep.get(p, -config.substeps) >= config.substeps
            ):
                events.append((step_now[0], *p))

    def on_separate(arbiter, space_, data):
        p = pair_of(arbiter)
        if p is not None and touching.get(p, 0) > 0:
            touching[p] -= 1
            if touching[p] == 0:
                last_sep[p] = step_now[0]

    space.on_collision(begin=on_begin, separate=on_separate)
    dyn = [i for i, b in enumerate(bodies) if not b.static]
    masses = np.array([np.inf if b.static else pm[i].mass for i, b in enumerate(bodies)])
    moments = np.array([np.inf if b.static else pm[i].moment for i, b in enumerate(bodies)])
    cogs = np.array([tuple(p.center_of_gravity) for p in pm], dtype=np.float64)
    # raw[k, i] = (x, y, angle, vx, vy, w) of body i at frame k; pymunk reports the
    # position of the body origin but the velocity of the centre of gravity.
    raw = np.zeros((n_frames, nb, 6))
    read = _state_reader(space, pm)
    # Box2D damps w by 1 / (1 + h c) every step; we apply the compounded factor once per
    # frame (identical for constant w, and c is tiny), which avoids a Python callback per
    # body and step.
    damp = (1.0 + h * config.angular_damping) ** -config.substeps
    read(raw[0])
    for k in range(1, n_frames):
        for _ in range(config.substeps):
            step_now[0] += 1
            space.step(h)
        if config.angular_damping > 0:
            for i in dyn:
                pm[i].angular_velocity *= damp
        read(raw[k])
    pos, ang, v_cog, angv = raw[..., :2], raw[..., 2], raw[..., 3:5], raw[..., 5]
    c, s = np.cos(ang), np.sin(ang)
    r = np.stack([c * cogs[:, 0] - s * cogs[:, 1], s * cogs[:, 0] + c * cogs[:, 1]], -1)
    vel = v_cog + np.stack([angv * r[..., 1], -angv * r[..., 0]], -1)  # origin = cog - r
    g = np.asarray(config.gravity, dtype=np.float64)
    m, inertia = masses[dyn], moments[dyn]
    ke = 0.5 * (m * (v_cog[:, dyn] ** 2).sum(-1) + inertia * angv[:, dyn] ** 2).sum(-1)
    pe = -(m * ((pos[:, dyn] + r[:, dyn]) @ g)).sum(-1)
    ev = np.array(events, dtype=np.int64).reshape(-1, 3)
    times = ev[:, 0] * h
    traj = Trajectory(
        times=world.frame_times(n_frames, dt),
        positions=np.ascontiguousarray(pos),
        velocities=vel,
        angles=np.ascontiguousarray(ang),
        angular_velocities=np.ascontiguousarray(angv),
        event_times=times.astype(np.float64),
        event_frames=np.ceil(ev[:, 0] / config.substeps - 1e-9).astype(np.int32),
        event_pairs=ev[:, 1:].astype(np.int32),
    )
    return RigidRollout(traj, masses, moments, cogs, ke, pe)


def overlaps(bodies, *, tolerance: float = 0.0, walls: bool = True) -> list[tuple[int, int]]:
    """Pairs of bodies whose shapes overlap deeper than ``tolerance`` at t = 0.

    Static–static pairs are skipped (they never interact). With ``walls``, a body that
    pokes out of the box ``[0, WORLD_SIZE]²`` is reported as ``(i, wall code)``.

    Returns:
      Sorted list of ``(i, j)``; ``j < 0`` is a wall.
    """
    bodies = tuple(bodies)
    config = RigidConfig(walls=walls)
    space, pm, owner = build_space(bodies, config)
    found = set()
    # Space.shape_query, not Shape.shapes_collide: the latter asserts on disjoint shapes
    # in pymunk 7.3.1.
    for sa, a in owner.items():
        for hit in space.shape_query(sa):
            b = owner.get(hit.shape)
            if b is None or a == b or (a < 0 and b < 0):
                continue
            if a >= 0 and b >= 0 and bodies[a].static and bodies[b].static:
                continue
            if (a < 0 and bodies[b].static) or (b < 0 and bodies[a].static):
                continue
            if any(p.distance < -tolerance for p in hit.contact_point_set.points):
                found.add((max(a, b), min(a, b)) if min(a, b) < 0 else (min(a, b), max(a, b)))
    return sorted(found)


def simulate_discs_pymunk(
    objects: world.Objects,
    positions0,
    velocities0,
    *,
    gravity=(0.0, 0.0),
    restitution: float = 1.0,
    walls: bool = False,
    wall_restitution: float = 1.0,
    n_frames: int = world.N_FRAMES,
    dt: float = world.FRAME_DT,
    substeps: int = 200,
) -> Trajectory:
    """Simulate discs on pymunk with a small step (cross-check of the exact simulator).

    Same arguments and meaning as :func:`physim.physics.simulate`, plus ``substeps``
    pymunk steps per frame interval. Discs are frictionless; masses are taken from
    ``objects.masses`` (via per-disc density), so collisions conserve momentum with
    the same masses as the exact simulator.

    Returns:
      A :class:`~physim.record.Trajectory` (T = ``n_frames``) with contact-begin events.
    """
    n = objects.n
    pos0 = np.asarray(positions0, dtype=np.float64)
    vel0 = np.asarray(velocities0, dtype=np.float64)
    if pos0.shape != (n, 2) or vel0.shape != (n, 2):
        raise ValueError(
            f"positions0 and velocities0 must be ({n}, 2), got {pos0.shape}, {vel0.shape}"
        )
    config = RigidConfig(
        gravity=tuple(map(float, gravity)),
        friction=0.0,
        restitution=float(restitution),
        wall_restitution=float(wall_restitution),
        substeps=int(substeps),
        walls=bool(walls),
    )
    bodies = [
        BodySpec(
            kind=objects.shapes[i],
            shapes=(ShapeSpec("circle", radius=float(objects.radii[i])),),
            position=(float(pos0[i, 0]), float(pos0[i, 1])),
            velocity=(float(vel0[i, 0]), float(vel0[i, 1])),
            color=objects.colors[i],
            # Per-disc density so that pymunk's mass equals objects.masses exactly.
            density=float(objects.masses[i] / (math.pi * objects.radii[i] ** 2)),
        )
        for i in range(n)
    ]
    return simulate_bodies(bodies, config, n_frames=n_frames, dt=dt).trajectory
