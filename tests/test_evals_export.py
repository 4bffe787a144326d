"""`physim export --conditioning-only`: what a model needs, and the round trip to evaluate."""

import csv
import json

import numpy as np
import pytest

import physim.dataset
from physim import cli


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    d = tmp_path_factory.mktemp("t")
    physim.dataset.generate("uniform", split="id", n=3, seed=0, out=d, progress=False)
    return physim.dataset.open(d)


def test_conditioning_export_and_round_trip(truth, tmp_path):
    cond = tmp_path / "cond"
    assert cli.main(["export", str(truth.path), "--format", "npy", "--conditioning-only",
                     "--resolution", "32", "--out", str(cond), "--no-progress"]) == 0  # fmt: skip
    with open(cond / "index.csv", newline="") as f:
        index = list(csv.DictReader(f))
    assert [r["id"] for r in index] == list(truth.ids)
    assert {r["n_cond"] for r in index} == {"3"} and {r["n_frames"] for r in index} == {"32"}
    assert "param_v" in index[0] and index[0]["split"] == "id"
    gen = tmp_path / "gen"
    gen.mkdir()
    for i, r in enumerate(index):
        c = np.load(cond / r["file"], allow_pickle=False)
        assert c.shape == (3, 32, 32, 3) and c.dtype == np.uint8
        assert np.array_equal(c, truth.frames(i, resolution=32)[:3])
        # a "model" that holds the last conditioning frame
        np.save(gen / f"{r['id']}.npy", np.concatenate([c, np.repeat(c[-1:], 29, axis=0)]))
    out = tmp_path / "ev"
    assert cli.main(["evaluate", str(gen), "--truth", str(truth.path), "--out", str(out),
                     "--metrics", "laws", "--no-progress"]) == 0  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    assert res["n_scored"] == 3 and res["conditioning"]["n_flagged"] == 0
    assert res["velocity_error"] == pytest.approx(res["speed_true"], rel=0.1)


def test_conditioning_export_is_npy_only(truth, tmp_path):
    out = tmp_path / "c"
    assert cli.main(["export", str(truth.path), "--format", "mp4", "--conditioning-only",
                     "--out", str(out), "--no-progress"]) == 2  # fmt: skip
    assert not out.exists()
