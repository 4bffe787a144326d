"""The paper's reported numbers (Kang et al. 2024, arXiv 2411.02385 v2), for side-by-side
tables. Source: ``shared/reference/phyworld-paper.md`` (section numbers below). Values not
printed in the paper's text (most of Fig. 3 is a plot) are ``None``; the axis ranges read off
the figure are kept in ``*_range`` so a report can say "paper: about 0.30-0.45".
"""

from __future__ import annotations

# §4 "GT parse floor (system error)" and Table 3.
PARSE_FLOOR = {"uniform": 0.0099, "collision": 0.0117, "parabola": 0.0210}

# §4 headline results (Fig. 3): velocity error, keyed (scenario, model, data).
SCALING = {
    ("uniform", "S", "30K"): {"id": 0.022, "ood": None},
    ("uniform", "L", "3M"): {"id": 0.012, "ood": 0.427},
    ("uniform", "B", "30K"): {"id": None, "ood": 0.433},
    ("uniform", "B", "300K"): {"id": None, "ood": 0.328},
    ("uniform", "B", "3M"): {"id": None, "ood": 0.358},
}
SCALING_RANGE = {  # (id range, ood range) read off Fig. 3's axes
    "uniform": ((0.01, 0.03), (0.30, 0.45)),
    "collision": ((0.01, 0.03), (0.15, 0.30)),
    "parabola": ((0.02, 0.06), (0.30, 0.40)),
}

# §5.3: the attribute kept on swapped combinations, and the evidence.
ATTRIBUTES = {
    "color_shape": ("color", "a blue ball becomes a square, a red square a ball; 0 exceptions "
                             "in 1,400 cases"),
    "size_shape": ("size", "shape flips (620 eval cases)"),
    "velocity_shape": ("velocity", "shape flips; 0 exceptions in 1,400 (CogVideoX-VAE rerun)"),
    "color_size": ("color", "size changes, colour never does (202 binary cases)"),
    "color_velocity": ("color", "colour kept, velocity shifts a lot (1,584 eval cases)"),
    "size_velocity": ("size", "size mostly kept, velocity shifts at the extremes"),
    # Fig. 16, the counter-example: neither attribute wins ("mixed", read by compare).
    "color_ring": ("mixed", "trained on blue balls and red rings, a red ring becomes a red "
                            "ball or a blue ring: colour no longer dominates"),
}
# A pair reads "mixed" when the attribute kept less often still wins at least this share
# of the videos where exactly one attribute was kept.
MIXED_SHARE = 0.2
ATTRIBUTE_ORDER = ("color", "size", "velocity", "shape")

# §5.1 / §5.2 (qualitative).
INTERPOLATION = ("Uniform: inside a velocity gap, generated velocities drift toward the "
                 "trained bands; narrower gaps or reintroduced bands let the model interpolate. "
                 "Collision: held-out (v1, v2) squares inside the convex hull of the training "
                 "region behave like ID; points outside have large errors.")
MEMORIZATION = ("Train v in [2.5, 4.0], test v in [1.0, 2.5]. Without flip the model outputs "
                "only positive velocities biased toward high speed; with flip it sometimes "
                "reverses direction (the nearest training case is a flipped video).")

COMPOSITION = ("Spatial and temporal composition of disjoint events works, e.g. a moving "
               "square + a static ball, or a collision + a wall bounce (§5.4). Failure mode: "
               "a red ball vanishes when it is absent from the training bounce cases.")

AMBIGUITY = ("Pixel-level gap and position differences give plausible but wrong outcomes "
             "(§5.5; gaps stepped by 0.0005, block positions by 1e-4 of the scene, '1 pixel "
             "is about 0.026 radius at 256²').")

# §2 Table 2 (in-template / out-of-template), 1 conditioning frame.
COMBINATORIAL = {
    ("XL", 6): {"fvd": (18.2, 22.1), "ssim": (.973, .943), "psnr": (32.8, 25.5),
                "lpips": (.028, .082), "abnormal": (0.03, 0.67)},
    ("XL", 30): {"fvd": (19.5, 19.7), "ssim": (.973, .950), "psnr": (32.7, 27.1),
                 "lpips": (.028, .065), "abnormal": (0.03, 0.18)},
    ("XL", 60): {"fvd": (17.6, 18.7), "ssim": (.972, .951), "psnr": (32.4, 27.3),
                 "lpips": (.030, .062), "abnormal": (0.02, 0.10)},
    ("B", 60): {"fvd": (18.4, 21.4), "ssim": (.967, .949), "psnr": (30.9, 27.0),
                "lpips": (.035, .066), "abnormal": (0.03, 0.24)},
}
