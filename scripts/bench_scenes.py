"""Throughput of the combinatorial (PHYRE-like) scenes, rows for scripts/bench.py.

    python scripts/bench_scenes.py [--quick]

``bench_combinatorial(quick)`` returns markdown rows ``| what | ours | reference | ratio |``
in the format of ``scripts/bench.py`` (no reference implementation exists: the paper's
PHYRE fork on Box2D does not install on current Python). One core: Numba threads are
pinned to 1 and pymunk runs single-threaded.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import physim  # noqa: E402


def _rate(fn, n_items: int, min_time: float) -> float:
    """Items per CPU second of ``fn(rep)`` (which processes n_items), after one warm-up
    call. Process CPU time, not wall time: everything here is single-threaded, so this is
    the one-core rate even on a machine shared with other jobs."""
    fn(0)
    reps, t0 = 0, time.process_time()
    while True:
        reps += 1
        fn(reps)
        dt = time.process_time() - t0
        if dt >= min_time:
            return reps * n_items / dt


def bench_combinatorial(quick: bool = False) -> list[str]:
    """Rows: states-only generation (layout, action ball, 32 simulated frames, record) per
    split, with the task-layout cache cold (every layout built: an evaluation split, where
    each task occurs once) and warm (layouts cached: a long train run, 7000 layouts fit
    the cache); then rendering and the scene checks of one video at 128².
    """
    from evals import scenes
    from physim.scenarios import phyre_scenes
    from physim.scenarios.combinatorial import render

    t = 1.5 if quick else 5.0
    n = 8
    spec = physim.scenario("combinatorial", templates=60)
    rows = []
    for split in ("train", "in-template", "out-of-template"):
        for name, cached in (("layouts built", False), ("layouts cached", True)):
            spent, done, rep = 0.0, 0, 0
            while spent < t:  # the same videos either way: indices rep * n .. rep * n + n - 1
                idx = [(rep * n + i) % 600 for i in range(n)]
                phyre_scenes.task_layout.cache_clear()
                if cached:  # untimed first pass builds the layouts
                    for i in idx:
                        spec.sample(0, split, i)
                t0 = time.process_time()
                for i in idx:
                    spec.sample(0, split, i)
                spent += time.process_time() - t0
                done, rep = done + n, rep + 1
            rows.append(
                f"| combinatorial states only (pymunk, 32 frames), {split}, {name} "
                f"| {done / spent:,.1f} videos/s | — | — |"
            )
    recs = [spec.sample(0, "out-of-template", i) for i in range(8)]
    res = 128
    r = _rate(lambda rep: render(recs[rep % 8], res), 1, t)
    rows.append(f"| combinatorial render 1 video 32x{res}x{res} | {r:,.1f} videos/s | — | — |")
    vids = [render(x, res) for x in recs]
    for preset in ("exact", "lossy"):
        r = _rate(lambda rep, p=preset: scenes.check_video(vids[rep % 8], recs[rep % 8], p), 1, t)
        rows.append(
            f"| scene checks (evals.scenes, {preset}) 1 video 32x{res}x{res} "
            f"| {r:,.1f} videos/s | — | — |"
        )
    return rows


if __name__ == "__main__":
    import argparse
    import platform

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="shorter timings (less stable)")
    args = ap.parse_args()
    print(
        f"# {time.strftime('%Y-%m-%d')} on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, python {platform.python_version()}, numpy {np.__version__}"
    )
    print("| what | ours | reference | ratio |\n|---|---|---|---|")
    for row in bench_combinatorial(args.quick):
        print(row, flush=True)
