"""`physim evaluate` end to end on a tiny generated dataset: formats, errors, report."""

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import physim.dataset
from evals import run
from physim import video

RES = 64


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    d = tmp_path_factory.mktemp("truth")
    physim.dataset.generate("uniform", split="id", n=3, seed=0, out=d, progress=False)
    physim.dataset.generate("uniform", split="ood", n=3, seed=0, out=d, progress=False)
    return physim.dataset.open(d)


def _write_npy(ds, out, ids=None, fn=None):
    out.mkdir(exist_ok=True)
    for i, vid in enumerate(ds.ids):
        if ids is not None and vid not in ids:
            continue
        f = ds.frames(i, resolution=RES)
        np.save(out / f"{vid}.npy", fn(f) if fn else f, allow_pickle=False)


def test_ground_truth_npy_report(truth, tmp_path):
    gen = tmp_path / "gen"
    _write_npy(truth, gen)
    out = tmp_path / "report"
    r = run.evaluate(gen, truth, out, metrics=["laws", "abnormal"])
    assert r["n_scored"] == 6 and r["n_missing"] == 0
    assert r["velocity_error"] < 0.01
    assert r["velocity_error"] == pytest.approx(r["parse_floor"]["velocity_error"])
    assert set(r["splits"]) == {"id", "ood"}
    assert all(k.split("/")[0] in ("id", "ood") for k in r["levels"])
    assert r["abnormal"] == 0.0
    saved = json.loads((out / "results.json").read_text())
    assert saved["n_scored"] == 6 and "levels" in saved and "velocity_error_ci" in saved
    with open(out / "per_video.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {"id", "split", "level", "velocity_error", "vanish"} <= set(rows[0])
    md = (out / "report.md").read_text()
    assert "Velocity error" in md and (out / "error_by_level.png").stat().st_size > 1000
    assert (out / "strips.png").exists() and (out / "speed.png").exists()


def test_outputs_are_one_unit_a_run_killed_while_writing_keeps_the_older_one(truth, tmp_path,
                                                                           monkeypatch):
    from evals import report

    gen, out = tmp_path / "gen", tmp_path / "report"
    _write_npy(truth, gen)
    run.evaluate(gen, truth, out, metrics=["laws"])
    assert (out / "results.json").is_file() and (out / "report.md").is_file()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"per_video.csv", "report.md", "results.json"} <= set(before)

    def killed(*a, **k):  # the evaluation dies while writing its report
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", killed)
    with pytest.raises(KeyboardInterrupt):
        run.evaluate(gen, truth, out, metrics=["laws", "abnormal"])
    # the older output is untouched and whole, and nothing half-written is left beside it
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.undo()

    # killed while moving the staged files into place: no complete-looking folder
    real = run.os.replace

    def dies_on_results(src, dst):
        if Path(src).name == "results.json" and Path(src).parent.name.startswith(".staging"):
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(run.os, "replace", dies_on_results)
    with pytest.raises(KeyboardInterrupt):
        run.evaluate(gen, truth, out, metrics=["laws"])
    assert not (out / "results.json").exists() and (out / "per_video.csv").is_file()
    monkeypatch.undo()
    (out / "abnormal.png").write_bytes(b"a plot of an older evaluation with the abnormal checks")
    (out / "notes.txt").write_text("the user's own file")
    run.evaluate(gen, truth, out, metrics=["laws"])  # laws only: no abnormal.png
    assert json.loads((out / "results.json").read_text())["n_scored"] == 6
    assert not (out / "abnormal.png").exists() and not list(out.glob(".staging-*"))
    assert (out / "notes.txt").read_text() == "the user's own file"


def test_leftovers_of_killed_writers_are_not_videos(truth, tmp_path):
    gen = tmp_path / "gen"
    _write_npy(truth, gen)
    (gen / ".tmp-123-uniform_id.hdf5").write_bytes(b"half an hdf5 file")  # a killed export
    vid = truth.ids[0]
    (gen / f"{vid}.npy.tmp.npy").write_bytes(b"\x93NUMPY half")  # a killed sample
    r = run.evaluate(gen, truth, tmp_path / "report", metrics=["laws"])
    assert r["n_scored"] == 6 and r["n_missing"] == 0 and r["velocity_error"] < 0.01
    # Negative control: the same garbage under a video's own name is an unreadable video.
    (gen / f"{vid}.npy").write_bytes(b"\x93NUMPY half")
    r = run.evaluate(gen, truth, tmp_path / "report2", metrics=["laws"], allow_missing=True)
    assert r["n_scored"] == 5


def test_frozen_generation_scores_badly_and_npz_float(truth, tmp_path):
    gen = tmp_path / "gen"
    gen.mkdir()
    for i, vid in enumerate(truth.ids):
        f = truth.frames(i, resolution=RES).copy()
        f[3:] = f[2]
        np.savez(gen / f"{vid}.npz", frames=f.astype(np.float32) / 255)
    r = run.evaluate(gen, truth, None, metrics=["laws"])
    assert r["velocity_error"] == pytest.approx(r["speed_true"], rel=0.1)


def test_lossy_videos_get_the_floor_of_their_own_parse(truth, tmp_path):
    gen = tmp_path / "gen"
    rng = np.random.default_rng(0)
    noisy = lambda f: np.clip(f + rng.integers(-2, 3, f.shape), 0, 255).astype(np.uint8)  # noqa: E731
    _write_npy(truth, gen, fn=noisy)
    r = run.evaluate(gen, truth, None, metrics=["laws"])
    same = r["parse_floor_same_parser"]["velocity_error"]
    # the lossy parse of the clean truth: above the exact floor, below the noisy videos
    assert r["parse_floor"]["velocity_error"] < same < r["velocity_error"]
    clean = tmp_path / "clean"
    _write_npy(truth, clean)
    assert "parse_floor_same_parser" not in run.evaluate(clean, truth, None, metrics=["laws"])


def test_missing_unknown_and_bad_files_are_listed(truth, tmp_path):
    gen = tmp_path / "gen"
    _write_npy(truth, gen, ids=truth.ids[:4])
    np.save(gen / "not-a-truth-id.npy", np.zeros((32, RES, RES, 3), np.uint8))
    with pytest.raises(ValueError, match=r"2 truth ids have no generated video") as e:
        run.evaluate(gen, truth, None, metrics=["laws"])
    assert "not-a-truth-id" in str(e.value) and truth.ids[5] in str(e.value)
    (gen / "not-a-truth-id.npy").unlink()
    _write_npy(truth, gen)
    np.save(gen / f"{truth.ids[0]}.npy", np.zeros((31, RES, RES, 3), np.uint8))
    (gen / f"{truth.ids[1]}.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="2 generated videos cannot be scored") as e:
        run.evaluate(gen, truth, None, metrics=["laws"])
    assert "31 frames" in str(e.value) and "unreadable" in str(e.value)
    # --allow-missing scores the rest and counts what it skipped.
    (gen / f"{truth.ids[5]}.npy").unlink()
    r = run.evaluate(gen, truth, None, metrics=["laws"], allow_missing=True)
    assert r["n_scored"] == 3 and r["n_missing"] == 1 and r["n_unreadable"] == 2
    with pytest.raises(ValueError, match="unknown metric"):
        run.evaluate(gen, truth, None, metrics=["nope"])


def test_mp4_hdf5_and_side_by_side(truth, tmp_path):
    frames = [truth.frames(i, resolution=RES) for i in range(len(truth))]
    exact = run.evaluate(_npys(tmp_path / "npy", truth, frames), truth, None, metrics=["laws"])
    mp4 = tmp_path / "mp4"
    mp4.mkdir()
    for vid, f in zip(truth.ids, frames, strict=True):
        (mp4 / f"{vid}.mp4").write_bytes(video.encode_mp4(f))
    r = run.evaluate(mp4, truth, None, metrics=["laws"])
    assert r["n_scored"] == 6
    assert abs(r["velocity_error"] - exact["velocity_error"]) < 0.15  # codec noise at 64²
    # The paper's HDF5 layout, matched by order (no id_streams).
    h5 = tmp_path / "gen.hdf5"
    with h5py.File(h5, "w") as f:
        ds = f.create_group("video_streams").create_dataset(
            "00000", shape=(6,), dtype=h5py.vlen_dtype(np.dtype("uint8"))
        )
        for j, fr in enumerate(frames):
            ds[j] = np.frombuffer(video.encode_mp4(fr), np.uint8)
    r2 = run.evaluate(h5, truth, None, metrics=["laws"])
    assert r2["velocity_error"] == pytest.approx(r["velocity_error"], abs=1e-9)
    # Side by side [truth | generated frozen]: the last panel is scored.
    sbs = tmp_path / "sbs"
    sbs.mkdir()
    for vid, f in zip(truth.ids, frames, strict=True):
        g = f.copy()
        g[3:] = g[2]
        np.save(sbs / f"{vid}.npy", np.concatenate([f, g], axis=2))
    # Not square: never read as panels unless asked (the error says how).
    with pytest.raises(ValueError, match="64x128, not square.*--layout side-by-side"):
        run.evaluate(sbs, truth, None, metrics=["laws"])
    r3 = run.evaluate(sbs, truth, None, metrics=["laws"], layout="side-by-side")
    assert r3["velocity_error"] > 0.5
    r4 = run.evaluate(sbs, truth, None, metrics=["laws"], layout="side-by-side", panel=0)
    assert r4["velocity_error"] == pytest.approx(exact["velocity_error"])


def _npys(d, truth, frames):
    d.mkdir()
    for vid, f in zip(truth.ids, frames, strict=True):
        np.save(d / f"{vid}.npy", f)
    return d


def test_cli_parser(truth, tmp_path):
    import argparse

    gen = tmp_path / "gen"
    _write_npy(truth, gen)
    p = argparse.ArgumentParser()
    run.add_parser(p.add_subparsers())
    args = p.parse_args(
        [
            "evaluate", str(gen), "--truth", str(truth.path), "--out", str(tmp_path / "o"),
            "--metrics", "laws,abnormal", "--no-progress",
        ]
    )  # fmt: skip
    assert args.func(args) == 0
    assert json.loads((tmp_path / "o" / "results.json").read_text())["n_scored"] == 6
