"""The human-readable report of an evaluation: ``report.md`` with PNG plots.

Called by :func:`evals.run.evaluate` with the results dict, the per-video rows and a few
(label, truth frames, generated frames) strips; writes into the report folder:

- ``error_by_level.png``: velocity error per ``split/level`` with bootstrap CIs, against
  the parse floor;
- ``speed.png``: parsed speed v̂ against true speed v, one point per video;
- ``abnormal.png``: rate of each abnormality check;
- ``strips.png``: truth above generated frames for a few videos;
- ``report.md``: tables of the same numbers with links to the plots.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from evals.abnormal import CHECKS

STRIP_FRAMES = 8


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    os.replace(tmp, path)


def _fmt(x, digits=4) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def plot_error_by_level(results: dict, path: Path) -> bool:
    levels = results.get("levels", {})
    names = [k for k in levels if levels[k].get("velocity_error") is not None]
    if not names:
        return False
    plt = _plt()
    mean = np.array([levels[k]["velocity_error"] for k in names])
    ci = np.array(
        [
            [m if c is None else c for c in levels[k].get("velocity_error_ci") or [m, m]]
            for k, m in zip(names, mean, strict=True)
        ],
        dtype=float,
    )
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(names) + 2), 3.2))
    x = np.arange(len(names))
    ax.bar(x, mean, color="#4477aa")
    ax.errorbar(x, mean, yerr=[mean - ci[:, 0], ci[:, 1] - mean], fmt="none", color="k")
    floor = results.get("parse_floor", {}).get("levels", {})
    fl = [floor.get(k, {}).get("velocity_error") for k in names]
    if any(f is not None for f in fl):
        ax.scatter(x, [np.nan if f is None else f for f in fl], marker="_", s=400, c="r",
                   label="parse floor (truth)")  # fmt: skip
        ax.legend(fontsize=8)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("velocity error (units/s)")
    ax.set_yscale("log")
    ax.set_title("Velocity error by split/level (95% bootstrap CI)")
    _save(fig, path)
    plt.close(fig)
    return True


def plot_speed(rows: list[dict], path: Path) -> bool:
    pts = [(r["speed_true"], r["speed_hat"], r["split"]) for r in rows
           if r.get("speed_true") is not None and r.get("speed_hat") is not None]  # fmt: skip
    if not pts:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    for split in sorted({p[2] for p in pts}):
        v = np.array([(a, b) for a, b, s in pts if s == split], dtype=float)
        ax.scatter(v[:, 0], v[:, 1], s=6, label=split)
    hi = max(max(p[0] for p in pts), max(p[1] for p in pts), 1e-3)
    ax.plot([0, hi], [0, hi], "k--", lw=0.8)
    ax.set_xlabel("true speed v")
    ax.set_ylabel("parsed speed v̂")
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
    return True


def plot_abnormal(results: dict, path: Path) -> bool:
    rates = [(c, results.get(c)) for c in CHECKS if results.get(c) is not None]
    if not rates:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 2.8))
    ax.bar([c for c, _ in rates], [r for _, r in rates], color="#cc6677")
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of videos")
    ax.tick_params(axis="x", rotation=30)
    _save(fig, path)
    plt.close(fig)
    return True


def plot_strips(strips, path: Path) -> bool:
    if not strips:
        return False
    plt = _plt()
    n_t = strips[0][1].shape[0]
    ks = np.linspace(0, n_t - 1, min(STRIP_FRAMES, n_t)).round().astype(int)
    fig, axes = plt.subplots(2 * len(strips), len(ks), figsize=(1.1 * len(ks), 2.3 * len(strips)))
    axes = np.atleast_2d(axes)
    for s, (label, truth, gen) in enumerate(strips):
        for j, k in enumerate(ks):
            for row, frames, name in ((2 * s, truth, "truth"), (2 * s + 1, gen, "generated")):
                ax = axes[row, j]
                ax.imshow(frames[k], interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    ax.set_ylabel(name, fontsize=7)
                if row == 2 * s:
                    ax.set_title(f"{label} t={k}" if j == 0 else f"t={k}", fontsize=6)
    _save(fig, path)
    plt.close(fig)
    return True


def _table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def write_report(out: Path, results: dict, rows: list[dict], strips) -> None:
    """Write ``report.md`` and its PNG plots into folder ``out``."""
    out = Path(out)
    lines = ["# Evaluation report", ""]
    cfg = results.get("config", {})
    lines += [
        f"Generated: `{cfg.get('gen')}` — truth: `{cfg.get('truth')}` — metrics: "
        f"{', '.join(cfg.get('metrics', []))}",
        "",
        f"Scored **{results['n_scored']}** videos; missing {results.get('n_missing', 0)}, "
        f"unreadable {results.get('n_unreadable', 0)}, unknown ids "
        f"{results.get('n_unknown_ids', 0)}.",
        "",
    ]
    if results.get("velocity_error") is not None:
        floor = results.get("parse_floor", {})
        lines += [
            f"Velocity error (paper metric): **{_fmt(results['velocity_error'])}** "
            f"(95% CI {_fmt((results.get('velocity_error_ci') or [None])[0])}–"
            f"{_fmt((results.get('velocity_error_ci') or [None, None])[1])}); parse floor on "
            f"the truth renders {_fmt(floor.get('velocity_error'))}"
            + (f" ({_fmt(same)} through the lossy parse that these videos needed)"
               if (same := results.get("parse_floor_same_parser", {}).get("velocity_error"))
               is not None else "") + ".",
            "",
        ]
        keys = ["velocity_error", "post_velocity_error", "momentum_error", "energy_error",
                "accel_error", "abnormal", "psnr", "ssim"]  # fmt: skip
        keys = [k for k in keys if any(k in v for v in results.get("levels", {}).values())]
        body = []
        for name, v in results.get("levels", {}).items():
            fl = floor.get("levels", {}).get(name, {}).get("velocity_error")
            body.append([name, v["n_scored"], *[v.get(k) for k in keys], fl])
        lines += ["## By split and level", "", _table(["split/level", "n", *keys, "floor"], body)]
        lines += [""]
    pp = results.get("paper_protocol")
    if pp:
        fl = pp.get("floor", {})
        lines += ["## Paper protocol (the paper's evaluate.py)", "",
                  f"{results.get('labels', {}).get('paper_protocol', '')}.", "",
                  f"Velocity error, paper protocol: **{_fmt(pp.get('velocity_error'))}** on "
                  f"{pp.get('n_scored')} videos ({pp.get('n_filtered_out')} dropped by its "
                  f"radius filter) at {pp.get('resolution')} px, {pp.get('n_frames')} frames; "
                  f"its floor (truth renders, same parser) {_fmt(fl.get('velocity_error'))}. "
                  "Compare with the paper's published numbers only at the same resolution "
                  "and frames; ours (above) is a different metric.", ""]  # fmt: skip
        body = [[k, v.get("n_scored"), v.get("velocity_error"),
                 fl.get("levels", {}).get(k, {}).get("velocity_error")]
                for k, v in pp.get("levels", {}).items()]  # fmt: skip
        lines += [_table(["split/level", "n", "paper velocity error", "paper floor"], body), ""]
    cond = results.get("conditioning", {})
    if cond.get("n_flagged"):
        from evals.checks import describe

        lines += ["## Conditioning frames", "", f"**Warning**: {describe(cond)}.", ""]
        lines += [f"- {k}: " + ", ".join(f"`{i}`" for i in ids)
                  for k, ids in cond.get("flagged_ids", {}).items()]  # fmt: skip
        lines += [""]
    if plot_error_by_level(results, out / "error_by_level.png"):
        lines += ["![velocity error by level](error_by_level.png)", ""]
    if plot_speed(rows, out / "speed.png"):
        lines += ["## Parsed against true speed", "", "![speed](speed.png)", ""]
    if any(results.get(c) is not None for c in CHECKS):
        lines += ["## Abnormality", "", f"Abnormal rate: **{_fmt(results.get('abnormal'))}**", ""]
        lines += [_table(["check", "rate"], [[c, results.get(c)] for c in CHECKS]), ""]
        if plot_abnormal(results, out / "abnormal.png"):
            lines += ["![abnormal](abnormal.png)", ""]
    vm = [k for k in ("psnr", "ssim", "lpips", "mse", "spatial_iou", "spatiotemporal_iou",
                      "weighted_spatial_iou", "fvd") if results.get(k) is not None]  # fmt: skip
    if vm:
        lines += ["## Video metrics", "", _table(["metric", "value"],
                                                 [[k, results[k]] for k in vm]), ""]  # fmt: skip
    if "attribute_priority" in results:
        ap = results["attribute_priority"]
        lines += ["## Attribute priority", "", f"Order: {' > '.join(ap.get('order', []))}", ""]
        table = [[a, b, n] for (a, b), n in _pairs(ap.get("counts", {}))]
        lines += [_table(["kept", "changed", "count"], table), ""]
    if "cases" in results:
        c = results["cases"]
        lines += ["## Case-based retrieval", "",
                  f"Closer to the nearest training case than to the truth: "
                  f"**{_fmt(c.get('closer_to_case'))}** of videos.", ""]  # fmt: skip
    if plot_strips(strips, out / "strips.png"):
        lines += ["## Truth (top) against generated (bottom)", "", "![strips](strips.png)", ""]
    if results.get("missing_ids") or results.get("unreadable"):
        lines += ["## Not scored", ""]
        lines += [f"- missing: `{i}`" for i in results.get("missing_ids", [])[:20]]
        lines += [f"- unreadable: {u}" for u in results.get("unreadable", [])[:20]]
        lines += [""]
    tmp = out / f".tmp-{os.getpid()}-report.md"
    tmp.write_text("\n".join(lines))
    os.replace(tmp, out / "report.md")


def _pairs(counts: dict):
    for key, n in counts.items():
        a, _, b = key.partition(">")
        yield (a, b), n
