"""`physim report EVAL_DIR...`: a leaderboard of plain evaluation folders."""

import csv

import pytest

import physim.dataset
from evals import core, run
from physim import cli

RES = 32


@pytest.fixture(scope="module")
def evals_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    physim.dataset.generate("uniform", split="id", n=3, seed=0, out=root / "t", progress=False)
    physim.dataset.generate("uniform", split="ood", n=2, seed=0, out=root / "t", progress=False)
    ds = physim.dataset.open(root / "t")
    truth = {v: ds.frames(i, resolution=RES) for i, v in enumerate(ds.ids)}
    frozen = {}
    for v, f in truth.items():
        g = f.copy()
        g[3:] = g[2]
        frozen[v] = g
    dirs = []
    for name, vids in (("frozen", frozen), ("perfect", truth)):
        ev = core.evaluate_videos(vids, ds, metrics=["laws", "abnormal"], protocol="paper")
        run.write_outputs(root / name, ev)
        dirs.append(root / name)
    return root, dirs


def test_leaderboard_of_evaluation_folders(evals_dirs, capsys):
    root, dirs = evals_dirs
    out = root / "board"
    assert cli.main(["report", *map(str, dirs), "--out", str(out)]) == 0
    md = (out / "leaderboard.md").read_text()
    with open(out / "leaderboard.csv", newline="") as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"frozen", "perfect"}
    for r in rows.values():
        for col in ("velocity_error", "velocity_error_lo", "velocity_error_hi",
                    "velocity_error[id]", "velocity_error[ood]", "abnormal_rate",
                    "parse_floor", "paper_velocity_error", "n[id/id]"):  # fmt: skip
            assert r[col] != "", col
    assert float(rows["perfect"]["velocity_error"]) < 0.1 < float(rows["frozen"]["velocity_error"])
    # best first; ID and OOD levels are columns; the paper protocol is labelled
    assert md.index("| perfect") < md.index("| frozen")
    assert "id/id" in md and "paper protocol" in md
    assert "not comparable" not in md
    assert (out / "speed.png").stat().st_size > 1000
    # each folder's own report labels the paper protocol beside ours
    own = (dirs[0] / "report.md").read_text()
    assert "## Paper protocol" in own and "ours (above) is a different metric" in own


def test_report_refuses_folders_that_are_not_evaluations(evals_dirs, capsys, tmp_path):
    _, dirs = evals_dirs
    (tmp_path / "empty").mkdir()
    out = tmp_path / "board"
    assert cli.main(["report", str(dirs[0]), str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "not physim evaluate outputs" in capsys.readouterr().err and not out.exists()
