"""Case retrieval: the nearest training video by its conditioning frames, in pixel space.

A reference model that needs no training and generalises purely by copying cases. For an
evaluation video with conditioning frames ``q`` (``n_cond`` frames at resolution R), the
case is the training video ``t`` minimising the sum of squared pixel differences
``||q - t[:n_cond]||²`` over uint8 RGB values; with ``flip``, horizontally mirrored training
videos are candidates too (the distance is then taken to the mirrored pixels). The
generation is the evaluation video's own conditioning frames followed by the case's frames
``n_cond..T-1`` (mirrored when the mirrored case won).

Search (:class:`CaseIndex`):

* exact (``approx=0``): float64 matrix products over chunks of the training frames. Pixel
  values are integers up to 255 and a frame stack has at most a few 10^5 values, so every
  distance is an integer below 2^53 that float64 products give exactly (rounded back to
  int64): the nearest case is exact, ties go to the lowest training index, unmirrored first.
* approximate (``approx=F``): the same search on F×F block means of the frames (F² times
  fewer values: 300K videos at 32 px and F = 4 take 1.7 GB), keeping the ``rerank`` best
  candidates, which are then rendered at full resolution and ranked exactly.

Training frames are rendered once, in chunks, from the dataset's states
(``physim.dataset.Dataset.frames``).
"""

from __future__ import annotations

import json
import os

import numpy as np

CHUNK = 2048  # training videos per matrix-product chunk


def _render_cond(ds, indices, n_cond: int, resolution: int) -> np.ndarray:
    """uint8 (len(indices), n_cond, R, R, 3): the first ``n_cond`` frames of each video."""
    out = np.empty((len(indices), n_cond, resolution, resolution, 3), np.uint8)
    for j, i in enumerate(indices):
        out[j] = ds.frames(int(i), resolution=resolution, n_frames=n_cond)
    return out


def _features(frames: np.ndarray, approx: int) -> np.ndarray:
    """float64 (B, D) search vectors of uint8 frames (B, n, R, R, 3): raw pixels, or the
    means of ``approx``×``approx`` pixel blocks."""
    x = frames.astype(np.float64)
    if approx > 1:
        b, n, r, _, c = x.shape
        x = x.reshape(b, n, r // approx, approx, r // approx, approx, c).mean(axis=(3, 5))
    return x.reshape(len(x), -1)


def _ssd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact int64 sums of squared differences of uint8 a (...) against each of b (K, ...)."""
    d = a.astype(np.int64)[None] - b.astype(np.int64)
    return (d * d).reshape(len(d), -1).sum(axis=1)


class CaseIndex:
    """Search structure over a training dataset's conditioning frames.

    Args:
      train: a ``physim.dataset.Dataset`` (the training set).
      n_cond: conditioning frames compared.
      resolution: pixels per side of the compared frames.
      approx: 0 for exact search, else the block size F of the approximate search
        (R must be a multiple of F).
      rerank: candidates kept per query and orientation by the approximate search.
    """

    def __init__(self, train, n_cond: int, resolution: int, approx: int = 0,
                 rerank: int = 64, progress=None):
        if len(train) == 0:
            raise ValueError("the training dataset is empty")
        if not 1 <= n_cond < train.n_frames:
            raise ValueError(f"n_cond must be in [1, {train.n_frames}), got {n_cond}")
        if approx < 0 or (approx > 1 and resolution % approx):
            raise ValueError(f"approx must be 0 or a divisor of the resolution {resolution}, "
                             f"got {approx}")
        self.train, self.n_cond, self.resolution = train, n_cond, resolution
        self.approx, self.rerank = approx, rerank
        feats = []
        for lo in range(0, len(train), CHUNK):
            idx = range(lo, min(lo + CHUNK, len(train)))
            f = _render_cond(train, idx, n_cond, resolution)
            if approx > 1:  # keep only the block means
                feats.append(_features(f, approx).astype(np.float32))
            else:
                feats.append(f.reshape(len(f), -1))  # uint8, exact
            if progress:
                progress(len(idx))
        self.feats = np.concatenate(feats)
        # Squared norms in float64 (exact for uint8 pixels).
        self.norms = np.concatenate([np.einsum("ij,ij->i", c, c) for c in
                                     (self._chunk(lo) for lo in range(0, len(train), CHUNK))])

    def _chunk(self, lo: int) -> np.ndarray:
        return self.feats[lo : lo + CHUNK].astype(np.float64)

    def _distances(self, q: np.ndarray) -> np.ndarray:
        """(Q, M) float64 squared distances of query vectors q (Q, D) to every case."""
        qn = np.einsum("ij,ij->i", q, q)
        out = np.empty((len(q), len(self.feats)))
        for lo in range(0, len(self.feats), CHUNK):
            c = self._chunk(lo)
            out[:, lo : lo + len(c)] = qn[:, None] + self.norms[lo : lo + len(c)][None] \
                - 2.0 * (q @ c.T)
        return out

    def query(self, cond: np.ndarray, flip: bool = False):
        """Nearest case of each query.

        Args:
          cond: uint8 (Q, n_cond, R, R, 3) conditioning frames.
          flip: mirrored training videos are candidates too.
        Returns:
          (index (Q,) int64 training indices, mirrored (Q,) bool, distance (Q,) int64 sums
          of squared uint8 differences).
        """
        cond = np.asarray(cond)
        want = (self.n_cond, self.resolution, self.resolution, 3)
        if cond.ndim != 5 or cond.shape[1:] != want or cond.dtype != np.uint8:
            raise ValueError(f"cond must be uint8 (Q, {', '.join(map(str, want))}), got "
                             f"{cond.dtype} {cond.shape}")
        views = [cond] + ([cond[:, :, :, ::-1]] if flip else [])  # mirror(q) vs t
        best = np.full(len(cond), np.iinfo(np.int64).max)
        idx = np.zeros(len(cond), np.int64)
        mir = np.zeros(len(cond), bool)
        for o, v in enumerate(views):
            d = self._distances(_features(v, self.approx))
            if self.approx > 1:
                k = min(self.rerank, d.shape[1])
                cand = np.argsort(d, axis=1, kind="stable")[:, :k]  # (Q, k)
                exact = self._exact(v, cand)
            else:
                cand = None
                exact = np.rint(d).astype(np.int64)  # exact integers (see module doc)
            for qi in range(len(cond)):
                row = exact[qi]
                j = int(np.argmin(row))  # exact search: the first of ties, lowest index
                tj = j if cand is None else int(np.min(cand[qi][row == row[j]]))
                if row[j] < best[qi]:
                    best[qi], idx[qi], mir[qi] = row[j], tj, bool(o)
        return idx, mir, best

    def _exact(self, v: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Exact distances (Q, k) of queries v to their candidate cases, rendered anew."""
        out = np.empty(cand.shape, np.int64)
        uniq, inv = np.unique(cand, return_inverse=True)
        frames = _render_cond(self.train, uniq, self.n_cond, self.resolution)
        inv = inv.reshape(cand.shape)
        for qi in range(len(v)):
            out[qi] = _ssd(v[qi], frames[inv[qi]])
        return out


def write_knn(train_dir, data_dir, out, resolution: int = 32, flip: bool = False,
              approx: int = 0, n_cond: int | None = None, limit: int | None = None,
              batch: int = 256) -> int:
    """Write ``out/{id}.npy`` (the retrieval rollout) for the first ``limit`` videos of the
    evaluation set ``data_dir``, and ``out/knn.json`` (per video: the training id, whether
    it was mirrored, the distance). Returns the number of videos written."""
    import physim.dataset

    if resolution < 8:
        raise ValueError(f"resolution must be >= 8, got {resolution}")
    train = physim.dataset.open(train_dir, split="train")
    ds = physim.dataset.open(data_dir)
    n = len(ds) if limit is None else min(int(limit), len(ds))
    if n == 0:
        raise ValueError(f"{data_dir} holds no videos")
    c = int(n_cond) if n_cond is not None else int(ds[0].n_cond)
    if train.n_frames < ds.n_frames:
        raise ValueError(f"training videos have {train.n_frames} frames, the evaluation "
                         f"videos {ds.n_frames}")
    index = CaseIndex(train, c, resolution, approx=approx)
    os.makedirs(out, exist_ok=True)
    ids, tids, cases = ds.ids, train.ids, {}
    for lo in range(0, n, batch):
        rows = range(lo, min(lo + batch, n))
        full = [ds.frames(i, resolution=resolution) for i in rows]
        j, m, d = index.query(np.stack([f[:c] for f in full]), flip=flip)
        for i, f, tj, mj, dj in zip(rows, full, j, m, d, strict=True):
            case = train.frames(int(tj), resolution=resolution, flip=bool(mj))
            v = np.concatenate([f[:c], case[c : f.shape[0]]])
            path = os.path.join(out, f"{ids[i]}.npy")
            np.save(path + ".tmp.npy", v, allow_pickle=False)
            os.replace(path + ".tmp.npy", path)
            cases[ids[i]] = {"train_id": tids[int(tj)], "train_index": int(tj),
                             "mirrored": bool(mj), "distance": int(dj)}
    meta = {"train": str(train_dir), "resolution": resolution, "n_cond": c, "flip": flip,
            "approx": approx, "cases": cases}
    tmp = os.path.join(out, f".knn.json.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(meta, fh, indent=1)
    os.replace(tmp, os.path.join(out, "knn.json"))
    return n
