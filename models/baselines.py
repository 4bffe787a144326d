"""Reference "models" that need no training, written like ``physim sample`` writes rollouts.

- ``truth``: the ground-truth video itself. Scoring it gives the parse floor (the error the
  evaluator makes on perfect videos); any model's error should be read against it.
- ``copy-last``: every generated frame is the last conditioning frame (a frozen object).
  The error of a model that learned nothing about motion.
- ``knn``: pure case retrieval (the paper's "case-based" generalisation taken literally):
  the training video whose conditioning frames are nearest in pixel space continues the
  evaluation video's own conditioning frames (:mod:`models.retrieval`).

All write ``OUT/{id}.npy``, uint8 (T, R, R, 3), for every video of a physim dataset, so
``physim evaluate OUT --truth DATA`` scores them like any model. No jax needed.

CLI: ``python -m models.baselines {truth,copy-last} --data EVALDIR --out GEN
[--resolution R] [--n-cond C] [--limit N]``;
``python -m models.baselines knn --train TRAINDIR --data EVALDIR --out GEN [--resolution R]
[--flip] [--approx F]``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

BASELINES = ("truth", "copy-last")


def baseline_video(kind: str, truth_frames: np.ndarray, n_cond: int) -> np.ndarray:
    """The ``kind`` baseline of one video.

    Args:
      kind: ``"truth"`` or ``"copy-last"``.
      truth_frames: uint8 (T, R, R, 3) ground-truth frames.
      n_cond: conditioning frames (1 <= n_cond <= T); copy-last repeats frame n_cond - 1.

    Returns:
      uint8 (T, R, R, 3); its first ``n_cond`` frames equal the truth's.
    """
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; known: {list(BASELINES)}")
    f = np.asarray(truth_frames)
    if f.ndim != 4 or f.shape[-1] != 3:
        raise ValueError(f"truth_frames must be (T, R, R, 3), got {f.shape}")
    if not 1 <= n_cond <= f.shape[0]:
        raise ValueError(f"n_cond must be in [1, {f.shape[0]}], got {n_cond}")
    if kind == "truth":
        return f.copy()
    out = np.repeat(f[n_cond - 1 : n_cond], f.shape[0], axis=0)
    out[:n_cond] = f[:n_cond]
    return out


def write_baseline(kind: str, data, out, resolution: int = 32, n_cond: int | None = None,
                   limit: int | None = None) -> int:
    """Write ``out/{id}.npy`` for the first ``limit`` (default all) videos of dataset
    folder ``data``; ``n_cond`` defaults to each record's own. Returns the count written
    (existing files are kept: a killed run resumes)."""
    import physim.dataset

    if resolution < 8:
        raise ValueError(f"resolution must be >= 8, got {resolution}")
    ds = physim.dataset.open(data)
    n = len(ds) if limit is None else min(int(limit), len(ds))
    os.makedirs(out, exist_ok=True)
    ids = ds.ids
    for i in range(n):
        path = os.path.join(out, f"{ids[i]}.npy")
        if os.path.exists(path):
            continue
        c = int(n_cond) if n_cond is not None else int(ds[i].n_cond)
        v = baseline_video(kind, ds.frames(i, resolution=resolution), c)
        np.save(path + ".tmp.npy", v, allow_pickle=False)
        os.replace(path + ".tmp.npy", path)
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.baselines", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("kind", choices=(*BASELINES, "knn"))
    p.add_argument("--data", required=True, help="physim dataset folder (an eval set)")
    p.add_argument("--out", required=True, help="folder for {id}.npy videos")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--n-cond", type=int, default=None, help="default: each record's own")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--train", default=None, help="knn: the training dataset folder")
    p.add_argument("--flip", action="store_true",
                   help="knn: horizontally mirrored training videos are candidates too")
    p.add_argument("--approx", type=int, default=0, metavar="F",
                   help="knn: search on F-times downsampled frames, then rank the best "
                        "candidates exactly (for 300K+ training videos); 0: exact")
    a = p.parse_args(argv)
    try:
        if a.kind == "knn":
            if not a.train:
                raise ValueError("knn needs --train TRAINDIR")
            from models import retrieval

            n = retrieval.write_knn(a.train, a.data, a.out, resolution=a.resolution,
                                    flip=a.flip, approx=a.approx, n_cond=a.n_cond,
                                    limit=a.limit)
        else:
            n = write_baseline(a.kind, a.data, a.out, a.resolution, a.n_cond, a.limit)
    except ValueError as e:
        print(f"baselines: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {n} {a.kind} videos to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
