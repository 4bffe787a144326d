"""Input checks: are a model's conditioning frames the truth's, in our conventions?

A user's pipeline can pass wrong frames silently: BGR channel order (OpenCV), a
horizontal or vertical flip (image vs world y), an off-by-one in the frame range, or the
videos of another evaluation set. The conditioning frames (``k < n_cond``) of a generated
video must equal the truth's up to codec noise, so each of those mistakes is recognised by
undoing it: :func:`conditioning_check` compares the generated conditioning frames with the
truth's as given and after each candidate mistake, and names the one that explains them.

Distances are mean squared differences of block-averaged frames (0-255 units², blocks of
``max(1, R // 32)`` pixels: averaging cuts codec and sampling noise, objects stay).
"""

from __future__ import annotations

import numpy as np

from physim import world

ISSUES = ("ok", "bgr", "hflip", "vflip", "offset+1", "offset-1", "mismatch")
NOT_CHECKED = "n/a"  # --frames rollout: the files hold no conditioning frames
# A candidate mistake is named when undoing it at least halves the distance.
EXPLAIN_RATIO = 0.5
# Frames farther from the truth than half of both frames' content are another video.
MISMATCH_RATIO = 0.5


def _pool(frames: np.ndarray, b: int) -> np.ndarray:
    x = np.asarray(frames, dtype=np.float64)
    if b == 1:
        return x
    t, h, w, c = x.shape
    h2, w2 = h // b, w // b
    return x[:, : h2 * b, : w2 * b].reshape(t, h2, b, w2, b, c).mean(axis=(2, 4))


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - b) ** 2)) if a.size else float("nan")


def conditioning_check(frames, truth, n_cond: int,
                       background=world.PALETTE[world.BACKGROUND]) -> dict:  # fmt: skip
    """Compare a generated video's conditioning frames with the truth's.

    Args:
      frames: (T, R, R, 3) uint8 generated video (conditioning frames included).
      truth: (T, R, R, 3) uint8 truth render at the same resolution.
      n_cond: conditioning frames (``k < n_cond`` are compared).
      background: RGB of the empty box.

    Returns:
      ``cond_check``: one of :data:`ISSUES` (``"ok"``; ``"bgr"``: channels reversed;
      ``"hflip"`` / ``"vflip"``: mirrored left-right / upside down; ``"offset+1"``: frame k
      is the truth's k+1 (the video starts a frame late); ``"offset-1"``: frame k is the
      truth's k-1; ``"mismatch"``: another video altogether) and ``cond_mse``, the distance
      (0-255 units², block-averaged) of the frames as given.
    """
    n = int(n_cond)
    frames, truth = np.asarray(frames), np.asarray(truth)
    if n < 1 or frames.shape[0] < n:
        return {"cond_check": NOT_CHECKED, "cond_mse": float("nan")}
    b = max(1, frames.shape[1] // 32)
    g = _pool(frames[:n], b)
    t = _pool(truth[:n], b)
    bg = np.asarray(background, dtype=np.float64)
    d = {
        "ok": _mse(g, t),
        "bgr": _mse(g[..., ::-1], t),
        "hflip": _mse(g[:, :, ::-1], t),
        "vflip": _mse(g[:, ::-1], t),
        "offset+1": _mse(g, _pool(truth[1 : n + 1], b)),
        "offset-1": _mse(g[1:], t[:-1]) if n > 1 else float("nan"),
    }
    best = min((k for k in d if np.isfinite(d[k])), key=lambda k: d[k])
    content = _mse(g, bg) + _mse(t, bg)
    if best != "ok" and d[best] < EXPLAIN_RATIO * d["ok"]:
        issue = best if d[best] <= MISMATCH_RATIO * content else "mismatch"
    else:
        issue = "ok" if d["ok"] <= MISMATCH_RATIO * content or d["ok"] == 0 else "mismatch"
    return {"cond_check": issue, "cond_mse": d["ok"]}


def summarize_conditioning(rows: list[dict], max_ids: int = 20) -> dict:
    """Counts of each :data:`ISSUES` value over per-video rows (``cond_check`` keys) and
    the first ``max_ids`` ids flagged with each issue."""
    checked = [r for r in rows if r.get("cond_check", NOT_CHECKED) != NOT_CHECKED]
    counts = {k: sum(r["cond_check"] == k for r in checked) for k in ISSUES}
    flagged = {k: [r["id"] for r in checked if r["cond_check"] == k][:max_ids]
               for k in ISSUES if k != "ok" and counts[k]}  # fmt: skip
    return {
        "n_checked": len(checked),
        "n_flagged": len(checked) - counts["ok"],
        "counts": counts,
        "flagged_ids": flagged,
    }


def describe(summary: dict) -> str:
    """One line naming what the conditioning check found (empty when all is well)."""
    if not summary.get("n_flagged"):
        return ""
    words = {"bgr": "BGR channel order", "hflip": "flipped left-right",
             "vflip": "flipped upside down", "offset+1": "one frame late (frame k is the "
             "truth's k+1)", "offset-1": "one frame early (frame k is the truth's k-1)",
             "mismatch": "not the truth's conditioning frames (another video or set)"}  # fmt: skip
    parts = [f"{n} {words[k]}" for k, n in summary["counts"].items() if k != "ok" and n]
    return (f"conditioning frames of {summary['n_flagged']} of {summary['n_checked']} videos "
            f"do not match the truth: " + "; ".join(parts))  # fmt: skip
