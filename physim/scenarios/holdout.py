"""Training sets with held-out parameter regions: the paper's interpolation study (§5.1).

- ``uniform_bands``: uniform motion whose training speeds are drawn from a union of bands,
  e.g. ``v_bands=((1.0, 1.25), (3.75, 4.0))`` leaves out the gap [1.25, 3.75] (the paper's
  widest gap); a third band in the middle is its "n = 3" variant.
- ``collision_holdout``: two-ball collisions whose (v1, v2) never falls in the held-out
  boxes ``holdout=(((l, r), (l, r)),)``, the paper's held-out squares [l, r]².

Both change only the ``train`` split's draws (evaluation grids are the parent scenario's),
so they are evaluated on ``uniform`` / ``collision`` grids that cover the held-out region.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from physim import rng
from physim.scenarios.basic import _S_V, Collision, Uniform, _stream


def _intervals(name: str, value) -> tuple[tuple[float, float], ...]:
    try:
        out = tuple((float(lo), float(hi)) for lo, hi in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of (lo, hi) pairs, got {value!r}") from None
    for lo, hi in out:
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo >= hi or lo < 0:
            raise ValueError(f"{name}: invalid interval ({lo}, {hi})")
    return out


@dataclasses.dataclass(frozen=True)
class UniformBands(Uniform):
    """Uniform motion with training speeds uniform over the union of ``v_bands``."""

    name: ClassVar[str] = "uniform_bands"
    v_bands: tuple = ((1.0, 1.25), (3.75, 4.0))

    def __post_init__(self):
        super().__post_init__()
        bands = tuple(sorted(_intervals("v_bands", self.v_bands)))
        if not bands:
            raise ValueError("v_bands must hold at least one (lo, hi) band")
        for (_, hi), (lo, _) in zip(bands, bands[1:], strict=False):
            if lo < hi:
                raise ValueError(f"v_bands overlap: {bands}")
        object.__setattr__(self, "v_bands", bands)  # JSON lists -> tuples

    def band_speed(self, u: np.ndarray) -> np.ndarray:
        """Map u in [0, 1) to a speed uniform over the union of the bands."""
        lo = np.array([b[0] for b in self.v_bands])
        width = np.array([b[1] - b[0] for b in self.v_bands])
        edges = np.concatenate([[0.0], np.cumsum(width)])
        s = np.asarray(u) * edges[-1]
        k = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(lo) - 1)
        return lo[k] + (s - edges[k])

    def draw_params(self, seed, index, attempt):
        out = super().draw_params(seed, index, attempt)
        out["v"] = self.band_speed(rng.uniform(seed, index, _stream(_S_V, attempt)))
        return out


@dataclasses.dataclass(frozen=True)
class CollisionHoldout(Collision):
    """Collisions whose training (v1, v2) avoids every box of ``holdout``."""

    name: ClassVar[str] = "collision_holdout"
    holdout: tuple = (((2.0, 3.0), (2.0, 3.0)),)
    # Rejection sampling: the paper's widest box [1.1, 3.9]² accepts ~13% of draws, so 50
    # tries would fail about one video in a thousand; 1000 tries fail with p ~ 1e-61.
    max_tries: int = 1000

    def __post_init__(self):
        super().__post_init__()
        boxes = tuple(_intervals("holdout box", box) for box in self.holdout)
        if any(len(b) != 2 for b in boxes):
            raise ValueError(f"holdout boxes must be ((v1_lo, v1_hi), (v2_lo, v2_hi)): {boxes}")
        object.__setattr__(self, "holdout", boxes)

    def held_out(self, v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
        """(n,) bool: (v1, v2) inside some held-out box."""
        out = np.zeros(np.shape(v1), bool)
        for (a0, a1), (b0, b1) in self.holdout:
            out |= (v1 >= a0) & (v1 <= a1) & (v2 >= b0) & (v2 <= b1)
        return out

    def place(self, seed, index, params, attempt):
        *rest, ok = super().place(seed, index, params, attempt)
        return (*rest, ok & ~self.held_out(params["v1"], params["v2"]))


def _register() -> None:
    from physim.scenarios import register

    register("uniform_bands", UniformBands)
    register("collision_holdout", CollisionHoldout)


_register()
