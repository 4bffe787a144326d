"""scripts/patch_oracle.py: the subspace a linear DiT head can draw, as an evaluable folder."""

import importlib.util
import os

import numpy as np
import pytest

from physim import cli, dataset

_PATH = os.path.join(os.path.dirname(__file__), "..", "scripts", "patch_oracle.py")
_spec = importlib.util.spec_from_file_location("patch_oracle", _PATH)
oracle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oracle)


def test_patches_round_trip_in_the_dit_order():
    v = np.random.default_rng(0).normal(size=(2, 8, 16, 16, 3))
    p = oracle.to_patches(v, (4, 8, 8))
    assert p.shape == (2 * 2 * 2 * 2, 4 * 8 * 8 * 3)
    np.testing.assert_array_equal(oracle.from_patches(p, (4, 8, 8), v.shape), v)
    # Row 1 is the token right of token 0: frames 0-3, rows 0-7, columns 8-15.
    np.testing.assert_array_equal(p[1].reshape(4, 8, 8, 3), v[0, :4, :8, 8:])


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    out = tmp_path_factory.mktemp("oracle") / "truth"
    assert cli.main(["generate", "uniform", "--split", "id", "--n", "6", "--seed", "0",
                     "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    return out


def test_full_subspace_is_exact_and_a_small_one_is_not(truth, tmp_path):
    ds = dataset.open(str(truth))
    want = np.stack([ds.frames(i, resolution=32) for i in range(len(ds))])
    for k, exact in ((768, True), (4, False)):
        out = tmp_path / f"k{k}"
        assert oracle.main([str(truth), str(out), "--pca", str(k)]) == 0
        got = np.stack([np.load(out / f"{vid}.npy") for vid in ds.ids])
        assert got.shape == want.shape and got.dtype == np.uint8
        err = np.abs(got.astype(int) - want).max()
        assert (err <= 1) if exact else (err > 50), (k, err)
    with pytest.raises(SystemExit, match="--pca"):
        oracle.main([str(truth), str(tmp_path / "bad"), "--pca", "0"])
