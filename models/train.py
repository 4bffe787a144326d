"""One training loop for the VAE and the DiT: a pure jitted step over an explicit state.

``state = {"step", "params", "opt_state", "ema"}`` (pure dicts of arrays, replicated over
a 1-D ``jax.sharding.Mesh`` of all devices; batches are sharded along it). The step is
``step(state, batch_uint8, frozen) -> (state, metrics)`` and draws its randomness from
``fold_in(key(seed), step)``, batches are a pure function of their index, so a run killed
and resumed from a checkpoint is bit-identical (on CPU). The models differ only in their
``loss(params, batch, key, frozen)``.

CLI: ``physim train --preset NAME --data DIR --workdir W [--set key=value ...]``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from models import checkpoint, configs, data, diffusion
from models.dit import DiT
from models.vae import VAE, pixel_weights, vae_loss

# Dense bf16 peak FLOP/s per device, for the MFU estimate (None: unknown, e.g. CPU).
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12,
              "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
              "TPU v6": 918e12}


def peak_flops(device) -> float | None:
    kind = getattr(device, "device_kind", "")
    for name, flops in PEAK_FLOPS.items():
        if name.lower() in kind.lower():
            return flops
    return None


def resolve_precision(cfg: configs.Config) -> configs.Config:
    """``precision="auto"``: bfloat16 compute on GPU/TPU, float32 on CPU."""
    p = cfg.train.precision
    if p == "auto":
        p = "float32" if jax.default_backend() == "cpu" else "bfloat16"
    return dataclasses.replace(cfg, dit=dataclasses.replace(cfg.dit, dtype=p),
                               vae=dataclasses.replace(cfg.vae, dtype=p))


def build_model(cfg: configs.Config, seed: int = 0, abstract: bool = False):
    """The network of ``cfg`` (DiT or VAE); ``abstract``: shapes only, nothing allocated."""
    def make():
        if cfg.model == "vae":
            return VAE(cfg.vae, rngs=nnx.Rngs(seed))
        return DiT(cfg.dit, cfg.diffusion_shape, rngs=nnx.Rngs(seed))
    return nnx.eval_shape(make) if abstract else make()


def split_params(model):
    """(graphdef, params pure dict, rest state, params template) of an nnx model."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return graphdef, nnx.to_pure_dict(params), rest, params


def merge(graphdef, template, rest, params):
    """The model with ``params`` (pure dict) swapped in; usable inside jit."""
    st = jax.tree.map(lambda x: x, template)
    nnx.replace_by_pure_dict(st, params)
    return nnx.merge(graphdef, st, rest)


def to_float(batch):
    """uint8 (B, T, H, W, 3) -> float32 in [-1, 1]."""
    return batch.astype(jnp.float32) / 127.5 - 1.0


def cond_mask(cfg: configs.Config, b: int):
    """(B, T') float mask of the conditioning frames in diffusion time (latent frames).

    Pixel space: the given frames. Latent space: every latent frame that sees a given
    frame. The VAE is causal (``models.vae``): latent 0 encodes frame 0 alone and latent
    k >= 1 frames ``f(k-1)+1 .. fk`` (f = temporal factor), so ``1 + ceil((c - 1) / f)``
    latents see the c given frames; the unknown frames they also see are the last given
    frame repeated, in training (:func:`latents`) as in sampling.
    """
    t = cfg.diffusion_shape[0]
    f = cfg.data.frames // t
    n = min(1 + -(-(cfg.data.n_cond - 1) // f), t)  # latent frames seeing given frames
    return jnp.broadcast_to((jnp.arange(t) < n).astype(jnp.float32), (b, t))


def given_video(x, n_cond: int):
    """The video a sampler is given: frames ``>= n_cond`` of x (B, T, ...) replaced by frame
    ``n_cond - 1`` (numpy or jax arrays). A VAE with temporal downsampling encodes given
    and unknown frames into one latent frame, so training must encode this, not x."""
    t = x.shape[1]
    idx = np.minimum(np.arange(t), n_cond - 1)
    return x[:, idx]


def latents(cfg: configs.Config, vae_parts, frozen, x):
    """(latents of x, conditioning latents) for a latent DiT: posterior means scaled to unit
    variance, the second of :func:`given_video` (the same as x's on the conditioning
    latents when those see given frames only, e.g. without temporal downsampling)."""
    vae = merge(*vae_parts, frozen["vae"])
    z = vae.encode(x)[0] * frozen["scale"]  # (B, t, h, w, Cl)
    if cfg.vae.temporal_down == 1:
        return z, z
    return z, vae.encode(given_video(x, cfg.data.n_cond))[0] * frozen["scale"]


def same_network(old: configs.Config, cfg: configs.Config, params) -> bool:
    """Whether a run of ``old`` holds the network of ``cfg`` (whose ``params`` are given):
    the same kind, diffusion shape and parameter shapes (loss weights and dtypes may differ)."""
    _, old_params, _, _ = split_params(build_model(old, abstract=True))
    shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)  # noqa: E731
    return (old.model, old.diffusion_shape, shapes(old_params)) == (
        cfg.model, cfg.diffusion_shape, shapes(params))


def init_weights(cfg: configs.Config, run: str, like_params):
    """(raw params, EMA params) of the latest checkpoint of ``run`` for fine-tuning ``cfg``;
    ``ValueError`` if ``run`` has no checkpoint or holds another network."""
    meta, _ = checkpoint.read_meta(run)
    old = checkpoint.config_of(meta)
    if not same_network(old, cfg, like_params):
        raise ValueError(f"train.init_from={run!r} holds a different network ({old.name}) "
                         f"than {cfg.name}")
    ema, _ = checkpoint.load_weights(run, like_params, ema=True)
    try:
        raw, _ = checkpoint.load_weights(run, like_params, ema=False)
    except ValueError:  # a sampling-only export keeps only the EMA weights
        raw = ema
    return raw, ema


def make_loss(cfg: configs.Config, graphdef, template, rest, vae_parts=None):
    """``loss(params, batch_uint8, key, frozen) -> (loss, metrics)`` for ``cfg.model``."""
    if cfg.model == "vae":
        def loss(params, batch, key, frozen):
            v = cfg.vae
            return vae_loss(merge(graphdef, template, rest, params), to_float(batch), key,
                            v.kl_weight, moment_weight=v.moment_weight,
                            moment_window=v.moment_window, fg_weight=v.fg_weight)
        return loss

    def loss(params, batch, key, frozen):
        x = to_float(batch)  # (B, T, H, W, 3)
        cond = None
        if vae_parts is not None:  # frozen VAE: posterior means, scaled to unit variance
            x, cond = jax.lax.stop_gradient(latents(cfg, vae_parts, frozen, x))  # (B,t,h,w,Cl)
        fg = cfg.diffusion.fg_weight
        wts = pixel_weights(x, fg) if fg != 1.0 else None  # pixel space only (validated)
        net = merge(graphdef, template, rest, params)
        return diffusion.training_loss(net, x, cond_mask(cfg, x.shape[0]), key, cfg.diffusion,
                                       wts, cond)
    return loss


def make_optimizer(tc: configs.TrainConfig):
    """AdamW with linear warmup + cosine decay, global-norm clipping; (tx, schedule)."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, tc.lr, max(tc.warmup, 1), max(tc.steps, tc.warmup + 1), tc.lr * tc.min_lr_ratio)
    decay_mask = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)  # noqa: E731 no decay on biases
    tx = optax.chain(optax.clip_by_global_norm(tc.clip),
                     optax.adamw(schedule, tc.b1, tc.b2, weight_decay=tc.weight_decay,
                                 mask=decay_mask))
    return tx, schedule


def make_step(loss, tx, schedule, tc: configs.TrainConfig):
    """The pure train step ``(state, batch, frozen) -> (state, metrics)``."""
    base = jax.random.key(tc.seed)

    def step(state, batch, frozen):
        key = jax.random.fold_in(base, state["step"])
        (_, metrics), grads = jax.value_and_grad(loss, has_aux=True)(
            state["params"], batch, key, frozen)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        # EMA with warmup: early on the average would otherwise be mostly the init weights.
        t = state["step"].astype(jnp.float32)
        d = jnp.minimum(tc.ema_decay, (1.0 + t) / (10.0 + t))
        ema = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, state["ema"], params)
        metrics = dict(metrics, grad_norm=optax.tree.norm(grads), lr=schedule(state["step"]))
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state,
                "ema": ema}, metrics
    return step


def load_frozen_vae(cfg: configs.Config, calib_batch: np.ndarray, scale: float | None = None):
    """(vae_parts, frozen) for a latent DiT: the VAE of ``cfg.vae_workdir`` and a latent
    scale (given, or 1/std of the posterior means of ``calib_batch``)."""
    if not cfg.vae_workdir:
        raise ValueError("a latent DiT (latent=True) needs vae_workdir=<trained VAE workdir>")
    meta, _ = checkpoint.read_meta(cfg.vae_workdir)
    vcfg = resolve_precision(checkpoint.config_of(meta))
    if vcfg.vae != dataclasses.replace(cfg.vae, dtype=vcfg.vae.dtype):
        raise ValueError(f"vae config of {cfg.vae_workdir} differs from this run's cfg.vae")
    g, _, r, t = split_params(build_model(vcfg))
    params, _ = checkpoint.load_weights(cfg.vae_workdir, nnx.to_pure_dict(t))
    if scale is None:
        mean, _ = jax.jit(lambda p, x: merge(g, t, r, p).encode(to_float(x)))(params,
                                                                              calib_batch)
        scale = 1.0 / (jnp.std(mean) + 1e-6)
    return (g, t, r), {"vae": params, "scale": jnp.asarray(scale, jnp.float32)}


def _log(path: str, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def train(cfg: configs.Config, source, workdir: str, *, progress: bool = True,
          stop_at: int | None = None) -> dict:
    """Train (or resume) ``cfg`` on a video ``source`` (see ``models.data``) in ``workdir``.

    ``stop_at``: stop after this step (default ``cfg.train.steps``) — the schedule still
    spans ``cfg.train.steps``. Returns the last logged metrics.
    """
    cfg = resolve_precision(cfg)
    tc = cfg.train
    os.makedirs(workdir, exist_ok=True)
    mesh = jax.make_mesh((jax.device_count(),), ("data",),
                         axis_types=(jax.sharding.AxisType.Auto,))
    repl, shard = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    if hasattr(source, "__next__"):  # a ready batch iterator (e.g. physim's Grain loader)
        it = source
    else:
        it = data.BatchIterator(source, tc.batch_size, cfg.data.frames, seed=cfg.data.seed,
                                flip=cfg.data.flip, clip=cfg.data.clip,
                                process_index=jax.process_index(),
                                process_count=jax.process_count())

    graphdef, params, rest, template = split_params(build_model(cfg, seed=tc.seed))
    tx, schedule = make_optimizer(tc)
    state = {"params": params, "opt_state": tx.init(params),
             "ema": jax.tree.map(jnp.copy, params)}
    mngr = checkpoint.manager(workdir, tc.keep)
    start, meta = 0, {}
    if mngr.latest_step() is not None:
        old = checkpoint.config_of(checkpoint.read_meta(workdir)[0])
        if not same_network(old, cfg, params):  # before restoring arrays of other shapes
            raise ValueError(f"{workdir} holds a different model ({old.name}); use a new workdir")
        state, meta = checkpoint.restore(mngr, state)
        it.set_state(meta["data"])
        start = int(meta["step"])
    elif tc.init_from:
        state["params"], state["ema"] = init_weights(cfg, tc.init_from, params)
    state["step"] = jnp.asarray(start, jnp.int32)
    state = jax.device_put(state, repl)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(configs.to_json(cfg))

    vae_parts, frozen = None, None
    if cfg.model == "dit" and cfg.latent:
        # Latent scale from a fixed batch; a resumed run reuses the saved one.
        calib = it.batch(0) if isinstance(it, data.BatchIterator) else next(it)
        vae_parts, frozen = load_frozen_vae(cfg, calib, meta.get("latent_scale"))
        frozen = jax.device_put(frozen, repl)
    latent_scale = float(frozen["scale"]) if frozen else None
    loss = make_loss(cfg, graphdef, template, rest, vae_parts)
    step_fn = jax.jit(make_step(loss, tx, schedule, tc), donate_argnums=(0,))

    def put(batch):
        return jax.make_array_from_process_local_data(shard, batch)

    end = min(stop_at or tc.steps, tc.steps)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    flops = None
    if start < end:
        d = cfg.data
        spec = jax.ShapeDtypeStruct((tc.batch_size, d.frames, d.resolution, d.resolution, 3),
                                    jnp.uint8, sharding=shard)
        lowered = step_fn.lower(state, spec, frozen)
        cost = lowered.compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list | tuple) else cost
        flops = float(cost.get("flops", 0.0)) if cost else None
    peak = peak_flops(jax.devices()[0])
    last, t0, n0 = {}, time.perf_counter(), start
    bar = None
    if progress and jax.process_index() == 0:
        from tqdm import tqdm
        bar = tqdm(total=end, initial=start, desc=cfg.name, dynamic_ncols=True)
    for s in range(start, end):
        state, metrics = step_fn(state, put(next(it)), frozen)
        done = s + 1
        if done % tc.log_every == 0 or done == end:
            m = {k: float(v) for k, v in jax.device_get(metrics).items()}
            dt = time.perf_counter() - t0
            rate = (done - n0) * tc.batch_size / dt
            m.update(step=done, videos_per_s=rate, time=time.time())
            if flops and peak:  # cost_analysis counts one device's share of the step
                m["mfu"] = flops * (done - n0) / dt / peak
            if jax.process_index() == 0:
                _log(metrics_path, m)
            if bar is not None:
                bar.set_postfix(loss=f"{m['loss']:.4f}", vps=f"{rate:.1f}")
            last, t0, n0 = m, time.perf_counter(), done
        if bar is not None:
            bar.update(1)
        if done % tc.ckpt_every == 0 or done == end:
            checkpoint.save(mngr, done, state, {"config": configs.to_dict(cfg), "step": done,
                                                "data": it.get_state(),
                                                "flops_per_step": flops,
                                                "latent_scale": latent_scale})
    if bar is not None:
        bar.close()
    return last


def benchmark(cfg: configs.Config, steps: int = 10) -> dict:
    """Time the DiT train step on random latents of ``cfg``'s diffusion shape (no VAE, no
    data loading): step time, peak device memory, FLOPs and MFU of one device."""
    cfg = resolve_precision(cfg)
    b = cfg.train.batch_size
    graphdef, params, rest, template = split_params(build_model(cfg, seed=0))
    tx, schedule = make_optimizer(cfg.train)

    def loss(p, x, key, frozen):
        net = merge(graphdef, template, rest, p)
        return diffusion.training_loss(net, x, cond_mask(cfg, b), key, cfg.diffusion)

    step = jax.jit(make_step(loss, tx, schedule, cfg.train), donate_argnums=(0,))
    state = {"step": jnp.int32(0), "params": params, "opt_state": tx.init(params),
             "ema": jax.tree.map(jnp.copy, params)}
    x = jax.random.normal(jax.random.key(1), (b, *cfg.diffusion_shape))
    compiled = step.lower(state, x, None).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    flops = float(cost.get("flops", 0.0)) if cost else 0.0
    n_params = sum(v.size for v in jax.tree.leaves(params))
    tokens = np.prod(cfg.diffusion_shape[:3]) // np.prod(cfg.dit.patch)
    # 6·N·tokens for the weights + 12·depth·tokens²·width for attention (fwd + bwd).
    analytic = b * (6 * n_params * tokens + 12 * cfg.dit.depth * tokens**2 * cfg.dit.width)
    state, m = step(state, x, None)  # warm-up
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = step(state, x, None)
    jax.block_until_ready(m)
    dt = (time.perf_counter() - t0) / steps
    dev = jax.devices()[0]
    mem = (dev.memory_stats() or {}).get("peak_bytes_in_use") if hasattr(dev, "memory_stats") \
        else None
    peak = peak_flops(dev)
    return {"preset": cfg.name, "device": dev.device_kind, "dtype": cfg.dit.dtype,
            "batch": b, "tokens": int(tokens), "params": int(n_params), "step_s": dt,
            "videos_per_s": b / dt, "peak_mem_gb": mem / 2**30 if mem else None,
            "xla_flops": flops, "analytic_flops": float(analytic),
            "mfu": analytic / dt / peak if peak else None, "loss": float(m["loss"])}


def add_parser(subparsers) -> None:
    """Register the ``train`` subcommand."""
    p = subparsers.add_parser("train", help="train a VAE or DiT preset")
    p.add_argument("--preset", required=True, help=f"one of {sorted(configs.PRESETS)}")
    p.add_argument("--data", required=True,
                   help="physim dataset dir, 'scenario:NAME' (on the fly) or 'synthetic'")
    p.add_argument("--workdir", required=True, help="checkpoints, metrics.jsonl, config.json")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. train.lr=3e-4 (repeatable)")
    p.add_argument("--split", default="train",
                   help="split of a --data directory to train on (default: train only)")
    p.add_argument("--stop-at", type=int, default=None, help="stop after this step")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() (multi-host; auto-detects)")
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    if args.distributed:
        jax.distributed.initialize()
    if args.stop_at is not None and args.stop_at < 1:
        raise ValueError(f"--stop-at must be >= 1, got {args.stop_at}")
    cfg = configs.apply_overrides(configs.get_preset(args.preset), args.set)
    source = data.open_source(args.data, cfg.data, batch_size=cfg.train.batch_size,
                              split=args.split)
    m = train(cfg, source, args.workdir, progress=not args.no_progress, stop_at=args.stop_at)
    print(json.dumps(m))
    return 0


def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m models.train")
    sub = parser.add_subparsers(required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
