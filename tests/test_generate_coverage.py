"""Evaluation subsets below the grid size: the rows they miss are named, by default."""

import numpy as np
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


def _grid(scenario, split):
    from physim.plan import _cached_spec, _canon

    p = make_plan(scenario, split, 1, 0)
    return _cached_spec(p.scenario, _canon(p.spec)).grid(split)[1]


@pytest.mark.parametrize("n", [1, 20, 36, 37, 64, 100])
def test_stratified_rows_take_every_velocity_pair_once_before_any_twice(n):
    from physim.generate import stratified_rows

    cols = _grid("collision", "id")
    rows = stratified_rows(cols, n)
    assert len(set(rows.tolist())) == n and np.all(np.diff(rows) > 0)
    pairs = [(cols["v1"][i], cols["v2"][i]) for i in rows]
    counts = np.array(list({p: pairs.count(p) for p in set(pairs)}.values()))
    n_pairs = len(set(zip(cols["v1"], cols["v2"], strict=True)))
    assert len(counts) == min(n, n_pairs)  # every pair once before any twice
    assert counts.max() - counts.min() <= 1
    for ax in ("r1", "r2", "v1", "v2"):  # each axis as evenly as allowed
        vals = np.unique(cols[ax][rows], return_counts=True)[1]
        assert len(vals) == min(n, len(np.unique(cols[ax]))) and vals.max() - vals.min() <= 1
    if n == 64:  # negative control: the evenly spaced rows of --n 64 cover 4 pairs
        even = (np.arange(n) * len(cols["v1"])) // n
        assert len({(cols["v1"][i], cols["v2"][i]) for i in even}) == 4


def test_stratified_rows_spread_one_ball_grids():
    from physim.generate import stratified_rows

    cols = _grid("uniform", "ood")
    rows = stratified_rows(cols, 40)
    for ax in ("r", "v"):
        vals = np.unique(cols[ax][rows], return_counts=True)[1]
        assert len(vals) == min(40, len(np.unique(cols[ax])))
    with pytest.raises(ValueError, match="n must be"):
        stratified_rows(cols, 0)
