"""Evaluation subsets below the grid size: the rows they miss are named, by default."""

import pytest

from physim import cli
from physim.generate import coverage_warning, grid_coverage, make_plan


def test_collision_subsets_alias_with_the_grid_and_say_so():
    cov = grid_coverage(make_plan("collision", "id", 32, 0))
    assert cov["rows"] == (32, 576)
    assert cov["axes"]["v2"] == (1, 6)  # v2 = 1.0 in every video
    assert cov["pairs"]["v1,v2"] == (2, 36)
    assert grid_coverage(make_plan("collision", "id", 64, 0))["pairs"]["v1,v2"] == (4, 36)
    w = coverage_warning(make_plan("collision", "id", 64, 0))
    assert "v2 2 of 6 values" in w and "(v1,v2) 4 of 36 pairs" in w and "--n 576" in w


@pytest.mark.parametrize(("scenario", "split", "n"),
                         [("collision", "id", 576), ("collision", "id", 10**6),
                          ("uniform", "train", 10), ("uniform", "id", 32)])  # fmt: skip
def test_whole_grids_and_random_splits_do_not_warn(scenario, split, n):
    assert coverage_warning(make_plan(scenario, split, n, 0)) is None


def test_physim_generate_prints_the_warning(tmp_path, capsys):
    assert cli.main(["generate", "collision", "--split", "id", "--n", "4", "--out",
                     str(tmp_path / "c"), "--no-progress"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "physim: warning: collision/id: 4 of 576 grid rows cover only" in err
    assert "v2 1 of 6 values" in err and "(v1,v2) 1 of 36 pairs" in err
