"""Throughput benchmarks; results go to docs/benchmarks.md (command, date, machine).

    python scripts/bench.py [sim_render] [generate] [loader] [evals] [--quick]

Every ratio compares two implementations measured in the same process, on one core
unless a section says otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import physim  # noqa: E402
from physim import world  # noqa: E402


def rate(fn, n_items: int, min_time: float = 2.0) -> float:
    """Items per second of ``fn()`` (which processes n_items), after one warm-up call."""
    fn()
    reps, t0 = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return reps * n_items / dt


# -- reference: a straightforward pymunk + numpy boolean-mask pipeline ---------------------
def reference_video(radii, pos0, vel0, resolution=128, n_frames=32, substeps=10):
    """pymunk at dt = 0.01 s (the paper's Box2D setting), rendered with boolean masks."""
    import pymunk

    space = pymunk.Space()
    space.gravity = (0.0, 0.0)
    bodies = []
    for r, p, v in zip(radii, pos0, vel0, strict=True):
        body = pymunk.Body(world.disc_mass(r), pymunk.moment_for_circle(world.disc_mass(r), 0, r))
        body.position = tuple(p)
        body.velocity = tuple(v)
        shape = pymunk.Circle(body, r)
        shape.elasticity = 1.0
        space.add(body, shape)
        bodies.append(body)
    cols = (np.arange(resolution) + 0.5) * world.WORLD_SIZE / resolution
    xs, ys = np.meshgrid(cols, world.WORLD_SIZE - cols)
    colors = [(255, 0, 0), (0, 0, 255)]
    frames = np.empty((n_frames, resolution, resolution, 3), np.uint8)
    for k in range(n_frames):
        frame = np.full((resolution, resolution, 3), 255, np.uint8)
        for i, (body, r) in enumerate(zip(bodies, radii, strict=True)):
            x, y = body.position
            mask = (xs - x) ** 2 + (ys - y) ** 2 <= r * r
            frame[mask] = colors[i]
        frames[k] = frame
        for _ in range(substeps):
            space.step(0.1 / substeps)
    return frames


def bench_sim_render(quick: bool) -> list[str]:
    from physim.render import render_discs_into

    rows = []
    t = 1.0 if quick else 3.0
    for name in ("uniform", "collision"):
        spec = physim.scenario(name)
        recs = spec.batch(0, "train", np.arange(64)).records()

        def ours(spec=spec, n=64):
            # simulate a chunk of videos (one batched Numba call), render each video into
            # one buffer with the disc fast path (what a data loader calls; the bytes of
            # render(rec.trajectory, rec.objects, 128))
            from physim.scenarios.base import COLOR_NAMES

            rgb_of = np.array([world.PALETTE[c] for c in COLOR_NAMES], np.uint8)
            out = np.empty((1, 32, 128, 128, 3), np.uint8)
            b = spec.batch(0, "train", np.arange(n))
            rgb = rgb_of[b.colors]
            for k in range(n):
                v = slice(k, k + 1)
                render_discs_into(out, b.positions[v], b.radii[v], b.shapes[v], rgb[v], b.angles[v])

        def ref(recs=recs):
            rec = recs[5]
            reference_video(rec.radii, rec.positions[0], rec.velocities[0])

        r_ours = rate(ours, 64, t)
        r_ref = rate(ref, 1, t)
        rows.append(
            f"| simulate+render 1 video, {name} 32x128x128 | {r_ours:,.0f} videos/s "
            f"| {r_ref:,.0f} videos/s (pymunk + numpy masks) | {r_ours / r_ref:.1f}x |"
        )
    return rows


SECTIONS = {"sim_render": bench_sim_render}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sections", nargs="*", default=list(SECTIONS), choices=list(SECTIONS))
    ap.add_argument("--quick", action="store_true", help="shorter timings (less stable)")
    args = ap.parse_args()
    print(
        f"# {time.strftime('%Y-%m-%d')} on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, python {platform.python_version()}"
    )
    print("| what | ours | reference | ratio |\n|---|---|---|---|")
    for s in args.sections:
        for row in SECTIONS[s](args.quick):
            print(row, flush=True)


if __name__ == "__main__":
    main()
