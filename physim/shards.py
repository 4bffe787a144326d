"""Shard files: columnar states of many videos in one deterministic, uncompressed ``.npz``.

A shard holds M videos of one split as columns (one ``.npy`` member each), plus a
``meta`` member (a 0-d unicode array holding JSON: code tables, scenario, seed, ...).
Nothing is pickled: every member loads with ``np.load(path, allow_pickle=False)``.

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
simulation (3M uniform-motion videos take ~3.5 GB).

The zip container is written by hand: members are stored (not compressed), timestamps are
fixed, and every array's data starts on a 64-byte boundary, so the same columns always
give the same bytes and readers can memory-map columns without copying.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import mmap
import os
import socket
import struct
import tempfile
import zipfile

import numpy as np

from physim import physics, world
from physim.record import Record, Trajectory

SHARD_FORMAT = 1
_ALIGN = 64
_EXTRA_ID = 0x7068  # private zip extra-field id ("ph") used only for alignment padding


class ShardError(ValueError):
    """A shard file that is missing, corrupt or inconsistent with its manifest."""


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
        "radii": batch.radii.astype(np.float64),
        "masses": batch.masses.astype(np.float64),
        "shapes": batch.shapes.astype(np.int8),
        "colors": batch.colors.astype(np.int8),
        "positions": batch.positions.astype(np.float64),
        "velocities": batch.velocities.astype(np.float64),
        "angles": batch.angles.astype(np.float64),
        "angular_velocities": batch.angular_velocities.astype(np.float64),
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


def _drop_zero_angles(cols):
    for k in ("angles", "angular_velocities"):
        if not np.any(cols[k]):
            del cols[k]


# --------------------------------------------------------------------------- npz bytes


def npz_bytes(columns: dict[str, np.ndarray]) -> bytes:
    """Deterministic uncompressed ``.npz`` bytes of ``columns`` (64-byte aligned data)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in columns.items():
            arr = np.asarray(arr)
            arr = arr if arr.flags.c_contiguous else arr.copy()  # keeps 0-d arrays 0-d
            if arr.dtype.hasobject:
                raise ValueError(f"column {name!r} has object dtype; shards hold no pickles")
            npy = io.BytesIO()
            np.lib.format.write_array(npy, arr, allow_pickle=False)
            data = npy.getvalue()
            fname = name + ".npy"
            # Pad the local header's extra field so the array data (after numpy's
            # 64-byte-multiple header) starts on a 64-byte boundary.
            start = buf.tell() + 30 + len(fname.encode())
            pad = (-(start + 4)) % _ALIGN
            info = zipfile.ZipInfo(fname, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            info.extra = struct.pack("<HH", _EXTRA_ID, pad) + b"\0" * pad
            zf.writestr(info, data)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename,
    so readers (and a killed run) see either the old file or the complete new one."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".tmp-{socket.gethostname()}-{os.getpid()}-")
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; shards are ordinary files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def clean_stale_temps(folder) -> None:
    """Remove temp files left in ``folder`` by killed processes of this host."""
    host = socket.gethostname()
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        if not name.startswith(f".tmp-{host}-"):
            continue
        pid = name[len(f".tmp-{host}-") :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                os.unlink(os.path.join(folder, name))
            except FileNotFoundError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- reading


class Shard:
    """Memory-mapped columns of one shard file; ``shard[name]`` is a read-only array.

    Raises :class:`ShardError` (naming the file) when the file is not a readable shard.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        try:
            self._file = open(self.path, "rb")
            size = os.fstat(self._file.fileno()).st_size
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            self._cols = self._index(size)
            self.meta = json.loads(str(self["meta"][()]))
        except ShardError:
            raise
        except Exception as e:  # zip/npy/json parsing errors all mean a corrupt file
            raise ShardError(f"shard {self.path} is unreadable or corrupt: {e}") from None
        if self.meta.get("format") != SHARD_FORMAT:
            raise ShardError(
                f"shard {self.path} has format {self.meta.get('format')!r}; "
                f"this physim reads format {SHARD_FORMAT}"
            )

    def _index(self, size):
        cols = {}
        with zipfile.ZipFile(self._file) as zf:
            for info in zf.infolist():
                if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                    raise ShardError(f"shard {self.path}: unexpected member {info.filename!r}")
                hdr = self._map[info.header_offset : info.header_offset + 30]
                if len(hdr) < 30 or hdr[:4] != b"PK\x03\x04":
                    raise ShardError(f"shard {self.path}: bad local header")
                nlen, xlen = struct.unpack("<HH", hdr[26:30])
                start = info.header_offset + 30 + nlen + xlen
                if start + info.file_size > size:
                    raise ShardError(f"shard {self.path} is truncated")
                f = io.BytesIO(self._map[start : start + min(info.file_size, 1 << 16)])
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                if dtype.hasobject or fortran:
                    raise ShardError(f"shard {self.path}: column {info.filename} not plain")
                count = int(np.prod(shape))
                if f.tell() + count * dtype.itemsize > info.file_size:
                    raise ShardError(f"shard {self.path}: column {info.filename} is truncated")
                cols[info.filename[:-4]] = (start + f.tell(), shape, dtype, count)
        return cols

    def __contains__(self, name) -> bool:
        return name in self._cols

    def keys(self):
        return list(self._cols)

    def __getitem__(self, name) -> np.ndarray:
        try:
            off, shape, dtype, count = self._cols[name]
        except KeyError:
            raise KeyError(f"shard {self.path} has no column {name!r}") from None
        if count == 0:
            return np.zeros(shape, dtype)
        return np.frombuffer(self._map, dtype=dtype, count=count, offset=off).reshape(shape)

    def __len__(self) -> int:
        return int(self._cols["index"][1][0])

    @property
    def param_names(self) -> list[str]:
        return [k[6:] for k in self._cols if k.startswith("param.")]

    def check(self, count: int | None = None, n_frames: int | None = None) -> None:
        """Raise :class:`ShardError` unless every column has the shape the format implies."""
        m = len(self) if count is None else count
        n = self._cols["radii"][1][1] if "radii" in self._cols else -1
        t = self._cols["positions"][1][1] if "positions" in self._cols else -1
        e = self._cols["event_times"][1][1] if "event_times" in self._cols else -1
        want = {
            "index": (m,), "level": (m,), "n_cond": (m,), "n_bodies": (m,),
            "radii": (m, n), "masses": (m, n), "shapes": (m, n), "colors": (m, n),
            "positions": (m, t, n, 2), "velocities": (m, t, n, 2),
            "angles": (m, t, n), "angular_velocities": (m, t, n),
            "event_times": (m, e), "event_frames": (m, e), "event_pairs": (m, e, 2),
            "event_counts": (m,), "extra_offsets": (m + 1,), "id_offsets": (m + 1,),
        }  # fmt: skip
        want.update({f"param.{p}": (m,) for p in self.param_names})
        for k in ("index", "positions", "velocities", "radii", "event_times"):
            if k not in self._cols:
                raise ShardError(f"shard {self.path} lacks column {k!r}")
        for k, shape in want.items():
            if k in self._cols and tuple(self._cols[k][1]) != shape:
                raise ShardError(
                    f"shard {self.path}: column {k!r} has shape {self._cols[k][1]}, "
                    f"expected {shape}"
                )
        if n_frames is not None and t != n_frames:
            raise ShardError(f"shard {self.path} has {t} frames, the manifest says {n_frames}")

    def video_id(self, k: int) -> str:
        if "id_offsets" in self:
            return _unblob(self["id_bytes"], self["id_offsets"], k)
        return video_id(self.meta["scenario"], self.meta["split"], int(self["index"][k]))

    def states(self, k: int) -> dict[str, np.ndarray]:
        """Arrays of video ``k`` needed to draw it (views; bodies past ``n_bodies`` cut)."""
        b = int(self["n_bodies"][k])
        pos = self["positions"][k, :, :b]
        ang = self["angles"][k, :, :b] if "angles" in self else np.zeros(pos.shape[:2])
        return {
            "positions": pos,
            "velocities": self["velocities"][k, :, :b],
            "angles": ang,
            "radii": self["radii"][k, :b],
            "shapes": self["shapes"][k, :b],
            "colors": self["colors"][k, :b],
        }

    def record(self, k: int) -> Record:
        """Video ``k`` of the shard as a :class:`Record` (arrays copied out of the file)."""
        meta = self.meta
        b = int(self["n_bodies"][k])
        ne = int(self["event_counts"][k])
        nt = self._cols["positions"][1][1]

        def body_arr(name, shape):
            if name in self:
                return np.array(self[name][k, :, :b])
            return np.zeros(shape)

        traj = Trajectory(
            times=world.frame_times(nt, meta["dt"]),
            positions=np.array(self["positions"][k, :, :b]),
            velocities=np.array(self["velocities"][k, :, :b]),
            angles=body_arr("angles", (nt, b)),
            angular_velocities=body_arr("angular_velocities", (nt, b)),
            event_times=np.array(self["event_times"][k, :ne]),
            event_frames=np.array(self["event_frames"][k, :ne]),
            event_pairs=np.array(self["event_pairs"][k, :ne]),
        )
        objects = world.Objects(
            radii=np.array(self["radii"][k, :b]),
            masses=np.array(self["masses"][k, :b]),
            shapes=tuple(meta["shapes"][c] for c in self["shapes"][k, :b]),
            colors=tuple(meta["colors"][c] for c in self["colors"][k, :b]),
        )
        params = {}
        for p in self.param_names:
            v = float(self[f"param.{p}"][k])
            if not np.isnan(v):
                params[p] = v
        extra = {}
        if "extra_offsets" in self:
            extra = json.loads(_unblob(self["extra_bytes"], self["extra_offsets"], k))
        return Record(
            id=self.video_id(k),
            scenario=meta["scenario"],
            split=meta["split"],
            level=meta["levels"][int(self["level"][k])],
            seed=int(meta["seed"]),
            params=params,
            objects=objects,
            trajectory=traj,
            n_cond=int(self["n_cond"][k]),
            extra=extra,
        )

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            try:
                self._map.close()
            except BufferError:  # views still alive; the map closes when they die
                pass
        self._file.close()


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
