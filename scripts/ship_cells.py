"""Ship the finished cells of an experiment run: export each cell's model for sampling and
card it in ``models/checkpoints/index.json``, so the run's results survive the run folder.

::

    python scripts/ship_cells.py runs/exp/attr-all --prefix attr- [--cell color_shape ...]
        [--note "issue 14 attribute cell"] [--dry-run]

A cell is shipped once its last stage (caselike, else evaluate) is done; the card's command
is the run's one-line command with the cell's exact training argv, its minutes the training
stage's wall time from ``RUN/timings.jsonl``. Cells still training are skipped (listed), so
the script can be rerun as cells finish; a cell already shipped is re-exported only when its
model changed (the export's step differs).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import model_card  # noqa: E402


def _done(run: Path, name: str) -> bool:
    return (run / "stages" / f"{name}.done").exists()


def finished_cells(plan: dict, run: Path) -> tuple[list[dict], list[str]]:
    """(cells whose every stage is done, names of the others)."""
    ready, waiting = [], []
    for cell in plan["cells"]:
        stages = [s for s in plan["stages"] if s.get("cell") == cell["name"]]
        if stages and all(_done(run, s["name"]) for s in stages):
            ready.append(cell)
        else:
            waiting.append(cell["name"])
    return ready, waiting


def train_minutes(run: Path, stage: str) -> float | None:
    """Wall minutes of the last recorded run of ``stage`` (None if never recorded)."""
    t = None
    path = run / "timings.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r["stage"] == stage:
                t = r["seconds"] / 60
    return None if t is None else round(t, 1)


def cell_command(plan: dict, cell: str) -> tuple[str, str]:
    """(the card's command, the cell's preset) for ``cell``."""
    st = next(s for s in plan["stages"] if s["kind"] == "train" and s.get("cell") == cell)
    argv = [a.replace(plan["run_dir"].rstrip("/"), "RUN") for a in st["argv"]
            if a != "--no-progress"]
    preset = argv[argv.index("--preset") + 1] if "--preset" in argv else ""
    run_cmd = (f"python scripts/experiments/run.py {plan['experiment']} --scale {plan['scale']}"
               f" --jobs 2")
    return f"{run_cmd} (cell {cell}: {shlex.join(argv)})", preset


def eval_sets(plan: dict, cell: dict) -> str:
    """How the cell's evaluation sets were made: their generate commands, run-relative."""
    gens = [s for s in plan["stages"] if s["kind"] == "generate"]
    dirs = plan["options"].get("eval_dirs", {})
    cmds = []
    for e in cell["evals"]:
        for g in gens:
            out = g["argv"][g["argv"].index("--out") + 1] if "--out" in g["argv"] else ""
            if out and (out == dirs.get(e["name"]) or Path(out).name == e["name"]):
                cmds.append(shlex.join(a.replace(plan["run_dir"].rstrip("/"), "RUN")
                                       for a in g["argv"] if a != "--no-progress"))
    return f"{plan['options']['title']}: " + "; ".join(cmds)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="an experiment run folder (scripts/experiments/run.py --out)")
    p.add_argument("--prefix", required=True, help="export name = PREFIX + cell name")
    p.add_argument("--cell", action="append", default=None, help="only these cells")
    p.add_argument("--note", default="", help="text for every card's note")
    p.add_argument("--dry-run", action="store_true", help="list what would be shipped")
    a = p.parse_args(argv)
    run = Path(a.run)
    if not (run / "plan.json").is_file():
        print(f"error: {run} is not an experiment run (no plan.json)", file=sys.stderr)
        return 2
    plan = json.loads((run / "plan.json").read_text())
    names = {c["name"] for c in plan["cells"]}
    unknown = sorted(set(a.cell or ()) - names)
    if unknown:
        print(f"error: no cell {', '.join(unknown)} in {run} (cells: {', '.join(sorted(names))})",
              file=sys.stderr)
        return 2
    ready, waiting = finished_cells(plan, run)
    ready = [c for c in ready if not a.cell or c["name"] in a.cell]
    if waiting:
        print(f"not finished (skipped): {', '.join(waiting)}")
    from models import checkpoint as ck

    for cell in ready:
        name = a.prefix + cell["name"]
        dst = model_card.INDEX.parent / name
        command, preset = cell_command(plan, cell["name"])
        minutes = train_minutes(run, f"train-{cell['name']}")
        print(f"{name}: {cell['name']} ({minutes} min) -> {dst}")
        if a.dry_run:
            continue
        workdir = str(run / "cells" / cell["name"] / "model")
        _, step = ck.read_meta(workdir)
        if dst.is_dir() and ck.read_meta(str(dst))[1] != step:
            shutil.rmtree(dst)  # an export of an older model of this cell
        if not dst.is_dir():
            ck.export(workdir, str(dst))
        rc = model_card.main([
            "--name", name, "--scenario", cell["scenario"], "--preset", preset,
            "--command", command, "--minutes", str(minutes if minutes is not None else -1),
            "--run", str(run), "--cell", cell["name"],
            "--eval-sets", eval_sets(plan, cell),
            "--note", a.note or f"{plan['experiment']} cell {cell['name']}; see docs/results.md"])
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
