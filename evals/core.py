"""The one evaluation core: generated videos in memory + a truth dataset -> results.

``physim evaluate`` (:func:`evals.run.evaluate`) reads files into a lazy mapping and calls
:func:`evaluate_videos`; :func:`evaluate_arrays` is the same call for arrays a user holds
in memory, so both give the same ``results.json`` for the same frames. Per video:

1. the frames are validated (:func:`evals.inputs.as_frames`: uint8 or float, any
   documented axis order), the scored panel is taken (``layout``) and the frame range is
   checked (``frames``: ``full`` = all T truth frames, ``rollout`` = only the T - n_cond
   generated ones, the truth's conditioning frames are put in front; ``paper31`` = the
   first T - 1 frames, as the paper's main evaluations write them, scored against the
   truth's first T - 1);
2. the parser is chosen (``auto``: exact for lossless frames, else lossy);
3. the conditioning frames are compared with the truth's (:mod:`evals.checks`);
4. every requested metric of :data:`evals.metrics.REGISTRY` scores it.

Then rows are aggregated (:func:`evals.laws.aggregate`) and each metric adds its summary.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from evals import checks, inputs, laws
from evals import metrics as mx
from evals.inputs import EvalInputError, Video

PROTOCOLS = ("ours", "paper")
N_STRIPS = 4  # videos shown as truth-vs-generated strips in the report
LABELS = {
    "velocity_error": "ours: mean |v̂ - v| over valid (frame, object) pairs, frames k >= n_cond "
                      "with the truth fully in view at k-1 and k, membership parser, exact "
                      "truth states (per-frame; the paper's metric definition)",
    "paper_protocol": "paper: the released evaluate.py (threshold parser, error of the mean "
                      "x velocity, per-ball collision averaging, m = r^2, radius filters); "
                      "compare with the paper's numbers only at the same resolution and "
                      "frames, against paper_protocol.floor",
}  # fmt: skip


@dataclasses.dataclass
class Evaluation:
    """What one evaluation produced: ``results`` (the ``results.json`` dict), ``rows``
    (per-video dicts, ``per_video.csv``) and ``strips`` ((label, truth, generated) frames
    of a few videos for the report)."""

    results: dict
    rows: list[dict]
    strips: list


def open_truth(truth, split: str | None = None):
    """A truth dataset from a folder path (one split if ``split``), or the object itself."""
    if isinstance(truth, str | os.PathLike):
        import physim.dataset

        return physim.dataset.open(truth, split=split)
    if split is not None:
        raise ValueError("split= needs the truth as a dataset folder path")
    return truth  # anything with ids, index, __getitem__, frames (tests use in-memory ones)


def truncate_record(rec, n: int):
    """The record's first ``n`` frames (trajectory arrays and events before frame n)."""
    tr = rec.trajectory
    if n == tr.n_frames:
        return rec
    keep = np.asarray(tr.event_frames) < n
    tr2 = dataclasses.replace(
        tr, times=tr.times[:n], positions=tr.positions[:n], velocities=tr.velocities[:n],
        angles=tr.angles[:n], angular_velocities=tr.angular_velocities[:n],
        event_times=tr.event_times[keep], event_frames=tr.event_frames[keep],
        event_pairs=tr.event_pairs[keep],
    )  # fmt: skip
    return dataclasses.replace(rec, trajectory=tr2)


def check_options(metrics, protocol, parse_preset, layout, frames, train) -> tuple[str, ...]:
    """Validated metric names (``protocol="paper"`` adds ``paper``); ValueError otherwise."""
    from evals import parse

    metrics = tuple(dict.fromkeys(metrics))
    bad = sorted(set(metrics) - set(mx.REGISTRY))
    if bad:
        raise ValueError(f"unknown metric(s) {bad}; known: {list(mx.REGISTRY)}")
    if not metrics:
        raise ValueError("no metric asked for")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {list(PROTOCOLS)}")
    if protocol == "paper" and "paper" not in metrics:
        metrics += ("paper",)
    if "cases" in metrics and train is None:
        raise ValueError("the 'cases' metric needs --train DIR (the training dataset)")
    if parse_preset not in ("auto", *parse.PARSE_PRESETS):
        raise ValueError(f"unknown parse preset {parse_preset!r}")
    if layout not in inputs.LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {list(inputs.LAYOUTS)}")
    if frames not in inputs.FRAME_MODES:
        raise ValueError(f"unknown frames mode {frames!r}; known: {list(inputs.FRAME_MODES)}")
    return metrics


def _prepare(video: Video, rec, truth, idx, *, layout, panel, frames, what):
    """(record, frames, luma, truth frames) aligned for scoring, or EvalInputError."""
    v = inputs.select_panel(video, layout, panel, what)
    t_true, n_cond = rec.trajectory.n_frames, int(rec.n_cond)
    want = inputs.expected_frames(frames, t_true, n_cond)
    t, res = v.frames.shape[0], v.frames.shape[1]
    if t != want:
        raise EvalInputError(
            f"{what}: {t} frames of {res}x{v.frames.shape[2]}, expected {want} "
            f"(--frames {frames}: truth has {t_true} frames, {n_cond} conditioning)"
            + inputs.frames_hint(t, t_true, n_cond)
        )
    if res < 8:
        raise EvalInputError(f"{what}: frames of {res}x{res} px are too small to parse")
    truth_frames = truth.frames(idx, resolution=res)
    f, luma = v.frames, v.luma
    if frames == "rollout":
        f = np.concatenate([truth_frames[:n_cond], f])
        if luma is not None:
            luma = np.concatenate([inputs.rgb_luma(truth_frames[:n_cond]), luma])
    elif frames == "paper31":
        rec = truncate_record(rec, want)
        truth_frames = truth_frames[:want]
    return rec, np.ascontiguousarray(f), luma, truth_frames


def evaluate_videos(
    videos,
    truth,
    *,
    metrics=mx.DEFAULT_METRICS,
    protocol: str = "ours",
    parse_preset: str = "auto",
    layout: str = "video",
    frames: str = "full",
    panel: int = -1,
    allow_missing: bool = False,
    train=None,
    split: str | None = None,
    array_layout: str = "THWC",
    value_range=(0.0, 1.0),
    label: str = "<arrays>",
    progress: bool = False,
) -> Evaluation:
    """Score ``videos`` against ``truth``; the arguments are :func:`evaluate_arrays`'s."""
    metrics = check_options(metrics, protocol, parse_preset, layout, frames, train)
    if layout == "video" and panel != -1:
        raise ValueError("--panel needs --layout side-by-side")
    if not (hasattr(videos, "keys") and hasattr(videos, "__getitem__")):
        raise ValueError(f"videos must be a mapping id -> frames, got {type(videos).__name__}")
    truth_ds = open_truth(truth, split)
    truth_ids = list(truth_ds.ids)
    names = list(videos.keys())
    to_id = {n: n for n in names}
    to_id.update(inputs.paper_name_ids(names, truth_ids, len(getattr(truth_ds, "splits", [0]))))
    by_id: dict[str, str] = {}
    dup = []
    for n in names:
        if to_id[n] in by_id:
            dup.append(f"{by_id[to_id[n]]} and {n}")
        by_id[to_id[n]] = n
    if dup:
        raise EvalInputError(f"several videos for the same id: {dup[:10]}")
    missing = [i for i in truth_ids if i not in by_id]
    unknown = sorted(set(by_id) - set(truth_ids))
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} generated ids not in the truth: {unknown[:20]}")
    if missing:
        problems.append(f"{len(missing)} truth ids have no generated video: {missing[:20]}")
    if problems and not allow_missing:
        raise EvalInputError("; ".join(problems) + " (use --allow-missing to score the rest)")

    opts = mx.Options(metrics=metrics, parse_preset=parse_preset, train=train)
    units = [mx.REGISTRY[m] for m in metrics]
    rows, bad, strips = [], [], []
    ids = [i for i in truth_ids if i in by_id]
    it = ids
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(ids, unit="video", desc="evaluate")
    describe = getattr(videos, "describe", lambda n: n)
    kind = getattr(videos, "kind", None)
    for vid in it:
        name = by_id[vid]
        what = describe(name)
        idx = truth_ds.index(vid)
        rec = truth_ds[idx]
        try:
            video = inputs.as_video(videos[name], what, array_layout, value_range)
            rec, f, luma, truth_frames = _prepare(video, rec, truth_ds, idx, layout=layout,
                                                  panel=panel, frames=frames, what=what)
        except EvalInputError as e:
            bad.append(str(e))
            continue
        preset = inputs.parse_preset(f, rec.objects.rgb, parse_preset)
        ctx = mx.VideoContext(vid, rec, f, truth_frames, luma, preset, opts)
        row = {"id": vid, "scenario": rec.scenario, "split": rec.split, "level": rec.level,
               "source": kind(name) if kind else video.kind, "parse": preset,
               "resolution": f.shape[1], "n_frames": f.shape[0]}  # fmt: skip
        if name != vid:
            row["file"] = name
        row.update(mx.scalars(rec.params, "param_"))
        for m in units:
            row.update(m.video(ctx))
        if frames == "rollout":
            row.update(cond_check=checks.NOT_CHECKED, cond_mse=float("nan"))
        else:
            row.update(checks.conditioning_check(f, truth_frames, rec.n_cond))
        rows.append(row)
        if len(strips) < N_STRIPS and (not strips or strips[-1][0].split("/")[0] != rec.level):
            strips.append((f"{rec.level}/{vid}", truth_frames, f))
    if bad and not allow_missing:
        raise EvalInputError(f"{len(bad)} generated videos cannot be scored: "
                             + "; ".join(bad[:20]) + " (use --allow-missing to score the rest)")
    if not rows:
        why = [f"{len(ids)} matched the truth's ids"]
        if missing:
            why.append(f"{len(missing)} truth ids have no video (e.g. {missing[:3]})")
        if unknown:
            why.append(f"{len(unknown)} videos have ids not in the truth (e.g. {unknown[:3]})")
        if bad:
            why.append(f"{len(bad)} could not be read or aligned: " + "; ".join(bad[:5]))
        raise EvalInputError("no generated video could be scored: " + "; ".join(why))

    results = laws.aggregate(rows)
    results["n_missing"] = len(missing)
    results["n_unreadable"] = len(bad)
    results["n_unknown_ids"] = len(unknown)
    results["missing_ids"] = missing[:100]
    results["unreadable"] = bad[:100]
    for m in units:
        results.update(m.summary(rows, opts))
    results["conditioning"] = checks.summarize_conditioning(rows)
    results["protocol"] = protocol
    results["labels"] = {k: v for k, v in LABELS.items()
                         if k != "paper_protocol" or "paper" in metrics}  # fmt: skip
    results["config"] = {
        "gen": str(label), "truth": str(truth), "metrics": list(metrics),
        "allow_missing": allow_missing, "parse_preset": parse_preset, "panel": panel,
        "layout": layout, "frames": frames, "protocol": protocol, "split": split,
    }  # fmt: skip
    for r in rows:
        for k in [k for k in r if k.startswith("_")]:
            del r[k]
    return Evaluation(json_clean(results), rows, strips)


def evaluate_arrays(videos, truth, **kwargs) -> dict:
    """Score generated videos held in memory; returns what ``physim evaluate`` writes.

    Args:
      videos: mapping video id -> frames: an array (uint8 0-255, or float in
        ``value_range``; axes ``array_layout``: ``"THWC"`` (default), ``"TCHW"`` or
        ``"CTHW"``; RGB; row 0 at the top, world y up) or an :class:`evals.inputs.Video`
        (what :func:`evals.inputs.read_video` returns for a file, with the mp4 luma plane).
        Paper names ``{chunk:05d}-{local:05d}`` are mapped through the truth split's HDF5
        export order. Frames: T truth frames (``frames="full"``, the first ``n_cond`` = 3
        being the conditioning frames), T - n_cond (``"rollout"``) or T - 1 (``"paper31"``).
      truth: truth dataset folder (or an opened :class:`physim.dataset.Dataset`).
      metrics: names from :data:`evals.metrics.REGISTRY` (default
        :data:`evals.metrics.DEFAULT_METRICS`: laws, abnormal, video).
      protocol: ``"ours"``, or ``"paper"`` to add the paper's metrics (``paper_protocol``).
      parse_preset: ``"auto"`` (exact for lossless frames, else lossy), ``"exact"``, ``"lossy"``.
      layout: ``"video"`` (square frames) or ``"side-by-side"`` (k square panels; ``panel``
        is scored, default the last, e.g. the paper's [GT | recon | rollout]).
      frames: ``"full"``, ``"rollout"`` or ``"paper31"`` (see above).
      allow_missing: score what can be scored instead of failing on missing or bad videos.
      train: training dataset (the ``cases`` metric). split: score one split of the truth.
      label: what ``config.gen`` records (``physim evaluate`` puts the folder there).

    Returns:
      The ``results.json`` dict (every field in docs/evaluate.md).

    Raises:
      EvalInputError (a ValueError) naming missing ids, unknown ids, bad frames.
    """
    return evaluate_videos(videos, truth, **kwargs).results


def json_clean(x):
    """JSON-ready copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(x, dict):
        return {str(k): json_clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
