"""Positive and negative controls of the law scores and abnormality checks.

Truth videos come from the simulator and renderer at 128²; negative controls are the same
truth with the motion after the conditioning frames altered, rendered the same way.
"""

import dataclasses

import numpy as np
import pytest

import physim
from evals import abnormal, laws, parse
from physim.render import render

RES = 128
FLOOR = {"uniform": 0.003, "collision": 0.004, "parabola": 0.007}


def _record(name, index=0, split="id"):
    return physim.scenario(name).sample(seed=3, split=split, index=index)


def _with_positions(rec, pos):
    tr = dataclasses.replace(rec.trajectory, positions=pos)
    return render(tr, rec.objects, RES)


def _evaluate(rec, frames):
    tracks = parse.parse_record(frames, rec)
    return laws.score(tracks, rec), abnormal.check(tracks, rec)


@pytest.mark.parametrize("name", ["uniform", "collision", "parabola"])
def test_ground_truth_scores_at_floor_and_normal(name):
    errs = []
    for index in (0, 7, 20):
        rec = _record(name, index)
        law, ab = _evaluate(rec, render(rec.trajectory, rec.objects, RES))
        errs.append(law["velocity_error"])
        assert not ab["abnormal"], (index, ab)
    assert np.mean(errs) <= FLOOR[name], errs


@pytest.mark.parametrize("name", ["uniform", "collision", "parabola"])
def test_frozen_and_doubled_speed_score_about_speed(name):
    rec = _record(name, 1)  # slow enough that the doubled ball stays in view
    pos = rec.trajectory.positions
    c = rec.n_cond - 1
    frozen = pos.copy()
    frozen[c + 1 :] = pos[c]
    law, _ = _evaluate(rec, _with_positions(rec, frozen))
    # Frozen: error = |v| of the truth over valid frames (up to the parse floor).
    assert law["velocity_error"] == pytest.approx(law["speed_true"], abs=0.02)
    doubled = pos.copy()
    doubled[c + 1 :] = pos[c] + 2 * (pos[c + 1 :] - pos[c])
    law2, _ = _evaluate(rec, _with_positions(rec, doubled))
    # Doubled speed after conditioning: error = |v| again (relative: the parabola's doubled
    # displacement also doubles gravity, the collision's changes when they meet).
    assert law2["velocity_error"] == pytest.approx(law2["speed_true"], rel=0.1)


def test_teleport_vanish_color_swap_flagged_and_bad():
    rec = _record("uniform", 3)
    pos = rec.trajectory.positions
    base, _ = _evaluate(rec, render(rec.trajectory, rec.objects, RES))

    tele = pos.copy()
    tele[12:, :, 1] += 3.0 * np.where(pos[12:, :, 1] < 5, 1, -1)
    law, ab = _evaluate(rec, _with_positions(rec, tele))
    assert ab["jump"] and ab["abnormal"]
    assert law["velocity_error"] > 20 * base["velocity_error"] + 0.5

    gone = pos.copy()
    gone[12:] = -50.0
    law, ab = _evaluate(rec, _with_positions(rec, gone))
    assert ab["vanish"] and ab["abnormal"] and not ab["jump"]
    assert law["missing_frames"] > 0
    assert law["velocity_error"] > 0.5 * law["speed_true"]

    frames = render(rec.trajectory, rec.objects, RES)
    blue = dataclasses.replace(rec.objects, colors=("blue",))
    frames[12:] = render(rec.trajectory, blue, RES)[12:]
    law, ab = _evaluate(rec, frames)
    assert ab["color"] and ab["abnormal"]
    assert law["velocity_error"] > 0.5 * law["speed_true"]


def test_collision_color_swap_and_interpenetration():
    rec = _record("collision", 2)
    frames = render(rec.trajectory, rec.objects, RES)
    swapped = dataclasses.replace(rec.objects, colors=rec.objects.colors[::-1])
    frames[8:] = render(rec.trajectory, swapped, RES)[8:]
    law, ab = _evaluate(rec, frames)
    assert ab["color"] and ab["abnormal"]
    assert law["velocity_error"] > 1.0

    # Pass through each other instead of colliding.
    pos = rec.trajectory.positions
    ghost = pos.copy()
    c = rec.n_cond - 1
    v0 = (pos[c] - pos[c - 1]) / 0.1
    ghost[c:] = pos[c] + v0 * (0.1 * np.arange(len(pos) - c))[:, None, None]
    law, ab = _evaluate(rec, _with_positions(rec, ghost))
    assert ab["interpenetration"]
    assert law["post_velocity_error"] > 1.0


def test_parabola_fitted_acceleration():
    rec = _record("parabola", 4)
    law, _ = _evaluate(rec, render(rec.trajectory, rec.objects, RES))
    assert law["accel_true_y"] == pytest.approx(-2.5, abs=1e-6)
    assert law["accel_error"] < 0.02
    pos = rec.trajectory.positions.copy()
    pos[..., 1] = pos[0, :, 1] + (pos[..., 1] - pos[0, :, 1]) * 0.0  # no gravity: straight line
    law2, _ = _evaluate(rec, _with_positions(rec, pos))
    assert law2["accel_error"] == pytest.approx(2.5, abs=0.05)


@pytest.mark.parametrize("name", ["uniform", "collision"])
def test_mp4_round_trip_moves_velocity_error_little(name):
    import imageio.v3 as iio

    from evals.run import decode_mp4_luma
    from physim.video import decode_mp4

    rec = _record(name, 9)
    frames = render(rec.trajectory, rec.objects, RES)
    exact, _ = _evaluate(rec, frames)
    # A high-quality H.264 (yuv420p) encode; decoded to RGB for colours and to its luma
    # plane for memberships. (At imageio's default quality 5 the codec itself moves the
    # error by about 0.03-0.05 at 128²; see docs.)
    data = iio.imwrite(
        "<bytes>", frames, extension=".mp4", fps=10, codec="libx264", macro_block_size=2,
        quality=10,
    )  # fmt: skip
    tracks = parse.parse_record(decode_mp4(data), rec, config="lossy", luma=decode_mp4_luma(data))
    # One ffmpeg process for both (what physim evaluate reads): the same bytes.
    from evals.inputs import decode_mp4_both

    both = decode_mp4_both(data)
    assert np.array_equal(both[0], decode_mp4(data))
    assert np.array_equal(both[1], decode_mp4_luma(data))
    with pytest.raises(ValueError, match="ffmpeg could not decode"):
        decode_mp4_both(data[: len(data) // 3])
    law = laws.score(tracks, rec)
    assert abs(law["velocity_error"] - exact["velocity_error"]) < 0.005
    assert not abnormal.check(tracks, rec, "lossy")["abnormal"]
