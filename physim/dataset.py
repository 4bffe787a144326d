"""Datasets on disk: open one, read records at random, render frames on demand.

A dataset folder holds ``manifest.json`` and one folder per split of shards (see
:mod:`physim.shards` for the columns and :mod:`physim.generate` for how they are made)::

    ds = physim.dataset.open("data/uniform")       # all splits; open(path, split="id") for one
    len(ds); rec = ds[0]                            # a physim.Record (positions (T,N,2), ...)
    ds.ids[:3]; ds.index("uniform-train-0000042")
    frames = ds.frames(0, resolution=64)            # (T, 64, 64, 3) uint8, rendered now

Shards are memory-mapped; each one is checked (size, sha256 against the manifest, column
shapes) the first time it is touched, and a bad one raises :class:`DatasetError` naming it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np

from physim import shards as sh
from physim import world
from physim.plan import MANIFEST_VERSION, make_spec
from physim.record import Record


class DatasetError(ValueError):
    """A dataset folder that cannot be read as asked (the message says why)."""


def generate(*args, **kwargs) -> dict:
    """Generate a split of a dataset; see :func:`physim.generate.generate`."""
    from physim.generate import generate as _generate

    return _generate(*args, **kwargs)


# Names that end up in output paths (video ids, the scenario, shard files): one plain path
# component each, so nothing read from a dataset can make a writer leave its --out folder.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(what: str, name) -> str:
    """``name`` if it is a safe single path component (``SAFE_NAME``, not ``..``), else
    ``DatasetError`` naming it."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise DatasetError(f"{what} {name!r} is not a plain name ([A-Za-z0-9._-], no '..', "
                           "no '/'): refusing a path outside the dataset")
    return name


def read_manifest(path) -> dict:
    """The manifest of dataset folder ``path``, after checking its format version."""
    p = Path(path) / "manifest.json"
    if not p.is_file():
        if Path(path).is_dir() and any(Path(path).glob("*/plan.json")):
            raise DatasetError(
                f"{path} has no manifest.json: its generation is incomplete; "
                "re-run the same `physim generate` command to finish it"
            )
        raise DatasetError(f"{path} is not a physim dataset (no manifest.json)")
    try:
        manifest = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{p} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "physim-dataset":
        raise DatasetError(f"{p} is not a physim dataset manifest")
    version = manifest.get("format_version")
    if version != MANIFEST_VERSION:
        raise DatasetError(
            f"{p} has unknown manifest format version {version!r}; "
            f"this physim reads version {MANIFEST_VERSION}"
        )
    check_name(f"{p}: scenario", manifest.get("scenario"))
    for split, body in (manifest.get("splits") or {}).items():
        check_name(f"{p}: split", split)
        for entry in body.get("shards", []):
            parts = str(entry.get("file", "")).split("/")
            for part in parts:
                check_name(f"{p}: shard file {entry.get('file')!r} component", part)
    return manifest


class Dataset:
    """Random access over the videos of one or all splits of a dataset folder.

    Videos are ordered split by split (sorted names), shard by shard. Picklable (open shard
    maps are dropped and reopened), so it can feed worker processes.

    Args:
      path: the dataset folder.
      split: one split, or None for all.
      verify: check each shard's sha256 against the manifest when first opened.
    """

    def __init__(self, path, split: str | None = None, verify: bool = True):
        self.path = Path(path)
        self.manifest = read_manifest(path)
        known = sorted(self.manifest["splits"])
        if split is not None and split not in known:
            raise DatasetError(f"{path} has no split {split!r}; it has {known}")
        self.splits = [split] if split is not None else known
        self.verify = verify
        self._entries = [e for s in self.splits for e in self.manifest["splits"][s]["shards"]]
        self._entry_split = [s for s in self.splits for _ in self.manifest["splits"][s]["shards"]]
        counts = [int(e["count"]) for e in self._entries]
        self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self._open: dict[int, sh.Shard] = {}
        self._ids: list[str] | None = None
        self._spec = None

    # -- metadata ----------------------------------------------------------------------
    @property
    def scenario(self) -> str:
        return self.manifest["scenario"]

    @property
    def seed(self) -> int:
        return int(self.manifest["seed"])

    @property
    def n_frames(self) -> int:
        return int(self.manifest["conventions"]["frames"])

    @property
    def max_bodies(self) -> int:
        return max(int(self.manifest["splits"][s]["max_bodies"]) for s in self.splits)

    @property
    def spec(self):
        """The scenario spec the dataset was made with (None if it cannot be rebuilt here)."""
        if self._spec is None:
            try:
                self._spec = make_spec(self.scenario, self.manifest["spec"])
            except (ValueError, TypeError, ImportError):
                self._spec = False
        return self._spec or None

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, splits={self.splits}, videos={len(self)})"

    # -- shards ------------------------------------------------------------------------
    def shard(self, s: int) -> sh.Shard:
        """Shard number ``s`` (in this view's order), opened and checked on first use."""
        if s in self._open:
            return self._open[s]
        entry = self._entries[s]
        path = self.path / entry["file"]
        if not path.is_file():
            raise DatasetError(f"shard {path} is missing")
        # A plain name can still be a symbolic link out of the folder: read only what lies in it.
        real = path.resolve()
        if not real.is_relative_to(self.path.resolve()):
            raise DatasetError(f"shard {path} is a link to {real}, outside the dataset "
                               f"{self.path}: refusing to read it")
        if path.stat().st_size != entry["bytes"]:
            raise DatasetError(
                f"shard {path} has {path.stat().st_size} bytes, the manifest says {entry['bytes']}"
            )
        if self.verify and sh.file_sha256(path) != entry["sha256"]:
            raise DatasetError(f"shard {path} is corrupt: its sha256 does not match the manifest")
        try:
            shard = sh.Shard(path)
            shard.check(count=int(entry["count"]), n_frames=self.n_frames)
        except sh.ShardError as e:
            raise DatasetError(str(e)) from None
        # The shard must be the one the entry names: its split and video indices (an entry
        # pointing at another valid shard would score some videos twice, others never).
        idx = shard["index"]
        got = (shard.meta.get("split"), int(idx[0]) if len(idx) else None,
               int(idx[-1]) if len(idx) else None)
        want = (self._entry_split[s], entry.get("first_index"), entry.get("last_index"))
        if got != want:
            raise DatasetError(f"shard {path} holds split {got[0]!r} videos {got[1]}..{got[2]}, "
                               f"the manifest says {want[0]!r} {want[1]}..{want[2]}")
        self._open[s] = shard
        return shard

    def verify_all(self) -> None:
        """Open and check every shard (raises :class:`DatasetError` on the first bad one)."""
        for s in range(len(self._entries)):
            self.shard(s)

    def locate(self, i) -> tuple[int, int]:
        """(shard number, row in shard) of video ``i``; negative ``i`` counts from the end."""
        if isinstance(i, bool) or not isinstance(i, int | np.integer):
            raise TypeError(f"dataset indices must be integers, got {type(i).__name__}")
        n = len(self)
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"video {i} out of range for a dataset of {n}")
        s = int(np.searchsorted(self._starts, j, side="right")) - 1
        return s, j - int(self._starts[s])

    def locate_many(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """(shard numbers, rows) of videos ``indices`` (int array, 0 <= i < len), as
        :meth:`locate` gives them one by one."""
        idx = np.asarray(indices, dtype=np.int64)
        bad = idx[(idx < 0) | (idx >= len(self))]
        if bad.size:
            raise IndexError(f"video {bad[0]} out of range for a dataset of {len(self)}")
        s = np.searchsorted(self._starts, idx, side="right") - 1
        return s, idx - self._starts[s]

    # -- access ------------------------------------------------------------------------
    def __getitem__(self, i) -> Record:
        s, k = self.locate(i)
        return self.shard(s).record(k)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def states(self, i) -> dict[str, np.ndarray]:
        """Drawing arrays of video ``i`` (read-only views): positions (T,N,2), velocities,
        angles (T,N), radii (N,), shape and colour codes (N,)."""
        s, k = self.locate(i)
        return self.shard(s).states(k)

    @property
    def ids(self) -> list[str]:
        """Ids of all videos, in order."""
        if self._ids is None:
            ids = []
            for s in range(len(self._entries)):
                shard = self.shard(s)
                ids.extend(check_name(f"{self.path}: video id", shard.video_id(k))
                           for k in range(len(shard)))
            self._ids = ids
        return self._ids

    def index(self, video_id: str) -> int:
        """Position of the video with id ``video_id``; ``KeyError`` if absent."""
        m = re.fullmatch(r"(.+)-(\d+)", video_id)
        if m and video_id.startswith(self.scenario + "-"):
            split, idx = m.group(1)[len(self.scenario) + 1 :], int(m.group(2))
            for s, e in enumerate(self._entries):
                if not (e["file"].startswith(split + "/") and e["count"]):
                    continue
                if e["first_index"] <= idx <= e["last_index"]:
                    shard = self.shard(s)
                    k = int(np.searchsorted(shard["index"], idx))
                    if k < len(shard) and shard.video_id(k) == video_id:
                        return int(self._starts[s]) + k
        try:
            return self.ids.index(video_id)
        except ValueError:
            raise KeyError(f"no video {video_id!r} in {self.path}") from None

    # -- rendering ---------------------------------------------------------------------
    def geometry(self, i, states: dict | None = None):
        """The :class:`physim.render.Geometry` that draws video ``i`` (body frame).

        A scenario spec may define ``geometry(record)`` (composite bodies); otherwise one
        primitive per object, from its shape, radius and colour (``states``: this video's
        :meth:`states`, if already at hand).
        """
        spec = self.spec
        if spec is not None and hasattr(spec, "geometry"):
            return spec.geometry(self[i])
        st = self.states(i) if states is None else states
        return object_geometry(st["radii"], st["shapes"], st["colors"])

    def frames(self, i, resolution: int = world.DEFAULT_RESOLUTION, n_frames=None, flip=False):
        """Render video ``i``: (T, R, R, 3) uint8 (first ``n_frames`` frames if given;
        mirrored about x = 5 with ``flip``, exactly as ``self[i].flip_horizontal()``)."""
        from physim import render

        st = self.states(i)
        t = st["positions"].shape[0] if n_frames is None else int(n_frames)
        if not 1 <= t <= st["positions"].shape[0]:
            raise ValueError(f"n_frames must be in [1, {st['positions'].shape[0]}], got {n_frames}")
        pos, ang, geom = st["positions"][:t], st["angles"][:t], self.geometry(i, st)
        if flip:
            pos, ang, geom = flip_states(pos, ang, geom)
        return render.render_bodies(geom, pos, ang, resolution)

    # -- pickling (worker processes) ---------------------------------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_open"] = {}
        state["_spec"] = None
        state["_ids"] = None
        return state

    def close(self) -> None:
        for shard in self._open.values():
            shard.close()
        self._open = {}


COLOR_TABLE: tuple[str, ...] = tuple(world.PALETTE)
_RGB = np.array([world.PALETTE[c] for c in COLOR_TABLE], dtype=np.uint8)
_UNIT_SQUARE = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def object_geometry(radii, shape_codes, color_codes):
    """Geometry of one primitive per object, from shape/colour codes: the same table as
    ``render.Geometry.from_objects`` (ball: circle, square: half side r, ring: inner radius
    ``RING_INNER * r``), built without per-object validation (the loader's fast path)."""
    from physim import render

    radii = np.asarray(radii, dtype=np.float64)
    n = radii.shape[0]
    kind = np.empty(n, dtype=np.int32)
    params = np.zeros((n, 4))
    vstart = np.zeros(n, dtype=np.int32)
    vcount = np.zeros(n, dtype=np.int32)
    verts = []
    for k in range(n):
        r, shape = float(radii[k]), world.SHAPES[int(shape_codes[k])]
        if shape == "ball":
            kind[k], params[k, 2] = render.CIRCLE, r
        elif shape == "ring":
            kind[k], params[k, 2], params[k, 3] = render.RING, r, world.RING_INNER * r
        elif shape == "square":
            kind[k], vstart[k], vcount[k] = render.POLYGON, 4 * len(verts), 4
            verts.append(_UNIT_SQUARE * r)
        else:
            raise ValueError(f"cannot draw shape {shape!r}")
    arrays = {
        "kind": kind,
        "body": np.arange(n, dtype=np.int32),
        "params": params,
        "verts": np.concatenate(verts) if verts else np.zeros((0, 2)),
        "vert_start": vstart,
        "vert_count": vcount,
        "colors": _RGB[np.asarray(color_codes, dtype=np.intp)],
    }
    if not _FAST_GEOMETRY:
        return render.Geometry(**arrays)
    # Valid by construction (one body per primitive, so each is its own layer): skip the
    # constructor's checks, which cost more than drawing a small video.
    return _unchecked(**arrays, layer_end=np.arange(1, n + 1, dtype=np.int32), n_bodies=n)


def _geometry_fields() -> set[str]:
    from physim.geometry import Geometry

    return {f.name for f in dataclasses.fields(Geometry)}


_KNOWN_FIELDS = {"kind", "body", "params", "verts", "vert_start", "vert_count", "colors",
                 "layer_end", "n_bodies"}  # fmt: skip
_FAST_GEOMETRY = _geometry_fields() == _KNOWN_FIELDS


def _unchecked(**values):
    """A Geometry with the given (already valid, correctly typed) field values."""
    from physim.geometry import Geometry

    g = object.__new__(Geometry)
    for k, v in values.items():
        object.__setattr__(g, k, v)
    return g


def flip_states(positions, angles, geometry):
    """Mirror a scene about x = WORLD_SIZE / 2: positions (T,N,2), angles (T,N) and the
    body-frame geometry (its local x negated, so asymmetric bodies mirror too)."""
    pos = np.array(positions, dtype=np.float64)
    pos[..., 0] = world.WORLD_SIZE - pos[..., 0]
    params = geometry.params.copy()
    params[:, 0] = -params[:, 0]
    verts = geometry.verts.copy()
    verts[:, 0] = -verts[:, 0]
    if _FAST_GEOMETRY:  # mirroring keeps a valid table valid
        fields = {k: getattr(geometry, k) for k in _KNOWN_FIELDS}
        g = _unchecked(**{**fields, "params": params, "verts": verts})
    else:
        g = dataclasses.replace(geometry, params=params, verts=verts)
    return pos, -np.asarray(angles, dtype=np.float64), g


def open(path, split: str | None = None, verify: bool = True) -> Dataset:  # noqa: A001
    """Open the dataset folder ``path`` (see :class:`Dataset`)."""
    if not os.path.isdir(path):
        raise DatasetError(f"{path} is not a directory")
    return Dataset(path, split=split, verify=verify)
