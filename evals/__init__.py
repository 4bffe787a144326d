"""evals: parse any model's videos into tracks and score physical-law adherence.

Scoring a model (arrays in memory, exactly what ``physim evaluate`` writes)::

    from evals import evaluate_arrays
    results = evaluate_arrays({"uniform-id-0000000": frames, ...}, "data/uniform_eval")
    # frames: (T, R, R, 3) uint8, or float in [0, 1]; array_layout="TCHW" for PyTorch

Building blocks (one video; the parser is yours to choose here: ``config="lossy"`` for
anything that went through a codec or a model)::

    from evals import parse_video, score, check
    tracks = parse_video(frames, record.objects.rgb)  # (T, R, R, 3) uint8 -> Tracks
    laws = score(tracks, record)                   # velocity error (paper metric), ...
    flags = check(tracks, record)                  # abnormality flags

Files (what ``physim evaluate`` runs)::

    from evals import evaluate
    results = evaluate("gen/", "data/uniform_eval", "report/")

Modules: :mod:`evals.core` (the one evaluation core), :mod:`evals.inputs` (files,
arrays, panels, frame ranges), :mod:`evals.metrics` (the metric registry),
:mod:`evals.checks` (conditioning-frame checks), :mod:`evals.paper_protocol` (the paper's
evaluate.py metrics), :mod:`evals.leaderboard` (``physim report`` of evaluation folders),
:mod:`evals.parse` (frames -> tracks), :mod:`evals.laws` (law scores and
aggregation), :mod:`evals.abnormal` (abnormality checks), :mod:`evals.video_metrics`
(PSNR, SSIM, LPIPS, FVD, motion-mask IoUs; imports JAX), :mod:`evals.attributes`
(attribute priority), :mod:`evals.cases` (case-based retrieval), :mod:`evals.run` (files,
CLI) and :mod:`evals.report` (report.md and plots), :mod:`evals.bench` (speed).
"""

from evals.abnormal import CHECKS, AbnormalConfig, check
from evals.laws import aggregate, bootstrap_ci, score, velocity_error_batch
from evals.parse import PARSE_PRESETS, ParseConfig, Tracks, parse_batch, parse_record
from evals.parse import parse as parse_video  # `evals.parse` stays the module


def evaluate_arrays(videos, truth, **kwargs) -> dict:
    """Score videos held in memory; see :func:`evals.core.evaluate_arrays`."""
    from evals.core import evaluate_arrays as _evaluate_arrays

    return _evaluate_arrays(videos, truth, **kwargs)


def read_video(path, with_luma: bool = True):
    """Read a generated video file as :func:`evals.evaluate_arrays` input (mp4 luma kept)."""
    from evals.inputs import read_video as _read_video

    return _read_video(path, with_luma=with_luma)


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
    "evaluate_arrays",
    "parse_batch",
    "parse_record",
    "parse_video",
    "read_video",
    "score",
    "velocity_error_batch",
]
