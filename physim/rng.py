"""Counter-based random numbers: every draw is a pure function of (seed, index, stream).

Datasets must be byte-identical whatever the worker count, shard split or machine,
so a video's random draws cannot depend on how many videos were drawn before it.
Instead of one generator per video, each draw hashes its coordinates with the
SplitMix64 finalizer (Steele et al., 2014): ``u = H(seed, index, stream)``. Draws are
vectorized over video indices, cost a few nanoseconds each and are identical on
every platform (64-bit integer arithmetic only, then one exact conversion).

Streams name independent draws of a video (``stream = 0`` for its radius, ``1`` for
its speed, ...); retries of a draw use ``stream + RETRY_STRIDE * attempt``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

RETRY_STRIDE = 1 << 16

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


@nb.njit(cache=True)
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _C1
    z = (z ^ (z >> np.uint64(27))) * _C2
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True)
def _uniform(seed, index, stream, out):
    s = _mix(np.uint64(seed) + _GOLDEN)
    for k in range(index.shape[0]):
        z = _mix(s ^ (np.uint64(index[k]) * _GOLDEN))
        z = _mix(z + np.uint64(stream) * _C1 + _GOLDEN)
        out[k] = np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)  # [0, 1)


def uniform(seed: int, index, stream: int, lo=0.0, hi=1.0) -> np.ndarray:
    """Uniform draws in ``[lo, hi)``, one per video index.

    Args:
      seed: dataset seed, a non-negative integer < 2**63.
      index: (M,) integer video indices (>= 0).
      stream: which draw of a video (a non-negative integer).
      lo, hi: scalars or (M,) arrays of bounds.

    Returns:
      (M,) float64.
    """
    if not 0 <= int(seed) < 2**63 or int(stream) < 0:
        raise ValueError(f"seed must be in [0, 2**63) and stream >= 0, got {seed}, {stream}")
    index = np.ascontiguousarray(index, dtype=np.int64).reshape(-1)
    out = np.empty(index.shape[0], dtype=np.float64)
    _uniform(np.int64(seed), index, np.int64(stream), out)
    return lo + (np.asarray(hi, np.float64) - lo) * out


def choice(seed: int, index, stream: int, n: int) -> np.ndarray:
    """Uniform integer draws in ``[0, n)``, (M,) int64."""
    u = uniform(seed, index, stream)
    return np.minimum((u * n).astype(np.int64), n - 1)
