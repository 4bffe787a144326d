"""Shard files: columnar states of many videos in one deterministic, uncompressed ``.npz``.

A shard holds M videos of one split as columns (one ``.npy`` member each), plus a
``meta`` member (a 0-d unicode array holding JSON: code tables, scenario, seed, ...).
Nothing is pickled: every member loads with ``np.load(path, allow_pickle=False)``.

The columns are described in :mod:`physim.columns`.

The zip container is written by hand: members are stored (not compressed), timestamps are
fixed, and every array's data starts on a 64-byte boundary, so the same columns always
give the same bytes and readers can memory-map columns without copying.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import mmap
import os
import socket
import struct
import sys
import tempfile
import zipfile

import numpy as np

from physim import world
from physim.columns import (  # noqa: F401  (re-exported: the shard API)
    SHARD_FORMAT,
    _unblob,
    columns_from_batch,
    columns_from_records,
    compact_columns,
    derived_digest,
    expand_compact,
    records_equal,
    video_id,
)
from physim.record import Record, Trajectory

_ALIGN = 64
_EXTRA_ID = 0x7068  # private zip extra-field id ("ph") used only for alignment padding


class ShardError(ValueError):
    """A shard file that is missing, corrupt or inconsistent with its manifest."""


# --------------------------------------------------------------------------- npz bytes


def npy_parts(arr: np.ndarray) -> tuple[bytes, memoryview | bytes]:
    """The bytes of ``np.save(arr)`` (format 1.0, no pickle) as (header, data) parts, the
    data being the (C-contiguous) array's own buffer, not a copy."""
    arr = arr if arr.flags.c_contiguous else arr.copy()  # keeps 0-d arrays 0-d
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, np.lib.format.header_data_from_array_1_0(arr))
    return head.getvalue(), memoryview(arr.reshape(-1)).cast("B") if arr.nbytes else b""


def npz_bytes(columns: dict[str, np.ndarray]) -> bytes:
    """Deterministic uncompressed ``.npz`` bytes of ``columns`` (64-byte aligned data)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in columns.items():
            arr = np.asarray(arr)
            if arr.dtype.hasobject:
                raise ValueError(f"column {name!r} has object dtype; shards hold no pickles")
            head, body = npy_parts(arr)
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
            # As zf.writestr(info, header + data) does, without copying the column.
            info.file_size = len(head) + arr.nbytes
            with zf.open(info, mode="w") as dest:
                dest.write(head)
                dest.write(body)
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


def temp_prefix() -> str:
    """Name prefix of this process's temp files (``clean_stale_temps`` reads host and pid)."""
    return f".tmp-{socket.gethostname()}-{os.getpid()}-"


def _discard(paths) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def _write_temp(folder: str, data, fsync: bool) -> str:
    """A new temp file in ``folder`` holding ``data`` (bytes, or a sequence of bytes-like
    parts written in order), ordinary permissions, fsynced if asked; its path."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=temp_prefix())
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; shards are ordinary files
        with os.fdopen(fd, "wb") as f:
            for part in (data,) if isinstance(data, bytes | bytearray | memoryview) else data:
                f.write(part)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        _discard([tmp])
        raise
    return tmp


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename,
    so readers (and a killed run) see either the old file or the complete new one."""
    path = os.fspath(path)
    tmp = _write_temp(os.path.dirname(path) or ".", data, fsync=True)
    try:
        os.replace(tmp, path)
    except BaseException:
        _discard([tmp])
        raise


def _syncfs(fd: int) -> bool:
    """Flush the whole filesystem holding ``fd`` (Linux ``syncfs``); False where the call
    is missing, so the caller falls back to one ``fsync`` per file."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return False
    return fn(fd) == 0


def atomic_write_many(items) -> None:
    """Write many ``(path, data)`` files of one folder atomically (``data``: bytes, or a
    sequence of bytes-like parts written in order), with one filesystem
    flush for all of them instead of one ``fsync`` each (:func:`atomic_write` per file).

    Every file goes to a temp file first; after a single ``syncfs`` of the folder's
    filesystem (or an ``fsync`` per temp file where ``syncfs`` is missing) each temp file
    is renamed to its name. A reader, or a killed run, sees old files or complete new
    ones; a run killed before the renames leaves only temp files, which
    :func:`clean_stale_temps` removes.
    """
    items = [(os.fspath(p), d) for p, d in items]
    if not items:
        return
    folders = {os.path.dirname(p) or "." for p, _ in items}
    if len(folders) != 1:
        raise ValueError(f"atomic_write_many writes into one folder, got {sorted(folders)}")
    folder = folders.pop()
    temps: list[str] = []
    try:
        for _, data in items:
            temps.append(_write_temp(folder, data, fsync=False))
        dfd = os.open(folder, os.O_RDONLY)
        try:
            if not _syncfs(dfd):
                for tmp in temps:
                    fd = os.open(tmp, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
        finally:
            os.close(dfd)
        for (path, _), tmp in zip(items, temps, strict=True):
            os.replace(tmp, path)
    except BaseException:
        _discard(temps)
        raise


LOCK_NAME = ".physim.lock"  # advisory lock file of a dataset folder (see folder_lock)


@contextlib.contextmanager
def folder_lock(folder):
    """Hold the exclusive advisory lock of ``folder`` (``flock`` on ``folder/.physim.lock``)
    for the ``with`` block; waits, saying so on stderr, while another process holds it."""
    fd = os.open(os.path.join(folder, LOCK_NAME), os.O_CREAT | os.O_RDWR, _FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"physim: waiting for another process writing {folder} ...", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


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
        self._derived: dict[str, np.ndarray] = {}  # compact storage: re-simulated columns
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
        if "storage" in self.meta:
            self._expand(self.meta["storage"])

    def _expand(self, storage) -> None:
        """Re-simulate a compact shard's states (:func:`physim.columns.expand_compact`)
        and check them against its digest."""
        need = ("radii", "masses", "positions0", "velocities0")
        if not isinstance(storage, dict) or storage.get("kind") != "compact" or any(
                k not in self._cols for k in need):
            raise ShardError(f"shard {self.path}: unknown storage {storage!r} or missing "
                             f"columns {[k for k in need if k not in self._cols]}")
        try:
            cols = expand_compact(self.__getitem__, storage)
        except (KeyError, TypeError, ValueError) as e:
            raise ShardError(f"shard {self.path}: compact states cannot be re-simulated: "
                             f"{e}") from None
        if derived_digest(cols) != storage.get("digest"):
            raise ShardError(
                f"shard {self.path}: re-simulated states differ from the digest written "
                "with them (written by a physim whose simulator differs from this one?); "
                "regenerate it, or read it with the physim that wrote it")
        for name, a in cols.items():
            a.setflags(write=False)
            self._derived[name] = a
            self._cols[name] = (None, a.shape, a.dtype, a.size)

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
        if name in self._derived:
            return self._derived[name]
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
