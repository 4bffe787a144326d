"""The physics judge (evals.judge) on its calibration controls (evals.controls).

Every control family has both outcomes asserted: the positive controls of the same truths
pass (plausible, faithful), the negative control is flagged implausible by the check that
names its cause and is unfaithful. Small sizes: 64 px (32 px for one disc case), a few
videos.
"""

import dataclasses
import json

import numpy as np
import pytest

import physim
from evals import controls, judge, parse

RES = 64


@pytest.fixture(scope="module")
def disc_truths():
    """A few train records per basic scenario (collision: masses differ by >= 1.5x)."""
    out = {}
    for name in ("uniform", "parabola", "collision"):
        spec = physim.scenario(name)
        recs = controls.truth_records(spec, 0, "train", 10)
        if name == "collision":
            recs = [r for r in recs if max(r.objects.masses) > 1.5 * min(r.objects.masses)]
        out[name] = (spec, recs[:2])
    return out


def _judge(frames, rec, spec, preset="exact", luma=None, truth=None):
    return judge.judge_video(frames, rec, judge.laws_for(spec), config=preset, luma=luma,
                             truth=truth)  # fmt: skip


@pytest.mark.parametrize("name", ["uniform", "parabola", "collision"])
def test_disc_truth_is_plausible_and_faithful(disc_truths, name):
    spec, recs = disc_truths[name]
    for rec in recs:
        for res in (32, RES):
            v = _judge(controls.disc_control("truth", rec, spec, res), rec, spec)
            assert v["plausibility"]["plausible"], (res, v["plausibility"])
            assert v["fidelity"]["faithful"] and v["fidelity"]["divergence_frame"] == -1, v


@pytest.mark.parametrize(
    "name,family,check",
    [
        ("uniform", "frozen", "inertia"),
        ("uniform", "reversed", "inertia"),
        ("uniform", "teleport", "teleport"),
        ("uniform", "vanish", "vanish"),
        ("uniform", "color_swap", "color"),
        ("parabola", "frozen", "acceleration"),
        ("parabola", "gravity_x0", "acceleration"),
        ("parabola", "gravity_x0.5", "acceleration"),
        ("parabola", "gravity_x2", "acceleration"),
        ("collision", "reversed", "inertia"),
        ("collision", "color_swap", "color"),
        ("collision", "restitution_0", "energy"),
        ("collision", "masses_swapped", "momentum"),
    ],
)
def test_disc_negative_flagged_by_its_check(disc_truths, name, family, check):
    spec, recs = disc_truths[name]
    for rec in recs:
        truth = _judge(controls.disc_control("truth", rec, spec, RES), rec, spec)
        assert check not in truth["plausibility"]["causes"]
        frames = controls.disc_control(family, rec, spec, RES)
        assert frames is not None, (family, rec.params)
        v = _judge(frames, rec, spec)
        assert not v["plausibility"]["plausible"]
        assert check in v["plausibility"]["causes"], v["plausibility"]
        assert not v["fidelity"]["faithful"]
        assert v["fidelity"]["divergence_frame"] >= rec.n_cond


def test_wrong_physics_is_consistent_physics_of_another_world(disc_truths):
    """Gravity x2 is judged implausible under our laws but plausible under its own."""
    spec, recs = disc_truths["parabola"]
    rec = recs[0]
    frames = controls.disc_control("gravity_x2", rec, spec, RES)
    ours = judge.laws_for(spec)
    theirs = judge.Laws(gravity=tuple(2 * ours.g))
    assert "acceleration" in judge.judge_video(frames, rec, ours)["plausibility"]["causes"]
    # (the conditioning frames are ours: only the generated frames follow 2g)
    tracks = parse.parse_record(frames, rec)
    assert "acceleration" not in judge.plausibility_discs(tracks, rec.n_cond, theirs)["causes"]


def test_mp4_at_our_quality_is_plausible(disc_truths):
    spec, recs = disc_truths["uniform"]
    rec = recs[0]
    frames = controls.disc_control("truth", rec, spec, RES)
    dec, luma = controls._mp4(frames, controls.MP4_QUALITY["mp4_ours"])
    assert judge.choose_preset(dec, rec) == "lossy"
    v = _judge(dec, rec, spec, preset="lossy", luma=luma)
    assert v["plausibility"]["plausible"], v["plausibility"]
    frozen = dec.copy()
    frozen[rec.n_cond :] = dec[rec.n_cond - 1]
    assert "inertia" in _judge(frozen, rec, spec, "lossy", luma=None)["plausibility"]["causes"]


@pytest.fixture(scope="module")
def scene():
    spec = physim.scenario("combinatorial")
    return spec, controls.truth_records(spec, 0, "train", 1)[0]


@pytest.mark.parametrize(
    "family,check",
    [
        ("frozen", "unsupported"),
        ("vanish", "vanish"),
        ("teleport", "teleport"),
        ("color_swap", "color"),
        ("gravity_x0.5", "acceleration"),
        ("gravity_x2", "acceleration"),
        ("restitution_1", "energy"),
        ("reversed", "spontaneous"),
    ],
)
def test_scene_negative_flagged_by_its_check(scene, family, check):
    spec, rec = scene
    frames, cond = controls.scene_control(family, rec, spec, RES)
    v = _judge(frames, cond, spec, truth=rec)
    assert check in v["plausibility"]["causes"], v["plausibility"]
    assert not v["fidelity"]["faithful"]


def test_scene_truth_is_plausible_and_faithful(scene):
    spec, rec = scene
    frames, cond = controls.scene_control("truth", rec, spec, RES)
    v = _judge(frames, cond, spec)
    assert v["plausibility"]["plausible"], v["plausibility"]
    assert v["fidelity"]["faithful"], v["fidelity"]
    # A frozen scene is implausible, not merely unfaithful (the old checks called it normal).
    frozen = frames.copy()
    frozen[1:] = frames[0]
    assert not _judge(frozen, cond, spec)["plausibility"]["plausible"]


def test_a_scene_from_rest_never_raises_its_centre_of_mass(scene):
    """The energy bound of rigid scenes: the truth falls (its centre of mass only drops);
    played backwards, it rises by the height the truth fell, which no world with our laws
    allows; a scene whose laws do not start from rest is not held to it."""
    spec, rec = scene
    laws = judge.laws_for(spec)
    truth, _ = controls.scene_control("truth", rec, spec, RES)
    back, cond = controls.scene_control("reversed", rec, spec, RES)
    st_t = _judge(truth, rec, spec, truth=rec)["plausibility"]["stats"]
    v_b = judge.judge_video(back, cond, laws, config="exact", truth=rec)["plausibility"]
    assert st_t["com_rise_max"] < judge.JudgeConfig().com_rise  # it only falls
    assert v_b["stats"]["com_rise_max"] > 2 * judge.JudgeConfig().com_rise
    assert "energy" in v_b["causes"]
    moving = dataclasses.replace(laws, from_rest=False)
    v_m = judge.judge_video(back, cond, moving, config="exact", truth=rec)["plausibility"]
    assert v_m["stats"]["com_rise_max"] == 0.0


def test_bodies_of_one_colour_merging_are_not_a_launch():
    """Seed 1's first combinatorial truth: two grey bodies touch at frame 30 and their blob
    grows by 19%, so its centroid jumps up. Without the area guard that read as a launch
    out of a contact with no pusher (energy); with it the truth is plausible."""
    spec = physim.scenario("combinatorial")
    rec = controls.truth_records(spec, 1, "train", 1)[0]
    frames, cond = controls.scene_control("truth", rec, spec, 128)
    laws, cfg = judge.laws_for(spec), judge.JUDGE_PRESETS["exact"]
    v = judge.judge_video(frames, cond, laws, config=cfg, fidelity=False)["plausibility"]
    assert v["plausible"], v["causes"]
    unguarded = dataclasses.replace(cfg, merge_area=np.inf)
    v = judge.judge_video(frames, cond, laws, config=unguarded, fidelity=False)["plausibility"]
    assert "energy" in v["causes"]


def test_fit_motion_recovers_a_parabola_and_laws_come_from_the_spec():
    t = np.arange(8) * 0.1
    x = np.stack([1 + 2 * t, 9 - 0.5 * 2.5 * t**2], -1)
    p, v, a, res = judge.fit_motion(t, x, 0.3)
    np.testing.assert_allclose(a, [0, -2.5], atol=1e-9)
    np.testing.assert_allclose(v, [2, -0.75], atol=1e-9)
    assert res < 1e-9
    _, v2, _, _ = judge.fit_motion(t, x, 0.3, accel=(0.0, -2.5))
    np.testing.assert_allclose(v2, v, atol=1e-9)
    assert judge.laws_for(physim.scenario("parabola")).gravity == (0.0, -2.5)
    rigid = judge.laws_for(physim.scenario("combinatorial"))
    assert rigid.from_rest and rigid.gravity[1] < -10 and rigid.restitution == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown judge preset"):
        judge.resolve_config("nope")


def test_confusion_rates_from_rows():
    rows = [
        {"family": "truth", "positive": True, "implausible": False, "causes": [],
         "unfaithful": False},
        {"family": "truth", "positive": True, "implausible": True, "causes": ["teleport"],
         "unfaithful": False},
        {"family": "vanish", "positive": False, "implausible": True, "causes": ["vanish"],
         "unfaithful": True},
        {"family": "gravity_x2", "positive": False, "implausible": True, "causes": ["inertia"],
         "unfaithful": True},
    ]  # fmt: skip
    tab = controls.confusion(rows)
    assert tab["overall"]["fpr"] == 0.5 and tab["overall"]["tpr"] == 1.0
    assert tab["overall"]["named_tpr"] == 0.5
    assert tab["checks"]["vanish"]["tpr"] == 1.0 and tab["checks"]["teleport"]["fpr"] == 0.5
    assert tab["checks"]["acceleration"]["tpr"] == 0.0  # gravity_x2 not named by its check
    assert tab["families"]["gravity_x2"]["named"] == 0.0
    md = controls.confusion_markdown({"config": {"scenario": "s", "n": 2, "resolution": 64,
                                                 "split": "train", "seed": 0}, "table": tab})
    assert "| vanish | negative | 1 | 100.0% |" in md


def test_calibrate_cli_small(tmp_path):
    out = tmp_path / "cal"
    rc = judge.main(["calibrate", "--scenario", "uniform", "--n", "2", "--resolution", "32",
                     "--families", "truth,frozen,vanish", "--out", str(out)])  # fmt: skip
    assert rc == 0
    res = json.loads((out / "calibration-uniform-32.json").read_text())
    fams = res["table"]["families"]
    assert fams["truth"]["implausible"] == 0.0 and fams["frozen"]["named"] == 1.0
    assert fams["vanish"]["named"] == 1.0
    assert (out / "calibration-uniform-32.md").exists()


def test_score_cli_writes_verdicts_and_refuses_bad_input(tmp_path):
    truth = tmp_path / "truth"
    physim.dataset.generate("uniform", split="id", n=3, seed=0, out=truth, progress=False)
    ds = physim.dataset.open(truth)
    gen = tmp_path / "gen"
    gen.mkdir()
    for i, vid in enumerate(ds.ids):
        f = ds.frames(i, resolution=RES)
        if i == 1:
            f[3:] = f[2]  # frozen
        np.save(gen / f"{vid}.npy", f)
    out = tmp_path / "out"
    assert judge.main(["score", str(gen), "--truth", str(truth), "--out", str(out)]) == 0
    res = json.loads((out / "judge.json").read_text())
    by_id = {r["id"]: r for r in res["videos"]}
    assert not by_id[ds.ids[1]]["plausible"] and "inertia" in by_id[ds.ids[1]]["causes"]
    assert by_id[ds.ids[0]]["plausible"] and by_id[ds.ids[0]]["faithful"]
    assert res["summary"]["splits"]["id"]["n"] == 3
    assert res["summary"]["implausible"] == pytest.approx(1 / 3)
    # Bad input: a missing video, a wrong frame count, an unknown preset: rc != 0, no files.
    np.save(gen / f"{ds.ids[2]}.npy", np.zeros((5, RES, RES, 3), np.uint8))
    for args in (["--preset", "nope"], []):
        bad = tmp_path / f"bad{len(args)}"
        assert judge.main(["score", str(gen), "--truth", str(truth), "--out", str(bad), *args]) != 0
        assert not bad.exists()
    (gen / f"{ds.ids[2]}.npy").unlink()
    bad = tmp_path / "bad_missing"
    assert judge.main(["score", str(gen), "--truth", str(truth), "--out", str(bad)]) != 0
    assert not bad.exists()


def test_judge_uses_tracks_it_is_given(disc_truths):
    """Tracks parsed once by the evaluator give the judge's own verdict; they are really
    used (the tracks of a frozen video make the truth's frames implausible)."""
    spec, recs = disc_truths["uniform"]
    rec = recs[0]
    truth = controls.disc_control("truth", rec, spec, RES)
    frozen = controls.disc_control("frozen", rec, spec, RES)
    own = _judge(truth, rec, spec)
    shared = judge.judge_video(truth, rec, judge.laws_for(spec), config="exact",
                               tracks=parse.parse_record(truth, rec, config="exact"))
    same = lambda a: json.dumps(a, sort_keys=True, default=str)  # noqa: E731 (NaN == NaN)
    assert same(shared) == same(own) and own["plausibility"]["plausible"]
    wrong = judge.judge_video(truth, rec, judge.laws_for(spec), config="exact",
                              tracks=parse.parse_record(frozen, rec, config="exact"))
    assert "inertia" in wrong["plausibility"]["causes"]


def _glider(x, elong=3.0, angle=None, clearance=0.0):
    """One chain moving along x(t) (world units) at a fixed height, and its reference."""
    from types import SimpleNamespace

    n_t = len(x)
    cen = np.stack([x, np.full(n_t, 2.0)], -1)[:, None]
    tracks = judge.SceneTracks(
        centroid=cen, area=np.full((n_t, 1), 100.0), clearance=np.full((n_t, 1), clearance),
        elongation=np.full((n_t, 1), elong),
        angle=(np.zeros(n_t) if angle is None else angle)[:, None], color=np.array([0]),
        present=np.ones((n_t, 1), bool), resolution=128,
        grounded=np.full((n_t, 1), clearance <= 1.5), tilt=np.zeros((n_t, 1)))
    ref = SimpleNamespace(body_class=np.array([0]), static=np.array([False]),
                          convex=np.array([True]), area=np.array([100.0]),
                          extents=np.array([[3.0 * elong, 3.0]]))
    return tracks, ref


def test_friction_check_flags_a_glide_and_passes_a_slide_that_friction_stops():
    """Closed form: a bar moving level at a constant 2 units/s in contact glides (no
    friction); one decelerating at mu g (friction 0.5) does not; neither does a ball
    rolling at constant speed, a bar turning about a contact, a body in the air, or any
    body in a world without friction."""
    laws = judge.laws_for(physim.scenario("combinatorial"))
    cfg = judge.JudgeConfig()
    t = np.arange(32) * laws.dt
    mu_g = laws.friction * float(np.linalg.norm(laws.g))
    glide = 1.0 + 2.0 * t
    slide = 1.0 + 2.0 * np.minimum(t, 2 / mu_g) - 0.5 * mu_g * np.minimum(t, 2 / mu_g) ** 2
    assert judge._glide(*_glider(glide), laws, cfg, 0) == pytest.approx(2.0)
    assert judge._glide(*_glider(slide), laws, cfg, 0) == 0.0
    assert judge._glide(*_glider(glide, elong=1.0), laws, cfg, 0) == 0.0  # a ball rolls
    tracks, ref = _glider(glide, elong=1.0)
    ref.convex = np.array([False])  # a hollow body as round as a ball (a jar) cannot roll
    assert judge._glide(tracks, ref, laws, cfg, 0) == pytest.approx(2.0)
    assert judge._glide(*_glider(glide, angle=1.0 * t), laws, cfg, 0) == 0.0  # turning 1 rad/s
    assert judge._glide(*_glider(glide, clearance=5.0), laws, cfg, 0) == 0.0  # in the air
    # One window of glide is not enough (glide_windows).
    short = np.where(t < 0.5, glide, glide[5])
    assert judge._glide(*_glider(short), laws, cfg, 0) == 0.0


def test_friction_0_scene_is_flagged_by_friction_and_its_truth_is_not():
    """Seed 0's second combinatorial truth at 128 px: re-simulated without friction, a grey
    body glides level at constant speed (the friction check); the truth's does not."""
    spec = physim.scenario("combinatorial")
    rec = controls.truth_records(spec, 0, "train", 2)[1]
    laws = judge.laws_for(spec)
    out = {}
    for fam in ("truth", "friction_0"):
        frames, cond = controls.scene_control(fam, rec, spec, 128)
        out[fam] = judge.judge_video(frames, cond, laws, config="exact",
                                     fidelity=False)["plausibility"]
    assert "friction" in out["friction_0"]["causes"], out["friction_0"]
    assert out["friction_0"]["stats"]["glide_speed_max"] >= judge.JudgeConfig().glide_speed
    assert out["truth"]["plausible"], out["truth"]["causes"]
    assert out["truth"]["stats"]["glide_speed_max"] == 0.0
    # In a world without friction the same glide is lawful.
    frames, cond = controls.scene_control("friction_0", rec, spec, 128)
    free = dataclasses.replace(laws, friction=0.0)
    v = judge.judge_video(frames, cond, free, config="exact", fidelity=False)["plausibility"]
    assert "friction" not in v["causes"]


def _ball_and_planes(normals_deg, r=5.0, res=48, gap=0.0, col=None):
    """A disc of radius ``r`` px centred at (``col``, res/2) (default: the frame's centre)
    and, per angle (degrees from straight below, positive towards +col), a slab of material
    tangent to it there, ``gap`` px off. Returns (centroid (col, row), distance to the ball,
    others, border, mine)."""
    from evals import scene_parse as sp

    c = np.array([res / 2 if col is None else col, res / 2])
    rows, cols = np.mgrid[0:res, 0:res] + 0.5
    p = np.stack([cols - c[0], rows - c[1]], -1)
    mine = np.hypot(p[..., 0], p[..., 1]) <= r
    others = np.zeros_like(mine)
    for a in np.radians(normals_deg):
        n = np.array([np.sin(a), np.cos(a)])  # (col, row): 0 deg is straight below
        s = p @ n
        others |= (s >= r + 0.5 + gap) & (s <= r + 3.0 + gap) & (np.abs(p @ [n[1], -n[0]]) < 6)
    border = np.minimum(np.minimum(rows, res - rows), np.minimum(cols, res - cols))
    return c, sp.distance_to(mine), others, border, mine


def test_support_tilt_of_a_ball_on_the_floor_a_slope_a_rim_and_in_a_v():
    """A ball's support tilt from pixels: 0 on level ground, in a V (supports on both sides
    of straight below) and against a wall with a support on the other side; about the slope
    angle on a 30-degree slope; pi/2 with nothing below its centre."""
    down = np.array([0.0, 1.0])
    tilt = lambda planes, **kw: judge._support_tilt(  # noqa: E731
        *_ball_and_planes(planes, **kw), down, 1.5)
    assert tilt([0]) == 0.0
    assert tilt([-35, 35]) == 0.0
    # Tilted supports read tilted, never steeper than they are (pixel steps err low).
    for slope in (30, -30, 45):
        assert np.radians(5) < tilt([slope]) <= np.radians(abs(slope))
    assert np.radians(5) < tilt([30], r=10.0, res=64) <= np.radians(30)
    assert tilt([150]) == pytest.approx(np.pi / 2)  # only a contact above it
    assert tilt([0], gap=3.0) == pytest.approx(np.pi / 2)  # the floor is too far to touch
    # On a slope, wedged under an overhang on the other side: held (the two contacts are
    # less than pi apart through straight below); the overhang alone holds nothing.
    assert tilt([30, -140]) == 0.0
    assert tilt([-140]) == pytest.approx(np.pi / 2)
    # Two contacts almost opposite across the centre hold it only through friction.
    c, d, others, border, mine = _ball_and_planes([110, -110])
    assert judge._support_tilt(c, d, others, border, mine, down, 1.5) > 0
    assert judge._support_tilt(c, d, others, border, mine, down, 1.5, np.arctan(0.5)) == 0.0
    # A wall is touched along its normal: a ball between the left wall and a support
    # tilted 30 degrees the other way is held; without the wall it is not.
    assert tilt([30], col=5.5) == 0.0
    assert tilt([30], col=12.0) > np.radians(5)


def test_grounded_follows_chains_of_contacts():
    """A blob touching the ground is grounded, and so is one touching it; a pair of blobs
    touching each other in mid-air is not."""
    from evals import scene_parse as sp

    res = 40
    rows, cols = np.mgrid[0:res, 0:res]
    box = lambda r0, r1, c0, c1: (rows >= r0) & (rows < r1) & (cols >= c0) & (cols < c1)  # noqa: E731
    masks = [box(30, 34, 5, 10), box(25, 30, 6, 9), box(5, 8, 20, 30), box(8, 10, 24, 26)]
    on_ground = [True, False, False, False]
    dists = [(sp.distance_to(m), g) for m, g in zip(masks, on_ground, strict=True)]
    assert judge._grounded(masks, dists, 1.5).tolist() == [True, True, False, False]


def _resting(tilt_deg, s, elong=1.0, convex=True):
    """One chain moving ``s`` (world units) down a slope over time, its support tilted by
    ``tilt_deg`` in every frame, and its reference body."""
    from types import SimpleNamespace

    n_t = len(s)
    a = np.radians(tilt_deg)
    cen = np.stack([5.0 + s * np.cos(a), 5.0 - s * np.sin(a)], -1)[:, None]
    tracks = judge.SceneTracks(
        centroid=cen, area=np.full((n_t, 1), 60.0), clearance=np.zeros((n_t, 1)),
        elongation=np.full((n_t, 1), elong), angle=np.zeros((n_t, 1)), color=np.array([0]),
        present=np.ones((n_t, 1), bool), resolution=128, grounded=np.ones((n_t, 1), bool),
        tilt=np.full((n_t, 1), a))
    ref = SimpleNamespace(body_class=np.array([0]), static=np.array([False]),
                          convex=np.array([convex]), area=np.array([60.0]),
                          extents=np.array([[3.0 * elong, 3.0]]))
    return tracks, ref


def test_a_ball_on_a_slope_must_roll():
    """Closed form: a ball whose only support is tilted 20 degrees and that stays put is
    unsupported; the same ball rolling down at (5/7) g sin(20 deg) (rolling without
    slipping) is not, nor is a ball on level ground, or a bar or a jar (friction can hold
    them) staying put on the slope."""
    laws = judge.laws_for(physim.scenario("combinatorial"))
    cfg = judge.JudgeConfig()
    t = np.arange(32) * laws.dt
    g = float(np.linalg.norm(laws.g))
    still = np.zeros(32)
    roll = 0.5 * (5 / 7) * g * np.sin(np.radians(20)) * t**2
    merged = np.zeros((31, 1), bool)
    need = 0.5 * (5 / 7) * g * np.sin(np.radians(20)) * (cfg.hold_frames * laws.dt) ** 2
    assert judge._still_on_slope(*_resting(20, still), laws, cfg, 0, merged) == \
        pytest.approx(need)
    assert judge._still_on_slope(*_resting(20, roll), laws, cfg, 0, merged) == 0.0
    assert judge._still_on_slope(*_resting(0, still), laws, cfg, 0, merged) == 0.0
    assert judge._still_on_slope(*_resting(20, still, elong=4.0), laws, cfg, 0, merged) == 0.0
    assert judge._still_on_slope(*_resting(20, still, convex=False), laws, cfg, 0,
                                 merged) == 0.0  # fmt: skip
    # Two bodies of its colour merging over the window: the centroid is not the ball's.
    assert judge._still_on_slope(*_resting(20, still), laws, cfg, 0,
                                 np.ones((31, 1), bool)) == 0.0  # fmt: skip


@pytest.mark.parametrize("split,index,by_slope", [("in-template", 12, False),
                                                  ("out-of-template", 421, True)])
def test_a_frozen_scene_held_up_by_nothing_that_holds_is_unsupported(split, index, by_slope):
    """Two frozen 6-template scenes (seed 1, the combinatorial cpu-mini experiment's own
    evaluation videos at 64 px) that touching-something let pass: in the first a grey bar
    and the ball on it rest on each other in mid-air (no chain of contacts to a static
    body or wall); in the second a ball rests on a tilted support alone (it must roll).
    Each frozen copy is unsupported, each truth plausible; the slope case is caught only
    by the roll test (``hold_min``), the mid-air case without it."""
    spec = physim.scenario("combinatorial", templates=6)
    laws = judge.laws_for(spec)
    rec = spec.records(1, split, np.array([index]))[0]
    truth, cond = controls.scene_control("truth", rec, spec, RES)
    frozen = truth.copy()
    frozen[1:] = truth[0]
    exact = judge.JUDGE_PRESETS["exact"]
    no_roll = dataclasses.replace(exact, hold_min=np.inf)
    verdict = lambda f, cfg: judge.judge_video(f, cond, laws, config=cfg,  # noqa: E731
                                               fidelity=False)["plausibility"]
    assert verdict(truth, exact)["plausible"], verdict(truth, exact)["causes"]
    assert "unsupported" in verdict(frozen, exact)["causes"]
    assert ("unsupported" in verdict(frozen, no_roll)["causes"]) != by_slope
    # Every frozen body touches something, so "touching nothing" alone would pass them.
    from evals import scenes

    ref = scenes.reference(cond, RES, exact.parse)
    tracks = judge.scene_tracks(scenes.parse_scene(frozen, ref, exact.parse), ref, exact,
                                laws.gravity, laws.friction)
    assert np.all(tracks.clearance[1] <= exact.support_px)
