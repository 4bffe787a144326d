"""physim.rigid: pymunk bodies and the disc cross-check against closed form and the
exact simulator."""

import dataclasses
import math

import numpy as np
import pytest

from physim import rigid, world
from physim.record import WALL_LEFT
from physim.rigid import BodySpec, RigidConfig, ShapeSpec

TOL = 0.02  # issue 2: pymunk agrees with the exact trajectory to 0.02 world units


def _ball(x, y, r=0.5, vx=0.0, vy=0.0, static=False):
    return BodySpec("ball", (ShapeSpec("circle", radius=r),), (x, y), static=static,
                    velocity=(vx, vy))  # fmt: skip


def _bar(x, y, length, angle=0.0, static=True, thick=0.2):
    w, h = length / 2, thick / 2
    box = ShapeSpec("poly", vertices=((w, h), (-w, h), (-w, -h), (w, -h)))
    return BodySpec("bar", (box,), (x, y), angle, static, "black" if static else "phyre_gray")


# ----------------------------------------------------------------------- discs vs closed form


def test_free_flight_matches_closed_form():
    objs = world.Objects.make([0.5])
    p0, v0, g = np.array([[1.0, 8.0]]), np.array([[2.0, 1.0]]), np.array([0.0, -2.5])
    tr = rigid.simulate_discs_pymunk(objs, p0, v0, gravity=g)
    t = world.frame_times()[:, None, None]
    exact = p0 + v0 * t + 0.5 * g * t**2
    assert np.abs(tr.positions - exact).max() < TOL
    assert np.abs(tr.velocities - (v0 + g * t)).max() < 1e-9
    assert len(tr.event_times) == 0


@pytest.mark.parametrize("r2", [0.5, 0.8])
def test_head_on_elastic_collision_matches_closed_form(r2):
    objs = world.Objects.make([0.5, r2])
    m1, m2 = objs.masses
    p0 = np.array([[2.0, 5.0], [7.0, 5.0]])
    v0 = np.array([[3.0, 0.0], [-1.0, 0.0]])
    tr = rigid.simulate_discs_pymunk(objs, p0, v0)
    # Closed form: contact when the gap closes, then the 1-D elastic formulas.
    tc = (p0[1, 0] - p0[0, 0] - 0.5 - r2) / (v0[0, 0] - v0[1, 0])
    u1, u2 = v0[0, 0], v0[1, 0]
    w1 = ((m1 - m2) * u1 + 2 * m2 * u2) / (m1 + m2)
    w2 = ((m2 - m1) * u2 + 2 * m1 * u1) / (m1 + m2)
    t = world.frame_times()
    x1 = np.where(t < tc, p0[0, 0] + u1 * t, p0[0, 0] + u1 * tc + w1 * (t - tc))
    x2 = np.where(t < tc, p0[1, 0] + u2 * t, p0[1, 0] + u2 * tc + w2 * (t - tc))
    assert np.abs(tr.positions[:, 0, 0] - x1).max() < TOL
    assert np.abs(tr.positions[:, 1, 0] - x2).max() < TOL
    assert np.abs(tr.positions[:, :, 1] - 5.0).max() < 1e-9
    np.testing.assert_allclose(tr.velocities[-1, :, 0], [w1, w2], atol=1e-6)
    assert tr.event_pairs.tolist() == [[0, 1]] and abs(tr.event_times[0] - tc) < 0.01


def test_walls_bounce_with_wall_restitution():
    objs = world.Objects.make([0.5])
    tr = rigid.simulate_discs_pymunk(objs, [[5.0, 5.0]], [[-4.0, 0.0]], walls=True,
                                     wall_restitution=0.5)  # fmt: skip
    assert tr.event_pairs.tolist() == [[0, -1]]  # the left wall
    np.testing.assert_allclose(tr.velocities[-1, 0], [2.0, 0.0], atol=1e-6)


# ----------------------------------------------------------------------- vs the exact simulator


def _cross_check_cases():
    from physim import scenario

    cases = []
    plan = [("collision", "train", range(4)), ("collision", "ood", range(0, 80, 20)),
            ("parabola", "train", range(2)), ("uniform", "ood", range(0, 40, 20))]  # fmt: skip
    for name, split, idx in plan:
        spec = scenario(name)
        b = spec.batch(0, split, list(idx))
        for k in range(len(b)):
            r = b.record(k)
            kw = dict(gravity=spec.gravity, restitution=spec.restitution)
            cases.append((r.objects, r.positions[0], r.velocities[0], kw, r.positions, 200))
    # Three discs bouncing in the box under gravity: 7 wall and disc-disc events, where
    # late contact detection compounds, so a smaller step is needed.
    from physim.physics import simulate

    objs = world.Objects.make([0.8, 0.6, 0.5])
    p0, v0 = [[2, 2], [5, 5], [8, 7]], [[4, 3], [-3, 2], [2, -4]]
    kw = dict(walls=True, gravity=(0.0, -2.5))
    cases.append((objs, p0, v0, kw, simulate(objs, p0, v0, **kw).positions, 2000))
    return cases


def test_pymunk_agrees_with_exact_simulator():
    errs = []
    for objs, p0, v0, kw, exact, substeps in _cross_check_cases():
        tr = rigid.simulate_discs_pymunk(objs, p0, v0, substeps=substeps, **kw)
        errs.append(np.abs(tr.positions - exact).max())
    assert max(errs) < TOL, errs


def test_cross_check_detects_wrong_physics():
    # Negative control: the same comparison fails for a different restitution.
    objs, p0, v0, kw, exact, _ = _cross_check_cases()[0]
    tr = rigid.simulate_discs_pymunk(objs, p0, v0, **(kw | {"restitution": 0.5}))
    assert np.abs(tr.positions - exact).max() > 10 * TOL


# ----------------------------------------------------------------------- general bodies

PHYS = RigidConfig(gravity=(0.0, -12.0), friction=0.5, restitution=0.2, substeps=20,
                   collision_slop=1e-3, walls=True)  # fmt: skip


def _max_overlap_depth(bodies, traj, k):
    posed = [
        dataclasses.replace(b, position=tuple(traj.positions[k, i]), angle=float(traj.angles[k, i]))
        for i, b in enumerate(bodies)
    ]
    for tol in (0.0, 0.01, 0.02, 0.05, 0.1, 0.5):
        if not rigid.overlaps(posed, tolerance=tol):
            return tol
    return math.inf


def test_ball_lands_on_static_bar_and_stays():
    bodies = [_ball(5.0, 8.0, 0.4), _bar(5.0, 3.0, 4.0, angle=0.0)]
    roll = rigid.simulate_bodies(bodies, PHYS)
    y = roll.trajectory.positions[:, 0, 1]
    assert y.min() > 3.1 + 0.4 - 0.05  # never through the bar (top at 3.1)
    assert abs(y[-1] - 3.5) < 0.02 and abs(roll.trajectory.velocities[-1, 0, 1]) < 0.05
    assert all(_max_overlap_depth(bodies, roll.trajectory, k) <= 0.05 for k in range(32))
    assert (0, 1) in {tuple(p) for p in roll.trajectory.event_pairs.tolist()}
    np.testing.assert_array_equal(roll.trajectory.positions[:, 1], [[5.0, 3.0]] * 32)


def test_ball_rolls_down_tilted_bar_without_energy_gain():
    bodies = [_ball(3.5, 6.0, 0.4), _bar(4.0, 3.0, 5.0, angle=-0.4), _bar(5, 7, 2, static=False)]
    roll = rigid.simulate_bodies(bodies, PHYS)
    scale = np.sum(roll.masses[np.isfinite(roll.masses)]) * 12.0 * world.WORLD_SIZE
    assert np.max(roll.energy - roll.energy[0]) < 0.01 * scale
    assert roll.trajectory.positions[-1, 0, 0] > 4.0  # it rolled down to the right
    assert np.abs(roll.trajectory.angular_velocities[:, 0]).max() > 1.0  # friction spins it


def test_energy_check_can_fail():
    # Negative control: a super-elastic bounce gains energy, and the check sees it.
    bodies = [_ball(5.0, 3.0, 0.4)]
    roll = rigid.simulate_bodies(bodies, dataclasses.replace(PHYS, restitution=2.0))
    scale = roll.masses[0] * 12.0 * world.WORLD_SIZE
    assert np.max(roll.energy - roll.energy[0]) > 0.01 * scale


def test_compound_body_centre_of_gravity_and_origin_velocity():
    # An L of two boxes spinning freely: the recorded origin velocity is the derivative
    # of the recorded origin position, and the centre of gravity moves uniformly.
    a = ShapeSpec("poly", vertices=((2.0, 0.0), (2.0, 0.2), (0.0, 0.2), (0.0, 0.0)))
    b = ShapeSpec("poly", vertices=((0.2, 0.2), (0.2, 1.2), (0.0, 1.2), (0.0, 0.2)))
    body = BodySpec("L", (a, b), (4.0, 4.0), velocity=(0.3, 0.1), angular_velocity=2.0)
    cfg = RigidConfig(substeps=50)
    roll = rigid.simulate_bodies([body], cfg)
    tr, cog = roll.trajectory, roll.centers_of_gravity[0]
    assert 0.2 < cog[0] < 1.0 and 0.1 < cog[1] < 0.6
    fd = (tr.positions[2:, 0] - tr.positions[:-2, 0]) / (2 * world.FRAME_DT)
    assert np.abs(fd - tr.velocities[1:-1, 0]).max() < 0.05
    np.testing.assert_allclose(tr.angular_velocities[:, 0], 2.0, atol=1e-9)
    c, s = np.cos(tr.angles[:, 0]), np.sin(tr.angles[:, 0])
    world_cog = tr.positions[:, 0] + np.stack([c * cog[0] - s * cog[1], s * cog[0] + c * cog[1]], 1)
    np.testing.assert_allclose(np.diff(world_cog, 2, axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(roll.kinetic_energy, roll.kinetic_energy[0], rtol=1e-9)


def test_simulation_is_deterministic():
    bodies = [_ball(5.0, 8.0, 0.4), _ball(5.3, 9.2, 0.3), _bar(5.0, 3.0, 4.0, angle=0.2),
              _bar(3, 6, 2, static=False)]  # fmt: skip
    a = rigid.simulate_bodies(bodies, PHYS).trajectory
    b = rigid.simulate_bodies(bodies, PHYS).trajectory
    for f in ("positions", "velocities", "angles", "angular_velocities", "event_pairs"):
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes()


def test_overlaps():
    assert rigid.overlaps([_ball(5, 5), _ball(5.9, 5)]) == [(0, 1)]
    assert rigid.overlaps([_ball(5, 5), _ball(6.0, 5)]) == []  # touching is not overlapping
    assert rigid.overlaps([_ball(0.3, 5)]) == [(0, WALL_LEFT)]
    assert rigid.overlaps([_ball(0.3, 5, static=True)]) == []  # static bodies may poke out
    assert rigid.overlaps([_ball(5, 5, static=True), _ball(5.5, 5, static=True)]) == []
    assert rigid.overlaps([_ball(5, 5), _bar(5, 5.5, 2)]) == [(0, 1)]


def test_specs_roundtrip_and_validation():
    b = _bar(1.0, 2.0, 3.0, angle=0.3, static=False)
    assert BodySpec.from_dict(b.to_dict()) == b
    with pytest.raises(ValueError, match="radius"):
        ShapeSpec("circle", radius=-1.0)
    with pytest.raises(ValueError, match="counter-clockwise"):
        ShapeSpec("poly", vertices=((0, 0), (0, 1), (1, 0)))
    with pytest.raises(ValueError, match="kind"):
        ShapeSpec("triangle")
    with pytest.raises(ValueError, match="friction"):
        RigidConfig(friction=-0.1)
    with pytest.raises(ValueError, match="colour"):
        BodySpec("ball", (ShapeSpec("circle", radius=1.0),), (0, 0), color="mauve")
    with pytest.raises(ValueError, match="positions0"):
        rigid.simulate_discs_pymunk(world.Objects.make([1.0]), [[1, 2, 3]], [[0, 0]])
