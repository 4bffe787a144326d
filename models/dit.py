"""Diffusion transformer over spacetime patches (Peebles & Xie 2023, as used by Kang et al.).

Input: the noisy video, the conditioning video (first ``c`` frames, zeros after) and a
binary mask video (1 on the first ``c`` frames), concatenated on channels, cut into
``(pt, ph, pw)`` spacetime patches. Full 3D self-attention with 3D rotary position
embeddings (RoPE, Su et al. 2021) on the (t, h, w) patch grid; timestep conditioning by
adaLN-Zero (DiT) either per block or shared across blocks (adaLN-single, PixArt-α
https://arxiv.org/abs/2310.00426). The network knows nothing of noise schedules.
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.configs import DiTConfig

zeros = nnx.initializers.zeros_init()
xavier = nnx.initializers.xavier_uniform()


def modulate(x, shift, scale):
    """x (B, N, D), shift/scale (B, D) -> (B, N, D)."""
    return x * (1 + scale[:, None]) + shift[:, None]


def timestep_features(t, dim: int = 256, max_period: float = 10000.0):
    """Sinusoidal features (B, dim) of timesteps t (B,) (DiT/GLIDE convention, t in [0, 1000])."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = t.astype(jnp.float32)[:, None] * freqs[None]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Rotated pairs per axis (t, h, w) for a head of ``head_dim`` channels."""
    pairs = head_dim // 2
    hw = pairs // 3
    return pairs - 2 * hw, hw, hw


def rope_angles(grid: tuple[int, int, int], head_dim: int, theta: float) -> np.ndarray:
    """Rotation angles (N, head_dim // 2) of the N = gt*gh*gw tokens, row-major (t, h, w)."""
    pos = np.stack(np.meshgrid(*[np.arange(g) for g in grid], indexing="ij"), -1).reshape(-1, 3)
    parts = []
    for axis, n in enumerate(rope_split(head_dim)):
        if n == 0:
            continue
        freqs = theta ** (-np.arange(n) / n)  # (n,)
        parts.append(pos[:, axis : axis + 1] * freqs[None])  # (N, n)
    return np.concatenate(parts, axis=1).astype(np.float32)


def apply_rope(x, cos, sin):
    """Rotate channel pairs of x (B, N, H, Dh) by angles with cos/sin (N, Dh/2)."""
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, N, H, Dh/2)
    c, s = cos[None, :, None].astype(x.dtype), sin[None, :, None].astype(x.dtype)
    return jnp.stack([x1 * c - x2 * s, x1 * s + x2 * c], axis=-1).reshape(x.shape)


def sincos_3d(grid: tuple[int, int, int], dim: int) -> np.ndarray:
    """Fixed sin-cos position embedding (N, dim) of the (t, h, w) grid (MAE style, 3 axes)."""
    pos = np.stack(np.meshgrid(*[np.arange(g) for g in grid], indexing="ij"), -1).reshape(-1, 3)
    split = [dim - 2 * (dim // 3 // 2 * 2), dim // 3 // 2 * 2, dim // 3 // 2 * 2]
    out = []
    for axis, d in enumerate(split):
        omega = 1.0 / 10000 ** (np.arange(d // 2) / max(d // 2, 1))
        a = pos[:, axis : axis + 1] * omega[None]
        out += [np.sin(a), np.cos(a)]
    return np.concatenate(out, axis=1).astype(np.float32)


def patchify(x, patch):
    """(B, T, H, W, C) -> (B, N, pt*ph*pw*C) tokens, N row-major over (T/pt, H/ph, W/pw)."""
    b, t, h, w, c = x.shape
    pt, ph, pw = patch
    x = x.reshape(b, t // pt, pt, h // ph, ph, w // pw, pw, c)
    x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)  # (B, gt, gh, gw, pt, ph, pw, C)
    return x.reshape(b, -1, pt * ph * pw * c)


def unpatchify(x, patch, shape):
    """(B, N, pt*ph*pw*C) -> (B, T, H, W, C), inverse of :func:`patchify`."""
    t, h, w, c = shape
    pt, ph, pw = patch
    x = x.reshape(-1, t // pt, h // ph, w // pw, pt, ph, pw, c)
    x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)  # (B, gt, pt, gh, ph, gw, pw, C)
    return x.reshape(-1, t, h, w, c)


def fade_window(p: int, o: int) -> np.ndarray:
    """(p + 2o,) overlap-add weights of a block grown by ``o`` on each side of a stride-``p``
    grid: linear cross-fades over the 2o cells around each border, so that neighbouring
    blocks' weights sum to one everywhere (1 in the block's core)."""
    u = np.arange(p + 2 * o) + 0.5
    return np.clip(np.minimum(u, p + 2 * o - u) / max(2 * o, 1), 0.0, 1.0).astype(np.float32)


def _fold_axis(x, axis: int, p: int, o: int):
    """Overlap-add along ``axis``: blocks (..., g, p + 2o, ...) at stride p, whose block axis
    is ``axis + 1`` -> (..., g * p, ...), cropping the o cells outside each end (o <= p)."""
    if o == 0:
        return x.reshape(*x.shape[:axis], x.shape[axis] * p, *x.shape[axis + 2:])
    g = x.shape[axis]
    take = lambda a, b: jax.lax.slice_in_dim(x, a, b, axis=axis + 1)  # noqa: E731
    pad = [(0, 0)] * x.ndim
    pad[axis + 1] = (0, p - o)
    left = jnp.pad(take(0, o), pad)  # (.., g, p, ..): cells [jp - o, jp) + zeros
    right = jnp.pad(take(p + o, p + 2 * o), pad)  # cells [jp + p, jp + p + o) + zeros
    core = take(o, p + o)  # cells [jp, jp + p)
    n = g * p
    flat = lambda a: a.reshape(*a.shape[:axis], n, *a.shape[axis + 2:])  # noqa: E731

    def shift(a, k):  # move by k cells along axis (k > 0: later), zeros coming in
        a = flat(a)
        cut = jax.lax.slice_in_dim(a, max(-k, 0), n - max(k, 0), axis=axis)
        zeros = jnp.zeros_like(jax.lax.slice_in_dim(a, 0, abs(k), axis=axis))
        return jnp.concatenate([zeros, cut] if k > 0 else [cut, zeros], axis=axis)

    # block j's left part starts at jp - o, its core at jp, its right part at jp + p
    return flat(core) + shift(left, -o) + shift(right, p)


def overlap_unpatchify(x, patch, overlap, shape):
    """(B, N, bt*bh*bw*C) grown blocks (b = p + 2o per axis) -> (B, T, H, W, C): windowed
    overlap-add (:func:`fade_window`), normalised by the summed weights (which differ from
    one only at the video's borders)."""
    t, h, w, c = shape
    grid = (t // patch[0], h // patch[1], w // patch[2])
    blocks = tuple(p + 2 * o for p, o in zip(patch, overlap, strict=True))
    x = x.reshape(-1, *grid, *blocks, c)  # (B, gt, gh, gw, bt, bh, bw, C)
    x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)  # (B, gt, bt, gh, bh, gw, bw, C)
    win = np.einsum("i,j,k->ijk", *[fade_window(p, o) for p, o in zip(patch, overlap,
                                                                      strict=True)])
    wb = np.broadcast_to(win[None, None, :, None, :, None, :],
                         (1, grid[0], blocks[0], grid[1], blocks[1], grid[2], blocks[2]))
    num, den = x * jnp.asarray(wb)[..., None].astype(x.dtype), jnp.asarray(wb)[..., None]
    for ax, (p, o) in enumerate(zip(patch, overlap, strict=True)):
        num, den = _fold_axis(num, 1 + ax, p, o), _fold_axis(den, 1 + ax, p, o)
    return num / den.astype(num.dtype)  # (B, T, H, W, C)


# The backend a step is being compiled for when it is not this process's (a deviceless
# ahead-of-time compile for a TPU slice or a GPU node, ``models.aot``): the kernel choice
# follows the target, not the CPU that traces it.
_TARGET_BACKEND = contextvars.ContextVar("physim_target_backend", default=None)


@contextlib.contextmanager
def compiling_for(backend: str | None):
    """Within this block :func:`attention_impl` chooses for ``backend`` ("cpu", "gpu",
    "tpu"; None: the process's own)."""
    token = _TARGET_BACKEND.set(backend)
    try:
        yield
    finally:
        _TARGET_BACKEND.reset(token)


def attention_impl(name: str, dtype) -> str:
    """The attention kernel that ``name`` (``DiTConfig.attention``) selects on this backend
    (or the one of :func:`compiling_for`) for compute ``dtype``: "auto" gives "cudnn" on GPU
    in bfloat16/float16, else "xla". ``ValueError`` naming the backend if the kernel cannot
    run there."""
    backend = _TARGET_BACKEND.get() or jax.default_backend()
    if name == "auto":
        low = jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16)
        return "cudnn" if backend in ("gpu", "cuda") and low else "xla"
    if name == "cudnn" and backend not in ("gpu", "cuda"):
        raise ValueError(f"dit.attention='cudnn' needs a GPU; the JAX backend is {backend!r} "
                         "(use 'auto' or 'xla')")
    if name == "tpu_flash":
        if backend != "tpu":
            raise ValueError(f"dit.attention='tpu_flash' needs a TPU; the JAX backend is "
                             f"{backend!r} (use 'auto' or 'xla')")
        import importlib

        try:
            importlib.import_module("jax.experimental.pallas.ops.tpu.flash_attention")
        except ImportError as e:
            raise ValueError(f"dit.attention='tpu_flash': jax.experimental.pallas TPU flash "
                             f"attention is not importable ({e}); use 'xla'") from None
    return name


def attention(q, k, v, impl: str):
    """Softmax attention of q, k, v (B, N, H, Dh) -> (B, N, H, Dh) with kernel ``impl``
    (:func:`attention_impl`); scale 1/sqrt(Dh), no mask."""
    if impl == "tpu_flash":
        from jax.experimental.pallas.ops.tpu.flash_attention import flash_attention

        t = lambda a: a.transpose(0, 2, 1, 3)  # noqa: E731 (B, H, N, Dh) layout
        o = flash_attention(t(q), t(k), t(v), sm_scale=1.0 / math.sqrt(q.shape[-1]))
        return t(o)
    if impl == "cudnn":
        return jax.nn.dot_product_attention(q, k, v, implementation="cudnn")
    return jax.nn.dot_product_attention(q, k, v)  # XLA (implementation=None is XLA)


class Attention(nnx.Module):
    """Multi-head self-attention with 3D RoPE on queries and keys."""

    def __init__(self, dim: int, heads: int, *, dtype, rngs: nnx.Rngs, impl: str = "auto"):
        self.heads, self.impl = heads, impl
        self.qkv = nnx.Linear(dim, 3 * dim, kernel_init=xavier, dtype=dtype, rngs=rngs)
        self.proj = nnx.Linear(dim, dim, kernel_init=xavier, dtype=dtype, rngs=rngs)

    def __call__(self, x, cos, sin):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads)  # (B, N, 3, H, Dh)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, H, Dh)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # (B, N, H, Dh)
        o = attention(q, k, v, attention_impl(self.impl, q.dtype))  # (B, N, H, Dh)
        return self.proj(o.reshape(b, n, d))  # (B, N, D)


class Mlp(nnx.Module):
    def __init__(self, dim: int, hidden: int, *, dtype, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(dim, hidden, kernel_init=xavier, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, dim, kernel_init=xavier, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return self.fc2(nnx.gelu(self.fc1(x), approximate=True))


class DiTBlock(nnx.Module):
    """A DiT block with adaptive layer norm zero (adaLN-Zero) conditioning."""

    def __init__(self, cfg: DiTConfig, *, dtype, rngs: nnx.Rngs):
        d = cfg.width
        self.norm1 = nnx.LayerNorm(d, use_scale=False, use_bias=False, epsilon=1e-6, rngs=rngs)
        self.attn = Attention(d, cfg.heads, dtype=dtype, rngs=rngs, impl=cfg.attention)
        self.norm2 = nnx.LayerNorm(d, use_scale=False, use_bias=False, epsilon=1e-6, rngs=rngs)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio), dtype=dtype, rngs=rngs)
        if cfg.adaln == "block":  # DiT: own SiLU-Linear(D, 6D), zero-initialised
            self.ada = nnx.Linear(d, 6 * d, kernel_init=zeros, dtype=dtype, rngs=rngs)
        else:  # adaLN-single: a learned per-block offset of the shared modulation
            self.ada_table = nnx.Param(jnp.zeros((6, d)))

    def __call__(self, x, c, cos, sin):
        """x (B, N, D) tokens, c (B, D) timestep embedding or (B, 6, D) shared modulation."""
        if hasattr(self, "ada"):
            mod = self.ada(nnx.silu(c)).reshape(-1, 6, x.shape[-1])  # (B, 6, D)
        else:
            mod = c + self.ada_table[None]  # (B, 6, D)
        mod = mod.astype(x.dtype)
        shift1, scale1, gate1, shift2, scale2, gate2 = (mod[:, i] for i in range(6))  # (B, D)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1), cos, sin)
        x = x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))
        return x  # (B, N, D)


class DiT(nnx.Module):
    """Denoiser ``f(x_t, t, cond, mask) -> prediction`` with the shape of ``x_t``.

    Args of ``__call__``:
      x: (B, T, H, W, C) noisy video (latent or pixels).
      t: (B,) float timesteps in [0, 1000] (1000 = pure noise).
      cond: (B, T, H, W, C) clean first frames, zeros after them.
      mask: (B, T) 1.0 on conditioning frames, 0.0 elsewhere.
    """

    def __init__(self, cfg: DiTConfig, shape: tuple[int, int, int, int], *, rngs: nnx.Rngs):
        self.cfg, self.shape = cfg, tuple(shape)
        t, h, w, c = shape
        pt, ph, pw = cfg.patch
        self.grid = (t // pt, h // ph, w // pw)
        dtype = jnp.dtype(cfg.dtype)
        d = cfg.width
        patch_in = pt * ph * pw * (2 * c + 1)
        self.x_embed = nnx.Linear(patch_in, d, kernel_init=xavier, dtype=dtype, rngs=rngs)
        init_t = nnx.initializers.normal(0.02)
        self.t_fc1 = nnx.Linear(256, d, kernel_init=init_t, dtype=dtype, rngs=rngs)
        self.t_fc2 = nnx.Linear(d, d, kernel_init=init_t, dtype=dtype, rngs=rngs)
        if cfg.adaln == "single":
            self.t_block = nnx.Linear(d, 6 * d, kernel_init=zeros, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([DiTBlock(cfg, dtype=dtype, rngs=rngs) for _ in range(cfg.depth)])
        self.final_norm = nnx.LayerNorm(d, use_scale=False, use_bias=False, epsilon=1e-6,
                                        rngs=rngs)
        self.final_ada = nnx.Linear(d, 2 * d, kernel_init=zeros, dtype=dtype, rngs=rngs)
        out = cfg.head_channels if cfg.head == "pixel_mlp" else c  # values per pixel
        block = np.prod([p + 2 * o for p, o in zip(cfg.patch, cfg.overlap, strict=True)])
        if cfg.head == "mlp":  # the token's hidden layer; final (zero) maps it to the patch
            self.head_up = nnx.Linear(d, cfg.head_hidden, kernel_init=xavier, dtype=dtype,
                                      rngs=rngs)
        d_in = cfg.head_hidden if cfg.head == "mlp" else d
        self.final = nnx.Linear(d_in, int(block) * out, kernel_init=zeros, dtype=dtype,
                                rngs=rngs)
        if cfg.head == "pixel_mlp":  # final is zero: the MLP's first layer gets gradients
            self.head_fc1 = nnx.Linear(out, cfg.head_hidden, kernel_init=xavier, dtype=dtype,
                                       rngs=rngs)
            self.head_fc2 = nnx.Linear(cfg.head_hidden, c, kernel_init=xavier, dtype=dtype,
                                       rngs=rngs)
        ang = rope_angles(self.grid, d // cfg.heads, cfg.rope_theta)
        self.cos, self.sin = nnx.Variable(np.cos(ang)), nnx.Variable(np.sin(ang))  # (N, Dh/2)
        if cfg.abs_pos:
            self.pos = nnx.Variable(sincos_3d(self.grid, d))  # (N, D), fixed

    def __call__(self, x, t, cond, mask):
        b = x.shape[0]
        dtype = jnp.dtype(self.cfg.dtype)
        m = jnp.broadcast_to(mask[:, :, None, None, None], (*x.shape[:-1], 1))  # (B,T,H,W,1)
        h = jnp.concatenate([x, cond, m.astype(x.dtype)], axis=-1).astype(dtype)  # (B,T,H,W,2C+1)
        h = self.x_embed(patchify(h, self.cfg.patch))  # (B, N, D)
        if self.cfg.abs_pos:
            h = h + self.pos[...].astype(dtype)[None]  # (B, N, D)
        temb = self.t_fc2(nnx.silu(self.t_fc1(timestep_features(t).astype(dtype))))  # (B, D)
        if self.cfg.adaln == "single":
            c = self.t_block(nnx.silu(temb)).reshape(b, 6, -1)  # (B, 6, D)
        else:
            c = temb  # (B, D)
        cos, sin = self.cos[...], self.sin[...]
        for block in self.blocks:
            if self.cfg.remat:  # keep only the block inputs; recompute the rest backwards
                h = nnx.remat(lambda blk, *a: blk(*a))(block, h, c, cos, sin)  # (B, N, D)
            else:
                h = block(h, c, cos, sin)  # (B, N, D)
        shift, scale = jnp.split(self.final_ada(nnx.silu(temb)), 2, axis=-1)  # (B, D) each
        h = modulate(self.final_norm(h), shift, scale)  # (B, N, D)
        if self.cfg.head == "mlp":
            h = nnx.gelu(self.head_up(h), approximate=True)  # (B, N, head_hidden)
        h = self.final(h)  # (B, N, block values): pt*ph*pw*C' (grown by the overlap)
        if any(self.cfg.overlap):
            y = overlap_unpatchify(h, self.cfg.patch, self.cfg.overlap, self.shape)
        elif self.cfg.head != "pixel_mlp":
            y = unpatchify(h, self.cfg.patch, self.shape)  # (B, T, H, W, C)
        else:
            f = unpatchify(h, self.cfg.patch, (*self.shape[:3], self.cfg.head_channels))
            y = self.head_fc2(nnx.gelu(self.head_fc1(f), approximate=True))  # (B,T,H,W,C)
        return y.astype(jnp.float32)


def build(cfg: DiTConfig, shape, seed: int = 0) -> DiT:
    """A DiT for videos of ``shape`` = (T, H, W, C)."""
    return DiT(cfg, shape, rngs=nnx.Rngs(seed))


def count_params(cfg: DiTConfig, shape) -> int:
    """Number of trainable parameters, computed from shapes only (nothing allocated)."""
    model = nnx.eval_shape(lambda: DiT(cfg, shape, rngs=nnx.Rngs(0)))
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param))))
