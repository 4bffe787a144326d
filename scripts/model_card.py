"""Add (or replace) a shipped model's card in ``models/checkpoints/index.json``.

The scores are read from ``physim evaluate`` outputs: the model's, and the ground-truth
and copy-last references scored on the same evaluation sets::

    python scripts/model_card.py --name tiny-uniform --scenario uniform --preset dit-tiny \\
        --command "physim train --preset dit-tiny --data scenario:uniform --workdir W" \\
        --minutes 93.1 --eval runs/final/uniform [--quickstart] [--note TEXT]

``--eval DIR`` holds ``eval-{id,ood}`` (model), ``eval-truth-{split}`` and
``eval-copy-last-{split}``, as ``physim evaluate --out`` wrote them.

A cell of an experiment run (``scripts/experiments/run.py``) is carded from the run
itself: ``--run RUN --cell CELL`` (instead of ``--eval``) reads every evaluation set of the
cell (``RUN/cells/CELL/eval/EVAL``, one folder scoring both splits), split by split, with
the run's truth, copy-last and knn references of the same sets and, where scored, the
attribute outcome (``attribute_priority``) and the case-likeness.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

from evals.compare import _num  # a finite float, or None (the report reads cells the same way)

ROOT = Path(__file__).resolve().parents[1]
INDEX = ROOT / "models" / "checkpoints" / "index.json"
# Means read from results.json, when the scorer gives them.
KEYS = ("velocity_error", "abnormal", "found_all", "momentum_error", "energy_error",
        "accel_hat_y", "accel_true_y", "accel_error", "speed_hat", "speed_true")


def _pick(res: dict) -> dict:
    """The KEYS of one results.json group (the whole folder, or one split's)."""
    out = {"n": res.get("n_scored")}
    for k in KEYS:
        if _num(res.get(k)) is not None:
            out[k] = round(float(res[k]), 5)
            ci = res.get(f"{k}_ci")
            if k == "velocity_error" and ci:
                out[f"{k}_ci"] = [round(float(c), 5) for c in ci]
    return out


def scores(res_dir: Path) -> dict:
    """Headline numbers of one ``physim evaluate`` folder."""
    out = _pick(json.loads((res_dir / "results.json").read_text()))
    with open(res_dir / "per_video.csv", newline="") as f:
        ay = [_num(r.get("accel_hat_y")) for r in csv.DictReader(f)]
    ay = [a for a in ay if a is not None]
    if ay:
        out["accel_hat_y_median"] = round(float(np.median(ay)), 5)
    return out


def split_scores(res_dir: Path) -> dict:
    """Headline numbers of one evaluation folder that scores several splits: overall, per
    split (results.json's ``splits`` groups) and the attribute outcome when scored."""
    res = json.loads((res_dir / "results.json").read_text())
    out = {"all": scores(res_dir)}
    for split, r in sorted(res.get("splits", {}).items()):
        out[split] = _pick(r)
    if res.get("attribute_priority"):
        out["attribute_priority"] = res["attribute_priority"]
    return out


def cell_card(a) -> dict:
    """Scores of an experiment cell, per evaluation set, with the run's references."""
    run = Path(a.run)
    plan = json.loads((run / "plan.json").read_text())
    cell = next((c for c in plan["cells"] if c["name"] == a.cell), None)
    if cell is None:
        raise ValueError(f"no cell {a.cell!r} in {run}/plan.json (cells: "
                         f"{', '.join(c['name'] for c in plan['cells'])})")
    knn = plan.get("options", {}).get("knn", {}).get(a.cell, {})
    s = {}
    for e in cell["evals"]:
        name = e["name"]
        s[name] = split_scores(run / "cells" / a.cell / "eval" / name)
        for ref in ("truth", "copy-last"):
            d = run / "baselines" / ref / name / "eval"
            if d.is_dir():
                s[f"{ref}_{name}"] = split_scores(d)
        if name in knn and Path(knn[name]).is_dir():
            s[f"knn_{name}"] = split_scores(Path(knn[name]))
        cl = run / "cells" / a.cell / "caselike" / name / "results.json"
        if cl.is_file():
            s[f"caselike_{name}"] = json.loads(cl.read_text())
    return s


def eval_scores(a) -> dict:
    """Scores of an ``--eval`` folder: per split, with the references beside them."""
    ev = Path(a.eval)
    s = {}
    for split in ("id", "ood"):
        s[split] = scores(ev / f"eval-{split}")
        for ref in ("truth", "copy-last"):
            d = ev / f"eval-{ref}-{split}"
            if d.is_dir():
                s[f"{ref}_{split}"] = scores(d)
    vid, vood = s["id"]["velocity_error"], s["ood"]["velocity_error"]
    s["ood_over_id"] = round(vood / vid, 3)
    if "copy-last_id" in s:
        s["id_over_copy_last"] = round(vid / s["copy-last_id"]["velocity_error"], 4)
    return s


def card(a) -> dict:
    s = cell_card(a) if a.run else eval_scores(a)
    out = {"name": a.name, "scenario": a.scenario, "preset": a.preset, "command": a.command,
           "train_minutes": a.minutes, "quickstart": a.quickstart,
           "eval_sets": a.eval_sets, "scores": s}
    sampling = INDEX.parent / a.name / "sampling.json"  # models.sample.SAMPLING_FILE
    if sampling.is_file():  # the export's sampler settings, which these scores used
        out["sampling"] = json.loads(sampling.read_text())
    if a.note:
        out["note"] = a.note
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True, help="folder under models/checkpoints")
    p.add_argument("--scenario", required=True)
    p.add_argument("--preset", required=True)
    p.add_argument("--command", required=True, help="the exact training command")
    p.add_argument("--minutes", type=float, required=True, help="training wall minutes")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--eval", help="folder of the evaluate outputs")
    src.add_argument("--run", help="an experiment run folder (with --cell)")
    p.add_argument("--cell", help="the run's cell this export was trained as")
    p.add_argument("--eval-sets", default="", help="how the evaluation sets were generated")
    p.add_argument("--quickstart", action="store_true", help="the quickstart rolls it out")
    p.add_argument("--note", default="")
    p.add_argument("--previous-scores-as", metavar="KEY", default=None,
                   help="keep the card's current scores under KEY (e.g. scores_single_sample "
                        "when a new sampling.json changes how the export samples)")
    a = p.parse_args(argv)
    if bool(a.run) != bool(a.cell):
        p.error("--run and --cell go together")
    if not (INDEX.parent / a.name / "config.json").is_file():
        print(f"error: no export at {INDEX.parent / a.name} (python -m models.checkpoint RUN "
              f"{INDEX.parent / a.name})", file=sys.stderr)
        return 2
    try:
        new = card(a)
    except (OSError, KeyError, ValueError) as e:
        print(f"error: {a.eval or a.run}: {e}", file=sys.stderr)
        return 2
    index = json.loads(INDEX.read_text()) if INDEX.is_file() else {"models": []}
    if a.previous_scores_as:
        old = next((m for m in index["models"] if m["name"] == a.name), None)
        if old is None or "scores" not in old:
            print(f"error: --previous-scores-as: {a.name} has no card with scores yet",
                  file=sys.stderr)
            return 2
        new[a.previous_scores_as] = old["scores"]
    index["models"] = [m for m in index["models"] if m["name"] != a.name] + [new]
    index["models"].sort(key=lambda m: m["name"])
    tmp = INDEX.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    os.replace(tmp, INDEX)
    if a.run:
        print(f"{INDEX}: {a.name} ({a.scenario}, cell {a.cell}): {', '.join(new['scores'])}")
    else:
        print(f"{INDEX}: {a.name} ({a.scenario}) ID {new['scores']['id']['velocity_error']} "
              f"OOD {new['scores']['ood']['velocity_error']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
