"""Case-likeness (``evals.caselike``): a rollout that is the truth scores 0, one that is
the retrieved case scores 1, ties are undecided, mirrored cases are matched, and bad input
writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

import physim.dataset
from evals import caselike
from evals import pipeline as pl
from models import baselines


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("caselike")
    physim.dataset.generate("uniform", split="train", n=40, seed=3, out=root / "train",
                            progress=False)
    physim.dataset.generate("uniform", split="id", n=8, seed=4, out=root / "eval",
                            progress=False)
    for kind in ("truth", "copy-last"):
        assert baselines.main([kind, "--data", str(root / "eval"), "--out", str(root / kind),
                               "--resolution", "32"]) == 0
    assert baselines.main(["knn", "--train", str(root / "train"), "--data", str(root / "eval"),
                           "--out", str(root / "knn"), "--resolution", "32", "--flip"]) == 0
    return root


def test_truth_is_never_case_like_and_the_case_always_is(sets):
    rows_t, sum_t = caselike.score(sets / "truth", sets / "knn", sets / "eval")
    rows_k, sum_k = caselike.score(sets / "knn", sets / "knn", sets / "eval")
    assert len(rows_t) == len(rows_k) == 8
    for key in ("closer_to_case_px", "closer_to_case_attr"):
        t = np.array([r[key] for r in rows_t])
        k = np.array([r[key] for r in rows_k])
        decided = np.isfinite(t)
        assert decided.sum() >= 6  # 40 training videos: the case is rarely the truth itself
        assert np.all(t[decided] == 0.0)  # negative control
        assert np.all(k[np.isfinite(k)] == 1.0)  # positive control
        assert sum_t[key] == 0.0 and sum_k[key] == 1.0
    assert all(r["d_px_truth"] == 0.0 for r in rows_t)
    assert all(r["d_px_case"] == 0.0 for r in rows_k)
    assert set(sum_t["splits"]) == {"id"} and "id/id" in sum_t["levels"]


def test_copy_last_sits_between(sets):
    # A frozen ball is neither the truth nor the case: its distances are both positive and
    # its verdict is a real comparison, not a fixed value.
    rows, _ = caselike.score(sets / "copy-last", sets / "knn", sets / "eval")
    assert all(r["d_px_case"] > 0 and r["d_px_truth"] > 0 for r in rows)


def test_verdicts_on_synthetic_videos():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    case = truth.copy()
    case[3:] = 255 - case[3:]
    a = {"radius": np.array([1.0]), "velocity": np.array([[2.0, 0.0]]), "shape": ("circle",)}
    b = {"radius": np.array([1.0]), "velocity": np.array([[3.0, 0.0]]), "shape": ("circle",)}
    perm, scale = np.array([0]), np.ones(3)
    args = (3, None, a, b, perm, scale)
    assert caselike.video_caselike(case, truth, case, *args)["closer_to_case_px"] == 1.0
    assert caselike.video_caselike(truth, truth, case, *args)["closer_to_case_px"] == 0.0
    tie = caselike.video_caselike(truth, truth, truth, *args)
    assert np.isnan(tie["closer_to_case_px"])  # the case equals the truth: undecided
    near_b = {"radius": np.array([1.0]), "velocity": np.array([[2.9, 0.0]]),
              "shape": ("circle",)}
    got = caselike.video_caselike(truth, truth, case, 3, near_b, a, b, perm, scale)
    assert got["closer_to_case_attr"] == 1.0 and got["closer_to_case_px"] == 0.0
    assert np.isnan(caselike.video_caselike(truth, truth, case, 3, near_b, a, a, perm,
                                            scale)["closer_to_case_attr"])
    with pytest.raises(ValueError, match="differ in shape"):
        caselike.video_caselike(truth[:5], truth, case, *args)


def test_objects_are_matched_by_position():
    t = np.array([[1.0, 1.0], [8.0, 5.0], [4.0, 9.0]])
    assert caselike.match_objects(t, t[[2, 0, 1]]).tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="objects"):
        caselike.match_objects(t, t[:2])


def test_cli_writes_results_and_refuses_a_folder_without_knn_json(sets, tmp_path, capsys):
    out = tmp_path / "out"
    assert caselike.main([str(sets / "truth"), "--case", str(sets / "knn"), "--truth",
                          str(sets / "eval"), "--out", str(out)]) == 0
    res = json.loads((out / "caselike.json").read_text())
    assert res["closer_to_case_px"] == 0.0 and res["n_scored"] == 8
    assert (out / "per_video.csv").read_text().count("\n") == 9
    bad = tmp_path / "bad"
    assert caselike.main([str(sets / "truth"), "--case", str(sets / "truth"), "--truth",
                          str(sets / "eval"), "--out", str(bad)]) == 2
    assert "no knn.json" in capsys.readouterr().err and not bad.exists()


def test_the_pipeline_plans_case_likeness_after_each_cell_with_a_knn_case(tmp_path):
    p = pl.plan("scaling", "micro", tmp_path / "run", scenarios=["uniform"], models=["S"],
                data=["30K"], n_eval=2)
    names = [s.name for s in p.stages]
    cl = [s for s in p.stages if s.name.startswith("caselike-")]
    assert cl and all(s.shell().startswith("python -m evals.caselike ") for s in cl)
    for s in cl:
        evaluate = s.name.replace("caselike-", "evaluate-", 1)
        assert names.index(evaluate) < names.index(s.name)
        assert "/baselines/knn/" in s.argv[s.argv.index("--case") + 1]


def test_sets_that_mix_object_counts(tmp_path):
    # composition_temporal's levels hold two balls (collision) or one (bounce): the
    # attribute spread is taken per object count, and a case with another count than its
    # truth gets a pixel verdict but no attribute verdict (it used to crash the stage).
    for split, n, seed in (("train", 30, 3), ("id", 8, 4)):
        physim.dataset.generate("composition_temporal", split=split, n=n, seed=seed,
                                out=tmp_path / split, progress=False)
    assert baselines.main(["truth", "--data", str(tmp_path / "id"), "--out",
                           str(tmp_path / "truth"), "--resolution", "32"]) == 0
    assert baselines.main(["knn", "--train", str(tmp_path / "train"), "--data",
                           str(tmp_path / "id"), "--out", str(tmp_path / "knn"),
                           "--resolution", "32"]) == 0
    ds = physim.dataset.open(tmp_path / "id")
    assert len({ds[k].objects.n for k in range(len(ds.ids))}) == 2  # both counts present
    rows, summary = caselike.score(tmp_path / "truth", tmp_path / "knn", tmp_path / "id")
    assert len(rows) == 8 and set(summary["attr_scale"]) == {"1", "2"}
    decided = [r["closer_to_case_px"] for r in rows if np.isfinite(r["closer_to_case_px"])]
    assert decided and all(v == 0.0 for v in decided)  # the truth is never case-like
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    one = {"radius": np.array([1.0]), "velocity": np.array([[2.0, 0.0]]), "shape": ("circle",)}
    two = {"radius": np.array([1.0, 1.0]), "velocity": np.array([[2.0, 0.0], [0.0, 1.0]]),
           "shape": ("circle", "circle")}
    got = caselike.video_caselike(255 - truth, truth, 255 - truth, 3, one, one, two, None,
                                  np.ones(3))
    assert got["closer_to_case_px"] == 1.0 and np.isnan(got["closer_to_case_attr"])
