"""Where shards are computed: in this process, a local process pool, or a Ray cluster.

Every executor runs the same pure function per shard (:func:`physim.generate.shard_payload`),
so the bytes never depend on the executor. Local workers write their shards themselves;
Ray tasks return the bytes and the driver writes them, so a Ray cluster needs no shared
filesystem. Ray is optional (``pip install physim[ray]``); ``address=None`` starts a local
Ray with ``workers`` CPUs, otherwise ``ray.init(address=...)`` joins a running cluster.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

EXECUTORS = ("local", "ray")


def check(executor: str) -> None:
    """Raise ``ValueError`` for an unknown executor or a missing optional dependency."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; known: {list(EXECUTORS)}")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("--executor ray needs Ray: pip install 'physim[ray]'") from None


def run_shards(out, plan_json: str, todo, workers: int, executor: str, address=None) -> Iterator:
    """Compute and store the shards ``todo``; yields each shard's info as it completes."""
    todo = list(todo)
    if not todo:
        return
    if executor == "ray":
        yield from _run_ray(out, plan_json, todo, workers, address)
    elif workers == 1 or len(todo) == 1:
        from physim.generate import write_shard

        for k in todo:
            yield write_shard(str(out), plan_json, k)
    else:
        yield from _run_pool(out, plan_json, todo, workers)


def die_with_parent(parent: int) -> None:
    """Pool-worker initializer: end this process when ``parent`` is gone (a SIGKILLed
    ``physim generate`` must not leave workers writing shards). Linux: the kernel sends
    SIGKILL on the parent's death (``PR_SET_PDEATHSIG``); elsewhere, and as a backstop, a
    daemon thread polls the parent pid."""
    import ctypes
    import os
    import signal
    import threading
    import time

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # died before the call above
        os._exit(1)

    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def _run_pool(out, plan_json, todo, workers) -> Iterator:
    import os

    from physim.generate import write_shard

    # spawn: no fork of a process that may hold threads (tqdm, numba, jax).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        pending = {pool.submit(write_shard, str(out), plan_json, k) for k in todo}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def _ray_task(plan_json: str, k: int):
    from physim.generate import shard_payload

    return shard_payload(plan_json, k)


def _run_ray(out, plan_json, todo, workers, address) -> Iterator:
    import ray

    from physim.generate import Plan, store_shard

    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(_ray_task)
        plan = Plan(**json.loads(plan_json))
        # Keep at most 2 * workers shards in flight: bounded driver memory.
        queue, running = list(todo), {}
        while queue or running:
            while queue and len(running) < 2 * workers:
                k = queue.pop(0)
                running[task.remote(plan_json, k)] = k
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                k = running.pop(ref)
                data, info = ray.get(ref)
                yield store_shard(out, plan, k, data, info)
    finally:
        if started:
            ray.shutdown()
