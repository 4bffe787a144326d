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


def test_generate_select_stratified_covers_every_velocity_pair(tmp_path, capsys):
    from physim import dataset

    out = tmp_path / "c"
    assert cli.main(["generate", "collision", "--split", "id", "--n", "36", "--select",
                     "stratified", "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err  # every pair and axis value covered
    ds = dataset.open(out)
    pairs = {(ds[i].params["v1"], ds[i].params["v2"]) for i in range(len(ds.ids))}
    # The 36 rows hold each velocity pair once; the few whose discs cannot be placed are
    # dropped as in any grid subset, so each pair is still in at most one video.
    strat = make_plan("collision", "id", 36, 0, select="stratified")
    assert grid_coverage(strat)["pairs"]["v1,v2"] == (36, 36)
    assert len(pairs) == len(ds.ids) >= 30
    man = (out / "manifest.json").read_text()
    assert "stratified" in man
    # Same bytes for any worker count and shard order; the even default is unchanged.
    again = tmp_path / "c2"
    assert cli.main(["generate", "collision", "--split", "id", "--n", "36", "--select",
                     "stratified", "--out", str(again), "--no-progress", "--workers", "2",
                     "--shard-size", "10"]) == 0  # fmt: skip
    ds2 = dataset.open(again)
    assert ds2.ids == ds.ids
    even = make_plan("collision", "id", 36, 0)
    assert even.select == "even" and grid_coverage(even)["pairs"]["v1,v2"][0] < 36
    # A random split has no grid to stratify; an unknown selection is named.
    with pytest.raises(ValueError, match="needs an evaluation grid"):
        make_plan("uniform", "train", 10, 0, select="stratified")
    with pytest.raises(ValueError, match="--select must be one of"):
        make_plan("collision", "id", 10, 0, select="random")
    # Asking for the other selection in the same folder is refused, naming it.
    assert cli.main(["generate", "collision", "--split", "id", "--n", "36", "--out",
                     str(out), "--no-progress"]) == 2  # fmt: skip
    assert "select" in capsys.readouterr().err
