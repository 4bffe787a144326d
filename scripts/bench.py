"""Throughput benchmarks; results go to docs/benchmarks.md (command, date, machine).

    python scripts/bench.py [sim_render] [generate] [workers] [loader] [evals] [evaluate] [export]
                            [--quick]

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

        def api(recs=recs):
            # the public per-video API: physim.simulate then physim.render, one call each
            for rec in recs[:16]:
                tr = physim.simulate(rec.objects, rec.positions[0], rec.velocities[0])
                physim.render(tr, rec.objects, 128)

        def sim_one(recs=recs):
            for rec in recs:
                physim.simulate(rec.objects, rec.positions[0], rec.velocities[0])

        batch_args = (np.stack([r.objects.radii for r in recs]),
                      np.stack([r.objects.masses for r in recs]),
                      np.stack([r.positions[0] for r in recs]),
                      np.stack([r.velocities[0] for r in recs]))

        def sim_batch(args=batch_args):
            from physim.physics import simulate_batch

            simulate_batch(*args)

        r_ours = rate(ours, 64, t)
        r_ref = rate(ref, 1, t)
        r_api = rate(api, 16, t)
        r_one, r_batch = rate(sim_one, len(recs), t), rate(sim_batch, len(recs), t)
        rows += [
            f"| simulate+render 1 video, {name} 32x128x128 | {r_ours:,.0f} videos/s "
            f"| {r_ref:,.0f} videos/s (pymunk + numpy masks) | {r_ours / r_ref:.1f}x |",
            f"| physim.simulate + physim.render, one call each per video, {name} | "
            f"{r_api:,.0f} videos/s | {r_ref:,.0f} videos/s (pymunk + numpy masks) | "
            f"{r_api / r_ref:.1f}x (bar: 25x) |",
            f"| physim.simulate per call, {name} | {r_one:,.0f} videos/s | simulate_batch of "
            f"{len(recs)}: {r_batch:,.0f} videos/s | {r_batch / r_one:.2f}x the time per video "
            f"(bar: 3x) |",
        ]
    return rows


def bench_generate(quick: bool) -> list[str]:
    """States-only dataset generation, written shards included (all cores)."""
    import shutil
    import tempfile

    from physim import dataset

    rows = []
    n = 200_000 if quick else 3_000_000
    for name, workers in (("uniform", 1), ("uniform", 2), ("collision", 2)):
        out = tempfile.mkdtemp(prefix="physim-bench-")
        try:
            t0 = time.perf_counter()
            dataset.generate(
                name,
                "train",
                n if name == "uniform" else n // 10,
                0,
                out,
                workers=workers,
                progress=False,
            )
            dt = time.perf_counter() - t0
        finally:
            shutil.rmtree(out, ignore_errors=True)
        m = n if name == "uniform" else n // 10
        rows.append(
            f"| generate {m:,} {name} states, {workers} worker(s) | {m / dt:,.0f} videos/s "
            f"({dt:.1f} s) | target 20,000 videos/s on 2 cores | {m / dt / 20_000:.1f}x |"
        )
    return rows


def bench_workers(quick: bool) -> list[str]:
    """Issue 20's bar: ``--workers 2`` at least 1.7x one worker at 100K uniform videos (10
    shards of 10K), run through the CLI in a fresh process each time (as a user runs it:
    the pool's start-up is timed), best of 3."""
    import shutil
    import subprocess
    import sys
    import tempfile

    n = 20_000 if quick else 100_000
    cli = "import sys, physim.cli; sys.exit(physim.cli.main(sys.argv[1:]))"
    best = {}
    for workers in (1, 2):
        times = []
        for _ in range(3):
            out = tempfile.mkdtemp(prefix="physim-bench-")
            shutil.rmtree(out)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", cli, "generate", "uniform", "--n", str(n),
                            "--out", out, "--workers", str(workers), "--no-progress"],
                           check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
            shutil.rmtree(out, ignore_errors=True)
        best[workers] = min(times)
    code = "import physim.cli, physim.executors as e; print(e.start_method())"
    how = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    return [
        f"| physim generate uniform --n {n:,} --workers 2 (pool: {how.strip()}; process start "
        f"included) | {n / best[2]:,.0f} videos/s ({best[2]:.2f} s) | --workers 1: "
        f"{n / best[1]:,.0f} videos/s ({best[1]:.2f} s) | {best[1] / best[2]:.2f}x (bar: 1.7x) |"
    ]


def bench_loader(quick: bool) -> list[str]:
    """Grain loader rendering 32x128x128 videos (per CPU second = per core)."""
    import tempfile

    from physim import dataset, loader

    out = tempfile.mkdtemp(prefix="physim-bench-")
    dataset.generate("uniform", "train", 4096, 0, out, progress=False)
    r = loader.benchmark(
        out,
        batches=10 if quick else 40,
        batch_size=32,
        resolution=128,
        n_frames=32,
        threads=0,
        workers=0,
    )
    return [
        f"| loader, uniform 32x128x128, batch 32 | {r['videos_per_cpu_s']:,.0f} videos per "
        f"CPU-second ({r['videos_per_s']:,.0f}/s wall) | bar: 5,000 per CPU-second | "
        f"{r['videos_per_cpu_s'] / 5000:.2f}x |"
    ]


def bench_evals(quick: bool) -> list[str]:
    from evals import bench as ebench

    r = ebench.bench(pool=32, chunk=4, min_seconds=1.0 if quick else 3.0)
    return [
        f"| parse+score uniform 32x128x128 (velocity error {r['velocity_error']:.4f}) | "
        f"{r['videos_per_s']:,.0f} videos/s | {r['reference_videos_per_s']:,.0f} videos/s "
        f"(numpy threshold-and-centroid, error {r['reference_velocity_error']:.4f}) | "
        f"{r['speedup']:.1f}x |"
    ]


def bench_scenes(quick: bool) -> list[str]:
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from bench_scenes import bench_combinatorial

    return bench_combinatorial(quick)


def bench_train(quick: bool) -> list[str]:
    """Train-step throughput of the quickstart's dit-tiny beside the previous dit-px32
    (``models.train.benchmark``: jitted step on random videos, no data loading)."""
    from models import configs, train

    steps = 3 if quick else 10
    r = {n: train.benchmark(configs.get_preset(n), steps=steps) for n in ("dit-px32",
                                                                          "dit-tiny")}
    a, b = r["dit-tiny"], r["dit-px32"]
    return [
        f"| train step dit-tiny (patch 4x8x8, {a['tokens']} tokens, {a['params'] / 1e6:.2f}M "
        f"params, batch {a['batch']}) | {a['videos_per_s']:.1f} videos/s "
        f"({a['step_s'] * 1e3:.0f} ms/step) | dit-px32 (patch 1x16x16, {b['tokens']} tokens): "
        f"{b['videos_per_s']:.1f} videos/s ({b['step_s'] * 1e3:.0f} ms/step) | "
        f"{a['videos_per_s'] / b['videos_per_s']:.2f}x |"
    ]


def bench_export(quick: bool) -> list[str]:
    """Issue 20's export bars: ``physim export`` npy of 500 128-px 32-frame videos against
    rendering them into memory, and mp4 against a per-video ``imageio.v3.imwrite`` loop in
    this process (ours on one thread, then two; the loop's ffmpeg processes run x264 with
    their default threads; files written to a temp folder on the same disk)."""
    import shutil
    import tempfile

    import imageio.v3 as iio

    from physim import dataset, video

    n = 100 if quick else 500
    root = tempfile.mkdtemp(prefix="physim-bench-")
    try:
        dataset.generate("uniform", "train", n, 1, f"{root}/ds", progress=False)  # id: 160
        ds = dataset.open(f"{root}/ds")
        video.export(ds, "npy", f"{root}/warm", resolution=128, progress=False)  # warm-up
        times = {}
        t0 = time.perf_counter()
        for i in range(n):
            ds.frames(i, resolution=128)
        times["render"] = time.perf_counter() - t0
        for fmt in ("npy", "mp4"):
            t0 = time.perf_counter()
            video.export(ds, fmt, f"{root}/{fmt}", resolution=128, progress=False)
            times[fmt] = time.perf_counter() - t0
        t0 = time.perf_counter()
        video.export(ds, "mp4", f"{root}/mp4-2", resolution=128, progress=False, workers=2)
        times["mp4-2"] = time.perf_counter() - t0
        os.makedirs(f"{root}/loop")
        t0 = time.perf_counter()
        for i, vid in enumerate(ds.ids):
            iio.imwrite(f"{root}/loop/{vid}.mp4", ds.frames(i, resolution=128), fps=video.MP4_FPS,
                        codec="libx264", quality=10, macro_block_size=2)
        times["loop"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(root, ignore_errors=True)
    r, e, m, lo = times["render"], times["npy"], times["mp4"], times["loop"]
    return [
        f"| physim export npy, {n} uniform 32x128x128, 1 thread | {n / e:.0f} videos/s "
        f"({e:.1f} s) | rendering them into memory: {n / r:.0f} videos/s ({r:.1f} s) | "
        f"{e / r:.2f}x the time (bar: 2x) |",
        f"| physim export mp4, same videos, 1 thread | {n / m:.0f} videos/s ({m:.1f} s) | "
        f"imageio.v3.imwrite loop: {n / lo:.0f} videos/s ({lo:.1f} s) | {lo / m:.2f}x as fast "
        f"(bar: 3x) |",
        f"| physim export mp4 --workers 2 (threads) | {n / times['mp4-2']:.0f} videos/s "
        f"({times['mp4-2']:.1f} s) | imageio.v3.imwrite loop (ffmpeg's own x264 threads) | "
        f"{lo / times['mp4-2']:.2f}x as fast |",
    ]


def bench_evaluate(quick: bool) -> list[str]:
    """Issue 16's bar: the default metrics (laws, abnormal, video) on 500 128-px 32-frame
    videos within 3x the time of ``--metrics laws abnormal``, through the one evaluation
    core (:func:`evals.evaluate_arrays`, frames in memory: no decoding in either timing).
    One warm-up call each first (numba and XLA compilation are not timed)."""
    import tempfile

    import evals
    import physim.dataset
    from evals.metrics import DEFAULT_METRICS

    n_ood = 20 if quick else 340  # + the 160-video ID grid = 500
    with tempfile.TemporaryDirectory() as d:
        physim.dataset.generate("uniform", split="id", n=160, seed=1, out=d, progress=False)
        physim.dataset.generate("uniform", split="ood", n=n_ood, seed=1, out=d, progress=False)
        ds = physim.dataset.open(d)
        vids = {v: ds.frames(i, resolution=128) for i, v in enumerate(ds.ids)}
        n = len(vids)
        warm = dict(list(vids.items())[:2])
        times = {}
        for name, metrics in (("fast", ("laws", "abnormal")), ("default", DEFAULT_METRICS)):
            evals.evaluate_arrays(warm, ds, metrics=metrics, allow_missing=True)
            t0 = time.perf_counter()
            evals.evaluate_arrays(vids, ds, metrics=metrics)
            times[name] = time.perf_counter() - t0
    f, dflt = times["fast"], times["default"]
    return [
        f"| physim evaluate default metrics (laws abnormal video), {n} uniform 32x128x128 | "
        f"{n / dflt:.1f} videos/s ({dflt:.0f} s) | --metrics laws abnormal: {n / f:.1f} "
        f"videos/s ({f:.0f} s) | {dflt / f:.2f}x the time (bar: 3x) |"
    ]


SECTIONS = {
    "sim_render": bench_sim_render,
    "generate": bench_generate,
    "loader": bench_loader,
    "evals": bench_evals,
    "scenes": bench_scenes,
    "train": bench_train,
    "evaluate": bench_evaluate,
    "workers": bench_workers,
    "export": bench_export,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sections", nargs="*", help=f"any of {list(SECTIONS)} (default: all)")
    ap.add_argument("--quick", action="store_true", help="shorter timings (less stable)")
    args = ap.parse_args()
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    args.sections = args.sections or list(SECTIONS)
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
