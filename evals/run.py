"""``physim evaluate``: score a folder of generated videos against a truth dataset.

The only module of :mod:`evals` that touches files: it finds and reads the generated
videos (:mod:`evals.inputs`), scores them with the one evaluation core that the library
uses too (:func:`evals.core.evaluate_videos`; :func:`evals.evaluate_arrays` for arrays in
memory) and writes, in ``--out``: ``results.json`` (top-level ``velocity_error`` and
``n_scored``, the same per split and per ``split/level`` under ``splits`` and ``levels``,
every sub-metric with bootstrap CIs, the parse floor, the conditioning-frame check; every
field in docs/evaluate.md), ``per_video.csv`` and ``report.md`` with plots.

Generated videos come as a folder of ``{id}.npy`` / ``{id}.npz`` / ``{id}.mp4`` (or the
paper's ``{chunk:05d}-{local:05d}.mp4``), or a paper-layout HDF5 file. Side-by-side panels
need ``--layout side-by-side``; files holding fewer frames need ``--frames rollout`` or
``--frames paper31``. Default metrics: laws, abnormal, video.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from evals import core, parse
from evals import metrics as mx
from evals.core import N_STRIPS, evaluate_arrays, json_clean  # noqa: F401  (re-exported)
from evals.inputs import (  # noqa: F401  (re-exported: older imports of evals.run)
    HDF5_EXT,
    VIDEO_EXT,
    EvalInputError,
    LazyVideos,
    Source,
    Video,
    decode_mp4_luma,
    discover,
    looks_lossless,
    read_video,
)
from evals.tables import write_csv  # noqa: F401  (re-exported)

METRICS = tuple(mx.REGISTRY)
DEFAULT_METRICS = mx.DEFAULT_METRICS
_json_clean = json_clean  # older name (evals.caselike imports it)


def load_video(src: Source, panel: int = -1, with_luma: bool = False):
    """Frames (T, H, W, 3) uint8 of one source; a frame k squares wide is split into k
    panels and ``panel`` kept (older API; :func:`evals.inputs.read_video` does no split).

    With ``with_luma``, returns ``(frames, luma)`` (luma None unless mp4 data).
    """
    from evals import inputs

    v = read_video(src, with_luma=with_luma)
    h, w = v.frames.shape[1:3]
    if w != h and w % h == 0:
        v = inputs.select_panel(v, "side-by-side", panel, src.what)
    return (v.frames, v.luma) if with_luma else v.frames


def evaluate(
    gen_dir,
    truth_dir,
    out_dir=None,
    metrics=DEFAULT_METRICS,
    allow_missing: bool = False,
    train_dir=None,
    *,
    parse_preset: str = "auto",
    panel: int = -1,
    layout: str = "video",
    frames: str = "full",
    protocol: str = "ours",
    split: str | None = None,
    array_layout: str = "THWC",
    value_range=(0.0, 1.0),
    progress: bool = False,
) -> dict:
    """Score generated videos against a truth dataset; write the report if ``out_dir``.

    Args:
      gen_dir: folder of generated videos or an HDF5 file (see the module docstring).
      truth_dir: truth dataset folder (``physim.dataset.open``) or an opened dataset.
      out_dir: report folder (created); None to only return the results.
      metrics: names of :data:`evals.metrics.REGISTRY` (default laws, abnormal, video).
      allow_missing: score what is there instead of failing on missing or bad videos.
      train_dir: training dataset, needed by the ``cases`` metric.
      parse_preset: ``"auto"`` (exact for lossless frames, else lossy), ``"exact"``, ``"lossy"``.
      panel: which side-by-side panel is the generation (default the last).
      layout, frames, protocol, split: see :func:`evals.core.evaluate_arrays`.
      array_layout, value_range: how npy/npz arrays are stored (``"TCHW"``, ``(-1, 1)``).

    Returns:
      The results dict written to ``results.json``.

    Raises:
      EvalInputError (a ValueError) naming missing ids, unknown ids, bad or unreadable
      files; nothing is written then.
    """
    # Options first: a bad option must not cost a folder scan.
    core.check_options(tuple(metrics), protocol, parse_preset, layout, frames, train_dir)
    truth = core.open_truth(truth_dir, split)
    sources = discover(gen_dir, list(truth.ids))
    ev = core.evaluate_videos(
        LazyVideos(sources, array_layout, value_range), truth, metrics=metrics,
        protocol=protocol,
        parse_preset=parse_preset, layout=layout, frames=frames, panel=panel,
        allow_missing=allow_missing, train=train_dir, label=str(gen_dir), progress=progress,
    )  # fmt: skip
    ev.results["config"]["truth"] = str(truth_dir)
    ev.results["config"]["split"] = split
    if out_dir is not None:
        write_outputs(out_dir, ev)
    return ev.results


def write_outputs(out_dir, ev) -> None:
    """Write ``per_video.csv``, ``report.md`` (+ plots) and, last, ``results.json`` of an
    :class:`evals.core.Evaluation` into ``out_dir`` (created), as one unit.

    Everything is first written into a staging folder inside ``out_dir``; only when it is
    complete are the files moved into place: the older ``results.json`` (the mark of a
    complete output) goes first, the older output's other files that this one does not
    make next, and the new ``results.json`` last. Killed while staging, the folder keeps
    the older output whole; killed while moving, it holds no ``results.json``.
    """
    import shutil

    from evals import report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".staging-*"):  # a killed evaluation's
        shutil.rmtree(stale, ignore_errors=True)
    stage = out / f".staging-{os.getpid()}"
    stage.mkdir()
    try:
        write_csv(stage / "per_video.csv", ev.rows)
        report.write_report(stage, ev.results, ev.rows, ev.strips)
        _write_json(stage / "results.json", ev.results)
        _publish(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# Every file an evaluation can write (report.py's plots are made only when they have data).
_OUTPUT_FILES = ("per_video.csv", "report.md", "error_by_level.png", "speed.png",
                 "abnormal.png", "strips.png", "results.json")


def _publish(stage: Path, out: Path) -> None:
    """Move the files of complete output ``stage`` into ``out``, ``results.json`` last."""
    (out / "results.json").unlink(missing_ok=True)
    new = {p.name for p in stage.iterdir()}
    for name in _OUTPUT_FILES:
        if name not in new:
            (out / name).unlink(missing_ok=True)
    for p in sorted(stage.iterdir()):
        if p.name != "results.json":
            os.replace(p, out / p.name)
    os.replace(stage / "results.json", out / "results.json")


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=False))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- CLI


def _metric_list(text: str) -> tuple[str, ...]:
    return tuple(m for part in text.split(",") for m in [part.strip()] if m)


def add_parser(subparsers) -> None:
    """Register ``physim evaluate`` on an argparse subparsers object."""
    from evals import inputs

    p = subparsers.add_parser(
        "evaluate",
        help="score generated videos against a truth dataset",
        description=__doc__.split("\n\n")[0] + " Default metrics: "
        + ", ".join(DEFAULT_METRICS) + " (docs/evaluate.md).",
    )
    p.add_argument("gen", help="folder of {id}.npy/.npz/.mp4 (or the paper's "
                   "{chunk:05d}-{local:05d}.mp4), or a paper-layout HDF5 file")  # fmt: skip
    p.add_argument("--truth", required=True, help="truth (evaluation) dataset folder")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument(
        "--metrics",
        nargs="+",
        default=list(DEFAULT_METRICS),
        help=f"any of {', '.join(METRICS)} (space or comma separated); default: "
        f"{' '.join(DEFAULT_METRICS)}. laws + abnormal alone are the fast set",
    )
    p.add_argument("--protocol", default="ours", choices=list(core.PROTOCOLS),
                   help="paper: add the paper's evaluate.py metrics (paper_protocol in "
                   "results.json) beside ours")  # fmt: skip
    p.add_argument("--layout", default="video", choices=list(inputs.LAYOUTS),
                   help="side-by-side: frames are k square panels, --panel is scored")
    p.add_argument("--frames", default="full", choices=list(inputs.FRAME_MODES),
                   help="full: all T truth frames; rollout: only the T - n_cond generated "
                   "ones; paper31: the first T - 1 (the paper's sample files)")  # fmt: skip
    p.add_argument("--split", default=None, help="score one split of the truth only "
                   "(needed for paper-named files when the truth has several)")  # fmt: skip
    p.add_argument("--array-layout", default="THWC", choices=list(inputs.ARRAY_LAYOUTS),
                   help="axis order of npy/npz arrays (TCHW: PyTorch frames)")
    p.add_argument("--value-range", default="0,1", metavar="LOW,HIGH",
                   help="range of float npy/npz frames (default 0,1; e.g. -1,1)")
    p.add_argument("--allow-missing", action="store_true", help="score what can be scored")
    p.add_argument("--train", default=None, help="training dataset (for the cases metric)")
    p.add_argument("--parse", default="auto", choices=["auto", *parse.PARSE_PRESETS])
    p.add_argument("--panel", type=int, default=-1,
                   help="side-by-side panel to score (default the last)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    """Run ``physim evaluate`` from parsed args; returns the exit code."""
    import sys

    from evals import checks

    metrics = tuple(m for item in args.metrics for m in _metric_list(item))
    try:
        lo, hi = (float(x) for x in args.value_range.split(","))
    except ValueError:
        raise ValueError(f"--value-range expects LOW,HIGH, got {args.value_range!r}") from None
    r = evaluate(
        args.gen,
        args.truth,
        args.out,
        metrics=metrics,
        allow_missing=args.allow_missing,
        train_dir=args.train,
        parse_preset=args.parse,
        panel=args.panel,
        layout=args.layout,
        frames=args.frames,
        protocol=args.protocol,
        split=args.split,
        array_layout=args.array_layout,
        value_range=(lo, hi),
        progress=not args.no_progress,
    )
    ve = r.get("velocity_error")
    msg = f"scored {r['n_scored']} videos"
    if ve is not None:
        msg += f": velocity error {ve:.4f}"
        floor = r.get("parse_floor", {}).get("velocity_error")
        if floor is not None:
            msg += f" (parse floor {floor:.4f}"
            same = r.get("parse_floor_same_parser", {}).get("velocity_error")
            msg += ")" if same is None else f"; {same:.4f} with the lossy parse they needed)"
    pp = r.get("paper_protocol")
    if pp and pp.get("velocity_error") is not None:
        msg += (f"; paper protocol {pp['velocity_error']:.4f} on {pp['n_scored']} videos "
                f"(its floor {pp['floor'].get('velocity_error') or float('nan'):.4f} at "
                f"{pp['resolution']} px, {pp['n_frames']} frames)")  # fmt: skip
    if r.get("n_missing") or r.get("n_unreadable"):
        msg += f"; skipped {r['n_missing']} missing and {r['n_unreadable']} unreadable"
    print(msg + f"; report in {args.out}")
    warn = checks.describe(r.get("conditioning", {}))
    if warn:
        print(f"physim: warning: {warn} (per video: cond_check in per_video.csv)",
              file=sys.stderr)
    return 0
