"""Frozen configs for the models package and the preset registry.

Every run is described by one :class:`Config` (data, network, diffusion and training
parts). Presets are derived from a few bases with ``dataclasses.replace`` and kept in
:data:`PRESETS`; ``apply_overrides(cfg, ["train.lr=3e-4"])`` changes single fields.

Paper sizes (Kang et al. 2024, Table in §2.2): DiT-S/B/L/XL = 12/384/6, 12/768/12,
24/1024/16, 28/1152/16 with 22.5M/89.5M/310M/456M parameters. Those counts fit a DiT
whose timestep modulation is shared across blocks (adaLN-single, PixArt-α) rather than
one 6·D² modulation MLP per block (which would give DiT-S 32M), so ``adaln="single"``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Videos as the trainer sees them: uint8 (B, frames, resolution, resolution, 3)."""

    resolution: int = 128  # pixels per side
    frames: int = 32
    n_cond: int = 3  # conditioning frames (3 basic scenarios, 1 combinatorial)
    flip: bool = True  # random horizontal flip, the paper's only augmentation
    seed: int = 0  # order of examples and flips
    clip: str = "start"  # videos longer than ``frames``: "start" (first frames) or "random"
    #   (a random window; e.g. a VAE trained on short clips of the full videos)
    workers: int = 0  # grain:DIR sources: Grain worker processes rendering batches (0: none)
    prefetch: int = 2  # batches put on the devices ahead of the step (0: none)


@dataclass(frozen=True, kw_only=True)
class VAEConfig:
    """Convolutional video VAE (``models.vae``); ``widths`` has log2(spatial_down)+1 levels."""

    spatial_down: int = 8  # 4 or 8
    temporal_down: int = 4  # 1, 2 or 4 (causal)
    latent_channels: int = 4
    widths: tuple[int, ...] = (64, 128, 256, 256)  # per resolution level
    temporal_kernel: int = 3  # 3: causal 3x3x3 convs; 1: per-frame 1x3x3 (temporal_down 1)
    kl_weight: float = 1e-6
    # Reconstruction weight of pixels within 1 px of anything that is not the frame's
    # background (its median colour), relative to 1 for the rest (``models.vae.pixel_weights``).
    fg_weight: float = 1.0
    # Local-moment loss (``models.vae.moment_loss``): weight and box size in pixels. 0: off.
    moment_weight: float = 0.0
    moment_window: int = 8
    dtype: str = "float32"


@dataclass(frozen=True, kw_only=True)
class DiTConfig:
    """Diffusion transformer over spacetime patches of the (latent or pixel) video."""

    depth: int = 12
    width: int = 384
    heads: int = 6
    mlp_ratio: float = 4.0
    patch: tuple[int, int, int] = (1, 2, 2)  # (time, height, width)
    adaln: str = "single"  # "single": shared modulation MLP (PixArt); "block": DiT's per-block
    abs_pos: bool = False  # add a fixed sin-cos embedding of (t, h, w) on top of 3D RoPE
    rope_theta: float = 10000.0
    # Output head: "linear" (DiT: each token's vector mapped linearly to its patch's values)
    # or "pixel_mlp" (the token is mapped linearly to ``head_channels`` features per pixel,
    # then a per-pixel MLP of ``head_hidden`` units gives the values: a disc's soft edge is
    # a clipped quadratic of the pixel coordinates, which the linear map can give exactly
    # and the per-pixel nonlinearity can clip; a linear head must span every disc position),
    # or "mlp" (each token's vector through a GELU layer of ``head_hidden`` units, then
    # linearly to its patch: a linear head's patches all lie in a ``width``-dimensional
    # affine subspace, and at width 128 the best such subspace of 4x8x8x3 truth patches
    # already scores 0.096 on uniform motion and 0.28 after collisions, docs/results.md).
    head: str = "linear"
    head_channels: int = 8
    head_hidden: int = 32
    # Overlapping output patches (0, 0, 0: none): each token predicts its patch grown by
    # ``overlap`` cells on both sides of each axis (t, h, w), and neighbouring predictions
    # are blended by overlap-add with linear cross-fades that sum to one (as in audio
    # synthesis), so the output has no seam at patch borders. Each entry at most half the
    # patch size along its axis. (2, 0, 0) with 4x8x8 patches: 8-frame blocks, 4-frame fades.
    overlap: tuple[int, int, int] = (0, 0, 0)
    dtype: str = "float32"  # compute dtype; the trainer switches to bfloat16 on GPU/TPU
    # Attention kernel (``models.dit.attention``): "auto" (cuDNN flash attention on GPU in
    # bfloat16/float16, XLA otherwise), "xla", "cudnn" (GPU only) or "tpu_flash" (Pallas
    # flash attention, TPU only). The choice changes speed and memory, not the function.
    attention: str = "auto"
    remat: bool = False  # rematerialise each block's activations in the backward pass


@dataclass(frozen=True, kw_only=True)
class DiffusionConfig:
    """Objective and noise schedule (``models.diffusion``)."""

    objective: str = "v"  # "v": v-prediction, zero terminal SNR; "flow_x": flow matching, x-pred
    schedule: str = "linear"  # v only: "linear" (scaled-linear betas) or "cosine", both rescaled
    num_timesteps: int = 1000  # v only: discrete training timesteps
    sample_steps: int = 50  # DDIM / Euler steps
    # Rollouts averaged into each sampled video (1: one sample). Each of the K runs the
    # sampler from its own noise, and the video is their mean in float space (before the
    # uint8 rounding): a Monte Carlo estimate of the posterior mean E[x0 | given frames],
    # which is the answer when the future is determined by the given frames (our basic
    # scenarios) and a blend of outcomes when it is not. A sampling choice: it can be set
    # after training (``physim sample --mean-of K``); K times the sampling cost.
    sample_mean: int = 1
    t_dist: str = "uniform"  # training noise levels: "uniform", "logit_normal" (flow_x) or
    #   "grid": only the levels the sampler visits with sample_steps (train = sample levels)
    # grid only: share of training examples at the first (noisiest, t = 1) level, the rest
    # spread evenly over the other levels; 0: every level equally often
    grid_top: float = 0.0
    t_mean: float = 0.0  # logit_normal: logit(t) ~ N(t_mean, t_std)
    t_std: float = 1.0
    x_loss: str = "x"  # flow_x: "x" = |x - x̂|², "v" = |v - v̂|² = |x - x̂|²/max(t, .05)² (JiT)
    loss_on_cond: bool = False  # also score the (given) conditioning frames
    # Pixel-space DiT only: weight of the squared error on pixels within one pixel of an
    # object of the clean video, relative to 1 for the background (``models.vae.
    # pixel_weights``, normalised to mean 1). A ball covers ~3% of a 32-px frame: unweighted,
    # the loss sits on a plateau of "draw only the background" for hundreds of steps.
    fg_weight: float = 1.0


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimiser, schedule and loop (``models.train``)."""

    steps: int = 100_000
    batch_size: int = 256  # global, over all devices and hosts
    lr: float = 1e-4
    weight_decay: float = 0.01
    b1: float = 0.9
    b2: float = 0.999
    warmup: int = 1000
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    clip: float = 1.0  # global gradient norm
    ema_decay: float = 0.9999
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 1000
    keep: int = 3  # checkpoints kept
    precision: str = "auto"  # "auto": bfloat16 compute on GPU/TPU, float32 on CPU
    # Fine-tuning: a run dir whose latest raw and EMA weights start this run (same network;
    # fresh optimiser, schedule and data order). Ignored once this run has a checkpoint.
    init_from: str = ""
    # Gradient accumulation (``optax.MultiSteps``): each step runs ``accum_steps`` micro-
    # batches of batch_size / accum_steps videos in sequence and applies one update with
    # their mean gradient (memory of one micro-batch). With accum_steps > 1 every video's
    # noise is drawn per example (as with example_noise), so the loss does not depend on
    # the split.
    accum_steps: int = 1
    # Draw each video's noise level and noise from fold_in(step key, its index in the
    # global batch) instead of one draw for the batch (False: the original numerics).
    example_noise: bool = False
    fsdp: int = 1  # devices per FSDP group: parameters and optimiser state sharded over
    #   them (mesh axis "fsdp"); the remaining factor of the device count is data parallel


@dataclass(frozen=True, kw_only=True)
class Config:
    """One run: ``model`` is "dit" (pixel or latent space) or "vae"."""

    name: str
    model: str = "dit"
    data: DataConfig = field(default_factory=DataConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    latent: bool = True  # dit: diffuse in the latent space of a frozen VAE (False: pixels)
    vae_workdir: str = ""  # dit with latent=True: workdir of the trained VAE
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        validate(self)

    @property
    def diffusion_shape(self) -> tuple[int, int, int, int]:
        """(T, H, W, C) of the tensor the DiT denoises (latent or pixel video)."""
        d = self.data
        if self.model == "dit" and self.latent:
            v = self.vae
            return (d.frames // v.temporal_down, d.resolution // v.spatial_down,
                    d.resolution // v.spatial_down, v.latent_channels)
        return (d.frames, d.resolution, d.resolution, 3)


def validate(cfg: Config) -> None:
    """Raise ``ValueError`` naming the first inconsistent field."""
    d, n, v = cfg.data, cfg.dit, cfg.vae
    if cfg.model not in ("dit", "vae"):
        raise ValueError(f"model must be 'dit' or 'vae', got {cfg.model!r}")
    if d.clip not in ("start", "random"):
        raise ValueError(f"data.clip must be 'start' or 'random', got {d.clip!r}")
    if cfg.model == "dit" and not 0 < d.n_cond < d.frames:  # a VAE has no conditioning
        raise ValueError(f"data.n_cond={d.n_cond} must be in [1, frames={d.frames})")
    if v.spatial_down not in (1, 2, 4, 8) or v.temporal_down not in (1, 2, 4):
        raise ValueError(f"vae.spatial_down must be 4 or 8 (or 1/2) and temporal_down 1, 2 or 4, "
                         f"got {v.spatial_down}, {v.temporal_down}")
    if v.temporal_kernel not in (1, 3) or (v.temporal_kernel == 1 and v.temporal_down != 1):
        raise ValueError(f"vae.temporal_kernel must be 3, or 1 with temporal_down 1; got "
                         f"{v.temporal_kernel} with temporal_down {v.temporal_down}")
    if v.fg_weight < 1:
        raise ValueError(f"vae.fg_weight must be >= 1, got {v.fg_weight}")
    if v.moment_weight < 0 or v.moment_window < 2 or v.moment_window % 2 or (
            cfg.model == "vae" and v.moment_weight and d.resolution % (v.moment_window // 2)):
        raise ValueError(f"vae.moment_window must be even and its half divide the resolution "
                         f"{d.resolution}, and vae.moment_weight >= 0; got {v.moment_window}, "
                         f"{v.moment_weight}")
    if d.resolution % v.spatial_down or d.frames % v.temporal_down:
        raise ValueError(f"data {d.frames}x{d.resolution}^2 not divisible by vae downsampling "
                         f"{v.temporal_down}x{v.spatial_down}")
    if cfg.model == "dit":
        t, h, w, _ = cfg.diffusion_shape
        pt, ph, pw = n.patch
        if t % pt or h % ph or w % pw:
            raise ValueError(f"dit.patch={n.patch} does not divide the diffusion shape {(t, h, w)}")
        if n.width % n.heads or (n.width // n.heads) % 2 or n.width // n.heads < 6:
            raise ValueError(f"dit.width/heads = {n.width}/{n.heads} must give an even head "
                             "dim >= 6 (3D RoPE rotates pairs on 3 axes)")
        if len(n.overlap) != 3 or any(o < 0 or 2 * o > p
                                       for o, p in zip(n.overlap, n.patch, strict=False)):
            raise ValueError(f"dit.overlap must be 3 cells (t, h, w), each >= 0 and at most "
                             f"half of dit.patch={tuple(n.patch)}, got {tuple(n.overlap)}")
        if any(n.overlap) and n.head == "pixel_mlp":
            raise ValueError("dit.overlap needs dit.head='linear' or 'mlp'")
        if n.head not in ("linear", "pixel_mlp", "mlp") or n.head_channels < 1 or (
                n.head_hidden < 1):
            raise ValueError(f"dit.head must be 'linear', 'pixel_mlp' or 'mlp' with "
                             f"head_channels and "
                             f"head_hidden >= 1, got {n.head!r}, {n.head_channels}, "
                             f"{n.head_hidden}")
        if n.adaln not in ("single", "block"):
            raise ValueError(f"dit.adaln must be 'single' or 'block', got {n.adaln!r}")
    if cfg.diffusion.objective not in ("v", "flow_x"):
        raise ValueError(f"diffusion.objective must be 'v' or 'flow_x', got "
                         f"{cfg.diffusion.objective!r}")
    if cfg.diffusion.t_dist not in ("uniform", "logit_normal", "grid"):
        raise ValueError(f"diffusion.t_dist must be uniform, logit_normal or grid, got "
                         f"{cfg.diffusion.t_dist!r}")
    if not 0.0 <= cfg.diffusion.grid_top < 1.0 or (
            cfg.diffusion.grid_top and (cfg.diffusion.t_dist != "grid"
                                        or cfg.diffusion.sample_steps < 2)):
        raise ValueError(f"diffusion.grid_top must be in [0, 1), and nonzero only with "
                         f"t_dist='grid' and sample_steps >= 2, got "
                         f"{cfg.diffusion.grid_top}")
    if cfg.diffusion.sample_mean < 1:
        raise ValueError(f"diffusion.sample_mean must be >= 1, got {cfg.diffusion.sample_mean}")
    if cfg.diffusion.x_loss not in ("x", "v"):
        raise ValueError(f"diffusion.x_loss must be 'x' or 'v', got {cfg.diffusion.x_loss!r}")
    if cfg.diffusion.schedule not in ("linear", "cosine"):
        raise ValueError(f"diffusion.schedule must be 'linear' or 'cosine', got "
                         f"{cfg.diffusion.schedule!r}")
    if cfg.diffusion.fg_weight < 1 or (cfg.diffusion.fg_weight != 1 and cfg.model == "dit"
                                       and cfg.latent):
        raise ValueError(f"diffusion.fg_weight must be >= 1, and 1 for a latent DiT (objects "
                         f"are found in pixels), got {cfg.diffusion.fg_weight}")
    tc = cfg.train
    if tc.batch_size < 1 or tc.steps < 1 or tc.log_every < 1 or tc.ckpt_every < 1 or tc.keep < 1:
        raise ValueError(f"train.batch_size, steps, log_every, ckpt_every and keep must be >= 1, "
                         f"got {tc.batch_size}, {tc.steps}, {tc.log_every}, {tc.ckpt_every}, "
                         f"{tc.keep}")
    for name in ("lr", "weight_decay", "b1", "b2", "clip", "ema_decay", "min_lr_ratio"):
        val = getattr(tc, name)
        if not math.isfinite(val) or val < 0:
            raise ValueError(f"train.{name} must be a finite number >= 0, got {val}")
    if not 0 <= tc.ema_decay < 1 or tc.warmup < 0:
        raise ValueError(f"train.ema_decay must be in [0, 1) and train.warmup >= 0, got "
                         f"{tc.ema_decay}, {tc.warmup}")
    if n.attention not in ("auto", "xla", "cudnn", "tpu_flash"):
        raise ValueError(f"dit.attention must be auto, xla, cudnn or tpu_flash, got "
                         f"{n.attention!r}")
    if tc.accum_steps < 1 or tc.fsdp < 1 or d.workers < 0 or d.prefetch < 0:
        raise ValueError(f"train.accum_steps and train.fsdp must be >= 1, data.workers and "
                         f"data.prefetch >= 0; got {tc.accum_steps}, {tc.fsdp}, {d.workers}, "
                         f"{d.prefetch}")
    if tc.batch_size % tc.accum_steps:
        raise ValueError(f"train.batch_size {tc.batch_size} is not divisible by "
                         f"train.accum_steps {tc.accum_steps}")
    if d.resolution < 4 or d.frames < 1:
        raise ValueError(f"data.resolution must be >= 4 and data.frames >= 1, got "
                         f"{d.resolution}, {d.frames}")


# ----------------------------------------------------------------------------- presets

_PAPER = Config(name="paper-base", latent=True, vae=VAEConfig(spatial_down=8, temporal_down=4))


def _dit(name: str, depth: int, width: int, heads: int, **kw) -> Config:
    return replace(_PAPER, name=name, dit=replace(_PAPER.dit, depth=depth, width=width,
                                                  heads=heads), **kw)


# Tiny pixel-space DiT that learns uniform motion on 2 CPU cores (1.3M params):
# 32x32 frames, a token per 16x16 quarter of a frame (128 tokens), x-prediction flow
# matching trained on exactly the noise levels its 8-step sampler visits. No flip: the
# ID evaluation videos all move +x, so flips would only spend capacity.
# Measured (2026-11-28, one uninterrupted run of `physim train --preset dit-px32 --data
# scenario:uniform --workdir W`, 6000 steps x 16 videos, 37 min wall on 2 shared cores):
# velocity error 0.53 (95% CI 0.46-0.61) on 64 ID videos (`physim generate uniform --split
# id --n 64 --seed 0`), 8 sampling steps; copying the last conditioning frame scores 2.50.
# models/checkpoints/dit-px32 is that run's export (docs/results.md).
_PX32 = Config(
    name="dit-px32",
    latent=False,
    data=DataConfig(resolution=32, frames=32, n_cond=3, flip=False),
    dit=DiTConfig(depth=4, width=128, heads=4, patch=(1, 16, 16), abs_pos=True),
    diffusion=DiffusionConfig(objective="flow_x", sample_steps=8, t_dist="grid"),
    train=TrainConfig(steps=6000, batch_size=16, lr=5e-4, warmup=200, ema_decay=0.999,
                      log_every=25, ckpt_every=250, keep=4),
)

# The tiny DiT of the quickstart, one run per basic scenario (uniform, collision, parabola:
# `physim train --preset dit-tiny --data scenario:NAME`): dit-px32's network and sampler
# with spacetime patches of 4 frames x 8x8 pixels (the same 128 tokens and FLOPs, but each
# token draws a quarter of the area over four frames). Chosen by short probes (docs/
# results.md: it left the loss plateau earlier than 1x16x16; the per-pixel MLP head and
# fg_weight did not pay off per minute). Measured (2026-12-01, 6000 steps x 16, 89 min
# each with the three runs sharing 2 cores; 128 ID / 128 OOD videos, seed 1): velocity
# error uniform 0.605 / 1.789 (dit-px32: 0.500 / 1.515), collision after the collision
# 1.526 / 1.892 (copy-last 1.819 ID), parabola 0.615 / 2.189 (copy-last 4.126; median
# fitted a_y -2.477, g = -2.5). models/checkpoints/tiny-* are these runs.
_TINY = replace(
    _PX32, name="dit-tiny",
    dit=replace(_PX32.dit, patch=(4, 8, 8)),
    train=replace(_PX32.train, steps=6000))

# dit-tiny on a 2-hour schedule: 13000 steps x 16 (208K fresh videos), sized for one run
# per CPU core (`taskset -c N`, about 480 ms per step) with two runs sharing 2 cores.
_TINY_LONG = replace(_TINY, name="dit-tiny-long", train=replace(_TINY.train, steps=13000))

# dit-tiny whose output patches cross-fade over 2 frames on each side of every temporal
# patch border (``dit.overlap``): the linear head of dit-tiny-long draws each 4-frame patch
# on its own, and its rollouts jump at the borders (velocity error between frames 4j-1 and
# 4j: 0.59 against 0.27 inside a patch, 64 ID videos, docs/results.md). 7% more parameters,
# 3% more time per step. 13000 steps x 16 (as dit-tiny-long), one run per core.
_TINY_XFADE = replace(_TINY, name="dit-tiny-xfade",
                      dit=replace(_TINY.dit, overlap=(2, 0, 0)),
                      train=replace(_TINY.train, steps=13000))

# dit-tiny-xfade with an MLP head (``dit.head="mlp"``, 256 GELU units per token): the
# linear head's patches lie in a 128-dimensional affine subspace, and the best such
# subspace of the truth's own 4x8x8 patches (PCA, an oracle) already scores 0.096 on ID
# uniform motion (bar 0.12) and 0.28 after collisions, with 62% of collision videos flagged
# for shape (docs/results.md). +16% parameters, +14% time per step: 12000 steps x 16 fit
# the 2-hour budget with one run per core.
_TINY_MLP = replace(_TINY_XFADE, name="dit-tiny-mlp",
                    dit=replace(_TINY_XFADE.dit, head="mlp", head_hidden=256),
                    train=replace(_TINY.train, steps=12000))

# dit-tiny-mlp twice as deep (8 blocks, 2.43M parameters): the MLP head did not move the
# velocity error (0.186 -> 0.184 uniform), so the next probe is the network behind it.
# Depth is cheap at this size (models.train.benchmark, batch 16, one run per core: 0.63 s
# per step against 0.43-0.47 for depth 4). Measured (2026-12-02, 10500 steps, one run per
# core, both at once: 128 min, 0.65-0.79 s per step, so over the 2-hour bar by 8 min; about
# 9800 steps fit): uniform ID 0.180 (dit-tiny-mlp 0.184), collision after the collision
# 0.618 = 0.34x copy-last (0.714), both balls found 85% (78%). models/checkpoints/tiny-deep-*.
_TINY_DEEP = replace(_TINY_MLP, name="dit-tiny-deep",
                     dit=replace(_TINY_MLP.dit, depth=8),
                     train=replace(_TINY_MLP.train, steps=10500))

# dit-tiny-deep as ONE run on both cores (no ``taskset``), 16000 steps x 16 = 256K fresh
# videos: more training videos were the only change that moved the uniform jitter (a 5000-
# step fine-tune of tiny-deep-uniform on 80K more videos: ID 0.180 -> 0.162, docs/results.md
# round ten). Measured on idle cores: 0.41 s per step with both cores on one run (0.65-0.79
# with one run per core), so 16000 steps fit the 2-hour budget.
_TINY_DEEP2C = replace(_TINY_DEEP, name="dit-tiny-deep2c",
                       train=replace(_TINY_DEEP.train, steps=16000))

# dit-tiny-deep with the error of the x-prediction weighted as a velocity error
# (``diffusion.x_loss="v"``: |x - x̂|² / t², JiT's loss), on the 2-hour budget (9000 steps:
# dit-tiny-deep ran 0.65-0.79 s per step, one run per core).
# dit-tiny-deep's uniform error is mostly jitter of the drawn position (0.140 against a speed
# error of 0.080), which the last, least noisy sampler levels decide; with the plain x loss
# each of the 8 grid levels weighs the same and the noisiest ones dominate the gradient
# (their error is the largest). 1/t² gives the level t = 0.125 64x the weight of t = 1.
_TINY_VLOSS = replace(_TINY_DEEP, name="dit-tiny-vloss",
                      diffusion=replace(_TINY_DEEP.diffusion, x_loss="v"),
                      train=replace(_TINY_DEEP.train, steps=9000))

# dit-tiny-deep trained and sampled on two noise levels (t = 1 and 0.5: ``diffusion.
# sample_steps=2`` with the "grid" level distribution) instead of eight. The future of a
# deterministic scene is one video, so the first level's x-prediction is already the
# answer, and the later levels only refine it: tiny-deep-uniform, trained on eight levels,
# scores 0.184 sampled with 1 step, 0.166 with 2 and 0.173 with 4 against 0.180 with its 8
# (64 ID videos, docs/results.md). Two levels give each one four times the training
# examples. 8500 steps to stay inside the 2-hour budget with one run per core.
_TINY_2LEV = replace(_TINY_DEEP, name="dit-tiny-2lev",
                     diffusion=replace(_TINY_DEEP.diffusion, sample_steps=2),
                     train=replace(_TINY_DEEP.train, steps=8500))

# dit-tiny-deep with half of its training examples at the first level (t = 1, ``diffusion.
# grid_top=0.5``), the other half spread over the remaining seven. Sampled with fewer steps,
# tiny-deep-uniform scores best with 2 (0.166 against 0.180 with 8), while dit-tiny-2lev,
# trained on the two levels only, halved the speed error but drew less steadily (jitter 0.167
# against 0.140, ID 0.196): the first level sets the motion, the later ones the drawing. This
# keeps every level trained and gives the first one 4x its share. 8500 steps, as dit-tiny-2lev.
_TINY_TOP = replace(_TINY_DEEP, name="dit-tiny-top",
                    diffusion=replace(_TINY_DEEP.diffusion, grid_top=0.5),
                    train=replace(_TINY_DEEP.train, steps=8500))

# dit-tiny-mlp on 64-px frames with 4x16x16 patches: the same 128 tokens, each drawing
# twice the pixels per world unit. Every tiny model's uniform error is jitter of the drawn
# position, about 0.06 px of frame-to-frame displacement at 32 px (0.18 world units/s,
# docs/results.md); if that precision is set in pixels, not in fractions of a token, 64-px
# frames halve it in world units. 2.5x the time per step (models.train.benchmark, batch 16,
# one core: 1.12 s against 0.44), so 5800 steps fit the 2-hour budget on one core.
_TINY_64 = replace(_TINY_MLP, name="dit-tiny-64",
                   data=replace(_TINY_MLP.data, resolution=64),
                   dit=replace(_TINY_MLP.dit, patch=(4, 16, 16)),
                   train=replace(_TINY_MLP.train, steps=5800))

# Smallest possible models, for tests only (seconds per step on one core).
_TEST_DATA = DataConfig(resolution=16, frames=4, n_cond=1)
_TEST_TRAIN = TrainConfig(steps=4, batch_size=4, lr=1e-3, warmup=1, ema_decay=0.9,
                          log_every=1, ckpt_every=2)

# A per-frame VAE (temporal 1, like the paper's image VAE) for 32-px videos, trained on
# random single frames; reconstructs videos of any length.
_VAE_F4T1_32 = Config(
    name="vae-f4t1-32", model="vae",
    data=DataConfig(resolution=32, frames=1, clip="random"),
    vae=VAEConfig(spatial_down=4, temporal_down=1, latent_channels=8, widths=(32, 64, 64),
                  temporal_kernel=1),
    train=TrainConfig(steps=3000, batch_size=32, lr=1e-3, warmup=100, ema_decay=0.999,
                      log_every=25, ckpt_every=250, keep=3))

PRESETS: dict[str, Config] = {
    "dit-s": _dit("dit-s", 12, 384, 6),
    "dit-b": _dit("dit-b", 12, 768, 12),
    "dit-l": _dit("dit-l", 24, 1024, 16),
    "dit-xl": _dit("dit-xl", 28, 1152, 16),
    "dit-px32": _PX32,
    "dit-tiny": _TINY,
    "dit-tiny-long": _TINY_LONG,
    "dit-tiny-xfade": _TINY_XFADE,
    "dit-tiny-mlp": _TINY_MLP,
    "dit-tiny-deep": _TINY_DEEP,
    "dit-tiny-deep2c": _TINY_DEEP2C,
    "dit-tiny-vloss": _TINY_VLOSS,
    "dit-tiny-2lev": _TINY_2LEV,
    "dit-tiny-top": _TINY_TOP,
    "dit-tiny-64": _TINY_64,
    "dit-px32-v": replace(_PX32, name="dit-px32-v",
                          diffusion=DiffusionConfig(objective="v", sample_steps=8,
                                                    t_dist="grid")),
    "dit-test": Config(
        name="dit-test", latent=False, data=_TEST_DATA,
        dit=DiTConfig(depth=1, width=24, heads=2, patch=(1, 4, 4), abs_pos=True),
        diffusion=DiffusionConfig(objective="v", sample_steps=3), train=_TEST_TRAIN),
    "dit-test-latent": Config(
        name="dit-test-latent", latent=True, data=_TEST_DATA,
        vae=VAEConfig(spatial_down=4, temporal_down=2, latent_channels=4, widths=(8, 8, 8)),
        dit=DiTConfig(depth=1, width=24, heads=2, patch=(1, 2, 2)),
        diffusion=DiffusionConfig(objective="flow_x", sample_steps=3), train=_TEST_TRAIN),
    "vae-f8t4": Config(name="vae-f8t4", model="vae",
                       vae=VAEConfig(spatial_down=8, temporal_down=4),
                       train=replace(TrainConfig(), batch_size=32, lr=1e-4, steps=50_000)),
    "vae-f4t2-32": Config(
        name="vae-f4t2-32", model="vae", data=DataConfig(resolution=32),
        vae=VAEConfig(spatial_down=4, temporal_down=2, latent_channels=4, widths=(32, 64, 64)),
        train=TrainConfig(steps=5000, batch_size=8, lr=3e-4, warmup=200, ema_decay=0.999)),
    "vae-f4t1-32": _VAE_F4T1_32,
    # The same with twice the widths: about 2.2x the step time, a much lower error per step
    # (docs/results.md, "The VAE, third round": velocity error of parsed reconstructions
    # 0.039 / 0.032 / 0.029 / 0.0271 at steps 750 / 1250 / 1750 / 3000, against 0.083 (750),
    # 0.043 (1500), 0.034 (3000) for vae-f4t1-32; 105 min on 2 CPU cores). Extended 2500
    # steps with train.init_from, lr 3e-4, KL 1e-8 (85 min): 0.0234 on 128 held-out ID
    # videos, 1.38x the same-parser floor ("The VAE, fourth round").
    "vae-f4t1-32-wide": replace(_VAE_F4T1_32, name="vae-f4t1-32-wide",
                                vae=replace(_VAE_F4T1_32.vae, widths=(64, 128, 128))),
    "vae-test": Config(
        name="vae-test", model="vae", data=_TEST_DATA,
        vae=VAEConfig(spatial_down=4, temporal_down=2, latent_channels=4, widths=(8, 8, 8)),
        train=_TEST_TRAIN),
}


def get_preset(name: str) -> Config:
    """The registered preset ``name``; ``ValueError`` listing the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None


# ----------------------------------------------------------------------------- overrides & JSON

def _convert(text: str, current, hint):
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, tuple):
        items = [s for s in text.strip("()[] ").split(",") if s.strip()]
        kind = type(current[0]) if current else int
        return tuple(kind(s) for s in items)
    return text


def apply_overrides(cfg: Config, overrides: typing.Iterable[str]) -> Config:
    """``cfg`` with ``"section.field=value"`` (or ``"field=value"``) overrides applied.

    Values are parsed with the type of the current value; tuples as ``"1,8,8"``.
    """
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        path = key.strip().split(".")
        objs = [cfg]
        for name in path[:-1]:
            sub = getattr(objs[-1], name, None)
            if not dataclasses.is_dataclass(sub):
                raise ValueError(f"override {key!r}: {name!r} is not a config section")
            objs.append(sub)
        leaf = path[-1]
        if leaf not in {f.name for f in dataclasses.fields(objs[-1])}:
            raise ValueError(f"override {key!r}: unknown field {leaf!r} of "
                             f"{type(objs[-1]).__name__}")
        try:
            value = _convert(text.strip(), getattr(objs[-1], leaf), None)
        except ValueError as e:
            raise ValueError(f"override {key!r}: {e}") from None
        for obj, name in zip(reversed(objs), reversed(path), strict=True):
            value = replace(obj, **{name: value})
        cfg = value
    return cfg


def to_dict(cfg: Config) -> dict:
    """JSON-able nested dict of ``cfg``."""
    return dataclasses.asdict(cfg)


def from_dict(d: dict) -> Config:
    """Inverse of :func:`to_dict` (lists become tuples)."""
    def build(cls, values):
        kw = {}
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            val = values[f.name]
            hint = hints[f.name]
            if dataclasses.is_dataclass(hint):
                val = build(hint, val)
            elif isinstance(val, list):
                val = tuple(val)
            kw[f.name] = val
        return cls(**kw)
    return build(Config, d)


def to_json(cfg: Config) -> str:
    return json.dumps(to_dict(cfg), indent=1, sort_keys=True)


def from_json(text: str) -> Config:
    return from_dict(json.loads(text))
