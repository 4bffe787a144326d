"""What a model needs to generate an evaluation set: its conditioning frames and an index.

``physim export DIR --format npy --conditioning-only --out COND/`` writes, per video of the
truth dataset, ``COND/{id}.npy``: its first ``n_cond`` frames (3 for the basic scenarios,
1 for combinatorial scenes), uint8 (n_cond, R, R, 3) RGB, row 0 at the top (world y up);
and ``COND/index.csv``, one row per video: ``id, file, scenario, split, level, n_cond,
n_frames, resolution`` and the parameters ``param_*``. A model reads each file, generates
``n_frames`` frames in total (conditioning frames included, or only the ``n_frames -
n_cond`` new ones with ``physim evaluate --frames rollout``) and saves ``{id}.npy`` for
``physim evaluate``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from evals.tables import write_csv

INDEX_COLUMNS = ("id", "file", "scenario", "split", "level", "n_cond", "n_frames", "resolution")


def export_conditioning(ds, out, resolution: int = 128, progress: bool = False) -> int:
    """Write every video's conditioning frames and ``index.csv`` into folder ``out``.

    Args:
      ds: an opened :class:`physim.dataset.Dataset` (the truth evaluation set).
      out: output folder (created; files of the same names are replaced).
      resolution: frame side in pixels (>= 8).
      progress: show a tqdm bar.

    Returns:
      The number of videos written.
    """
    if isinstance(resolution, bool) or int(resolution) != resolution or resolution < 8:
        raise ValueError(f"resolution must be an integer >= 8, got {resolution!r}")
    ids = ds.ids  # checked against the dataset's safe-name pattern before any write
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"export output {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    from physim.video import write_bytes

    rows = []
    for i in tqdm(range(len(ds)), unit="video", desc="conditioning", disable=not progress):
        rec = ds[i]
        n_cond = int(rec.n_cond)
        frames = ds.frames(i, resolution=int(resolution), n_frames=n_cond)
        buf = io.BytesIO()
        np.save(buf, frames, allow_pickle=False)
        write_bytes(out / f"{ids[i]}.npy", buf.getvalue())
        row = {"id": ids[i], "file": f"{ids[i]}.npy", "scenario": rec.scenario,
               "split": rec.split, "level": rec.level, "n_cond": n_cond,
               "n_frames": rec.trajectory.n_frames, "resolution": int(resolution)}  # fmt: skip
        row.update({f"param_{k}": v for k, v in rec.params.items()
                    if isinstance(v, int | float | np.integer | np.floating)})  # fmt: skip
        rows.append(row)
    write_csv(out / "index.csv", rows, first=INDEX_COLUMNS)
    return len(rows)
