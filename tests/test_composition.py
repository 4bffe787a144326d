"""Composition scenarios (paper §5.4): exact events of a collision then a wall bounce,
training sets that never hold both events, composed spatial scenes that never touch."""

from __future__ import annotations

import numpy as np
import pytest

from physim import world
from physim.scenarios import scenario

DT = world.FRAME_DT
W = world.WORLD_SIZE


@pytest.fixture(scope="module")
def temporal():
    return scenario("composition_temporal")


@pytest.fixture(scope="module")
def spatial():
    return scenario("composition_spatial")


@pytest.mark.parametrize("index", [0, 7, 40, 99, 143])
def test_composed_collision_then_bounce_matches_closed_form(temporal, index):
    rec = temporal.sample(0, "ood", index)
    tr, obj = rec.trajectory, rec.objects
    (x1, y), (x2, _) = tr.positions[0]
    v1, v2 = tr.velocities[0, 0, 0], -tr.velocities[0, 1, 0]
    r1, r2 = obj.radii
    m1, m2 = obj.masses
    # collision: the gap closes at v1 + v2
    tc = (x2 - x1 - (r1 + r2)) / (v1 + v2)
    assert tr.event_pairs[0].tolist() == [0, 1]
    np.testing.assert_allclose(tr.event_times[0], tc, atol=1e-12)
    # after it: the velocities that conserve momentum and energy in 1-D
    a = (m1 * v1 - m2 * v2 - m2 * (v1 + v2)) / (m1 + m2)
    b = a + (v1 + v2)  # elastic: the relative velocity reverses
    np.testing.assert_allclose(m1 * a + m2 * b, m1 * v1 - m2 * v2, atol=1e-12)
    # the first wall event: the ball heading out reaches its wall at the closed-form time
    w = int(np.flatnonzero(tr.event_pairs[:, 1] < 0)[0])
    ball, wall = tr.event_pairs[w]
    xc = (x1 + v1 * tc, x2 - v2 * tc)[ball]
    u = (a, b)[ball]
    target = (obj.radii[ball] if wall == -1 else W - obj.radii[ball])
    tb = tc + (target - xc) / u
    np.testing.assert_allclose(tr.event_times[w], tb, atol=1e-9)
    assert tr.event_frames[w] <= temporal.n_frames - 1 - temporal.min_post
    # after the bounce the ball moves back at the same speed, y never changes
    k = int(tr.event_frames[w])
    if w + 1 == len(tr.event_times) or tr.event_frames[w + 1] > k:
        np.testing.assert_allclose(tr.velocities[k, ball, 0], -u, atol=1e-12)
    np.testing.assert_allclose(tr.positions[..., 1], y, atol=0)
    assert rec.level == "composed" and rec.objects.colors == ("red", "blue")


def test_training_videos_never_hold_both_events(temporal):
    kinds = {"collision": 0, "bounce": 0}
    for i in range(200):
        rec = temporal.sample(3, "train", i)
        pairs = rec.trajectory.event_pairs
        kinds[rec.level] += 1
        if rec.level == "collision":
            assert rec.objects.n == 2 and len(pairs) == 1 and pairs[0].tolist() == [0, 1]
        else:
            assert rec.level == "bounce" and rec.objects.n == 1
            assert len(pairs) >= 1 and np.all(pairs[:, 1] < 0)  # walls only
            assert rec.objects.colors == (temporal.bounce_color,)
    assert min(kinds.values()) > 60  # both kinds, about half each
    # and every composed test video holds both
    for i in range(0, temporal.size("ood"), 9):
        pairs = temporal.sample(0, "ood", i).trajectory.event_pairs
        assert pairs[0].tolist() == [0, 1] and np.any(pairs[:, 1] < 0)


def test_id_split_is_each_event_alone_on_a_grid(temporal):
    codes, cols = temporal.grid("id")
    levels = temporal.level_names("id")
    assert set(levels[c] for c in codes) == {"collision", "bounce"}
    bounce = codes == levels.index("bounce")
    assert np.all(np.isnan(cols["r2"][bounce])) and np.all(np.isfinite(cols["r2"][~bounce]))
    assert temporal.size("id") == len(codes)
    rec = temporal.sample(0, "id", int(np.flatnonzero(bounce)[0]))
    assert rec.level == "bounce" and rec.trajectory.event_pairs[0, 1] < 0


def test_same_seed_same_bytes_and_bad_specs(temporal, spatial):
    a = temporal.sample(5, "train", 11).trajectory.positions
    b = temporal.sample(5, "train", 11).trajectory.positions
    assert a.tobytes() == b.tobytes()
    with pytest.raises(ValueError, match="r_id above 2"):
        scenario("composition_temporal", r_id=(0.5, 2.5))
    with pytest.raises(ValueError, match="unknown split"):
        temporal.sample(0, "test", 0)
    with pytest.raises(ValueError, match="grid size"):
        spatial.sample(0, "ood", spatial.size("ood"))


def test_spatial_composition_keeps_its_objects_apart(spatial):
    for i in range(0, spatial.size("ood"), 7):
        rec = spatial.sample(0, "ood", i)
        tr, obj = rec.trajectory, rec.objects
        assert obj.shapes == ("square", "ball") and len(tr.event_times) == 0
        gap = np.linalg.norm(tr.positions[:, 0] - tr.positions[:, 1], axis=-1)
        assert gap.min() >= np.sqrt(2) * obj.radii[0] + obj.radii[1] + 0.2 - 1e-12
        # the square moves uniformly, the ball never moves
        v = tr.velocities[0, 0, 0]
        np.testing.assert_allclose(tr.positions[:, 0, 0], tr.positions[0, 0, 0] + v * tr.times,
                                   atol=1e-12)
        assert np.all(tr.positions[:, 1] == tr.positions[0, 1])
    levels = {spatial.sample(1, "train", i).level for i in range(40)}
    assert levels == {"moving", "static"}
    for i in range(40):
        rec = spatial.sample(1, "train", i)
        assert rec.objects.n == 1
        moving = np.any(rec.trajectory.velocities[0, 0] != 0)
        assert moving == (rec.level == "moving")


def test_a_composition_dataset_round_trips(tmp_path, temporal):
    import physim.dataset

    physim.dataset.generate("composition_temporal", split="ood", n=6, seed=0,
                            out=tmp_path / "c", progress=False)
    ds = physim.dataset.open(tmp_path / "c")
    rows = np.linspace(0, temporal.size("ood"), 6, endpoint=False).astype(int)
    for k, i in enumerate(rows):
        want = temporal.sample(0, "ood", int(i)).trajectory
        got = ds[k].trajectory
        assert got.positions.tobytes() == want.positions.tobytes()
        assert got.event_pairs.tolist() == want.event_pairs.tolist()
    assert ds.frames(0, resolution=32).shape == (32, 32, 32, 3)


# --------------------------------------------------------------------------- law scores


def _scores(rec, traj=None, res=64):
    import dataclasses

    from evals import laws, parse
    from physim.render import render

    shown = rec if traj is None else dataclasses.replace(rec, trajectory=traj)
    frames = render(shown.trajectory, shown.objects, resolution=res)
    return laws.score(parse.parse(frames, rec.objects.rgb, config="exact"), rec)


def test_bounce_scores_read_the_restitution_of_the_rollout(temporal):
    from physim import physics

    rec = temporal.sample(0, "id", int(np.flatnonzero(
        temporal.grid("id")[0] == temporal.level_names("id").index("bounce"))[20]))
    truth = _scores(rec)
    assert truth["scorer"] == "composition_temporal"
    assert truth["bounce_restitution"] == pytest.approx(1.0, abs=0.03)
    assert truth["bounce_angle"] < 0.05 and truth["bounce_restitution_error"] < 0.03
    tr = rec.trajectory
    # negative controls from the same initial state: a half-elastic wall, and no wall
    half = physics.simulate(rec.objects, tr.positions[0], tr.velocities[0], walls=True,
                            wall_restitution=0.5)
    got = _scores(rec, half)
    assert got["bounce_restitution"] == pytest.approx(0.5, abs=0.05)
    assert got["bounce_restitution_error"] == pytest.approx(0.5, abs=0.05)
    through = physics.simulate(rec.objects, tr.positions[0], tr.velocities[0])
    assert _scores(rec, through)["bounce_restitution_error"] > 0.5


def test_composed_videos_score_both_events(temporal):
    rec = temporal.sample(0, "ood", 30)
    s = _scores(rec)
    assert s["post_velocity_error"] < 0.05 and s["momentum_error"] < 0.05
    assert s["bounce_restitution"] == pytest.approx(1.0, abs=0.05)
    collision_only = temporal.sample(0, "id", 0)
    s = _scores(collision_only)
    assert np.isnan(s["bounce_restitution"]) and s["energy_error"] < 0.05


def test_spatial_scores_catch_a_drifting_or_vanished_static_ball(spatial):
    import dataclasses

    rec = spatial.sample(0, "ood", 17)
    ok = _scores(rec)
    assert ok["static_drift"] < 0.02 and ok["moving_velocity_error"] < 0.05
    assert ok["found_all"] == 1.0
    tr = rec.trajectory
    drift = tr.positions.copy()
    drift[:, 1, 0] += 0.5 * tr.times  # the resting ball creeps right
    moved = _scores(rec, dataclasses.replace(tr, positions=drift))
    assert moved["static_drift"] > 0.3 and moved["static_velocity_error"] > 0.3
    gone = tr.positions.copy()
    gone[rec.n_cond:, 1] = (-50.0, -50.0)  # the resting ball vanishes
    assert _scores(rec, dataclasses.replace(tr, positions=gone))["found_all"] == 0.0


def test_composition_experiment_reports_each_event_alone_and_composed(tmp_path):
    from evals import compare
    from evals import pipeline as pl

    p = pl.plan("composition", "micro", tmp_path / "run", n_eval=4)
    assert {c.scenario for c in p.cells} == {"composition_temporal", "composition_spatial"}
    pl.run_plan(p, log=lambda m: None, only=("generate", "baseline", "evaluate"), cells=False)
    rows = compare.collect(p.run_dir)
    truth = compare._get(rows, model_or_ref="truth", eval="composition_temporal-eval",
                         group="ood/composed")
    assert truth and truth[0]["bounce_restitution"] > 0.9  # the truth bounces elastically
    frozen = compare._get(rows, model_or_ref="copy-last", eval="composition_temporal-eval",
                          group="ood/composed")
    assert frozen[0]["velocity_error"] > 10 * truth[0]["velocity_error"]
    md = compare.build_report([p.run_dir], tmp_path / "rep", gifs=False).read_text()
    assert "Composition: each event alone" in md and "id/bounce" in md and "ood/composed" in md
    assert "static_drift" in md
