"""Generated videos in: discovery, decoding, array layouts, panels and frame ranges.

Everything :mod:`evals.core` needs to turn what a user hands over into frames
(T, R, R, 3) uint8 aligned with the truth, and nothing that scores. Files:

- a folder of ``{id}.npy`` / ``{id}.npz`` (uint8, or float) or ``{id}.mp4`` files, ids
  being the truth dataset's video ids; or the paper's sample names
  ``{chunk:05d}-{local:05d}.mp4`` (HDF5 chunk and index inside it), mapped to ids through
  the truth split's HDF5 export order (:func:`paper_name_ids`);
- the paper's HDF5 layout (a ``.hdf5`` file, or a folder holding one): ``video_streams``
  groups of mp4 bytes, matched by ``id_streams`` when present, else by order.

Arrays (the library route, :func:`as_frames`): uint8 in 0-255 or float in
``value_range`` (default [0, 1]), axes ``"THWC"`` (default), ``"TCHW"`` or ``"CTHW"``
(channel axis of size 3, RGB order).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np

VIDEO_EXT = (".npy", ".npz", ".mp4")
HDF5_EXT = (".hdf5", ".h5")
ARRAY_LAYOUTS = ("THWC", "TCHW", "CTHW")
LAYOUTS = ("video", "side-by-side")
FRAME_MODES = ("full", "rollout", "paper31")
PAPER_NAME = re.compile(r"^(\d{5})-(\d{5})$")
HDF5_CHUNK = 1000  # videos per chunk of physim's (and the paper's) HDF5 exports


class EvalInputError(ValueError):
    """Generated videos that cannot be scored as asked (the message names the problem)."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Where one generated video is: a file, or entry ``index`` of HDF5 chunk ``chunk``."""

    path: Path
    kind: str  # "npy" | "npz" | "mp4" | "hdf5"
    chunk: str = ""
    index: int = 0

    @property
    def what(self) -> str:
        return f"{self.path}" + (f"[{self.chunk}][{self.index}]" if self.kind == "hdf5" else "")


@dataclasses.dataclass(frozen=True)
class Video:
    """One generated video as read, before panels or frame ranges are applied.

    Attributes:
      frames: (T, H, W, 3) uint8 RGB, row 0 at the top (world y up).
      luma: (T, H, W) float32 0-255 luma straight from a codec's luma plane (mp4 sources,
        see :func:`decode_mp4_luma`), else None.
      kind: ``"array"``, ``"npy"``, ``"npz"``, ``"mp4"`` or ``"hdf5"``.
    """

    frames: np.ndarray
    luma: np.ndarray | None = None
    kind: str = "array"


# --------------------------------------------------------------------------- arrays


def as_frames(a, what: str = "video", array_layout: str = "THWC",
              value_range=(0.0, 1.0)) -> np.ndarray:  # fmt: skip
    """(T, H, W, 3) uint8 frames of an array in any documented layout.

    Args:
      a: uint8 (0-255) or float (in ``value_range``) array, axes ``array_layout``.
      what: name used in error messages.
      array_layout: ``"THWC"``, ``"TCHW"`` (PyTorch per-frame) or ``"CTHW"``.
      value_range: (low, high) of float input; ``(-1, 1)`` for diffusion-style outputs.

    Raises:
      EvalInputError naming the problem (dtype, range, shape, non-finite values).
    """
    a = np.asarray(a)
    if array_layout not in ARRAY_LAYOUTS:
        raise EvalInputError(f"unknown array layout {array_layout!r}; known: {ARRAY_LAYOUTS}")
    if a.ndim != 4:
        raise EvalInputError(f"{what}: expected 4-D frames ({array_layout}), got shape {a.shape}")
    if array_layout == "TCHW":
        a = a.transpose(0, 2, 3, 1)
    elif array_layout == "CTHW":
        a = a.transpose(1, 2, 3, 0)
    if a.shape[-1] != 3:
        raise EvalInputError(
            f"{what}: expected 3 colour channels in layout {array_layout}, got shape {a.shape}"
            + (" (channels first? pass array_layout='TCHW', --array-layout TCHW)"
               if a.shape[1] == 3 else "")
        )
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if np.issubdtype(a.dtype, np.floating):
        lo, hi = float(value_range[0]), float(value_range[1])
        if not hi > lo:
            raise EvalInputError(f"value_range must be (low, high), low < high: {value_range}")
        tol = 1e-3 * (hi - lo)
        if not np.all(np.isfinite(a)) or a.min() < lo - tol or a.max() > hi + tol:
            raise EvalInputError(
                f"{what}: float frames must be finite and in [{lo:g}, {hi:g}] "
                f"(got [{np.nanmin(a):.3g}, {np.nanmax(a):.3g}])"
            )
        x = (a.astype(np.float64) - lo) / (hi - lo)
        return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    raise EvalInputError(f"{what}: frames must be uint8 or float, got {a.dtype}")


def as_video(v, what: str, array_layout: str = "THWC", value_range=(0.0, 1.0)) -> Video:
    """A :class:`Video` of an array or a :class:`Video` (its frames validated)."""
    if isinstance(v, Video):
        return dataclasses.replace(v, frames=as_frames(v.frames, what))
    return Video(as_frames(v, what, array_layout, value_range))


def select_panel(v: Video, layout: str, panel: int, what: str) -> Video:
    """The scored panel of a video: the frame itself (``"video"``, square frames only), or
    panel ``panel`` of a side-by-side frame k squares wide (``"side-by-side"``)."""
    t, h, w = v.frames.shape[:3]
    if layout == "video":
        if w != h:
            hint = (f"; if these are {w // h} side-by-side panels pass --layout side-by-side"
                    if w % h == 0 else "")  # fmt: skip
            raise EvalInputError(f"{what}: frames are {h}x{w}, not square{hint}")
        return v
    if layout != "side-by-side":
        raise EvalInputError(f"unknown layout {layout!r}; known: {LAYOUTS}")
    if w % h or w == h:
        raise EvalInputError(f"{what}: --layout side-by-side needs frames k >= 2 squares wide, "
                             f"got {h}x{w}")  # fmt: skip
    k = w // h
    if not -k <= panel < k:
        raise EvalInputError(f"{what}: panel {panel} out of range for {k} panels")
    p = panel % k
    luma = None if v.luma is None else np.ascontiguousarray(v.luma[:, :, p * h : (p + 1) * h])
    return Video(np.ascontiguousarray(v.frames[:, :, p * h : (p + 1) * h]), luma, v.kind)


def expected_frames(mode: str, n_true: int, n_cond: int) -> int:
    """Frames a generated video holds in frame mode ``mode`` for a truth of ``n_true``."""
    return {"full": n_true, "rollout": n_true - n_cond, "paper31": n_true - 1}[mode]


def frames_hint(n: int, n_true: int, n_cond: int) -> str:
    """Which ``--frames`` mode a video of ``n`` frames looks like (for error messages)."""
    for mode in FRAME_MODES:
        if n == expected_frames(mode, n_true, n_cond) and mode != "full":
            return f" (pass --frames {mode} if that is what the files hold)"
    return ""


def rgb_luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma (T, H, W) float32 of RGB frames (T, H, W, 3) uint8."""
    return (frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(
        np.float32
    )


# --------------------------------------------------------------------------- files


def _hdf5_sources(path: Path, truth_ids: list[str]) -> dict[str, Source]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "video_streams" not in f:
                raise EvalInputError(f"{path}: no 'video_streams' group (not the paper's layout)")
            chunks = sorted(f["video_streams"].keys())
            entries = [(c, j) for c in chunks for j in range(len(f["video_streams"][c]))]
            if "id_streams" in f:
                ids = [
                    x.decode() if isinstance(x, bytes) else str(x)
                    for c in chunks
                    for x in f["id_streams"][c][()]
                ]
            else:
                if len(entries) != len(truth_ids):
                    raise EvalInputError(
                        f"{path} has {len(entries)} videos and no id_streams, so they are "
                        f"matched by order, but the truth has {len(truth_ids)}"
                    )
                ids = list(truth_ids)
    except OSError as e:
        raise EvalInputError(f"{path} is not a readable HDF5 file ({e})") from None
    return {i: Source(path, "hdf5", c, j) for i, (c, j) in zip(ids, entries, strict=True)}


def discover(gen, truth_ids: list[str]) -> dict[str, Source]:
    """Map name -> :class:`Source` of everything in ``gen`` (folder or HDF5 file).

    Names are file stems (video ids, or the paper's ``{chunk:05d}-{local:05d}``; see
    :func:`paper_name_ids`) or the ids of an HDF5 file.
    """
    gen = Path(gen)
    if gen.is_file() and gen.suffix in HDF5_EXT:
        return _hdf5_sources(gen, truth_ids)
    if not gen.is_dir():
        raise EvalInputError(f"generated videos {gen} is neither a folder nor an HDF5 file")
    out: dict[str, Source] = {}
    # Leftovers of a killed writer (".tmp-PID-*" of exports, "{id}.npy.tmp.npy" of sample)
    # are not videos: a re-run replaces them.
    files = [p for p in sorted(gen.iterdir())
             if not p.name.startswith(".") and not p.stem.endswith(".tmp")]
    for p in (p for p in files if p.suffix in HDF5_EXT):
        out.update(_hdf5_sources(p, truth_ids))
    dup = []
    for p in files:
        if p.suffix in VIDEO_EXT and p.is_file():
            if p.stem in out:
                dup.append(p.name)
            out[p.stem] = Source(p, p.suffix[1:])
    if dup:
        raise EvalInputError(f"{gen}: several files for the same id: {dup[:10]}")
    if not out:
        raise EvalInputError(f"{gen} holds no .npy, .npz, .mp4 or .hdf5 videos")
    return out


def paper_name_ids(names, truth_ids: list[str], n_splits: int = 1) -> dict[str, str]:
    """Map the paper's sample names ``{chunk:05d}-{local:05d}`` to truth video ids.

    The paper names a sample after the HDF5 chunk (group ``video_streams/{chunk}``) and the
    index inside it; ``physim export --format hdf5`` writes one file per split, its chunks of
    :data:`HDF5_CHUNK` videos in the split's dataset order, so name (c, j) is video
    ``c * 1000 + j`` of the split. Names that are not paper names are left out.

    Args:
      names: candidate names (file stems).
      truth_ids: the ids of ONE split in dataset order.
      n_splits: splits the truth holds; above 1 the names are ambiguous (an error).

    Raises:
      EvalInputError when the truth has several splits or a name is past the split's end.
    """
    paper = [n for n in names if PAPER_NAME.match(n) and n not in set(truth_ids)]
    if not paper:
        return {}
    if n_splits != 1:
        raise EvalInputError(
            f"{len(paper)} files have the paper's chunk-local names (e.g. {paper[0]}.mp4), "
            f"which number the videos of one split, but the truth holds {n_splits} splits: "
            f"pass --split NAME"
        )
    out, past = {}, []
    for n in paper:
        c, j = (int(x) for x in PAPER_NAME.match(n).groups())
        i = c * HDF5_CHUNK + j
        if j >= HDF5_CHUNK or i >= len(truth_ids):
            past.append(n)
        else:
            out[n] = truth_ids[i]
    if past:
        raise EvalInputError(
            f"{len(past)} paper-named files point past the truth split's {len(truth_ids)} "
            f"videos (chunks of {HDF5_CHUNK}): {past[:10]}"
        )
    return out


def decode_mp4_luma(data) -> np.ndarray:
    """Luma plane (T, H, W) float32 in 0-255 (BT.601 full range) of mp4 bytes or a path.

    Read as raw yuv420p so that no chroma upsampling or RGB clipping touches it; the
    codec's limited range [16, 235] is mapped to [0, 255].
    """
    import tempfile

    import imageio_ffmpeg

    path, tmp = data, None
    if not isinstance(data, str | os.PathLike):
        with tempfile.NamedTemporaryFile(suffix=".mp4", delete=False) as f:
            f.write(bytes(data))
            path = tmp = f.name
    try:
        gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="yuv420p", bits_per_pixel=12)
        w, h = next(gen)["size"]
        ys = [np.frombuffer(x, np.uint8)[: w * h].reshape(h, w) for x in gen]
    finally:
        if tmp is not None:
            os.unlink(tmp)
    return _full_range(np.stack(ys))


def _full_range(y: np.ndarray) -> np.ndarray:
    """Codec luma (limited range [16, 235], uint8) as float32 in 0-255 (full range)."""
    return (y.astype(np.float32) - 16.0) * (255.0 / 219.0)


def decode_mp4_both(data) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3) uint8, luma (T, H, W) float32) of mp4 bytes or a path, from
    one decode: a single ffmpeg process writes the RGB frames (the same command as
    ``imageio``'s reader: ``-pix_fmt rgb24 -vcodec rawvideo -f image2pipe``, so the same
    bytes as :func:`physim.video.decode_mp4`) and the raw yuv420p planes (the luma of
    :func:`decode_mp4_luma`) as two outputs of one demux and decode."""
    import re
    import subprocess
    import tempfile

    import imageio_ffmpeg

    with tempfile.TemporaryDirectory(prefix="physim-mp4-") as d:
        path = data
        if not isinstance(data, str | os.PathLike):
            path = os.path.join(d, "in.mp4")
            with open(path, "wb") as f:
                f.write(bytes(data))
        yuv = os.path.join(d, "planes.yuv")
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path),
               "-map", "0:v:0", "-pix_fmt", "rgb24", "-vcodec", "rawvideo", "-f", "image2pipe",
               "pipe:1",
               "-map", "0:v:0", "-pix_fmt", "yuv420p", "-vcodec", "rawvideo", "-f", "rawvideo",
               "-y", yuv]  # fmt: skip
        run = subprocess.run(cmd, capture_output=True)
        log = run.stderr.decode(errors="replace")
        size = re.search(r"Stream #0:\d.*?Video:.*?, (\d{2,5})x(\d{2,5})[,\s\[]", log)
        if run.returncode or size is None:
            tail = log.strip().splitlines()[-1:] or ["no output"]
            raise ValueError(f"ffmpeg could not decode it: {tail[0]}")
        w, h = int(size.group(1)), int(size.group(2))
        rgb = np.frombuffer(run.stdout, np.uint8)
        planes = np.fromfile(yuv, np.uint8)
    n = rgb.size // (h * w * 3)
    per = h * w + 2 * ((h + 1) // 2) * ((w + 1) // 2)
    if n == 0 or rgb.size != n * h * w * 3 or planes.size != n * per:
        raise ValueError(f"ffmpeg gave {rgb.size} RGB and {planes.size} yuv bytes for "
                         f"{w}x{h} frames")
    frames = rgb.reshape(n, h, w, 3)
    return frames, _full_range(planes.reshape(n, per)[:, : h * w].reshape(n, h, w))


def read_video(src, with_luma: bool = True, array_layout: str = "THWC",
               value_range=(0.0, 1.0)) -> Video:  # fmt: skip
    """Read one generated video file (a path or a :class:`Source`) as a :class:`Video`.

    mp4 data also yields its codec luma plane (``with_luma``), which the lossy parse uses;
    pass the returned Video to :func:`evals.evaluate_arrays` to score exactly as
    ``physim evaluate`` scores the file. No panel is split here. ``array_layout`` and
    ``value_range`` say how npy/npz arrays are stored (see :func:`as_frames`); decoded
    mp4 frames are always THWC uint8.

    Raises:
      EvalInputError: unreadable file, or frames that are not (T, H, W, 3) uint8/float.
    """
    from physim import video

    if not isinstance(src, Source):
        p = Path(src)
        if p.suffix not in VIDEO_EXT:
            raise EvalInputError(f"{p}: not a .npy, .npz or .mp4 file")
        src = Source(p, p.suffix[1:])
    what = src.what
    luma = None
    try:
        if src.kind == "npy":
            a = np.load(src.path, allow_pickle=False)
        elif src.kind == "npz":
            with np.load(src.path, allow_pickle=False) as z:
                keys = [k for k in ("frames", "video", "arr_0") if k in z.files] or z.files
                if not keys:
                    raise EvalInputError(f"{what}: empty npz")
                a = z[keys[0]]
        elif src.kind == "mp4":
            if with_luma:
                a, luma = decode_mp4_both(str(src.path))
            else:
                a = video.decode_mp4(str(src.path))
        else:
            import h5py

            with h5py.File(src.path, "r") as f:
                a = np.asarray(f["video_streams"][src.chunk][src.index])
            if a.ndim == 1:  # mp4 bytes
                raw = a.astype(np.uint8).tobytes()
                if with_luma:
                    a, luma = decode_mp4_both(raw)
                else:
                    a = video.decode_mp4(raw)
    except EvalInputError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure is an unreadable file
        raise EvalInputError(f"{what}: unreadable ({type(e).__name__}: {e})") from None
    if src.kind in ("npy", "npz") or (src.kind == "hdf5" and luma is None):
        a = as_frames(a, what, array_layout, value_range)
    else:
        a = as_frames(a, what)
    if luma is not None and luma.shape != a.shape[:3]:
        luma = None  # odd decoder output: fall back to RGB luma
    return Video(a, luma, src.kind)


class LazyVideos:
    """A read-only mapping id -> :class:`Video` that reads each file when asked.

    Keeps memory at one video however large the folder; a file that cannot be read
    raises :class:`EvalInputError` on access (the core counts it as unreadable).
    """

    def __init__(self, sources: dict[str, Source], array_layout: str = "THWC",
                 value_range=(0.0, 1.0)):  # fmt: skip
        self.sources = dict(sources)
        self.array_layout, self.value_range = array_layout, value_range

    def __contains__(self, key) -> bool:
        return key in self.sources

    def __iter__(self):
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.sources)

    def keys(self):
        return self.sources.keys()

    def __getitem__(self, key) -> Video:
        return read_video(self.sources[key], array_layout=self.array_layout,
                          value_range=self.value_range)  # fmt: skip

    def kind(self, key) -> str:
        return self.sources[key].kind

    def describe(self, key) -> str:
        return self.sources[key].what


# --------------------------------------------------------------------------- palette


def looks_lossless(frames: np.ndarray, colors: np.ndarray, background=(255, 255, 255)) -> bool:
    """Whether ``frames`` (T, H, W, 3) uint8 look like an exact render: every pixel that is
    not exactly the background or an object colour is an anti-aliased edge, i.e.

    - it lies next to (3x3) a pixel far from the background (an object or a strong blend):
      noise in the flat background is not (at most 0.5% of those pixels may be off);
    - an object's interior (pixels whose 3x3 neighbourhood is all near its colour) is
      mostly exactly its colour (a codec shifts interiors; tiny discs have none);
    - it is a blend of the background and an object colour (:func:`_edges_are_blends`).

    The share of edge pixels is not bounded: at 32 px a large disc's anti-aliased rim is
    more than 3% of the frame, and a fixed 3% classed exact copies as lossy."""
    f = np.asarray(frames)[:: max(1, len(frames) // 4)].astype(np.int32)  # (k, H, W, 3)
    pal = np.vstack([np.asarray(background, np.uint8)[None], np.asarray(colors, np.uint8)])
    weights = np.array([65536, 256, 1])
    known = np.isin(f @ weights, pal.astype(np.int32) @ weights)  # (k, H, W)
    bg = pal[0].astype(np.int32)
    strong = np.abs(f - bg).max(axis=-1) > 24  # objects and strong blends
    far = ~_window3(strong, np.logical_or)
    if far.any() and (~known & far).sum() > 0.005 * far.sum():
        return False
    for c in pal[1:].astype(np.int32):  # each object's interior (3x3 all near its colour)
        inner = _window3((np.abs(f - c).max(axis=-1) <= 24) & strong, np.logical_and)
        if inner.sum() >= 8 and (inner & (f == c).all(axis=-1)).sum() < 0.6 * inner.sum():
            return False  # a codec shifts interiors; a render keeps them exact
    return _edges_are_blends(f[~known].astype(np.uint8), pal)


def parse_preset(frames: np.ndarray, colors: np.ndarray, preset: str = "auto") -> str:
    """The parse preset for ``frames``: ``preset`` itself unless ``"auto"``, then
    ``"exact"`` for lossless renders (:func:`looks_lossless`) and ``"lossy"`` otherwise."""
    if preset != "auto":
        return preset
    return "exact" if looks_lossless(frames, colors) else "lossy"


def _window3(mask: np.ndarray, op) -> np.ndarray:
    """``op`` (``np.logical_or``: dilation, ``np.logical_and``: erosion) over each pixel's
    3x3 neighbourhood of ``mask`` (k, H, W) bool; outside the frame counts as False."""
    pad = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    h, w = mask.shape[1:]
    return op.reduce([pad[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)])


def _edges_are_blends(px: np.ndarray, pal: np.ndarray) -> bool:
    """Non-palette pixels of a lossless render lie on background-colour segments."""
    if len(px) == 0:
        return True
    bg = pal[0].astype(float)
    d = bg - px.astype(float)
    best = np.full(len(px), np.inf)
    for c in pal[1:].astype(float):
        e = bg - c
        a = np.clip(d @ e / (e @ e), 0, 1)
        best = np.minimum(best, np.linalg.norm(d - a[:, None] * e, axis=1))
    return bool(np.mean(best < 3.0) > 0.9)
