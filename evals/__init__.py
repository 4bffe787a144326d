"""evals: parse any model's videos into tracks and score physical-law adherence.

Library use (arrays in memory, no files)::

    from evals import parse_video, score, check
    tracks = parse_video(frames, record.objects.rgb)  # (T, R, R, 3) uint8 -> Tracks
    laws = score(tracks, record)                   # velocity error (paper metric), ...
    flags = check(tracks, record)                  # abnormality flags

Files (what ``physim evaluate`` runs)::

    from evals import evaluate
    results = evaluate("gen/", "data/uniform_eval", "report/")

Modules: :mod:`evals.parse` (frames -> tracks), :mod:`evals.laws` (law scores and
aggregation), :mod:`evals.abnormal` (abnormality checks), :mod:`evals.video_metrics`
(PSNR, SSIM, LPIPS, FVD, motion-mask IoUs; imports JAX), :mod:`evals.attributes`
(attribute priority), :mod:`evals.cases` (case-based retrieval), :mod:`evals.run` (files,
CLI) and :mod:`evals.report` (report.md and plots), :mod:`evals.bench` (speed).
"""

from evals.abnormal import CHECKS, AbnormalConfig, check
from evals.laws import aggregate, bootstrap_ci, score, velocity_error_batch
from evals.parse import PARSE_PRESETS, ParseConfig, Tracks, parse_batch, parse_record
from evals.parse import parse as parse_video  # `evals.parse` stays the module


def evaluate(*args, **kwargs) -> dict:
    """Score generated videos against a truth dataset; see :func:`evals.run.evaluate`."""
    from evals.run import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


__all__ = [
    "CHECKS",
    "PARSE_PRESETS",
    "AbnormalConfig",
    "ParseConfig",
    "Tracks",
    "aggregate",
    "bootstrap_ci",
    "check",
    "evaluate",
    "parse_batch",
    "parse_record",
    "parse_video",
    "score",
    "velocity_error_batch",
]
