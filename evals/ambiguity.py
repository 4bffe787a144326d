"""Outcomes of the ``ambiguity`` scenario read from pixels, and how small a margin can be read.

Each ``ambiguity`` video has a signed margin ``m`` (world units) whose sign decides its
outcome (``physim.scenarios.ambiguity``): ``pass`` videos hit (1) or miss (0), ``edge``
videos send ball A right (1) or left (0). Here:

- :func:`rollout_outcome`: the outcome a *video* shows, from its parsed tracks over the
  generated frames: ``pass`` → ball B moved more than ``move_tol`` from where it was
  given; ``edge`` → ball A ends right (1) or left (0) of where it was given.
- :func:`cond_outcome`: the outcome *predictable from the conditioning frames alone*
  (the given frames decide it in the exact world): ``pass`` → the parsed paths are closer
  than the parsed radii sum; ``edge`` → A's parsed centre is right of B's.
- :func:`score`: both, against the true outcome (the laws scorer of ``ambiguity``).
- :func:`readability`: the second on the truth itself at several resolutions: accuracy
  per |margin| bin and the smallest margin from which it stays >= 95% (the margin "read"
  at that resolution, in world units and pixels). A model cannot be expected to get a
  video right below it; above it, a wrong outcome is the paper's "plausible but wrong".

CLI: ``python -m evals.ambiguity --data EVALDIR --resolutions 32 64 128 256 --out DIR``
writes ``readability.json`` and ``readability.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

MOVE_TOL = 0.1  # world units B must move for a rollout to show a hit
READ_ACCURACY = 0.95
BINS = (0.0, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.5, 1.0, np.inf)


def _kind(record) -> str:
    return "pass" if record.level.startswith("pass") else "edge"


def rollout_outcome(tracks, record, move_tol: float = MOVE_TOL) -> float:
    """Outcome shown over the generated frames (1/0; NaN if the object is never parsed)."""
    from evals.laws import filled_positions

    pos, filled = filled_positions(tracks, record)
    c = record.n_cond
    gen = np.arange(len(pos)) >= c
    if _kind(record) == "pass":
        seen = gen & ~filled[:, 1]
        if not seen.any():
            return float("nan")
        d = np.linalg.norm(pos[seen, 1] - pos[c - 1, 1], axis=-1)
        return float(d.max() > move_tol)
    seen = np.flatnonzero(gen & ~filled[:, 0])
    if not seen.size:
        return float("nan")
    return float(pos[seen[-1], 0, 0] > pos[c - 1, 0, 0])


def cond_outcome(tracks, record) -> float:
    """Outcome predicted from the parsed conditioning frames (NaN if not parsed there)."""
    c = record.n_cond
    p, r = tracks.positions[:c], tracks.radii[:c]
    ok = tracks.visible[:c].all(axis=1) & np.all(np.isfinite(p), axis=(1, 2))
    if not ok.any():
        return float("nan")
    pa, pb = p[ok, 0].mean(axis=0), p[ok, 1].mean(axis=0)
    if _kind(record) == "pass":
        ra, rb = np.nanmedian(r[ok, 0]), np.nanmedian(r[ok, 1])
        return float(abs(pb[1] - pa[1]) < ra + rb)
    return float(pa[0] > pb[0])


def score(tracks, record) -> dict:
    """``outcome_true``, ``outcome_hat`` (the rollout's), ``outcome_correct``,
    ``cond_outcome``, ``cond_correct`` and ``abs_margin`` of one ambiguity video."""
    true = float(record.params["outcome"])
    hat, cond = rollout_outcome(tracks, record), cond_outcome(tracks, record)
    nan = float("nan")
    return {"outcome_true": true, "outcome_hat": hat,
            "outcome_correct": float(hat == true) if np.isfinite(hat) else nan,
            "cond_outcome": cond,
            "cond_correct": float(cond == true) if np.isfinite(cond) else nan,
            "abs_margin": abs(float(record.params["margin"]))}


def accuracy_by_margin(margins, correct, bins=BINS) -> list[dict]:
    """Per |margin| bin: range, count and mean of ``correct`` (NaN entries skipped)."""
    m, ok = np.abs(np.asarray(margins, float)), np.asarray(correct, float)
    out = []
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        sel = (m >= lo) & (m < hi) & np.isfinite(ok)
        if sel.any():
            out.append({"lo": lo, "hi": hi, "n": int(sel.sum()), "accuracy": float(ok[sel].mean())})
    return out


def readable_margin(rows: list[dict], level: float = READ_ACCURACY) -> float:
    """Smallest bin edge from which every bin's accuracy is >= ``level`` (inf if none)."""
    edge = float("inf")
    for r in reversed(rows):
        if r["accuracy"] < level:
            break
        edge = r["lo"]
    return edge


def readability(data_dir, resolutions=(32, 64, 128, 256), split: str | None = None) -> dict:
    """Accuracy of :func:`cond_outcome` on the truth, per resolution, kind and |margin|."""
    from evals import parse
    from physim import dataset, world

    ds = dataset.open(data_dir, split=split)
    recs = [ds[i] for i in range(len(ds))]
    if not recs or recs[0].scenario != "ambiguity":
        raise ValueError(f"{data_dir}: not an ambiguity dataset")
    out = {"data": str(data_dir), "n": len(recs), "resolutions": {}}
    for res in resolutions:
        by_kind: dict[str, tuple[list, list]] = {}
        for i, rec in enumerate(recs):
            frames = ds.frames(i, resolution=res, n_frames=rec.n_cond)
            tr = parse.parse(frames, rec.objects.rgb, config="exact")
            ok = float(cond_outcome(tr, rec) == rec.params["outcome"])
            ms, cs = by_kind.setdefault(_kind(rec), ([], []))
            ms.append(rec.params["margin"])
            cs.append(ok)
        px = world.WORLD_SIZE / res  # world units per pixel
        per = {}
        for k, (ms, cs) in sorted(by_kind.items()):
            rows = accuracy_by_margin(ms, cs)
            rm = readable_margin(rows)
            per[k] = {"bins": rows, "readable_margin": rm, "readable_margin_px": rm / px,
                      "accuracy": float(np.mean(cs))}
        out["resolutions"][str(res)] = per
    return out


def to_markdown(res: dict) -> str:
    lines = ["| resolution | kind | readable from |margin| (world units) | in pixels | "
             "accuracy, all margins |", "|---|---|---|---|---|"]
    for r, kinds in res["resolutions"].items():
        for k, v in kinds.items():
            lines.append(f"| {r} | {k} | {v['readable_margin']:.4g} | "
                         f"{v['readable_margin_px']:.3g} | {v['accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.ambiguity",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="an ambiguity dataset folder")
    p.add_argument("--split", default=None)
    p.add_argument("--resolutions", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if any(r < 4 for r in a.resolutions):
        print("ambiguity: error: resolutions must be >= 4", file=sys.stderr)
        return 2
    try:
        res = readability(a.data, a.resolutions, a.split)
    except (ValueError, OSError) as e:
        print(f"ambiguity: error: {e}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("readability.json", json.dumps(res, indent=1, default=float)),
                       ("readability.md", to_markdown(res))):
        tmp = out / f".{name}.tmp-{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, out / name)
    print(to_markdown(res), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
