"""Looking at a dataset: GIF + PNG previews and a readable summary with histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from physim import video, world


def preview(
    ds,
    out,
    index: int = 0,
    grid: bool = False,
    resolution: int = world.DEFAULT_RESOLUTION,
    n_grid: int = 16,
) -> tuple[Path, Path]:
    """Write a GIF and a PNG contact sheet of video ``index`` (or, with ``grid``, of
    ``n_grid`` videos from ``index`` on, tiled side by side) into folder ``out``.

    The single-video sheet shows every frame in time order, 8 per row; the grid sheet shows
    each video's first, middle and last frames, one video per row.

    Returns:
      (gif path, png path).
    """
    if len(ds) == 0:
        raise ValueError("the dataset is empty")
    if not -len(ds) <= index < len(ds):
        raise ValueError(f"--index {index} is out of range: the dataset has {len(ds)} videos "
                         f"(0..{len(ds) - 1})")
    if resolution < 4:
        raise ValueError(f"--resolution must be >= 4, got {resolution}")
    i0 = index % len(ds)
    out = Path(out)
    if grid:
        idx = [(i0 + k) % len(ds) for k in range(min(n_grid, len(ds)))]
        vids = np.stack([ds.frames(i, resolution=resolution) for i in idx])
        cols = int(np.ceil(np.sqrt(len(idx))))
        anim = video.mosaic(vids, cols)
        t = vids.shape[1]
        sheet = video.tile(vids[:, [0, t // 2, t - 1]].reshape(-1, *vids.shape[2:]), 3)
        stem = f"grid-{i0:07d}-{len(idx)}"
    else:
        anim = ds.frames(i0, resolution=resolution)
        sheet = video.contact_sheet(anim, cols=8)
        stem = ds.ids[i0] if len(ds) < 1_000_000 else f"video-{i0:07d}"
    gif, png = out / f"{stem}.gif", out / f"{stem}.png"
    video.write_bytes(gif, video.encode_gif(anim))
    video.write_bytes(png, video.encode_png(sheet))
    return gif, png


def summary(ds) -> str:
    """Readable summary of a dataset: scenario, conventions, counts per split and level,
    parameter ranges, storage."""
    m = ds.manifest
    c = m["conventions"]
    lines = [
        f"dataset   {ds.path}",
        f"scenario  {m['scenario']}   seed {m['seed']}   physim {m['physim_version']}",
        f"frames    {c['frames']} at dt = {c['frame_dt']} s; world {c['world_size']}² units; "
        f"default resolution {c['default_resolution']}",
    ]
    total_bytes = 0
    for split in ds.splits:
        s = m["splits"][split]
        nbytes = sum(e["bytes"] for e in s["shards"])
        total_bytes += nbytes
        lines.append(
            f"split {split}: {s['count']} videos in {len(s['shards'])} shards "
            f"({nbytes / 1e6:.1f} MB); {s['selection']}"
        )
        for lv, n in sorted(s["levels"].items()):
            lines.append(f"  level {lv:<8} {n:>10}")
        for p, (lo, hi) in sorted(s["params"].items()):
            lines.append(f"  param {p:<8} [{lo:.4g}, {hi:.4g}]")
    lines.append(f"total     {len(ds)} videos, {total_bytes / 1e6:.1f} MB of states")
    return "\n".join(lines)


def param_columns(ds, split: str) -> dict[str, np.ndarray]:
    """All parameter values of one split: name -> (M,) float64 (read from the shards)."""
    from physim.dataset import Dataset

    sub = Dataset(ds.path, split=split, verify=ds.verify)
    cols: dict[str, list[np.ndarray]] = {}
    for s in range(len(sub._entries)):
        shard = sub.shard(s)
        for p in shard.param_names:
            cols.setdefault(p, []).append(np.array(shard[f"param.{p}"]))
    return {p: np.concatenate(v) for p, v in cols.items()}


def histogram(ds, path) -> Path:
    """PNG of parameter histograms, one row per split, one panel per varying parameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {s: param_columns(ds, s) for s in ds.splits}
    names = sorted(  # varying parameters; the *_side columns only restate the level
        {
            p
            for cols in data.values()
            for p, v in cols.items()
            if not p.endswith("_side") and np.nanmax(v) > np.nanmin(v)
        }
    )
    names = names or sorted({p for cols in data.values() for p in cols})[:1]
    rows, ncols = len(data), max(len(names), 1)
    fig, axes = plt.subplots(rows, ncols, figsize=(3 * ncols, 2.4 * rows), squeeze=False)
    for r, (split, cols) in enumerate(data.items()):
        for c, p in enumerate(names):
            ax = axes[r][c]
            v = cols.get(p, np.array([]))
            v = v[np.isfinite(v)]
            if v.size:
                ax.hist(v, bins=40, color="tab:blue")
            ax.set_title(f"{split}: {p}", fontsize=9)
            ax.tick_params(labelsize=7)
    fig.suptitle(f"{ds.scenario} (seed {ds.seed})", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    video.write_bytes(path, buf.getvalue())
    return path
