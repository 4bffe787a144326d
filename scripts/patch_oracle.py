"""How well can a linear output head draw the truth at all? An oracle for DiT heads.

A DiT's linear head maps each token's ``width``-vector to its patch (pt*ph*pw*3 values), so
every patch it draws lies in a ``width``-dimensional affine subspace. This writes the truth
videos projected onto such a subspace, as a generation folder (``{id}.npy``, uint8) that
``physim evaluate`` scores like a model's:

* ``--pca K``: the best K-dimensional subspace of the truth's own patches (principal
  components of all patches of the set; optimistic: fitted on the videos it scores).
* ``--head WORKDIR``: the subspace of a trained model's linear head (final kernel columns
  plus bias; heads without ``dit.overlap`` only).

    python scripts/patch_oracle.py TRUTH_DIR OUT --pca 128 [--patch 4 8 8]
    python scripts/patch_oracle.py TRUTH_DIR OUT --head models/checkpoints/tiny-long-uniform
    physim evaluate OUT --truth TRUTH_DIR --out REPORT --metrics laws abnormal
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from models.dit import patchify, unpatchify
from physim import dataset


def to_patches(v: np.ndarray, patch) -> np.ndarray:
    """(N, T, R, R, C) -> (N * tokens, pt*ph*pw*C) in the DiT's patch order."""
    return patchify(v, patch).reshape(-1, int(np.prod(patch)) * v.shape[-1])


def from_patches(p: np.ndarray, patch, shape) -> np.ndarray:
    """Inverse of :func:`to_patches` for videos of ``shape`` (N, T, R, R, C)."""
    return unpatchify(p.reshape(shape[0], -1, p.shape[-1]), patch, shape[1:])


def project(patches: np.ndarray, basis: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Nearest points of the affine subspace ``offset + span(basis columns)`` (orthonormal
    ``basis`` (P, K)) to each row of ``patches`` (M, P)."""
    return (patches - offset) @ basis @ basis.T + offset


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("truth")
    ap.add_argument("out")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--pca", type=int, help="dimension K of the best subspace")
    group.add_argument("--head", help="a DiT workdir whose linear head's subspace is used")
    ap.add_argument("--patch", type=int, nargs=3, default=(4, 8, 8))
    ap.add_argument("--resolution", type=int, default=32)
    args = ap.parse_args(argv)
    patch = tuple(args.patch)
    if args.head:
        from models import sample

        s = sample.load(args.head)
        if s.cfg.dit.head != "linear" or any(s.cfg.dit.overlap):
            raise SystemExit(f"--head {args.head}: needs a linear head without overlap, got "
                             f"{s.cfg.dit.head!r}, overlap {s.cfg.dit.overlap}")
        patch, args.resolution = tuple(s.cfg.dit.patch), s.cfg.data.resolution
    ds = dataset.open(args.truth)
    v = np.stack([ds.frames(i, resolution=args.resolution) for i in range(len(ds))])
    flat = to_patches(v.astype(np.float64) / 127.5 - 1.0, patch)
    if args.head:
        kernel = np.asarray(s.params["final"]["kernel"], np.float64)  # (width, P)
        basis, offset = np.linalg.qr(kernel.T)[0], np.asarray(s.params["final"]["bias"])
    else:
        if not 1 <= args.pca <= flat.shape[1]:
            raise SystemExit(f"--pca must be in 1..{flat.shape[1]}, got {args.pca}")
        offset = flat.mean(0)
        _, sv, vt = np.linalg.svd(flat - offset, full_matrices=False)
        basis = vt[: args.pca].T
        print(f"variance kept: {(sv[:args.pca] ** 2).sum() / (sv ** 2).sum():.5f}")
    y = from_patches(project(flat, basis, offset), patch, v.shape)
    u = np.clip(np.round((y + 1.0) * 127.5), 0, 255).astype(np.uint8)
    os.makedirs(args.out, exist_ok=True)
    for vid, video in zip(ds.ids, u, strict=True):
        np.save(os.path.join(args.out, f"{vid}.npy"), video, allow_pickle=False)
    print(f"wrote {len(u)} projected videos to {args.out} (subspace dim {basis.shape[1]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
