"""Attribute variants: the paper's pairwise attribute-priority experiments (§5.3).

One object in uniform motion with four attributes: colour, shape, size (radius, or
half side of a square) and velocity. An experiment pairs two attributes A and B,
each with two disjoint values (a colour or shape name, or an interval of sizes or
speeds). Training shows the combinations (a0, b0) and (a1, b1); the test set shows
the swapped ones (a0, b1) and (a1, b0). Which attribute a model keeps on the test
set is its attribute priority (the paper: colour > size > velocity > shape).

Splits: ``train`` (random, training combinations), ``id`` (grid over training
combinations), ``ood`` (grid over the swapped combinations). Levels name the
combination, e.g. ``"a0b1"``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from physim import rng, world
from physim.scenarios.base import COLOR_CODES, linspace, stack_levels
from physim.scenarios.basic import _S_R, _S_V, OneBall, _stream

ATTRIBUTES = ("color", "shape", "size", "velocity")
_S_COMBO = 7


def _check_value(attr: str, value) -> None:
    if attr == "color":
        world.color_rgb(value)
    elif attr == "shape":
        world.shape_code(value)
    elif attr in ("size", "velocity"):
        lo, hi = value
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi or lo < 0:
            raise ValueError(f"{attr}: empty or invalid range {value}")
        if attr == "size" and lo <= 0:
            raise ValueError(f"size range {value} must be > 0")
    else:
        raise ValueError(f"unknown attribute {attr!r}; known: {list(ATTRIBUTES)}")


@dataclasses.dataclass(frozen=True)
class AttributePair(OneBall):
    """One object in uniform motion whose attributes ``a`` and ``b`` are paired.

    Attributes not in the pair take the defaults: red, ball, r in ``r_id``, v in ``v_id``.
    """

    name: ClassVar[str] = "attributes"
    a: str = "color"
    b: str = "shape"
    a_values: tuple = ("red", "blue")
    b_values: tuple = ("ball", "square")
    grid_r: int = 6
    grid_v: int = 8

    train_combos: ClassVar[tuple[tuple[int, int], ...]] = ((0, 0), (1, 1))
    test_combos: ClassVar[tuple[tuple[int, int], ...]] = ((0, 1), (1, 0))

    def __post_init__(self):
        super().__post_init__()
        if self.a == self.b:
            raise ValueError(f"the two attributes must differ, got {self.a!r} twice")
        for attr, values in ((self.a, self.a_values), (self.b, self.b_values)):
            if len(values) != 2:
                raise ValueError(f"{attr}: need exactly two values, got {values}")
            for v in values:
                _check_value(attr, v)

    def _combos(self, split):
        return self.train_combos if split in ("train", "id") else self.test_combos

    def level_names(self, split):
        return tuple(f"a{i}b{j}" for i, j in self._combos(split))

    def _value(self, attr):
        """Value of ``attr`` for combination (i, j): a or b value, or None (default)."""
        return self.a_values if attr == self.a else self.b_values if attr == self.b else None

    def _combo_value(self, attr, i, j):
        vals = self._value(attr)
        return None if vals is None else vals[i] if attr == self.a else vals[j]

    def _interval(self, attr, i, j):
        v = self._combo_value(attr, i, j)
        return v if v is not None else (self.r_id if attr == "size" else self.v_id)

    def grid(self, split):
        self.check_split(split)
        if split == "train":
            return np.zeros(0, np.int16), {}
        per = []
        for i, j in self._combos(split):
            rr = linspace(self._interval("size", i, j), self.grid_r)
            vv = linspace(self._interval("velocity", i, j), self.grid_v)
            r, v = (x.ravel() for x in np.meshgrid(rr, vv, indexing="ij"))
            per.append(
                {
                    "r": r,
                    "v": v,
                    "a_idx": np.full(r.size, i * 1.0),
                    "b_idx": np.full(r.size, j * 1.0),
                }
            )
        return stack_levels(per)

    def draw_params(self, seed, index, attempt):
        combo = rng.choice(seed, index, _stream(_S_COMBO, attempt), len(self.train_combos))
        ij = np.array(self.train_combos, dtype=np.float64)[combo]
        r = np.empty(index.shape[0])
        v = np.empty(index.shape[0])
        ur = rng.uniform(seed, index, _stream(_S_R, attempt))
        uv = rng.uniform(seed, index, _stream(_S_V, attempt))
        for c, (i, j) in enumerate(self.train_combos):
            sel = combo == c
            rlo, rhi = self._interval("size", i, j)
            vlo, vhi = self._interval("velocity", i, j)
            r[sel] = rlo + (rhi - rlo) * ur[sel]
            v[sel] = vlo + (vhi - vlo) * uv[sel]
        return {"r": r, "v": v, "a_idx": ij[:, 0], "b_idx": ij[:, 1]}

    def random_levels(self, params):
        # level k of a training video is its combination train_combos[k]
        a, b = params["a_idx"].astype(int), params["b_idx"].astype(int)
        codes = np.full(a.shape, -1, dtype=np.int16)
        for k, (i, j) in enumerate(self.train_combos):
            codes[(a == i) & (b == j)] = k
        return codes

    def place(self, seed, index, params, attempt):
        radii, shapes, colors, pos0, vel0, ok = super().place(seed, index, params, attempt)
        i = params["a_idx"].astype(int)
        j = params["b_idx"].astype(int)
        for attr, codes, table in (
            ("color", colors, COLOR_CODES),
            ("shape", shapes, world.SHAPE_CODES),
        ):
            vals = self._value(attr)
            if vals is None:
                continue
            idx = i if attr == self.a else j
            codes[:, 0] = np.array([table[vals[0]], table[vals[1]]])[idx]
        return radii, shapes, colors, pos0, vel0, ok


# The paper's six experiments (reference §5.3), continuous versions, plus the ring
# counter-example of Fig. 16 (a blue ball against a red ring).
SMALL, LARGE = (0.7, 1.05), (1.05, 1.4)
SLOW, FAST = (1.0, 2.5), (2.5, 4.0)
PAIRS: dict[str, dict] = {
    "color_shape": dict(
        a="color", b="shape", a_values=("red", "blue"), b_values=("ball", "square")
    ),
    "size_shape": dict(a="size", b="shape", a_values=(SMALL, LARGE), b_values=("ball", "square")),
    "velocity_shape": dict(
        a="velocity", b="shape", a_values=(SLOW, FAST), b_values=("ball", "square")
    ),
    "color_size": dict(a="color", b="size", a_values=("red", "blue"), b_values=(SMALL, LARGE)),
    "color_velocity": dict(
        a="color", b="velocity", a_values=("red", "blue"), b_values=(SLOW, FAST)
    ),
    "size_velocity": dict(a="size", b="velocity", a_values=(SMALL, LARGE), b_values=(SLOW, FAST)),
    "color_ring": dict(a="color", b="shape", a_values=("blue", "red"), b_values=("ball", "ring")),
}


def make_pair_class(pair: str) -> type[AttributePair]:
    """A registered :class:`AttributePair` subclass whose defaults are ``PAIRS[pair]``."""
    spec = PAIRS[pair]
    fields = [(k, type(v), dataclasses.field(default=v)) for k, v in spec.items()]
    return dataclasses.make_dataclass(
        "".join(p.title() for p in pair.split("_")),
        fields,
        bases=(AttributePair,),
        namespace={"name": pair},
        frozen=True,
    )
