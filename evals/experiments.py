"""The paper's experiments as data: a registry of frozen configs and a resumable pipeline.

An :class:`Experiment` is a list of *cells* (one trained model each: a scenario, a training
set, a model size) plus the evaluation sets every cell is scored on. A :class:`Scale` says
how big everything is: ``paper`` (the paper's sizes, for GPU/TPU), ``cpu-mini`` (tiny
pixel-space DiTs that finish in about half an hour on 2 CPU cores) and ``micro`` (seconds;
tests). :func:`plan` turns (experiment, scale, options) into an ordered list of
:class:`Stage` s, each one ``physim`` (or ``python -m models.baselines``) command line, so
the same plan can be run here (:func:`run_plan`, in-process, skipping finished stages) or
written out as a shell script for a cluster.

Run directory layout::

    RUN/plan.json               experiment, scale, cells, eval sets, stages
    RUN/data/<dataset>/         training and evaluation sets (states only)
    RUN/baselines/<kind>/<eval>/{gen,eval}/   truth and copy-last references
    RUN/cells/<cell>/model/     training workdir (checkpoints, metrics.jsonl)
    RUN/cells/<cell>/gen/<eval>/   rollouts ({id}.npy)
    RUN/cells/<cell>/eval/<eval>/  physim evaluate output (results.json, per_video.csv)
    RUN/stages/<stage>.done     finished stages (a rerun skips them)
    RUN/report/                 report.md, comparison.csv, plots (evals.compare)
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from evals import paper_numbers


@dataclass(frozen=True)
class ModelSpec:
    """A model size: a ``models.configs`` preset plus ``--set`` overrides."""

    preset: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scale:
    """How big an experiment runs. Data sizes are keyed by the paper's labels."""

    name: str
    resolution: int
    models: dict[str, ModelSpec]  # "S"/"B"/"L"/"XL" -> model
    data: dict[str, int]  # "30K" -> videos actually generated at this scale
    steps: int
    batch: int
    n_eval: int  # videos per evaluation split (grids are subsampled evenly)
    train_overrides: tuple[str, ...] = ()  # extra --set for every training run
    vae: ModelSpec | None = None  # latent DiTs: the VAE trained first on the largest set
    sample_steps: int | None = None
    workers: int = 1
    n_attr: int = 300_000  # training videos of an attribute / interpolation experiment
    default_model: str = "B"


def _px(depth, width, heads):
    return ModelSpec("dit-px32", (f"dit.depth={depth}", f"dit.width={width}",
                                  f"dit.heads={heads}"))


_MINI_TRAIN = ("train.warmup=20", "train.log_every=20", "train.ckpt_every=100",
               "train.lr=1e-3")
SCALES: dict[str, Scale] = {
    "paper": Scale(
        name="paper", resolution=128,
        models={"S": ModelSpec("dit-s"), "B": ModelSpec("dit-b"), "L": ModelSpec("dit-l"),
                "XL": ModelSpec("dit-xl")},
        data={"30K": 30_000, "300K": 300_000, "3M": 3_000_000, "0.6M": 600_000,
              "6M": 6_000_000},
        steps=100_000, batch=256, n_eval=100_000, vae=ModelSpec("vae-f8t4"), workers=64,
        n_attr=300_000),
    "cpu-mini": Scale(
        name="cpu-mini", resolution=32,
        models={"S": _px(2, 64, 2), "B": _px(3, 96, 4), "L": _px(4, 128, 4),
                "XL": _px(4, 128, 4)},
        data={"30K": 300, "300K": 3_000, "3M": 30_000, "0.6M": 600, "6M": 6_000},
        steps=240, batch=8, n_eval=24, train_overrides=_MINI_TRAIN, workers=1, n_attr=3_000),
    "micro": Scale(
        name="micro", resolution=32,
        models={k: ModelSpec("dit-px32", ("dit.depth=1", "dit.width=24", "dit.heads=2",
                                          "dit.patch=1,32,32"))
                for k in ("S", "B", "L", "XL")},
        data={"30K": 8, "300K": 16, "3M": 32, "0.6M": 8, "6M": 16},
        steps=2, batch=2, n_eval=3, sample_steps=2,
        train_overrides=("train.warmup=1", "train.log_every=1", "train.ckpt_every=2"),
        n_attr=8),
}


@dataclass(frozen=True)
class EvalSet:
    """An evaluation dataset: ``splits`` of ``scenario`` with field ``overrides``."""

    name: str
    scenario: str
    splits: tuple[str, ...] = ("id", "ood")
    overrides: tuple[tuple[str, str], ...] = ()  # (field, value) as --set takes them
    metrics: tuple[str, ...] = ("laws",)


@dataclass(frozen=True)
class Cell:
    """One trained model: training data, model size and what it is evaluated on."""

    name: str  # path-safe, e.g. "uniform-S-30K"
    scenario: str
    model: str  # key of Scale.models
    data_label: str  # key of Scale.data, "attr" (Scale.n_attr) or "stream" (on the fly)
    evals: tuple[EvalSet, ...]
    overrides: tuple[tuple[str, str], ...] = ()  # training-set scenario fields
    flip: bool | None = None  # None: the preset's choice
    tags: tuple[tuple[str, str], ...] = ()  # columns for the report (e.g. gap=1.25-3.75)
    preset: ModelSpec | None = None  # a fixed model instead of Scale.models[model], trained
    #   with the preset's own steps, batch and resolution (the quickstart's shipped model)


@dataclass(frozen=True)
class Experiment:
    """A paper experiment: ``cells(scale, scenarios)`` builds its cells."""

    name: str
    title: str
    cells: object  # Callable[[Scale, tuple[str, ...]], list[Cell]]
    scenarios: tuple[str, ...]
    paper: str  # key of evals.paper_numbers.PAPER
    n_cond: int = 3
    resolution: tuple[tuple[str, int], ...] = ()  # (scale, pixels) overriding Scale.resolution
    steps: tuple[tuple[str, int], ...] = ()  # (scale, training steps) overriding Scale.steps


def _std_evals(scenario, metrics=("laws",)):
    return (EvalSet(f"{scenario}-eval", scenario, ("id", "ood"), (), metrics),)


def _scaling(scale, scenarios):
    return [Cell(f"{sc}-{m}-{d}", sc, m, d, _std_evals(sc), tags=(("model", m), ("data", d)))
            for sc in scenarios for m in ("S", "B", "L") for d in ("30K", "300K", "3M")]


_GAPS = {"2-3": ((1.0, 2.0), (3.0, 4.0)), "1.75-3.25": ((1.0, 1.75), (3.25, 4.0)),
         "1.5-3.5": ((1.0, 1.5), (3.5, 4.0)), "1.25-3.75": ((1.0, 1.25), (3.75, 4.0)),
         "n3": ((1.0, 1.25), (2.375, 2.625), (3.75, 4.0)),
         "n4": ((1.0, 1.25), (1.875, 2.125), (2.875, 3.125), (3.75, 4.0))}
_SQUARES = {"2-3": (2.0, 3.0), "1.75-3.25": (1.75, 3.25), "1.5-3.5": (1.5, 3.5),
            "1.25-3.75": (1.25, 3.75), "1.1-3.9": (1.1, 3.9)}


def _j(x):
    return json.dumps(x, separators=(",", ":"))


def _interpolation(scale, scenarios):
    cells = []
    if "uniform" in scenarios:
        ev = (EvalSet("uniform-vgrid", "uniform", ("id",), (("grid_v", "31"), ("grid_r", "4"))),
              EvalSet("uniform-eval", "uniform", ("ood",)))
        for k, bands in _GAPS.items():
            cells.append(Cell(f"uniform-gap-{k}", "uniform_bands", scale.default_model, "attr",
                              ev, (("v_bands", _j(bands)),), tags=(("gap", k),)))
    if "collision" in scenarios:
        ev = (EvalSet("collision-vgrid", "collision", ("id",),
                      (("grid_v", "9"), ("grid_r", "2"))),)
        for k, box in _SQUARES.items():
            cells.append(Cell(f"collision-square-{k}", "collision_holdout", scale.default_model,
                              "attr", ev, (("holdout", _j([[box, box]])),),
                              tags=(("square", k),)))
    return cells


def _memorization(scale, scenarios):
    ev = (EvalSet("uniform-slow", "uniform", ("id",), (("v_id", "[1.0,2.5]"),)),
          EvalSet("uniform-trainrange", "uniform", ("id",), (("v_id", "[2.5,4.0]"),)))
    return [Cell(f"uniform-memo-{'flip' if f else 'noflip'}", "uniform", scale.default_model,
                 "attr", ev, (("v_id", "[2.5,4.0]"),), flip=f,
                 tags=(("flip", str(f)),)) for f in (False, True)]


ATTRIBUTE_PAIRS = ("color_shape", "size_shape", "velocity_shape", "color_size",
                   "color_velocity", "size_velocity")


def _attributes(scale, scenarios):
    return [Cell(p, p, scale.default_model, "attr",
                 (EvalSet(f"{p}-eval", p, ("id", "ood"), (), ("laws", "attributes")),),
                 tags=(("pair", p),)) for p in scenarios]


def _combinatorial(scale, scenarios):
    out = []
    for n, d in ((6, "0.6M"), (30, "3M"), (60, "6M")):
        ev = (EvalSet(f"comb{n}-eval", "combinatorial", ("in-template", "out-of-template"),
                      (("templates", str(n)),), ("abnormal", "video")),)
        out.append(Cell(f"combinatorial-{n}", "combinatorial",
                        "XL" if scale.name == "paper" else scale.default_model, d, ev,
                        (("templates", str(n)),), tags=(("templates", str(n)),)))
    return out


QUICKSTART_MODEL = ModelSpec("dit-px32")


def _quickstart(scale, scenarios):
    return [Cell("uniform-px32", "uniform", "B", "stream", _std_evals("uniform"),
                 tags=(("model", "dit-px32"),), preset=QUICKSTART_MODEL)]


EXPERIMENTS: dict[str, Experiment] = {
    "quickstart": Experiment("quickstart", "Quickstart: ID/OOD gap of the shipped tiny model",
                             _quickstart, ("uniform",), "scaling"),
    "scaling": Experiment("scaling", "Scaling: DiT S/B/L x 30K/300K/3M (paper §3.2, Fig. 3)",
                          _scaling, ("uniform", "collision", "parabola"), "scaling"),
    "interpolation": Experiment(
        "interpolation", "Interpolation: velocity gaps and held-out squares (paper §5.1)",
        _interpolation, ("uniform", "collision"), "interpolation"),
    "memorization": Experiment("memorization", "Memorization with and without flip (§5.2)",
                               _memorization, ("uniform",), "memorization"),
    "attributes": Experiment("attributes", "Pairwise attribute priority (paper §5.3)",
                             _attributes, ATTRIBUTE_PAIRS, "attributes"),
    "combinatorial": Experiment("combinatorial", "Combinatorial: 6/30/60 templates (Table 2)",
                                _combinatorial, ("combinatorial",), "combinatorial", n_cond=1,
                                # the paper trains these at 256 px; scene checks need >= 64 px
                                resolution=(("paper", 256), ("cpu-mini", 64), ("micro", 64)),
                                steps=(("paper", 1_000_000),)),
}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; known: {sorted(SCALES)}")
    return SCALES[name]


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Stage:
    """One command of a plan; ``argv[0]`` is ``physim`` or ``baselines``."""

    name: str
    argv: tuple[str, ...]
    kind: str  # generate | baseline | train | sample | evaluate | report
    cell: str = ""

    def shell(self) -> str:
        head = ["physim"] if self.argv[0] == "physim" else ["python", "-m", "models.baselines"]
        return shlex.join(head + list(self.argv[1:]))


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
         checkpoint: str | None = None, train: bool = True) -> Plan:
    """The ordered stages of ``experiment`` at ``scale`` in ``run_dir``.

    ``scenarios``/``models``/``data`` restrict the cells (e.g. scaling on uniform only);
    ``steps`` and ``n_eval`` override the scale's training steps and eval-set size.
    ``checkpoint``: a trained DiT workdir every cell samples from (no training); with
    ``train=False`` and no checkpoint, only the data and the references are planned.
    """
    exp, sc = get_experiment(experiment), get_scale(scale)
    scen = tuple(scenarios) if scenarios else exp.scenarios
    bad = sorted(set(scen) - set(exp.scenarios))
    if bad:
        raise ValueError(f"{experiment}: unknown scenario(s) {bad}; known: {list(exp.scenarios)}")
    cells = [c for c in exp.cells(sc, scen)
             if (not models or c.model in models) and (not data or c.data_label in data)]
    if not cells:
        raise ValueError(f"{experiment}: no cells left after --models {models} --data {data}")
    user_steps, steps = steps, steps or dict(exp.steps).get(sc.name, sc.steps)
    n_eval = n_eval or sc.n_eval
    resolution = dict(exp.resolution).get(sc.name, sc.resolution)
    if checkpoint:  # references at the model's resolution
        cfg_path = Path(checkpoint) / "config.json"
        if not cfg_path.is_file():
            raise ValueError(f"{checkpoint} is not a training workdir (no config.json)")
        resolution = int(json.loads(cfg_path.read_text())["data"]["resolution"])
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
    for c in cells if (train and not checkpoint) else ():
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
    res = str(resolution)
    for e in evals.values():
        for kind in ("truth", "copy-last"):
            base = run / "baselines" / kind / e.name
            add(Stage(f"baseline-{kind}-{e.name}", ("baselines", kind, "--data",
                                                    eval_dirs[e.name], "--out",
                                                    str(base / "gen"), "--resolution", res),
                      "baseline"))
            add(_evaluate(f"evaluate-{kind}-{e.name}", base / "gen", eval_dirs[e.name],
                          base / "eval", e.metrics))
    vae_dir = None
    if sc.vae is not None and train and not checkpoint and any(c.preset is None for c in cells):
        biggest = max(cells, key=lambda c: sc.data.get(c.data_label, sc.n_attr))
        # (a "stream" cell trains its VAE on the scenario stream as well)
        vae_dir = str(run / "vae")
        add(Stage("train-vae", ("physim", "train", "--preset", sc.vae.preset, "--data",
                                train_dirs[biggest.name], "--workdir", vae_dir,
                                "--no-progress", "--set", f"data.resolution={resolution}",
                                *[a for o in sc.vae.overrides for a in ("--set", o)]), "train"))
    for c in cells if (train or checkpoint) else ():
        cdir = run / "cells" / c.name
        workdir = str(checkpoint or cdir / "model")
        if not checkpoint:
            m = c.preset or sc.models[c.model]
            sets = [*m.overrides, f"data.n_cond={exp.n_cond}"]
            if c.preset is not None and user_steps:
                sets.append(f"train.steps={user_steps}")
            if c.preset is None:
                sets += [*sc.train_overrides, f"train.steps={steps}",
                         f"train.batch_size={sc.batch}"]
                if resolution != get_preset_resolution(m.preset):
                    sets.append(f"data.resolution={resolution}")
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
    add(Stage("report", ("physim", "report", str(run), "--out", str(run / "report")),
              "report"))
    opts = dict(scenarios=list(scen), models=models, data=data, steps=steps, n_eval=n_eval,
                seed=seed, eval_dirs=eval_dirs, paper=exp.paper, title=exp.title,
                checkpoint=checkpoint, train=train)
    return Plan(experiment, scale, str(run), tuple(cells), tuple(stages.values()), opts)


def get_preset_resolution(preset: str) -> int | None:
    """The preset's training resolution (None if models.configs is unavailable)."""
    try:
        from models.configs import get_preset
    except ImportError:  # pragma: no cover - models ship with physim
        return None
    return get_preset(preset).data.resolution


def _evaluate(name, gen, truth, out, metrics, cell=""):
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


def run_plan(p: Plan, log=print, only: tuple[str, ...] = (), cells: bool = True) -> dict:
    """Run every unfinished stage of ``p`` (``only``: stage kinds to run; ``cells=False``:
    skip the models' stages, i.e. data and references only); returns ``{stage: seconds}``
    for the stages run now. Timings go to ``RUN/timings.jsonl``."""
    write_plan(p)
    run = Path(p.run_dir)
    (run / "stages").mkdir(exist_ok=True)
    times = {}
    for st in p.stages:
        if stage_done(run, st) or (only and st.kind not in only) or (st.cell and not cells):
            continue
        log(f"[{time.strftime('%H:%M:%S')}] {st.name}: {st.shell()}")
        t0 = time.perf_counter()
        run_stage(st)
        dt = time.perf_counter() - t0
        times[st.name] = dt
        with open(run / "timings.jsonl", "a") as f:
            f.write(json.dumps({"stage": st.name, "kind": st.kind, "cell": st.cell,
                                "seconds": round(dt, 2), "time": time.time()}) + "\n")
        if st.kind != "report":  # the report is rebuilt on every run
            (run / "stages" / f"{st.name}.done").write_text(f"{dt:.2f}\n")
    return times


def load_plan(run_dir) -> dict:
    p = Path(run_dir) / "plan.json"
    if not p.is_file():
        raise ValueError(f"{run_dir} is not an experiment run (no plan.json)")
    return json.loads(p.read_text())


__all__ = ["EXPERIMENTS", "SCALES", "Cell", "EvalSet", "Experiment", "ModelSpec", "Plan",
           "Scale", "Stage", "get_experiment", "get_scale", "load_plan", "paper_numbers",
           "plan", "run_plan"]
