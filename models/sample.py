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

    def generate(self, cond_frames, key, steps: int | None = None) -> np.ndarray:
        """Videos (B, T, R, R, 3) uint8 from first frames ``cond_frames`` (B, c, R, R, 3)
        uint8 (c >= the config's n_cond; extra frames are ignored). ``key``: one PRNG key,
        folded with the row index, so a video does not depend on its batch mates."""
        cfg = self.cfg
        d = cfg.data
        cond_frames = np.asarray(cond_frames)
        if cond_frames.ndim != 5 or cond_frames.shape[1] < d.n_cond or cond_frames.shape[
                2:] != (d.resolution, d.resolution, 3):
            raise ValueError(f"cond_frames must be (B, >={d.n_cond}, {d.resolution}, "
                             f"{d.resolution}, 3) uint8, got {cond_frames.shape}")
        steps = steps or cfg.diffusion.sample_steps
        b = cond_frames.shape[0]
        known = cond_frames[:, : d.n_cond]
        # The last given frame repeated: what a latent model was trained to be given.
        video = train.given_video(np.concatenate(
            [known, np.zeros((b, d.frames - d.n_cond, *known.shape[2:]), known.dtype)], 1),
            d.n_cond)
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(b))
        out = _generate(self, jnp.asarray(video), keys, int(steps))
        out = np.array(out)
        out[:, : d.n_cond] = known
        return out


def _generate_impl(cfg, parts, vparts, steps, params, frozen, video, keys):
    g, t, r = parts
    net = train.merge(g, t, r, params)
    x = train.to_float(video)  # (B, T, R, R, 3), frames after the given ones: the last
    if vparts is not None:
        vae = train.merge(*vparts, frozen["vae"])
        x = vae.encode(x)[0] * frozen["scale"]  # (B, t, h, w, Cl) = train.latents' cond
    mask = train.cond_mask(cfg, x.shape[0])  # (B, t)
    cond = x * mask[:, :, None, None, None]
    y = diffusion.sample(net, cond, mask, keys, cfg.diffusion, steps)
    if vparts is not None:
        y = vae.decode(y / frozen["scale"])  # (B, T, R, R, 3)
    return jnp.clip(jnp.round((y + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


_JIT = {}


def _generate(s: Sampler, video, keys, steps):
    # Keyed by the config, not the sampler: runs of one preset (the quickstart's three
    # models) share a compiled rollout; weights are arguments. A latent model's frozen VAE
    # is an argument too, its network the one its config names.
    from models import configs

    k = (configs.to_json(s.cfg), steps)
    if k not in _JIT:
        vparts = s.vae[0] if s.vae else None
        _JIT[k] = jax.jit(lambda p, f, v, ks: _generate_impl(s.cfg, s.parts, vparts, steps, p,
                                                              f, v, ks))
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


def _restore(workdir: str, step: int | None, ema: bool, model: str | None):
    """The :class:`Sampler` (a DiT run) or :class:`Reconstructor` (a VAE run) of
    ``workdir``; ``model`` ("dit" / "vae"), if given, is the kind the caller needs."""
    meta, step = checkpoint.read_meta(workdir, step)
    cfg = train.resolve_precision(checkpoint.config_of(meta))
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

    if args.batch < 1 or (args.limit is not None and args.limit < 1) or (
            args.steps is not None and args.steps < 1):
        raise ValueError(f"--batch, --limit and --steps must be >= 1, got {args.batch}, "
                         f"{args.limit}, {args.steps}")
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
            videos = s.generate(given, jax.random.fold_in(key, lo), args.steps)[:rows]
        for i, v in zip(idx, videos, strict=True):
            path = os.path.join(args.out, f"{ids[i]}.npy")
            np.save(path + ".tmp.npy", v, allow_pickle=False)
            os.replace(path + ".tmp.npy", path)
    print(f"wrote {n} videos to {args.out}")
    return 0
