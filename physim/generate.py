"""Dataset generation: plan, shards, resume and the manifest.

A split of N videos is cut into shards of ``shard_size`` consecutive video positions.
Shard k is a pure function of (scenario spec, seed, split, selected indices, k): the same
bytes whichever process, worker count, ``--shards`` range or executor computes it. A run:

1. validates everything (scenario, keys, N, seed, output folder) before writing anything;
2. writes ``DIR/<split>/plan.json`` (identical bytes on every run of the same command);
3. skips shards that are complete and verified (their checksum matches their sidecar),
   computes the others and writes each through a temp file and a rename, then its sidecar
   ``.shard-*.json`` (checksum, count, level counts, parameter ranges);
4. when every shard of the split is there, writes ``DIR/manifest.json`` (atomically).

A run killed at any point leaves only complete shards; re-running finishes the job with
the same bytes. Runs into one folder take its lock (``DIR/.physim.lock``, an advisory
``flock``) to claim it (check + ``plan.json``) and to write the manifest, so concurrent
runs of compatible splits (``id`` and ``ood``) both succeed and an incompatible one
(another seed or spec) is refused; pool workers die with their parent.

Evaluation splits (``id``, ``ood``, ...) are the scenario's Cartesian grid:
with ``n`` below the grid size, ``n`` rows evenly spaced over the grid are taken (rows
``floor(k * G / n)``); with ``n`` at or above it, the whole grid. Grid rows whose placement is
impossible are dropped, so a grid split can hold fewer videos than rows. Evenly spaced
rows can alias with the grid (collision ``--n 32`` has v2 = 1.0 in every video):
:func:`coverage_warning` names the axes and pairs a subset misses, and ``physim generate``
prints it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from physim import shards as sh
from physim import world
from physim.plan import (  # noqa: F401  (re-exported)
    DEFAULT_RECORD_SHARD_SIZE,
    DEFAULT_SHARD_SIZE,
    MANIFEST_VERSION,
    Plan,
    _cached_spec,
    _canon,
    _existing_plans,
    _pair_axes,
    check_out,
    make_plan,
    make_spec,
    read_plan,
    spec_fields,
    stratified_rows,
)

# --------------------------------------------------------------------------- one shard


def shard_columns(plan: Plan, k: int) -> dict[str, np.ndarray]:
    """Columns of shard ``k`` (a pure function of the plan and k)."""
    spec = _cached_spec(plan.scenario, _canon(plan.spec))
    idx = plan.indices(k)
    meta = {"shard": k, "n_shards": plan.n_shards, "spec_sha": plan.spec_sha}
    if hasattr(spec, "batch"):
        cols = sh.columns_from_batch(spec.batch(plan.seed, plan.split, idx), meta)
        return cols if plan.storage == "full" else sh.compact_columns(cols, spec.sim_kwargs())
    recs = [spec.sample(plan.seed, plan.split, int(i)) for i in idx]
    return sh.columns_from_records(recs, plan.scenario, plan.split, plan.seed, meta)


PLACE_CHECK_ROWS = 4096  # grid rows placed up front to refuse an impossible grid
PLACE_CHECK_VIDEOS = 16  # videos of a random split placed up front (the same check)


def check_placeable(plan: Plan) -> None:
    """Raise ``ValueError`` if the plan's videos cannot be placed (e.g. ``collision --set
    v_id=[0,0]``: the balls never meet), before anything is written. Evaluation grids: no
    one of the first :data:`PLACE_CHECK_ROWS` selected rows can be placed (impossible rows
    are dropped); random splits: one of the first :data:`PLACE_CHECK_VIDEOS` videos cannot
    (a random video that cannot be placed is an error). Disc scenarios only."""
    spec = _cached_spec(plan.scenario, _canon(plan.spec))
    if not hasattr(spec, "batch"):
        return
    if plan.grid_size is None:
        first = plan.indices(0)[:PLACE_CHECK_VIDEOS] if plan.n_shards else []
        if len(first):
            try:
                spec.batch(plan.seed, plan.split, first)
            except ValueError as e:
                raise ValueError(f"{e}; nothing written") from None
        return
    rows = np.concatenate([plan.indices(k) for k in range(plan.n_shards)])[:PLACE_CHECK_ROWS]
    if len(rows) and len(spec.batch(plan.seed, plan.split, rows)) == 0:
        what = "every" if len(rows) == plan.n_selected else f"the first {len(rows)}"
        raise ValueError(f"{plan.scenario}/{plan.split}: {what} selected grid row is "
                         "impossible to place with these parameters; nothing written")


def _shard_info(plan: Plan, k: int, cols, data: bytes) -> dict:
    meta = json.loads(str(cols["meta"][()]))
    index, level = cols["index"], cols["level"]
    counts = np.bincount(level, minlength=len(meta["levels"])) if len(level) else []
    params = {}
    for name, v in cols.items():
        if name.startswith("param.") and np.isfinite(v).any():
            params[name[6:]] = [float(np.nanmin(v)), float(np.nanmax(v))]
    return {
        "shard": k,
        "file": plan.shard_file(k),
        "count": int(len(index)),
        "sha256": sh.sha256(data),
        "bytes": len(data),
        "first_index": int(index[0]) if len(index) else None,
        "last_index": int(index[-1]) if len(index) else None,
        "levels": {lv: int(c) for lv, c in zip(meta["levels"], counts, strict=False) if c},
        "params": params,
        "max_bodies": int(cols["n_bodies"].max(initial=0)),
    }


def shard_payload(plan_json: str, k: int) -> tuple[bytes, dict]:
    """Bytes and sidecar info of shard ``k`` (runs anywhere: a worker, a Ray task)."""
    plan = Plan(**json.loads(plan_json))
    cols = shard_columns(plan, k)
    data = sh.npz_bytes(cols)
    return data, _shard_info(plan, k, cols, data)


def store_shard(out, plan: Plan, k: int, data: bytes, info: dict) -> dict:
    """Write a shard, then its sidecar, each atomically."""
    sh.atomic_write(Path(out) / plan.shard_file(k), data)
    sh.atomic_write(Path(out) / plan.sidecar_file(k), (_canon(info) + "\n").encode())
    return info


def write_shard(out: str, plan_json: str, k: int) -> dict:
    """Compute and write shard ``k``; returns its info (the local executor's task)."""
    data, info = shard_payload(plan_json, k)
    return store_shard(out, Plan(**json.loads(plan_json)), k, data, info)


def verified_info(out, plan: Plan, k: int) -> dict | None:
    """Sidecar info of shard ``k`` if the shard is complete and intact, else None."""
    path, side = Path(out) / plan.shard_file(k), Path(out) / plan.sidecar_file(k)
    if not (path.exists() and side.exists()):
        return None
    try:
        info = json.loads(side.read_text())
        if info.get("bytes") != path.stat().st_size:
            return None
        data = path.read_bytes()
        if sh.sha256(data) != info.get("sha256"):
            return None
        # Every field of the sidecar (levels, parameter ranges, ...) is what the shard says.
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if _canon(_shard_info(plan, k, {n: z[n] for n in z.files}, data)) != _canon(info):
                return None
        shard = sh.Shard(path)
        try:
            shard.check(count=info["count"])
            m = shard.meta
            ok = (m.get("spec_sha"), m.get("shard"), m.get("seed")) == (plan.spec_sha, k, plan.seed)
        finally:
            shard.close()
        return info if ok else None
    except (ValueError, KeyError, OSError):
        return None


# --------------------------------------------------------------------------- manifest


def sidecars_present(out, plan: Plan) -> bool:
    """Whether every shard of the split has its sidecar (cheap: no shard is read)."""
    return all((Path(out) / plan.sidecar_file(k)).exists() for k in range(plan.n_shards))


def _written_info(out, plan: Plan, k: int, info: dict) -> dict | None:
    """``info`` if shard ``k`` is still the one this process wrote with it (its sidecar
    says the same and the file has its size), else None: no re-read, no re-hash."""
    path, side = Path(out) / plan.shard_file(k), Path(out) / plan.sidecar_file(k)
    try:
        same = side.read_text() == _canon(info) + "\n" and path.stat().st_size == info["bytes"]
    except (OSError, KeyError):
        return None
    return info if same else None


def split_summary(out, plan: Plan, written: dict | None = None) -> dict | None:
    """Manifest entry of a split if all its shards have sidecars, else None. Each shard is
    verified against its sidecar (:func:`verified_info`) first, so a sidecar that does not
    describe its shard never enters the manifest (``ValueError`` naming the shard and the
    command that repairs it). ``written``: {k: info} of shards this process has just
    written and hashed itself; they are checked by sidecar and size only."""
    if not sidecars_present(out, plan):
        return None
    written = written or {}
    infos = []
    for k in range(plan.n_shards):
        info = _written_info(out, plan, k, written[k]) if k in written else None
        info = info or verified_info(out, plan, k)
        if info is None:
            raise ValueError(
                f"{out}: shard {plan.shard_file(k)} of split {plan.split!r} does not match its "
                f"sidecar {plan.sidecar_file(k)} (edited, corrupt or half-written); no "
                f"manifest was written. `physim generate {plan.scenario} --split {plan.split} "
                f"--n {plan.n} --seed {plan.seed} --out {out}` (with the same --set) "
                "recomputes it")
        infos.append(info)
    levels: dict[str, int] = {}
    params: dict[str, list[float]] = {}
    for info in infos:
        for lv, c in info["levels"].items():
            levels[lv] = levels.get(lv, 0) + c
        for p, (lo, hi) in info["params"].items():
            cur = params.get(p, [lo, hi])
            params[p] = [min(cur[0], lo), max(cur[1], hi)]
    keep = ("file", "count", "sha256", "bytes", "first_index", "last_index")
    return {
        "n_requested": plan.n,
        "count": sum(i["count"] for i in infos),
        "selection": plan.selection,
        "grid_size": plan.grid_size,
        "shard_size": plan.shard_size,
        "levels": levels,
        "params": params,
        "max_bodies": max((i["max_bodies"] for i in infos), default=0),
        "shards": [{k: i[k] for k in keep} for i in infos],
    }


def build_manifest(out, written: dict | None = None) -> dict | None:
    """Manifest of every complete split in ``out`` (None if no split is complete).
    ``written``: {split: {k: info}} of shards this process has just written."""
    out = Path(out)
    splits, first = {}, None
    for plan in _existing_plans(out):
        summary = split_summary(out, plan, (written or {}).get(plan.split))
        if summary is not None:
            splits[plan.split] = summary
            first = first or plan
    if first is None:
        return None
    spec = _cached_spec(first.scenario, _canon(first.spec))
    return {
        "format": "physim-dataset",
        "format_version": MANIFEST_VERSION,
        "physim_version": first.physim_version,
        "scenario": first.scenario,
        "spec": first.spec,
        "seed": first.seed,
        "conventions": {
            "world_size": world.WORLD_SIZE,
            "frame_dt": float(getattr(spec, "dt", world.FRAME_DT)),
            "frames": int(getattr(spec, "n_frames", world.N_FRAMES)),
            "n_cond": int(getattr(spec, "n_cond", 3)),
            "default_resolution": world.DEFAULT_RESOLUTION,
            "frame_times": "t_k = k * frame_dt exactly (the paper: after a first 0.01 s step)",
            "pixels": "col = x / world_size * R, row = (world_size - y) / world_size * R; y up",
            "state_dtype": "float64",
            "shard_format": sh.SHARD_FORMAT,
        },
        "counts": {s: {"total": v["count"], "levels": v["levels"]} for s, v in splits.items()},
        "splits": splits,
    }


def write_manifest(out, written: dict | None = None) -> dict | None:
    manifest = build_manifest(out, written)
    if manifest is not None:
        text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        sh.atomic_write(Path(out) / "manifest.json", text.encode())
    return manifest


# --------------------------------------------------------------------------- generate


# --------------------------------------------------------------------------- grid coverage


def grid_coverage(plan: Plan) -> dict | None:
    """How much of its grid an evaluation split's selected rows cover (None: whole grid or
    a random split).

    Returns ``{"rows": (selected, grid), "axes": {name: (values covered, values)},
    "pairs": {"v1,v2": (pairs covered, pairs)}}`` over every level of the split, for the
    scalar parameters of the grid (``*_side`` columns left out) and the same-kind pairs.
    """
    if plan.grid_size is None or plan.n >= plan.grid_size:
        return None
    spec = _cached_spec(plan.scenario, _canon(plan.spec))
    grid = spec.grid(plan.split) if hasattr(spec, "grid") else None
    # Disc scenarios' grids are (level codes, parameter columns); other scenes (the
    # combinatorial templates) enumerate other things and are not checked here.
    if not (isinstance(grid, tuple) and len(grid) == 2 and isinstance(grid[1], dict)):
        return None
    cols = grid[1]
    rows = np.concatenate([plan.indices(k) for k in range(plan.n_shards)])
    names = [n for n in cols if not n.endswith("_side")]
    axes = {n: (len(np.unique(cols[n][rows])), len(np.unique(cols[n]))) for n in names}
    pairs = {}
    for a, b in _pair_axes(names):
        both = np.stack([cols[a], cols[b]], axis=1)
        pairs[f"{a},{b}"] = (len(np.unique(both[rows], axis=0)), len(np.unique(both, axis=0)))
    return {"rows": (len(rows), plan.grid_size), "axes": axes, "pairs": pairs}


def coverage_warning(plan: Plan) -> str | None:
    """A warning naming the grid axes and pairs a subset leaves uncovered (None if none).

    With ``--n`` below the grid size, rows ``floor(k * G / n)`` are taken (the default,
    ``select="even"``); their step can alias with the grid's fastest axes (collision
    ``--n 32``: v2 = 1.0 in every video). ``select="stratified"`` avoids that.
    """
    cov = grid_coverage(plan)
    if cov is None:
        return None
    short = [f"{n} {c} of {t} values" for n, (c, t) in cov["axes"].items() if c < t]
    short += [f"({p}) {c} of {t} pairs" for p, (c, t) in cov["pairs"].items() if c < t]
    if not short:
        return None
    n, g = cov["rows"]
    return (f"{plan.scenario}/{plan.split}: {n} of {g} grid rows cover only " + ", ".join(short)
            + f"; use --n {g} for the whole grid")  # fmt: skip


def parse_shards(text: str | None, n_shards: int) -> range:
    """``"A:B"`` (either side optional, B exclusive) -> range of shard indices."""
    if text is None:
        return range(n_shards)
    try:
        a, b = (text.split(":") + [""])[:2] if ":" in text else (text, str(int(text) + 1))
        lo = int(a) if a.strip() else 0
        hi = int(b) if b.strip() else n_shards
    except ValueError:
        raise ValueError(f"--shards must look like A:B, got {text!r}") from None
    if not 0 <= lo < hi <= n_shards:
        raise ValueError(f"--shards {text} is outside 0:{n_shards} (this split has {n_shards})")
    return range(lo, hi)


def generate(
    scenario,
    split: str = "train",
    n: int = 1000,
    seed: int = 0,
    out=None,
    *,
    overrides: dict | None = None,
    workers: int = 1,
    shards: str | Iterable[int] | None = None,
    executor: str = "local",
    address: str | None = None,
    shard_size: int | None = None,
    select: str = "even",
    storage: str = "full",
    progress: bool = True,
) -> dict:
    """Generate (or finish) split ``split`` of a dataset in ``out``; see the module docstring.

    Args:
      scenario: registry name (``"uniform"``) or a scenario spec object.
      split: ``"train"`` (random draws) or an evaluation split (``"id"``, ``"ood"``).
      n: videos requested (> 0); eval splits take at most their grid.
      seed: dataset seed in [0, 2**63).
      out: output directory (absent, empty, or a dataset of the same spec and seed).
      overrides: scenario fields to replace (``{"v_id": (1.0, 3.0)}``).
      workers: processes (local executor) or concurrent tasks (Ray).
      shards: ``"A:B"`` or an iterable of shard indices: compute only these.
      executor: ``"local"`` or ``"ray"``; address: a Ray cluster address (None: local Ray).
      shard_size: videos per shard (part of the dataset's identity).
      select: rows of an evaluation grid with ``n`` below its size: ``"even"`` (evenly
        spaced; may alias with the grid's axes) or ``"stratified"`` (every same-kind
        parameter pair once before any twice; recorded in the plan).
      storage: ``"full"`` (every state) or ``"compact"`` (initial states only, the rest
        re-simulated and checked on read; disc scenarios; recorded in the plan).
      progress: show a tqdm bar.

    Returns:
      dict with ``videos`` (written in this run), ``written``/``skipped`` shard counts,
      ``n_shards``, ``seconds``, ``complete`` (manifest written), ``out`` and
      ``coverage_warning`` (:func:`coverage_warning`: grid axes a subset misses, or None).
    """
    from physim import executors

    t0 = time.perf_counter()
    if out is None:
        raise ValueError("an output directory is required")
    plan = make_plan(scenario, split, n, seed, overrides, shard_size, select, storage)
    todo_range = (
        parse_shards(shards, plan.n_shards)
        if shards is None or isinstance(shards, str)
        else sorted(set(int(k) for k in shards))
    )
    if any(not 0 <= k < plan.n_shards for k in todo_range):
        raise ValueError(f"shard indices must be in [0, {plan.n_shards})")
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {workers!r}")
    executors.check(executor)
    check_placeable(plan)
    try:
        check_out(out, plan)  # before the lock file: a foreign folder stays untouched
    except ValueError:
        if not (Path(out) / sh.LOCK_NAME).exists():
            raise
        # Another physim run holds (or held) this folder's lock and may be half-way through
        # claiming its split (folder made, plan.json not yet written): decide under the lock.

    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with sh.folder_lock(out):
            check_out(out, plan)  # again: another run may have claimed it meanwhile
            (out / plan.split).mkdir(exist_ok=True)
            plan_path = out / plan.split / "plan.json"
            if not plan_path.exists():
                sh.atomic_write(plan_path, plan.to_json().encode())
    except ValueError:
        if created and set(os.listdir(out)) <= {sh.LOCK_NAME}:
            shutil.rmtree(out, ignore_errors=True)  # leave nothing of a refused run
        raise
    sh.clean_stale_temps(out / plan.split)
    sh.clean_stale_temps(out)

    todo = [k for k in todo_range if verified_info(out, plan, k) is None]
    plan_json = plan.to_json()
    videos = 0
    written: dict[int, dict] = {}
    bar = None
    # Workers start here, before the progress bar's thread (forked where that is safe).
    results = executors.run_shards(out, plan_json, todo, workers, executor, address)
    try:
        if progress and todo:
            from tqdm.auto import tqdm

            total = sum(len(plan.indices(k)) for k in todo)
            bar = tqdm(total=total, unit="video", desc=f"{plan.scenario}/{plan.split}",
                       smoothing=0.1)
        for info in results:
            videos += info["count"]
            written[info["shard"]] = info
            if bar is not None:
                bar.update(len(plan.indices(info["shard"])))
    finally:
        if hasattr(results, "close"):
            results.close()  # a pool's workers: cancelled if we stop early, then joined
        if bar is not None:
            bar.close()
    with sh.folder_lock(out):
        # (write_manifest verifies every split's shards; checking completeness first must
        # not read them a second time)
        manifest = (write_manifest(out, {plan.split: written})
                    if sidecars_present(out, plan) else None)
    return {
        "out": str(out),
        "coverage_warning": coverage_warning(plan),
        "videos": videos,
        "written": len(todo),
        "skipped": len(todo_range) - len(todo),
        "n_shards": plan.n_shards,
        "complete": manifest is not None and plan.split in manifest["splits"],
        "seconds": time.perf_counter() - t0,
    }
