"""Training loader: a Grain pipeline that renders videos on the fly from a dataset's states.

::

    loader = physim.loader.make_loader("data/uniform", split="train", batch_size=32,
                                       resolution=128, n_frames=32, seed=0)
    it = iter(loader)
    batch = next(it)            # batch["frames"]: (B, T, R, R, 3) uint8, + truth arrays
    state = it.get_state()      # checkpoint; later: it.set_state(state) resumes exactly

Pipeline: video positions of this process's shard (``[index::count]``, by default
``jax.process_index()`` / ``jax.process_count()``) -> seeded shuffle (a new order every
epoch) -> repeat -> per-video flip draw (seeded by position, so it resumes exactly) ->
batches rendered into one preallocated array. Flipping mirrors states and geometry about
x = 5 before rendering, so frames and truth (positions, velocities) always agree.

Every batch is a dict:
  ``frames`` (B, T, R, R, 3) uint8; ``positions``, ``velocities`` (B, T, N, 2) float32 world
  units (bodies past ``n_bodies`` are zero); ``radii`` (B, N) float32; ``n_bodies`` (B,)
  int32; ``index`` (B,) int64 video positions in the dataset; ``flipped`` (B,) bool.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import threading

import numpy as np

from physim import world

_POOL = 16  # frames buffers kept for reuse per process


@dataclasses.dataclass(frozen=True)
class LoaderConfig:
    """Loader settings (see :func:`make_loader`)."""

    batch_size: int = 32
    resolution: int = world.DEFAULT_RESOLUTION
    n_frames: int | None = None  # None: all frames of the dataset
    flip: bool = True  # mirror each video with probability 1/2
    shuffle: bool = True
    seed: int = 0
    num_epochs: int | None = None  # None: repeat forever
    drop_remainder: bool = True
    workers: int = 0  # >0: Grain worker processes (mp_prefetch)
    threads: int = 1  # prefetch threads per process (0: render on demand)
    prefetch: int = 4  # batches buffered ahead per process

    def __post_init__(self):
        if self.batch_size < 1 or self.resolution < 1:
            raise ValueError("batch_size and resolution must be >= 1")
        if self.n_frames is not None and self.n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {self.n_frames}")
        if self.num_epochs is not None and self.num_epochs < 1:
            raise ValueError(f"num_epochs must be >= 1 or None, got {self.num_epochs}")
        if self.threads < 0 or self.prefetch < 0:
            raise ValueError("threads and prefetch must be >= 0")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")


class RenderBatch:
    """Grain ``batch_fn``: [(video position, flip)] -> a rendered batch (picklable)."""

    def __init__(self, ds, resolution: int, n_frames: int | None):
        self.ds = ds
        self.resolution = int(resolution)
        t = ds.n_frames if n_frames is None else int(n_frames)
        if not 1 <= t <= ds.n_frames:
            raise ValueError(f"n_frames must be in [1, {ds.n_frames}], got {n_frames}")
        self.n_frames = t
        self.n_bodies = max(ds.max_bodies, 1)
        # Scenes of primitives (no composite ``geometry`` in the spec) take the batched
        # path: one column gather per shard and one render call per batch.
        spec = ds.spec
        self.discs = spec is None or not hasattr(spec, "geometry")
        self._pool: list[np.ndarray] = []
        self._lock = threading.Lock()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pool"], state["_lock"] = [], None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _frames(self, shape, out: dict) -> None:
        """Put a frames buffer of ``shape`` into ``out``: a pooled one nobody else holds
        any more, else a new one. Writing into memory that was touched before avoids
        the page faults of fresh allocations, which otherwise cost more than drawing."""
        with self._lock:
            for a in self._pool:
                # References: the pool's list, the loop variable, getrefcount's argument.
                # Anything more (a batch still alive, a view, a zero-copy jax array)
                # means the buffer is in use.
                if a.shape == shape and sys.getrefcount(a) <= 3:
                    out["frames"] = a
                    return
            a = np.empty(shape, dtype=np.uint8)
            if len(self._pool) < _POOL:
                self._pool.append(a)
            out["frames"] = a

    def __call__(self, items) -> dict[str, np.ndarray]:
        return self._discs(items) if self.discs else self._bodies(items)

    def _discs(self, items) -> dict[str, np.ndarray]:
        """The batch of a primitives dataset without per-video Python: the states of all
        its videos gathered shard by shard, mirrored where flipped, drawn in one
        :func:`physim.render.render_discs_into` call (the same bytes as :meth:`_bodies`)."""
        from physim import render
        from physim.dataset import _RGB

        ds = self.ds
        b, t, r, n = len(items), self.n_frames, self.resolution, self.n_bodies
        idx = np.fromiter((int(i) for i, _ in items), np.int64, b)
        flip = np.fromiter((bool(f) for _, f in items), bool, b)
        shard_of, row = ds.locate_many(idx)
        pos = np.zeros((b, t, n, 2))
        vel = np.zeros((b, t, n, 2))
        ang = np.zeros((b, t, n))
        rad = np.zeros((b, n))
        shp = np.zeros((b, n), np.int32)
        col = np.zeros((b, n), np.intp)
        nb = np.zeros(b, np.int64)
        for s in np.unique(shard_of):
            m = np.nonzero(shard_of == s)[0]
            sh, k = ds.shard(int(s)), row[m]
            w = min(sh["radii"].shape[1], n)
            pos[m, :, :w] = sh["positions"][k, :t, :w]
            vel[m, :, :w] = sh["velocities"][k, :t, :w]
            if "angles" in sh:
                ang[m, :, :w] = sh["angles"][k, :t, :w]
            rad[m, :w] = sh["radii"][k, :w]
            shp[m, :w] = sh["shapes"][k, :w]
            col[m, :w] = sh["colors"][k, :w]
            nb[m] = sh["n_bodies"][k]
        live = np.arange(n)[None, :] < nb[:, None]  # (B, N): bodies past n_bodies are cut
        pos[flip, ..., 0] = world.WORLD_SIZE - pos[flip, ..., 0]
        vel[flip, ..., 0] = -vel[flip, ..., 0]
        ang[flip] = -ang[flip]
        pos = np.where(live[:, None, :, None], pos, 0.0)
        vel = np.where(live[:, None, :, None], vel, 0.0)
        ang = np.where(live[:, None, :], ang, 0.0)
        rad = np.where(live, rad, 0.0)
        out = {
            "positions": pos.astype(np.float32),
            "velocities": vel.astype(np.float32),
            "radii": rad.astype(np.float32),
            "n_bodies": nb.astype(np.int32),
            "index": idx,
            "flipped": flip,
        }
        self._frames((b, t, r, r, 3), out)
        render.render_discs_into(out["frames"], pos, rad, np.where(live, shp, 0),
                                 _RGB[np.where(live, col, 0)], ang)
        return out

    def _bodies(self, items) -> dict[str, np.ndarray]:
        """The batch video by video (composite bodies: the spec's own geometry)."""
        from physim import render
        from physim.dataset import flip_states

        b, t, r, n = len(items), self.n_frames, self.resolution, self.n_bodies
        out = {
            "positions": np.zeros((b, t, n, 2), dtype=np.float32),
            "velocities": np.zeros((b, t, n, 2), dtype=np.float32),
            "radii": np.zeros((b, n), dtype=np.float32),
            "n_bodies": np.zeros(b, dtype=np.int32),
            "index": np.zeros(b, dtype=np.int64),
            "flipped": np.zeros(b, dtype=bool),
        }
        self._frames((b, t, r, r, 3), out)
        for j, (i, flip) in enumerate(items):
            i = int(i)
            st = self.ds.states(i)
            pos, vel, ang = st["positions"][:t], st["velocities"][:t], st["angles"][:t]
            geom = self.ds.geometry(i, st)
            if flip:
                pos, ang, geom = flip_states(pos, ang, geom)
                vel = vel * np.array([-1.0, 1.0])
            render.render_into(out["frames"][j], geom, pos, ang)
            k = pos.shape[1]
            out["positions"][j, :, :k] = pos
            out["velocities"][j, :, :k] = vel
            out["radii"][j, :k] = st["radii"]
            out["n_bodies"][j] = k
            out["index"][j] = i
            out["flipped"][j] = bool(flip)
        return out


class _DrawFlip:
    """Grain map with index: (step, video position) -> (position, flip).

    The flip is a counter-based draw of (seed, step) (:mod:`physim.rng`), so it is the
    same after a checkpoint restore and differs between epochs.
    """

    def __init__(self, enabled: bool, seed: int):
        self.enabled, self.seed = enabled, int(seed)

    def __call__(self, step, i):
        if not self.enabled:
            return int(i), False
        from physim import rng

        return int(i), bool(rng.uniform(self.seed, [step], _FLIP_STREAM)[0] < 0.5)


_FLIP_STREAM = 0x464C4950  # "FLIP": a draw stream no scenario uses


def _process_shard(index, count):
    if index is None or count is None:
        import jax

        index = jax.process_index() if index is None else index
        count = jax.process_count() if count is None else count
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"need 0 <= shard_index < shard_count, got {index}, {count}")
    return int(index), int(count)


def make_loader(
    dataset,
    *,
    split: str | None = None,
    config: LoaderConfig | None = None,
    shard_index: int | None = None,
    shard_count: int | None = None,
    **overrides,
):
    """A Grain ``IterDataset`` of rendered batches over a dataset.

    Args:
      dataset: a dataset folder or an opened :class:`physim.dataset.Dataset`.
      split: one split of the folder (None: all of them; ignored for an opened dataset).
      config: :class:`LoaderConfig`; keyword ``overrides`` replace its fields
        (``batch_size=8, resolution=64, n_frames=16, seed=1, flip=False, ...``).
      shard_index, shard_count: this process's slice of the videos (default: JAX's
        process index and count).

    Returns:
      ``grain.IterDataset``; ``iter()`` gives a checkpointable iterator
      (``get_state()`` / ``set_state()``).
    """
    import grain

    from physim.dataset import Dataset
    from physim.dataset import open as open_dataset

    cfg = dataclasses.replace(config or LoaderConfig(), **overrides)
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset, split=split)
    index, count = _process_shard(shard_index, shard_count)
    positions = grain.MapDataset.range(len(ds))[index::count]
    if len(positions) == 0:
        raise ValueError(f"process shard {index}/{count} of {len(ds)} videos is empty")
    if cfg.shuffle:
        positions = positions.shuffle(seed=cfg.seed)
    positions = positions.repeat(cfg.num_epochs)
    items = positions.map_with_index(_DrawFlip(cfg.flip, cfg.seed))
    batches = items.batch(
        cfg.batch_size,
        drop_remainder=cfg.drop_remainder,
        batch_fn=RenderBatch(ds, cfg.resolution, cfg.n_frames),
    )
    # Rendering holds the GIL, so one prefetch thread (overlapping the training step) is
    # the useful amount; more cores come from worker processes.
    it = batches.to_iter_dataset(
        grain.ReadOptions(num_threads=cfg.threads, prefetch_buffer_size=cfg.prefetch)
    )
    if cfg.workers > 0:
        _absl_flags_parsed()
        it = it.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=cfg.workers),
            worker_init_fn=functools.partial(_worker_init, parent=os.getpid()),
        )
    return it


def _absl_flags_parsed() -> None:
    # Grain reads absl flags in its worker machinery; a program that never parsed absl
    # flags (any non-absl main) fails there (google/grain#1355): mark them parsed.
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _worker_init(worker_index: int, worker_count: int, *, parent: int) -> None:
    """Grain worker set-up: absl flags, and end with process ``parent`` (a SIGKILLed
    ``physim train`` must not leave its loader's workers running)."""
    from physim.executors import die_with_parent

    _absl_flags_parsed()
    die_with_parent(parent)


def benchmark(dataset, *, batches: int = 20, **overrides) -> dict[str, float]:
    """Throughput of the loader over ``dataset`` (one process, after a warm-up batch).

    Returns ``videos_per_s`` (wall clock) and ``videos_per_cpu_s`` (videos per second of
    this process's CPU time, i.e. per core, which stays meaningful on a busy machine).
    """
    import time

    it = iter(make_loader(dataset, shard_index=0, shard_count=1, **overrides))
    next(it)  # compile / open shards
    w0, c0, n = time.perf_counter(), time.process_time(), 0
    for _ in range(batches):
        n += len(next(it)["index"])
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"videos": n, "videos_per_s": n / wall, "videos_per_cpu_s": n / max(cpu, 1e-9)}
