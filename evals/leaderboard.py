"""``physim report EVAL_DIR...``: a leaderboard of plain evaluation folders.

Each folder is what ``physim evaluate --out`` wrote (``results.json``, ``per_video.csv``),
one model each, named after the folder. Writes into ``--out``:

- ``leaderboard.md`` / ``leaderboard.csv``: one row per model: videos scored, velocity
  error overall and per ``split/level`` with 95% bootstrap CIs, abnormal rate (with CI),
  the parse floor, and the paper-protocol number when the folder has one;
- ``speed.png``: parsed speed v̂ against true speed v, one point per video, every model
  overlaid on one set of axes.

Numbers are comparable only on the same truth set, resolution and protocol: the table
says so when the folders differ in any of them.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from evals.compare import _num  # a finite float, or None (the experiment report's rule)
from evals.tables import write_csv


def is_eval_dir(path) -> bool:
    """A ``physim evaluate`` output folder (``results.json``, no experiment ``plan.json``)."""
    p = Path(path)
    return (p / "results.json").is_file() and not (p / "plan.json").is_file()


def _model_names(dirs: list[Path]) -> list[str]:
    names = [d.name for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [f"{d.parent.name}/{d.name}" if names.count(d.name) > 1 else d.name for d in dirs]


def leaderboard_rows(dirs) -> list[dict]:
    """One flat dict per evaluation folder (the ``leaderboard.csv`` rows).

    Keys: ``model``, ``path``, ``truth``, ``protocol``, ``resolution``, ``n_scored``,
    ``velocity_error`` with ``_lo`` / ``_hi`` (95% CI), the same per split and per
    ``split/level`` (``velocity_error[id/id]`` ...), ``abnormal_rate`` with CI,
    ``parse_floor``, ``paper_velocity_error`` and ``paper_floor`` (when present).

    Raises:
      ValueError naming a folder that is not an evaluation output.
    """
    dirs = [Path(d) for d in dirs]
    for d in dirs:
        if not is_eval_dir(d):
            raise ValueError(f"{d} is not a physim evaluate output (no results.json)")
    rows = []
    for name, d in zip(_model_names(dirs), dirs, strict=True):
        r = json.loads((d / "results.json").read_text())
        cfg = r.get("config", {})
        res = sorted({row.get("resolution") for row in _per_video(d)} - {None, ""})
        row = {"model": name, "path": str(d), "truth": cfg.get("truth"),
               "protocol": r.get("protocol", "ours"), "frames": cfg.get("frames", "full"),
               "resolution": "/".join(res), "n_scored": r.get("n_scored")}  # fmt: skip
        _put(row, "velocity_error", r)
        groups = [*sorted(r.get("splits", {}).items()), *sorted(r.get("levels", {}).items())]
        for key, grp in groups:
            _put(row, f"velocity_error[{key}]", grp, "velocity_error")
            row[f"n[{key}]"] = grp.get("n_scored")
        if "abnormal" in r:
            _put(row, "abnormal_rate", r, "abnormal")
        row["parse_floor"] = _num(r.get("parse_floor", {}).get("velocity_error"))
        pp = r.get("paper_protocol")
        if pp:
            row["paper_velocity_error"] = _num(pp.get("velocity_error"))
            row["paper_floor"] = _num(pp.get("floor", {}).get("velocity_error"))
        flagged = r.get("conditioning", {}).get("n_flagged")
        if flagged:
            row["conditioning_flagged"] = flagged
        rows.append(row)
    return rows


def _put(row: dict, col: str, d: dict, key: str | None = None) -> None:
    key = key or col
    row[col] = _num(d.get(key))
    ci = d.get(f"{key}_ci") or [None, None]
    row[f"{col}_lo"], row[f"{col}_hi"] = _num(ci[0]), _num(ci[1])


def _per_video(d: Path) -> list[dict]:
    p = d / "per_video.csv"
    if not p.is_file():
        return []
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def _cell(row: dict, col: str) -> str:
    v = row.get(col)
    if v is None:
        return "—"
    lo, hi = row.get(f"{col}_lo"), row.get(f"{col}_hi")
    return f"{v:.4f}" + (f" [{lo:.4f}, {hi:.4f}]" if lo is not None and hi is not None else "")


def leaderboard_markdown(rows: list[dict]) -> str:
    """The leaderboard as markdown (columns: overall, every split and split/level seen)."""
    groups = []
    for r in rows:
        groups += [k[len("velocity_error["):-1] for k in r
                   if k.startswith("velocity_error[") and not k.endswith(("_lo", "_hi"))
                   and k[len("velocity_error["):-1] not in groups]  # fmt: skip
    splits = [g for g in groups if "/" not in g]
    levels = [g for g in groups if "/" in g]
    has_paper = any(r.get("paper_velocity_error") is not None for r in rows)
    head = ["model", "n", "velocity error", *splits, *levels, "abnormal rate", "parse floor"]
    head += ["paper protocol", "paper floor"] if has_paper else []
    out = ["# Leaderboard", "",
           "Velocity error (ours: mean |v̂ − v| over valid generated (frame, object) pairs, "
           "world units/s) with 95% bootstrap CIs, per split and per split/level; abnormal "
           "rate = fraction of videos with any abnormality flag. Lower is better.", ""]  # fmt: skip
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r.get("velocity_error") is None,
                                         r.get("velocity_error") or 0.0)):  # fmt: skip
        cells = [r["model"], str(r.get("n_scored")), _cell(r, "velocity_error")]
        cells += [_cell(r, f"velocity_error[{g}]") for g in [*splits, *levels]]
        cells += [_cell(r, "abnormal_rate"), _cell(r, "parse_floor")]
        if has_paper:
            cells += [_cell(r, "paper_velocity_error"), _cell(r, "paper_floor")]
        out.append("| " + " | ".join(cells) + " |")
    notes = []
    for key, what in (("truth", "truth sets"), ("resolution", "resolutions"),
                      ("protocol", "protocols"), ("frames", "frame ranges")):  # fmt: skip
        vals = sorted({str(r.get(key)) for r in rows})
        if len(vals) > 1:
            notes.append(f"the folders differ in {what} ({', '.join(vals)}): their numbers "
                         "are not comparable")  # fmt: skip
    flagged = [f"{r['model']} ({r['conditioning_flagged']})" for r in rows
               if r.get("conditioning_flagged")]  # fmt: skip
    if flagged:
        notes.append("conditioning frames that do not match the truth: " + ", ".join(flagged))
    if has_paper:
        notes.append("paper protocol: the paper's evaluate.py metric (error of the mean, "
                     "radius filters), comparable with the paper's published numbers only at "
                     "the same resolution and frames, and against its own floor")  # fmt: skip
    out += [""] + [f"**Note**: {n}." for n in notes]
    out += ["", "![v̂ against v, all models](speed.png)", ""]
    return "\n".join(out)


def plot_speed_overlay(dirs, names, path: Path) -> bool:
    """v̂ against v (``speed_hat`` vs ``speed_true`` of per_video.csv), one colour per model."""
    pts = []
    for d, name in zip(dirs, names, strict=True):
        xy = [(_num(r.get("speed_true")), _num(r.get("speed_hat"))) for r in _per_video(Path(d))]
        xy = np.array([p for p in xy if None not in p], dtype=float).reshape(-1, 2)
        pts.append((name, xy))
    if not any(len(xy) for _, xy in pts):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for name, xy in pts:
        if len(xy):
            ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.7, label=name)
    hi = max(float(xy.max()) for _, xy in pts if len(xy))
    ax.plot([0, hi], [0, hi], "k--", lw=0.8, label="v̂ = v")
    ax.set_xlabel("true speed v (units/s)")
    ax.set_ylabel("parsed speed v̂ (units/s)")
    ax.legend(fontsize=7)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    os.replace(tmp, path)
    plt.close(fig)
    return True


def build_leaderboard(dirs, out) -> Path:
    """Write ``leaderboard.md``, ``leaderboard.csv`` and ``speed.png`` into ``out``;
    returns the markdown's path. Nothing is written when a folder is not an evaluation."""
    rows = leaderboard_rows(dirs)  # validates before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "leaderboard.csv", rows)
    md = leaderboard_markdown(rows)
    if not plot_speed_overlay([r["path"] for r in rows], [r["model"] for r in rows],
                              out / "speed.png"):  # fmt: skip
        md = md.replace("![v̂ against v, all models](speed.png)\n", "")
    path = out / "leaderboard.md"
    tmp = out / f".tmp-{os.getpid()}-leaderboard.md"
    tmp.write_text(md)
    os.replace(tmp, path)
    return path
