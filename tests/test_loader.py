"""Grain loader: determinism, flip consistency, process sharding, checkpoint restore."""

import numpy as np
import pytest

from physim import dataset, generate, loader


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "u"
    generate.generate("collision", "train", 24, 5, out, shard_size=10, progress=False)
    return dataset.open(out)


def take(it, k):
    return [next(it) for _ in range(k)]


def make(ds, **kw):
    kw = {"batch_size": 4, "resolution": 16, "n_frames": 6, "shard_index": 0,
          "shard_count": 1, **kw}  # fmt: skip
    return loader.make_loader(ds, **kw)


def test_batch_contents_match_the_dataset(ds):
    (b,) = take(iter(make(ds, flip=False)), 1)
    assert b["frames"].shape == (4, 6, 16, 16, 3) and b["frames"].dtype == np.uint8
    assert b["positions"].shape == (4, 6, 2, 2) and b["positions"].dtype == np.float32
    for j, i in enumerate(b["index"]):
        rec = ds[int(i)]
        assert np.array_equal(b["frames"][j], ds.frames(int(i), resolution=16, n_frames=6))
        assert np.array_equal(b["positions"][j], rec.positions[:6].astype(np.float32))
        assert np.array_equal(b["radii"][j], rec.radii.astype(np.float32))
    assert not b["flipped"].any()


def test_same_seed_same_batches_other_seed_other_order(ds):
    a = take(iter(make(ds, seed=1)), 3)
    b = take(iter(make(ds, seed=1)), 3)
    c = take(iter(make(ds, seed=2)), 3)
    for x, y in zip(a, b, strict=True):
        assert all(np.array_equal(x[k], y[k]) for k in x)
    assert not all(np.array_equal(x["index"], z["index"]) for x, z in zip(a, c, strict=True))


def test_epochs_cover_everything_and_reshuffle(ds):
    it = iter(make(ds, seed=3, num_epochs=2, flip=False, batch_size=6))
    batches = list(it)
    order = np.concatenate([b["index"] for b in batches])
    assert len(order) == 48
    assert sorted(order[:24]) == list(range(24)) and sorted(order[24:]) == list(range(24))
    assert not np.array_equal(order[:24], order[24:])


def test_flip_mirrors_frames_and_truth_together(ds):
    batches = take(iter(make(ds, seed=4, flip=True)), 4)
    flipped = 0
    for b in batches:
        for j, i in enumerate(b["index"]):
            i = int(i)
            plain = ds.frames(i, resolution=16, n_frames=6)
            rec = ds[i]
            if b["flipped"][j]:
                flipped += 1
                assert np.abs(b["frames"][j].astype(int) - plain[:, :, ::-1]).max() <= 1
                want = rec.flip_horizontal()
            else:
                assert np.array_equal(b["frames"][j], plain)
                want = rec
            assert np.allclose(b["positions"][j], want.positions[:6], atol=1e-5)
            assert np.allclose(b["velocities"][j], want.velocities[:6], atol=1e-5)
    assert 0 < flipped < 16  # both kinds occur


def test_process_shards_are_disjoint_and_cover(ds):
    seen = []
    for k in range(3):
        it = iter(make(ds, shard_index=k, shard_count=3, num_epochs=1, batch_size=2))
        seen.append(np.concatenate([b["index"] for b in it]))
    assert sorted(np.concatenate(seen)) == list(range(24))
    assert all(set(seen[0]) & set(s) == set() for s in seen[1:])


def test_checkpoint_restores_the_stream(ds):
    it = iter(make(ds, seed=6))
    take(it, 2)
    state = it.get_state()
    want = take(it, 3)
    it2 = iter(make(ds, seed=6))
    it2.set_state(state)
    got = take(it2, 3)
    for x, y in zip(want, got, strict=True):
        assert all(np.array_equal(x[k], y[k]) for k in x)


def test_bad_loader_settings(ds):
    with pytest.raises(ValueError, match="n_frames"):
        make(ds, n_frames=99)
    with pytest.raises(ValueError, match="batch_size"):
        make(ds, batch_size=0)
    with pytest.raises(ValueError, match="shard_index"):
        make(ds, shard_index=3, shard_count=3)


def test_fast_geometry_equals_the_validated_one():
    import dataclasses

    from physim import render, world

    objs = world.Objects.make([1.0, 0.5, 0.7], shapes=["ball", "square", "ring"],
                              colors=["red", "blue", "green"])  # fmt: skip
    want = render.Geometry.from_objects(objs)
    codes = [dataset.COLOR_TABLE.index(c) for c in objs.colors]
    got = dataset.object_geometry(objs.radii, objs.shape_codes, codes)
    for f in dataclasses.fields(want):
        a, b = getattr(want, f.name), getattr(got, f.name)
        assert np.array_equal(a, b) and np.asarray(a).dtype == np.asarray(b).dtype, f.name
    pos = np.array([[[2.0, 3.0], [5.0, 5.0], [7.5, 6.0]]])
    ang = np.array([[0.3, 0.2, 0.0]])
    _, _, mirrored = dataset.flip_states(pos, ang, got)
    ref = dataclasses.replace(want, params=mirrored.params, verts=mirrored.verts)  # validated
    for f in dataclasses.fields(want):
        assert np.array_equal(getattr(ref, f.name), getattr(mirrored, f.name)), f.name


@pytest.mark.slow
def test_worker_processes_give_the_same_batches(ds):
    want = take(iter(make(ds, seed=8)), 2)
    it = iter(make(ds, seed=8, workers=1))
    got = take(it, 2)
    for x, y in zip(want, got, strict=True):
        assert all(np.array_equal(x[k], y[k]) for k in x)


@pytest.mark.parametrize("threads", [0, 1])
def test_pooled_frame_buffers_never_overwrite_live_batches(ds, threads):
    it = iter(make(ds, seed=9, threads=threads, batch_size=3))
    held = next(it)
    copy = held["frames"].copy()
    view = next(it)["frames"][1]  # only a view of the second batch survives
    view_copy = view.copy()
    later = take(it, 12)
    assert np.array_equal(held["frames"], copy) and np.array_equal(view, view_copy)
    bases = {id(b["frames"]) for b in later}
    assert id(held["frames"]) not in bases and id(view.base) not in bases
    ref = take(iter(make(ds, seed=9, threads=threads, batch_size=3)), 14)[2:]
    for x, y in zip(later, ref, strict=True):  # recycled buffers hold the right frames
        assert np.array_equal(x["frames"], y["frames"])


def test_recycled_buffers_hold_the_right_frames(ds):
    it = iter(make(ds, seed=10, threads=0, batch_size=3))
    got = []
    for _ in range(8):
        b = next(it)
        got.append(b["frames"].copy())
        del b  # released: its buffer goes back to the pool
    it2 = iter(make(ds, seed=10, threads=0, batch_size=3))
    ref = [next(it2)["frames"].copy() for _ in range(8)]
    assert all(np.array_equal(x, y) for x, y in zip(got, ref, strict=True))
    rb = loader.RenderBatch(ds, 8, 4)
    first = rb([(0, False)])["frames"]
    addr = first.ctypes.data
    del first
    assert rb([(1, False)])["frames"].ctypes.data == addr  # the pool did reuse it


@pytest.mark.parametrize("scenario", ["uniform", "collision", "parabola", "color_shape",
                                      "size_shape"])
def test_batched_disc_path_gives_the_per_video_bytes(scenario, tmp_path):
    out = tmp_path / scenario
    generate.generate(scenario, "ood", 9, 3, out, shard_size=4, progress=False)
    d = dataset.open(out)
    rb = loader.RenderBatch(d, 32, 7)
    assert rb.discs
    n = len(d)
    assert n >= 6
    items = [(n - 1, True), (0, False), (5, True), (5, False), (2, True), (3, False)]
    fast, slow = rb._discs(items), rb._bodies(items)
    assert fast.keys() == slow.keys()
    for k in slow:
        assert fast[k].dtype == slow[k].dtype and fast[k].tobytes() == slow[k].tobytes(), k
    # Negative control: a flip changes the frames.
    assert not np.array_equal(rb._discs([(5, True)])["frames"], rb._discs([(5, False)])["frames"])
    with pytest.raises(IndexError, match="out of range"):
        rb._discs([(n, False)])
