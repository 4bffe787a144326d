"""One training loop for the VAE and the DiT: a pure jitted step over an explicit state.

``state = {"step", "params", "opt_state", "ema"}`` (pure dicts of arrays on a
``("data", "fsdp")`` mesh of all devices of all processes: batches are sharded over both
axes, state is replicated, or sharded over ``fsdp`` when ``train.fsdp > 1``; it is built,
restored and saved directly in that global sharding, so multi-host runs start and resume
alike). The step is
``step(state, batch_uint8, frozen) -> (state, metrics)`` and draws its randomness from
``fold_in(key(seed), step)``, batches are a pure function of their index, so a run killed
and resumed from a checkpoint is bit-identical (on CPU). The models differ only in their
``loss(params, batch, key, frozen)``.

CLI: ``physim train --preset NAME --data DIR --workdir W [--set key=value ...]``;
``--distributed [--coordinator HOST:PORT --num-processes N --process-id I]`` for multi-host
(docs/accelerators.md), ``--dry-run [--target tpu:v5e:4x4 | gpu:h100:8]`` to compile the step
(for this machine, or deviceless for another: ``models.aot``) and print its memory and FLOPs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from models import aot, checkpoint, configs, data, diffusion
from models import dit as dit_mod
from models.dit import DiT
from models.vae import VAE, pixel_weights, vae_loss

# Dense bf16 peak FLOP/s per device, for the MFU estimate (CPU: measured, cpu_peak_flops).
# Ordered: the first name contained in the device kind wins ("H100 PCIe" before "H100").
PEAK_FLOPS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "GH200": 989e12,
              "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12,
              "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
              "TPU v5": 459e12, "TPU v6": 918e12}
# Paper presets: never meant for a CPU (``physim train`` refuses them there unless asked).
PAPER_PRESETS = ("dit-s", "dit-b", "dit-l", "dit-xl")


def peak_flops(device) -> float | None:
    """Peak FLOP/s of ``device`` for the MFU: the table above for accelerators; on CPU the
    measured rate of a float32 matmul (:func:`cpu_peak_flops`); None when unknown."""
    kind = getattr(device, "device_kind", "")
    for name, flops in PEAK_FLOPS.items():
        if name.lower() in kind.lower():
            return flops
    if getattr(device, "platform", "") == "cpu":
        return cpu_peak_flops()
    return None


@functools.cache
def cpu_peak_flops(n: int = 1024, reps: int = 5) -> float:
    """Measured float32 FLOP/s of the CPU device: the best of ``reps`` jitted n x n x n
    matmuls (XLA's own kernel, with the threads it uses for training), once per process.

    A CPU has no fixed peak to look up; this is what the same runtime reaches on dense
    work, so the MFU says how close a step comes to it. On a loaded machine it is lower
    (and the MFU higher) than on an idle one."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def resolve_precision(cfg: configs.Config, backend: str | None = None) -> configs.Config:
    """``precision="auto"``: bfloat16 compute on GPU/TPU, float32 on CPU (``backend``: the
    one the step is compiled for; None: this process's)."""
    p = cfg.train.precision
    if p == "auto":
        p = "float32" if (backend or jax.default_backend()) == "cpu" else "bfloat16"
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
    except ValueError:  # a sampling-only export keeps only the EMA weights: start the raw
        # ones from them, in buffers of their own (the step donates both trees)
        raw = jax.tree.map(lambda a: a.copy(), ema)
    return raw, ema


# ----------------------------------------------------------------------------- mesh & sharding

def make_mesh(tc: configs.TrainConfig, devices=None) -> jax.sharding.Mesh:
    """The ``("data", "fsdp")`` mesh over all devices (of all processes): ``train.fsdp``
    devices per FSDP group, the rest data parallel; ``ValueError`` if fsdp does not divide
    the device count."""
    devices = jax.devices() if devices is None else devices
    n = len(devices)
    if n % tc.fsdp:
        raise ValueError(f"train.fsdp={tc.fsdp} does not divide the {n} devices "
                         f"({jax.process_count()} processes)")
    return jax.make_mesh((n // tc.fsdp, tc.fsdp), ("data", "fsdp"), devices=devices,
                         axis_types=(jax.sharding.AxisType.Auto,) * 2)


BATCH_AXES = ("data", "fsdp")  # a batch's leading axis is split over every device


def batch_sharding(mesh) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES))


def check_batch(tc: configs.TrainConfig, mesh) -> None:
    """``ValueError`` naming the numbers if the global batch (or its micro-batches) cannot
    be split evenly over the devices and processes."""
    n, procs = mesh.size, jax.process_count()
    micro = tc.batch_size // tc.accum_steps
    if tc.batch_size % (n * tc.accum_steps) or tc.batch_size % procs:
        raise ValueError(
            f"train.batch_size={tc.batch_size} must be a multiple of the {n} devices"
            f" ({procs} processes x {jax.local_device_count()} local)"
            + (f" times train.accum_steps={tc.accum_steps} (micro-batches of {micro})"
               if tc.accum_steps > 1 else "")
            + f"; e.g. {n * tc.accum_steps * max(1, round(micro / n))}")


def leaf_sharding(mesh, shape) -> NamedSharding:
    """Sharding of one state array of ``shape``: replicated, or with ``fsdp > 1`` its largest
    axis divisible by the fsdp size split over ``"fsdp"`` (scalars and small odd-sized
    arrays stay replicated)."""
    f = mesh.shape["fsdp"]
    if f > 1:
        for i in sorted(range(len(shape)), key=lambda i: -shape[i]):
            if shape[i] % f == 0:
                spec = [None] * len(shape)
                spec[i] = "fsdp"
                return NamedSharding(mesh, P(*spec))
    return NamedSharding(mesh, P())


def state_shardings(mesh, abstract):
    """The sharding tree of a state tree (arrays or ShapeDtypeStructs), leaf by leaf."""
    return jax.tree.map(lambda a: leaf_sharding(mesh, tuple(a.shape)), abstract)


def with_shardings(abstract, shardings):
    """ShapeDtypeStructs of ``abstract`` carrying ``shardings`` (orbax restore targets)."""
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract, shardings)


def global_scalar(value, sharding, dtype=jnp.int32):
    """A replicated scalar built on every process from the same host value (no transfer
    between hosts: each process fills its own devices)."""
    v = np.asarray(value, dtype)
    return jax.make_array_from_callback((), sharding, lambda _: v)


def _tables(make_rest, sharding):
    """The non-trainable state ``make_rest()`` of a model (RoPE tables...), replicated;
    nothing is compiled when there is none."""
    abstract = jax.eval_shape(make_rest)
    if not jax.tree.leaves(abstract):
        return abstract
    return jax.jit(make_rest, out_shardings=sharding)()


def init_state(cfg: configs.Config, tx, mesh, fresh: bool = True):
    """``(state, abstract_state, (graphdef, template, rest))`` of a new run of ``cfg``.

    The model is built inside ``jax.jit(init, out_shardings=...)``, so parameters,
    optimiser state and EMA appear directly in their global sharding (:func:`leaf_sharding`)
    on every process; nothing is built on one device first. ``fresh=False`` (a resume)
    builds only the shapes (``state`` is None) and the non-trainable tables.
    """
    seed = cfg.train.seed
    graphdef, _, _, template = split_params(build_model(cfg, seed=seed, abstract=True))
    repl = NamedSharding(mesh, P())

    def init():
        _, params, rest, _ = split_params(build_model(cfg, seed=seed))
        return {"params": params, "opt_state": tx.init(params),
                "ema": jax.tree.map(jnp.copy, params)}, rest

    abstract, _ = jax.eval_shape(init)
    shardings = state_shardings(mesh, abstract)
    if fresh:
        state, rest = jax.jit(init, out_shardings=(shardings, repl))()
    else:  # the tables (RoPE, positions) only; XLA drops the unused initialisation
        state, rest = None, _tables(lambda: init()[1], repl)
    return state, with_shardings(abstract, shardings), (graphdef, template, rest)


# ----------------------------------------------------------------------------- loss & step

def make_loss(cfg: configs.Config, graphdef, template, rest, vae_parts=None,
              cached: bool = False):
    """``loss(params, batch, key, frozen, rows=None) -> (loss, metrics)`` for ``cfg.model``.

    ``batch``: uint8 frames (B, T, R, R, 3), or with ``cached`` float latents
    (B, 2, t, h, w, Cl) of a latent cache (:mod:`models.data`; unscaled posterior means of
    the video and of its given frames). ``rows`` (B,) int: the videos' indices in the global
    batch; given, each video's noise is drawn from ``fold_in(key, row)`` (the loss is then
    the same however the batch is split over micro-batches and devices); None: one draw for
    the batch (the original numerics). The VAE ignores ``rows``.
    """
    if cfg.model == "vae":
        def loss(params, batch, key, frozen, rows=None):
            v = cfg.vae
            return vae_loss(merge(graphdef, template, rest, params), to_float(batch), key,
                            v.kl_weight, moment_weight=v.moment_weight,
                            moment_window=v.moment_window, fg_weight=v.fg_weight)
        return loss

    def loss(params, batch, key, frozen, rows=None):
        cond = None
        if cached:  # latents from the cache, scaled here (the scale is the run's)
            x, cond = batch[:, 0] * frozen["scale"], batch[:, 1] * frozen["scale"]
        else:
            x = to_float(batch)  # (B, T, H, W, 3)
            if vae_parts is not None:  # frozen VAE: posterior means, scaled to unit variance
                x, cond = jax.lax.stop_gradient(latents(cfg, vae_parts, frozen, x))
        fg = cfg.diffusion.fg_weight  # (latents: B, t, h, w, Cl)
        wts = pixel_weights(x, fg) if fg != 1.0 else None  # pixel space only (validated)
        net = merge(graphdef, template, rest, params)
        if rows is None:
            return diffusion.training_loss(net, x, cond_mask(cfg, x.shape[0]), key,
                                           cfg.diffusion, wts, cond)
        mask1 = cond_mask(cfg, 1)  # (1, t)

        def one(xi, ci, wi, row):  # one video as a batch of one, its own key
            add = (lambda a: None if a is None else a[None])  # noqa: E731
            return diffusion.training_loss(net, xi[None], mask1, jax.random.fold_in(key, row),
                                           cfg.diffusion, add(wi), add(ci))[0]
        # Every video scores the same number of frames: the batch loss is their mean.
        value = jnp.mean(jax.vmap(one)(x, cond, wts, rows))
        return value, {"loss": value}
    loss.per_example = True  # draws its noise by row: micro-batches share the step key
    return loss


def make_optimizer(tc: configs.TrainConfig):
    """AdamW with linear warmup + cosine decay, global-norm clipping; (tx, schedule).
    With ``accum_steps > 1`` wrapped in ``optax.MultiSteps`` (the schedule counts updates)."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, tc.lr, max(tc.warmup, 1), max(tc.steps, tc.warmup + 1), tc.lr * tc.min_lr_ratio)
    decay_mask = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)  # noqa: E731 no decay on biases
    tx = optax.chain(optax.clip_by_global_norm(tc.clip),
                     optax.adamw(schedule, tc.b1, tc.b2, weight_decay=tc.weight_decay,
                                 mask=decay_mask))
    if tc.accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=tc.accum_steps)
    return tx, schedule


def make_step(loss, tx, schedule, tc: configs.TrainConfig, micro_sharding=None):
    """The pure train step ``(state, batch, frozen) -> (state, metrics)``.

    With ``accum_steps = k > 1`` the batch (B, ...) is cut into k micro-batches (micro-batch
    i: rows i, k + i, 2k + i, ... so each stays spread over all devices) run in sequence
    through ``optax.MultiSteps``, which applies one update with their mean gradient; the
    reported loss is the mean of theirs. ``micro_sharding``: sharding of a (k, B/k, ...)
    stack of micro-batches (None: left to XLA).
    """
    base = jax.random.key(tc.seed)
    k = tc.accum_steps
    per_example = k > 1 or tc.example_noise

    def finish(state, params, opt_state, grads, metrics):
        # EMA with warmup: early on the average would otherwise be mostly the init weights.
        t = state["step"].astype(jnp.float32)
        d = jnp.minimum(tc.ema_decay, (1.0 + t) / (10.0 + t))
        ema = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, state["ema"], params)
        metrics = dict(metrics, grad_norm=optax.tree.norm(grads), lr=schedule(state["step"]))
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state,
                "ema": ema}, metrics

    grad_fn = jax.value_and_grad(loss, has_aux=True)

    def step(state, batch, frozen):
        key = jax.random.fold_in(base, state["step"])
        b = batch.shape[0]
        rows = jnp.arange(b) if per_example else None
        if k == 1:
            (_, metrics), grads = grad_fn(state["params"], batch, key, frozen, rows)
            updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
            params = optax.apply_updates(state["params"], updates)
            return finish(state, params, opt_state, grads, metrics)
        micro = batch.reshape(b // k, k, *batch.shape[1:]).swapaxes(0, 1)  # (k, B/k, ...)
        if micro_sharding is not None:
            micro = jax.lax.with_sharding_constraint(micro, micro_sharding)
        rows = rows.reshape(b // k, k).T  # (k, B/k) global row of each video

        shared = getattr(loss, "per_example", False)

        def micro_step(carry, inputs):
            params, opt_state = carry
            # The VAE has no per-example noise: its micro-batches get keys of their own.
            mkey = key if shared else jax.random.fold_in(key, inputs[2])
            (_, m), g = grad_fn(params, inputs[0], mkey, frozen, inputs[1])
            updates, opt_state = tx.update(g, opt_state, params)  # zero until the k-th
            return (optax.apply_updates(params, updates), opt_state), (m, g)

        def first(carry, inputs):
            carry, (m, _) = micro_step(carry, inputs)
            return carry, m

        head = jax.tree.map(lambda a: a[: k - 1], (micro, rows, jnp.arange(k)))
        carry, ms = jax.lax.scan(first, (state["params"], state["opt_state"]), head)
        acc = carry[1].acc_grads  # mean gradient of the first k - 1 micro-batches
        (params, opt_state), (m, g) = micro_step(
            carry, (micro[k - 1], rows[k - 1], jnp.asarray(k - 1)))
        grads = jax.tree.map(lambda a, x: a + (x - a) / k, acc, g)  # MultiSteps' mean
        metrics = jax.tree.map(lambda a, x: (a.sum(0) + x) / k, ms, m)
        return finish(state, params, opt_state, grads, metrics)
    return step


# ----------------------------------------------------------------------------- frozen VAE

def load_frozen_vae(cfg: configs.Config, calib_batch, scale: float | None = None, mesh=None):
    """(vae_parts, frozen) for a latent DiT: the VAE of ``cfg.vae_workdir`` and a latent
    scale (given, or 1/std of the posterior means of ``calib_batch``).

    ``mesh``: restore the weights replicated over it, straight from the checkpoint onto
    every process's devices, and calibrate on ``calib_batch`` as one global array (B, T, R,
    R, 3) uint8 sharded over the mesh, so all processes agree on one scale. None: local
    arrays (sampling; ``calib_batch`` a host array).
    """
    if not cfg.vae_workdir:
        raise ValueError("a latent DiT (latent=True) needs vae_workdir=<trained VAE workdir>")
    meta, _ = checkpoint.read_meta(cfg.vae_workdir)
    vcfg = resolve_precision(checkpoint.config_of(meta))
    if vcfg.vae != dataclasses.replace(cfg.vae, dtype=vcfg.vae.dtype):
        raise ValueError(f"vae config of {cfg.vae_workdir} differs from this run's cfg.vae")
    if mesh is None:
        g, _, r, t = split_params(build_model(vcfg))
        params, _ = checkpoint.load_weights(cfg.vae_workdir, nnx.to_pure_dict(t))
        if scale is None:
            mean, _ = jax.jit(lambda p, x: merge(g, t, r, p).encode(to_float(x)))(params,
                                                                                  calib_batch)
            scale = 1.0 / (jnp.std(mean) + 1e-6)
        return (g, t, r), {"vae": params, "scale": jnp.asarray(scale, jnp.float32)}
    repl = NamedSharding(mesh, P())
    g, like, _, t = split_params(build_model(vcfg, abstract=True))
    r = _tables(lambda: split_params(build_model(vcfg))[2], repl)
    like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl), like)
    params, _ = checkpoint.load_weights(cfg.vae_workdir, like)
    if scale is None:
        mean, _ = jax.jit(lambda p, x: merge(g, t, r, p).encode(to_float(x)))(params,
                                                                              calib_batch)
        scale = jax.jit(lambda m: 1.0 / (jnp.std(m) + 1e-6), out_shardings=repl)(mean)
    else:
        scale = global_scalar(scale, repl, jnp.float32)
    return (g, t, r), {"vae": params, "scale": scale.astype(jnp.float32)}


def latent_scale_of(cached_batch, mesh):
    """1/std of the latents of a global cached batch (B, 2, t, h, w, Cl): the same scale
    :func:`load_frozen_vae` finds on the frames of that batch."""
    repl = NamedSharding(mesh, P())
    return jax.jit(lambda z: 1.0 / (jnp.std(z[:, 0]) + 1e-6), out_shardings=repl)(
        cached_batch).astype(jnp.float32)


# ----------------------------------------------------------------------------- the loop

def _log(path, record: dict) -> None:
    line = json.dumps(record) + "\n"
    if checkpoint.is_local(path):
        with open(path, "a") as f:
            f.write(line)
    else:  # object stores do not append: rewrite (metrics files are small)
        old = path.read_text() if path.exists() else ""
        path.write_text(old + line)


def device_batches(it, put, depth: int):
    """Yield ``(device batch, iterator state after it)``, ``depth`` batches put on the
    devices ahead of the one being consumed (device puts and steps are asynchronous, so the
    host renders the next batches while the devices compute). The state is what a
    checkpoint taken after consuming that batch must record."""
    import collections

    queue = collections.deque()
    while True:
        while len(queue) < max(depth, 1):
            batch = next(it)
            queue.append((put(batch), it.get_state()))
        yield queue.popleft()


class Preemption:
    """Context manager that turns SIGTERM into a flag the loop polls (a save, then exit);
    the previous handler comes back on exit. Off the main thread it does nothing."""

    def __init__(self):
        self.flag, self._old = False, None

    def _handler(self, signum, frame):
        self.flag = True

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGTERM, self._handler)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False

    def any(self) -> bool:
        """Whether any process was signalled (a collective with several processes)."""
        if jax.process_count() == 1:
            return self.flag
        from jax.experimental import multihost_utils

        return bool(np.max(multihost_utils.process_allgather(np.int32(self.flag))))


def _source_iterator(cfg: configs.Config, source):
    if hasattr(source, "__next__"):  # a ready batch iterator (e.g. physim's Grain loader)
        return source
    return data.BatchIterator(source, cfg.train.batch_size, cfg.data.frames, seed=cfg.data.seed,
                              flip=cfg.data.flip, clip=cfg.data.clip,
                              process_index=jax.process_index(),
                              process_count=jax.process_count())


# Config fields a resumed run may change: logging, checkpointing, kernels and precision
# (how a step is computed, not what it computes), and paths that may move.
RESUME_FREE = frozenset({
    "name", "vae_workdir", "train.log_every", "train.ckpt_every", "train.keep",
    "train.precision", "train.init_from", "data.workers", "data.prefetch", "dit.attention",
    "dit.remat", "dit.dtype", "vae.dtype"})


def resume_changes(old: configs.Config, new: configs.Config) -> list[str]:
    """``"field: old -> new"`` for each setting outside :data:`RESUME_FREE` in which ``new``
    differs from the run's saved ``old`` config."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[prefix + k] = tuple(v) if isinstance(v, list) else v
        return out
    a, b = flat(configs.to_dict(old)), flat(configs.to_dict(new))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in RESUME_FREE and a.get(k) != b.get(k)]


def source_name(spec: str, split: str = "train") -> str:
    """How a run records its ``--data``: local folders as real paths, a dataset folder with
    the split it reads."""
    real = lambda p: os.path.realpath(p) if checkpoint.is_local(p) else p  # noqa: E731
    if spec == "synthetic" or spec.startswith("scenario:"):
        return spec
    for prefix in ("grain:", "latents:"):  # grain reads the train split
        if spec.startswith(prefix):
            return prefix + real(spec[len(prefix):])
    return f"{real(spec)} (split {split})"


def train(cfg: configs.Config, source, workdir: str, *, progress: bool = True,
          stop_at: int | None = None, data_name: str | None = None) -> dict:
    """Train (or resume) ``cfg`` on a video ``source`` (see ``models.data``) in ``workdir``
    (a local path or any ``etils.epath`` URL, e.g. ``gs://bucket/run``).

    ``stop_at``: stop after this step (default ``cfg.train.steps``) — the schedule still
    spans ``cfg.train.steps``. A SIGTERM saves a checkpoint at the current step and stops
    (the result then has ``preempted: True``). Returns the last logged metrics.
    ``data_name``: what the source is (:func:`source_name`), saved with the checkpoints; a
    resume from another source is refused, as is one with other settings
    (:func:`resume_changes`). A local ``workdir`` is locked for the run
    (``checkpoint.workdir_lock``) and must be writable.
    """
    if stop_at is not None and (isinstance(stop_at, bool) or int(stop_at) != stop_at
                                or stop_at < 1):
        raise ValueError(f"stop_at must be a step >= 1 (or None: cfg.train.steps), "
                         f"got {stop_at!r}")
    check_batch(cfg.train, make_mesh(cfg.train))  # before anything is written
    with checkpoint.workdir_lock(workdir):
        checkpoint.check_writable(workdir)
        return _train(cfg, source, workdir, progress=progress, stop_at=stop_at,
                      data_name=data_name)


def _train(cfg: configs.Config, source, workdir: str, *, progress: bool,
           stop_at: int | None, data_name: str | None) -> dict:
    cfg = resolve_precision(cfg)
    tc = cfg.train
    mesh = make_mesh(tc)
    check_batch(tc, mesh)  # before anything is written
    repl, shard = NamedSharding(mesh, P()), batch_sharding(mesh)
    cached = isinstance(source, data.LatentSource) or getattr(source, "latent_cache", False)
    if cached:
        data.check_cache(getattr(source, "manifest", None), cfg)
    it = _source_iterator(cfg, source)
    tx, schedule = make_optimizer(tc)
    wd = checkpoint.epath_of(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    mngr = checkpoint.manager(workdir, tc.keep)
    start, meta = 0, {}
    resume = mngr.latest_step() is not None
    state, abstract, (graphdef, template, rest) = init_state(cfg, tx, mesh, fresh=not resume)
    if resume:
        old = checkpoint.config_of(checkpoint.read_meta(workdir)[0])
        if not same_network(old, cfg, abstract["params"]):  # before restoring other shapes
            raise ValueError(f"{workdir} holds a different model ({old.name}); use a new workdir")
        changed = resume_changes(old, cfg)
        if changed:
            raise ValueError(f"{workdir} was trained with other settings ({'; '.join(changed)})"
                             "; resume with the saved ones (its config.json) or use a new "
                             "workdir")
        state, meta = checkpoint.restore(mngr, abstract)  # straight into the global sharding
        if data_name and meta.get("source") and meta["source"] != data_name:
            raise ValueError(f"{workdir} was trained on {meta['source']}, not {data_name}; "
                             "resume with the same --data or use a new workdir")
        it.set_state(meta["data"])
        start = int(meta["step"])
    elif tc.init_from:
        state["params"], state["ema"] = init_weights(cfg, tc.init_from, abstract["params"])
    state["step"] = global_scalar(start, repl)
    if jax.process_index() == 0:
        (wd / "config.json").write_text(configs.to_json(cfg))

    def put(batch):
        return jax.make_array_from_process_local_data(shard, np.asarray(batch))

    vae_parts, frozen = None, None
    if cfg.model == "dit" and cfg.latent:
        # Latent scale from a fixed global batch; a resumed run reuses the saved one.
        calib = it.batch(0) if isinstance(it, data.BatchIterator) else next(it)
        if cached:
            scale = meta.get("latent_scale")
            frozen = {"scale": latent_scale_of(put(calib), mesh) if scale is None
                      else global_scalar(scale, repl, jnp.float32)}
        else:
            vae_parts, frozen = load_frozen_vae(cfg, put(calib), meta.get("latent_scale"),
                                                mesh=mesh)
    latent_scale = float(frozen["scale"]) if frozen else None
    loss = make_loss(cfg, graphdef, template, rest, vae_parts, cached=cached)
    # The new state keeps the sharding of the old: the AOT-compiled step takes it back.
    step_fn = jit_step(cfg, loss, tx, schedule, mesh, state)

    end = tc.steps if stop_at is None else min(int(stop_at), tc.steps)
    metrics_path = wd / "metrics.jsonl"
    flops, compiled = {}, step_fn
    if start < end:
        compiled = step_fn.lower(state, batch_spec(cfg, shard, cached), frozen).compile()
        # XLA's FLOPs per device: the whole step, and the model's own step that the MFU
        # counts (a DiT whose frozen VAE encodes in the step: the step on latents, without
        # the encode, which is no training work; the issue measured it at 8.5x the DiT-S).
        flops = {"step": _flops(compiled)}
        flops["model"] = (dit_flops(cfg, tx, schedule, mesh, state, (graphdef, template, rest))
                          if vae_parts is not None else flops["step"])
    peak = peak_flops(jax.devices()[0])
    last, t0, n0 = {}, time.perf_counter(), start
    bar = None
    if progress and jax.process_index() == 0:
        from tqdm import tqdm
        bar = tqdm(total=end, initial=start, desc=cfg.name, dynamic_ncols=True)
    batches = device_batches(it, put, cfg.data.prefetch)
    data_state = it.get_state()
    preempted = False
    with Preemption() as pre:
        for s in range(start, end):
            batch, data_state = next(batches)
            state, metrics = compiled(state, batch, frozen)
            done = s + 1
            log_now = done % tc.log_every == 0 or done == end
            if log_now:
                m = {k: float(v) for k, v in jax.device_get(metrics).items()}
                dt = time.perf_counter() - t0
                rate = (done - n0) * tc.batch_size / dt
                m.update(step=done, videos_per_s=rate, time=time.time())
                if flops.get("model") and peak:  # per device: one device's share of the step
                    m["flops_per_step"] = flops["model"]
                    m["mfu"] = flops["model"] * (done - n0) / dt / peak
                    if flops["step"] != flops["model"]:  # the VAE encode counted too
                        m["flops_per_step_with_vae"] = flops["step"]
                        m["mfu_with_vae"] = flops["step"] * (done - n0) / dt / peak
                if jax.process_index() == 0:
                    _log(metrics_path, m)
                if bar is not None:
                    bar.set_postfix(loss=f"{m['loss']:.4f}", vps=f"{rate:.1f}")
                last, t0, n0 = m, time.perf_counter(), done
            if bar is not None:
                bar.update(1)
            # One process per host polls its own flag; several agree at log steps.
            preempted = (log_now or jax.process_count() == 1) and pre.any()
            if done % tc.ckpt_every == 0 or done == end or preempted:
                checkpoint.save(mngr, done, state, {"config": configs.to_dict(cfg), "step": done,
                                                    "data": data_state,
                                                    "source": data_name,
                                                    "flops_per_step": flops.get("model"),
                                                    "flops_per_step_with_vae":
                                                        flops.get("step"),
                                                    "latent_scale": latent_scale}, wait=False)
            if preempted:
                last = dict(last, step=done, preempted=True)
                break
    mngr.wait_until_finished()  # async saves: the last one is on disk before we return
    if bar is not None:
        bar.close()
    return last


def batch_spec(cfg: configs.Config, sharding, cached: bool = False):
    """ShapeDtypeStruct of one global batch: uint8 frames, or float32 cached latents."""
    b, d = cfg.train.batch_size, cfg.data
    if cached:
        return jax.ShapeDtypeStruct((b, 2, *cfg.diffusion_shape), jnp.float32, sharding=sharding)
    return jax.ShapeDtypeStruct((b, d.frames, d.resolution, d.resolution, 3), jnp.uint8,
                                sharding=sharding)


_flops = aot.flops_of


def tokens_per_video(cfg: configs.Config) -> int:
    """Transformer tokens per video: the diffusion grid over the spacetime patch."""
    return int(np.prod(cfg.diffusion_shape[:3]) // np.prod(cfg.dit.patch))


def step_specs(cfg: configs.Config, tx, mesh, cached: bool, host_tables: bool = False):
    """``(state, batch, frozen, (graphdef, template, rest), vae_parts)`` of ``cfg``'s train
    step on ``mesh`` as ShapeDtypeStructs in the train loop's shardings (nothing initialised;
    a latent DiT's frozen VAE enters by shape). ``host_tables``: the non-trainable tables
    (RoPE...) as host arrays, for a mesh of compile-only devices that cannot run anything."""
    repl, seed = NamedSharding(mesh, P()), cfg.train.seed
    graphdef, _, _, template = split_params(build_model(cfg, seed=seed, abstract=True))

    def init():
        _, params, rest, _ = split_params(build_model(cfg, seed=seed))
        return {"params": params, "opt_state": tx.init(params),
                "ema": jax.tree.map(jnp.copy, params)}, rest

    def tables(make):
        return jax.device_get(jax.jit(make)()) if host_tables else _tables(make, repl)

    abstract, _ = jax.eval_shape(init)
    state = dict(with_shardings(abstract, state_shardings(mesh, abstract)),
                 step=jax.ShapeDtypeStruct((), jnp.int32, sharding=repl))
    rest = tables(lambda: init()[1])
    vae_parts, frozen = None, None
    if cfg.model == "dit" and cfg.latent:
        frozen = {"scale": jax.ShapeDtypeStruct((), jnp.float32, sharding=repl)}
        if not cached:
            vcfg = dataclasses.replace(cfg, model="vae")
            g, vparams, _, t = split_params(build_model(vcfg, abstract=True))
            vae_parts = (g, t, tables(lambda: split_params(build_model(vcfg))[2]))
            frozen["vae"] = jax.tree.map(
                lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl), vparams)
    return (state, batch_spec(cfg, batch_sharding(mesh), cached), frozen,
            (graphdef, template, rest), vae_parts)


def jit_step(cfg: configs.Config, loss, tx, schedule, mesh, state):
    """The train loop's jitted step: state donated, the new state in the old's sharding."""
    repl = NamedSharding(mesh, P())
    out_sh = (jax.tree.map(lambda a: a.sharding, state), repl)
    return jax.jit(make_step(loss, tx, schedule, cfg.train,
                             NamedSharding(mesh, P(None, BATCH_AXES))),
                   donate_argnums=(0,), out_shardings=out_sh)


def dit_flops(cfg: configs.Config, tx, schedule, mesh, state, parts) -> float | None:
    """XLA's FLOPs per device of the DiT's own train step: the step compiled on latents of
    the diffusion shape (a latent cache's batch), without the frozen VAE's encode. ``state``:
    the run's state or its ShapeDtypeStructs; ``parts``: (graphdef, template, rest)."""
    repl = NamedSharding(mesh, P())
    spec = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding)  # noqa: E731
    state = jax.tree.map(spec, state)
    loss = make_loss(cfg, *parts, None, cached=True)
    frozen = {"scale": jax.ShapeDtypeStruct((), jnp.float32, sharding=repl)}
    step = jit_step(cfg, loss, tx, schedule, mesh, state)
    return _flops(step.lower(state, batch_spec(cfg, batch_sharding(mesh), True),
                             frozen).compile())


def dry_run(cfg: configs.Config, cached: bool = False, target: str | None = None) -> dict:
    """Compile ``cfg``'s train step ahead of time (nothing is trained, initialised or
    written; a latent DiT's frozen VAE enters by shape only) and return the mesh, batch,
    tokens per video, parameter count, XLA's FLOPs per step and its per-device memory
    analysis (bytes), with the seconds the compile took.

    ``target`` (:func:`models.aot.get_target`): None or "local" compiles for this machine's
    devices; e.g. "tpu:v5e:4x4" or "gpu:h100:8" for the compile-only devices of a machine
    this host does not have (precision and attention kernel follow the target's backend).
    The result's ``fits`` says whether XLA's peak estimate is within 90% of the device's
    memory (None where that is unknown); a compile XLA refuses for lack of memory returns
    ``fits: False`` and the compiler's message instead of the analysis.
    """
    tgt = aot.get_target(target)
    cfg = resolve_precision(cfg, tgt.platform)
    tc = cfg.train
    mesh = make_mesh(tc, list(tgt.devices))
    check_batch(tc, mesh)
    tx, schedule = make_optimizer(tc)
    state, batch, frozen, parts, vae_parts = step_specs(cfg, tx, mesh, cached,
                                                       host_tables=tgt.deviceless)
    loss = make_loss(cfg, *parts, vae_parts, cached=cached)
    n_params = int(sum(np.prod(a.shape) for a in jax.tree.leaves(state["params"])))
    is_dit = cfg.model == "dit"
    with dit_mod.compiling_for(tgt.platform if tgt.deviceless else None):
        attention = dit_mod.attention_impl(cfg.dit.attention, cfg.dit.dtype) if is_dit else None
        out = {"preset": cfg.name, "target": tgt.name, "backend": tgt.platform,
               "device": tgt.device_kind, "devices": mesh.size,
               "deviceless": tgt.deviceless, "processes": jax.process_count(),
               "mesh": dict(mesh.shape), "batch": tc.batch_size, "accum_steps": tc.accum_steps,
               "micro_batch_per_device": tc.batch_size // tc.accum_steps // mesh.size,
               "dtype": cfg.dit.dtype if is_dit else cfg.vae.dtype, "attention": attention,
               "remat": cfg.dit.remat, "fsdp": tc.fsdp, "cached_latents": cached,
               "tokens_per_video": tokens_per_video(cfg) if is_dit else None,
               "params": n_params, "hbm_per_device_bytes": tgt.hbm_bytes}
        step = jit_step(cfg, loss, tx, schedule, mesh, state)
        t0 = time.perf_counter()
        try:
            lowered = step.lower(state, batch, frozen)
            compiled = lowered.compile()
        except Exception as e:  # XLA:TPU refuses what does not fit the HBM
            if not aot.is_out_of_memory(e):
                raise
            return dict(out, fits=False, error=str(e).strip().splitlines()[0][:2000],
                        compile_s=time.perf_counter() - t0)
    compile_s = time.perf_counter() - t0
    memory = aot.memory_of(compiled)
    flops, source = _flops(compiled), "compiled"
    if flops is None:  # a deviceless GPU executable has no cost analysis
        flops, source = aot.unoptimized_flops(lowered), "unoptimized HLO (XLA:CPU) / devices"
        flops = flops / mesh.size if flops else None
    peak = memory.get("peak_estimate_bytes")
    fits = peak <= 0.9 * tgt.hbm_bytes if peak is not None and tgt.hbm_bytes else None
    return dict(out, flops_per_step_per_device=flops, flops_source=source,
                flops_per_step=flops * mesh.size if flops else None,
                memory_per_device=memory, fits=fits,
                peak_fraction_of_hbm=peak / tgt.hbm_bytes if fits is not None else None,
                compile_s=compile_s)


def benchmark(cfg: configs.Config, steps: int = 10, devices: int = 1) -> dict:
    """Time the DiT train step on random latents of ``cfg``'s diffusion shape (no VAE, no
    data loading) on the first ``devices`` local devices (batch split over them): step
    time, peak memory of device 0, FLOPs and MFU per device."""
    cfg = resolve_precision(cfg)
    b = cfg.train.batch_size
    mesh = make_mesh(cfg.train, jax.local_devices()[:devices])
    check_batch(cfg.train, mesh)
    tx, schedule = make_optimizer(cfg.train)
    state, _, (graphdef, template, rest) = init_state(cfg, tx, mesh)
    state["step"] = global_scalar(0, NamedSharding(mesh, P()))

    def loss(p, x, key, frozen, rows=None):
        net = merge(graphdef, template, rest, p)
        return diffusion.training_loss(net, x, cond_mask(cfg, b), key, cfg.diffusion)

    repl = NamedSharding(mesh, P())
    out_sh = (jax.tree.map(lambda a: a.sharding, state), repl)
    step = jax.jit(make_step(loss, tx, schedule, cfg.train), donate_argnums=(0,),
                   out_shardings=out_sh)
    x = jax.device_put(jax.random.normal(jax.random.key(1), (b, *cfg.diffusion_shape)),
                       batch_sharding(mesh))
    compiled = step.lower(state, x, None).compile()
    flops = _flops(compiled) or 0.0
    n_params = sum(v.size for v in jax.tree.leaves(state["params"]))
    tokens = tokens_per_video(cfg)
    # 6·N·tokens for the weights + 12·depth·tokens²·width for attention (fwd + bwd).
    analytic = b * (6 * n_params * tokens + 12 * cfg.dit.depth * tokens**2 * cfg.dit.width)
    state, m = compiled(state, x, None)  # warm-up
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = compiled(state, x, None)
    jax.block_until_ready(m)
    dt = (time.perf_counter() - t0) / steps
    dev = jax.local_devices()[0]
    mem = (dev.memory_stats() or {}).get("peak_bytes_in_use") if hasattr(dev, "memory_stats") \
        else None
    peak = peak_flops(dev)
    return {"preset": cfg.name, "device": dev.device_kind, "devices": mesh.size,
            "dtype": cfg.dit.dtype,
            "attention": dit_mod.attention_impl(cfg.dit.attention, cfg.dit.dtype),
            "remat": cfg.dit.remat, "batch": b, "tokens": int(tokens), "params": int(n_params),
            "step_s": dt, "videos_per_s": b / dt,
            "peak_mem_gb": mem / 2**30 if mem else None, "xla_flops": flops,
            "analytic_flops": float(analytic),
            "mfu": analytic / dt / peak / mesh.size if peak else None, "loss": float(m["loss"])}


def add_parser(subparsers) -> None:
    """Register the ``train`` subcommand."""
    p = subparsers.add_parser("train", help="train a VAE or DiT preset")
    p.add_argument("--preset", required=True, help=f"one of {sorted(configs.PRESETS)}")
    p.add_argument("--data", default=None,
                   help="physim dataset dir, 'scenario:NAME' (on the fly), 'grain:DIR', "
                        "'latents:DIR' (a `physim encode` cache) or 'synthetic'")
    p.add_argument("--workdir", default=None, help="checkpoints, metrics.jsonl, config.json "
                   "(a local path or an etils.epath URL such as gs://bucket/run)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. train.lr=3e-4 (repeatable)")
    p.add_argument("--split", default="train",
                   help="split of a --data directory to train on (default: train only)")
    p.add_argument("--stop-at", type=int, default=None, help="stop after this step")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() (multi-host); it auto-detects "
                        "the cluster unless --coordinator/--num-processes/--process-id say")
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="with --distributed: address of process 0's coordinator")
    p.add_argument("--num-processes", type=int, default=None, metavar="N",
                   help="with --distributed: processes in the job")
    p.add_argument("--process-id", type=int, default=None, metavar="I",
                   help="with --distributed: this process's index in [0, N)")
    p.add_argument("--dry-run", action="store_true",
                   help="compile the train step ahead of time and print its per-device "
                        "memory, FLOPs and tokens per video as JSON; trains nothing, writes "
                        "nothing (no --data/--workdir needed)")
    p.add_argument("--target", default=None, metavar="MACHINE",
                   help="with --dry-run: compile for this machine instead of the local "
                        "devices, deviceless: tpu:GEN:TOPOLOGY (e.g. tpu:v5e:4x4; needs "
                        "physim[tpu]) or gpu:MODEL:N (e.g. gpu:h100:8; needs the JAX CUDA "
                        "plugin); docs/accelerators.md")
    p.add_argument("--allow-cpu", action="store_true",
                   help=f"train a paper preset ({', '.join(PAPER_PRESETS)}) on a CPU anyway")
    p.add_argument("--compile-cache", default=None, metavar="DIR",
                   help="JAX persistent compilation cache (default: $PHYSIM_COMPILE_CACHE, "
                        "else ~/.cache/physim/jax/<jax, jaxlib, backend, host CPU>; '' "
                        "turns it off)")
    p.set_defaults(func=run_train)


def init_distributed(args) -> None:
    """``jax.distributed.initialize`` from ``--distributed`` and its explicit options;
    ``ValueError`` for options given without ``--distributed`` or only some of them."""
    explicit = {"--coordinator": args.coordinator, "--num-processes": args.num_processes,
                "--process-id": args.process_id}
    given = [k for k, v in explicit.items() if v is not None]
    if given and not args.distributed:
        raise ValueError(f"{', '.join(given)} need --distributed")
    if not args.distributed:
        return
    if given and len(given) != 3:
        missing = [k for k in explicit if k not in given]
        raise ValueError(f"--distributed with {', '.join(given)} also needs "
                         f"{', '.join(missing)}")
    if given:
        if not 0 <= args.process_id < args.num_processes:
            raise ValueError(f"--process-id {args.process_id} must be in [0, "
                             f"--num-processes {args.num_processes})")
        jax.distributed.initialize(coordinator_address=args.coordinator,
                                   num_processes=args.num_processes,
                                   process_id=args.process_id)
    else:
        jax.distributed.initialize()


def compile_cache(arg: str | None) -> str | None:
    """Turn on JAX's persistent compilation cache for this process; returns its folder.

    ``arg``: a folder, ``""`` (off), or None: ``$PHYSIM_COMPILE_CACHE`` if set (``""``:
    off), else ``~/.cache/physim/jax/<fingerprint>``, where the fingerprint names the jax
    and jaxlib versions, the backend and (on CPU) a digest of the host's CPU flags, since
    XLA:CPU executables are compiled for the host and a runtime must not load another's.
    Every compilation is cached (no minimum compile time): a sampling run's many short
    compilations are most of its start-up (16 videos of a tiny model on one core: 22 s
    cold, 10-12 s warm, docs/benchmarks.md).
    """
    path = os.environ.get("PHYSIM_COMPILE_CACHE") if arg is None else arg
    if path is None:
        import hashlib

        import jaxlib

        backend = jax.default_backend()
        tag = f"{backend}-jax{jax.__version__}-jaxlib{jaxlib.__version__}"
        if backend == "cpu":
            try:
                with open("/proc/cpuinfo") as f:
                    flags = next((ln for ln in f if ln.startswith("flags")), "")
            except OSError:
                flags = ""
            import platform

            flags = f"{platform.machine()} {platform.processor()} {flags}"
            tag += "-" + hashlib.sha256(flags.encode()).hexdigest()[:12]
        path = os.path.join(os.path.expanduser("~"), ".cache", "physim", "jax", tag)
    if not path:
        return None
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()  # JAX decides once per process whether it caches
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


def refuse_cpu(preset: str, allow: bool) -> None:
    """``ValueError`` for a paper preset on a CPU backend unless ``allow``."""
    backend = jax.default_backend()
    if preset in PAPER_PRESETS and backend == "cpu" and not allow:
        raise ValueError(f"preset {preset!r} is a paper-scale model and the JAX backend is "
                         f"{backend!r} ({jax.device_count()} devices: "
                         f"{jax.devices()[0].device_kind}); install physim[cuda] or "
                         "physim[tpu] for an accelerator, or pass --allow-cpu")


def run_train(args) -> int:
    if args.stop_at is not None and args.stop_at < 1:
        raise ValueError(f"--stop-at must be >= 1, got {args.stop_at}")
    cfg = configs.apply_overrides(configs.get_preset(args.preset), args.set)
    if not args.dry_run and not (args.data and args.workdir):
        raise ValueError("physim train needs --data and --workdir (or --dry-run)")
    target = getattr(args, "target", None)
    if target not in (None, "local"):
        if not args.dry_run:
            raise ValueError("--target needs --dry-run (it compiles for another machine)")
        # A deviceless compile runs on the host CPU: keep the accelerator plugins from
        # starting (the CUDA plugin's checks want a GPU, libtpu looks for TPU chips).
        jax.config.update("jax_platforms", "cpu")
    init_distributed(args)
    if target in (None, "local"):  # the cache is keyed by this host's backend
        compile_cache(args.compile_cache)
    if args.dry_run:
        cached = bool(args.data and args.data.startswith("latents:"))
        print(json.dumps(dry_run(cfg, cached=cached, target=target), indent=1))
        return 0
    refuse_cpu(args.preset, args.allow_cpu)
    source = data.open_source(args.data, cfg.data, batch_size=cfg.train.batch_size,
                              split=args.split)
    m = train(cfg, source, args.workdir, progress=not args.no_progress, stop_at=args.stop_at,
              data_name=source_name(args.data, args.split))
    print(json.dumps(m))
    if m.get("preempted"):
        print(f"physim train: preempted (SIGTERM) after step {m['step']}; its checkpoint is "
              "saved, the same command resumes", file=sys.stderr)
        return 143
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
