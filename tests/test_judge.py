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
        present=np.ones((n_t, 1), bool), resolution=128)
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
