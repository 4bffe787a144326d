"""One command per paper experiment, driven by the registry in ``evals/experiments.py``.

::

    python scripts/experiments/run.py scaling --scale cpu-mini --scenario uniform \
        --out runs/exp/scaling-uniform
    python scripts/experiments/run.py memorization --scale cpu-mini --jobs 2  # 2 cells at once
    python scripts/experiments/run.py attributes --scale cpu-mini --scenario color_shape
    python scripts/experiments/run.py scaling --scale paper --out /big/scaling --emit  # run.sh
    python scripts/experiments/run.py --list

A rerun skips finished stages (``RUN/stages/*.done``); a killed training resumes from its
last checkpoint. The last stage writes ``RUN/report/report.md`` (``physim report RUN``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evals import experiments as ex  # noqa: E402
from evals import pipeline as pl  # noqa: E402


def _checkpoint_arg(items):
    """``--checkpoint`` values: one plain DIR (every cell), or KEY=DIR pairs (KEY: a cell
    name, e.g. one shipped model per cell, or a scenario: all its cells)."""
    if not items:
        return None
    pairs = [i.split("=", 1) for i in items if "=" in i]
    if not pairs:
        if len(items) > 1:
            raise ValueError("several --checkpoint DIRs: name their cells or scenarios "
                             "(CELL=DIR or SCENARIO=DIR)")
        return items[0]
    if len(pairs) != len(items):
        raise ValueError("--checkpoint: give either one DIR or KEY=DIR pairs, not both")
    return dict(pairs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/experiments/run.py", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("experiment", nargs="?", help=f"one of {sorted(ex.EXPERIMENTS)}")
    p.add_argument("--scale", default="cpu-mini", help=f"one of {sorted(ex.SCALES)}")
    p.add_argument("--out", default=None, help="run folder (default runs/exp/EXPERIMENT-SCALE)")
    p.add_argument("--scenario", action="append", default=None,
                   help="restrict to these scenarios / attribute pairs (repeatable)")
    p.add_argument("--models", default=None, help="comma list of sizes, e.g. S,B")
    p.add_argument("--data", default=None, help="comma list of data labels, e.g. 30K,300K")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: scale's)")
    p.add_argument("--n-eval", type=int, default=None, help="videos per eval split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1,
                   help="trainings run at the same time, each pinned to its own CPU cores "
                        "(2 on a 2-core machine: about 1.33x the throughput of 1)")
    p.add_argument("--checkpoint", action="append", default=None, metavar="[KEY=]DIR",
                   help="sample from this trained workdir instead of training; KEY=DIR "
                        "(repeatable; KEY a cell or a scenario) gives each its own model and "
                        "drops the cells without one")
    p.add_argument("--no-train", action="store_true",
                   help="plan only data and the references (no model)")
    p.add_argument("--emit", action="store_true", help="write plan.json and run.sh, run nothing")
    p.add_argument("--list", action="store_true", help="list experiments and scales")
    a = p.parse_args(argv)
    if a.list or not a.experiment:
        for e in ex.EXPERIMENTS.values():
            print(f"{e.name:14s} {e.title}  scenarios: {', '.join(e.scenarios)}")
        print("scales:", ", ".join(ex.SCALES))
        return 0
    out = a.out or f"runs/exp/{a.experiment}-{a.scale}"
    try:
        ckpt = _checkpoint_arg(a.checkpoint)
        plan = pl.plan(a.experiment, a.scale, out, scenarios=a.scenario,
                       models=a.models.split(",") if a.models else None,
                       data=a.data.split(",") if a.data else None, steps=a.steps,
                       n_eval=a.n_eval, seed=a.seed, checkpoint=ckpt,
                       train=not a.no_train)
    except ValueError as e:
        print(f"run.py: error: {e}", file=sys.stderr)
        return 2
    try:
        pl.core_groups(a.jobs)
    except ValueError as e:
        print(f"run.py: error: {e}", file=sys.stderr)
        return 2
    script = pl.write_plan(plan)
    if a.emit:
        print(f"wrote {script} ({len(plan.stages)} stages, {len(plan.cells)} cells)")
        return 0
    pl.run_plan(plan, log=lambda m: print(m, flush=True), jobs=a.jobs)
    print(f"report: {Path(out) / 'report' / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
