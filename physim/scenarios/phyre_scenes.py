"""PHYRE-like scene content: object types, the 70 templates, task layouts, action balls.

Objects follow the paper's PHYRE fork (reference §2, ``component_utils.py`` and PHYRE's
shape builders), converted from the normalized scene ``[0, 1]²`` (512 px in the fork) to
the world ``[0, 10]²``. Eight object types; a template is one of the C(8, 4) = 70
four-type combinations, numbered 10000..10069 in the fork's order: the combinations of
:data:`OBJECT_TYPES` (``itertools.combinations`` order) shuffled with
``random.Random(4)``. A *task* is one object layout of a template, a pure function of
``(task_seed, template, task)``; the red action ball is placed by the paper's heuristic.

Physics constants (:data:`PHYSICS`) rescale the reference's Box2D settings so that one
video frame (0.1 s here) is one reference frame (20 steps of 1/60 s = 1/3 PHYRE second).
Unlike the reference, scene objects never start overlapping each other (each object is
redrawn until it fits) and dynamic objects start inside the box.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import re

import numpy as np

from physim import rigid, world
from physim.rigid import BodySpec, ShapeSpec

S = world.WORLD_SIZE
PHYRE_PX = 512  # scene width of the paper's PHYRE fork, pixels
PX = S / PHYRE_PX  # world units per PHYRE pixel

OBJECT_TYPES: tuple[str, ...] = (
    "dynamic_ball_1",
    "dynamic_ball_2",
    "static_ball",
    "dynamic_bar",
    "dynamic_standing_bars",
    "static_bar",
    "dynamic_jar",
    "dynamic_standingsticks",
)
FIRST_TEMPLATE = 10000


def _template_table() -> tuple[tuple[int, ...], ...]:
    combos = list(itertools.combinations(range(len(OBJECT_TYPES)), 4))
    random.Random(4).shuffle(combos)  # the fork's order (every combination has a dynamic type)
    return tuple(combos)


TEMPLATES: tuple[tuple[int, ...], ...] = _template_table()  # TEMPLATES[id - 10000]
TEMPLATE_SETS: dict[int, tuple[int, ...]] = {
    6: (10003, 10005, 10016, 10023, 10024, 10053),  # pairs of {01, 23, 45, 67}
    30: tuple(t for t in range(10000, 10060) if re.fullmatch(r"100[0-5][02468]", str(t))),
    60: tuple(range(10000, 10060)),
}
HELD_OUT_TEMPLATES: tuple[int, ...] = tuple(range(10060, 10070))

# Physics (reference §2: Box2D at 60 Hz, gravity 9.8, density 0.25, friction 0.5,
# restitution 0.2, angular damping 0.01; PHYRE draws 6 px per metre; a frame every 20 steps).
PIXELS_IN_METER = 6.0
TIME_SCALE = (20 / 60) / world.FRAME_DT  # PHYRE seconds per physim second (10/3)
GRAVITY = 9.8 * PIXELS_IN_METER * PX * TIME_SCALE**2  # ≈ 12.76 world units / s²
PHYSICS = rigid.RigidConfig(
    gravity=(0.0, -GRAVITY),
    density=0.25,
    friction=0.5,
    restitution=0.2,
    angular_damping=0.01 * TIME_SCALE,
    substeps=20,  # h = 0.005 s here = 1/60 PHYRE second, the reference's step
    iterations=20,
    collision_slop=1e-3,
    walls=True,
)

STATIC_COLOR, DYNAMIC_COLOR, ACTION_COLOR = "black", "phyre_gray", "phyre_red"


# --------------------------------------------------------------------------- shapes


def _box(w: float, h: float) -> ShapeSpec:
    return ShapeSpec(
        "poly", vertices=((w / 2, h / 2), (-w / 2, h / 2), (-w / 2, -h / 2), (w / 2, -h / 2))
    )


def _sticks(width: float, height: float, angle_deg: float = 77.5) -> tuple[ShapeSpec, ...]:
    """PHYRE standing sticks: a (2/3 width × 2/3 height) bar turned by ±angle (an X)."""
    bar = [(w * width / 3, h * height / 3) for w, h in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
    out = []
    for a in (-angle_deg, angle_deg):
        c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
        out.append(
            ShapeSpec("poly", vertices=tuple((c * x - s * y, s * x + c * y) for x, y in bar))
        )
    return tuple(out)


def _jar(scale: float) -> tuple[ShapeSpec, ...]:
    """PHYRE jar of ``scale`` (base centred at the origin), computed in fork pixels."""
    height = scale * PHYRE_PX
    width = height / 1.2
    thick = math.log(height) / math.log(0.3 * PHYRE_PX) * PHYRE_PX / 50
    base_w = 0.8 * width
    base = (width - base_w) / 2
    hyp = math.hypot(height, base)
    cos, sin = base / hyp, height / hyp
    xd, xdt, yd = thick * sin, thick / sin, thick * cos
    top = height - thick / 2
    left = (
        (-width / 2, top),
        (-base_w / 2, -thick / 2),
        (-base_w / 2 + xd, yd - thick / 2),
        (-width / 2 + xdt, top),
    )
    right = (
        (width / 2, top),
        (width / 2 - xdt, top),
        (base_w / 2 - xd, yd - thick / 2),
        (base_w / 2, -thick / 2),
    )
    polys = [_box(base_w, thick).vertices, left, right]
    return tuple(ShapeSpec("poly", vertices=tuple((x * PX, y * PX) for x, y in p)) for p in polys)


def _bbox(shapes, x: float, y: float, angle: float) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of shapes posed at (x, y, angle) (PHYRE's convention:
    circles contribute ±r around their unrotated offset)."""
    c, s = math.cos(angle), math.sin(angle)
    xs, ys = [], []
    for sh in shapes:
        if sh.kind == "circle":
            ox, oy = sh.offset
            xs += [x + ox - sh.radius, x + ox + sh.radius]
            ys += [y + oy - sh.radius, y + oy + sh.radius]
        else:
            for vx, vy in sh.vertices:
                xs.append(x + c * vx - s * vy)
                ys.append(y + s * vx + c * vy)
    return min(xs), min(ys), max(xs), max(ys)


def _pose(shapes, angle=0.0, *, left=None, center_x=None, bottom=None) -> tuple[float, float]:
    """Body origin that puts the posed bounding box's left / centre / bottom where asked."""
    x0, y0, x1, y1 = _bbox(shapes, 0.0, 0.0, angle)
    x = 0.0 if left is None else left - x0
    x = x if center_x is None else center_x - (x0 + x1) / 2
    y = 0.0 if bottom is None else bottom - y0
    return x, y


def _body(kind, shapes, pos, angle=0.0, static=False) -> BodySpec:
    color = STATIC_COLOR if static else DYNAMIC_COLOR
    return BodySpec(
        kind, tuple(shapes), (float(pos[0]), float(pos[1])), float(angle), static, color
    )


# --------------------------------------------------------------------------- object types


def _dynamic_ball(rng) -> list[BodySpec]:
    r = rng.uniform(0.06, 0.12) * S / 2
    x, bottom = rng.uniform(0.3, 0.6) * S, rng.uniform(0.4, 0.85) * S
    return [_body("ball", [ShapeSpec("circle", radius=r)], (x, bottom + r))]


def _static_ball_chain(rng) -> list[BodySpec]:
    """Random-walk chain of static balls (radius 0.2) from (4, 5.5), kept below y = 5."""
    n_points = int(rng.integers(2, 7))
    stars = [(0.4, 0.55)]
    angle, turn = rng.uniform() * 2 * np.pi, rng.uniform() * 2 * np.pi / 10
    length, n_valid = 1, 0
    for _ in range(10_000):
        if n_valid >= n_points:
            break
        if length >= 3 and rng.uniform() < 0.2:
            x, y = stars[int(rng.integers(len(stars)))]
            length = 1
            angle, turn = rng.uniform() * 2 * np.pi, rng.uniform() * 2 * np.pi / 10
        else:
            length += 1
            step = rng.uniform(0.05, 0.2)
            angle += turn
            x, y = stars[-1][0] + step * np.cos(angle), stars[-1][1] + step * np.sin(angle)
        if y >= 0.5:
            continue
        stars.append((x, y))
        n_valid += 0.0 < x < 1 and 0.0 < y < 1
    keep = dict.fromkeys((float(x), float(y)) for x, y in stars if 0 <= x <= 1 and 0 <= y <= 1)
    ball = [ShapeSpec("circle", radius=0.04 * S / 2)]
    return [_body("ball", ball, (x * S, y * S), static=True) for x, y in keep]


def _dynamic_bar(rng) -> list[BodySpec]:
    scale, x, y = rng.uniform(0.15, 0.5), rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.8)
    angle = math.radians(rng.uniform(-90, 90))
    shapes = [_box(scale * S, S / 50)]  # placed level, then turned about its centre
    return [_body("bar", shapes, _pose(shapes, center_x=x * S, bottom=y * S), angle)]


def _standing_bars(rng) -> list[BodySpec]:
    offset, mult = rng.uniform(0.45, 0.6), 0.15
    if rng.uniform() < 0.5:
        mult, offset = -mult, 1.0 - offset
    n = int(rng.integers(1, 5))
    out = []
    for i, idx in enumerate(range(-n // 2, -n // 2 + n)):
        shapes, angle = [_box((0.2 + 0.05 * i) * S, S / 50)], math.pi / 2
        pos = _pose(shapes, angle, left=(offset + mult * idx) * S, bottom=0.0)
        out.append(_body("bar", shapes, pos, angle))
    return out


def _static_bar(rng) -> list[BodySpec]:
    scale, y = rng.uniform(0.2, 0.5), rng.uniform(0.1, 0.5)
    angle, right = math.radians(rng.uniform(-60, 60)), rng.uniform(0.3, 0.4) * S
    shapes = [_box(scale * S, S / 50)]
    x, yy = _pose(shapes, center_x=right - scale * S / 2, bottom=y * S)
    return [_body("bar", shapes, (x, yy), angle, static=True)]


def _dynamic_jar(rng) -> list[BodySpec]:
    scale, x, y = rng.uniform(0.08, 0.3), rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.8)
    angle = math.radians(rng.uniform(-45, 45))
    if rng.uniform() >= 0.7:  # 30 %: upright on the floor
        angle, y = 0.0, 0.0
    shapes = _jar(scale)
    return [_body("jar", shapes, _pose(shapes, angle, center_x=x * S, bottom=y * S), angle)]


def _standing_sticks(rng) -> list[BodySpec]:
    scale, x, y = rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.5)
    angle = math.radians(rng.uniform(-90, 90))
    if rng.uniform() < 0.3:  # 30 %: upright on the floor
        angle, y = 0.0, 0.0
    shapes = _sticks(scale * S, S / 50)
    return [_body("sticks", shapes, _pose(shapes, angle, center_x=x * S, bottom=y * S), angle)]


BUILDERS = {
    "dynamic_ball_1": _dynamic_ball,
    "dynamic_ball_2": _dynamic_ball,
    "static_ball": _static_ball_chain,
    "dynamic_bar": _dynamic_bar,
    "dynamic_standing_bars": _standing_bars,
    "static_bar": _static_bar,
    "dynamic_jar": _dynamic_jar,
    "dynamic_standingsticks": _standing_sticks,
}


# --------------------------------------------------------------------------- tasks and actions


def template_objects(template: int) -> tuple[str, ...]:
    """The four object type names of ``template`` (10000..10069)."""
    if not FIRST_TEMPLATE <= int(template) < FIRST_TEMPLATE + len(TEMPLATES):
        raise ValueError(f"template must be in 10000..10069, got {template}")
    return tuple(OBJECT_TYPES[i] for i in TEMPLATES[int(template) - FIRST_TEMPLATE])


def _new_overlaps(bodies, n_old: int) -> bool:
    return any(
        j >= n_old or (j < 0 and i >= n_old) for i, j in rigid.overlaps(bodies, tolerance=1e-6)
    )


@functools.lru_cache(maxsize=8192)  # 70 templates x 100 tasks fit
def task_layout(template: int, task: int, task_seed: int = 0, max_tries: int = 100):
    """The scene bodies of task ``task`` of ``template`` (no action ball).

    Objects are built in template order; an object that overlaps an earlier one, or a
    dynamic object that pokes out of the box, is redrawn (at most ``max_tries`` times,
    then the whole layout restarts, at most ``max_tries`` times).

    Returns:
      ``(bodies, owners)``: tuple of :class:`~physim.rigid.BodySpec` and, per body, the
      name of the object type it belongs to.
    """
    rng = np.random.default_rng([int(task_seed), int(template), int(task)])
    names = template_objects(template)
    for _ in range(max_tries):
        bodies: list[BodySpec] = []
        owners: list[str] = []
        for name in names:
            for _ in range(max_tries):
                new = BUILDERS[name](rng)
                if not _new_overlaps(bodies + new, len(bodies)):
                    bodies += new
                    owners += [name] * len(new)
                    break
            else:
                break
        else:
            return tuple(bodies), tuple(owners)
    raise ValueError(f"template {template} task {task}: no overlap-free layout found")


def _features(body: BodySpec) -> tuple[float, float, float, bool, bool]:
    """PHYRE-style features (x, y, diameter in scene units, is_ball, is_level_bar)."""
    pts = np.concatenate([v for v in body.world_vertices() if len(v) > 1] or [np.zeros((0, 2))])
    if body.kind == "ball":
        diameter = 2 * body.shapes[0].radius / S
    else:
        d = pts[:, None, :] - pts[None, :, :]
        diameter = float(np.sqrt((d**2).sum(-1)).max()) / S
    a = math.remainder(body.angle, math.pi)  # bars are symmetric under a half turn
    level_bar = body.kind == "bar" and abs(a) < 0.05 * 2 * math.pi
    return body.position[0] / S, body.position[1] / S, diameter, body.kind == "ball", level_bar


def _action_ball(x: float, y: float, r: float) -> BodySpec:
    """The red action ball of PHYRE action ``(x, y, r)`` (all in [0, 1]); PHYRE maps r to
    ``2 + 62 r`` px of the 512 px scene and (x, y) to ``511 (x, y)`` px."""
    radius = (2 + (PHYRE_PX // 8 - 2) * r) * PX
    pos = (x * (PHYRE_PX - 1) * PX, y * (PHYRE_PX - 1) * PX)
    return BodySpec("ball", (ShapeSpec("circle", radius=radius),), pos, color=ACTION_COLOR)


def _valid_action(bodies, action) -> bool:
    if not all(0.0 <= a <= 1.0 for a in action):
        return False
    ball = _action_ball(*action)
    r, (x, y) = ball.shapes[0].radius, ball.position
    if not (r <= x <= S - r and r <= y <= S - r):
        return False
    return not _new_overlaps(list(bodies) + [ball], len(bodies))


def place_action(bodies, rng, max_tries: int = 100) -> tuple[float, float, float]:
    """PHYRE ball action by the paper's heuristic (p_heuristic = 1).

    Radius range: [½ × smallest ball-object radius, 4 × largest], clipped to
    [0.02, 0.2] scene units. Up to ``max_tries`` times: pick a random object (level
    bars excluded), offset x by U(±0.8 (r_obj + r)), and draw y above or below it
    (probability ½ each); keep the first action inside the scene that overlaps no
    object. Fallback: uniform random actions (PHYRE's random valid actions).

    Returns:
      The action ``(x, y, r)`` in [0, 1]³ (``r`` is PHYRE's action radius, 5 × the
      heuristic's scene-unit radius).
    """
    feats = [_features(b) for b in bodies]
    balls = [f[2] / 2 for f in feats if f[3]]
    lo = max(min(balls) / 2, 0.02) if balls else 0.02
    hi = min(max(balls) * 4, 0.2) if balls else 0.2
    ids = [i for i, f in enumerate(feats) if not f[4]] or list(range(len(feats)))
    eps = 0.05
    for _ in range(max_tries):
        ox, oy, diam, _, _ = feats[ids[int(rng.integers(len(ids)))]]
        rad = diam / 2
        my_r = rng.uniform(lo, hi)
        dx = rng.uniform(-0.8 * (rad + my_r), 0.8 * (rad + my_r))
        if rng.uniform() < 0.5:  # above the object
            a, b = oy + 0.9 * dx, 1.0 - rad - eps
        else:  # below it
            a, b = rad + eps, oy - 0.9 * dx
        action = (ox + dx, a + (b - a) * rng.uniform(), 5.0 * my_r)
        if _valid_action(bodies, action):
            return action
    for _ in range(100 * max_tries):
        action = (rng.uniform(), rng.uniform(), 5.0 * rng.uniform(lo, hi))
        if _valid_action(bodies, action):
            return action
    raise ValueError("no valid action ball placement found")
