"""A resumable pipeline for the experiments of :mod:`evals.experiments`.

An :class:`Experiment` is a list of *cells* (one trained model each: a scenario, a training
set, a model size) plus the evaluation sets every cell is scored on. A :class:`Scale` says
how big everything is: ``paper`` (the paper's sizes, for GPU/TPU), ``cpu-mini`` (the
quickstart's tiny pixel-space DiT; each experiment's trainings fit 90 minutes on 2 CPU
cores with ``jobs=2``) and ``micro`` (seconds; tests). :func:`plan` turns (experiment,
scale, options) into an ordered list of
:class:`Stage` s, each one ``physim`` (or ``python -m models.baselines``) command line, so
the same plan can be run here (:func:`run_plan`, in-process, skipping finished stages) or
written out as a shell script for a cluster.

Run directory layout::

    RUN/plan.json               experiment, scale, cells, eval sets, stages
    RUN/data/<dataset>/         training and evaluation sets (states only)
    RUN/baselines/<kind>/<eval>/{gen,eval}/   truth and copy-last references
    RUN/baselines/knn/<train set>[-flip]/<eval>/{gen,eval}/   case retrieval (models.retrieval)
    RUN/cells/<cell>/model/     training workdir (checkpoints, metrics.jsonl)
    RUN/cells/<cell>/gen/<eval>/   rollouts ({id}.npy)
    RUN/cells/<cell>/eval/<eval>/  physim evaluate output (results.json, per_video.csv)
    RUN/cells/<cell>/caselike/<eval>/  closer to the knn case than to the truth? (evals.caselike)
    RUN/stages/<stage>.done     finished stages (a rerun skips them)
    RUN/report/                 report.md, comparison.csv, plots (evals.compare)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from evals.experiments import Cell, get_experiment, get_scale

# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Stage:
    """One command of a plan; ``argv[0]`` is ``physim``, ``baselines`` or ``caselike``."""

    name: str
    argv: tuple[str, ...]
    kind: str  # generate | baseline | train | sample | evaluate | report
    cell: str = ""

    def shell(self) -> str:
        return shlex.join(list(_HEADS[self.argv[0]]) + list(self.argv[1:]))


# argv[0] of a stage -> the shell command it stands for
_HEADS = {"physim": ("physim",), "baselines": ("python", "-m", "models.baselines"),
          "caselike": ("python", "-m", "evals.caselike")}


def _sets(overrides):
    return [a for k, v in overrides for a in ("--set", f"{k}={v}")]


def _dataset_name(scenario, overrides, tag):
    extra = "-".join(f"{k}{v}" for k, v in overrides)
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in extra)
    return f"{scenario}-{tag}" + (f"-{safe}" if safe else "")


@dataclass(frozen=True)
class Plan:
    experiment: str
    scale: str
    run_dir: str
    cells: tuple[Cell, ...]
    stages: tuple[Stage, ...]
    options: dict = field(default_factory=dict)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        return json.dumps(d, indent=1)


def plan(experiment: str, scale: str, run_dir, scenarios=None, models=None, data=None,
         steps: int | None = None, n_eval: int | None = None, seed: int = 0,
         checkpoint: str | dict[str, str] | None = None, train: bool = True) -> Plan:
    """The ordered stages of ``experiment`` at ``scale`` in ``run_dir``.

    ``scenarios``/``models``/``data`` restrict the cells (e.g. scaling on uniform only);
    ``steps`` and ``n_eval`` override the scale's training steps and eval-set size.
    ``checkpoint``: a trained DiT workdir every cell samples from (no training), or a
    mapping ``{scenario: workdir}`` (cells of other scenarios are dropped); with
    ``train=False`` and no checkpoint, only the data and the references are planned.
    """
    exp, sc = get_experiment(experiment), get_scale(scale)
    scen = tuple(scenarios) if scenarios else exp.scenarios
    bad = sorted(set(scen) - set(exp.scenarios))
    if bad:
        raise ValueError(f"{experiment}: unknown scenario(s) {bad}; known: {list(exp.scenarios)}")
    cells = [c for c in exp.cells(sc, scen)
             if (not models or c.model in models) and (not data or c.data_label in data)]
    ckpts = _checkpoints(checkpoint, cells)
    cells = [c for c in cells if not ckpts or c.name in ckpts]
    if not cells:
        raise ValueError(f"{experiment}: no cells left after --models {models} --data {data}")
    user_steps, steps = steps, steps or dict(exp.steps).get(sc.name, sc.steps)
    n_eval = n_eval or sc.n_eval
    resolution = dict(exp.resolution).get(sc.name, sc.resolution)
    eval_res = {}  # eval set -> resolution of its references: the model's, if given
    for c in cells:
        for e in c.evals:
            eval_res[e.name] = _resolution(ckpts[c.name]) if ckpts else resolution
    run = Path(run_dir)
    stages: dict[str, Stage] = {}

    def add(st: Stage):
        stages.setdefault(st.name, st)

    def gen(scenario, split, n, s, name, overrides=()):
        add(Stage(f"generate-{name}-{split}", ("physim", "generate", scenario, "--split", split,
                                               "--n", str(n), "--seed", str(s), "--out",
                                               str(run / "data" / name), "--workers",
                                               str(sc.workers), "--no-progress",
                                               *_sets(overrides)), "generate"))
        return str(run / "data" / name)

    train_dirs = {}
    # Training sets are made with checkpoints too (no training then): knn and case-likeness
    # read them, so a run rebuilt from shipped models has every reference of the original.
    for c in cells if train else ():
        if c.data_label == "stream":  # endless on-the-fly videos (models.data)
            train_dirs[c.name] = f"scenario:{c.scenario}"
            continue
        n = sc.n_attr if c.data_label == "attr" else sc.data[c.data_label]
        name = _dataset_name(c.scenario, c.overrides, f"train{n}")
        train_dirs[c.name] = gen(c.scenario, "train", n, seed, name, c.overrides)
    evals = {e.name: e for c in cells for e in c.evals}
    eval_dirs = {}
    for e in evals.values():
        name = _dataset_name(e.scenario, e.overrides, "eval")
        for split in e.splits:
            eval_dirs[e.name] = gen(e.scenario, split, n_eval, seed + 1, name, e.overrides)
    for e in evals.values():
        for kind in ("truth", "copy-last"):
            base = run / "baselines" / kind / e.name
            add(Stage(f"baseline-{kind}-{e.name}", ("baselines", kind, "--data",
                                                    eval_dirs[e.name], "--out",
                                                    str(base / "gen"), "--resolution",
                                                    str(eval_res[e.name])), "baseline"))
            add(_evaluate(f"evaluate-{kind}-{e.name}", base / "gen", eval_dirs[e.name],
                          base / "eval", e.metrics))
    # Case retrieval (models.retrieval): one knn reference per (training set, flip, eval
    # set), so each learned cell is read against "pure case retrieval" on its own data.
    knn_dirs: dict[str, dict[str, str]] = {}
    knn_gen: dict[str, dict[str, str]] = {}
    for c in cells:
        tdir = train_dirs.get(c.name, "")
        if not tdir or tdir.startswith("scenario:"):
            continue
        flip = c.flip if c.flip is not None else _preset_flip((c.preset or
                                                                sc.models[c.model]).preset)
        key = Path(tdir).name + ("-flip" if flip else "")
        for e in c.evals:
            base = run / "baselines" / "knn" / key / e.name
            add(Stage(f"baseline-knn-{key}-{e.name}",
                      ("baselines", "knn", "--train", tdir, "--data", eval_dirs[e.name],
                       "--out", str(base / "gen"), "--resolution", str(eval_res[e.name]),
                       *(("--flip",) if flip else ())), "baseline"))
            add(_evaluate(f"evaluate-knn-{key}-{e.name}", base / "gen", eval_dirs[e.name],
                          base / "eval", e.metrics))
            knn_dirs.setdefault(c.name, {})[e.name] = str(base / "eval")
            knn_gen.setdefault(c.name, {})[e.name] = str(base / "gen")
    vae_dir = None
    if sc.vae is not None and train and not ckpts and any(c.preset is None for c in cells):
        biggest = max(cells, key=lambda c: sc.data.get(c.data_label, sc.n_attr))
        # (a "stream" cell trains its VAE on the scenario stream as well)
        vae_dir = str(run / "vae")
        add(Stage("train-vae", ("physim", "train", "--preset", sc.vae.preset, "--data",
                                train_dirs[biggest.name], "--workdir", vae_dir,
                                "--no-progress", "--set", f"data.resolution={resolution}",
                                *[a for o in sc.vae.overrides for a in ("--set", o)]), "train"))
    for c in cells if (train or ckpts) else ():
        cdir = run / "cells" / c.name
        workdir = str(ckpts.get(c.name) or cdir / "model")
        if not ckpts:
            m = c.preset or sc.models[c.model]
            sets = [*m.overrides, f"data.n_cond={exp.n_cond}"]
            if c.preset is not None and user_steps:
                sets.append(f"train.steps={user_steps}")
            if c.preset is None:
                sets += [*sc.train_overrides, f"train.steps={steps}",
                         f"train.batch_size={sc.batch}"]
                if resolution != get_preset_resolution(m.preset):
                    sets.append(f"data.resolution={resolution}")
                sets += dict(exp.sets).get(sc.name, ())
            if c.flip is not None:
                sets.append(f"data.flip={c.flip}")
            if vae_dir and c.preset is None:
                sets.append(f"vae_workdir={vae_dir}")
            add(Stage(f"train-{c.name}", ("physim", "train", "--preset", m.preset, "--data",
                                          train_dirs[c.name], "--workdir", workdir,
                                          "--no-progress",
                                          *[a for s in sets for a in ("--set", s)]),
                      "train", c.name))
        for e in c.evals:
            gdir = cdir / "gen" / e.name
            extra = ("--steps", str(sc.sample_steps)) if sc.sample_steps else ()
            add(Stage(f"sample-{c.name}-{e.name}", ("physim", "sample", "--workdir",
                                                    workdir, "--data",
                                                    eval_dirs[e.name], "--out", str(gdir),
                                                    *extra), "sample", c.name))
            add(_evaluate(f"evaluate-{c.name}-{e.name}", gdir, eval_dirs[e.name],
                          cdir / "eval" / e.name, e.metrics, c.name))
            case = knn_gen.get(c.name, {}).get(e.name)
            if case:  # is the rollout closer to the retrieved case than to the truth?
                add(Stage(f"caselike-{c.name}-{e.name}",
                          ("caselike", str(gdir), "--case", case, "--truth", eval_dirs[e.name],
                           "--out", str(cdir / "caselike" / e.name)), "evaluate", c.name))
    add(Stage("report", ("physim", "report", str(run), "--out", str(run / "report")),
              "report"))
    opts = dict(scenarios=list(scen), models=models, data=data, steps=steps, n_eval=n_eval,
                seed=seed, eval_dirs=eval_dirs, paper=exp.paper, title=exp.title,
                checkpoint=", ".join(sorted(set(ckpts.values()))) or None, train=train,
                knn=knn_dirs)
    return Plan(experiment, scale, str(run), tuple(cells), tuple(stages.values()), opts)


def _checkpoints(checkpoint, cells) -> dict[str, str]:
    """``{cell: workdir}`` of the trained models the cells sample from ({}: train).

    ``checkpoint``: one workdir for every cell, or ``{key: workdir}`` whose keys are cell
    names (one model per cell: the shipped cells of an experiment) or scenarios (every cell
    of that scenario); a cell's own name wins over its scenario."""
    if not checkpoint:
        return {}
    if isinstance(checkpoint, str):
        return {c.name: checkpoint for c in cells}
    known = {c.scenario for c in cells} | {c.name for c in cells}
    bad = sorted(set(checkpoint) - known)
    if bad:
        raise ValueError(f"checkpoint for unknown scenario(s) or cell(s) {bad}; known: "
                         f"{sorted(known)}")
    out = {}
    for c in cells:
        d = checkpoint.get(c.name) or checkpoint.get(c.scenario)
        if d:
            out[c.name] = d
    return out


def _resolution(workdir: str) -> int:
    """The training resolution of a DiT workdir (its config.json)."""
    cfg_path = Path(workdir) / "config.json"
    if not cfg_path.is_file():
        raise ValueError(f"{workdir} is not a training workdir (no config.json)")
    return int(json.loads(cfg_path.read_text())["data"]["resolution"])


def _preset_data(preset: str):
    """The preset's ``DataConfig`` (None if models.configs is unavailable)."""
    try:
        from models.configs import get_preset
    except ImportError:  # pragma: no cover - models ship with physim
        return None
    return get_preset(preset).data


def _preset_flip(preset: str) -> bool:
    """Whether the preset trains on horizontally flipped videos too (its data.flip)."""
    d = _preset_data(preset)
    return bool(d and d.flip)


def get_preset_resolution(preset: str) -> int | None:
    """The preset's training resolution (None if models.configs is unavailable)."""
    d = _preset_data(preset)
    return d.resolution if d else None


def _evaluate(name, gen, truth, out, metrics, cell=""):
    """An evaluate stage; every experiment's evaluation also runs the physics judge
    (plausibility and fidelity verdicts, ``evals.judge``), which the reports show beside
    the pixel-level abnormal rate."""
    metrics = (*metrics, *(() if "judge" in metrics else ("judge",)))
    return Stage(name, ("physim", "evaluate", str(gen), "--truth", str(truth), "--out",
                        str(out), "--metrics", *metrics, "--no-progress"), "evaluate", cell)


# --------------------------------------------------------------------------- running


def stage_done(run_dir, stage: Stage) -> bool:
    return (Path(run_dir) / "stages" / f"{stage.name}.done").exists()


def run_stage(stage: Stage) -> None:
    """Run one stage in this process (jax is imported once for the whole plan)."""
    if stage.argv[0] == "baselines":
        from models import baselines

        rc = baselines.main(list(stage.argv[1:]))
    elif stage.argv[0] == "caselike":
        from evals import caselike

        rc = caselike.main(list(stage.argv[1:]))
    else:
        from physim import cli

        rc = cli.main(list(stage.argv[1:]))
    if rc:
        raise RuntimeError(f"stage {stage.name} failed (exit {rc}): {stage.shell()}")


def write_plan(p: Plan) -> Path:
    run = Path(p.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / "plan.json").write_text(p.to_json())
    lines = ["#!/usr/bin/env bash", f"# {p.options.get('title', p.experiment)} "
             f"-- scale {p.scale}; generated by scripts/experiments/run.py", "set -euo pipefail"]
    lines += [s.shell() for s in p.stages]
    (run / "run.sh").write_text("\n".join(lines) + "\n")
    return run / "run.sh"


def _record(run: Path, st: Stage, dt: float) -> None:
    with open(run / "timings.jsonl", "a") as f:
        f.write(json.dumps({"stage": st.name, "kind": st.kind, "cell": st.cell,
                            "seconds": round(dt, 2), "time": time.time()}) + "\n")
    if st.kind != "report":  # the report is rebuilt on every run
        (run / "stages" / f"{st.name}.done").write_text(f"{dt:.2f}\n")


def core_groups(jobs: int, cores=None) -> list[set[int]]:
    """``jobs`` disjoint sets of this process's CPU cores (round-robin), one per parallel
    training; ``ValueError`` if there are fewer cores than jobs."""
    cores = sorted(os.sched_getaffinity(0) if cores is None else cores)
    if jobs < 1 or jobs > len(cores):
        raise ValueError(f"--jobs {jobs}: this process may run on {len(cores)} CPU cores "
                         f"({cores}); give 1 to {len(cores)}")
    return [set(cores[i::jobs]) for i in range(jobs)]


_PINNED = """import ctypes, os, signal, sys
os.sched_setaffinity(0, {cores})
try:  # SIGTERM (the trainer answers it with a checkpoint) when the pipeline dies
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1 (Linux)
except (OSError, AttributeError):
    pass
from physim import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def stage_command(st: Stage, cores: set[int]) -> list[str]:
    """argv that runs a ``physim`` stage in a fresh Python process on ``cores`` only (the
    child pins itself: no fork-time hook in this multithreaded, JAX-importing process)."""
    import sys

    return [sys.executable, "-c", _PINNED.format(cores=sorted(cores)), *st.argv[1:]]


def _train_parallel(run: Path, stages: list[Stage], jobs: int, log, times: dict,
                    poll: float = 2.0) -> None:
    """Run the cells' training stages as subprocesses, at most ``jobs`` at a time, each on
    its own cores (:func:`core_groups`): two single-core trainings do about 1.33x the work
    of one on both cores (docs/results.md). Output goes to ``RUN/logs/<stage>.log``. A
    failed training does not stop the others; ``RuntimeError`` naming every failure."""
    import subprocess

    free, running, failed = core_groups(jobs), {}, []
    (run / "logs").mkdir(exist_ok=True)
    queue = list(stages)
    while queue or running:
        while queue and free:
            st, cores = queue.pop(0), free.pop(0)
            logf = open(run / "logs" / f"{st.name}.log", "ab")  # noqa: SIM115 (closed below)
            proc = subprocess.Popen(stage_command(st, cores), stdout=logf,
                                    stderr=subprocess.STDOUT)
            running[proc.pid] = (st, proc, logf, cores, time.perf_counter())
            log(f"[{time.strftime('%H:%M:%S')}] {st.name} (cores {sorted(cores)}, log "
                f"{run / 'logs' / (st.name + '.log')}): {st.shell()}")
        time.sleep(poll)
        for pid in [q for q, (_, proc, *_) in running.items() if proc.poll() is not None]:
            st, proc, logf, cores, t0 = running.pop(pid)
            logf.close()
            free.append(cores)
            dt = time.perf_counter() - t0
            if proc.returncode:
                failed.append(f"{st.name} (exit {proc.returncode}, log "
                              f"{run / 'logs' / (st.name + '.log')})")
                log(f"[{time.strftime('%H:%M:%S')}] {st.name} FAILED (exit {proc.returncode})")
                continue
            times[st.name] = dt
            _record(run, st, dt)
            log(f"[{time.strftime('%H:%M:%S')}] {st.name} done in {dt / 60:.1f} min")
    if failed:
        raise RuntimeError("training failed: " + "; ".join(failed))


def run_plan(p: Plan, log=print, only: tuple[str, ...] = (), cells: bool = True,
             jobs: int = 1) -> dict:
    """Run every unfinished stage of ``p`` (``only``: stage kinds to run; ``cells=False``:
    skip the models' stages, i.e. data and references only); returns ``{stage: seconds}``
    for the stages run now. Timings go to ``RUN/timings.jsonl``.

    ``jobs > 1``: the stages shared by all cells (data, references, VAE) run first, then the
    cells' trainings ``jobs`` at a time in subprocesses pinned to disjoint cores
    (:func:`_train_parallel`), then the rest in order; each training is the same command as
    with ``jobs=1``, so the results do not depend on ``jobs``."""
    write_plan(p)
    run = Path(p.run_dir)
    (run / "stages").mkdir(exist_ok=True)
    groups = core_groups(jobs) if jobs > 1 else None  # refuse a bad --jobs before any work
    todo = [st for st in p.stages if not stage_done(run, st)
            and not (only and st.kind not in only) and not (st.cell and not cells)]
    times = {}

    def seq(stages):
        for st in stages:
            log(f"[{time.strftime('%H:%M:%S')}] {st.name}: {st.shell()}")
            t0 = time.perf_counter()
            run_stage(st)
            dt = time.perf_counter() - t0
            times[st.name] = dt
            _record(run, st, dt)

    if groups is None:
        seq(todo)
        return times
    trains = [st for st in todo if st.kind == "train" and st.cell]
    seq([st for st in todo if not st.cell and st.kind != "report"])
    _train_parallel(run, trains, jobs, log, times)
    seq([st for st in todo if st.cell and st not in trains or st.kind == "report"])
    return times


def load_plan(run_dir) -> dict:
    p = Path(run_dir) / "plan.json"
    if not p.is_file():
        raise ValueError(f"{run_dir} is not an experiment run (no plan.json)")
    return json.loads(p.read_text())
