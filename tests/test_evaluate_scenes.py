"""`physim evaluate` on combinatorial scenes: truth is normal, a corrupted rollout is not."""

import numpy as np
import pytest

import physim
from evals import evaluate

RES = 128  # thin bars need >= 128 px to be parsed reliably


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    physim.dataset.generate(
        "combinatorial",
        "out-of-template",
        2,
        0,
        root / "data",
        overrides={"templates": 6},
        progress=False,
    )
    ds = physim.dataset.open(root / "data")
    return root, ds


def write(dirpath, ds, corrupt=None):
    dirpath.mkdir()
    for i, vid in enumerate(ds.ids):
        frames = ds.frames(i, resolution=RES)
        if corrupt is not None:
            frames = corrupt(frames)
        np.save(dirpath / f"{vid}.npy", frames)


def test_truth_scores_normal_and_perfect(scenes):
    root, ds = scenes
    write(root / "truth_gen", ds)
    r = evaluate(root / "truth_gen", root / "data", root / "rep_truth")
    assert r["n_scored"] == 2 and r["abnormal_rate"] == 0.0
    assert r["psnr"] == pytest.approx(100.0) and r["ssim"] == pytest.approx(1.0)
    assert "velocity_error" not in r or r["velocity_error"] is None  # no laws for scenes


def test_a_vanishing_action_ball_is_abnormal(scenes):
    root, ds = scenes

    def erase_red(frames):
        f = frames.copy()
        red = (f[..., 0] > 200) & (f[..., 1] < 150) & (f[..., 2] < 150)
        red[:8] = False  # vanishes after frame 8
        f[red] = 255
        return f

    write(root / "bad_gen", ds, erase_red)
    r = evaluate(root / "bad_gen", root / "data", root / "rep_bad")
    assert r["abnormal_rate"] == 1.0 and r["vanish"] == 1.0
    assert r["psnr"] < 60  # truth: 100 (capped)
