"""Diffusion processes, kept apart from the networks: schedules, training loss, samplers.

Two objectives (``DiffusionConfig.objective``):

* ``"v"`` — the paper's: discrete-time Gaussian diffusion ``x_t = a_t x0 + s_t eps`` with
  ``a_t² = ᾱ_t``, a schedule rescaled to zero terminal SNR (``ᾱ_{N-1} = 0``, Lin et al. 2024,
  https://arxiv.org/abs/2305.08891), v-prediction ``v = a_t eps - s_t x0`` and a DDIM sampler
  with "trailing" timesteps, so its first step is at pure noise like training's last.
* ``"flow_x"`` — flow matching ``z_t = (1 - t) x0 + t eps`` where the network predicts the
  clean video x0 (Li & He 2025, "Back to Basics: Let Denoising Generative Models Denoise"),
  sampled with the matching deterministic (DDIM-equivalent) Euler steps.

Every function takes ``apply(x_t, t, cond, mask)``: the network, with ``t`` in [0, 1000]
(1000 = pure noise). Videos are float (B, T, H, W, C); ``mask`` (B, T) is 1 on given frames.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from models.configs import DiffusionConfig


def alphas_cumprod(cfg: DiffusionConfig) -> np.ndarray:
    """ᾱ (N,) float64 for timesteps 0..N-1, rescaled so ᾱ_0 is kept and ᾱ_{N-1} = 0."""
    n = cfg.num_timesteps
    if cfg.schedule == "linear":  # Stable Diffusion's "scaled linear" betas
        betas = np.linspace(0.00085**0.5, 0.012**0.5, n) ** 2
        abar = np.cumprod(1.0 - betas)
    else:  # cosine (Nichol & Dhariwal)
        s = 0.008
        f = np.cos((np.arange(n + 1) / n + s) / (1 + s) * np.pi / 2) ** 2
        abar = np.clip(f[1:] / f[0], 0.0, 1.0)
    # Lin et al. Algorithm 1: shift and scale sqrt(ᾱ) so that the last one is exactly 0.
    sq = np.sqrt(abar)
    sq0, sqn = sq[0], sq[-1]
    sq = (sq - sqn) * sq0 / (sq0 - sqn)
    return sq**2


def sample_timesteps(cfg: DiffusionConfig, steps: int | None = None) -> np.ndarray:
    """The noise levels a sampler visits, from pure noise down (``steps`` values).

    ``"v"``: integer timesteps, trailing spacing (first = N-1). ``"flow_x"``: t in (0, 1].
    """
    steps = steps or cfg.sample_steps
    if cfg.objective == "v":
        n = cfg.num_timesteps
        return (np.round(np.arange(n, 0, -n / steps)) - 1).astype(np.int32)
    return np.linspace(1.0, 0.0, steps + 1)[:-1]


def _train_levels(key, b: int, cfg: DiffusionConfig):
    """Per-example noise level: int timestep ("v") or t in (0, 1) ("flow_x"), shape (B,)."""
    if cfg.t_dist == "grid":
        levels = jnp.asarray(sample_timesteps(cfg))
        n = levels.shape[0]
        if cfg.grid_top:  # P(first level) = grid_top, the rest (1 - grid_top) / (n - 1) each
            p = jnp.full((n,), (1.0 - cfg.grid_top) / (n - 1)).at[0].set(cfg.grid_top)
            return levels[jax.random.choice(key, n, (b,), p=p)]
        return levels[jax.random.randint(key, (b,), 0, n)]
    if cfg.objective == "v":
        return jax.random.randint(key, (b,), 0, cfg.num_timesteps)
    if cfg.t_dist == "logit_normal":
        return jax.nn.sigmoid(cfg.t_mean + cfg.t_std * jax.random.normal(key, (b,)))
    return jax.random.uniform(key, (b,), minval=1e-3, maxval=1.0)


def _bcast(a):
    """(B,) -> (B, 1, 1, 1, 1)."""
    return a[:, None, None, None, None]


def _frames(mask):
    """(B, T) -> (B, T, 1, 1, 1)."""
    return mask[:, :, None, None, None]


def training_loss(apply, x0, mask, key, cfg: DiffusionConfig, weights=None, cond=None):
    """Mean squared error of the objective on one batch.

    Args:
      apply: the network ``(x_t, t, cond, mask) -> pred``.
      x0: (B, T, H, W, C) float clean videos (pixels in [-1, 1] or latents).
      mask: (B, T) float, 1 on conditioning frames.
      key: PRNG key (noise and levels).
      weights: optional (B, T, H, W, 1) per-element weights of the squared error (e.g.
        :func:`models.vae.pixel_weights`); None: all 1.
      cond: optional (B, T, H, W, C) conditioning input, zero after the given frames;
        None: ``x0`` on the mask's frames. A latent model passes the latents of what the
        sampler will see (the given frames, the last one repeated).
    Returns:
      (loss scalar, metrics dict).
    """
    b = x0.shape[0]
    k_t, k_eps = jax.random.split(key)
    eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
    cond = (x0 if cond is None else cond) * _frames(mask)
    lev = _train_levels(k_t, b, cfg)
    if cfg.objective == "v":
        abar = jnp.asarray(alphas_cumprod(cfg), jnp.float32)[lev]
        a, s = _bcast(jnp.sqrt(abar)), _bcast(jnp.sqrt(1.0 - abar))
        x_t = a * x0 + s * eps
        target = a * eps - s * x0
        err = (apply(x_t, lev.astype(jnp.float32), cond, mask) - target) ** 2
    else:
        t = _bcast(lev)
        z = (1.0 - t) * x0 + t * eps
        err = (apply(z, lev * 1000.0, cond, mask) - x0) ** 2
        if cfg.x_loss == "v":
            err = err / jnp.maximum(t, 0.05) ** 2
    if weights is not None:
        err = err * weights
    w = jnp.ones_like(mask) if cfg.loss_on_cond else 1.0 - mask  # (B, T) frames scored
    per_frame = err.mean(axis=(2, 3, 4))  # (B, T)
    loss = (per_frame * w).sum() / jnp.maximum(w.sum(), 1.0)
    return loss, {"loss": loss}


def sample(apply, cond, mask, key, cfg: DiffusionConfig, steps: int | None = None):
    """Generate videos given conditioning frames (deterministic given ``key``).

    Args:
      apply: the network ``(x_t, t, cond, mask) -> pred``.
      cond: (B, T, H, W, C) float, clean first frames and zeros after.
      mask: (B, T) float, 1 on conditioning frames.
      key: a PRNG key, or (B,) keys (one per video).
      steps: number of network evaluations (default ``cfg.sample_steps``).
    Returns:
      (B, T, H, W, C) float32 predicted clean videos, conditioning frames copied from
      ``cond``.
    """
    levels = sample_timesteps(cfg, steps)
    if jnp.ndim(key) == 1:  # one key per video
        x = jax.vmap(lambda k: jax.random.normal(k, cond.shape[1:], jnp.float32))(key)
    else:
        x = jax.random.normal(key, cond.shape, jnp.float32)
    b = cond.shape[0]
    if cfg.objective == "v":
        abar = alphas_cumprod(cfg)
        prev = np.concatenate([abar[levels[1:]], [1.0]])  # ᾱ after each step (1 = clean)
        coefs = np.stack([np.sqrt(abar[levels]), np.sqrt(1 - abar[levels]),
                          np.sqrt(prev), np.sqrt(1 - prev)], 1).astype(np.float32)
        t_net = levels.astype(np.float32)
    else:
        nxt = np.concatenate([levels[1:], [0.0]])
        coefs = np.stack([levels, nxt], 1).astype(np.float32)
        t_net = (levels * 1000.0).astype(np.float32)

    def body(x, inputs):
        t, c = inputs
        pred = apply(x, jnp.full((b,), t), cond, mask)
        if cfg.objective == "v":  # DDIM (eta = 0) in the v parameterisation
            a, s, a_prev, s_prev = c[0], c[1], c[2], c[3]
            x0 = a * x - s * pred
            eps = s * x + a * pred
            return a_prev * x0 + s_prev * eps, None
        t_now, t_next = c[0], c[1]
        eps = (x - (1.0 - t_now) * pred) / t_now
        return (1.0 - t_next) * pred + t_next * eps, None

    x, _ = jax.lax.scan(body, x, (jnp.asarray(t_net), jnp.asarray(coefs)))
    m = _frames(mask)
    return m * cond + (1.0 - m) * x
