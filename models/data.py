"""Video sources and a resumable batch iterator for the trainer.

A *source* maps an index to one uint8 video (T, R, R, 3); the :class:`BatchIterator`
turns a source into global batches whose content is a pure function of
``(seed, batch index)``, so its whole state is one integer and a resumed run sees the
same batches. ``--data`` specs understood by :func:`open_source`:

* a directory: a physim dataset (``physim.dataset.open``), frames rendered on the fly;
* ``scenario:NAME``: endless train-split videos of a physim scenario, rendered on the fly;
* ``grain:DIR``: physim's Grain loader over a dataset directory (``physim.loader``);
* ``synthetic``: a red disc in uniform motion drawn here with NumPy (tests; no physim);
* ``latents:DIR``: a latent cache written by ``physim encode`` (:func:`encode`): the frozen
  VAE's posterior means of every video of a source, both flips, so a latent DiT trains
  without running the VAE (the batches are float32 (B, 2, t, h, w, Cl): the latents of the
  video and of its given frames, last one repeated; see ``models.train.make_loss``).

The trainer also takes any iterator of uint8 (B, T, R, R, 3) batches (or dicts with a
``"frames"`` entry) that has ``get_state()`` / ``set_state(state)`` with JSON-able state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil

import numpy as np

from models.configs import Config, DataConfig

CACHE_KIND = "physim-latents"


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
                             flip=data.flip, workers=data.workers)
        return FramesIterator(iter(loader))
    if spec.startswith("latents:"):
        return LatentSource(spec.split(":", 1)[1])
    if spec == "synthetic":
        return SyntheticSource(data.resolution, data.frames, seed)
    if spec.startswith("scenario:"):
        return ScenarioSource(spec.split(":", 1)[1], data.resolution, seed)
    if os.path.isdir(spec):
        return DatasetSource(spec, data.resolution, split)
    raise ValueError(f"--data {spec!r} is neither a directory, 'grain:DIR', 'latents:DIR', "
                     "'synthetic' nor 'scenario:NAME'")


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
            if getattr(self.source, "flip_variants", False):  # a latent cache: both flips
                flipped = self.flip and np.random.default_rng([self.seed, 1, g]).random() < 0.5
                out.append(np.asarray(self.source[self._index(g)][int(flipped)]))
                continue
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


# ----------------------------------------------------------------------------- latent cache

class LatentSource:
    """A latent cache (``physim encode``): item i is float32 (2, 2, t, h, w, Cl), [flip]
    [video latents, given-frame latents], the VAE's unscaled posterior means. The
    :class:`BatchIterator` picks the flip with the same draw as for frames, so the batches
    are the latents of the frame batches of the encoded source."""

    flip_variants = True
    latent_cache = True

    def __init__(self, path: str):
        mpath = os.path.join(path, "manifest.json")
        if not os.path.isfile(mpath):
            raise ValueError(f"{path} is not a latent cache (no manifest.json; write one with "
                             "`physim encode`)")
        with open(mpath) as f:
            self.manifest = json.load(f)
        if self.manifest.get("kind") != CACHE_KIND:
            raise ValueError(f"{mpath} is not a {CACHE_KIND} manifest")
        self.path, self.n = path, int(self.manifest["n"])
        self._shards = {}

    def __len__(self):
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        i = int(i)
        if not 0 <= i < self.n:
            raise IndexError(f"latent {i} of a cache of {self.n}")
        size = int(self.manifest["shard_size"])
        s = i // size
        if s not in self._shards:
            entry = self.manifest["shards"][s]
            self._shards[s] = np.load(os.path.join(self.path, entry["file"]), mmap_mode="r",
                                      allow_pickle=False)
        return np.asarray(self._shards[s][i - s * size])


def _cache_key(cfg: Config) -> dict:
    """What a cache's latents depend on besides the weights: VAE config (not its compute
    dtype), resolution, frames and conditioning frames."""
    v = dataclasses.asdict(cfg.vae)
    v.pop("dtype")
    d = cfg.data
    key = {"vae": v, "resolution": d.resolution, "frames": d.frames, "n_cond": d.n_cond}
    return json.loads(json.dumps(key))  # tuples as lists: compares equal to the manifest's


def check_cache(manifest: dict | None, cfg: Config) -> None:
    """``ValueError`` unless a latent cache fits ``cfg``: a latent DiT with the cache's VAE
    config, resolution, frames and conditioning frames, clips from the start, and its
    ``vae_workdir`` at the step the cache was encoded with."""
    if manifest is None:
        raise ValueError("cached latents need a LatentSource (its manifest)")
    if cfg.model != "dit" or not cfg.latent:
        raise ValueError(f"a latent cache trains a latent DiT; {cfg.name} is not one")
    want, have = _cache_key(cfg), manifest["key"]
    if want != have:
        diff = sorted(k for k in want if want[k] != have.get(k))
        raise ValueError(f"latent cache does not fit {cfg.name}: {diff} differ "
                         f"(cache {[have.get(k) for k in diff]}, run {[want[k] for k in diff]})")
    if cfg.data.clip != "start":
        raise ValueError("a latent cache holds clips from the start: data.clip must be 'start'")
    if not cfg.vae_workdir:
        raise ValueError("a latent DiT trained from a cache still needs vae_workdir= (its "
                         "samples are decoded by that VAE)")
    from models import checkpoint

    _, step = checkpoint.read_meta(cfg.vae_workdir)
    if step != manifest["vae_step"]:
        raise ValueError(f"latent cache was encoded with {manifest['vae_workdir']} step "
                         f"{manifest['vae_step']}; vae_workdir={cfg.vae_workdir} is at step "
                         f"{step}")


def encode(cfg: Config, source, out: str, *, n: int | None = None, batch: int = 16,
           shard_size: int = 1024, source_name: str = "") -> str:
    """Write the latent cache of ``source`` (videos 0..n-1; default all of a finite source)
    for the latent DiT ``cfg`` (its ``vae_workdir``, resolution, frames, n_cond) to ``out``.

    Per video, both horizontal flips, the frozen VAE's posterior means of the video and of
    its given frames (the last one repeated, as the sampler is given), unscaled; float32
    shards of ``shard_size`` videos (N, 2, 2, t, h, w, Cl) ``.npy`` with a sha256 each in
    ``manifest.json``. Deterministic: a pure function of the source, the VAE weights and
    ``batch``. Written to a temporary folder renamed at the end: a killed run leaves no
    half cache; an existing ``out`` is refused.
    """
    import jax

    from models import checkpoint, train

    if cfg.model != "dit" or not cfg.latent:
        raise ValueError(f"physim encode needs a latent DiT preset; {cfg.name} is not one")
    n = len(source) if n is None else n
    if n < 1:
        raise ValueError("an endless source (scenario:, synthetic) needs --n >= 1 videos")
    if batch < 1 or shard_size < 1:
        raise ValueError(f"--batch and --shard-size must be >= 1, got {batch}, {shard_size}")
    if os.path.exists(out):
        raise ValueError(f"{out} exists; encode into a new folder")
    cfg = train.resolve_precision(cfg)
    d = cfg.data
    parts, frozen = train.load_frozen_vae(cfg, None, 1.0)
    g, t, r = parts

    def enc(params, v):
        vae = train.merge(g, t, r, params)
        x = train.to_float(v)
        z = vae.encode(x)[0]
        zc = z if cfg.vae.temporal_down == 1 else vae.encode(
            train.given_video(x, d.n_cond))[0]
        return jax.numpy.stack([z, zc], axis=1).astype(jax.numpy.float32)  # (B, 2, t,h,w,C)

    enc = jax.jit(enc)
    tmp = f"{out.rstrip('/')}.tmp-{os.getpid()}"
    os.makedirs(tmp)
    try:
        shards = []
        for lo in range(0, n, shard_size):
            hi = min(lo + shard_size, n)
            rows = []
            for b0 in range(lo, hi, batch):
                idx = list(range(b0, min(b0 + batch, hi)))
                v = np.stack([np.asarray(source[i])[: d.frames] for i in idx])
                if v.shape[1:] != (d.frames, d.resolution, d.resolution, 3):
                    raise ValueError(f"source videos are {v.shape[1:]}, need "
                                     f"({d.frames}, {d.resolution}, {d.resolution}, 3)")
                pad = batch - len(idx)  # a fixed batch: one compilation, padded rows dropped
                v = np.concatenate([v, np.repeat(v[-1:], pad, 0)]) if pad else v
                both = [np.asarray(enc(frozen["vae"], f))[: len(idx)]
                        for f in (v, v[:, :, :, ::-1])]
                rows.append(np.stack(both, axis=1))  # (b, 2 flips, 2, t, h, w, C)
            arr = np.ascontiguousarray(np.concatenate(rows))
            name = f"latents-{lo // shard_size:05d}.npy"
            np.save(os.path.join(tmp, name), arr, allow_pickle=False)
            with open(os.path.join(tmp, name), "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            shards.append({"file": name, "lo": lo, "hi": hi, "sha256": digest})
        meta, step = checkpoint.read_meta(cfg.vae_workdir)
        manifest = {"kind": CACHE_KIND, "version": 1, "key": _cache_key(cfg), "n": n,
                    "shard_size": shard_size, "shape": [2, 2, *cfg.diffusion_shape],
                    "dtype": "float32", "vae_dtype": cfg.vae.dtype,
                    "vae_workdir": os.path.abspath(cfg.vae_workdir),
                    "vae_step": step, "source": source_name, "encode_batch": batch,
                    "shards": shards}
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def add_parser(subparsers) -> None:
    """Register the ``encode`` subcommand (``physim encode``)."""
    p = subparsers.add_parser("encode", help="write the frozen-VAE latents of a dataset once "
                              "(both flips), for a latent DiT to train from (--data latents:DIR)")
    p.add_argument("--preset", required=True, help="the latent DiT preset to train later")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. vae_workdir=runs/vae (repeatable)")
    p.add_argument("--data", required=True, help="physim dataset dir, 'scenario:NAME' or "
                   "'synthetic' (endless sources need --n)")
    p.add_argument("--split", default="train", help="split of a --data directory")
    p.add_argument("--out", required=True, help="new folder for the cache")
    p.add_argument("--n", type=int, default=None, help="videos (default: all of --data)")
    p.add_argument("--batch", type=int, default=16, help="videos per VAE call")
    p.add_argument("--shard-size", type=int, default=1024, help="videos per shard file")
    p.set_defaults(func=run_encode)


def run_encode(args) -> int:
    from models import configs

    cfg = configs.apply_overrides(configs.get_preset(args.preset), args.set)
    if args.data.startswith(("grain:", "latents:")):
        raise ValueError(f"--data {args.data!r}: encode reads a dataset dir, scenario:NAME or "
                         "synthetic")
    source = open_source(args.data, cfg.data, split=args.split)
    out = encode(cfg, source, args.out, n=args.n, batch=args.batch,
                 shard_size=args.shard_size, source_name=args.data)
    print(f"wrote {len(LatentSource(out))} videos' latents to {out}")
    return 0
