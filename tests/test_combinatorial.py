"""Combinatorial (PHYRE-like) scenes: templates, splits, object ranges, determinism and
physical sanity."""

import dataclasses
import hashlib
import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import physim
from physim import rigid, world
from physim.scenarios import combinatorial as C
from physim.scenarios import phyre_scenes as P

SPEC = physim.scenario("combinatorial")


@pytest.fixture(scope="module")
def samples():
    return [SPEC.sample(7, "train", i) for i in range(10)]


# ----------------------------------------------------------------------- templates and splits


def test_templates_are_the_70_combinations_in_the_forks_order():
    assert len(P.TEMPLATES) == 70
    assert sorted(P.TEMPLATES) == list(itertools.combinations(range(8), 4))
    # The fork's own comments name these six "pairs of pairs" templates.
    pairs = {10003: (4, 5, 6, 7), 10005: (2, 3, 4, 5), 10016: (2, 3, 6, 7),
             10023: (0, 1, 2, 3), 10024: (0, 1, 4, 5), 10053: (0, 1, 6, 7)}  # fmt: skip
    for tid, combo in pairs.items():
        assert P.TEMPLATES[tid - 10000] == combo
    assert set(P.TEMPLATE_SETS[6]) == set(pairs)
    assert P.template_objects(10005) == (
        "static_ball", "dynamic_bar", "dynamic_standing_bars", "static_bar")  # fmt: skip
    with pytest.raises(ValueError, match="template"):
        P.template_objects(10070)


def test_template_sets():
    s6, s30, s60 = (set(P.TEMPLATE_SETS[k]) for k in (6, 30, 60))
    assert (len(s6), len(s30), len(s60)) == (6, 30, 60)
    assert s30 == {10000 + 10 * a + b for a in range(6) for b in (0, 2, 4, 6, 8)}
    assert s6 < s60 and s30 < s60 and s60 == set(range(10000, 10060))
    assert set(P.HELD_OUT_TEMPLATES) == set(range(10060, 10070))
    assert not s60 & set(P.HELD_OUT_TEMPLATES)
    # The 6-template set covers every two-object interaction (all 28 pairs of types).
    met = {p for t in s6 for p in itertools.combinations(P.TEMPLATES[t - 10000], 2)}
    assert met == set(itertools.combinations(range(8), 2))


def test_split_grids_and_sampling():
    assert SPEC.size("train") is None and SPEC.grid("train") == []
    assert SPEC.size("in-template") == 600  # 60 templates x 10 held-out tasks
    assert SPEC.size("out-of-template") == 1000
    assert physim.scenario("combinatorial", templates=6).size("in-template") == 60
    for level, p in SPEC.grid("in-template"):
        assert level == "id" and p["template"] < 10060 and 90 <= p["task"] < 100
    for level, p in SPEC.grid("out-of-template"):
        assert level == "ood" and p["template"] >= 10060
    spec6 = physim.scenario("combinatorial", templates=6)
    rng = np.random.default_rng(0)
    drawn = [spec6.sample_params(rng, "train")[1] for _ in range(300)]
    assert {d["template"] for d in drawn} == set(P.TEMPLATE_SETS[6])
    assert max(d["task"] for d in drawn) < 90
    with pytest.raises(ValueError, match="split"):
        SPEC.grid("ood")
    with pytest.raises(ValueError, match="grid size"):
        SPEC.sample(0, "out-of-template", 1000)
    with pytest.raises(ValueError, match="templates"):
        physim.scenario("combinatorial", templates=7)


# ----------------------------------------------------------------------- objects and records


def _extent(body):
    """(length, thickness) of a one-box body."""
    v = np.asarray(body.shapes[0].vertices)
    w, h = v.max(0) - v.min(0)
    return max(w, h), min(w, h)


def test_object_ranges_and_colours():
    seen = set()
    for template in P.TEMPLATE_SETS[60][::3] + P.HELD_OUT_TEMPLATES[::3]:
        for task in range(3):
            bodies, owners = P.task_layout(template, task)
            assert set(owners) == set(P.template_objects(template))
            for b, o in zip(bodies, owners, strict=True):
                seen.add(o)
                assert b.color == ("black" if b.static else "phyre_gray")
                assert b.static == o.startswith("static")
                if o.startswith("dynamic_ball"):
                    assert 0.3 <= b.shapes[0].radius <= 0.6
                    assert 3.0 <= b.position[0] <= 6.0
                elif o == "static_ball":
                    assert b.shapes[0].radius == pytest.approx(0.2) and b.position[1] <= 5.5
                elif o == "dynamic_bar":
                    length, thick = _extent(b)
                    assert 1.5 <= length <= 5.0 and thick == pytest.approx(0.2)
                    assert abs(b.angle) <= math.pi / 2
                elif o == "dynamic_standing_bars":
                    length, thick = _extent(b)
                    assert 2.0 <= length <= 3.5 + 1e-9 and b.angle == pytest.approx(math.pi / 2)
                    assert b.position[1] == pytest.approx(length / 2)  # standing on the floor
                elif o == "static_bar":
                    length, _ = _extent(b)
                    assert 2.0 <= length <= 5.0 and abs(b.angle) <= math.radians(60)
                elif o == "dynamic_jar":
                    assert len(b.shapes) == 3 and abs(b.angle) <= math.radians(45)
                    height = np.ptp(np.asarray(b.shapes[1].vertices)[:, 1])
                    assert 0.7 <= height <= 3.0
                else:
                    assert o == "dynamic_standingsticks" and len(b.shapes) == 2
            n_bars = owners.count("dynamic_standing_bars")
            assert n_bars == 0 or 1 <= n_bars <= 4
            assert rigid.overlaps(bodies, tolerance=1e-6) == []  # overlap-free layouts
    assert seen == set(P.OBJECT_TYPES)


def test_records(samples):
    lo, hi = (2 + 62 * 0.1) * P.PX, (2 + 62 * 1.0) * P.PX  # action radius range
    for r in samples:
        tr = r.trajectory
        assert r.n_cond == 1 and tr.positions.shape[0] == 32 and r.scenario == "combinatorial"
        assert np.all(tr.velocities[0] == 0) and np.all(tr.angular_velocities[0] == 0)
        i = r.extra["action_index"]
        assert r.colors[i] == "phyre_red" and r.colors.count("phyre_red") == 1
        assert lo - 1e-9 <= r.extra["bodies"][i]["shapes"][0]["radius"] <= hi + 1e-9
        assert r.params["template"] in P.TEMPLATE_SETS[60] and r.params["task"] < 90
        assert len(r.objects.radii) == tr.positions.shape[1] == len(r.extra["bodies"])
        static = [b["static"] for b in r.extra["bodies"]]
        assert np.all(np.isinf(r.objects.masses[static]))
        assert np.all(tr.positions[:, static] == tr.positions[:1, static])
        assert len(tr.event_times) == len(tr.event_frames) == len(tr.event_pairs)
        assert np.all(tr.event_frames <= 31)


def test_action_heuristic_places_near_an_object():
    rng = np.random.default_rng(3)
    bodies, _ = P.task_layout(10023, 5)
    for _ in range(20):
        x, y, r = P.place_action(bodies, rng)
        assert 0 <= x <= 1 and 0 <= y <= 1 and 0.1 <= r <= 1.0
        ball = P._action_ball(x, y, r)
        assert rigid.overlaps([*bodies, ball], tolerance=0.0) == []


# ----------------------------------------------------------------------- determinism


def _digest(rec) -> str:
    tr = rec.trajectory
    h = hashlib.sha256()
    for a in (tr.positions, tr.velocities, tr.angles, tr.angular_velocities, tr.event_pairs):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr(rec.extra["bodies"]).encode())
    return h.hexdigest()


def test_same_seed_same_bytes_across_processes():
    keys = [("train", 3), ("out-of-template", 17)]
    here = [_digest(SPEC.sample(11, s, i)) for s, i in keys]
    assert here == [_digest(SPEC.sample(11, s, i)) for s, i in keys]
    assert _digest(SPEC.sample(12, "train", 3)) != here[0]
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "import physim, test_combinatorial as t; "
        "s = physim.scenario('combinatorial'); "
        f"print([t._digest(s.sample(11, sp, i)) for sp, i in {keys}])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == repr(here)


# ----------------------------------------------------------------------- physical sanity


def _posed(rec, k):
    tr = rec.trajectory
    return [dataclasses.replace(b, position=tuple(tr.positions[k, i]), angle=float(tr.angles[k, i]))
            for i, b in enumerate(C.bodies_of(rec))]  # fmt: skip


def test_nothing_passes_through_static_objects_or_walls(samples):
    # Contacts may overlap transiently by a fraction of a pixel (discrete steps), never more.
    for r in samples:
        for k in range(0, 32, 2):
            assert rigid.overlaps(_posed(r, k), tolerance=0.06) == [], (r.id, k)


def test_energy_does_not_grow(samples):
    for r in samples:
        roll = rigid.simulate_bodies(C.bodies_of(r), SPEC.physics)
        np.testing.assert_array_equal(roll.trajectory.positions, r.trajectory.positions)
        m = roll.masses[np.isfinite(roll.masses)].sum()
        scale = m * P.GRAVITY * world.WORLD_SIZE
        assert np.max(roll.energy - roll.energy[0]) < 0.01 * scale, r.id
    # Negative control: super-elastic materials do gain energy.
    r = samples[0]
    roll = rigid.simulate_bodies(C.bodies_of(r), dataclasses.replace(SPEC.physics, restitution=4.0))
    m = roll.masses[np.isfinite(roll.masses)].sum()
    assert np.max(roll.energy - roll.energy[0]) > 0.01 * m * P.GRAVITY * world.WORLD_SIZE


def test_physics_constants():
    assert P.GRAVITY == pytest.approx(9.8 * 6 * 10 / 512 * (10 / 3) ** 2)  # ≈ 12.76
    assert SPEC.physics.substeps * 3 == 60  # one Box2D step of 1/60 PHYRE s per substep
    assert SPEC.physics.friction == 0.5 and SPEC.physics.restitution == 0.2


def test_geometry_for_renderer(samples):
    render = pytest.importorskip("physim.render")
    r = samples[0]
    g = C.geometry(r)
    assert g.n_bodies == r.trajectory.positions.shape[1]
    frames = C.render(r, resolution=32)
    assert frames.shape == (32, 32, 32, 3) and frames.dtype == np.uint8
    red = np.all(frames[0] == world.color_rgb("phyre_red"), axis=-1)
    assert red.any()
    assert isinstance(g, render.Geometry)


def test_dataset_roundtrip(tmp_path):
    pytest.importorskip("physim.generate")
    from physim import dataset, shards
    from physim.generate import generate

    res = generate("combinatorial", "in-template", 3, 5, tmp_path, overrides={"templates": 6},
                   shard_size=3, progress=False)  # fmt: skip
    assert res["complete"]
    ds = dataset.open(tmp_path, "in-template")
    spec = physim.scenario("combinatorial", templates=6)
    for i in range(3):
        rec = ds[i]
        truth = spec.sample(5, "in-template", int(rec.id.rsplit("-", 1)[1]))
        assert shards.records_equal(rec, truth)
        np.testing.assert_array_equal(ds.frames(i, resolution=24), C.render(truth, 24))
