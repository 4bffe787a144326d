"""The cheapest remat / FSDP / accumulation setting of each paper DiT that fits a machine:
`models.train.dry_run` (XLA's memory analysis of the compiled step) over candidate settings,
cheapest first, until one fits in 90% of the device memory. docs/benchmarks.md has the table.

    python scripts/fit_table.py --target tpu:v5e:4x4 --out runs/fit/v5e.jsonl
    JAX_PLATFORMS=cpu python scripts/fit_table.py --target gpu:h100:8 --out runs/fit/h100.jsonl
    python scripts/fit_table.py --target tpu:v5e:4x4 --analytic   # the budget only, no compile

Cheapest first: data parallel, then FSDP over more devices (collectives only), then
gradient accumulation (same FLOPs, smaller micro-batches), then remat (a second forward
pass, about a third more FLOPs). A setting whose rough budget (`models.aot.analytic_memory`)
is over 1.25x the limit is skipped without compiling (recorded as such). Each compiled
setting is one JSON line in --out. Cached latents (the paper's frozen VAE: the step sees
latents), the global batch of the preset (256) unless --set says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def candidates(devices: int):
    """(remat, fsdp, accum) in order of cost."""
    fsdps = [f for f in (1, 2, 4, 8, 16, 32) if f <= devices and devices % f == 0]
    out = [(False, f, 1) for f in fsdps]
    out += [(False, fsdps[-1], k) for k in (2, 4)]
    out += [(True, f, 1) for f in fsdps]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", required=True, help="models.aot target, e.g. tpu:v5e:4x4")
    p.add_argument("--presets", default="dit-s,dit-b,dit-l,dit-xl")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default=None, help="append each compiled setting as a JSON line")
    p.add_argument("--analytic", action="store_true", help="rough budgets only, no compile")
    p.add_argument("--limit", type=float, default=0.9, help="fraction of device memory")
    p.add_argument("--from", dest="start", default=None, metavar="REMAT,FSDP,ACCUM",
                   help="start the cheapest-first walk at this setting (e.g. 0,4,1: the "
                        "cheaper ones are known not to fit), for slow compiles")
    a = p.parse_args(argv)
    if a.target not in ("local", None):
        import jax

        jax.config.update("jax_platforms", "cpu")
    from models import aot, configs, dit, train

    tgt = aot.get_target(a.target, train.peak_flops)
    n = len(tgt.devices)
    walk = candidates(n)
    if a.start:
        r, f, k = (int(x) for x in a.start.split(","))
        walk = walk[walk.index((bool(r), f, k)):]
    for name in a.presets.split(","):
        for remat, fsdp, accum in walk:
            sets = [*a.set, f"dit.remat={str(remat).lower()}", f"train.fsdp={fsdp}",
                    f"train.accum_steps={accum}"]
            cfg = train.resolve_precision(
                configs.apply_overrides(configs.get_preset(name), sets), tgt.platform)
            if cfg.dit.attention == "auto":  # the kernel the target would run
                with dit.compiling_for(tgt.platform):
                    att = dit.attention_impl("auto", cfg.dit.dtype)
                cfg = configs.apply_overrides(cfg, [f"dit.attention={att}"])
            params = dit.count_params(cfg.dit, cfg.diffusion_shape)
            est = aot.analytic_memory(cfg, params, n)
            row = {"preset": name, "target": tgt.name, "remat": remat, "fsdp": fsdp,
                   "accum_steps": accum, "analytic": est}
            limit = a.limit * tgt.hbm_bytes if tgt.hbm_bytes else None
            if a.analytic or (limit and est["total_bytes"] > 1.25 * limit):
                row["skipped"] = "analytic budget only" if a.analytic else "analytic > 1.25x"
                print(json.dumps(row), flush=True)
                if a.analytic and limit and est["total_bytes"] <= limit:
                    break
                continue
            t0 = time.time()
            r = train.dry_run(cfg, cached=True, target=a.target)
            row.update(r, date=time.strftime("%Y-%m-%d %H:%M"), wall_s=time.time() - t0)
            print(json.dumps(row), flush=True)
            if a.out:
                os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
                with open(a.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
            if r["fits"] or r["fits"] is None:
                break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
