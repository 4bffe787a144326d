"""Case-likeness: is a generation closer to its retrieved training case than to the truth?

The paper's reading of its models (§5) is that they *retrieve* the nearest training case
instead of applying the law. :mod:`models.retrieval` makes that hypothesis a model of its
own: for each evaluation video it finds the training video whose conditioning frames are
nearest in pixels (``knn.json``: the case's training index and whether it was mirrored)
and continues it. This module asks, for every video a learned model generated, whether
the model did the same thing: is its rollout closer to the retrieved case's continuation
than to the true one?

Two distances, each over the generated frames only (frames ``n_cond`` and later):

- **pixels**: root-mean-square difference of uint8 RGB values at the model's resolution,
  ``d_px_case = rms(gen - case)``, ``d_px_truth = rms(gen - truth)``.
- **attributes**: the parsed attribute vector of the generation
  (:func:`evals.attributes.parsed_attributes`: per object median radius and mean velocity
  over generated frames in view, world units and world units/s) against the exact vectors
  of the truth and of the case (:func:`evals.attributes.truth_attributes` of the training
  record, mirrored when the case was); each dimension is divided by its spread over the
  evaluation set's truths, and a parsed shape that differs counts 1 per object. Case
  objects are matched to the truth's by position at the last conditioning frame.

``closer_to_case_px`` / ``closer_to_case_attr`` are 1 when the case is strictly nearer, 0
when the truth is nearer or the two are tied, and NaN ("undecided") when the case's own
continuation equals the truth's in that space (nothing to tell apart), the object is not
parsed, or (attributes only) the case holds another number of objects than the truth, e.g.
a one-ball bounce retrieved for a two-ball collision. A model that applies the law sits at
0; one that copies cases at 1.

CLI: ``python -m evals.caselike GEN --case KNN_GEN --truth EVALDIR --out OUT`` writes
``OUT/caselike.json`` (overall, per split and per ``split/level``: mean, 95% CI, count)
and ``OUT/per_video.csv``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np

METRICS = ("closer_to_case_px", "closer_to_case_attr", "d_px_case", "d_px_truth",
           "d_attr_case", "d_attr_truth")


def rms(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square difference of two uint8 videos of one shape, in uint8 units."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(np.sqrt(np.mean(d * d))) if d.size else float("nan")


def _verdict(d_case: float, d_truth: float, d_between: float, tol: float = 0.0) -> float:
    if not (np.isfinite(d_case) and np.isfinite(d_truth)) or d_between <= tol:
        return float("nan")
    return float(d_case < d_truth)


def match_objects(truth_pos: np.ndarray, case_pos: np.ndarray) -> np.ndarray:
    """Permutation ``p`` with case object ``p[i]`` playing truth object ``i``.

    Args:
      truth_pos, case_pos: (N, 2) positions (world units) at the last conditioning frame.
    Returns the permutation of least total distance (exhaustive for N <= 6, else greedy).
    """
    n = len(truth_pos)
    if len(case_pos) != n:
        raise ValueError(f"the case has {len(case_pos)} objects, the truth {n}")
    d = np.linalg.norm(truth_pos[:, None] - case_pos[None], axis=-1)
    if n <= 6:
        best = min(itertools.permutations(range(n)), key=lambda p: d[range(n), p].sum())
        return np.asarray(best, dtype=np.int64)
    p, free = np.empty(n, np.int64), set(range(n))
    for i in np.argsort(d.min(axis=1)):
        j = min(free, key=lambda k: d[i, k])
        p[i] = j
        free.remove(j)
    return p


def _vector(attrs: dict, perm: np.ndarray | None = None) -> np.ndarray:
    r, v = np.asarray(attrs["radius"], np.float64), np.asarray(attrs["velocity"], np.float64)
    if perm is not None:
        r, v = r[perm], v[perm]
    return np.concatenate([r.ravel(), v.ravel()])


def _shapes(attrs: dict, perm: np.ndarray | None = None) -> tuple:
    s = tuple(attrs["shape"])
    return tuple(s[j] for j in perm) if perm is not None else s


def attr_distance(gen: dict, other: dict, scale: np.ndarray, perm=None) -> float:
    """Scaled distance of two attribute vectors; each differing parsed shape adds 1."""
    g, o = _vector(gen), _vector(other, perm)
    if not np.all(np.isfinite(g)):
        return float("nan")
    d2 = float(np.sum(((g - o) / scale) ** 2))
    d2 += sum(a != b for a, b in zip(_shapes(gen), _shapes(other, perm), strict=True) if a)
    return float(np.sqrt(d2))


def video_caselike(gen: np.ndarray, truth: np.ndarray, case: np.ndarray, n_cond: int,
                   gen_attrs: dict | None, truth_attrs: dict, case_attrs: dict,
                   perm: np.ndarray, scale: np.ndarray) -> dict:
    """Case-likeness of one generation.

    Args:
      gen, truth, case: uint8 (T, R, R, 3) videos (the case: the knn rollout, i.e. the
        evaluation video's conditioning frames then the case's continuation).
      n_cond: conditioning frames (not compared).
      gen_attrs: parsed attributes of ``gen`` (None: not parsed); truth_attrs, case_attrs:
        exact ones; perm: case object for each truth object (:func:`match_objects`; None
        when the case has another number of objects: no attribute verdict);
        scale: (D,) spread of each attribute dimension.
    Returns the per-video scores named in :data:`METRICS`.
    """
    if not (gen.shape == truth.shape == case.shape):
        raise ValueError(f"videos differ in shape: gen {gen.shape}, truth {truth.shape}, "
                         f"case {case.shape}")
    g, t, c = gen[n_cond:], truth[n_cond:], case[n_cond:]
    px_case, px_truth, px_between = rms(g, c), rms(g, t), rms(c, t)
    a_case = a_truth = a_between = float("nan")
    if perm is not None:  # None: the case has another number of objects
        a_between = attr_distance(truth_attrs, case_attrs, scale, perm)
        if gen_attrs is not None:
            a_case = attr_distance(gen_attrs, case_attrs, scale, perm)
            a_truth = attr_distance(gen_attrs, truth_attrs, scale)
    return {
        "closer_to_case_px": _verdict(px_case, px_truth, px_between),
        "closer_to_case_attr": _verdict(a_case, a_truth, a_between, tol=1e-9),
        "d_px_case": px_case, "d_px_truth": px_truth, "d_px_case_truth": px_between,
        "d_attr_case": a_case, "d_attr_truth": a_truth, "d_attr_case_truth": a_between,
    }


def _attr_scales(vectors: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Spread of each attribute dimension over the truths, per vector length (videos with
    N objects have 3N dimensions; a set may mix counts, e.g. composition's levels)."""
    out = {}
    for n in sorted({len(v) for v in vectors}):
        sd = np.std(np.stack([v for v in vectors if len(v) == n]), axis=0)
        out[n] = np.where(sd > 1e-9, sd, 1.0)
    return out


def score(gen_dir, case_dir, truth_dir, parse_preset: str = "auto") -> tuple[list, dict]:
    """Case-likeness of every generated video that has a retrieved case.

    Args:
      gen_dir: the model's rollouts (``{id}.npy``, uint8 (T, R, R, 3), as ``physim sample``
        writes them).
      case_dir: a ``python -m models.baselines knn`` output for the same evaluation set
        (its ``{id}.npy`` and ``knn.json``; the training set it names must exist).
      truth_dir: the evaluation dataset.
      parse_preset: ``"auto"`` (exact for lossless frames, else lossy), ``"exact"``,
        ``"lossy"``, as ``physim evaluate`` chooses.
    Returns (per-video rows, summary with ``splits`` and ``levels``).
    Raises ValueError naming the problem (no knn.json, missing videos, shape mismatch).
    """
    from evals import attributes, inputs, parse
    from evals.laws import aggregate
    from physim import dataset

    gen_dir, case_dir = Path(gen_dir), Path(case_dir)
    meta_path = case_dir / "knn.json"
    if not meta_path.is_file():
        raise ValueError(f"{case_dir} is not a knn output (no knn.json)")
    meta = json.loads(meta_path.read_text())
    truth = dataset.open(truth_dir)
    train = dataset.open(meta["train"], split="train")
    ids = [i for i in truth.ids if (gen_dir / f"{i}.npy").is_file()]
    if not ids:
        raise ValueError(f"{gen_dir}: no generated {{id}}.npy of {truth_dir}")
    missing = [i for i in ids if i not in meta["cases"] or not (case_dir / f"{i}.npy").is_file()]
    if missing:
        raise ValueError(f"{case_dir}: no retrieved case for {len(missing)} generated videos, "
                         f"e.g. {missing[:5]}")
    items = []
    for vid in ids:
        rec = truth[truth.index(vid)]
        cinfo = meta["cases"][vid]
        crec = train[int(cinfo["train_index"])]
        if cinfo["mirrored"]:
            crec = crec.flip_horizontal()
        items.append((vid, rec, crec))
    t_attrs = [attributes.truth_attributes(r) for _, r, _ in items]
    c_attrs = [attributes.truth_attributes(c) for _, _, c in items]
    t_vectors = [_vector(a) for a in t_attrs]
    scales = _attr_scales(t_vectors)
    rows = []
    for (vid, rec, crec), ta, ca, tv in zip(items, t_attrs, c_attrs, t_vectors, strict=True):
        gen = np.load(gen_dir / f"{vid}.npy", allow_pickle=False)
        case = np.load(case_dir / f"{vid}.npy", allow_pickle=False)
        if gen.ndim != 4 or gen.dtype != np.uint8:
            raise ValueError(f"{gen_dir / vid}.npy: expected uint8 (T, R, R, 3), got "
                             f"{gen.dtype} {gen.shape}")
        res = gen.shape[1]
        tframes = truth.frames(truth.index(vid), resolution=res)
        c = rec.n_cond
        perm = (match_objects(rec.trajectory.positions[c - 1], crec.trajectory.positions[c - 1])
                if rec.objects.n == crec.objects.n else None)
        scale = scales[len(tv)]
        preset = inputs.parse_preset(gen, rec.objects.rgb, parse_preset)
        tracks = parse.parse(gen, rec.objects.rgb, config=preset)
        ga = attributes.parsed_attributes(tracks, rec)
        s = video_caselike(gen, tframes, case, c, ga, ta, ca, perm, scale)
        rows.append({"id": vid, "split": rec.split, "level": rec.level,
                     "case_id": cinfo["train_id"], "case_mirrored": int(cinfo["mirrored"]),
                     **s})
    summary = aggregate(rows, list(METRICS))
    summary.update(case_dir=str(case_dir), train=meta["train"], n_cond=int(items[0][1].n_cond),
                   attr_scale={str(n // 3): [float(x) for x in sc] for n, sc in scales.items()})
    return rows, summary


def write(out, rows: list[dict], summary: dict) -> None:
    """``out/caselike.json`` and ``out/per_video.csv``, each written atomically."""
    from evals.run import _json_clean
    from evals.tables import write_csv

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "per_video.csv", rows)
    tmp = out / f".caselike.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(_json_clean(summary), indent=1))
    os.replace(tmp, out / "caselike.json")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.caselike", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("gen", help="the model's rollouts ({id}.npy)")
    p.add_argument("--case", required=True, help="models.baselines knn output (knn.json)")
    p.add_argument("--truth", required=True, help="the evaluation dataset")
    p.add_argument("--out", required=True, help="output folder (caselike.json, per_video.csv)")
    p.add_argument("--parse", default="auto", choices=("auto", "exact", "lossy"))
    args = p.parse_args(argv)
    try:
        rows, summary = score(args.gen, args.case, args.truth, args.parse)
    except (ValueError, OSError) as e:
        print(f"caselike: error: {e}", file=sys.stderr)
        return 2
    write(args.out, rows, summary)
    print(f"caselike: {len(rows)} videos; closer to the retrieved case: pixels "
          f"{summary['closer_to_case_px']:.3f}, attributes {summary['closer_to_case_attr']:.3f}"
          f" -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
