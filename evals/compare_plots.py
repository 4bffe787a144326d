"""Plots and GIF strips of :mod:`evals.compare` (``physim report``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from evals import paper_numbers as paper
from evals.compare import REFERENCES, _err, _get, cell_eval_dir, velocity_stats
from evals.experiments import SCALES as ex_scales

N_GIFS = 2  # videos per (cell, eval set) shown as GIF strips


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path):
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    os.replace(tmp, path)
    _plt().close(fig)


def plot_scaling(rows, run, out: Path) -> Path | None:
    cells = _get(rows, run=run, kind="model", group="all", experiment="scaling")
    if not cells:
        return None
    plt = _plt()
    scen = sorted({r["scenario"] for r in cells})
    order = ["30K", "300K", "3M"]
    fig, axes = plt.subplots(len(scen), 2, figsize=(9, 3.2 * len(scen)), squeeze=False)
    for i, sc in enumerate(scen):
        for j, split in enumerate(("id", "ood")):
            ax = axes[i, j]
            for m in ("S", "B", "L"):
                ys = [_err(rows, run=run, kind="model", scenario=sc, size=m, data=d, group=split)
                      for d in order]
                if any(y is not None for y in ys):
                    ax.plot(
                        order,
                        [np.nan if y is None else y for y in ys],
                        "o-",
                        label=f"DiT-{m} (ours)",
                    )
            e = f"{sc}-eval"
            for k, style in zip(REFERENCES, ("k--", "r:"), strict=True):
                y = _err(rows, run=run, model_or_ref=k, eval=e, group=split)
                if y is not None:
                    ax.axhline(y, color=style[0], ls=style[1:], label=k)
            rng = paper.SCALING_RANGE.get(sc)
            if rng:
                ax.axhspan(*rng[j], color="0.85", alpha=0.5, label="paper Fig. 3 range")
            ax.set_yscale("log")
            ax.set_title(f"{sc} {split.upper()}")
            n = ex_scales.get(cells[0]["scale"])
            if n is not None:
                ax.set_xticks(range(len(order)), [f"{d}\n({n.data[d]:,})" for d in order])
            ax.set_xlabel("training videos: paper label (this run)")
            ax.set_ylabel("velocity error")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "error_vs_data.png"
    _save(fig, path)
    return path


def plot_errors(rows, out: Path) -> Path | None:
    # Only cells with a velocity error (combinatorial scenes have none: abnormality only).
    cells = [
        r
        for r in _get(rows, kind="model", group="all")
        if any(
            _err(rows, run=r["run"], cell=r["cell"], kind="model", eval=r["eval"], group=g)
            for g in ("id", "ood")
        )
    ]
    if not cells:
        return None
    plt = _plt()
    labels = [f"{Path(r['run']).name}:{r['cell']}" for r in cells]
    x = np.arange(len(cells))
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(cells) + 3), 4))
    for k, split in enumerate(("id", "ood")):
        ys = [
            _err(rows, run=r["run"], cell=r["cell"], kind="model", eval=r["eval"],
                 group=split) or np.nan
            for r in cells
        ]
        ax.bar(x + (k - 0.5) * 0.4, ys, 0.4, label=f"{split.upper()} (ours)")
    for k, c in zip(REFERENCES, ("k", "r"), strict=True):
        vals = [
            v
            for r in cells
            for v in [_err(rows, run=r["run"], model_or_ref=k, eval=r["eval"], group="all")]
            if v
        ]
        if vals:
            ax.axhline(float(np.mean(vals)), color=c, ls="--", lw=1, label=f"{k} (reference)")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("velocity error")
    ax.legend(fontsize=7)
    path = out / "errors.png"
    _save(fig, path)
    return path


def plot_velocity_map(runs, plans, out: Path) -> Path | None:
    """Generated against conditioned velocity (the paper's Fig. 4 form), one panel per
    scenario; the diagonal is a perfect model."""
    panels: dict[str, list] = {}
    for run, p in zip(runs, plans, strict=True):
        if p["experiment"] not in ("interpolation", "memorization", "quickstart"):
            continue
        for c in p["cells"]:
            for e in c["evals"]:
                s = velocity_stats(cell_eval_dir(run, c["name"], e["name"]))
                if s["n"]:
                    panels.setdefault(c["scenario"], []).append((f"{c['name']}:{e['name']}", s))
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    for ax, (scenario, series) in zip(axes[0], panels.items(), strict=True):
        for label, s in series:
            ax.plot(s["v"], s["v_hat"], ".", label=label, alpha=0.7)
        lo = min(min(np.min(s["v"]), np.min(s["v_hat"])) for _, s in series)
        hi = max(max(np.max(s["v"]), np.max(s["v_hat"])) for _, s in series)
        lo = min(lo, 0.0)
        ax.plot([lo, hi], [lo, hi], "k:", lw=1)
        post = " (post-collision, each ball)" if scenario.startswith("collision") else ""
        ax.set_title(f"{scenario}{post}", fontsize=9)
        ax.set_xlabel("true horizontal velocity v")
        ax.set_ylabel("generated velocity v̂")
        ax.legend(fontsize=6)
    path = out / "velocity_map.png"
    _save(fig, path)
    return path


def write_gifs(run_dir, plan, out: Path, n: int = N_GIFS) -> list[Path]:
    """GIF strips (truth | generated) for the first ``n`` videos of each split per cell."""
    import physim.dataset
    from physim import video

    paths = []
    eval_dirs = plan.get("options", {}).get("eval_dirs", {})
    for c in plan["cells"]:
        for e in c["evals"]:
            gen = Path(run_dir) / "cells" / c["name"] / "gen" / e["name"]
            truth = eval_dirs.get(e["name"])
            if not gen.is_dir() or not truth or not Path(truth, "manifest.json").is_file():
                continue
            ds = physim.dataset.open(truth)
            seen: dict[str, int] = {}
            for i, vid in enumerate(ds.ids):
                split = ds[i].split
                f = gen / f"{vid}.npy"
                if seen.get(split, 0) >= n or not f.is_file():
                    continue
                g = np.load(f, allow_pickle=False)
                t = ds.frames(i, resolution=g.shape[1])
                pad = np.full((g.shape[0], g.shape[1], 2, 3), 128, np.uint8)
                strip = np.concatenate([t, pad, g], axis=2)
                scale = max(1, 96 // g.shape[1])
                strip = strip.repeat(scale, 1).repeat(scale, 2)
                p = out / "strips" / f"{Path(run_dir).name}-{c['name']}-{split}-{vid}.gif"
                p.parent.mkdir(parents=True, exist_ok=True)
                video.write_bytes(p, video.encode_gif(strip))
                paths.append(p)
                seen[split] = seen.get(split, 0) + 1
    return paths
