"""Colour-membership parse: exact centroids, areas and shapes on anti-aliased frames."""

import dataclasses

import numpy as np
import pytest

import physim
from evals import parse
from physim import world
from physim.render import render

RED = np.array([[255, 0, 0]], np.uint8)


def _discs(centres, radius, color, res, ss=16):
    """Tiny local drawer: (T, res, res, 3) uint8 discs by supersampled area coverage."""
    sub = (np.arange(res * ss) + 0.5) / ss * world.WORLD_SIZE / res
    xs, ys = sub[None, :], world.WORLD_SIZE - sub[:, None]
    out = []
    for x, y in centres:
        cov = ((xs - x) ** 2 + (ys - y) ** 2 <= radius**2).reshape(res, ss, res, ss).mean((1, 3))
        img = 255.0 + cov[..., None] * (np.asarray(color, float) - 255.0)
        out.append(np.round(img).astype(np.uint8))
    return np.stack(out)


def test_straight_line_subpixel_centroid_local_drawer():
    t = np.arange(8) * 0.1
    centres = np.stack([2.0 + 1.7 * t, 6.3 - 0.4 * t], axis=-1)
    frames = _discs(centres, 1.1, (255, 0, 0), res=64)
    tr = parse.parse(frames, RED)
    err_px = np.abs(tr.positions[:, 0] - centres) * 64 / world.WORLD_SIZE
    assert err_px.max() < 0.01  # sub-pixel to 1/100 px
    assert np.all(tr.visible) and np.all(tr.in_view)
    assert np.allclose(tr.radii[:, 0], 1.1, rtol=0.01)
    # Negative control: the paper's threshold-and-centroid parse is far coarser.
    mask = (frames[..., 0] > 127) & (frames[..., 1] < 127)
    rows, cols = np.nonzero(mask[3])
    naive = np.array([cols.mean() + 0.5, 64 - rows.mean() - 0.5]) * world.WORLD_SIZE / 64
    assert np.abs(naive - centres[3]).max() * 6.4 > 10 * err_px[3].max()


@pytest.mark.parametrize("shape", world.SHAPES)
def test_shapes_and_radii_exact_on_renders(shape):
    rec = physim.scenario("uniform").sample(seed=3, split="id", index=40)
    for r in (0.4, 1.2):
        obj = world.Objects.make([r], shapes=[shape], colors=["red"])
        tr = parse.parse(render(rec.trajectory, obj, 128), obj.rgb)
        v = tr.in_view[:, 0]
        assert v.sum() > 20
        assert np.all(tr.shapes[v, 0] == world.SHAPE_CODES[shape])
        assert np.allclose(tr.radii[v, 0], r, rtol=0.005)
        assert np.abs(tr.positions[v, 0] - rec.trajectory.positions[v, 0]).max() < 0.002


def test_touching_balls_of_two_colours_are_separated():
    rec = physim.scenario("collision").sample(seed=3, split="id", index=2)
    frames = render(rec.trajectory, rec.objects, 128)
    tr = parse.parse_record(frames, rec)
    k = int(rec.trajectory.event_frames[0])
    near = slice(max(k - 1, 0), k + 2)  # frames around the contact
    err = np.abs(tr.positions[near] - rec.trajectory.positions[near]).max()
    assert err < 0.003
    assert tr.unknown_area.max() == 0.0


def test_unknown_colour_reported_and_object_invisible():
    frames = _discs([(5.0, 5.0)] * 2, 1.0, (0, 160, 0), res=64)
    frames[0] = 255
    tr = parse.parse(frames, RED)
    assert not tr.visible.any() and np.isnan(tr.positions).all()
    assert tr.unknown_area[0] == 0 and np.isnan(tr.unknown_rgb[0]).all()
    assert tr.unknown_area[1] == pytest.approx(np.pi, rel=0.05)
    assert np.allclose(tr.unknown_rgb[1], (0, 160, 0), atol=60)
    assert tr.shapes[1, 0] == -1


def test_stride_and_temporal_search_do_not_change_the_result():
    rec = physim.scenario("collision").sample(seed=3, split="ood", index=11)
    frames = render(rec.trajectory, rec.objects, 128)
    full = parse.ParseConfig(stride=1, temporal=False)
    a = parse.parse_record(frames, rec, config=full)
    for cfg in (parse.ParseConfig(stride=4, temporal=False), parse.ParseConfig()):
        b = parse.parse_record(frames, rec, config=cfg)
        np.testing.assert_allclose(a.areas, b.areas, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-12)
        np.testing.assert_array_equal(a.shapes, b.shapes)
    # A teleport and a vanishing object: the temporal search falls back, results agree.
    pos = rec.trajectory.positions.copy()
    pos[12:, 0] += (3.0, 2.0)
    pos[20:, 1] = -50
    g = render(dataclasses.replace(rec.trajectory, positions=pos), rec.objects, 128)
    a = parse.parse_record(g, rec, config=full)
    b = parse.parse_record(g, rec)
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-12)
    np.testing.assert_array_equal(a.visible, b.visible)


def test_border_and_shared_colour_flags():
    frames = _discs([(0.5, 5.0), (5.0, 5.0)], 1.0, (255, 0, 0), res=64)
    tr = parse.parse(frames, np.array([[255, 0, 0], [255, 0, 0]], np.uint8))
    assert tr.visible[0, 0] and not tr.in_view[0, 0] and tr.in_view[1, 0]
    assert tr.shared_color.all()


def test_lossy_preset_tolerates_noise():
    rec = physim.scenario("uniform").sample(seed=3, split="id", index=12)
    frames = render(rec.trajectory, rec.objects, 128)
    rng = np.random.default_rng(0)
    noisy = np.clip(frames + rng.normal(0, 3, frames.shape).round(), 0, 255).astype(np.uint8)
    tr = parse.parse_record(noisy, rec, config="lossy")
    v = tr.in_view[:, 0]
    assert np.abs(tr.positions[v, 0] - rec.trajectory.positions[v, 0]).max() < 0.02
    assert tr.unknown_area.max() < 0.05


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="uint8"):
        parse.parse(np.zeros((2, 8, 8, 3), np.float32), RED)
    with pytest.raises(ValueError, match="square"):
        parse.parse(np.zeros((2, 8, 9, 3), np.uint8), RED)
    with pytest.raises(ValueError, match="background"):
        parse.parse(np.zeros((2, 8, 8, 3), np.uint8), np.array([[255, 255, 255]], np.uint8))


def test_match_len_counts_equal_pixels_like_a_plain_loop():
    from evals.parse_kernels import _match_len

    rng = np.random.default_rng(0)
    red = np.array([255, 0, 0], np.uint8)
    # Runs of red broken by pixels that differ from it in one channel only (each of the
    # three bytes of a pixel lands at every position within the 8-byte words).
    others = np.array([[254, 0, 0], [255, 1, 0], [255, 0, 1], [255, 255, 255]], np.uint8)
    n_px = 301
    px = np.tile(red, (n_px, 1))
    for i in rng.choice(n_px, 40, replace=False):
        px[i] = others[rng.integers(len(others))]
    px[-12:] = red  # a run reaching the end of the array
    flat = px.reshape(-1)
    pw = np.tile(red, 8).view(np.uint64)
    for start in range(n_px):
        for n_max in (0, 1, 7, 8, 9, 23, 40, n_px - start):
            n_max = min(n_max, n_px - start)
            want = 0
            while want < n_max and np.array_equal(px[start + want], red):
                want += 1
            assert _match_len(flat, 3 * start, n_max, pw) == want, (start, n_max)
