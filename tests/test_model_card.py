"""scripts/model_card.py: cards of an experiment cell read from the run itself."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def model_card(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("model_card", ROOT / "scripts" / "model_card.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "INDEX", tmp_path / "ckpt" / "index.json")
    (tmp_path / "ckpt" / "cell-a").mkdir(parents=True)
    (tmp_path / "ckpt" / "cell-a" / "config.json").write_text("{}")
    return mod


def _eval(d: Path, v_id: float, v_ood: float, priority=None):
    d.mkdir(parents=True)
    res = {"n_scored": 4, "velocity_error": (v_id + v_ood) / 2,
           "splits": {"id": {"n_scored": 2, "velocity_error": v_id, "velocity_error_ci": [0, 1]},
                      "ood": {"n_scored": 2, "velocity_error": v_ood}}}
    if priority:
        res["attribute_priority"] = priority
    (d / "results.json").write_text(json.dumps(res))
    (d / "per_video.csv").write_text("id,velocity_error\na,1\n")


def test_a_cell_card_reads_every_eval_set_split_by_split(model_card, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    knn = run / "baselines" / "knn" / "t" / "pair" / "eval"
    plan = {"cells": [{"name": "c1", "evals": [{"name": "pair"}]}],
            "options": {"knn": {"c1": {"pair": str(knn)}}}}
    (run / "plan.json").write_text(json.dumps(plan))
    prio = {"counts": {"color>shape": 3}, "order": ["color", "shape"]}
    _eval(run / "cells" / "c1" / "eval" / "pair", 0.5, 1.5, prio)
    _eval(run / "baselines" / "truth" / "pair" / "eval", 0.01, 0.02)
    _eval(knn, 0.3, 0.9, {"counts": {"shape>color": 1}, "order": ["shape", "color"]})
    argv = ["--name", "cell-a", "--scenario", "color_shape", "--preset", "dit-tiny",
            "--command", "run.py attributes", "--minutes", "20", "--run", str(run),
            "--cell", "c1"]
    assert model_card.main(argv) == 0
    card = json.loads(model_card.INDEX.read_text())["models"][0]
    s = card["scores"]
    assert s["pair"]["id"]["velocity_error"] == 0.5 and s["pair"]["ood"]["velocity_error"] == 1.5
    assert s["pair"]["attribute_priority"] == prio
    assert s["truth_pair"]["id"]["velocity_error"] == 0.01
    assert s["knn_pair"]["attribute_priority"]["order"] == ["shape", "color"]
    assert "copy-last_pair" not in s  # not in this run
    # An unknown cell, or --cell without --run, is an error that writes nothing.
    model_card.INDEX.unlink()
    assert model_card.main(argv[:-1] + ["c9"]) == 2
    assert not model_card.INDEX.exists()
    with pytest.raises(SystemExit):
        model_card.main(argv[:-4] + ["--eval", str(run), "--cell", "c1"])


def test_ship_cells_picks_finished_cells_their_command_and_minutes(tmp_path):
    spec = importlib.util.spec_from_file_location("ship_cells", ROOT / "scripts" / "ship_cells.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    run = tmp_path / "run"
    (run / "stages").mkdir(parents=True)
    train = ["physim", "train", "--preset", "dit-tiny", "--data", f"{run}/data/t",
             "--workdir", f"{run}/cells/a/model", "--no-progress", "--set", "train.steps=9"]
    plan = {"experiment": "attributes", "scale": "cpu-mini", "run_dir": str(run),
            "options": {"title": "T"},
            "cells": [{"name": "a", "evals": [{"name": "pair"}]},
                      {"name": "b", "evals": [{"name": "pair"}]}],
            "stages": [{"name": "gen", "kind": "generate", "cell": "",
                        "argv": ["physim", "generate", "x", "--out", f"{run}/data/pair"]},
                       {"name": "train-a", "kind": "train", "cell": "a", "argv": train},
                       {"name": "eval-a", "kind": "evaluate", "cell": "a", "argv": []},
                       {"name": "train-b", "kind": "train", "cell": "b", "argv": train},
                       {"name": "eval-b", "kind": "evaluate", "cell": "b", "argv": []}]}
    for done in ("gen", "train-a", "eval-a", "train-b"):  # b has not been evaluated yet
        (run / "stages" / f"{done}.done").write_text("")
    ready, waiting = ship.finished_cells(plan, run)
    assert [c["name"] for c in ready] == ["a"] and waiting == ["b"]
    cmd, preset = ship.cell_command(plan, "a")
    assert preset == "dit-tiny" and "--no-progress" not in cmd and str(run) not in cmd
    assert "RUN/cells/a/model" in cmd and "train.steps=9" in cmd and "(cell a:" in cmd
    assert ship.eval_sets(plan, plan["cells"][0]) == "T: physim generate x --out RUN/data/pair"
    (run / "timings.jsonl").write_text(
        json.dumps({"stage": "train-a", "seconds": 60.0}) + "\n"
        + json.dumps({"stage": "train-a", "seconds": 90.0}) + "\n")  # rerun: the last counts
    assert ship.train_minutes(run, "train-a") == 1.5
    assert ship.train_minutes(run, "train-b") is None
