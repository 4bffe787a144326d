"""Add (or replace) a shipped model's card in ``models/checkpoints/index.json``.

The scores are read from ``physim evaluate`` outputs: the model's, and the ground-truth
and copy-last references scored on the same evaluation sets::

    python scripts/model_card.py --name tiny-uniform --scenario uniform --preset dit-tiny \\
        --command "physim train --preset dit-tiny --data scenario:uniform --workdir W" \\
        --minutes 93.1 --eval runs/final/uniform [--quickstart] [--note TEXT]

``--eval DIR`` holds ``eval-{id,ood}`` (model), ``eval-truth-{split}`` and
``eval-copy-last-{split}``, as ``physim evaluate --out`` wrote them.
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


def scores(res_dir: Path) -> dict:
    """Headline numbers of one ``physim evaluate`` folder."""
    res = json.loads((res_dir / "results.json").read_text())
    out = {"n": res.get("n_scored")}
    for k in KEYS:
        if _num(res.get(k)) is not None:
            out[k] = round(float(res[k]), 5)
            ci = res.get(f"{k}_ci")
            if k == "velocity_error" and ci:
                out[f"{k}_ci"] = [round(float(c), 5) for c in ci]
    with open(res_dir / "per_video.csv", newline="") as f:
        ay = [_num(r.get("accel_hat_y")) for r in csv.DictReader(f)]
    ay = [a for a in ay if a is not None]
    if ay:
        out["accel_hat_y_median"] = round(float(np.median(ay)), 5)
    return out


def card(a) -> dict:
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
    out = {"name": a.name, "scenario": a.scenario, "preset": a.preset, "command": a.command,
           "train_minutes": a.minutes, "quickstart": a.quickstart,
           "eval_sets": a.eval_sets, "scores": s}
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
    p.add_argument("--eval", required=True, help="folder of the evaluate outputs")
    p.add_argument("--eval-sets", default="", help="how the evaluation sets were generated")
    p.add_argument("--quickstart", action="store_true", help="the quickstart rolls it out")
    p.add_argument("--note", default="")
    a = p.parse_args(argv)
    if not (INDEX.parent / a.name / "config.json").is_file():
        print(f"error: no export at {INDEX.parent / a.name} (python -m models.checkpoint RUN "
              f"{INDEX.parent / a.name})", file=sys.stderr)
        return 2
    try:
        new = card(a)
    except (OSError, KeyError, ValueError) as e:
        print(f"error: {a.eval}: {e}", file=sys.stderr)
        return 2
    index = json.loads(INDEX.read_text()) if INDEX.is_file() else {"models": []}
    index["models"] = [m for m in index["models"] if m["name"] != a.name] + [new]
    index["models"].sort(key=lambda m: m["name"])
    tmp = INDEX.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    os.replace(tmp, INDEX)
    print(f"{INDEX}: {a.name} ({a.scenario}) ID {new['scores']['id']['velocity_error']} "
          f"OOD {new['scores']['ood']['velocity_error']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
