"""Case-based retrieval: does a generation copy its nearest training case?

The paper's central finding (§5) is that video models generalise by mimicking the closest
training example rather than by applying the law. We measure it directly: each video is a
point in attribute space (per object: radius, velocity (x, y); plus its colours and
shapes). For every generated video we find the nearest training case to the *generated*
attributes, among training videos with the same colours and shapes when there are any,
and report whether the generation sits closer to that case than to its own truth:
``closer_to_case``. Distances are Euclidean after dividing each continuous dimension by
its spread (standard deviation) in the training set.

A model that applies the law stays at its truth (closer_to_case ≈ 0 out of distribution);
one that retrieves cases lands on training points (closer_to_case → 1).
"""

from __future__ import annotations

import numpy as np

from evals.laws import aggregate

MAX_CASES = 200_000


def _vector(attrs: dict) -> np.ndarray:
    return np.concatenate([np.ravel(attrs["radius"]), np.ravel(attrs["velocity"])])


def _key(attrs: dict) -> tuple:
    return (tuple(attrs["color"]), tuple(attrs["shape"]))


class CaseBank:
    """Training attribute vectors (M, D), their category keys and per-dimension scales."""

    def __init__(self, vectors: np.ndarray, keys: list[tuple]):
        self.vectors = np.asarray(vectors, dtype=np.float64)
        if self.vectors.ndim != 2 or len(self.vectors) == 0:
            raise ValueError(f"need a non-empty (M, D) array of cases, got {self.vectors.shape}")
        self.keys = list(keys)
        sd = self.vectors.std(axis=0)
        self.scale = np.where(sd > 1e-9, sd, 1.0)
        self._by_key: dict[tuple, np.ndarray] = {}
        for i, k in enumerate(self.keys):
            self._by_key.setdefault(k, []).append(i)
        self._by_key = {k: np.asarray(v) for k, v in self._by_key.items()}

    def nearest(self, vec: np.ndarray, key: tuple | None = None) -> tuple[int, float]:
        """Index and scaled distance of the nearest case (same key when any case has it)."""
        idx = self._by_key.get(key) if key is not None else None
        cand = self.vectors if idx is None else self.vectors[idx]
        d = np.linalg.norm((cand - vec) / self.scale, axis=1)
        j = int(np.argmin(d))
        return (int(idx[j]) if idx is not None else j), float(d[j])


def train_attributes(train, max_cases: int = MAX_CASES) -> CaseBank:
    """Case bank of a training dataset (at most ``max_cases`` videos, evenly strided)."""
    from evals.attributes import truth_attributes

    n = len(train)
    if n == 0:
        raise ValueError("the training dataset is empty")
    step = max(1, -(-n // max_cases))
    vecs, keys = [], []
    for i in range(0, n, step):
        a = truth_attributes(train[i])
        vecs.append(_vector(a))
        keys.append(_key(a))
    dims = {len(v) for v in vecs}
    if len(dims) != 1:
        raise ValueError(f"training videos have different object counts: {sorted(dims)}")
    return CaseBank(np.stack(vecs), keys)


def case_score(gen_attrs: dict, true_attrs: dict, bank: CaseBank) -> dict:
    """Distances of one generation to its nearest training case and to its truth."""
    g = _vector(gen_attrs)
    t = _vector(true_attrs)
    if g.shape != t.shape or g.shape[0] != bank.vectors.shape[1]:
        raise ValueError(f"attribute vectors differ: {g.shape}, {t.shape}, {bank.vectors.shape}")
    if not np.all(np.isfinite(g)):
        return {"case_index": -1, "d_case": np.nan, "d_truth": np.nan, "closer_to_case": np.nan}
    j, d_case = bank.nearest(g, _key(gen_attrs))
    d_truth = float(np.linalg.norm((g - t) / bank.scale))
    return {
        "case_index": j,
        "d_case": d_case,
        "d_truth": d_truth,
        "closer_to_case": float(d_case < d_truth),
    }


def case_scores(rows: list[dict], bank: CaseBank) -> dict:
    """Score every row holding ``_attrs`` / ``_true_attrs``; aggregate per split and level.

    Adds ``d_case``, ``d_truth`` and ``closer_to_case`` to the rows in place.
    """
    scored = []
    for r in rows:
        if "_attrs" not in r:
            continue
        s = case_score(r["_attrs"], r["_true_attrs"], bank)
        r.update({k: v for k, v in s.items() if k != "case_index"})
        scored.append({"split": r["split"], "level": r["level"], **s})
    if not scored:
        return {"n_scored": 0}
    out = aggregate(scored, ["closer_to_case", "d_case", "d_truth"])
    out["n_cases"] = int(bank.vectors.shape[0])
    return out
