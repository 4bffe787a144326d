"""Convolutional video VAE with causal temporal downsampling, trained from scratch.

Encoder: per level a residual block then a stride-2 causal 3D conv (spatially always,
temporally on the last log2(temporal_down) levels), ending in a Gaussian posterior over
``latent_channels``. Decoder mirrors it, upsampling by conv + depth-to-space
("channel to space", as the paper's VAE decoder). With ``temporal_kernel=1`` (and no
temporal downsampling) every convolution is per frame: an image VAE applied frame by
frame, like the paper's. Otherwise convolutions are causal in time
(the first frame is repeated as head padding, MAGVIT-v2 https://arxiv.org/abs/2310.05737)
and group norms are per frame, so frame t never sees frames after it.
Loss = MSE reconstruction + ``kl_weight`` · KL(q(z|x) || N(0, I)) (no GAN, no LPIPS),
optionally with more weight on pixels near objects (``fg_weight``), plus optionally
``moment_weight`` · the local-moment loss (``moment_loss``), which asks the
reconstruction error to carry no mass and no centroid shift in any small window: a parser
that reads object positions as coverage-weighted centroids then reads the same positions
off the reconstruction as off the input.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from models.configs import VAEConfig


class CausalConv(nnx.Module):
    """3D conv (B, T, H, W, C) with head (causal) padding in time and zero padding in space."""

    def __init__(self, cin, cout, kernel=(3, 3, 3), stride=(1, 1, 1), *, dtype, rngs):
        self.kernel = kernel
        self.conv = nnx.Conv(cin, cout, kernel_size=kernel, strides=stride, padding="VALID",
                             dtype=dtype, rngs=rngs)

    def __call__(self, x):
        kt, kh, kw = self.kernel
        if kt > 1:
            x = jnp.concatenate([jnp.repeat(x[:, :1], kt - 1, axis=1), x], axis=1)
        x = jnp.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
        return self.conv(x)


class FrameNorm(nnx.Module):
    """GroupNorm over each frame separately (keeps causality in time)."""

    def __init__(self, c, *, rngs):
        self.norm = nnx.GroupNorm(c, num_groups=math.gcd(8, c), epsilon=1e-6, rngs=rngs)

    def __call__(self, x):
        b, t = x.shape[:2]
        return self.norm(x.reshape(b * t, *x.shape[2:])).reshape(x.shape)


class ResBlock(nnx.Module):
    def __init__(self, cin, cout, kt=3, *, dtype, rngs):
        k = (kt, 3, 3)
        self.n1 = FrameNorm(cin, rngs=rngs)
        self.c1 = CausalConv(cin, cout, k, dtype=dtype, rngs=rngs)
        self.n2 = FrameNorm(cout, rngs=rngs)
        self.c2 = CausalConv(cout, cout, k, dtype=dtype, rngs=rngs)
        self.skip = (CausalConv(cin, cout, (1, 1, 1), dtype=dtype, rngs=rngs)
                     if cin != cout else None)

    def __call__(self, x):
        h = self.c1(nnx.silu(self.n1(x)))
        h = self.c2(nnx.silu(self.n2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


def _levels(cfg: VAEConfig) -> list[tuple[int, int]]:
    """(temporal, spatial) stride of each downsampling level, shallow to deep."""
    ns, nt = int(math.log2(cfg.spatial_down)), int(math.log2(cfg.temporal_down))
    if len(cfg.widths) != ns + 1:
        raise ValueError(f"vae.widths needs log2(spatial_down)+1 = {ns + 1} entries, "
                         f"got {cfg.widths}")
    return [(2 if i >= ns - nt else 1, 2) for i in range(ns)]


class Encoder(nnx.Module):
    def __init__(self, cfg: VAEConfig, *, dtype, rngs):
        w, kt = cfg.widths, cfg.temporal_kernel
        k = (kt, 3, 3)
        self.conv_in = CausalConv(3, w[0], k, dtype=dtype, rngs=rngs)
        self.res, self.down = nnx.List(), nnx.List()
        for i, (st, ss) in enumerate(_levels(cfg)):
            self.res.append(ResBlock(w[i], w[i], kt, dtype=dtype, rngs=rngs))
            self.down.append(CausalConv(w[i], w[i + 1], k, (st, ss, ss), dtype=dtype,
                                        rngs=rngs))
        self.mid = ResBlock(w[-1], w[-1], kt, dtype=dtype, rngs=rngs)
        self.norm = FrameNorm(w[-1], rngs=rngs)
        self.out = CausalConv(w[-1], 2 * cfg.latent_channels, k, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        h = self.conv_in(x)  # (B, T, H, W, w0)
        for res, down in zip(self.res, self.down, strict=True):
            h = down(res(h))  # (B, T/st, H/2, W/2, w_{i+1})
        h = self.out(nnx.silu(self.norm(self.mid(h))))  # (B, t, h, w, 2*Cl)
        mean, logvar = jnp.split(h.astype(jnp.float32), 2, axis=-1)
        return mean, jnp.clip(logvar, -30.0, 20.0)


class Decoder(nnx.Module):
    def __init__(self, cfg: VAEConfig, *, dtype, rngs):
        w, kt = cfg.widths, cfg.temporal_kernel
        k = (kt, 3, 3)
        self.levels = _levels(cfg)
        self.conv_in = CausalConv(cfg.latent_channels, w[-1], k, dtype=dtype, rngs=rngs)
        self.mid = ResBlock(w[-1], w[-1], kt, dtype=dtype, rngs=rngs)
        self.up, self.res = nnx.List(), nnx.List()
        for i in reversed(range(len(self.levels))):
            st, ss = self.levels[i]
            self.up.append(CausalConv(w[i + 1], w[i] * st * ss * ss, k, dtype=dtype, rngs=rngs))
            self.res.append(ResBlock(w[i], w[i], kt, dtype=dtype, rngs=rngs))
        self.norm = FrameNorm(w[0], rngs=rngs)
        self.out = CausalConv(w[0], 3, k, dtype=dtype, rngs=rngs)

    def __call__(self, z):
        h = self.mid(self.conv_in(z))  # (B, t, h, w, w_last)
        for (st, ss), up, res in zip(reversed(self.levels), self.up, self.res, strict=True):
            h = up(h)  # (B, t, h, w, c*st*ss*ss)
            b, t, hh, ww, c = h.shape
            c //= st * ss * ss
            h = h.reshape(b, t, hh, ww, st, ss, ss, c).transpose(0, 1, 4, 2, 5, 3, 6, 7)
            h = res(h.reshape(b, t * st, hh * ss, ww * ss, c))  # (B, t*st, 2h, 2w, c)
        return self.out(nnx.silu(self.norm(h))).astype(jnp.float32)  # (B, T, H, W, 3)


class VAE(nnx.Module):
    """Video VAE: ``encode`` (B, T, H, W, 3) in [-1, 1] -> posterior (mean, logvar) of shape
    (B, T/temporal_down, H/spatial_down, W/spatial_down, latent_channels); ``decode`` back."""

    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        dtype = jnp.dtype(cfg.dtype)
        self.encoder = Encoder(cfg, dtype=dtype, rngs=rngs)
        self.decoder = Decoder(cfg, dtype=dtype, rngs=rngs)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, x, key):
        mean, logvar = self.encode(x)
        z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
        return self.decode(z), mean, logvar


def moment_loss(err, window: int = 8):
    """Mean squared zeroth and first moments of ``err`` (B, T, H, W, C) in k×k boxes.

    Boxes of side ``k = window`` pixels at stride k/2 (zero padding of k/2 on each side):
    every pixel lies in exactly 2×2 boxes, so the boxes' moments sum to the moments of the
    whole frame about any point. Per box and channel: ``m0 = Σ e / k²`` and
    ``m1 = Σ e (p - c) / k³`` (p pixel centres, c the box centre). Scaled so that i.i.d.
    noise of variance σ² scores σ², like the MSE: ``k² · mean(m0² + 12 m1x² + 12 m1y²) / 3``.
    H and W must be multiples of k/2.
    """
    b, t, h, w, c = err.shape
    s = window // 2
    e = err.reshape(b * t, h, w, c)
    yy = (jnp.arange(h, dtype=e.dtype) + 0.5)[:, None, None]  # pixel centres
    xx = (jnp.arange(w, dtype=e.dtype) + 0.5)[None, :, None]

    def box_sum(v):  # (N, H, W, C) -> (N, H/s+1, W/s+1, C)
        return jax.lax.reduce_window(v, 0.0, jax.lax.add, (1, window, window, 1),
                                     (1, s, s, 1), ((0, 0), (s, s), (s, s), (0, 0)))

    m0 = box_sum(e)
    cy = (jnp.arange(h // s + 1, dtype=e.dtype) * s)[:, None, None]  # box centres
    cx = (jnp.arange(w // s + 1, dtype=e.dtype) * s)[None, :, None]
    my = box_sum(e * yy) - cy * m0
    mx = box_sum(e * xx) - cx * m0
    k2 = float(window * window)
    return k2 * jnp.mean((m0 / k2) ** 2 + 12.0 * ((my / (k2 * window)) ** 2
                                                  + (mx / (k2 * window)) ** 2)) / 3.0


def pixel_weights(x, fg_weight: float):
    """(B, T, H, W, 1) reconstruction weights of x (B, T, H, W, 3) in [-1, 1], mean 1.

    ``fg_weight`` for pixels within one pixel (3×3) of a pixel more than one grey level
    away from its frame's background (the frame's per-channel median), 1 elsewhere. Small
    objects on a plain background cover a few percent of a frame; an unweighted MSE spends
    the network on the background while the object's edge pixels decide its position.
    """
    b, t, h, w, c = x.shape
    bg = jnp.median(x.reshape(b, t, h * w, c), axis=2)[:, :, None, None, :]
    fg = jnp.any(jnp.abs(x - bg) > 1.0 / 127.5, axis=-1, keepdims=True).astype(x.dtype)
    fg = jax.lax.reduce_window(fg.reshape(b * t, h, w, 1), 0.0, jax.lax.max, (1, 3, 3, 1),
                               (1, 1, 1, 1), "SAME").reshape(b, t, h, w, 1)
    wts = 1.0 + (fg_weight - 1.0) * fg
    return jax.lax.stop_gradient(wts / jnp.mean(wts))


def vae_loss(model: VAE, x, key, kl_weight: float, moment_weight: float = 0.0,
             moment_window: int = 8, fg_weight: float = 1.0):
    """(loss, metrics) of a batch x (B, T, H, W, 3) in [-1, 1]."""
    recon, mean, logvar = model(x, key)
    mse = jnp.mean((recon - x) ** 2)
    kl = 0.5 * jnp.mean(jnp.sum(mean**2 + jnp.exp(logvar) - 1.0 - logvar, axis=-1))
    metrics = {"mse": mse, "kl": kl}
    rec = mse
    if fg_weight != 1.0:
        rec = metrics["weighted_mse"] = jnp.mean(pixel_weights(x, fg_weight) * (recon - x) ** 2)
    loss = rec + kl_weight * kl
    if moment_weight:
        mom = moment_loss(recon - x, moment_window)
        loss = loss + moment_weight * mom
        metrics["moment"] = mom
    return loss, dict(metrics, loss=loss)
