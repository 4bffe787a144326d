"""Video I/O and exports: mp4/GIF/PNG round trips, npy/mp4/hdf5 exports of a dataset."""

import os

import h5py
import numpy as np
import pytest

from physim import dataset, generate, video


def moving_square(t=8, r=32):
    f = np.full((t, r, r, 3), 255, np.uint8)
    for k in range(t):
        f[k, 10:20, 2 + 2 * k : 12 + 2 * k] = (255, 0, 0)
    return f


def test_mp4_round_trip_is_close():
    f = moving_square()
    data = video.encode_mp4(f)
    assert data[4:8] == b"ftyp" and data == video.encode_mp4(f)  # deterministic
    g = video.decode_mp4(data)
    assert g.shape == f.shape
    err = np.abs(g.astype(int) - f)
    assert err.mean() < 3 and np.percentile(err, 99) < 40
    other = video.decode_mp4(video.encode_mp4(f[:, :, ::-1]))  # control: mirrored video
    assert np.abs(other.astype(int) - f).mean() > 5 * err.mean()


def test_mp4_decodes_to_the_frames_of_imageio_ffmpeg():
    # encode_mp4 runs libx264 in-process (PyAV) at the export quality; the file
    # imageio.v3.imwrite writes through the ffmpeg command line at the same quality must
    # decode to the very same frames
    import imageio.v3 as iio

    import physim

    rec = physim.scenario("collision").batch(0, "train", np.arange(1)).records()[0]
    f = physim.render(rec.trajectory, rec.objects, 64)
    ours = video.decode_mp4(video.encode_mp4(f))
    theirs = video.decode_mp4(iio.imwrite("<bytes>", f, extension=".mp4", fps=video.MP4_FPS,
                                          codec="libx264", macro_block_size=2, quality=10))
    assert ours.shape == theirs.shape == f.shape
    assert np.array_equal(ours, theirs)
    # control: one pixel block changed in the input shows in the decoded frames
    g = f.copy()
    g[5, 10:14, 10:14] = 0
    assert not np.array_equal(video.decode_mp4(video.encode_mp4(g)), ours)


@pytest.mark.parametrize("quality", [10, 5])
def test_mp4_bytes_are_the_same_every_time(quality):
    import physim

    rec = physim.scenario("collision").batch(0, "train", np.arange(1)).records()[0]
    f = physim.render(rec.trajectory, rec.objects, 64)
    assert len({video.encode_mp4(f, quality=quality) for _ in range(6)}) == 1


def test_mp4_bytes_do_not_depend_on_threads():
    from concurrent.futures import ThreadPoolExecutor

    vids = [np.roll(moving_square(t=6), k, axis=2) for k in range(6)]
    alone = [video.encode_mp4(v) for v in vids]
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(video.encode_mp4, vids)) == alone


def test_gif_and_png_round_trip_exactly(tmp_path):
    f = moving_square()
    video.write_bytes(tmp_path / "a.gif", video.encode_gif(f))
    assert np.array_equal(video.read_image(tmp_path / "a.gif"), f)
    video.write_bytes(tmp_path / "a.png", video.encode_png(f[3]))
    assert np.array_equal(video.read_image(tmp_path / "a.png"), f[3])


def test_bad_frames_are_rejected():
    with pytest.raises(ValueError, match="uint8"):
        video.encode_mp4(np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="even"):
        video.encode_mp4(np.zeros((4, 9, 9, 3), np.uint8))


def test_tile_and_contact_sheet_layout():
    f = moving_square(t=5, r=8)
    sheet = video.contact_sheet(f, cols=2)  # 3 rows x 2 cols, 2-px gutters
    assert sheet.shape == (3 * 10 + 2, 2 * 10 + 2, 3)
    assert np.array_equal(sheet[2:10, 12:20], f[1]) and np.array_equal(sheet[22:30, 2:10], f[4])
    m = video.mosaic(np.stack([f, f[:, ::-1]]), cols=2)
    assert m.shape == (5, 12, 22, 3) and np.array_equal(m[3, 2:10, 12:20], f[3, ::-1])


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "coll"
    generate.generate("collision", "train", 4, 2, out, shard_size=3, progress=False)
    return dataset.open(out)


def test_export_npy_equals_rendered_frames(small, tmp_path):
    n = video.export(small, "npy", tmp_path / "npy", resolution=16, progress=False)
    assert n == 4
    for i, vid in enumerate(small.ids):
        got = np.load(tmp_path / "npy" / f"{vid}.npy", allow_pickle=False)
        assert got.dtype == np.uint8 and got.shape == (32, 16, 16, 3)
        assert np.array_equal(got, small.frames(i, resolution=16))
        # The same bytes as np.save (header + frames written as two parts).
        buf = __import__("io").BytesIO()
        np.save(buf, small.frames(i, resolution=16), allow_pickle=False)
        assert (tmp_path / "npy" / f"{vid}.npy").read_bytes() == buf.getvalue()
    # Chunks smaller than the dataset (one flush per chunk) write the same files.
    old = video.EXPORT_CHUNK_BYTES
    try:
        video.EXPORT_CHUNK_BYTES = 1
        video.export(small, "npy", tmp_path / "npy1", resolution=16, progress=False, workers=2)
    finally:
        video.EXPORT_CHUNK_BYTES = old
    for vid in small.ids:
        a, b = (tmp_path / d / f"{vid}.npy" for d in ("npy", "npy1"))
        assert a.read_bytes() == b.read_bytes()
    assert not [p for p in (tmp_path / "npy1").iterdir() if p.name.startswith(".tmp-")]


def test_atomic_write_many_is_all_or_nothing(tmp_path, monkeypatch):
    from physim import shards

    shards.atomic_write_many([(tmp_path / "a.bin", b"1"), (tmp_path / "b.bin", [b"2", b"3"])])
    assert (tmp_path / "a.bin").read_bytes() == b"1" and (tmp_path / "b.bin").read_bytes() == b"23"
    # Without syncfs every temp file is fsynced instead; same result.
    monkeypatch.setattr(shards, "_syncfs", lambda fd: False)
    shards.atomic_write_many([(tmp_path / "a.bin", b"4")])
    assert (tmp_path / "a.bin").read_bytes() == b"4"
    # A failure while writing leaves the old files and no temp file.
    with pytest.raises(TypeError):
        shards.atomic_write_many([(tmp_path / "a.bin", b"5"), (tmp_path / "c.bin", 7)])
    assert (tmp_path / "a.bin").read_bytes() == b"4" and not (tmp_path / "c.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]
    with pytest.raises(ValueError, match="one folder"):
        shards.atomic_write_many([(tmp_path / "x", b""), (tmp_path / "sub" / "y", b"")])


def test_export_mp4_decodes_to_the_video(small, tmp_path):
    video.export(small, "mp4", tmp_path / "mp4", resolution=32, progress=False)
    vid = small.ids[1]
    got = video.decode_mp4((tmp_path / "mp4" / f"{vid}.mp4").read_bytes())
    want = small.frames(1, resolution=32)
    assert got.shape == want.shape and np.abs(got.astype(int) - want).mean() < 4


def test_export_hdf5_paper_layout(small, tmp_path):
    import socket

    # What a killed export left (a dead pid of this host) is removed; a live one is kept.
    (tmp_path / "h5").mkdir()
    host = socket.gethostname()
    dead = tmp_path / "h5" / f".tmp-{host}-999999999-collision_train.hdf5"
    live = tmp_path / "h5" / f".tmp-{host}-{os.getpid()}-other.hdf5"
    dead.write_bytes(b"half an hdf5 file")
    live.write_bytes(b"being written")
    video.export(small, "hdf5", tmp_path / "h5", resolution=16, progress=False)
    assert not dead.exists() and live.exists()
    assert sorted(p.name for p in (tmp_path / "h5").iterdir()) == [live.name,
                                                                  "collision_train.hdf5"]
    with h5py.File(tmp_path / "h5" / "collision_train.hdf5", "r") as f:
        assert {"video_streams", "position_streams", "init_streams"} <= set(f)
        pos = f["position_streams"]["00000"][()]
        init = f["init_streams"]["00000"][()]
        mp4 = f["video_streams"]["00000"][2]
        ids = [s.decode() for s in f["id_streams"]["00000"][()]]
    assert ids == small.ids and pos.shape == (4, 32, 2, 2)
    rec = small[2]
    assert np.array_equal(pos[2], rec.positions)
    assert np.allclose(init[2], [rec.radii[0], rec.radii[1], rec.params["v1"], rec.params["v2"]])
    frames = video.decode_mp4(mp4.tobytes())
    assert frames.shape == (32, 16, 16, 3)
    assert np.abs(frames.astype(int) - small.frames(2, resolution=16)).mean() < 6


def test_export_bad_input(small, tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        video.export(small, "avi", tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="even resolution"):
        video.export(small, "mp4", tmp_path / "x", resolution=15, progress=False)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        video.export(small, "npy", tmp_path / "f", progress=False)
