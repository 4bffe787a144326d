"""What a dataset split is (its :class:`Plan`) and where it may be written.

A plan holds everything the bytes of a split depend on: scenario name and spec fields,
seed, split, videos requested, grid size and shard size. ``DIR/<split>/plan.json`` records
it; a later run into the same folder must have the same plan (a resume), or be another
split of the same scenario spec and seed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

import physim

MANIFEST_VERSION = 1
DEFAULT_SHARD_SIZE = 10_000  # batch scenarios (a few MB per shard)
DEFAULT_RECORD_SHARD_SIZE = 100  # per-video (slow) scenarios: small shards resume finely


# --------------------------------------------------------------------------- scenario specs


def _jsonable(v):
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def spec_fields(spec) -> dict:
    """JSON-able init fields of a scenario spec (a frozen dataclass)."""
    if not dataclasses.is_dataclass(spec):
        raise ValueError(f"scenario spec must be a dataclass, got {type(spec).__name__}")
    return {f.name: _jsonable(getattr(spec, f.name)) for f in dataclasses.fields(spec) if f.init}


def make_spec(scenario: str, fields: dict | None = None):
    """Scenario spec from its registry name and (JSON) fields; ``ValueError`` if unknown."""
    from physim.scenarios import scenario as lookup

    return lookup(scenario, **{k: _tuples(v) for k, v in (fields or {}).items()})


@functools.lru_cache(maxsize=8)
def _cached_spec(scenario: str, fields_json: str):
    return make_spec(scenario, json.loads(fields_json))


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- the plan


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a split of a dataset is: everything its bytes depend on.

    Attributes:
      scenario: registry name; spec: its fields (JSON); seed: dataset seed; split: name.
      n: videos requested; grid_size: rows of the split's grid (None for random splits).
      shard_size: video positions per shard; physim_version: the writing version.
      select: which grid rows ``n < grid_size`` takes: "even" (rows ``floor(k*G/n)``) or
        "stratified" (:func:`stratified_rows`: every same-kind parameter pair once before
        any twice).
      storage: "full" (every state, float64) or "compact" (initial states and physics;
        the states are re-simulated and checked against a digest on read:
        :func:`physim.columns.compact_columns`). Absent from plan.json when "full", so
        full datasets keep their bytes.
    """

    scenario: str
    spec: dict
    seed: int
    split: str
    n: int
    grid_size: int | None
    shard_size: int
    select: str = "even"  # rows of a grid subset: "even" (floor(k*G/n)) or "stratified"
    storage: str = "full"  # "full" or "compact" (states re-simulated on read)
    physim_version: str = physim.__version__
    format_version: int = MANIFEST_VERSION

    @property
    def n_selected(self) -> int:
        return self.n if self.grid_size is None else min(self.n, self.grid_size)

    @property
    def n_shards(self) -> int:
        return -(-self.n_selected // self.shard_size)

    @property
    def spec_sha(self) -> str:
        return hashlib.sha256(_canon([self.scenario, self.spec]).encode()).hexdigest()

    def indices(self, k: int) -> np.ndarray:
        """(m,) int64 video indices (grid rows for eval splits) of shard ``k``."""
        pos = np.arange(k * self.shard_size, min((k + 1) * self.shard_size, self.n_selected))
        if self.grid_size is None or self.n >= self.grid_size:
            return pos.astype(np.int64)
        if self.select == "stratified":
            return _stratified(self.scenario, _canon(self.spec), self.split, self.n)[pos]
        return (pos * self.grid_size) // self.n  # n rows evenly spaced over the grid

    def shard_file(self, k: int) -> str:
        return f"{self.split}/shard-{k:05d}-of-{self.n_shards:05d}.npz"

    def sidecar_file(self, k: int) -> str:
        return f"{self.split}/.shard-{k:05d}-of-{self.n_shards:05d}.json"

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        if d["storage"] == "full":
            del d["storage"]  # plans from before the option, byte for byte
        return json.dumps(d, sort_keys=True, indent=1) + "\n"

    @property
    def selection(self) -> str:
        if self.grid_size is None:
            return f"random: indices 0..{self.n - 1}"
        if self.n >= self.grid_size:
            return f"grid: all {self.grid_size} rows"
        if self.select == "stratified":
            return (f"grid: {self.n} of {self.grid_size} rows, stratified (every parameter "
                    "pair once before any twice)")
        return f"grid: {self.n} of {self.grid_size} rows, evenly spaced (row = floor(k*G/n))"


def _pair_axes(names: list[str]) -> list[tuple[str, str]]:
    """Parameter pairs of one kind (``r1``/``r2``, ``v1``/``v2``): same letters, digits differ."""
    by: dict[str, list[str]] = {}
    for n in names:
        stem = n.rstrip("0123456789")
        if stem != n:
            by.setdefault(stem, []).append(n)
    return [(a, b) for g in by.values() for i, a in enumerate(g) for b in g[i + 1 :]]


def stratified_rows(columns: dict[str, np.ndarray], n: int) -> np.ndarray:
    """``n`` grid rows (sorted) that cover the grid's axes before repeating any value.

    Greedy: each pick is a row whose same-kind pair strata (``(v1, v2)``, ``(r1, r2)``;
    :func:`_pair_axes`) have been picked least often, then whose single-axis values have,
    then the lowest row; so every velocity pair is taken once before any twice, and every
    value of every axis as evenly as that allows. A pure function of the grid and n.

    What ``Plan.indices`` takes with ``select="stratified"`` (``physim generate --select
    stratified``); the default stays evenly spaced rows, so existing sets are unchanged.

    Args:
      columns: grid parameter columns, name -> (G,) (``*_side`` columns are ignored).
      n: rows wanted (at most G).
    """
    names = [k for k in columns if not k.endswith("_side")]
    g = len(next(iter(columns.values())))
    if not 0 < n <= g:
        raise ValueError(f"n must be in [1, {g}], got {n}")
    codes = {k: np.unique(columns[k], return_inverse=True)[1].reshape(-1) for k in names}
    strata = []
    for a, b in _pair_axes(names):
        pair = codes[a] * (codes[b].max() + 1) + codes[b]
        strata.append(np.unique(pair, return_inverse=True)[1].reshape(-1))
    feats = strata + [codes[k] for k in names]
    counts = [np.zeros(f.max() + 1, np.int64) for f in feats]
    taken = np.zeros(g, bool)
    big = g * (len(names) + 1) + 1
    out = []
    for _ in range(n):
        pair_cost = sum((c[f] for c, f in zip(counts[: len(strata)], strata, strict=True)),
                        np.zeros(g, np.int64))  # fmt: skip
        axis_cost = sum((c[f] for c, f in zip(counts[len(strata) :], feats[len(strata) :],
                                              strict=True)), np.zeros(g, np.int64))  # fmt: skip
        cost = np.where(taken, np.iinfo(np.int64).max, pair_cost * big + axis_cost)
        i = int(np.argmin(cost))
        taken[i] = True
        out.append(i)
        for c, f in zip(counts, feats, strict=True):
            c[f[i]] += 1
    return np.sort(np.asarray(out, np.int64))


@functools.lru_cache(maxsize=8)
def _stratified(scenario: str, fields_json: str, split: str, n: int) -> np.ndarray:
    """The stratified rows of a split's grid (cached: every shard asks)."""
    _, cols = _cached_spec(scenario, fields_json).grid(split)
    rows = stratified_rows(cols, n)
    rows.setflags(write=False)
    return rows


# Videos one split may hold: 1e9 uniform videos are about a terabyte of states (the paper's
# largest set is 6M); a larger --n is a typo, not a dataset (it used to hang silently).
MAX_VIDEOS = 1_000_000_000


SELECTIONS = ("even", "stratified")
STORAGES = ("full", "compact")


def make_plan(scenario, split: str, n: int, seed: int, overrides=None, shard_size=None,
              select: str = "even", storage: str = "full") -> Plan:
    """Validated :class:`Plan`. ``scenario`` is a registry name or a spec object."""
    if isinstance(scenario, str):
        spec = make_spec(scenario, dict(overrides or {}))
        name = scenario
    else:
        spec, name = scenario, type(scenario).name
        if overrides:
            spec = dataclasses.replace(spec, **overrides)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n <= 0:
        raise ValueError(f"--n must be a positive integer, got {n!r}")
    if n > MAX_VIDEOS:
        raise ValueError(f"--n {n} is above the {MAX_VIDEOS:,} videos one split may hold "
                         "(generate several datasets, e.g. with different seeds)")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**63:
        raise ValueError(f"--seed must be an integer in [0, 2**63), got {seed!r}")
    splits = getattr(spec, "splits", ("train",))
    if split not in splits:
        raise ValueError(f"{name}: unknown split {split!r}; known: {list(splits)}")
    grid = spec.size(split) if hasattr(spec, "size") else None
    if shard_size is None:
        shard_size = DEFAULT_SHARD_SIZE if hasattr(spec, "batch") else DEFAULT_RECORD_SHARD_SIZE
    if isinstance(shard_size, bool) or int(shard_size) != shard_size or shard_size < 1:
        raise ValueError(f"shard size must be a positive integer, got {shard_size!r}")
    if select not in SELECTIONS:
        raise ValueError(f"--select must be one of {list(SELECTIONS)}, got {select!r}")
    if select == "stratified":
        g = spec.grid(split) if grid is not None and hasattr(spec, "grid") else None
        if not (isinstance(g, tuple) and len(g) == 2 and isinstance(g[1], dict)):
            raise ValueError(f"--select stratified needs an evaluation grid of parameter "
                             f"columns; {name}/{split} has none")
    if storage not in STORAGES:
        raise ValueError(f"--storage must be one of {list(STORAGES)}, got {storage!r}")
    if storage == "compact" and not hasattr(spec, "sim_kwargs"):
        raise ValueError(f"--storage compact needs a scenario simulated in batches by "
                         f"physim.physics (disc scenarios); {name} is simulated per video")
    return Plan(name, spec_fields(spec), int(seed), split, int(n), grid, int(shard_size),
                select, storage)


# --------------------------------------------------------------------------- output folder


def read_plan(out, split: str) -> Plan | None:
    p = Path(out) / split / "plan.json"
    if not p.exists():
        return None
    try:
        return Plan(**json.loads(p.read_text()))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{p} is not a readable physim plan ({e})") from None


def _existing_plans(out: Path) -> list[Plan]:
    plans = []
    for entry in sorted(os.listdir(out)):
        if (out / entry / "plan.json").is_file():
            plans.append(read_plan(out, entry))
    return plans


def _is_physim_manifest(path: Path) -> bool:
    try:
        m = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(m, dict) and m.get("format") == "physim-dataset"


def check_out(out, plan: Plan) -> None:
    """Raise ``ValueError`` unless ``out`` can receive this split (nothing is written).

    ``out`` must be absent, empty, or a physim dataset of the same scenario spec and seed
    (another split, or this very split with the same plan: a resume).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a directory")
    if not out.exists():
        parent = next((p for p in out.parents if p.exists()), Path("."))
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"cannot create output directory {out}: {parent} is not writable")
        return
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"output directory {out} is not writable")
    entries = [e for e in os.listdir(out) if not e.startswith(".tmp-") and e != ".physim.lock"]
    plans = _existing_plans(out)
    manifest = out / "manifest.json"
    if manifest.exists() and not _is_physim_manifest(manifest):
        raise ValueError(f"{manifest} is not a physim dataset manifest; refusing to overwrite "
                         "it (choose an empty or new directory)")
    if entries and not plans and not manifest.exists():
        raise ValueError(
            f"output directory {out} is not empty and is not a physim dataset; "
            "refusing to write into it (choose an empty or new directory)"
        )
    for other in plans:
        if (other.scenario, other.spec, other.seed) != (plan.scenario, plan.spec, plan.seed):
            raise ValueError(
                f"{out} holds a dataset of scenario {other.scenario!r} with seed {other.seed} "
                "and another spec; use a different --out"
            )
        if other.split == plan.split and other != plan:
            diff = [
                f"{f.name}={getattr(other, f.name)!r}"
                for f in dataclasses.fields(Plan)
                if getattr(other, f.name) != getattr(plan, f.name)
            ]
            raise ValueError(
                f"{out}/{plan.split} was generated with a different plan ({', '.join(diff)}); "
                "use a different --out"
            )
