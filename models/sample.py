"""Sampling: load a trained DiT from its workdir and roll out videos from first frames.

``physim sample --workdir W --data EVALDIR --out GEN [--steps N]`` writes, for every video
of the physim dataset EVALDIR, ``GEN/{id}.npy``: the full-length uint8 (T, R, R, 3) video
at the model's resolution, its first ``n_cond`` frames copied from the data.

Given a VAE workdir instead, the same command writes the VAE's reconstructions of the
whole videos, all their frames (posterior mean, decoded; no frame copied from the data;
a VAE trained on short clips reconstructs any length that its temporal downsampling
divides), so that
``physim evaluate GEN --truth EVALDIR`` measures how much physics the VAE keeps.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from models import checkpoint, diffusion, train


@dataclasses.dataclass
class Sampler:
    """A trained DiT (EMA weights) ready to generate; build with :func:`load`."""

    cfg: object
    params: dict
    parts: tuple  # (graphdef, template, rest) of the DiT
    vae: tuple | None  # (vae_parts, frozen) for latent models

    def generate(self, cond_frames, key, steps: int | None = None,
                 mean_of: int | None = None) -> np.ndarray:
        """Videos (B, T, R, R, 3) uint8 from first frames ``cond_frames`` (B, c, R, R, 3)
        uint8 (c >= the config's n_cond; extra frames are ignored). ``key``: one PRNG key,
        folded with the row index, so a video does not depend on its batch mates.
        ``steps`` and ``mean_of`` (rollouts averaged per video) default to the config's
        ``diffusion.sample_steps`` and ``diffusion.sample_mean``."""
        cfg = self.cfg
        d = cfg.data
        cond_frames = np.asarray(cond_frames)
        if cond_frames.ndim != 5 or cond_frames.shape[1] < d.n_cond or cond_frames.shape[
                2:] != (d.resolution, d.resolution, 3):
            raise ValueError(f"cond_frames must be (B, >={d.n_cond}, {d.resolution}, "
                             f"{d.resolution}, 3) uint8, got {cond_frames.shape}")
        steps = steps or cfg.diffusion.sample_steps
        mean_of = mean_of or cfg.diffusion.sample_mean
        if steps < 1 or mean_of < 1:
            raise ValueError(f"steps and mean_of must be >= 1, got {steps}, {mean_of}")
        b = cond_frames.shape[0]
        known = cond_frames[:, : d.n_cond]
        # The last given frame repeated: what a latent model was trained to be given.
        video = train.given_video(np.concatenate(
            [known, np.zeros((b, d.frames - d.n_cond, *known.shape[2:]), known.dtype)], 1),
            d.n_cond)
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(b))
        out = _generate(self, jnp.asarray(video), keys, int(steps), int(mean_of))
        out = np.array(out)
        out[:, : d.n_cond] = known
        return out


def member_keys(keys, j):
    """Keys (B,) of rollout ``j`` of a ``mean_of`` sample: the row keys themselves for
    j = 0 (the single sample), each folded with ``j`` for j >= 1 (its own noise)."""
    if isinstance(j, int) and j == 0:
        return keys
    return jax.vmap(lambda k: jax.random.fold_in(k, j))(keys)


def _generate_impl(cfg, parts, vparts, steps, mean_of, params, frozen, video, keys):
    g, t, r = parts
    net = train.merge(g, t, r, params)
    x = train.to_float(video)  # (B, T, R, R, 3), frames after the given ones: the last
    if vparts is not None:
        vae = train.merge(*vparts, frozen["vae"])
        x = vae.encode(x)[0] * frozen["scale"]  # (B, t, h, w, Cl) = train.latents' cond
    mask = train.cond_mask(cfg, x.shape[0])  # (B, t)
    cond = x * mask[:, :, None, None, None]

    def rollout(ks):  # (B,) keys -> (B, T, R, R, 3) float pixels
        y = diffusion.sample(net, cond, mask, ks, cfg.diffusion, steps)
        return vae.decode(y / frozen["scale"]) if vparts is not None else y

    y = rollout(keys)  # the single sample, bit for bit, and the first of a mean
    if mean_of > 1:
        y = jax.lax.fori_loop(1, mean_of, lambda j, acc: acc + rollout(member_keys(keys, j)),
                              y) / mean_of
    return jnp.clip(jnp.round((y + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


_JIT = {}


def _generate(s: Sampler, video, keys, steps, mean_of=1):
    # Keyed by the config, not the sampler: runs of one preset (the quickstart's three
    # models) share a compiled rollout; weights are arguments. A latent model's frozen VAE
    # is an argument too, its network the one its config names.
    from models import configs

    k = (configs.to_json(s.cfg), steps, mean_of)
    if k not in _JIT:
        vparts = s.vae[0] if s.vae else None
        _JIT[k] = jax.jit(lambda p, f, v, ks: _generate_impl(s.cfg, s.parts, vparts, steps,
                                                              mean_of, p, f, v, ks))
    frozen = s.vae[1] if s.vae else None
    return _JIT[k](s.params, frozen, video, keys)


@dataclasses.dataclass
class Reconstructor:
    """A trained VAE (EMA or raw weights) that reconstructs videos; build with
    :func:`load_vae`."""

    cfg: object
    params: dict
    parts: tuple  # (graphdef, template, rest) of the VAE

    def reconstruct(self, videos) -> np.ndarray:
        """uint8 (B, T, R, R, 3) -> uint8 (B, T, R, R, 3): decode(posterior mean(encode))."""
        d = self.cfg.data
        videos = np.asarray(videos)
        if videos.ndim != 5 or videos.shape[2:] != (d.resolution, d.resolution, 3) or (
                videos.shape[1] % self.cfg.vae.temporal_down):
            raise ValueError(f"videos must be (B, T, {d.resolution}, {d.resolution}, 3) uint8 "
                             f"with T a multiple of {self.cfg.vae.temporal_down}, got "
                             f"{videos.shape}")
        return np.array(_reconstruct(self, jnp.asarray(videos)))


def _reconstruct(r: Reconstructor, videos):
    k = (id(r), "recon")
    if k not in _JIT:
        g, t, rest = r.parts

        def f(params, v):
            vae = train.merge(g, t, rest, params)
            y = vae.decode(vae.encode(train.to_float(v))[0])  # posterior mean, decoded
            return jnp.clip(jnp.round((y + 1.0) * 127.5), 0, 255).astype(jnp.uint8)
        _JIT[k] = jax.jit(f)
    return _JIT[k](r.params, videos)


SAMPLING_FILE = "sampling.json"
_SAMPLING_KEYS = {"steps": "sample_steps", "mean_of": "sample_mean"}


def sampling_defaults(workdir: str, cfg):
    """``cfg`` with the sampler settings of ``workdir/sampling.json``, if there is one.

    A shipped export can say how it samples best without retraining, e.g.
    ``{"mean_of": 8}`` (:attr:`~models.configs.DiffusionConfig.sample_mean`) or
    ``{"steps": 2}``; ``physim sample --steps / --mean-of`` still override it.
    """
    import json

    path = os.path.join(workdir, SAMPLING_FILE)
    if not os.path.exists(path):
        return cfg
    with open(path) as f:
        got = json.load(f)
    if not isinstance(got, dict) or set(got) - set(_SAMPLING_KEYS) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in got.values()):
        raise ValueError(f"{path}: want integers >= 1 for keys {sorted(_SAMPLING_KEYS)}, got "
                         f"{got!r}")
    return dataclasses.replace(cfg, diffusion=dataclasses.replace(
        cfg.diffusion, **{_SAMPLING_KEYS[k]: v for k, v in got.items()}))


def _restore(workdir: str, step: int | None, ema: bool, model: str | None):
    """The :class:`Sampler` (a DiT run) or :class:`Reconstructor` (a VAE run) of
    ``workdir``; ``model`` ("dit" / "vae"), if given, is the kind the caller needs."""
    meta, step = checkpoint.read_meta(workdir, step)
    cfg = sampling_defaults(workdir, train.resolve_precision(checkpoint.config_of(meta)))
    if model == "dit" and cfg.model != "dit":
        raise ValueError(f"{workdir} holds a {cfg.model!r} run; sampling needs a DiT")
    if model == "vae" and cfg.model != "vae":
        raise ValueError(f"{workdir} holds a {cfg.model!r} run, not a VAE")
    # A concrete model: its non-trainable tables (RoPE, positions) must be real arrays.
    g, _, r, t = train.split_params(train.build_model(cfg))
    from flax import nnx
    params, _ = checkpoint.load_weights(workdir, nnx.to_pure_dict(t), step, ema=ema)
    if cfg.model == "vae":
        return Reconstructor(cfg, params, (g, t, r))
    vae = None
    if cfg.latent:
        vae = train.load_frozen_vae(cfg, None, meta["latent_scale"])
    return Sampler(cfg, params, (g, t, r), vae)


def load_vae(workdir: str, step: int | None = None, ema: bool = True) -> Reconstructor:
    """The VAE of a training ``workdir`` (latest checkpoint, EMA weights by default)."""
    return _restore(workdir, step, ema, "vae")


def load(workdir: str, step: int | None = None, ema: bool = True) -> Sampler:
    """The DiT of a training ``workdir`` (latest checkpoint, EMA weights by default)."""
    return _restore(workdir, step, ema, "dit")


def add_parser(subparsers) -> None:
    """Register the ``sample`` subcommand."""
    p = subparsers.add_parser("sample", help="roll out a trained DiT on a physim dataset "
                              "(or reconstruct it with a trained VAE)")
    p.add_argument("--workdir", required=True,
                   help="training workdir of a DiT (rollouts) or a VAE (reconstructions)")
    p.add_argument("--data", required=True, help="physim dataset dir (e.g. an eval split)")
    p.add_argument("--out", required=True, help="folder for {id}.npy videos")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: config)")
    p.add_argument("--mean-of", type=int, default=None, metavar="K",
                   help="average K rollouts, each from its own noise, into each video (the "
                        "posterior mean; default: the config's diffusion.sample_mean)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--limit", type=int, default=None, help="only the first N videos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", choices=("ema", "raw"), default="ema",
                   help="EMA weights (default) or the raw trained weights")
    p.add_argument("--compile-cache", default=None, metavar="DIR",
                   help="JAX persistent compilation cache, as for physim train (default: "
                        "$PHYSIM_COMPILE_CACHE, else ~/.cache/physim/jax/...; '' turns it off)")
    p.set_defaults(func=run_sample)


def run_sample(args) -> int:
    from tqdm import tqdm

    import physim.dataset

    if args.batch < 1 or any(v is not None and v < 1
                             for v in (args.limit, args.steps, args.mean_of)):
        raise ValueError(f"--batch, --limit, --steps and --mean-of must be >= 1, got "
                         f"{args.batch}, {args.limit}, {args.steps}, {args.mean_of}")
    train.compile_cache(args.compile_cache)
    s = _restore(args.workdir, None, args.weights == "ema", None)
    is_vae = isinstance(s, Reconstructor)
    d = s.cfg.data
    ds = physim.dataset.open(args.data)
    n = len(ds) if args.limit is None else min(args.limit, len(ds))
    ids = ds.ids[:n]
    os.makedirs(args.out, exist_ok=True)
    key = jax.random.key(args.seed)
    for lo in tqdm(range(0, n, args.batch), desc="reconstruct" if is_vae else "sample"):
        idx = list(range(lo, min(lo + args.batch, n)))
        rows = len(idx)
        # A VAE reconstructs whole videos; a DiT is given its conditioning frames.
        given = np.stack([ds.frames(i, resolution=d.resolution,
                                    n_frames=None if is_vae else d.n_cond) for i in idx])
        if rows < args.batch:  # pad to a fixed batch: one compilation
            given = np.concatenate([given, np.repeat(given[-1:], args.batch - rows, 0)])
        if is_vae:
            videos = s.reconstruct(given)[:rows]
        else:
            videos = s.generate(given, jax.random.fold_in(key, lo), args.steps,
                                args.mean_of)[:rows]
        for i, v in zip(idx, videos, strict=True):
            path = os.path.join(args.out, f"{ids[i]}.npy")
            np.save(path + ".tmp.npy", v, allow_pickle=False)
            os.replace(path + ".tmp.npy", path)
    print(f"wrote {n} videos to {args.out}")
    return 0
