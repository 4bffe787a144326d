"""Case retrieval (``python -m models.baselines knn``): exact nearest cases, mirroring,
determinism, the approximate search, and the written rollouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

import physim.dataset
from models import baselines, retrieval


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("knn")
    physim.dataset.generate("uniform", split="train", n=60, seed=3, out=root / "train",
                            progress=False)
    physim.dataset.generate("uniform", split="id", n=12, seed=4, out=root / "eval",
                            progress=False)
    return root, physim.dataset.open(root / "train"), physim.dataset.open(root / "eval")


def _brute(train, q, n_cond, res, flip):
    """Loop reference: (index, mirrored, distance) minimising the exact SSD."""
    best = None
    for i in range(len(train)):
        t = train.frames(i, resolution=res, n_frames=n_cond).astype(np.int64)
        for mirrored in (False, True) if flip else (False,):
            qq = q[:, :, ::-1] if mirrored else q
            d = int(((qq.astype(np.int64) - t) ** 2).sum())
            if best is None or d < best[2]:
                best = (i, mirrored, d)
    return best


@pytest.mark.parametrize("flip", [False, True])
def test_exact_search_equals_a_brute_force_loop(sets, flip):
    _, train, ev = sets
    idx = retrieval.CaseIndex(train, 3, 16)
    q = np.stack([ev.frames(i, resolution=16, n_frames=3) for i in range(len(ev))])
    j, m, d = idx.query(q, flip=flip)
    for k in range(len(ev)):
        assert (int(j[k]), bool(m[k]), int(d[k])) == _brute(train, q[k], 3, 16, flip)
    j2, m2, d2 = idx.query(q, flip=flip)  # deterministic
    np.testing.assert_array_equal(j, j2)
    np.testing.assert_array_equal(d, d2)


def test_a_training_video_finds_itself_and_its_mirror(sets):
    _, train, _ = sets
    idx = retrieval.CaseIndex(train, 3, 16)
    own = np.stack([train.frames(i, resolution=16, n_frames=3) for i in (5, 17)])
    j, m, d = idx.query(own)
    assert list(j) == [5, 17] and not m.any() and not d.any()
    # A mirrored query (the ball moving left) is far from every unmirrored case, and with
    # --flip it is the mirrored case of the same video, at distance zero.
    mirrored = own[:, :, :, ::-1]
    _, _, d_plain = idx.query(mirrored)
    j, m, d = idx.query(mirrored, flip=True)
    assert list(j) == [5, 17] and m.all() and not d.any()
    assert (d_plain > 0).all()


def test_approximate_search_reranks_to_the_exact_case(sets):
    _, train, ev = sets
    q = np.stack([ev.frames(i, resolution=16, n_frames=3) for i in range(len(ev))])
    exact = retrieval.CaseIndex(train, 3, 16).query(q, flip=True)
    approx = retrieval.CaseIndex(train, 3, 16, approx=4, rerank=20).query(q, flip=True)
    # Every approximate answer is at an exact distance, and no better than the exact one.
    assert (approx[2] >= exact[2]).all()
    assert np.mean(approx[0] == exact[0]) >= 0.75
    with pytest.raises(ValueError, match="approx"):
        retrieval.CaseIndex(train, 3, 16, approx=3)


def test_knn_cli_writes_rollouts_that_continue_their_case(sets, tmp_path):
    root, train, ev = sets
    out = tmp_path / "gen"
    rc = baselines.main(["knn", "--train", str(root / "train"), "--data", str(root / "eval"),
                         "--out", str(out), "--resolution", "16", "--flip"])
    assert rc == 0
    meta = json.loads((out / "knn.json").read_text())
    assert meta["flip"] and len(meta["cases"]) == len(ev)
    for i, vid in enumerate(ev.ids):
        v = np.load(out / f"{vid}.npy", allow_pickle=False)
        case = meta["cases"][vid]
        t = train.frames(case["train_index"], resolution=16, flip=case["mirrored"])
        assert v.shape == (ev.n_frames, 16, 16, 3) and v.dtype == np.uint8
        np.testing.assert_array_equal(v[:3], ev.frames(i, resolution=16, n_frames=3))
        np.testing.assert_array_equal(v[3:], t[3:])
        assert case["train_id"] == train.ids[case["train_index"]]
    # Bad input: a clear error, exit 2, nothing written.
    assert baselines.main(["knn", "--data", str(root / "eval"), "--out",
                           str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
