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
    """Rows: states-only generation (simulate 32 frames, build the record) per split, then
    rendering and scene checks of one video at 128².

    Each repetition takes fresh video indices, so the per-task layout cache
    (``phyre_scenes.task_layout``) is as warm as in a long generation run only for the
    evaluation grids (600 / 1000 fixed tasks); train draws random tasks.
    """
    from evals import scenes
    from physim.scenarios.combinatorial import render

    t = 1.5 if quick else 5.0
    n = 8
    spec = physim.scenario("combinatorial", templates=60)
    rows = []
    for split in ("train", "in-template", "out-of-template"):
        size = spec.size(split) or 10**9

        def gen(rep, split=split, size=size):
            for i in range(n):
                spec.sample(0, split, (rep * n + i) % size)

        r = _rate(gen, n, t)
        rows.append(
            f"| combinatorial states only (pymunk, 32 frames), {split} | {r:,.1f} videos/s "
            f"| — | — |"
        )
    recs = [spec.sample(0, "out-of-template", i) for i in range(8)]
    for res in (128,):
        r = _rate(lambda rep, res=res: render(recs[rep % 8], res), 1, t)
        rows.append(f"| combinatorial render 1 video 32x{res}x{res} | {r:,.1f} videos/s | — | — |")
        vids = [render(x, res) for x in recs]
        r = _rate(lambda rep, v=vids: scenes.check_video(v[rep % 8], recs[rep % 8]), 1, t)
        rows.append(f"| scene checks (evals.scenes) 1 video 32x{res}x{res} | {r:,.1f} videos/s "
                    "| — | — |")  # fmt: skip
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
