"""Video files: mp4 / GIF / PNG / npy encoding, contact sheets, and dataset exports.

Frames are ``(T, H, W, 3)`` uint8 arrays throughout. mp4 is H.264 (libx264, yuv420p: a few
levels of error on flat colours from the chroma subsampling), encoded in-process by PyAV at
the export quality and through imageio-ffmpeg otherwise, decoded by imageio-ffmpeg; GIF and
PNG go through Pillow. Exports render every video on the fly from the dataset's states:

- ``npy``: ``OUT/{id}.npy``, uint8 (T, H, W, 3), loadable with ``allow_pickle=False``;
- ``mp4``: ``OUT/{id}.mp4``;
- ``hdf5``: ``OUT/{scenario}_{split}.hdf5`` per split in the paper's merged layout: groups
  ``video_streams``, ``position_streams`` and ``init_streams``, each holding one dataset per
  chunk of 1000 videos named ``00000``, ``00001``, ... (chunk c, video j is
  ``f["video_streams"]["%05d" % c][j]``). ``video_streams`` chunks are vlen uint8 mp4 bytes
  (imageio's default 10 fps, like the paper); ``position_streams`` are world-unit positions
  (M, T, 2) for one body, (M, T, N, 2) for more; ``init_streams`` are rows
  ``[r_1..r_N, |v_1|..|v_N|]`` (radii, then initial speeds), the paper's ``[r, v]`` and
  ``[r1, r2, v1, v2]``. Our additions: ``id_streams`` (video ids), ``level_streams``
  (OOD level names) and ``param_streams`` (M, P) with the parameter names as an attribute.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

EXPORT_CHUNK_BYTES = 128 << 20  # frames rendered ahead of one filesystem flush (export)
MP4_FPS = 10  # imageio-ffmpeg's default, which the paper's HDF5 files used
GIF_FPS = 10
HDF5_CHUNK = 1000


def _check_frames(frames) -> np.ndarray:
    f = np.asarray(frames)
    if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8 or f.shape[0] < 1:
        raise ValueError(f"frames must be uint8 (T, H, W, 3) with T >= 1, got {f.dtype} {f.shape}")
    return f


def encode_mp4(frames, fps: int = MP4_FPS, quality: int = 10) -> bytes:
    """mp4 (H.264, yuv420p) bytes of ``frames`` (T, H, W, 3) uint8; H and W even.

    ``quality`` is imageio-ffmpeg's 0..10 scale. The default 10 keeps parsed velocities
    within 0.005 of the lossless frames; imageio's own default (5), which the paper's
    files used, moves them by about 0.03-0.05 (measured with evals).

    Quality 10 (crf 0: lossless in YUV, the exports' setting) is encoded in this process by
    PyAV's libx264 with one encoder thread and the colour conversion of the ffmpeg command
    line (bicubic swscale to yuv420p): no ffmpeg process per video, and the file decodes
    to the same frames as ``imageio.v3.imwrite(..., codec="libx264")`` writes (tested).
    Lossy qualities go through that imageio-ffmpeg command line: the libx264 of PyAV's
    wheels (av 18.1) gives different bytes from run to run with its macroblock-tree rate
    control (4 distinct files in 8 encodes of one video at crf 25; lossless has none).
    """
    f = _check_frames(frames)
    if f.shape[1] % 2 or f.shape[2] % 2:
        raise ValueError(f"mp4 needs even frame sizes, got {f.shape[1]}x{f.shape[2]}")
    if not 0 <= quality <= 10:
        raise ValueError(f"mp4 quality must be in [0, 10], got {quality}")
    if quality != 10:
        import imageio.v3 as iio

        return iio.imwrite("<bytes>", f, extension=".mp4", fps=fps, codec="libx264",
                           macro_block_size=2, quality=quality)
    import io

    import av
    from av.video.reformatter import VideoReformatter

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=int(fps))
        stream.width, stream.height = f.shape[2], f.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0"}  # imageio-ffmpeg's quality 10
        stream.codec_context.thread_count = 1
        to_yuv = VideoReformatter()  # one swscale context for all frames (one per frame
        for frame in f:              # costs 10x the conversion)
            rgb = av.VideoFrame.from_ndarray(frame, format="rgb24")
            out.mux(stream.encode(to_yuv.reformat(rgb, format="yuv420p",
                                                  interpolation="BICUBIC")))
        out.mux(stream.encode())
    return buf.getvalue()


def decode_mp4(data: bytes) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of mp4 bytes (or an mp4 file path)."""
    import imageio.v3 as iio

    if isinstance(data, np.ndarray):
        data = data.tobytes()
    return np.asarray(iio.imread(data, extension=".mp4"))


def encode_gif(frames, fps: int = GIF_FPS) -> bytes:
    """Looping GIF bytes of ``frames`` (T, H, W, 3) uint8."""
    import imageio.v3 as iio

    f = _check_frames(frames)
    return iio.imwrite("<bytes>", f, extension=".gif", duration=1000 / fps, loop=0)


def encode_png(image) -> bytes:
    """PNG bytes of one image (H, W, 3) uint8 (lossless)."""
    import imageio.v3 as iio

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {img.dtype} {img.shape}")
    return iio.imwrite("<bytes>", img, extension=".png")


def read_image(path) -> np.ndarray:
    """An image or animation file as uint8 array (PNG: (H, W, 3); GIF: (T, H, W, 3))."""
    import imageio.v3 as iio

    arr = np.asarray(iio.imread(path, index=None if str(path).endswith(".gif") else 0))
    return arr[..., :3]


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` atomically (temp file + rename)."""
    from physim.shards import atomic_write

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


def tile(images, cols: int, pad: int = 2, fill: int = 128) -> np.ndarray:
    """Tile images (K, H, W, 3) uint8 into a grid with ``cols`` columns and ``pad``-pixel
    gutters of grey ``fill``: (rows*(H+pad)+pad, cols*(W+pad)+pad, 3)."""
    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[0] < 1:
        raise ValueError(f"tile needs (K, H, W, 3) images, got {imgs.shape}")
    k, h, w, _ = imgs.shape
    cols = max(1, min(cols, k))
    rows = -(-k // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), fill, dtype=np.uint8)
    for i in range(k):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = imgs[i]
    return out


def contact_sheet(frames, cols: int = 8) -> np.ndarray:
    """All frames of one video (T, H, W, 3) tiled in time order, ``cols`` per row."""
    return tile(_check_frames(frames), cols)


def mosaic(videos, cols: int) -> np.ndarray:
    """Videos (K, T, H, W, 3) tiled frame by frame: (T, H', W', 3), one grid per frame."""
    v = np.asarray(videos)
    return np.stack([tile(v[:, t], cols) for t in range(v.shape[1])])


# --------------------------------------------------------------------------- exports


def export(
    ds, fmt: str, out, resolution: int | None = None, progress: bool = True, workers: int = 1
) -> int:
    """Export every video of dataset ``ds`` as ``fmt`` (npy, mp4, hdf5) into folder ``out``.

    ``workers`` threads render and encode in parallel (PyAV's encoder releases the GIL).
    Returns the number of videos written. Files are written atomically; existing files of
    the same name are replaced.
    """
    from physim import world

    if fmt not in ("npy", "mp4", "hdf5"):
        raise ValueError(f"unknown export format {fmt!r}; known: npy, mp4, hdf5")
    res = world.DEFAULT_RESOLUTION if resolution is None else resolution
    if isinstance(res, bool) or int(res) != res or res < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    if fmt in ("mp4", "hdf5") and res % 2:
        raise ValueError(f"mp4 needs an even resolution, got {res}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"export output {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise ValueError(f"export output {out} is not writable")
    from physim.shards import atomic_write_many, clean_stale_temps, npy_parts

    clean_stale_temps(out)  # what killed exports of this host left behind
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    bar = _bar(len(ds), f"export {fmt}", progress)
    ids = ds.ids

    def one(i):
        frames = ds.frames(i, resolution=res)
        if fmt == "npy":
            return out / f"{ids[i]}.npy", npy_parts(frames)
        return out / f"{ids[i]}.mp4", encode_mp4(frames)

    # Videos in chunks of about EXPORT_CHUNK_BYTES of frames: rendered and encoded by the
    # threads, then written with one filesystem flush per chunk (atomic rename per file).
    per_video = max(1, ds.n_frames * res * res * 3)
    chunk = max(1, min(256, EXPORT_CHUNK_BYTES // per_video))
    try:
        with ThreadPoolExecutor(max_workers=int(workers)) as pool:
            if fmt == "hdf5":
                for split in ds.splits:
                    path = out / f"{ds.scenario}_{split}.hdf5"
                    _export_hdf5(ds, split, path, res, bar, pool)
            else:
                for start in range(0, len(ds), chunk):
                    items = list(pool.map(one, range(start, min(start + chunk, len(ds)))))
                    atomic_write_many(items)
                    bar.update(len(items))
    finally:
        bar.close()
    return len(ds)


def _bar(total, desc, progress):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="video", desc=desc, disable=not progress)


def _export_hdf5(ds, split, path: Path, res: int, bar, pool) -> None:
    import h5py

    from physim.dataset import Dataset

    sub = Dataset(ds.path, split=split, verify=ds.verify)
    n = len(sub)
    from physim.shards import temp_prefix

    tmp = path.with_name(temp_prefix() + path.name)
    try:
        with h5py.File(tmp, "w") as f:
            groups = {
                g: f.create_group(g)
                for g in ("video_streams", "position_streams", "init_streams",
                          "id_streams", "level_streams", "param_streams")
            }  # fmt: skip
            f.attrs["scenario"] = sub.scenario
            f.attrs["split"] = split
            f.attrs["seed"] = sub.seed
            f.attrs["resolution"] = res
            for c, start in enumerate(range(0, n, HDF5_CHUNK)):
                idx = range(start, min(start + HDF5_CHUNK, n))
                recs = [sub[i] for i in idx]
                name = f"{c:05d}"
                vids = groups["video_streams"].create_dataset(
                    name, shape=(len(idx),), dtype=h5py.vlen_dtype(np.dtype("uint8"))
                )

                def mp4(i):
                    return np.frombuffer(encode_mp4(sub.frames(i, resolution=res)), np.uint8)

                for j, data in enumerate(pool.map(mp4, idx)):
                    vids[j] = data
                    bar.update(1)
                pos = _stack_padded([r.positions for r in recs])
                groups["position_streams"].create_dataset(
                    name, data=pos[:, :, 0] if pos.shape[2] == 1 else pos
                )
                init = _stack_padded(
                    [
                        np.concatenate([r.radii, np.linalg.norm(r.velocities[0], axis=-1)])
                        for r in recs
                    ]
                )
                groups["init_streams"].create_dataset(name, data=init)
                groups["id_streams"].create_dataset(
                    name, data=np.array([r.id for r in recs], dtype=h5py.string_dtype())
                )
                groups["level_streams"].create_dataset(
                    name, data=np.array([r.level for r in recs], dtype=h5py.string_dtype())
                )
                pnames = sorted({k for r in recs for k in r.params})
                prm = groups["param_streams"].create_dataset(
                    name, data=np.array([[r.params.get(k, np.nan) for k in pnames] for r in recs])
                )
                prm.attrs["names"] = pnames
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def _stack_padded(arrays) -> np.ndarray:
    """Stack arrays whose body axis (axis 1 for (T, N, 2), axis 0 for (2N,)) may differ,
    padding with NaN (scenes with different body counts)."""
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        return np.stack(arrays)
    if arrays[0].ndim == 1:
        n = max(len(a) // 2 for a in arrays)
        out = np.full((len(arrays), 2 * n), np.nan)
        for k, a in enumerate(arrays):
            h = len(a) // 2
            out[k, :h], out[k, n : n + h] = a[:h], a[h:]
        return out
    n = max(a.shape[1] for a in arrays)
    out = np.full((len(arrays), arrays[0].shape[0], n, 2), np.nan)
    for k, a in enumerate(arrays):
        out[k, :, : a.shape[1]] = a
    return out
