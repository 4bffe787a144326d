"""Scenario specs: ranges, levels, placement guarantees, determinism, errors."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

import physim
from physim import world
from physim.scenarios import attributes

IDX = np.arange(400)


def within(x, iv):
    return np.all((x >= iv[0] - 1e-12) & (x <= iv[1] + 1e-12))


@pytest.mark.parametrize("name", ["uniform", "parabola"])
def test_one_ball_train_ranges_and_visibility(name):
    spec = physim.scenario(name)
    b = spec.batch(7, "train", IDX)
    assert len(b) == len(IDX)
    r, v = b.params["r"], b.params["v"]
    assert within(r, spec.r_id) and within(v, spec.v_id)
    np.testing.assert_array_equal(b.radii[:, 0], r)
    np.testing.assert_array_equal(b.velocities[:, 0, 0, 0], v)
    assert np.all(b.velocities[:, 0, 0, 1] == 0)  # initial vy = 0
    x = b.positions[..., 0, 0]
    visible = (x - r[:, None] < 10) & (x + r[:, None] > 0)
    assert np.all(visible[:, :24])  # (partly) in view for >= 24 frames
    inside = (x - r[:, None] >= -1e-9) & (x + r[:, None] <= 10 + 1e-9)
    slow = 24 * v * 0.1 + 2 * r <= 10  # where it is possible: fully in view 24 frames
    assert slow.sum() > 100 and np.all(inside[slow, :24])
    y = b.positions[..., 0, 1]
    if name == "parabola":
        assert np.all(y[:, 0] >= 8.5 - r - 1e-9) and np.all(y[:, 0] <= 9.5 - r + 1e-9)
        np.testing.assert_allclose(y, y[:, :1] - 1.25 * world.frame_times()[None] ** 2, atol=1e-9)
        assert np.all(y[:, :24] + r[:, None] > 0)  # still (partly) visible
    else:
        assert np.all(np.ptp(y, axis=1) == 0)


@pytest.mark.parametrize("name", ["uniform", "parabola"])
def test_one_ball_ood_levels_and_sides(name):
    spec = physim.scenario(name)
    b = spec.batch(0, "ood", np.arange(spec.size("ood")))
    levels = np.array(b.levels)[b.level]
    assert set(levels) == {"r", "v", "rv"}
    for lv in ("r", "v", "rv"):
        sel = levels == lv
        rs, vs = b.params["r_side"][sel], b.params["v_side"][sel]
        assert np.all((rs != 0) == ("r" in lv)) and np.all((vs != 0) == ("v" in lv))
        assert {-1.0, 1.0} <= set(rs) | set(vs)  # both sides drawn
    for p, low, high, iv in (
        ("r", spec.r_low, spec.r_high, spec.r_id),
        ("v", spec.v_low, spec.v_high, spec.v_id),
    ):
        side, x = b.params[p + "_side"], b.params[p]
        assert within(x[side < 0], low) and within(x[side > 0], high) and within(x[side == 0], iv)
    # Fast OOD balls cannot stay 24 frames in view: they start at the left edge instead.
    fast = b.params["v"] * 2.4 + 2 * b.params["r"] > 10
    x0 = b.positions[:, 0, 0, 0]
    assert np.all(x0[fast] - b.params["r"][fast] <= 0.5 + 1e-9)


def test_collision_guarantees():
    spec = physim.scenario("collision")
    for split in ("train", "id", "ood"):
        n = spec.size(split) or 500
        b = spec.batch(3, split, np.arange(n))
        assert len(b) > 0.5 * n
        for k in range(len(b)):
            rec = b.record(k)
            tr = rec.trajectory
            assert tr.event_pairs.tolist() == [[0, 1]], rec.id
            f = int(tr.event_frames[0])
            assert f > 3 and spec.n_frames - f >= 8, (rec.id, f)
            # contact point inside the view
            xc = np.interp(tr.event_times[0], tr.times, tr.positions[:, 0, 0]) + rec.radii[0]
            assert 0 <= xc <= 10
        p = b.params
        if split == "train":
            assert all(within(p[k], spec.r_id) for k in ("r1", "r2"))
            assert all(within(p[k], spec.v_id) for k in ("v1", "v2"))


def test_collision_ood_levels_mark_the_right_parameters():
    spec = physim.scenario("collision")
    b = spec.batch(0, "ood", np.arange(spec.size("ood")))
    levels = np.array(b.levels)[b.level]
    assert set(levels) == set(spec.levels[1:])
    for lv in spec.levels[1:]:
        sel = levels == lv
        ood = {k for k in ("r1", "r2", "v1", "v2") if np.all(b.params[k + "_side"][sel] != 0)}
        ind = {k for k in ("r1", "r2", "v1", "v2") if np.all(b.params[k + "_side"][sel] == 0)}
        assert ood == set(spec._ood_axes[lv]) and len(ood) + len(ind) == 4


def test_any_subset_of_indices_gives_the_same_videos():
    spec = physim.scenario("collision")
    whole = spec.batch(11, "train", np.arange(300))
    part = spec.batch(11, "train", np.arange(150, 300)[::-1])
    np.testing.assert_array_equal(part.positions[::-1], whole.positions[150:])
    other_seed = spec.batch(12, "train", np.arange(150, 300))
    assert not np.array_equal(other_seed.positions, whole.positions[150:])


def _digest(name):
    b = physim.scenario(name).batch(5, "train", np.arange(200))
    return hashlib.sha256(b.positions.tobytes() + b.velocities.tobytes()).hexdigest()


def test_same_seed_same_bytes_in_a_fresh_process():
    code = (
        "import numpy as np, hashlib, physim;"
        "b = physim.scenario('collision').batch(5, 'train', np.arange(200));"
        "print(hashlib.sha256(b.positions.tobytes() + b.velocities.tobytes()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _digest("collision")


@pytest.mark.parametrize("pair", sorted(attributes.PAIRS))
def test_attribute_pairs_train_and_swapped_test_combinations(pair):
    spec = physim.scenario(pair)
    train = spec.batch(0, "train", np.arange(300))
    test = spec.batch(0, "ood", np.arange(spec.size("ood")))
    for b, combos in ((train, spec.train_combos), (test, spec.test_combos)):
        seen = set(zip(b.params["a_idx"].astype(int), b.params["b_idx"].astype(int), strict=True))
        assert seen == set(combos)
        names = np.array(b.levels)[b.level]
        want = [
            f"a{int(i)}b{int(j)}" for i, j in zip(b.params["a_idx"], b.params["b_idx"], strict=True)
        ]
        assert names.tolist() == want
        for k in range(0, len(b), 7):
            rec = b.record(k)
            i, j = int(rec.params["a_idx"]), int(rec.params["b_idx"])
            got = {
                "color": rec.colors[0],
                "shape": rec.shapes[0],
                "size": rec.radii[0],
                "velocity": rec.velocities[0, 0, 0],
            }
            for attr, vals, idx in ((spec.a, spec.a_values, i), (spec.b, spec.b_values, j)):
                if attr in ("color", "shape"):
                    assert got[attr] == vals[idx]
                else:
                    assert vals[idx][0] - 1e-9 <= got[attr] <= vals[idx][1] + 1e-9


def test_flip_mirrors_states():
    rec = physim.scenario("uniform").sample(seed=1, split="train", index=3)
    f = rec.flip_horizontal()
    np.testing.assert_allclose(f.positions[..., 0], 10 - rec.positions[..., 0])
    np.testing.assert_allclose(f.velocities[..., 0], -rec.velocities[..., 0])
    np.testing.assert_allclose(f.flip_horizontal().positions, rec.positions, atol=1e-12)


@pytest.mark.parametrize(
    "name, overrides, match",
    [
        ("uniform", dict(r_id=(-1.0, 1.0)), "r_id"),
        ("uniform", dict(v_id=(4.0, 1.0)), "empty"),
        ("collision", dict(r_id=(4.0, 4.4)), "placement impossible"),
        ("uniform", dict(bogus=1), "unknown key"),
        ("nope", {}, "unknown scenario"),
        ("color_shape", dict(a_values=("red", "mauve")), "unknown colour"),
        ("uniform", dict(n_cond=40), "n_cond"),
    ],
)
def test_bad_specs_are_clear_errors(name, overrides, match):
    with pytest.raises(ValueError, match=match):
        physim.scenario(name, **overrides).batch(0, "train", np.arange(4))


def test_unknown_split_and_bad_grid_index():
    spec = physim.scenario("uniform")
    with pytest.raises(ValueError, match="unknown split"):
        spec.batch(0, "test", [0])
    with pytest.raises(ValueError, match="grid size"):
        spec.batch(0, "id", [spec.size("id")])


def test_collision_holdout_widest_box_generates_and_avoids_the_box():
    spec = physim.scenario("collision_holdout", holdout=(((1.1, 3.9), (1.1, 3.9)),))
    b = spec.batch(0, "train", np.arange(3000))
    assert len(b) == 3000
    v1, v2 = b.params["v1"], b.params["v2"]
    assert not np.any((v1 >= 1.1) & (v1 <= 3.9) & (v2 >= 1.1) & (v2 <= 3.9))
