"""The quickstart at its smallest setting (``--smoke``: 2 videos per split), as a user runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_smoke(tmp_path):
    out = tmp_path / "qs"
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop("PHYSIM_CHECKPOINT", None)
    r = subprocess.run(["bash", str(ROOT / "scripts" / "quickstart.sh"), "--smoke", "--out",
                        str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = out / "report" / "report.md"
    assert f"report: {out}/report/report.md" in r.stdout
    md = report.read_text()
    assert "**truth** (reference)" in md and "**copy-last** (reference)" in md
    assert (out / "report" / "comparison.csv").is_file()
    shipped = "rolling out the checkpoint" in r.stdout
    assert shipped or "no checkpoint is shipped" in r.stdout
    if shipped:  # every scenario's model rows, the law table, plots and GIF strips
        for sc in ("uniform", "collision", "parabola"):
            assert f"{sc}-tiny" in md and f"#### {sc}-eval" in md
        assert "Laws per scenario" in md and "momentum error" in md and "median a_y" in md
        assert list((out / "report" / "strips").glob("*.gif"))
        assert (out / "report" / "errors.png").is_file()
        assert (out / "report" / "velocity_map.png").is_file()
    # the references separate: the truth scores far better than a frozen ball
    import csv

    rows = list(csv.DictReader(open(out / "report" / "comparison.csv")))
    for sc in ("uniform", "collision", "parabola"):
        err = {r["model_or_ref"]: float(r["velocity_error"]) for r in rows
               if r["group"] == "all" and r["eval"] == f"{sc}-eval"}
        assert err["truth"] < 0.2 < err["copy-last"], (sc, err)


def test_quickstart_rejects_unknown_option(tmp_path):
    r = subprocess.run(["bash", str(ROOT / "scripts" / "quickstart.sh"), "--bogus"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "unknown option" in r.stderr


def test_quickstart_trains_the_presets_it_ships():
    # `quickstart.sh --train` retrains QUICKSTART_MODELS; the shipped quickstart checkpoints
    # must be those presets, one per scenario.
    from evals.experiments import QUICKSTART_MODELS
    from models import checkpoint

    cards = [c for c in checkpoint.shipped() if c.get("quickstart")]
    assert sorted(c["scenario"] for c in cards) == sorted(QUICKSTART_MODELS)
    for c in cards:
        assert c["preset"] == QUICKSTART_MODELS[c["scenario"]].preset, c["name"]
