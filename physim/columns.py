"""Shard columns: videos (a scenario :class:`Batch` or a list of Records) as named arrays.

Columns (M videos, T frames, N = the shard's largest body count, E = its largest event count):

==================  ===================  ==============================================
``index``           (M,) int64           video index within the split (grid row for eval)
``level``           (M,) int16           code into ``meta["levels"]``
``n_cond``          (M,) int16           conditioning frames
``n_bodies``        (M,) int16           bodies of each video (rows past it are padding)
``param.<name>``    (M,) float64         scalar parameters (NaN where a video lacks one)
``radii/masses``    (M, N) float64       world units / mass units
``shapes/colors``   (M, N) int8          codes into ``meta["shapes"]`` / ``meta["colors"]``
``positions``       (M, T, N, 2) float64 world units, y up, at ``t_k = k * dt``
``velocities``      (M, T, N, 2) float64 world units / s
``angles``          (M, T, N) float64    radians (absent when all zero: disc scenarios)
``angular_velocities`` (M, T, N) float64 radians / s (absent when all zero)
``event_times``     (M, E) float64       seconds (slots past ``event_counts`` are 0)
``event_frames``    (M, E) int32         first frame at or after each event
``event_pairs``     (M, E, 2) int32      body pairs; negative partner = wall
``event_counts``    (M,) int32
``extra_bytes/offsets`` uint8 / (M+1,) int64  UTF-8 JSON of ``Record.extra`` (record shards)
``id_bytes/offsets``    uint8 / (M+1,) int64  ids, only when they are not canonical
==================  ===================  ==============================================

States are float64 on purpose: a record read back equals the simulator's output bit for
bit, so truth, events and frames rendered from disk agree exactly with a fresh
simulation (3M uniform-motion videos take 3.2 GB).

Compact storage (``physim generate --storage compact``, disc scenarios): the states and
events (:data:`DERIVED`) are replaced by ``positions0`` / ``velocities0`` (M, N, 2), the
scenario's physics and a SHA-256 digest of the replaced columns in ``meta["storage"]``.
Readers re-simulate them (:func:`expand_compact`, the same kernel) and refuse a shard
whose digest differs, so what they see is bit for bit the full format's columns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from physim import physics, world
from physim.record import Record, Trajectory

SHARD_FORMAT = 1  # version of the column layout, checked by readers


# --------------------------------------------------------------------------- canonical ids


def video_id(scenario: str, split: str, index: int) -> str:
    """Canonical id of video ``index`` of a split, e.g. ``"uniform-train-0000042"``."""
    return f"{scenario}-{split}-{int(index):07d}"


# --------------------------------------------------------------------------- building


def _blob(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    data = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(data) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(d) for d in data])
    return np.frombuffer(b"".join(data), dtype=np.uint8).copy(), offsets


def _unblob(data: np.ndarray, offsets: np.ndarray, k: int) -> str:
    return bytes(data[offsets[k] : offsets[k + 1]]).decode("utf-8")


def _events(times, pairs, counts, frames=None):
    """Re-pad event arrays to the largest count (at least 1), zeros past each count."""
    m = counts.shape[0]
    e = max(int(counts.max(initial=0)), 1)
    t = np.zeros((m, e))
    p = np.zeros((m, e, 2), dtype=np.int32)
    keep = np.arange(e)[None, :] < counts[:, None]
    w = min(e, times.shape[1])
    t[:, :w] = np.where(keep[:, :w], times[:, :w], 0.0)
    p[:, :w] = np.where(keep[:, :w, None], pairs[:, :w], 0)
    if frames is None:
        f = np.where(keep, physics.event_frames(t), 0).astype(np.int32)
    else:
        f = np.zeros((m, e), dtype=np.int32)
        f[:, :w] = np.where(keep[:, :w], frames[:, :w], 0)
    return t, f, p, counts.astype(np.int32)


def _meta(scenario, split, seed, levels, dt, extra_meta) -> dict:
    return {
        "format": SHARD_FORMAT,
        "scenario": scenario,
        "split": split,
        "seed": int(seed),
        "levels": list(levels),
        "shapes": list(world.SHAPES),
        "colors": list(world.PALETTE),
        "dt": float(dt),
        **(extra_meta or {}),
    }


def columns_from_batch(batch, extra_meta: dict | None = None) -> dict[str, np.ndarray]:
    """Shard columns of a :class:`physim.scenarios.base.Batch` (see the module docstring)."""
    m, n = batch.radii.shape
    t, f, p, c = _events(batch.event_times, batch.event_pairs, batch.event_counts)
    cols = {
        "index": batch.index.astype(np.int64),
        "level": batch.level.astype(np.int16),
        "n_cond": np.full(m, batch.n_cond, dtype=np.int16),
        "n_bodies": np.full(m, n, dtype=np.int16),
        **{f"param.{k}": np.asarray(v, dtype=np.float64) for k, v in batch.params.items()},
        "radii": batch.radii.astype(np.float64, copy=False),
        "masses": batch.masses.astype(np.float64, copy=False),
        "shapes": batch.shapes.astype(np.int8),
        "colors": batch.colors.astype(np.int8),
        "positions": batch.positions.astype(np.float64, copy=False),
        "velocities": batch.velocities.astype(np.float64, copy=False),
        "angles": batch.angles.astype(np.float64, copy=False),
        "angular_velocities": batch.angular_velocities.astype(np.float64, copy=False),
        "event_times": t,
        "event_frames": f,
        "event_pairs": p,
        "event_counts": c,
    }
    _drop_zero_angles(cols)
    meta = _meta(batch.scenario, batch.split, batch.seed, batch.levels, batch.dt, extra_meta)
    cols["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return cols


def columns_from_records(
    records: list[Record], scenario: str, split: str, seed: int, extra_meta: dict | None = None
) -> dict[str, np.ndarray]:
    """Shard columns of a list of :class:`Record` (bodies padded to the largest count)."""
    if not records:
        raise ValueError("a shard needs at least one record")
    m = len(records)
    n = max(r.objects.n for r in records)
    nt = {r.trajectory.n_frames for r in records}
    if len(nt) != 1:
        raise ValueError(f"records of one shard must share a frame count, got {sorted(nt)}")
    (nt,) = nt
    dts = {round(float(np.diff(r.trajectory.times[:2])[0]), 12) for r in records}
    levels = sorted({r.level for r in records})
    pnames = list(dict.fromkeys(k for r in records for k in r.params))
    cols = {
        "index": np.empty(m, np.int64),
        "level": np.array([levels.index(r.level) for r in records], dtype=np.int16),
        "n_cond": np.array([r.n_cond for r in records], dtype=np.int16),
        "n_bodies": np.array([r.objects.n for r in records], dtype=np.int16),
        **{f"param.{k}": np.array([r.params.get(k, np.nan) for r in records]) for k in pnames},
        "radii": np.zeros((m, n)),
        "masses": np.zeros((m, n)),
        "shapes": np.zeros((m, n), np.int8),
        "colors": np.zeros((m, n), np.int8),
        "positions": np.zeros((m, nt, n, 2)),
        "velocities": np.zeros((m, nt, n, 2)),
        "angles": np.zeros((m, nt, n)),
        "angular_velocities": np.zeros((m, nt, n)),
    }
    colors = list(world.PALETTE)
    ids, canonical = [], True
    for k, r in enumerate(records):
        tail = r.id.rsplit("-", 1)[-1]
        idx = int(tail) if tail.isdigit() else k
        cols["index"][k] = idx
        canonical &= r.id == video_id(scenario, split, idx)
        ids.append(r.id)
        b = r.objects.n
        cols["radii"][k, :b] = r.objects.radii
        cols["masses"][k, :b] = r.objects.masses
        cols["shapes"][k, :b] = [world.SHAPE_CODES[s] for s in r.objects.shapes]
        cols["colors"][k, :b] = [colors.index(c) for c in r.objects.colors]
        tr = r.trajectory
        cols["positions"][k, :, :b] = tr.positions
        cols["velocities"][k, :, :b] = tr.velocities
        cols["angles"][k, :, :b] = tr.angles
        cols["angular_velocities"][k, :, :b] = tr.angular_velocities
    counts = np.array([len(r.trajectory.event_times) for r in records], dtype=np.int32)
    e = max(int(counts.max()), 1)
    times, frames = np.zeros((m, e)), np.zeros((m, e), np.int32)
    pairs = np.zeros((m, e, 2), np.int32)
    for k, r in enumerate(records):
        ne = counts[k]
        times[k, :ne] = r.trajectory.event_times
        frames[k, :ne] = r.trajectory.event_frames
        pairs[k, :ne] = r.trajectory.event_pairs
    cols["event_times"], cols["event_frames"], cols["event_pairs"], cols["event_counts"] = _events(
        times, pairs, counts, frames
    )
    _drop_zero_angles(cols)
    if any(r.extra for r in records):
        cols["extra_bytes"], cols["extra_offsets"] = _blob(
            [json.dumps(r.extra, sort_keys=True) for r in records]
        )
    if not canonical:
        cols["id_bytes"], cols["id_offsets"] = _blob(ids)
    meta = _meta(scenario, split, seed, levels, dts.pop() if len(dts) == 1 else 0.0, extra_meta)
    cols["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return cols


# --------------------------------------------------------------------------- compact storage

DERIVED = ("positions", "velocities", "event_times", "event_frames", "event_pairs",
           "event_counts")  # the columns compact storage re-simulates


def derived_digest(cols) -> str:
    """SHA-256 (hex) of the :data:`DERIVED` columns: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in DERIVED:
        a = np.ascontiguousarray(cols[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(memoryview(a.reshape(-1)).cast("B") if a.nbytes else b"")
    return h.hexdigest()


def expand_compact(get, storage: dict) -> dict[str, np.ndarray]:
    """The :data:`DERIVED` columns of a compact shard, re-simulated.

    Args:
      get: column name -> array (``radii``, ``masses``, ``positions0``, ``velocities0``).
      storage: the shard's ``meta["storage"]`` (the physics keywords of
        :func:`physim.physics.simulate_batch`, plus ``kind`` and ``digest``).
    """
    kw = {k: storage[k] for k in ("gravity", "restitution", "n_frames", "dt")}
    kw["max_events"] = int(storage.get("max_events", physics.MAX_EVENTS))
    sim = physics.simulate_batch(get("radii"), get("masses"), get("positions0"),
                                 get("velocities0"), **kw)
    e = max(int(sim["event_counts"].max(initial=0)), 1)
    t, f, p, c = _events(sim["event_times"][:, :e], sim["event_pairs"][:, :e],
                         sim["event_counts"])
    return {"positions": sim["positions"], "velocities": sim["velocities"],
            "event_times": t, "event_frames": f, "event_pairs": p, "event_counts": c}


def compact_columns(cols: dict[str, np.ndarray], physics_kw: dict) -> dict[str, np.ndarray]:
    """The compact-storage columns of a batch shard's full ``cols`` (see the module
    docstring), checked before they are returned: re-simulating them must give the full
    columns bit for bit, else ``ValueError`` (nothing is written).

    Args:
      cols: :func:`columns_from_batch` output (no angles, no per-video extras).
      physics_kw: the scenario's ``sim_kwargs()`` (gravity, restitution, n_frames, dt).
    """
    extra = [k for k in ("angles", "angular_velocities", "extra_offsets", "id_offsets")
             if k in cols]
    if extra:
        raise ValueError(f"compact storage holds disc videos of a batch scenario; these "
                         f"columns have no compact form: {extra}")
    meta = json.loads(str(cols["meta"][()]))
    storage = {"kind": "compact", **physics_kw, "digest": derived_digest(cols)}
    out = {}
    for k, v in cols.items():
        if k == "positions":
            out["positions0"] = np.ascontiguousarray(v[:, 0])
            out["velocities0"] = np.ascontiguousarray(cols["velocities"][:, 0])
        elif k not in DERIVED and k != "meta":
            out[k] = v
    out["meta"] = np.array(json.dumps({**meta, "storage": storage}, sort_keys=True))
    if derived_digest(expand_compact(out.__getitem__, storage)) != storage["digest"]:
        raise ValueError(
            f"{meta.get('scenario')}/{meta.get('split')} shard {meta.get('shard')}: "
            "re-simulating the initial states does not give the stored states bit for "
            "bit; use --storage full")
    return out


def _drop_zero_angles(cols):
    for k in ("angles", "angular_velocities"):
        if not np.any(cols[k]):
            del cols[k]


def records_equal(a: Record, b: Record) -> bool:
    """Exact equality of two records (metadata, attributes, every state array)."""
    if (a.id, a.scenario, a.split, a.level, a.seed, a.n_cond) != (
        b.id, b.scenario, b.split, b.level, b.seed, b.n_cond
    ):  # fmt: skip
        return False
    if a.params != b.params or a.extra != b.extra:
        return False
    if (a.objects.shapes, a.objects.colors) != (b.objects.shapes, b.objects.colors):
        return False
    if not (
        np.array_equal(a.objects.radii, b.objects.radii)
        and np.array_equal(a.objects.masses, b.objects.masses)
    ):
        return False
    return all(
        np.array_equal(getattr(a.trajectory, f.name), getattr(b.trajectory, f.name))
        for f in dataclasses.fields(Trajectory)
    )
