"""``physim report RUN_DIR...``: comparison tables and plots from finished experiment runs.

(Plain ``physim evaluate`` folders go to :mod:`evals.leaderboard` instead.)

Reads each run's ``plan.json`` (written by :mod:`evals.experiments`) and the
``results.json`` / ``per_video.csv`` of every evaluated cell and reference (ground-truth
parse floor, copy-last-frame), and writes into ``--out``:

- ``comparison.csv``: one row per (run, model or reference, eval set, split/level);
- ``report.md``: per experiment, our numbers beside the paper's (``evals.paper_numbers``);
- ``error_vs_data.png`` (scaling), ``errors.png`` (every cell, ID and OOD, with the two
  references), ``velocity_map.png`` (generated vs conditioned speed: interpolation and
  memorization), ``strips/*.gif`` (truth | generated, a few videos per cell).

Only finished evaluations are read: a run still in progress reports what it has.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from evals import paper_numbers as paper
from evals.pipeline import load_plan
from physim import world
from physim.scenarios.attributes import PAIRS

REFERENCES = ("truth", "copy-last")
# Per-scenario law scores carried into comparison.csv (means from results.json).
LAW_COLUMNS = ("found_all", "momentum_error", "energy_error", "accel_hat_y", "accel_true_y",
               "accel_error", "post_velocity_error", "bounce_restitution",
               "bounce_restitution_error", "bounce_angle_error", "moving_velocity_error",
               "static_velocity_error", "static_drift")
# Per-event columns of the composition report, per scenario (evals.laws composition_*).
COMPOSITION_COLUMNS = {
    "composition_temporal": ("post_velocity_error", "momentum_error", "energy_error",
                             "bounce_restitution", "bounce_restitution_error",
                             "bounce_angle_error"),
    "composition_spatial": ("moving_velocity_error", "static_velocity_error", "static_drift"),
}


def _read_json(p: Path):
    return json.loads(p.read_text()) if p.is_file() else None


def _read_csv(p: Path) -> list[dict]:
    if not p.is_file():
        return []
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def _num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _cause_rates(res: dict) -> str:
    """``"inertia 41%, shape 12%"``: the judge's implausibility causes of one results.json
    group (its ``implausible_<check>`` means), most frequent first ("" if none)."""
    rates = [(k.removeprefix("implausible_"), v) for k, v in res.items()
             if k.startswith("implausible_") and not k.endswith(("_ci", "_n"))
             and _num(v) is not None and v > 0]
    return ", ".join(f"{c} {v:.0%}" for c, v in sorted(rates, key=lambda cv: -cv[1]))


def collect(run_dir) -> list[dict]:
    """Rows (dicts) of one run: every evaluated cell and reference, per split and level."""
    run = Path(run_dir)
    p = load_plan(run)
    exp, scale = p["experiment"], p["scale"]
    rows = []

    def add(who, kind, cell, evalset, res_dir):
        res = _read_json(res_dir / "results.json")
        if res is None:
            return
        tags = dict(cell.get("tags", [])) if cell else {}
        base = dict(run=str(run), experiment=exp, scale=scale, model_or_ref=who, kind=kind,
                    cell=cell["name"] if cell else "", scenario=cell["scenario"] if cell else "",
                    size=cell["model"] if cell else "", data=cell["data_label"] if cell else "",
                    eval=evalset, **{f"tag_{k}": v for k, v in tags.items()})
        groups = {"all": res, **{s: v for s, v in res.get("splits", {}).items()},
                  **{lv: v for lv, v in res.get("levels", {}).items()}}
        per_video = _read_csv(res_dir / "per_video.csv")
        cl = _read_json(res_dir.parent.parent / "caselike" / evalset / "caselike.json") \
            if kind == "model" else None
        lost = _lost(per_video)
        accel = _median_by_group(per_video, "accel_hat_y")
        for g, r in groups.items():
            row = dict(base, group=g, n=r.get("n_scored"), lost=lost.get(g),
                       velocity_error=_num(r.get("velocity_error")),
                       abnormal=_num(r.get("abnormal")),
                       implausible=_num(r.get("implausible")),
                       unfaithful=_num(r.get("unfaithful")),
                       implausible_causes=_cause_rates(r),
                       psnr=_num(r.get("psnr")), ssim=_num(r.get("ssim")),
                       **{k: _num(r.get(k)) for k in LAW_COLUMNS},
                       accel_hat_y_median=accel.get(g), **_caselike(cl, g))
            if g == "all":
                row["parse_floor"] = _num(res.get("parse_floor", {}).get("velocity_error"))
                pr = res.get("attribute_priority")
                if pr:
                    row["attr_order"] = ">".join(pr.get("order", []))
                    row["attr_counts"] = json.dumps(pr.get("counts", {}))
            rows.append(row)

    knn, seen = p.get("options", {}).get("knn") or {}, set()
    for c in p["cells"]:
        for e in c["evals"]:
            add(c["name"], "model", c, e["name"], cell_eval_dir(run, c["name"], e["name"]))
            d = knn.get(c["name"], {}).get(e["name"])
            if d and d not in seen:  # case retrieval on this cell's training set, once
                seen.add(d)
                add(f"knn/{Path(d).parent.name}", "knn", c, e["name"], Path(d))
    evals = {e["name"] for c in p["cells"] for e in c["evals"]}
    for kind in REFERENCES:
        for e in sorted(evals):
            add(kind, "reference", None, e, run / "baselines" / kind / e / "eval")
    return rows


def _caselike(cl: dict | None, group: str) -> dict:
    """Case-likeness columns (``evals.caselike``) of one group: fraction of rollouts closer
    to the retrieved knn case than to the truth, in pixels and in attributes, with CIs."""
    if not cl:
        return {}
    r = cl if group == "all" else {**cl.get("splits", {}), **cl.get("levels", {})}.get(group)
    if not r:
        return {}
    out = {}
    for k, col in (("closer_to_case_px", "case_px"), ("closer_to_case_attr", "case_attr")):
        out[col], out[f"{col}_n"] = _num(r.get(k)), r.get(f"{k}_n")
        out[f"{col}_ci"] = "–".join(f"{x:.2f}" for x in r.get(f"{k}_ci", [])
                                   if _num(x) is not None) or None
    return out


def _median_by_group(per_video: list[dict], key: str) -> dict:
    """Median of a per-video column, overall and per split and ``split/level``."""
    by: dict[str, list[float]] = {}
    for r in per_video:
        v = _num(r.get(key))
        if v is None:
            continue
        for g in ("all", r["split"], f"{r['split']}/{r['level']}"):
            by.setdefault(g, []).append(v)
    return {g: float(np.median(v)) for g, v in by.items()}


def _lost(per_video: list[dict]) -> dict:
    """Fraction of videos whose object is not found in over half of the generated frames
    (``missing_frames`` of ``evals.laws``), overall and per split and ``split/level``."""
    by: dict[str, list[bool]] = {}
    for r in per_video:
        m = _num(r.get("missing_frames"))
        if m is None:
            continue
        flag = m > (world.N_FRAMES - 3) / 2
        for g in ("all", r["split"], f"{r['split']}/{r['level']}"):
            by.setdefault(g, []).append(flag)
    return {g: float(np.mean(v)) for g, v in by.items()}


# A learned cell is measurable where it keeps its objects: each parsed in >= 90% of the
# generated frames (``found_all`` of evals.laws, per video) in >= 90% of its videos.
KEPT_BAR = 0.9


def _kept(rows, run, who, evalset, group) -> float | None:
    """Fraction of videos of one cell / reference, eval set and group whose objects are all
    kept (``found_all``); None when not scored."""
    got = _get(rows, run=run, model_or_ref=who, eval=evalset, group=group)
    return got[0].get("found_all") if got else None


def _not_measurable(kept: float | None) -> str:
    """'' when ``kept`` meets :data:`KEPT_BAR`, else the report's 'not measurable' note."""
    if kept is None or kept >= KEPT_BAR:
        return ""
    return f"not measurable: objects kept in {kept:.0%} of videos (< {KEPT_BAR:.0%})"


def _get(rows, **kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]


def _err(rows, **kw):
    got = _get(rows, **kw)
    return got[0]["velocity_error"] if got else None


def _f(x, d=4):
    return "—" if x is None else f"{x:.{d}f}" if isinstance(x, float) else str(x)


def _table(header, body) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_f(x) for x in r) + " |" for r in body]
    return "\n".join(out)


# --------------------------------------------------------------------------- sections


def _ref_lines(rows, run, evalset, split):
    return {k: _err(rows, run=run, model_or_ref=k, eval=evalset, group=split)
            for k in REFERENCES}


def section_errors(rows, run, title) -> str:
    """Every cell's ID/OOD velocity error beside the references and the paper."""
    cells = [r for r in _get(rows, run=run, group="all") if r["kind"] in ("model", "knn")]
    body = []
    for r in cells:
        e = r["eval"]
        id_, ood = (_err(rows, run=run, model_or_ref=r["model_or_ref"], eval=e, group=g)
                    for g in ("id", "ood"))
        sc, m, d = r["scenario"], r["size"], r["data"]
        pp = paper.SCALING.get((sc, m, d), {}) if r["experiment"] == "scaling" else {}
        rng = paper.SCALING_RANGE.get(sc) if r["experiment"] == "scaling" else None
        tags = ", ".join(f"{k[4:]}={v}" for k, v in r.items() if k.startswith("tag_") and v)
        ratio = ood / id_ if id_ and ood is not None else None
        lost = [(_get(rows, run=run, model_or_ref=r["model_or_ref"], eval=e, group=g)
                 or [{}])[0].get("lost") for g in ("id", "ood")]
        who = r["cell"] if r["kind"] == "model" else f"**{r['model_or_ref']}** (case retrieval)"
        if r["kind"] == "knn":
            pp = {}
        body.append([who, tags, e, r["n"], id_, ood, ratio, *lost, pp.get("id"),
                     pp.get("ood"), f"{rng[0][0]}–{rng[0][1]} / {rng[1][0]}–{rng[1][1]}"
                     if rng else "—"])
    for k in REFERENCES:
        for e in sorted({r["eval"] for r in _get(rows, run=run, group="all")}):
            id_, ood = (_err(rows, run=run, model_or_ref=k, eval=e, group=g)
                        for g in ("id", "ood"))
            sc = e.split("-")[0]
            lost = [(_get(rows, run=run, model_or_ref=k, eval=e, group=g) or [{}])[0].get("lost")
                    for g in ("id", "ood")]
            body.append([f"**{k}** (reference)", "", e, None, id_, ood,
                         ood / id_ if id_ and ood is not None else None, *lost,
                         paper.PARSE_FLOOR.get(sc) if k == "truth" else None,
                         paper.PARSE_FLOOR.get(sc) if k == "truth" else None, "—"])
    header = ["cell", "tags", "eval set", "n", "ID (ours)", "OOD (ours)", "OOD/ID", "lost ID",
              "lost OOD", "ID (paper)", "OOD (paper)", "paper Fig. 3 axis range ID / OOD"]
    return (f"### {title}\n\nVelocity error (world units/s, lower is better), ours vs the "
            "paper's. *lost*: fraction of videos whose object the parser cannot find in over "
            "half of the generated frames (its position is then held, so v̂ = 0, which is "
            "also what copy-last scores).\n\n" + _table(header, body) + "\n")


def section_laws(rows, run) -> str:
    """Per scenario, model beside truth and copy-last, ID and OOD: velocity error, the
    fraction of rollouts with every object found, abnormal rate, and the scenario's own
    laws (collision: momentum and energy errors; parabola: median fitted vertical
    acceleration against the truth's)."""
    out = []
    for sc in sorted({r["eval"] for r in _get(rows, run=run, group="all")}):
        kind = sc.split("-")[0]
        extra = {"collision": ["momentum error", "energy error"],
                 "parabola": ["median a_y", "true a_y"]}.get(kind, [])
        body = []
        whos = [r["model_or_ref"] for r in _get(rows, run=run, eval=sc, group="all")]
        for who in whos:
            for g in ("id", "ood"):
                r = (_get(rows, run=run, model_or_ref=who, eval=sc, group=g) or [None])[0]
                if r is None:
                    continue
                more = {"collision": [r.get("momentum_error"), r.get("energy_error")],
                        "parabola": [r.get("accel_hat_y_median"), r.get("accel_true_y")]
                        }.get(kind, [])
                name = f"**{who}**" if who in REFERENCES else who
                body.append([name, g, r["n"], r["velocity_error"], r.get("found_all"),
                             r.get("abnormal"), r.get("implausible"),
                             r.get("implausible_causes") or "", r.get("unfaithful"), *more])
        out.append(f"#### {sc}\n\n" + _table(["model / reference", "split", "n",
                                                "velocity error", "all objects found",
                                                "abnormal", "implausible (judge)",
                                                "its causes", "unfaithful", *extra], body))
    return ("### Laws per scenario\n\nVelocity error: collision scores the post-collision "
            "frames. *all objects found*: fraction of videos where every object is parsed in "
            ">= 90% of the generated frames in which it is in view in the truth. Momentum "
            "error |Σm v̂ − Σm v| / Σm (units/s), energy error |KE(v̂) − KE(v)| / KE(v), both "
            "after the collision; a_y: least-squares vertical acceleration of the generated "
            "frames (units/s², g = −2.5). *abnormal*: pixel-level checks against the truth "
            "(`evals.abnormal`); *implausible*: the physics judge (`evals.judge`: could any "
            "world with our laws make this video?), with its causes; *unfaithful*: the "
            "judge's fidelity verdict (leaves the truth from the same start).\n\n"
            + "\n\n".join(out) + "\n")


def section_combinatorial(rows, run) -> str:
    """Abnormal rate, PSNR and SSIM in-template / out-of-template beside Table 2."""
    body = []
    for r in _get(rows, run=run, group="all"):
        n_t = int(r["eval"].removeprefix("comb").split("-")[0] or 0)
        who = r["cell"] if r["kind"] == "model" else f"**{r['model_or_ref']}** (reference)"
        vals = []
        for key in ("implausible", "abnormal", "psnr", "ssim"):
            for g in ("in-template", "out-of-template"):
                got = _get(rows, run=run, model_or_ref=r["model_or_ref"], eval=r["eval"],
                           group=g)
                vals.append(got[0].get(key) if got else None)
        pp = paper.COMBINATORIAL.get(("XL", n_t), {})
        body.append([who, n_t, r["n"], *vals,
                     "{:.0%} / {:.0%}".format(*pp["abnormal"]) if pp else "—",
                     "{} / {}".format(*pp["psnr"]) if pp else "—",
                     "{} / {}".format(*pp["ssim"]) if pp else "—"])
    head = ["model / reference", "templates", "n", "implausible in (judge)",
            "implausible out (judge)", "abnormal in", "abnormal out", "PSNR in", "PSNR out",
            "SSIM in", "SSIM out", "paper DiT-XL abnormal in / out (human raters)",
            "paper PSNR", "paper SSIM"]
    return ("### Combinatorial generalization (in-template / out-of-template)\n\n"
            "Implausible: the physics judge's verdict (`evals.judge`: unsupported bodies "
            "must fall, no pass-through, no spontaneous motion, ...), the rate to read "
            "against the paper's human raters. Abnormal: fraction of videos failing any "
            "pixel-level check (`evals.scenes`). FVD needs the I3D network "
            "(`--metrics fvd`).\n\n" + _table(head, body) + "\n")


def section_composition(rows, run) -> str:
    """Per composition cell and level (each event alone, then composed): the per-event law
    scores beside truth and copy-last, and the paper's statement."""
    out = []
    for sc, cols in COMPOSITION_COLUMNS.items():
        e = f"{sc}-eval"
        who = [r for r in _get(rows, run=run, eval=e, group="all")]
        if not who:
            continue
        groups = sorted({r["group"] for r in _get(rows, run=run, eval=e) if "/" in r["group"]},
                        key=lambda g: (g.startswith("ood"), g))
        body = []
        for r in who:
            name = r["cell"] if r["kind"] == "model" else f"**{r['model_or_ref']}**"
            for g in groups:
                got = _get(rows, run=run, model_or_ref=r["model_or_ref"], eval=e, group=g)
                if got:
                    x = got[0]
                    body.append([name, g, x["n"], x["velocity_error"], x.get("found_all"),
                                 x["abnormal"], *[x.get(c) for c in cols]])
        out.append(f"#### {sc}\n\n" + _table(["model / reference", "split/level", "n",
                                                "velocity error", "all found", "abnormal",
                                                *cols], body) + "\n")
    if not out:
        return ""
    return ("### Composition: each event alone (id) and composed (ood)\n\n"
            f"Paper: {paper.COMPOSITION}\n\n" + "\n".join(out))


def section_ambiguity(run, plan) -> str:
    """Outcome accuracy per |margin| bin: each cell and reference from its rollouts, and
    the truth's conditioning frames (what a perfect reader of the given frames gets)."""
    from evals.ambiguity import accuracy_by_margin

    run = Path(run)
    knn = plan.get("options", {}).get("knn") or {}
    sources = [(c["name"], cell_eval_dir(run, c["name"], "ambiguity-eval"))
               for c in plan["cells"]]
    # Every cell's knn rollouts retrieve from the same training set: one row pair for all.
    sources += [("**knn** (case retrieval)", Path(knn[c["name"]]["ambiguity-eval"]))
                for c in plan["cells"] if knn.get(c["name"], {}).get("ambiguity-eval")][:1]
    sources += [(f"**{k}**", run / "baselines" / k / "ambiguity-eval" / "eval")
                for k in REFERENCES]
    body = []
    for who, d in sources:
        pv = _read_csv(d / "per_video.csv")
        if not pv:
            continue
        for kind in ("pass", "edge"):
            sel = [r for r in pv if r["level"].startswith(kind)]
            if not sel:
                continue
            m = [_num(r.get("param_margin")) or 0.0 for r in sel]
            for col, label in (("outcome_correct", "rollout"), ("cond_correct", "given frames")):
                if label == "given frames" and who != "**truth**":
                    continue
                acc = accuracy_by_margin(m, [_num(r.get(col)) if _num(r.get(col)) is not None
                                             else np.nan for r in sel])
                body.append([who, kind, label, {a["lo"]: a for a in acc}])
    if not body:
        return ""
    edges = sorted({lo for r in body for lo in r[3]})
    hi = {lo: a["hi"] for r in body for lo, a in r[3].items()}
    bins = [f"{lo:g}–{hi[lo]:g}" for lo in edges]
    body = [[*r[:3], *[f"{r[3][lo]['accuracy']:.2f} ({r[3][lo]['n']})" if lo in r[3] else "—"
                       for lo in edges]] for r in body]
    return ("### Outcome accuracy against the margin |m| (world units)\n\n"
            f"Paper: {paper.AMBIGUITY} *given frames*: the outcome predicted from the parsed "
            "conditioning frames of the truth (`evals.ambiguity`), i.e. whether the pixels "
            "decide it at this resolution. Cells: accuracy (videos).\n\n"
            + _table(["model / reference", "kind", "read from", *(bins or [])], body) + "\n")


def section_caselike(rows, run) -> str:
    """Per learned cell and split/level: is the rollout closer to the knn case than to the
    truth (``evals.caselike``)? Empty when no cell has a retrieved case."""
    body = []
    for r in _get(rows, run=run, kind="model"):
        if r.get("case_px") is None and r.get("case_attr") is None:
            continue
        body.append([r["cell"], r["eval"], r["group"], r["n"],
                     f"{_f(r.get('case_px'), 2)} ({r.get('case_px_ci') or '—'}, "
                     f"n={r.get('case_px_n')})",
                     f"{_f(r.get('case_attr'), 2)} ({r.get('case_attr_ci') or '—'}, "
                     f"n={r.get('case_attr_n')})"])
    if not body:
        return ""
    return ("### Case-likeness: closer to the retrieved training case than to the truth\n\n"
            "Per rollout, over generated frames: is it nearer (pixels: RMS of RGB; "
            "attributes: scaled radius and velocity per object, parsed) to the continuation "
            "of the training video that case retrieval (`knn`) picks for the same "
            "conditioning frames, than to the true continuation? 1 = copies the case, 0 = "
            "follows the truth; videos whose case equals the truth are left out (n). 95% "
            "bootstrap CIs.\n\n"
            + _table(["cell", "eval set", "split/level", "n", "closer to case (pixels)",
                      "closer to case (attributes)"], body) + "\n")


def section_levels(rows, run) -> str:
    body = []
    for r in _get(rows, run=run):
        if "/" in r["group"]:
            body.append([r["model_or_ref"], r["eval"], r["group"], r["n"], r["velocity_error"]])
    if not body:
        return ""
    return "#### Per level\n\n" + _table(["model / reference", "eval set", "split/level", "n",
                                         "velocity error"], body) + "\n"


def _count_ci(k: int, n: int) -> str:
    """``k`` of ``n`` with its 95% Wilson interval, e.g. ``49 (44–63%)``."""
    if not n:
        return str(k)
    lo, hi = wilson(k, n)
    return f"{k} ({lo:.0%}–{hi:.0%})"


def section_attributes(rows, run) -> str:
    body = []
    refs = [dict(r, scenario=r["eval"].removesuffix("-eval"))
            for r in _get(rows, run=run, kind="reference", group="all")]
    knn = _get(rows, run=run, kind="knn", group="all")
    for r in _get(rows, run=run, kind="model", group="all") + knn + refs:
        pair = r["scenario"]
        if pair not in paper.ATTRIBUTES:
            continue
        want, evidence = paper.ATTRIBUTES.get(pair, ("—", ""))
        counts = json.loads(r.get("attr_counts") or "{}")
        n = sum(counts.values())
        a, b = PAIRS[pair]["a"], PAIRS[pair]["b"]
        ours = counts.get(f"{a}>{b}", 0), counts.get(f"{b}>{a}", 0)
        kept = a if ours[0] > ours[1] else b if ours[1] > ours[0] else "tie"
        if want == "mixed" and sum(ours) and min(ours) >= paper.MIXED_SHARE * sum(ours):
            kept = "mixed"
        who = r["cell"] if r["kind"] == "model" else f"**{r['model_or_ref']}** (reference)"
        agrees = ("yes" if kept == want else "no") if r["kind"] != "reference" and n else "—"
        kept_ood = _kept(rows, run, r["model_or_ref"], r["eval"], "ood")
        lost = r["kind"] == "model" and n and _not_measurable(kept_ood)
        if lost:  # attributes of objects it lost
            kept, agrees = lost, "—"
        body.append([who, pair, n, _f(kept_ood, 2),
                     f"{a} kept, {b} changed: {_count_ci(ours[0], n)}",
                     f"{b} kept, {a} changed: {_count_ci(ours[1], n)}",
                     ", ".join(f"{k}: {v}" for k, v in counts.items() if ">" not in k) or "—",
                     kept if n else "not measurable", want, agrees, evidence])
    return ("### Attribute priority on swapped combinations (OOD split)\n\n"
            + _table(["model / reference", "pair", "n", "objects kept", "A>B", "B>A",
                      "both kept / both changed", "kept (ours)", "kept (paper)", "agrees",
                      "paper's evidence"], body)
            + f"\n\nPaper's overall order: {' > '.join(paper.ATTRIBUTE_ORDER)}. Read the "
              "model rows against the references: **truth** shows how often the measurement "
              "itself misreads an attribute (its true answer is always 'both kept'), and a "
              "model that only copies its conditioning frames (**copy-last**) keeps colour, "
              "shape and size by construction and loses velocity.\n")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a fraction k / n (NaNs for n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return float(c - h), float(c + h)


def cell_eval_dir(run_dir, cell: str, evalset: str) -> Path:
    """Where a pipeline run keeps one cell's evaluation of one eval set."""
    return Path(run_dir) / "cells" / cell / "eval" / evalset


def velocity_stats(eval_dir) -> dict:
    """Generated vs conditioned velocity of one evaluation folder (its per_video.csv; a
    cell's is :func:`cell_eval_dir`): the horizontal velocity of a one-ball scene against
    its parameter ``v``; for a collision, each ball's mean post-collision vx against the
    truth's (two points per video). ``reversed``: fraction with v̂ < 0, with its count and
    Wilson CI."""
    pv = _read_csv(Path(eval_dir) / "per_video.csv")

    def col(key):
        return np.array([np.nan if (x := _num(r.get(key))) is None else x for r in pv], float)
    if pv and "post_vx_true_0" in pv[0]:
        v = np.concatenate([col("post_vx_true_0"), col("post_vx_true_1")])
        vh = np.concatenate([col("post_vx_hat_0"), col("post_vx_hat_1")])
    else:
        v, vh = col("param_v"), col("vx_hat")
    ok = np.isfinite(v) & np.isfinite(vh)
    if not ok.any():
        return {"n": 0}
    k = int(np.sum(vh[ok] < 0))
    return {"n": int(ok.sum()), "v": v[ok], "v_hat": vh[ok], "reversed": k / int(ok.sum()),
            "reversed_k": k, "reversed_ci": wilson(k, int(ok.sum())),
            "mean_shift": float(np.mean(vh[ok] - v[ok]))}


def section_velocity(rows, run, plan, title, note) -> str:
    body, knn = [], plan.get("options", {}).get("knn") or {}
    for c in plan["cells"]:
        for e in c["evals"]:
            kept = _kept(rows, run, c["name"], e["name"], "all")
            got = [(c["name"], velocity_stats(cell_eval_dir(run, c["name"], e["name"])),
                    kept)]
            kd = knn.get(c["name"], {}).get(e["name"])
            if kd:  # case retrieval on this cell's training set (with its flip)
                got.append((f"**knn/{Path(kd).parent.parent.name}**", velocity_stats(kd),
                            None))
            for who, s, k in got:
                if s["n"]:
                    lo, hi = s["reversed_ci"]
                    body.append([who, e["name"], s["n"], _f(k, 2), s["mean_shift"],
                                 f"{s['reversed_k']}/{s['n']} = {s['reversed']:.1%} "
                                 f"({lo:.1%}–{hi:.1%})", _not_measurable(k) or "—"])
    return (f"### {title}\n\nMean (generated − conditioned) velocity and rollouts "
            f"moving the wrong way (v̂ < 0: count, fraction, 95% Wilson interval), each "
            f"learned cell beside case retrieval on its own training set. *objects kept*: "
            f"fraction of videos whose objects are parsed in >= 90% of the generated frames "
            f"where the true ones are in view.\n\n"
            + _table(["cell / reference", "eval set", "n", "objects kept", "mean v̂ − v",
                      "reversed", "measurable"], body)
            + f"\n\nPaper: {note}\n")


def _mean_ci(x: np.ndarray) -> tuple[float, float, float]:
    """(mean, 95% normal-approximation interval) of a sample; NaNs when empty."""
    if not len(x):
        return float("nan"), float("nan"), float("nan")
    m = float(np.mean(x))
    h = 1.96 * float(np.std(x, ddof=1)) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return m, m - h, m + h


def interpolation_stats(eval_dir, bands=None, boxes=None) -> dict:
    """Inside the held-out region against the trained one, from one evaluation folder's
    per_video.csv. Uniform (``bands``: the training speed bands, sorted ``(lo, hi)``):
    a video is in the gap when its ``v`` lies between the first band's low edge and the
    last band's high edge but in no band; ``pull`` = v̂ − v signed towards the nearer of
    the gap's two bands (> 0: drawn towards the training speeds; 0 for the truth, and in
    expectation for any unbiased noise; a video at the gap's centre counts 0). Collision
    (``boxes``: the held-out ``((v1_lo, v1_hi), (v2_lo, v2_hi))`` squares): inside when
    (v1, v2) is in a box; the error is the post-collision velocity error. Returns ``{"gap": {...},
    "trained": {...}}`` with n, error and (uniform) mean v, mean v̂, shift (v̂ − v) and pull,
    each as (mean, 95% lo, hi)."""
    pv = _read_csv(Path(eval_dir) / "per_video.csv")

    def col(key):
        return np.array([np.nan if (x := _num(r.get(key))) is None else x for r in pv], float)
    out = {}
    if bands is not None:
        v, vh, err = col("param_v"), col("vx_hat"), col("velocity_error")
        lo, hi = np.array([b[0] for b in bands]), np.array([b[1] for b in bands])
        in_band = ((v[:, None] >= lo) & (v[:, None] <= hi)).any(1)
        gap = ~in_band & (v > lo.min()) & (v < hi.max())
        below = np.where(hi[None] <= v[:, None], hi[None], -np.inf).max(1)  # gap's low edge
        above = np.where(lo[None] >= v[:, None], lo[None], np.inf).min(1)  # and high edge
        with np.errstate(invalid="ignore"):
            toward = np.sign(v - 0.5 * (below + above))  # -1: the lower band is nearer
        pull = np.where(gap, np.nan_to_num(toward) * (vh - v), np.nan)
        for name, m in (("gap", gap), ("trained", in_band)):
            m = m & np.isfinite(vh) & np.isfinite(err)
            out[name] = {"n": int(m.sum()), "error": _mean_ci(err[m]), "v": _mean_ci(v[m]),
                         "v_hat": _mean_ci(vh[m]), "shift": _mean_ci(vh[m] - v[m]),
                         "pull": _mean_ci(pull[m])}
    else:
        v1, v2, err = col("param_v1"), col("param_v2"), col("post_velocity_error")
        inside = np.zeros(len(pv), bool)
        for (a0, a1), (b0, b1) in boxes:
            inside |= (v1 >= a0) & (v1 <= a1) & (v2 >= b0) & (v2 <= b1)
        for name, m in (("gap", inside), ("trained", ~inside)):
            m = m & np.isfinite(err)
            out[name] = {"n": int(m.sum()), "error": _mean_ci(err[m])}
    return out


def _held_out(cell: dict):
    """(bands, boxes) of an interpolation cell, from its scenario overrides."""
    ov = {k: json.loads(v) for k, v in cell.get("overrides") or []}
    bands = sorted(tuple(b) for b in ov["v_bands"]) if "v_bands" in ov else None
    return bands, ov.get("holdout")


def section_interpolation(rows, run, plan) -> str:
    """Per gap (uniform) or held-out square (collision): the error and the velocity drift
    inside the held-out region against the trained one, each cell beside knn."""
    def ci(t, d=3):
        return "—" if not np.isfinite(t[0]) else f"{t[0]:+.{d}f} ({t[1]:+.{d}f}, {t[2]:+.{d}f})"

    def err(t):
        return "—" if not np.isfinite(t[0]) else f"{t[0]:.3f} ({t[1]:.3f}–{t[2]:.3f})"
    knn = plan.get("options", {}).get("knn") or {}
    uni, col = [], []
    for c in plan["cells"]:
        bands, boxes = _held_out(c)
        if bands is None and boxes is None:
            continue
        e = c["evals"][0]["name"]  # the grid set, the one that crosses the held-out region
        d = cell_eval_dir(run, c["name"], e)
        if not (d / "per_video.csv").is_file():
            continue
        kept = _kept(rows, run, c["name"], e, "all")
        got = [(c["name"], d, kept)]
        if knn.get(c["name"], {}).get(e):
            got.append(("**knn**", Path(knn[c["name"]][e]), None))
        for who, path, k in got:
            s = interpolation_stats(path, bands, boxes)
            g, t = s["gap"], s["trained"]
            lost = _not_measurable(k)
            who = f"{who} ({lost})" if lost else who
            if bands is not None:
                widths = ", ".join(f"{a[1]:g}–{b[0]:g}" for a, b in zip(bands, bands[1:],
                                                                       strict=False))
                uni.append([who, _f(k, 2), widths, g["n"], f"{g['v'][0]:.2f}", err(g["v_hat"]),
                            err(g["error"]), ci(g["pull"]), t["n"], f"{t['v'][0]:.2f}",
                            err(t["v_hat"]), err(t["error"])])
            else:
                (a0, a1), _ = boxes[0]
                col.append([who, _f(k, 2), f"[{a0:g}, {a1:g}]²", g["n"], err(g["error"]), t["n"],
                            err(t["error"]),
                            f"{g['error'][0] / t['error'][0]:.2f}" if g["n"] and t["n"] else "—"])
    md = []
    if uni:
        md.append("### Interpolation: generated speed inside the velocity gaps\n\nOn the "
                  "velocity grid (`uniform-vgrid`): videos whose speed lies in a gap between "
                  "the training bands against those inside a band: mean true speed v, mean "
                  "generated speed v̂, velocity error, and *pull* = v̂ − v signed towards the "
                  "nearer of the gap's two bands (> 0: drawn to the training speeds; 0 for "
                  "the truth and for unbiased noise); 95% intervals.\n\n"
                  + _table(["cell / reference", "objects kept", "gaps", "n in gaps",
                            "v (gaps)", "v̂ (gaps)", "error (gaps)", "pull (gaps)",
                            "n in bands", "v (bands)", "v̂ (bands)", "error (bands)"], uni))
    if col:
        md.append("### Interpolation: held-out (v1, v2) squares of collisions\n\nOn the "
                  "collision grid (`collision-vgrid`): post-collision velocity error of "
                  "videos whose (v1, v2) lies in the held-out square against the others "
                  "(95% intervals).\n\n"
                  + _table(["cell / reference", "objects kept", "held-out square", "n inside",
                            "error inside", "n outside", "error outside",
                            "inside / outside"], col))
    return "\n\n".join(md) + (f"\n\nPaper: {paper.INTERPOLATION}\n" if md else "")


# --------------------------------------------------------------------------- entry points


def build_report(run_dirs, out, gifs: bool = True) -> Path:
    """Write ``out/report.md`` (+ CSV, plots, GIFs) for finished runs; returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [str(Path(r)) for r in run_dirs]
    plans = [load_plan(r) for r in runs]
    rows = [row for r in runs for row in collect(r)]
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    with open(out / "comparison.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols or ["run"])
        w.writeheader()
        w.writerows(rows)
    md = ["# physim experiment report", "",
          "Velocity error by the paper's definition (mean |v̂ − v| over valid generated "
          "(frame, object) pairs, world units/s), computed exactly: this is not the number "
          "the paper's evaluate.py reports (error of the mean velocity, per-ball collision "
          "averaging, radius filters, its own parser and floor; `physim evaluate --protocol "
          "paper` computes that one, docs/evaluate.md §5), so paper values below are for "
          "orientation, not a like-for-like comparison. References: **truth** scores the "
          "ground-truth video itself (the parse floor), **copy-last** repeats the last "
          "conditioning frame (a model that learned no motion). Paper numbers from "
          "`shared/reference/phyworld-paper.md` (`evals/paper_numbers.py`).", ""]
    for run, p in zip(runs, plans, strict=True):
        o = p.get("options", {})
        md += [f"## {o.get('title', p['experiment'])} — `{run}` (scale {p['scale']})", "",
               f"Cells planned: {len(p['cells'])}; evaluated: "
               f"{len(_get(rows, run=run, kind='model', group='all'))}. "
               + (f"Sampled from the trained checkpoint `{o['checkpoint']}`"
                  if o.get("checkpoint") else f"Training steps {o.get('steps')}")
               + f", eval videos per split {o.get('n_eval')}. Commands: `{run}/run.sh`.", ""]
        if p["experiment"] == "attributes":
            md.append(section_attributes(rows, run))
        if p["experiment"] == "combinatorial":
            md.append(section_combinatorial(rows, run))
        else:
            md.append(section_errors(rows, run, "Velocity error"))
        if p["experiment"] == "interpolation":
            md.append(section_interpolation(rows, run, p))
        if p["experiment"] == "quickstart":
            md.append(section_laws(rows, run))
        if p["experiment"] in ("memorization", "quickstart"):
            md.append(section_velocity(rows, run, p, "Generated velocity", paper.MEMORIZATION
                                       if p["experiment"] == "memorization" else "—"))
        if p["experiment"] == "composition":
            md.append(section_composition(rows, run))
        if p["experiment"] == "ambiguity":
            md.append(section_ambiguity(run, p))
        if p["experiment"] != "combinatorial":
            md.append(section_caselike(rows, run))
            md.append(section_levels(rows, run))
        timings = Path(run) / "timings.jsonl"
        if timings.is_file():
            recs = [json.loads(x) for x in timings.read_text().splitlines() if x.strip()]
            by: dict[str, float] = {}
            for t in recs:
                by[t["kind"]] = by.get(t["kind"], 0.0) + t["seconds"]
            md.append("Wall time by stage kind (s): " + ", ".join(
                f"{k} {v:.0f}" for k, v in sorted(by.items())) + "\n")
    from evals import compare_plots as cp

    plots = [cp.plot_scaling(rows, r, out) for r in runs] + [
        cp.plot_errors(rows, out), cp.plot_velocity_map(runs, plans, out)]
    md += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots if p]
    if gifs:
        g = [x for r, p in zip(runs, plans, strict=True) for x in cp.write_gifs(r, p, out)]
        if g:
            md += ["", "## Rollouts (truth | generated)", ""]
            md += [f"![{x.stem}](strips/{x.name})" for x in g]
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path


def add_parser(subparsers) -> None:
    """Register ``physim report``."""
    p = subparsers.add_parser(
        "report", help="comparison of finished runs, or a leaderboard of evaluation folders",
        description="Experiment run folders (plan.json): comparison tables, plots, GIFs. "
        "Plain `physim evaluate` output folders (results.json): a leaderboard "
        "(leaderboard.md/.csv, one row per folder) and the v-hat-vs-v plot overlaid.",
    )  # fmt: skip
    p.add_argument("runs", nargs="+", metavar="DIR",
                   help="experiment run folders, or physim evaluate output folders")
    p.add_argument("--out", default=None, help="report folder (default RUN_DIR/report; for "
                   "evaluation folders, leaderboard/ beside the first)")  # fmt: skip
    p.add_argument("--no-gifs", action="store_true")
    p.set_defaults(func=run_report)


def run_report(args) -> int:
    from evals import leaderboard

    evals_ = [leaderboard.is_eval_dir(r) for r in args.runs]
    if any(evals_):
        if not all(evals_):
            other = [r for r, e in zip(args.runs, evals_, strict=True) if not e]
            raise ValueError(f"mix of evaluation folders and other folders: {other} are not "
                             "physim evaluate outputs (no results.json)")  # fmt: skip
        out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.runs[0])),
                                       "leaderboard")  # fmt: skip
        path = leaderboard.build_leaderboard(args.runs, out)
        print(f"leaderboard: {path}")
        return 0
    out = args.out or os.path.join(args.runs[0], "report")
    path = build_report(args.runs, out, gifs=not args.no_gifs)
    print(f"report: {path}")
    return 0
