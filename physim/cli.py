"""The ``physim`` command.

::

    physim generate uniform --split train --n 3000000 --seed 0 --out data/uniform --workers 2
    physim generate uniform --split ood --n 1000 --seed 0 --out data/uniform --set v_high=4.5,7
    physim info data/uniform
    physim preview data/uniform --index 3 [--grid]
    physim export data/uniform --format mp4 --out videos/ --resolution 128
    physim evaluate ... | physim train ... | physim sample ...   (when those packages exist)
    physim encode --preset dit-s --set vae_workdir=runs/vae --data data/uniform --out latents/u

Bad input (unknown scenario or key, N <= 0, an unwritable or foreign output folder, a
corrupt shard, an unknown manifest version) prints ``physim: error: ...`` and exits 2
without writing anything.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

# Subcommands other packages provide: name -> module with add_parser(subparsers).
EXTERNAL = {"evaluate": "evals.run", "train": "models.train", "sample": "models.sample",
            "report": "evals.compare", "encode": "models.data"}


def parse_value(text: str):
    """A ``--set`` value: JSON if it parses (numbers, lists, strings in quotes), else a
    comma-separated tuple of such values (``1.5,2`` or ``(1.5, 2)``), else the raw string.
    Lists become tuples (scenario ranges are tuples)."""
    s = text.strip()
    if s.startswith("(") and s.endswith(")"):
        s = s[1:-1]
        if "," not in s:
            s += ","
    try:
        return _tuples(json.loads(s))
    except json.JSONDecodeError:
        pass
    if "," in s:
        return tuple(parse_value(p) for p in s.split(",") if p.strip())
    return s


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def parse_sets(items) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


# --------------------------------------------------------------------------- commands


def cmd_generate(args) -> int:
    from physim.generate import generate

    r = generate(
        args.scenario,
        split=args.split,
        n=args.n,
        seed=args.seed,
        out=args.out,
        overrides={
            **parse_sets(args.set),
            **({"templates": args.templates} if args.templates is not None else {}),
        },
        workers=args.workers,
        shards=args.shards,
        executor=args.executor,
        address=args.address,
        shard_size=args.shard_size,
        select=args.select,
        storage=args.storage,
        progress=not args.no_progress,
    )
    if r.get("coverage_warning"):
        print(f"physim: warning: {r['coverage_warning']}", file=sys.stderr)
    rate = r["videos"] / r["seconds"] if r["seconds"] > 0 else 0.0
    state = "complete, manifest written" if r["complete"] else "incomplete (other shards pending)"
    print(
        f"{r['out']}: wrote {r['written']} shards ({r['videos']} videos, {rate:,.0f} videos/s), "
        f"skipped {r['skipped']} verified; {r['n_shards']} shards in the split; {state}"
    )
    return 0


def _open(args):
    from physim import dataset

    return dataset.open(args.dir, split=getattr(args, "split", None))


def cmd_export(args) -> int:
    from physim import video

    if args.conditioning_only:
        if args.format != "npy":
            raise ValueError("--conditioning-only writes npy files: use --format npy")
        from evals.export import export_conditioning
        from physim import world

        ds = _open(args)
        res = world.DEFAULT_RESOLUTION if args.resolution is None else args.resolution
        n = export_conditioning(ds, args.out, res, progress=not args.no_progress)
        print(f"exported the conditioning frames of {n} videos and index.csv to {args.out}")
        return 0
    ds = _open(args)
    n = video.export(
        ds, args.format, args.out, args.resolution, progress=not args.no_progress,
        workers=args.workers,
    )  # fmt: skip
    print(f"exported {n} videos as {args.format} to {args.out}")
    return 0


def cmd_preview(args) -> int:
    from physim import preview

    ds = _open(args)
    out = Path(args.out) if args.out else Path(args.dir) / "preview"
    gif, png = preview.preview(
        ds, out, index=args.index, grid=args.grid, resolution=args.resolution
    )
    print(f"wrote {gif}\nwrote {png}")
    return 0


def cmd_info(args) -> int:
    from physim import preview

    ds = _open(args)
    print(preview.summary(ds))
    if not args.no_plot:
        out = Path(args.plot) if args.plot else Path(args.dir) / "preview" / "params.png"
        print(f"histograms: {preview.histogram(ds, out)}")
    if args.verify:
        ds.verify_all()
        print("all shards verified (sha256 and shapes)")
    return 0


# --------------------------------------------------------------------------- parser


def _int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    return v


def build_parser(argv=(), failures: dict | None = None) -> argparse.ArgumentParser:
    """The argument parser. External subcommands are imported only when ``argv`` asks for
    one (they pull in jax); an import failure is recorded in ``failures``."""
    from physim import __version__

    parser = argparse.ArgumentParser(prog="physim", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"physim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="generate a split of a dataset (states only)")
    p.add_argument("scenario", help="scenario name (uniform, parabola, collision, ...)")
    p.add_argument("--split", default="train", help="train (random) or an eval grid (id, ood)")
    p.add_argument("--n", type=_int, required=True, help="number of videos")
    p.add_argument("--seed", type=_int, default=0)
    p.add_argument("--out", required=True, help="dataset directory")
    p.add_argument("--workers", type=_int, default=1)
    p.add_argument("--shards", default=None, metavar="A:B", help="only shards A..B-1")
    p.add_argument("--shard-size", type=_int, default=None, help="videos per shard")
    p.add_argument("--select", choices=["even", "stratified"], default="even",
                   help="which grid rows an evaluation split with --n below its grid takes: "
                        "evenly spaced (default; may alias with the grid, e.g. collision "
                        "--n 32 has v2 = 1.0 in every video) or stratified (every velocity "
                        "and radius pair once before any twice)")
    p.add_argument("--storage", choices=["full", "compact"], default="full",
                   help="full: every state in float64 (default); compact: initial states "
                        "and physics only, the states re-simulated and checked against a "
                        "digest on read (disc scenarios; ~10x fewer bytes)")
    p.add_argument("--executor", default="local", choices=["local", "ray"])
    p.add_argument("--address", default=None, help="Ray cluster address (default: local Ray)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field, e.g. --set v_id=1,3 (repeatable)")  # fmt: skip
    p.add_argument("--templates", type=_int, default=None, choices=[6, 30, 60],
                   help="combinatorial: training template set (= --set templates=N)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("export", help="render a dataset to npy, mp4 or hdf5 files")
    p.add_argument("dir")
    p.add_argument("--format", required=True, choices=["npy", "mp4", "hdf5"])
    p.add_argument("--out", required=True)
    p.add_argument("--resolution", type=_int, default=None)
    p.add_argument("--split", default=None)
    p.add_argument("--workers", type=_int, default=2, help="render/encode threads")
    p.add_argument("--conditioning-only", action="store_true",
                   help="only each video's conditioning frames ({id}.npy, n_cond frames) and "
                   "index.csv: what a model needs to generate the set (docs/evaluate.md)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("preview", help="GIF and PNG contact sheet of a video (or a grid)")
    p.add_argument("dir")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--grid", action="store_true", help="tile 16 videos from --index on")
    p.add_argument("--resolution", type=_int, default=128)
    p.add_argument("--split", default=None)
    p.add_argument("--out", default=None, help="output folder (default DIR/preview)")
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("info", help="summary of a dataset and a histogram PNG")
    p.add_argument("dir")
    p.add_argument("--split", default=None)
    p.add_argument("--plot", default=None, help="histogram path (default DIR/preview/params.png)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--verify", action="store_true", help="check every shard's sha256")
    p.set_defaults(func=cmd_info)

    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, module in EXTERNAL.items():
        if name == wanted:
            try:  # imported only when asked for: they pull in jax
                importlib.import_module(module).add_parser(sub)
                continue
            except ImportError as e:
                reason = f"`physim {name}` needs {module}, which is not available ({e})"
                if failures is not None:
                    failures[name] = reason
        else:
            reason = None
        q = sub.add_parser(name, help=f"provided by {module}", add_help=False)
        q.add_argument("rest", nargs=argparse.REMAINDER)
        q.set_defaults(func=_missing(name, module, reason))
    return parser


def _missing(name, module, reason):
    def run(args) -> int:
        raise ValueError(reason or f"`physim {name}` needs {module}")

    return run


def main(argv=None) -> int:
    """Entry point of the ``physim`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    failures: dict[str, str] = {}
    parser = build_parser(argv, failures)
    if failures:
        print(f"physim: error: {next(iter(failures.values()))}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"physim: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("physim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
