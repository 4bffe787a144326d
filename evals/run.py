"""``physim evaluate``: score a folder of generated videos against a truth dataset.

The only module of :mod:`evals` that touches files. Generated videos (any model's output,
conditioning frames included) come as:

- a folder of ``{id}.npy`` / ``{id}.npz`` (uint8 (T, H, W, 3), or float in [0, 1]) or
  ``{id}.mp4`` files, ids being the truth dataset's video ids;
- the paper's HDF5 layout (a ``.hdf5`` file, or a folder holding one): ``video_streams``
  groups of mp4 bytes, matched by ``id_streams`` when present, else by order;
- side-by-side mp4s (the paper's ``[GT | recon | rollout]`` panels): a frame k times as
  wide as high is split into k panels and panel ``--panel`` (default the last) is scored.

Outputs in ``--out``: ``results.json`` (top-level ``velocity_error`` and ``n_scored``, the
same per split and per ``split/level`` under ``splits`` and ``levels``, every sub-metric
with bootstrap CIs, and the parse floor), ``per_video.csv`` and ``report.md`` with plots.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

from evals import abnormal, laws, parse, scenes
from physim import world

METRICS = ("laws", "abnormal", "video", "lpips", "fvd", "attributes", "cases")
DEFAULT_METRICS = ("laws", "abnormal", "video")
VIDEO_EXT = (".npy", ".npz", ".mp4")
HDF5_EXT = (".hdf5", ".h5")
N_STRIPS = 4  # videos shown as truth-vs-generated strips in the report


class EvalInputError(ValueError):
    """Generated videos that cannot be scored as asked (the message lists them)."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Where one generated video is: a file, or entry ``index`` of HDF5 chunk ``chunk``."""

    path: Path
    kind: str  # "npy" | "npz" | "mp4" | "hdf5"
    chunk: str = ""
    index: int = 0


# --------------------------------------------------------------------------- discovery


def _hdf5_sources(path: Path, truth_ids: list[str]) -> dict[str, Source]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "video_streams" not in f:
                raise EvalInputError(f"{path}: no 'video_streams' group (not the paper's layout)")
            chunks = sorted(f["video_streams"].keys())
            entries = [(c, j) for c in chunks for j in range(len(f["video_streams"][c]))]
            if "id_streams" in f:
                ids = [
                    x.decode() if isinstance(x, bytes) else str(x)
                    for c in chunks
                    for x in f["id_streams"][c][()]
                ]
            else:
                if len(entries) != len(truth_ids):
                    raise EvalInputError(
                        f"{path} has {len(entries)} videos and no id_streams, so they are "
                        f"matched by order, but the truth has {len(truth_ids)}"
                    )
                ids = list(truth_ids)
    except OSError as e:
        raise EvalInputError(f"{path} is not a readable HDF5 file ({e})") from None
    return {i: Source(path, "hdf5", c, j) for i, (c, j) in zip(ids, entries, strict=True)}


def discover(gen, truth_ids: list[str]) -> dict[str, Source]:
    """Map video id -> :class:`Source` of everything in ``gen`` (folder or HDF5 file)."""
    gen = Path(gen)
    if gen.is_file() and gen.suffix in HDF5_EXT:
        return _hdf5_sources(gen, truth_ids)
    if not gen.is_dir():
        raise EvalInputError(f"generated videos {gen} is neither a folder nor an HDF5 file")
    out: dict[str, Source] = {}
    # Leftovers of a killed writer (".tmp-PID-*" of exports, "{id}.npy.tmp.npy" of sample)
    # are not videos: a re-run replaces them.
    files = [p for p in sorted(gen.iterdir())
             if not p.name.startswith(".") and not p.stem.endswith(".tmp")]
    for p in (p for p in files if p.suffix in HDF5_EXT):
        out.update(_hdf5_sources(p, truth_ids))
    dup = []
    for p in files:
        if p.suffix in VIDEO_EXT and p.is_file():
            if p.stem in out:
                dup.append(p.name)
            out[p.stem] = Source(p, p.suffix[1:])
    if dup:
        raise EvalInputError(f"{gen}: several files for the same id: {dup[:10]}")
    if not out:
        raise EvalInputError(f"{gen} holds no .npy, .npz, .mp4 or .hdf5 videos")
    return out


def _to_uint8(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)) or a.min() < -1e-3 or a.max() > 1 + 1e-3:
            raise EvalInputError(f"{what}: float frames must be finite and in [0, 1]")
        return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
    raise EvalInputError(f"{what}: frames must be uint8 or float in [0, 1], got {a.dtype}")


def decode_mp4_luma(data) -> np.ndarray:
    """Luma plane (T, H, W) float32 in 0-255 (BT.601 full range) of mp4 bytes or a path.

    Read as raw yuv420p so that no chroma upsampling or RGB clipping touches it; the
    codec's limited range [16, 235] is mapped to [0, 255].
    """
    import tempfile

    import imageio_ffmpeg

    path, tmp = data, None
    if not isinstance(data, str | os.PathLike):
        with tempfile.NamedTemporaryFile(suffix=".mp4", delete=False) as f:
            f.write(bytes(data))
            path = tmp = f.name
    try:
        gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="yuv420p", bits_per_pixel=12)
        w, h = next(gen)["size"]
        ys = [np.frombuffer(x, np.uint8)[: w * h].reshape(h, w) for x in gen]
    finally:
        if tmp is not None:
            os.unlink(tmp)
    y = np.stack(ys).astype(np.float32)
    return (y - 16.0) * (255.0 / 219.0)


def load_video(src: Source, panel: int = -1, with_luma: bool = False):
    """Frames (T, H, W, 3) uint8 of one source (side-by-side panels split, one kept).

    With ``with_luma``, returns ``(frames, luma)`` where luma is the codec's luma plane
    (T, H, W) for mp4 data (see :func:`decode_mp4_luma`) and None otherwise.
    """
    from physim import video

    what = f"{src.path}" + (f"[{src.chunk}][{src.index}]" if src.kind == "hdf5" else "")
    luma = None
    try:
        if src.kind == "npy":
            a = np.load(src.path, allow_pickle=False)
        elif src.kind == "npz":
            with np.load(src.path, allow_pickle=False) as z:
                keys = [k for k in ("frames", "video", "arr_0") if k in z.files] or z.files
                if not keys:
                    raise EvalInputError(f"{what}: empty npz")
                a = z[keys[0]]
        elif src.kind == "mp4":
            a = video.decode_mp4(str(src.path))
            luma = decode_mp4_luma(str(src.path)) if with_luma else None
        else:
            import h5py

            with h5py.File(src.path, "r") as f:
                a = np.asarray(f["video_streams"][src.chunk][src.index])
            if a.ndim == 1:  # mp4 bytes
                raw = a.astype(np.uint8).tobytes()
                a = video.decode_mp4(raw)
                luma = decode_mp4_luma(raw) if with_luma else None
    except EvalInputError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure is an unreadable file
        raise EvalInputError(f"{what}: unreadable ({type(e).__name__}: {e})") from None
    a = _to_uint8(a, what)
    if a.ndim != 4 or a.shape[-1] != 3:
        raise EvalInputError(f"{what}: expected (T, H, W, 3) frames, got shape {a.shape}")
    if luma is not None and luma.shape != a.shape[:3]:
        luma = None  # odd decoder output: fall back to RGB luma
    h, w = a.shape[1:3]
    if w != h and w % h == 0:
        k = w // h
        p = panel % k
        a = a[:, :, p * h : (p + 1) * h]
        luma = None if luma is None else luma[:, :, p * h : (p + 1) * h]
    a = np.ascontiguousarray(a)
    return (a, luma) if with_luma else a


def looks_lossless(frames: np.ndarray, colors: np.ndarray, background=(255, 255, 255)) -> bool:
    """Whether nearly every pixel is exactly the background or an object colour."""
    f = frames[:: max(1, len(frames) // 4)].reshape(-1, 3)
    pal = np.vstack([np.asarray(background, np.uint8)[None], np.asarray(colors, np.uint8)])
    code = f.astype(np.int32) @ np.array([65536, 256, 1])
    known = np.isin(code, pal.astype(np.int32) @ np.array([65536, 256, 1]))
    # Anti-aliased edges are not exact colours; they are a few % of pixels at most.
    return bool(known.mean() > 0.97) and _edges_are_blends(f[~known], pal)


def _edges_are_blends(px: np.ndarray, pal: np.ndarray) -> bool:
    """Non-palette pixels of a lossless render lie on background-colour segments."""
    if len(px) == 0:
        return True
    bg = pal[0].astype(float)
    d = bg - px.astype(float)
    best = np.full(len(px), np.inf)
    for c in pal[1:].astype(float):
        e = bg - c
        a = np.clip(d @ e / (e @ e), 0, 1)
        best = np.minimum(best, np.linalg.norm(d - a[:, None] * e, axis=1))
    return bool(np.mean(best < 3.0) > 0.9)


# --------------------------------------------------------------------------- evaluate


def _open_truth(truth):
    if isinstance(truth, str | os.PathLike):
        import physim.dataset

        return physim.dataset.open(truth)
    return truth  # anything with ids, index, __getitem__, frames (tests use in-memory ones)


def _scalar_items(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, bool | np.bool_):
            out[prefix + k] = bool(v)
        elif isinstance(v, int | float | np.integer | np.floating):
            out[prefix + k] = float(v) if isinstance(v, float | np.floating) else int(v)
        elif isinstance(v, str):
            out[prefix + k] = v
    return out


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
    progress: bool = False,
) -> dict:
    """Score generated videos against a truth dataset; write the report if ``out_dir``.

    Args:
      gen_dir: folder of generated videos or an HDF5 file (see the module docstring).
      truth_dir: truth dataset folder (``physim.dataset.open``) or an opened dataset.
      out_dir: report folder (created); None to only return the results.
      metrics: subset of :data:`METRICS`.
      allow_missing: score what is there instead of failing on missing or bad videos.
      train_dir: training dataset, needed by the ``cases`` metric.
      parse_preset: ``"auto"`` (exact for lossless frames, else lossy), ``"exact"``, ``"lossy"``.
      panel: which side-by-side panel is the generation (default the last).

    Returns:
      The results dict written to ``results.json``.

    Raises:
      EvalInputError (a ValueError) listing missing ids, unknown ids, bad or unreadable files.
    """
    metrics = tuple(metrics)
    bad = sorted(set(metrics) - set(METRICS))
    if bad:
        raise ValueError(f"unknown metric(s) {bad}; known: {list(METRICS)}")
    if "cases" in metrics and train_dir is None:
        raise ValueError("the 'cases' metric needs --train DIR (the training dataset)")
    if parse_preset not in ("auto", *parse.PARSE_PRESETS):
        raise ValueError(f"unknown parse preset {parse_preset!r}")
    truth = _open_truth(truth_dir)
    truth_ids = list(truth.ids)
    sources = discover(gen_dir, truth_ids)
    missing = [i for i in truth_ids if i not in sources]
    unknown = sorted(set(sources) - set(truth_ids))
    problems: list[str] = []
    if unknown:
        problems.append(f"{len(unknown)} generated ids not in the truth: {unknown[:20]}")
    if missing and not allow_missing:
        problems.append(f"{len(missing)} truth ids have no generated video: {missing[:20]}")
    if problems and not allow_missing:
        raise EvalInputError("; ".join(problems) + " (use --allow-missing to score the rest)")

    if {"attributes", "cases"} & set(metrics):
        from evals import attributes
    vm = None
    if {"video", "lpips", "fvd"} & set(metrics):
        from evals import video_metrics as vm
    rows, floor_rows, bad_files, strips = [], [], [], []
    fvd_feats: tuple[list, list] = ([], [])
    ids = [i for i in truth_ids if i in sources]
    it = ids
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(ids, unit="video", desc="evaluate")
    for vid in it:
        idx = truth.index(vid)
        rec = truth[idx]
        src = sources[vid]
        try:
            frames, luma = load_video(src, panel, with_luma=True)
        except EvalInputError as e:
            bad_files.append(str(e))
            continue
        t_true = rec.trajectory.n_frames
        if frames.shape[0] != t_true or frames.shape[1] != frames.shape[2]:
            bad_files.append(
                f"{src.path}: {frames.shape[0]} frames of {frames.shape[1]}x{frames.shape[2]}, "
                f"expected {t_true} square frames"
            )
            continue
        res = frames.shape[1]
        truth_frames = truth.frames(idx, resolution=res)
        preset = parse_preset
        if preset == "auto":
            preset = "exact" if looks_lossless(frames, rec.objects.rgb) else "lossy"
        luma = luma if preset == "lossy" else None
        tracks = parse.parse(frames, rec.objects.rgb, config=preset, luma=luma)
        row = {
            "id": vid,
            "scenario": rec.scenario,
            "split": rec.split,
            "level": rec.level,
            "source": src.kind,
            "parse": preset,
            "resolution": res,
        }
        row.update(_scalar_items(rec.params, "param_"))
        # Multi-object rigid scenes: no velocity laws (the paper drops them too, parsing
        # same-coloured objects is ambiguous); abnormality comes from evals.scenes.
        scene = rec.scenario == "combinatorial"
        if "laws" in metrics and not scene:
            row.update(_scalar_items(laws.score(tracks, rec)))
            t_floor = parse.parse(truth_frames, rec.objects.rgb, config="exact")
            fl = laws.score(t_floor, rec)
            floor = {"split": rec.split, "level": rec.level, **_scalar_items(fl)}
            row["floor_velocity_error"] = fl["velocity_error"]
            if preset != "exact":  # the floor of the parser this video went through
                t_same = parse.parse(truth_frames, rec.objects.rgb, config=preset)
                same = laws.score(t_same, rec)["velocity_error"]
                row["floor_same_parse_velocity_error"] = floor["same_parse"] = same
            floor_rows.append(floor)
        if "abnormal" in metrics:
            flags = (
                scenes.check_video(frames, rec, preset)
                if scene
                else abnormal.check(tracks, rec, preset)
            )
            row.update(_scalar_items(flags))
        if "attributes" in metrics and attributes.pair_spec(rec.scenario) is not None:
            names = attributes.candidate_colors(rec)
            rgb = np.stack([world.color_rgb(c) for c in names])
            t_c = parse.parse(frames, rgb, config=preset, luma=luma)
            row.update(_scalar_items(attributes.video_attributes(t_c, rec, names)))
        if "cases" in metrics:
            row["_attrs"] = attributes.parsed_attributes(tracks, rec)
            row["_true_attrs"] = attributes.truth_attributes(rec)
        if vm is not None:
            if "video" in metrics:
                row.update(_scalar_items(vm.video_scores(truth_frames, frames, rec.n_cond)))
            if "lpips" in metrics:
                row["lpips"] = vm.lpips(truth_frames, frames)
            if "fvd" in metrics:
                fvd_feats[0].append(vm.i3d_features(truth_frames))
                fvd_feats[1].append(vm.i3d_features(frames))
        rows.append(row)
        if len(strips) < N_STRIPS and (not strips or strips[-1][0].split("/")[0] != rec.level):
            strips.append((f"{rec.level}/{vid}", truth_frames, frames))
    if bad_files and not allow_missing:
        raise EvalInputError(
            f"{len(bad_files)} generated videos cannot be scored: "
            + "; ".join(bad_files[:20])
            + " (use --allow-missing to score the rest)"
        )
    if not rows:
        raise EvalInputError("no generated video could be scored")

    agg_metrics = None
    results = laws.aggregate(rows, agg_metrics)
    results["n_missing"] = len(missing)
    results["n_unreadable"] = len(bad_files)
    results["n_unknown_ids"] = len(unknown)
    results["missing_ids"] = missing[:100]
    results["unreadable"] = bad_files[:100]
    if floor_rows:
        results["parse_floor"] = laws.aggregate(floor_rows, ["velocity_error"])
        same = [dict(r, velocity_error=r["same_parse"]) for r in floor_rows if "same_parse" in r]
        if same:  # lossy-parsed videos: the truth parsed the same way
            results["parse_floor_same_parser"] = laws.aggregate(same, ["velocity_error"])
    if "abnormal" in metrics:
        results["abnormal_rate"] = results.get("abnormal", float("nan"))
    if "attributes" in metrics:
        results["attribute_priority"] = attributes.priority(rows)
    if "cases" in metrics:
        from evals import cases

        train = _open_truth(train_dir)
        results["cases"] = cases.case_scores(rows, cases.train_attributes(train))
    if "fvd" in metrics and vm is not None:
        results["fvd"] = vm.fvd(np.concatenate(fvd_feats[0]), np.concatenate(fvd_feats[1]))
    results["config"] = {
        "gen": str(gen_dir),
        "truth": str(truth_dir),
        "metrics": list(metrics),
        "allow_missing": allow_missing,
        "parse_preset": parse_preset,
        "panel": panel,
    }
    for r in rows:
        r.pop("_attrs", None)
        r.pop("_true_attrs", None)
    results = _json_clean(results)
    if out_dir is not None:
        from evals import report

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "results.json", results)
        write_csv(out / "per_video.csv", rows)
        report.write_report(out, results, rows, strips)
    return results


def _json_clean(x):
    if isinstance(x, dict):
        return {str(k): _json_clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=False))
    os.replace(tmp, path)


def write_csv(path: Path, rows: list[dict]) -> None:
    """One row per scored video, columns the union of the rows' keys (first-seen order)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols and not k.startswith("_")]
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (int(v) if isinstance(v, bool) else v) for k, v in r.items()})
    os.replace(tmp, path)


# --------------------------------------------------------------------------- CLI


def _metric_list(text: str) -> tuple[str, ...]:
    return tuple(m for part in text.split(",") for m in [part.strip()] if m)


def add_parser(subparsers) -> None:
    """Register ``physim evaluate`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "evaluate",
        help="score generated videos against a truth dataset",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("gen", help="folder of {id}.npy/.npz/.mp4, or a paper-layout HDF5 file")
    p.add_argument("--truth", required=True, help="truth (evaluation) dataset folder")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument(
        "--metrics",
        nargs="+",
        default=list(DEFAULT_METRICS),
        help=f"any of {', '.join(METRICS)} (space or comma separated)",
    )
    p.add_argument("--allow-missing", action="store_true", help="score what can be scored")
    p.add_argument("--train", default=None, help="training dataset (for the cases metric)")
    p.add_argument("--parse", default="auto", choices=["auto", *parse.PARSE_PRESETS])
    p.add_argument("--panel", type=int, default=-1, help="side-by-side panel to score")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    """Run ``physim evaluate`` from parsed args; returns the exit code."""
    metrics = tuple(m for item in args.metrics for m in _metric_list(item))
    r = evaluate(
        args.gen,
        args.truth,
        args.out,
        metrics=metrics,
        allow_missing=args.allow_missing,
        train_dir=args.train,
        parse_preset=args.parse,
        panel=args.panel,
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
    if r.get("n_missing") or r.get("n_unreadable"):
        msg += f"; skipped {r['n_missing']} missing and {r['n_unreadable']} unreadable"
    print(msg + f"; report in {args.out}")
    return 0
