"""The exact simulator against closed-form physics."""

import dataclasses

import numpy as np
import pytest

from physim import physics, world
from physim.record import WALL_BOTTOM, WALL_LEFT, WALL_RIGHT

T = world.frame_times()


def one(r=1.0):
    return world.Objects.make([r])


def test_uniform_motion_matches_closed_form():
    tr = physics.simulate(one(), [[1.3, 4.2]], [[2.7, -0.4]])
    want = np.array([1.3, 4.2]) + np.array([2.7, -0.4]) * T[:, None]
    np.testing.assert_allclose(tr.positions[:, 0], want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr.velocities[:, 0], np.tile([2.7, -0.4], (32, 1)), atol=0)
    assert tr.event_times.size == 0


def test_parabola_matches_closed_form():
    tr = physics.simulate(one(), [[1.0, 9.0]], [[3.0, 0.0]], gravity=(0.0, -2.5))
    np.testing.assert_allclose(tr.positions[:, 0, 0], 1.0 + 3.0 * T, atol=1e-12)
    np.testing.assert_allclose(tr.positions[:, 0, 1], 9.0 - 1.25 * T**2, atol=1e-12)
    np.testing.assert_allclose(tr.velocities[:, 0, 1], -2.5 * T, atol=1e-12)


def elastic_1d(m1, m2, u1, u2, e=1.0):
    v1 = (m1 * u1 + m2 * u2 + m2 * e * (u2 - u1)) / (m1 + m2)
    v2 = (m1 * u1 + m2 * u2 + m1 * e * (u1 - u2)) / (m1 + m2)
    return v1, v2


@pytest.mark.parametrize("e", [1.0, 0.5])
def test_head_on_collision_matches_closed_form(e):
    r1, r2, x1, x2, u1, u2 = 0.8, 1.3, 2.0, 8.1, 2.5, -1.5
    obj = world.Objects.make([r1, r2])
    tr = physics.simulate(obj, [[x1, 5], [x2, 5]], [[u1, 0], [u2, 0]], restitution=e)
    tc = (x2 - x1 - r1 - r2) / (u1 - u2)
    m1, m2 = obj.masses
    v1, v2 = elastic_1d(m1, m2, u1, u2, e)
    xc1, xc2 = x1 + u1 * tc, x2 + u2 * tc
    want1 = np.where(T < tc, x1 + u1 * T, xc1 + v1 * (T - tc))
    want2 = np.where(T < tc, x2 + u2 * T, xc2 + v2 * (T - tc))
    np.testing.assert_allclose(tr.positions[:, 0, 0], want1, atol=1e-9)
    np.testing.assert_allclose(tr.positions[:, 1, 0], want2, atol=1e-9)
    np.testing.assert_allclose(tr.positions[:, :, 1], 5.0, atol=0)
    np.testing.assert_allclose(tr.event_times, [tc], atol=1e-12)
    assert tr.event_frames.tolist() == [int(np.ceil(tc / 0.1))]
    assert tr.event_pairs.tolist() == [[0, 1]]
    post = T >= tc
    np.testing.assert_allclose(tr.velocities[post, 0, 0], v1, atol=1e-12)
    np.testing.assert_allclose(tr.velocities[post, 1, 0], v2, atol=1e-12)


def test_oblique_collision_impulse_along_line_of_centres():
    # Equal masses, target at rest: outgoing velocities are perpendicular and the
    # target moves along the line of centres at the moment of contact.
    obj = world.Objects.make([1.0, 1.0])
    b = 0.7  # impact parameter
    tr = physics.simulate(obj, [[2.0, 5.0 + b], [6.0, 5.0]], [[3.0, 0.0], [0.0, 0.0]])
    tc = ((6.0 - 2.0) - np.sqrt(4.0 - b**2)) / 3.0
    n = np.array([6.0 - (2.0 + 3.0 * tc), -b]) / 2.0
    v_target = 3.0 * n[0] * n
    v_proj = np.array([3.0, 0.0]) - v_target
    np.testing.assert_allclose(tr.event_times, [tc], atol=1e-12)
    np.testing.assert_allclose(tr.velocities[-1, 1], v_target, atol=1e-12)
    np.testing.assert_allclose(tr.velocities[-1, 0], v_proj, atol=1e-12)
    np.testing.assert_allclose(tr.velocities[-1, 0] @ tr.velocities[-1, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(tr.positions[-1, 1], [6.0, 5.0] + v_target * (3.1 - tc), atol=1e-9)


def random_gas(seed, n=16, r=0.6):
    g = np.random.default_rng(seed)
    pos = []
    while len(pos) < n:
        p = g.uniform(r, 10 - r, 2)
        if all(np.hypot(*(p - q)) > 2 * r + 1e-3 for q in pos):
            pos.append(p)
    radii = g.uniform(0.3, r, n)
    return world.Objects.make(radii), np.array(pos), g.normal(0, 3, (n, 2))


def energy_momentum(obj, tr):
    ke = 0.5 * (obj.masses[None] * (tr.velocities**2).sum(-1)).sum(-1)
    p = (obj.masses[None, :, None] * tr.velocities).sum(1)
    return ke, p


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_many_body_conserves_energy_and_momentum(seed):
    obj, pos, vel = random_gas(seed)
    tr = physics.simulate(obj, pos, vel)
    assert tr.event_times.size >= 3
    ke, p = energy_momentum(obj, tr)
    assert np.max(np.abs(ke / ke[0] - 1)) < 1e-9
    assert np.max(np.abs(p - p[0])) < 1e-9 * np.abs(obj.masses[:, None] * vel).sum()


def test_walls_conserve_energy_and_keep_discs_inside():
    obj, pos, vel = random_gas(3)
    tr = physics.simulate(obj, pos, vel, walls=True, gravity=(0.3, -1.0))
    walls = tr.event_pairs[:, 1] < 0
    assert walls.sum() > 5 and (~walls).sum() > 0
    pot = (obj.masses[None] * (-0.3 * tr.positions[..., 0] + 1.0 * tr.positions[..., 1])).sum(-1)
    ke, _ = energy_momentum(obj, tr)
    total = ke + pot
    assert np.max(np.abs(total / total[0] - 1)) < 1e-9
    r = obj.radii[None, :, None]
    assert np.all(tr.positions >= r - 1e-9) and np.all(tr.positions <= 10 - r + 1e-9)


def test_ball_bounces_on_floor_back_to_its_height():
    # Dropped from rest at height h, e = 1: hits the floor at sqrt(2 (h - r) / g), back at 2x.
    g, h, r = 9.8, 6.0, 0.5
    tr = physics.simulate(one(r), [[5, h]], [[0, 0]], gravity=(0, -g), walls=True, n_frames=40)
    t_hit = np.sqrt(2 * (h - r) / g)
    assert tr.event_pairs[0].tolist() == [0, WALL_BOTTOM]
    np.testing.assert_allclose(tr.event_times[:2], [t_hit, 3 * t_hit], atol=1e-12)
    k = int(np.round(2 * t_hit / 0.1))
    t = world.frame_times(40)
    want = np.where(t < t_hit, h - g * t**2 / 2, h - g * (2 * t_hit - t) ** 2 / 2)
    np.testing.assert_allclose(tr.positions[: k + 1, 0, 1], want[: k + 1], atol=1e-9)


def test_walls_left_right_and_flip_swaps_them():
    tr = physics.simulate(one(0.5), [[5, 5]], [[6, 0]], walls=True)
    assert tr.event_pairs[:2, 1].tolist() == [WALL_RIGHT, WALL_LEFT]
    flipped = tr.flip_horizontal()
    assert flipped.event_pairs[:2, 1].tolist() == [WALL_LEFT, WALL_RIGHT]
    np.testing.assert_allclose(flipped.positions[..., 0], 10 - tr.positions[..., 0])
    np.testing.assert_allclose(flipped.flip_horizontal().positions, tr.positions)


def test_event_exactly_on_a_frame_time_maps_to_that_frame():
    # Gap 1.0 closed at speed 2 (sum): contact at t = 0.5 exactly, frame 5.
    tr = physics.simulate(world.Objects.make([1, 1]), [[3, 5], [6, 5]], [[1, 0], [-1, 0]])
    assert tr.event_frames.tolist() == [5]
    assert tr.velocities[5, 0, 0] == pytest.approx(-1.0)


def test_batch_rows_are_independent():
    obj, pos, vel = random_gas(5, n=6)
    radii = np.stack([obj.radii] * 3)
    masses = np.stack([obj.masses] * 3)
    p = np.stack([pos, pos + 0.0, pos])
    v = np.stack([vel, -vel, vel])
    out = physics.simulate_batch(radii, masses, p, v)
    assert out["positions"][0].tobytes() == out["positions"][2].tobytes()
    single = physics.simulate(obj, pos, -vel)
    assert single.positions.tobytes() == out["positions"][1].tobytes()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(radii=[-1.0]), "radii"),
        (dict(positions0=[[5, 5], [5.5, 5]], radii=[1, 1]), "overlap"),
        (dict(restitution=1.5), "restitution"),
        (dict(positions0=[[np.nan, 5]]), "finite"),
        (dict(positions0=[[1, 2, 3]]), "positions0"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, match):
    radii = kwargs.pop("radii", [1.0])
    n = len(radii)
    args = dict(positions0=[[2.0 + 3 * i, 5.0] for i in range(n)], velocities0=[[1.0, 0]] * n)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        physics.simulate(world.Objects.make(radii), **args)


# --------------------------------------------------------------------------- resting contact


def test_inelastic_floor_holds_a_dropped_disc_at_rest():
    # Dropped from y = 5 onto a floor with restitution 0: it lands at sqrt(2 (5 - r) / g)
    # and then rests at y = r exactly (it used to sink through the floor to y = -1.64).
    g, r = 9.8, 1.0
    tr = physics.simulate(one(r), [[5, 5]], [[0, 0]], gravity=(0, -g), walls=True,
                          wall_restitution=0.0)
    t_hit = np.sqrt(2 * (5 - r) / g)
    np.testing.assert_allclose(tr.event_times, [t_hit], atol=1e-12)
    after = T > t_hit
    np.testing.assert_allclose(tr.positions[after, 0, 1], r, rtol=0, atol=1e-9)
    assert np.all(tr.velocities[after, 0] == 0.0)
    np.testing.assert_allclose(tr.positions[~after, 0, 1], 5 - g * T[~after] ** 2 / 2,
                               atol=1e-12)


def test_a_disc_at_rest_on_the_floor_stays_and_slides_without_friction():
    tr = physics.simulate(one(1.0), [[2, 1]], [[1.5, 0]], gravity=(0, -9.8), walls=True,
                          wall_restitution=0.0)
    assert np.max(np.abs(tr.positions[:, 0, 1] - 1.0)) <= 1e-9
    np.testing.assert_allclose(tr.positions[:, 0, 0], 2 + 1.5 * T, atol=1e-12)
    assert len(tr.event_times) == 0
    # with an elastic floor (the default) the same start is resting too
    el = physics.simulate(one(1.0), [[2, 1]], [[1.5, 0]], gravity=(0, -9.8), walls=True)
    assert el.positions.tobytes() == tr.positions.tobytes()


def test_partially_elastic_bounces_come_to_rest_instead_of_an_event_cascade():
    e, g, h, r = 0.5, 9.8, 5.0, 1.0
    tr = physics.simulate(one(r), [[5, h]], [[0, 0]], gravity=(0, -g), walls=True,
                          wall_restitution=e)
    # bounce k lands at t_hit (1 + 2 e + 2 e² + ... ): geometric, exact
    t_hit = np.sqrt(2 * (h - r) / g)
    k = np.arange(5)
    want = t_hit * (1 + 2 * e * (1 - e**k) / (1 - e))
    np.testing.assert_allclose(tr.event_times[:5], want, atol=1e-12)
    t_rest = t_hit * (1 + 2 * e / (1 - e))  # the Zeno limit
    late = T > t_rest + 1e-6
    assert late.any() and np.all(np.abs(tr.positions[late, 0, 1] - r) <= 1e-9)


def test_a_flying_disc_hits_a_resting_one_at_the_closed_form_time():
    # Disc 1 (r 0.5) falls from (5.3, 6) onto disc 0 resting at (5, 1): contact when the
    # centres are 1.5 apart, i.e. at y = 1 + sqrt(1.5² - 0.3²).
    g = 9.8
    tr = physics.simulate(world.Objects.make([1.0, 0.5]), [[5, 1], [5.3, 6]], [[0, 0], [0, 0]],
                          gravity=(0, -g), walls=True, wall_restitution=0.0)
    y_contact = 1 + np.sqrt(1.5**2 - 0.3**2)
    assert tr.event_pairs[0].tolist() == [0, 1]
    np.testing.assert_allclose(tr.event_times[0], np.sqrt(2 * (6 - y_contact) / g), atol=1e-12)
    # the floor keeps disc 0 down: it slides off to the left, never below y = r
    assert np.all(tr.positions[:, 0, 1] >= 1.0 - 1e-9) and tr.velocities[-1, 0, 0] < 0
    assert np.all(tr.positions[:, 1, 1] >= 0.5 - 1e-9)


def test_max_events_is_an_option_and_its_error_names_it():
    obj, pos, vel = random_gas(3, n=16)
    with pytest.raises(ValueError, match="raise max_events"):
        physics.simulate(obj, pos, vel * 20, walls=True, max_events=4)
    tr = physics.simulate(obj, pos, vel * 20, walls=True, max_events=4096)
    assert len(tr.event_times) > 4
    with pytest.raises(ValueError, match="max_events must be"):
        physics.simulate(obj, pos, vel, max_events=0)


def test_simulate_batch_names_the_first_bad_input():
    from physim.physics import simulate_batch

    r = np.array([[0.5, 0.5], [0.5, 0.5]])
    m = np.ones((2, 2))
    p = np.array([[[1.0, 1.0], [3.0, 1.0]], [[1.0, 4.0], [2.0, 4.0]]])  # video 1: touching
    v = np.zeros((2, 2, 2))
    assert simulate_batch(r, m, p, v)["positions"].shape == (2, 32, 2, 2)
    cases = [
        ("radii must be finite", lambda r, m, p, v: r.__setitem__((1, 0), np.nan)),
        ("masses must be finite", lambda r, m, p, v: m.__setitem__((0, 1), np.inf)),
        ("positions must be finite", lambda r, m, p, v: p.__setitem__((1, 1, 0), np.nan)),
        ("velocities must be finite", lambda r, m, p, v: v.__setitem__((0, 0, 1), -np.inf)),
        ("radii and masses must be > 0", lambda r, m, p, v: m.__setitem__((1, 1), 0.0)),
        ("overlap at t = 0 in video 1", lambda r, m, p, v: p.__setitem__((1, 1, 0), 1.99)),
        ("overlap at t = 0 in video 0", lambda r, m, p, v: p.__setitem__((0, 0), p[0, 1])),
    ]
    for msg, spoil in cases:
        a = [x.copy() for x in (r, m, p, v)]
        spoil(*a)
        with pytest.raises(ValueError, match=msg):
            simulate_batch(*a)


@pytest.mark.parametrize("name", ["uniform", "parabola", "collision"])
def test_simulate_one_call_is_the_batch_kernel_bit_for_bit(name):
    # physim.simulate has its own single-dispatch path (physics._simulate_one); every field
    # of its Trajectory must equal the batched kernel's, dtype and shape included.
    import physim

    spec = physim.scenario(name)
    recs = spec.batch(0, "train", np.arange(24)).records()
    kw = spec.sim_kwargs()
    out = physics.simulate_batch(np.stack([r.objects.radii for r in recs]),
                                 np.stack([r.objects.masses for r in recs]),
                                 np.stack([r.positions[0] for r in recs]),
                                 np.stack([r.velocities[0] for r in recs]), **kw)
    assert out["event_counts"].any() or name != "collision"
    for b, rec in enumerate(recs):
        got = physics.simulate(rec.objects, rec.positions[0], rec.velocities[0], **kw)
        want = physics.trajectory_from_batch(out, b, kw["dt"])
        for f in ("times", "positions", "velocities", "angles", "angular_velocities",
                  "event_times", "event_frames", "event_pairs"):
            x, y = getattr(got, f), getattr(want, f)
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), f
        # a real frozen dataclass: fields() and replace() see every field
        assert dataclasses.replace(got, times=got.times).event_pairs is got.event_pairs
        with pytest.raises(dataclasses.FrozenInstanceError):
            got.times = None


def _unaligned(a):
    out = np.ndarray(np.shape(a), np.float64, np.zeros(np.size(a) * 8 + 1, np.uint8), 1)
    out[...] = a
    return out


def _read_only(a):
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("how", ["read-only", "unaligned", "fortran", "float32", "list"])
def test_simulate_takes_any_input_after_its_direct_entry_point_is_kept(how):
    # After one call with plain float64 arrays, physim.simulate calls the compiled overload
    # directly (read-only arrays too: the kernel only reads them); inputs of any other kind
    # must still go through Numba's dispatcher (the entry point does not check types), and
    # every path gives the same bytes.
    obj = world.Objects.make([1.0, 0.5], masses=[2.0, 0.5])  # all exact in float32
    pos, vel = np.array([[2.0, 5.0], [6.0, 5.25]]), np.array([[1.5, 0.125], [-1.0, 0.0]])
    want = physics.simulate(obj, pos, vel, walls=True)
    assert physics._one_entry is not None
    conv = {"read-only": _read_only, "unaligned": _unaligned, "fortran": np.asfortranarray,
            "float32": lambda a: np.asarray(a, np.float32), "list": lambda a: a.tolist()}[how]
    assert how != "unaligned" or not conv(pos).flags.aligned
    objs = dataclasses.replace(obj, radii=conv(obj.radii), masses=conv(obj.masses))
    got = physics.simulate(objs, conv(pos), conv(vel), walls=True)
    assert got.event_pairs.shape[0] > 0
    for f in ("times", "positions", "velocities", "angles", "angular_velocities",
              "event_times", "event_frames", "event_pairs"):
        x, y = getattr(got, f), getattr(want, f)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), f


def test_simulate_errors_are_the_same_on_the_direct_path():
    obj = world.Objects.make([1.0, 1.0])
    pos, vel = np.array([[2.0, 5.0], [6.0, 5.0]]), np.array([[1.0, 0.0], [-1.0, 0.0]])
    physics.simulate(obj, pos, vel)
    assert physics._one_entry is not None
    with pytest.raises(ValueError, match="overlap"):
        physics.simulate(obj, np.array([[2.0, 5.0], [2.5, 5.0]]), vel)
    with pytest.raises(ValueError, match="velocities must be finite"):
        physics.simulate(obj, pos, np.array([[np.nan, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="radii must be finite"):
        physics.simulate(dataclasses.replace(obj, radii=np.array([np.inf, 1.0])), pos, vel)
    with pytest.raises(ValueError, match="radii and masses must be > 0"):
        physics.simulate(dataclasses.replace(obj, masses=np.array([1.0, -1.0])), pos, vel)
    with pytest.raises(ValueError, match="exceeded 2 collision events"):
        physics.simulate(obj, pos, vel * 20, walls=True, max_events=2)
    with pytest.raises(ValueError, match=r"must be \(2, 2\)"):
        physics.simulate(obj, pos[:, :1].copy(), vel)


@pytest.mark.parametrize("gravity, match", [((np.inf, 0.0), "gravity must be finite"),
                                            ([0.0, np.nan], "gravity must be finite"),
                                            ((1.0, 2.0, 3.0), "reshape")])
def test_simulate_rejects_bad_gravity(gravity, match):
    with pytest.raises(ValueError, match=match):
        physics.simulate(one(), [[5, 5]], [[1, 0]], gravity=gravity)
