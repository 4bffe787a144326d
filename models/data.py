"""Video sources and a resumable batch iterator for the trainer.

A *source* maps an index to one uint8 video (T, R, R, 3); the :class:`BatchIterator`
turns a source into global batches whose content is a pure function of
``(seed, batch index)``, so its whole state is one integer and a resumed run sees the
same batches. ``--data`` specs understood by :func:`open_source`:

* a directory: a physim dataset (``physim.dataset.open``), frames rendered on the fly;
* ``scenario:NAME``: endless train-split videos of a physim scenario, rendered on the fly;
* ``grain:DIR``: physim's Grain loader over a dataset directory (``physim.loader``);
* ``synthetic``: a red disc in uniform motion drawn here with NumPy (tests; no physim).

The trainer also takes any iterator of uint8 (B, T, R, R, 3) batches (or dicts with a
``"frames"`` entry) that has ``get_state()`` / ``set_state(state)`` with JSON-able state.
"""

from __future__ import annotations

import os

import numpy as np

from models.configs import DataConfig


def draw_disc_video(x, y, r, resolution: int, color=(255, 0, 0)) -> np.ndarray:
    """Frames (T, R, R, 3) uint8 of a soft-edged disc on white, centres x, y (T,) world units.

    Same conventions as physim: world box [0, 10]², y up, pixel centres at +0.5, the
    paper's soft edge ``clip((r² - d²) / (0.03 r²), 0, 1)``.
    """
    s = resolution / 10.0
    c = (np.arange(resolution) + 0.5) / s  # pixel centres in world units
    col, row = np.meshgrid(c, c, indexing="xy")  # (R, R)
    wy = 10.0 - row
    d2 = (col[None] - np.asarray(x)[:, None, None]) ** 2 + (wy[None] - np.asarray(y)[:, None,
                                                                                     None]) ** 2
    a = np.clip((r * r - d2) / (0.03 * r * r), 0.0, 1.0)[..., None]  # (T, R, R, 1)
    bg = np.full(3, 255.0)
    out = (1 - a) * bg + a * np.asarray(color, np.float64)
    return np.round(out).astype(np.uint8)


class SyntheticSource:
    """Endless uniform-motion videos (paper ID ranges: r in [0.7, 1.4], v in [1, 4])."""

    def __init__(self, resolution: int = 32, frames: int = 32, seed: int = 0):
        self.resolution, self.frames, self.seed = resolution, frames, seed

    def __len__(self):
        return 0  # endless

    def params(self, i: int) -> tuple[float, float, float, float]:
        """(x0, y0, r, v) of video ``i``."""
        rng = np.random.default_rng([self.seed, i])
        r, v = rng.uniform(0.7, 1.4), rng.uniform(1.0, 4.0)
        hi = 10.0 - (24 * v * 0.1 + r)
        x0 = rng.uniform(r, hi) if hi > r else r + rng.uniform(0, 0.5)
        y0 = rng.uniform(r + 0.5, 9.5 - r)
        return x0, y0, r, v

    def __getitem__(self, i: int) -> np.ndarray:
        x0, y0, r, v = self.params(i)
        t = np.arange(self.frames) * 0.1
        return draw_disc_video(x0 + v * t, np.full_like(t, y0), r, self.resolution)


class ScenarioSource:
    """Endless videos of a physim scenario's train split, rendered at ``resolution``."""

    def __init__(self, name: str, resolution: int, seed: int = 0, split: str = "train"):
        from physim.render import render
        from physim.scenarios import scenario

        self.spec, self.render = scenario(name), render
        self.resolution, self.seed, self.split = resolution, seed, split

    def __len__(self):
        return 0

    def __getitem__(self, i: int) -> np.ndarray:
        rec = self.spec.sample(self.seed, split=self.split, index=int(i))
        return self.render(rec.trajectory, rec.objects, resolution=self.resolution)


class DatasetSource:
    """One split of a physim dataset directory (default ``train``: evaluation videos kept
    in the same folder never leak into training); ``ds.frames(i, resolution=R)`` per video."""

    def __init__(self, path: str, resolution: int, split: str = "train"):
        import physim.dataset

        self.ds, self.resolution = physim.dataset.open(path, split=split), resolution
        if len(self.ds) == 0:
            raise ValueError(f"{path} holds no {split!r} videos")
        self.ids = list(self.ds.ids)

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ds.frames(int(i), resolution=self.resolution)


class FramesIterator:
    """Adapts an iterator of batch dicts (``physim.loader``) to uint8 frame batches."""

    def __init__(self, iterator):
        self.iterator = iterator

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        b = next(self.iterator)
        return np.asarray(b["frames"] if isinstance(b, dict) else b)

    def get_state(self):
        return self.iterator.get_state()

    def set_state(self, state) -> None:
        self.iterator.set_state(state)


def open_source(spec: str, data: DataConfig, seed: int | None = None, batch_size: int = 0,
                split: str = "train"):
    """The source (or, for ``grain:``, the batch iterator) named by a ``--data`` spec.

    ``batch_size``: global batch size, needed by ``grain:`` only. ``split``: the split of a
    dataset directory that is read (``grain:`` reads ``train``).
    """
    seed = data.seed if seed is None else seed
    if spec.startswith("grain:"):
        import jax

        from physim.loader import make_loader

        loader = make_loader(spec.split(":", 1)[1], split="train",
                             batch_size=batch_size // jax.process_count(),
                             resolution=data.resolution, n_frames=data.frames, seed=seed,
                             flip=data.flip)
        return FramesIterator(iter(loader))
    if spec == "synthetic":
        return SyntheticSource(data.resolution, data.frames, seed)
    if spec.startswith("scenario:"):
        return ScenarioSource(spec.split(":", 1)[1], data.resolution, seed)
    if os.path.isdir(spec):
        return DatasetSource(spec, data.resolution, split)
    raise ValueError(f"--data {spec!r} is neither a directory, 'grain:DIR', 'synthetic' nor "
                     "'scenario:NAME'")


class BatchIterator:
    """Endless uint8 batches (B_local, T, R, R, 3); batch k depends only on (seed, k).

    Finite sources are visited in a fresh permutation per epoch; each video is flipped
    horizontally with probability 1/2 when ``flip``. Videos longer than ``frames`` give
    their first ``frames`` frames (``clip="start"``) or a window at a random offset
    (``clip="random"``). With several processes each takes its contiguous slice of the
    global batch.
    """

    def __init__(self, source, batch_size: int, frames: int, *, seed: int = 0, flip: bool = True,
                 clip: str = "start", process_index: int = 0, process_count: int = 1):
        if batch_size % process_count:
            raise ValueError(f"batch_size {batch_size} not divisible by {process_count} processes")
        if clip not in ("start", "random"):
            raise ValueError(f"data.clip must be 'start' or 'random', got {clip!r}")
        self.source, self.batch_size, self.frames = source, batch_size, frames
        self.seed, self.flip, self.clip = seed, flip, clip
        self.lo = process_index * batch_size // process_count
        self.hi = (process_index + 1) * batch_size // process_count
        self.step = 0
        self._perm_epoch, self._perm = -1, None

    def _index(self, g: int) -> int:
        n = len(self.source)
        if n == 0:
            return g
        epoch, pos = divmod(g, n)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            self._perm_epoch = epoch
        return int(self._perm[pos])

    def batch(self, k: int) -> np.ndarray:
        """Local part of global batch ``k`` (no state change)."""
        out = []
        for j in range(self.lo, self.hi):
            g = k * self.batch_size + j
            video = np.asarray(self.source[self._index(g)])
            if video.shape[0] < self.frames:
                raise ValueError(f"video has {video.shape[0]} frames, need {self.frames}")
            t0 = 0
            if self.clip == "random" and video.shape[0] > self.frames:
                t0 = int(np.random.default_rng([self.seed, 2, g]).integers(
                    video.shape[0] - self.frames + 1))
            video = video[t0 : t0 + self.frames]
            if self.flip and np.random.default_rng([self.seed, 1, g]).random() < 0.5:
                video = video[:, :, ::-1]
            out.append(video)
        return np.stack(out)

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        b = self.batch(self.step)
        self.step += 1
        return b

    def get_state(self) -> dict:
        return {"step": self.step}

    def set_state(self, state: dict) -> None:
        self.step = int(state["step"])
