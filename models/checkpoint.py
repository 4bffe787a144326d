"""orbax checkpoints of a run: params, optimiser state, EMA params and JSON metadata.

Layout: ``{workdir}/checkpoints/{step}/{params,opt_state,ema,meta}``. ``meta`` holds the
config (``configs.to_dict``), the data iterator state and anything else JSON-able, so a
checkpoint alone is enough to resume or to sample. Workdirs are local paths or any
``etils.epath`` URL (``gs://bucket/run``); arrays are saved and restored in the sharding of
the state given (multi-host: each process writes and reads its own shards).
"""

from __future__ import annotations

import contextlib
import os
import sys

import jax
import orbax.checkpoint as ocp
from etils import epath

from models import configs


def is_local(path) -> bool:
    """Whether ``path`` (str or epath) is a local file path rather than a URL (gs://...)."""
    return "://" not in str(path)


def epath_of(workdir) -> epath.Path:
    """``workdir`` as an ``epath.Path``: local paths made absolute (orbax wants them so),
    URLs such as ``gs://bucket/run`` kept as they are."""
    s = str(workdir)
    return epath.Path(os.path.abspath(s) if is_local(s) else s)


LOCK_NAME = ".physim.lock"


@contextlib.contextmanager
def workdir_lock(workdir):
    """Hold the exclusive lock of a local training ``workdir`` (``flock`` on
    ``workdir/.physim.lock``, which records the holder's pid) for the ``with`` block;
    ``ValueError`` naming the holder if another process has it. URLs (gs://...) and
    processes other than 0 of a multi-host run take no lock."""
    import fcntl

    if not is_local(workdir) or jax.process_index() != 0:
        yield
        return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_NAME)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise ValueError(f"{workdir} is in use by another physim train (pid {holder}); "
                             "wait for it to end or use another --workdir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_writable(workdir) -> None:
    """``OSError`` naming the folder unless files can be created in a local ``workdir`` and
    its ``checkpoints`` folder (checked before training: orbax's background save threads
    wait forever on a save that failed to start)."""
    if not is_local(workdir):
        return
    for folder in (workdir, os.path.join(workdir, "checkpoints")):
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write-probe-{os.getpid()}")
        try:
            with open(probe, "w"):
                pass
        except OSError as e:
            raise OSError(e.errno, f"cannot write in {folder} ({e.strerror})") from None
        os.unlink(probe)


def manager(workdir: str, keep: int = 3) -> ocp.CheckpointManager:
    """A checkpoint manager over ``{workdir}/checkpoints`` keeping the last ``keep``; saves
    are asynchronous (see :func:`save`)."""
    return ocp.CheckpointManager(
        epath_of(workdir) / "checkpoints",
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=True))


def save(mngr: ocp.CheckpointManager, step: int, state: dict, meta: dict,
         wait: bool = True) -> None:
    """Save train ``state`` (dict with params, opt_state, ema) and ``meta`` at ``step``.

    ``wait=False``: return once the arrays are copied off the devices and write in the
    background (the train loop goes on; the next save, or ``mngr.wait_until_finished()``,
    waits for it). A step directory becomes visible only when complete.
    """
    mngr.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(state["params"]),
        opt_state=ocp.args.StandardSave(state["opt_state"]),
        ema=ocp.args.StandardSave(state["ema"]),
        meta=ocp.args.JsonSave(meta)))
    if wait:
        mngr.wait_until_finished()


def pick_step(mngr: ocp.CheckpointManager, step: int | None = None) -> int:
    """``step`` (default the latest) if ``mngr`` holds it; ``ValueError`` listing those it holds."""
    steps = sorted(mngr.all_steps())
    if not steps:
        raise ValueError(f"no checkpoint in {mngr.directory}")
    if step is None:
        return steps[-1]
    if step not in steps:
        raise ValueError(f"no checkpoint of step {step} in {mngr.directory}; it holds {steps}")
    return step


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def restore(mngr: ocp.CheckpointManager, like: dict, step: int | None = None):
    """(state, meta) of checkpoint ``step`` (default latest); ``like`` gives the structure:
    arrays or ShapeDtypeStructs, restored in their sharding (give global shardings to
    restore a multi-host state straight onto every process's devices)."""
    step = pick_step(mngr, step)
    r = mngr.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(_abstract(like["params"])),
        opt_state=ocp.args.StandardRestore(_abstract(like["opt_state"])),
        ema=ocp.args.StandardRestore(_abstract(like["ema"])),
        meta=ocp.args.JsonRestore()))
    state = {"params": r["params"], "opt_state": r["opt_state"], "ema": r["ema"]}
    return state, dict(r["meta"])


def read_meta(workdir: str, step: int | None = None) -> tuple[dict, int]:
    """(meta, step) of a run's checkpoint without touching the arrays."""
    mngr = manager(workdir)
    step = pick_step(mngr, step)
    r = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(r["meta"]), step


def load_weights(workdir: str, like_params, step: int | None = None, ema: bool = True):
    """(params, meta): EMA (or raw) params of a run, shaped (and sharded) like
    ``like_params``."""
    mngr = manager(workdir)
    step = pick_step(mngr, step)
    item = "ema" if ema else "params"
    if not (epath.Path(mngr.directory) / str(step) / item).is_dir():
        raise ValueError(f"{workdir!r} step {step} has no {item!r} weights"
                         + (" (a sampling-only export keeps only EMA weights)" if not ema else ""))
    r = mngr.restore(step, args=ocp.args.Composite(
        **{item: ocp.args.StandardRestore(_abstract(like_params))},
        meta=ocp.args.JsonRestore()))
    return r[item], dict(r["meta"])


def config_of(meta: dict) -> configs.Config:
    return configs.from_dict(meta["config"])


def export(workdir: str, out: str, step: int | None = None, ema: bool = True) -> str:
    """Write a sampling-only copy of a run to ``out``: its (EMA) weights and metadata, no
    optimiser state (a quarter of the size). ``models.sample.load(out)`` reads it."""
    import json

    from flax import nnx

    from models import train

    meta, step = read_meta(workdir, step)
    cfg = config_of(meta)
    _, _, _, template = train.split_params(train.build_model(cfg, abstract=True))
    params, _ = load_weights(workdir, nnx.to_pure_dict(template), step, ema=ema)
    mngr = manager(out, keep=1)
    mngr.save(step, args=ocp.args.Composite(ema=ocp.args.StandardSave(params),
                                            meta=ocp.args.JsonSave(dict(meta, exported=True))))
    mngr.wait_until_finished()
    (epath_of(out) / "config.json").write_text(
        json.dumps(configs.to_dict(cfg), indent=1, sort_keys=True))
    return out


SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints")


def shipped(index: str | None = None) -> list[dict]:
    """The model cards of ``models/checkpoints/index.json`` (or ``index``), each with its
    ``dir`` resolved to an existing export; ``ValueError`` naming a card whose export is
    missing or whose fields are incomplete."""
    import json

    path = index or os.path.join(SHIPPED, "index.json")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        cards = json.load(f)["models"]
    need = ("name", "scenario", "preset", "command", "train_minutes", "scores")
    out = []
    for card in cards:
        missing = [k for k in need if k not in card]
        if missing:
            raise ValueError(f"{path}: model {card.get('name')!r} lacks {missing}")
        d = os.path.join(os.path.dirname(path), card["name"])
        if not os.path.isfile(os.path.join(d, "config.json")):
            raise ValueError(f"{path}: model {card['name']!r} has no export at {d}")
        out.append(dict(card, dir=d))
    return out


def _main(argv) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m models.checkpoint",
                                description="export a run for sampling, or list the shipped "
                                            "models")
    p.add_argument("src", nargs="?", help="training workdir to export")
    p.add_argument("dst", nargs="?", help="folder of the sampling-only export")
    p.add_argument("step", nargs="?", type=int, default=None, help="step (default: latest)")
    p.add_argument("--shipped", action="store_true",
                   help="print SCENARIO=DIR of each shipped model (models/checkpoints)")
    p.add_argument("--quickstart", action="store_true",
                   help="with --shipped: only the quickstart's models")
    a = p.parse_args(argv)
    try:
        if a.shipped:
            for card in shipped():
                if card.get("quickstart") or not a.quickstart:
                    print(f"{card['scenario']}={os.path.relpath(card['dir'])}")
            return 0
        if not (a.src and a.dst):
            p.error("give SRC_WORKDIR DST [STEP], or --shipped")
        export(a.src, a.dst, a.step)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # python -m models.checkpoint SRC_WORKDIR DST [STEP] | --shipped
    raise SystemExit(_main(sys.argv[1:]))
