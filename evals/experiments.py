"""The paper's experiments as data: a registry of frozen configs.

An :class:`Experiment` is a list of *cells* (one trained model each: a scenario, a training
set, a model size) plus the evaluation sets every cell is scored on. A :class:`Scale` says
how big everything is: ``paper`` (the paper's sizes, for GPU/TPU), ``cpu-mini`` (the
quickstart's tiny pixel-space DiT; each experiment's trainings fit 90 minutes on 2 CPU
cores with ``--jobs 2``) and ``micro`` (seconds; tests). :mod:`evals.pipeline` turns
(experiment, scale) into runnable stages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


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


def _tiny(depth, width, heads):
    return ModelSpec("dit-tiny", (f"dit.depth={depth}", f"dit.width={width}",
                                  f"dit.heads={heads}"))


# cpu-mini: the quickstart's network (dit-tiny: 32 px, 4x8x8 patches, x-prediction, 8
# steps) as size B, trained thousands of steps: the earlier cpu-mini (dit-px32 variants,
# 240 steps of 8 videos) lost the object in every rollout of every cell (docs/results.md).
# Steps are set per experiment (``Experiment.steps``) so that each experiment's trainings
# fit 90 minutes with ``--jobs 2`` (one training per core, about 0.5 s per B step).
# EMA 0.998 (about 500 steps): short runs must not average in weights from before the
# model learned to draw the object.
_MINI_TRAIN = ("train.ema_decay=0.998",)
SCALES: dict[str, Scale] = {
    "paper": Scale(
        name="paper", resolution=128,
        models={"S": ModelSpec("dit-s"), "B": ModelSpec("dit-b"), "L": ModelSpec("dit-l"),
                "XL": ModelSpec("dit-xl")},
        data={"30K": 30_000, "300K": 300_000, "3M": 3_000_000, "6T": 600_000,
              "30T": 3_000_000, "60T": 6_000_000},
        steps=100_000, batch=256, n_eval=100_000, vae=ModelSpec("vae-f8t4"), workers=64,
        n_attr=300_000),
    "cpu-mini": Scale(
        name="cpu-mini", resolution=32,
        models={"S": _tiny(2, 64, 2), "B": _tiny(4, 128, 4), "L": _tiny(6, 192, 6),
                "XL": _tiny(8, 256, 8)},
        data={"30K": 300, "300K": 3_000, "3M": 30_000, "6T": 600, "30T": 3_000, "60T": 6_000},
        steps=2000, batch=16, n_eval=128, train_overrides=_MINI_TRAIN, workers=1,
        n_attr=30_000),
    "micro": Scale(
        name="micro", resolution=32,
        models={k: ModelSpec("dit-px32", ("dit.depth=1", "dit.width=24", "dit.heads=2",
                                          "dit.patch=1,32,32"))
                for k in ("S", "B", "L", "XL")},
        data={"30K": 8, "300K": 16, "3M": 32, "6T": 8, "30T": 16, "60T": 16},
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
    # (scale, --set overrides) for every cell's model at that scale, after the scale's own
    sets: tuple[tuple[str, tuple[str, ...]], ...] = ()


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
# cpu-mini trains 2500 steps a cell (at 1500 the ball is kept in only 75% of the grid's
# videos: docs/results.md); three of the five squares keep the experiment within 90 minutes
# on 2 cores (9 cells of about 18 min, two at once).
_MINI_SQUARES = ("2-3", "1.5-3.5", "1.1-3.9")


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
        squares = {k: _SQUARES[k] for k in _MINI_SQUARES} if scale.name == "cpu-mini" \
            else _SQUARES
        for k, box in squares.items():
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


# The six pairs of §5.3 and the counter-example of Fig. 16 (a blue ball and a red ring).
ATTRIBUTE_PAIRS = ("color_shape", "size_shape", "velocity_shape", "color_size",
                   "color_velocity", "size_velocity", "color_ring")


def _attributes(scale, scenarios):
    return [Cell(p, p, scale.default_model, "attr",
                 (EvalSet(f"{p}-eval", p, ("id", "ood"), (), ("laws", "attributes")),),
                 tags=(("pair", p),)) for p in scenarios]


def _combinatorial(scale, scenarios):
    out = []
    # Training sets keyed by template count ("6T": the paper's 0.6M videos, 100K per
    # template), so that every scale keeps the paper's 6 : 30 : 60 ratio (the scaling
    # experiment's "3M" is another size at cpu-mini).
    for n in (6, 30, 60):
        d = f"{n}T"
        ev = (EvalSet(f"comb{n}-eval", "combinatorial", ("in-template", "out-of-template"),
                      (("templates", str(n)),), ("abnormal", "video")),)
        out.append(Cell(f"combinatorial-{n}", "combinatorial",
                        "XL" if scale.name == "paper" else scale.default_model, d, ev,
                        (("templates", str(n)),), tags=(("templates", str(n)),)))
    return out


def _composition(scale, scenarios):
    # Train on the event types alone (level a / b of the train split), test on each alone
    # (id) and composed (ood); per-event law scores per level (evals.laws composition_*).
    return [Cell(sc, sc, scale.default_model, "attr",
                 (EvalSet(f"{sc}-eval", sc, ("id", "ood"), (), ("laws", "abnormal")),),
                 tags=(("study", sc.split("_")[1]),)) for sc in scenarios]


def _ambiguity(scale, scenarios):
    # Outcome accuracy against the sub-pixel margin (evals.ambiguity): clear margins (id)
    # and log-spaced fine ones (ood), both event types.
    return [Cell("ambiguity", "ambiguity", scale.default_model, "attr",
                 (EvalSet("ambiguity-eval", "ambiguity", ("id", "ood"), (), ("laws",)),),
                 tags=(("study", "ambiguity"),))]


# The quickstart's models: one preset per basic scenario, trained on its endless stream;
# the shipped checkpoints (models/checkpoints/index.json, "quickstart": true) are these runs.
QUICKSTART_MODELS = {"uniform": ModelSpec("dit-tiny-deep2c"),
                     "collision": ModelSpec("dit-tiny-2lev"),
                     "parabola": ModelSpec("dit-tiny")}


def _quickstart(scale, scenarios):
    return [Cell(f"{sc}-tiny", sc, "B", "stream", _std_evals(sc, ("laws", "abnormal")),
                 tags=(("model", QUICKSTART_MODELS[sc].preset),), preset=QUICKSTART_MODELS[sc])
            for sc in scenarios]


EXPERIMENTS: dict[str, Experiment] = {
    "quickstart": Experiment("quickstart", "Quickstart: ID/OOD gap of the shipped tiny models",
                             _quickstart, ("uniform", "collision", "parabola"), "scaling"),
    "scaling": Experiment("scaling", "Scaling: DiT S/B/L x 30K/300K/3M (paper §3.2, Fig. 3)",
                          _scaling, ("uniform", "collision", "parabola"), "scaling",
                          steps=(("cpu-mini", 2000),)),  # 9 cells per scenario
    "interpolation": Experiment(
        "interpolation", "Interpolation: velocity gaps and held-out squares (paper §5.1)",
        _interpolation, ("uniform", "collision"), "interpolation",
        steps=(("cpu-mini", 2500),)),  # 11 cells (9 at cpu-mini)
    "memorization": Experiment("memorization", "Memorization with and without flip (§5.2)",
                               _memorization, ("uniform",), "memorization",
                               steps=(("cpu-mini", 3000),)),  # 2 cells
    "attributes": Experiment("attributes", "Pairwise attribute priority (paper §5.3)",
                             _attributes, ATTRIBUTE_PAIRS, "attributes",
                             steps=(("cpu-mini", 2500),)),  # 6 cells
    "composition": Experiment("composition", "Spatial and temporal composition (paper §5.4)",
                              _composition, ("composition_temporal", "composition_spatial"),
                              "composition", steps=(("cpu-mini", 5000),)),  # 2 cells
    "ambiguity": Experiment("ambiguity", "Visual ambiguity: sub-pixel margins (paper §5.5)",
                            _ambiguity, ("ambiguity",), "ambiguity",
                            steps=(("cpu-mini", 8000),)),  # 1 cell
    "combinatorial": Experiment("combinatorial", "Combinatorial: 6/30/60 templates (Table 2)",
                                _combinatorial, ("combinatorial",), "combinatorial", n_cond=1,
                                # the paper trains these at 256 px; scene checks need >= 64 px
                                resolution=(("paper", 256), ("cpu-mini", 64), ("micro", 64)),
                                steps=(("paper", 1_000_000),),
                                # cpu-mini at 64 px: 4x16x16 patches keep the 128 tokens of
                                # the 32-px cells (4x8x8 gave 512 tokens, 79 GFLOP and 7-16 s
                                # a step on a shared core: 4-9 h a cell, docs/results.md)
                                sets=(("cpu-mini", ("dit.patch=4,16,16",)),)),
}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; known: {sorted(SCALES)}")
    return SCALES[name]
