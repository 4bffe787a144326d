"""Speed of parse + score, against a straightforward NumPy threshold-and-centroid parse.

:func:`bench` renders a pool of uniform-motion videos once, then times, on one core and in
the same process (CPU time, so other load on the machine inflates it less):

- ours: :func:`evals.parse.parse_batch` (Numba) + the paper velocity error
  (:func:`evals.laws.velocity_error_batch`);
- reference: the paper's parse written plainly in NumPy (threshold red pixels, mean of
  their coordinates, whole frames) + the same score.

The pool is cycled: with ``pool`` small the frames stay in cache, as when a decoder or
renderer hands frames straight to the parser; a large pool streams them from memory.
``scripts/bench.py`` calls :func:`bench` and prints :func:`format_result`.
"""

from __future__ import annotations

import time

import numpy as np

from evals import laws, parse
from physim import world


def numpy_reference(frames: np.ndarray) -> np.ndarray:
    """Threshold-and-centroid positions (B, T, 1, 2) of red objects, frame by frame.

    The paper's parse as its evaluate.py writes it: per frame, threshold the red pixels,
    take the mean of their coordinates (an empty mask gives NaN).
    """
    f = np.asarray(frames)
    res = f.shape[-2]
    s = world.WORLD_SIZE / res
    out = np.full((*f.shape[:2], 1, 2), np.nan)
    for b in range(f.shape[0]):
        for t in range(f.shape[1]):
            img = f[b, t]
            mask = (img[..., 0] > 127) & (img[..., 1] < 127) & (img[..., 2] < 127)
            rc = np.argwhere(mask)
            if len(rc):
                row, col = rc.mean(axis=0) + 0.5
                out[b, t, 0] = (col * s, world.WORLD_SIZE - row * s)
    return out


def numpy_reference_vectorized(frames: np.ndarray) -> np.ndarray:
    """The same parse vectorised over whole batches (B, T, R, R, 3) -> (B, T, 1, 2)."""
    f = np.asarray(frames)
    res = f.shape[-2]
    mask = (f[..., 0] > 127) & (f[..., 1] < 127) & (f[..., 2] < 127)
    area = mask.sum(axis=(-2, -1))
    idx = (np.arange(res) + 0.5) * (world.WORLD_SIZE / res)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (mask.sum(axis=-2) * idx).sum(axis=-1) / area
        y = world.WORLD_SIZE - (mask.sum(axis=-1) * idx).sum(axis=-1) / area
    return np.stack([x, y], axis=-1)[..., None, :]


def _truth(records):
    pos = np.stack([r.trajectory.positions for r in records])
    valid = np.stack([laws.valid_frames(r) for r in records])
    return pos, valid


def _time(fn, min_seconds: float) -> float:
    """Calls of ``fn`` per CPU second over at least ``min_seconds`` (after one warm call)."""
    fn()
    n, t0 = 0, time.process_time()
    while True:
        fn()
        n += 1
        dt = time.process_time() - t0
        if dt >= min_seconds:
            return n / dt


def bench(
    pool: int = 4,
    chunk: int = 4,
    resolution: int = world.DEFAULT_RESOLUTION,
    min_seconds: float = 2.0,
    seed: int = 0,
) -> dict:
    """Videos per CPU-second of ours and of the NumPy reference, and their velocity errors.

    Args:
      pool: distinct videos rendered (cycled); chunk: videos per parse call.
      resolution: frame side; min_seconds: CPU time per measurement.
    """
    import physim
    from physim.render import render

    spec = physim.scenario("uniform")
    n_grid = len(spec.grid("id")[0])
    records = [spec.sample(seed, split="id", index=(i * 37) % n_grid) for i in range(pool)]
    frames = np.stack([render(r.trajectory, r.objects, resolution) for r in records])
    colors = records[0].objects.rgb
    pos_true, valid = _truth(records)
    chunks = [slice(i, min(i + chunk, pool)) for i in range(0, pool, chunk)]

    def ours():
        for s in chunks:
            tracks = parse.parse_batch(frames[s], colors)
            pos = np.stack([t.positions for t in tracks])
            laws.velocity_error_batch(pos, pos_true[s], valid[s])

    def reference():
        for s in chunks:
            laws.velocity_error_batch(numpy_reference(frames[s]), pos_true[s], valid[s])

    def reference_vec():
        for s in chunks:
            pos = numpy_reference_vectorized(frames[s])
            laws.velocity_error_batch(pos, pos_true[s], valid[s])

    ours_rate = _time(ours, min_seconds) * pool
    ref_rate = _time(reference, min_seconds) * pool
    vec_rate = _time(reference_vec, min_seconds) * pool
    tracks = parse.parse_batch(frames, colors)
    err = laws.velocity_error_batch(np.stack([t.positions for t in tracks]), pos_true, valid)
    err_ref = laws.velocity_error_batch(numpy_reference(frames), pos_true, valid)
    return {
        "videos_per_s": ours_rate,
        "reference_videos_per_s": ref_rate,
        "speedup": ours_rate / ref_rate,
        "reference_vectorized_videos_per_s": vec_rate,
        "velocity_error": float(np.nanmean(err)),
        "reference_velocity_error": float(np.nanmean(err_ref)),
        "pool": pool,
        "chunk": chunk,
        "resolution": resolution,
        "frames": int(frames.shape[1]),
    }


def format_result(r: dict) -> str:
    return (
        f"evals parse+score ({r['resolution']}², {r['frames']} frames, pool {r['pool']}): "
        f"{r['videos_per_s']:.0f} videos/s per core vs NumPy threshold-and-centroid "
        f"{r['reference_videos_per_s']:.0f} videos/s ({r['speedup']:.1f}x; batch-vectorised "
        f"{r['reference_vectorized_videos_per_s']:.0f}); velocity error "
        f"{r['velocity_error']:.4f} vs {r['reference_velocity_error']:.4f}"
    )


if __name__ == "__main__":
    for p in (1, 4, 32):
        print(format_result(bench(pool=p, chunk=min(p, 4))))
