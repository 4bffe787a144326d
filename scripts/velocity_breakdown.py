"""Where a generation's velocity error comes from: speed read wrong, or position jitter.

The paper's velocity error is per frame (``v_k = (x_k - x_{k-1}) / dt``), so it adds two
things: a wrong speed (the track's fitted slope differs from the true velocity) and
frame-to-frame jitter around the track's own line. This splits them, and bins the
per-frame error by the frame's phase within ``--period`` frames (a DiT's temporal patch
size: seams between patches show as a high error at phase 0). Uniform motion, object 0.

    python scripts/velocity_breakdown.py GEN_DIR TRUTH_DIR [--period 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from evals import laws, parse
from evals.inputs import parse_preset
from physim import dataset, world


def breakdown(gen_dir, truth_dir, period: int = 4) -> dict:
    """Mean per-frame |v̂ - v| (x), |fitted slope - v|, jitter around the fitted slope and
    the per-frame error by ``k % period``, over the videos of ``truth_dir`` found in
    ``gen_dir`` as ``{id}.npy``."""
    truth = dataset.open(truth_dir)
    err, slope_err, jitter = [], [], []
    by_phase = {p: [] for p in range(period)}
    for i, vid in enumerate(truth.ids):
        path = Path(gen_dir) / f"{vid}.npy"
        if not path.is_file():
            continue
        rec, gen = truth[i], np.load(path, allow_pickle=False)
        preset = parse_preset(gen, rec.objects.rgb)
        pos, _ = laws.filled_positions(parse.parse(gen, rec.objects.rgb, config=preset), rec)
        k = np.nonzero(laws.valid_frames(rec)[:, 0])[0]
        if len(k) < 3:
            continue
        v_hat = laws.frame_velocities(pos)[k, 0, 0]
        v = laws.frame_velocities(rec.trajectory.positions)[k, 0, 0]
        slope = np.polyfit(k * world.FRAME_DT, pos[k, 0, 0], 1)[0]
        e = np.abs(v_hat - v)
        err.append(e.mean())
        slope_err.append(abs(slope - v.mean()))
        jitter.append(np.abs(v_hat - slope).mean())
        for kk, ee in zip(k, e, strict=True):
            by_phase[int(kk) % period].append(ee)
    if not err:
        raise SystemExit(f"{gen_dir}: no {{id}}.npy of {truth_dir}")
    return {"videos": len(err), "velocity_error": float(np.mean(err)),
            "slope_error": float(np.mean(slope_err)), "jitter": float(np.mean(jitter)),
            "by_phase": {p: float(np.mean(v)) for p, v in by_phase.items() if v}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gen")
    ap.add_argument("truth")
    ap.add_argument("--period", type=int, default=4)
    a = ap.parse_args(argv)
    r = breakdown(a.gen, a.truth, a.period)
    print(f"{r['videos']} videos: velocity error {r['velocity_error']:.3f}; speed error "
          f"(|fitted slope - v|) {r['slope_error']:.3f}; jitter around the fitted slope "
          f"{r['jitter']:.3f}")
    print(f"by frame phase k % {a.period}: " + ", ".join(f"{p}: {v:.3f}"
                                                         for p, v in r["by_phase"].items()))


if __name__ == "__main__":
    main()
