"""Scenario registry: ``physim.scenario(name, **overrides)`` -> a frozen spec.

Each entry is a frozen dataclass type; overrides are its fields (ranges, grid sizes,
frames, ...) and are validated by the spec itself. Other modules add entries with
:func:`register`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from physim.scenarios.attributes import PAIRS, AttributePair, make_pair_class
from physim.scenarios.base import Batch, DiscScenario
from physim.scenarios.basic import Collision, Parabola, Uniform

REGISTRY: dict[str, Callable[..., object]] = {
    "uniform": Uniform,
    "parabola": Parabola,
    "collision": Collision,
    **{name: make_pair_class(name) for name in PAIRS},
}
_LAZY = {
    "combinatorial": "physim.scenarios.combinatorial",
    "uniform_bands": "physim.scenarios.holdout",
    "collision_holdout": "physim.scenarios.holdout",
    "composition_temporal": "physim.scenarios.composition",
    "composition_spatial": "physim.scenarios.composition",
    "ambiguity": "physim.scenarios.ambiguity",
}


def register(name: str, factory: Callable[..., object]) -> None:
    """Add a scenario factory (usually a frozen dataclass type) under ``name``."""
    REGISTRY[name] = factory


def names() -> list[str]:
    return sorted(set(REGISTRY) | set(_LAZY))


def scenario(name: str, **overrides):
    """The scenario spec ``name`` with fields replaced by ``overrides``.

    Raises ``ValueError`` for an unknown name or field, or invalid values.
    """
    if name not in REGISTRY and name in _LAZY:
        import importlib

        importlib.import_module(_LAZY[name])  # registers itself
    if name not in REGISTRY:
        raise ValueError(f"unknown scenario {name!r}; known: {names()}")
    factory = REGISTRY[name]
    if dataclasses.is_dataclass(factory):
        known = {f.name for f in dataclasses.fields(factory)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"{name}: unknown key(s) {unknown}; known: {sorted(known)}")
        defaults = factory()
        for key, value in overrides.items():
            _check_like(f"{name}: {key}", value, getattr(defaults, key))
    return factory(**overrides)


def _check_like(what: str, value, default) -> None:
    """``ValueError`` unless ``value`` has the kind of ``default``: a finite number for a
    number (an integer for an integer), a tuple of as many such for a tuple, a string
    for a string."""
    import math
    import numbers

    def bad(why):
        raise ValueError(f"{what}={value!r}: {why}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            bad("expected true or false")
    elif isinstance(default, numbers.Number):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            bad("expected a number")
        if not math.isfinite(value):
            bad("expected a finite number")
        if isinstance(default, numbers.Integral) and value != int(value):
            bad("expected an integer")
    elif isinstance(default, tuple):
        if not isinstance(value, tuple | list):
            bad(f"expected {len(default)} values like {default}")
        if default and all(isinstance(d, numbers.Number) for d in default):
            if len(value) != len(default):
                bad(f"expected {len(default)} values like {default}")
            for v, d in zip(value, default, strict=True):
                _check_like(what, v, d)
    elif isinstance(default, str) and not isinstance(value, str):
        bad("expected a string")


__all__ = [
    "REGISTRY",
    "AttributePair",
    "Batch",
    "Collision",
    "DiscScenario",
    "Parabola",
    "Uniform",
    "names",
    "register",
    "scenario",
]
