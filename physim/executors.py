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
    """Compute and store the shards ``todo``; an iterator of each shard's info as it
    completes. A local pool's workers start when this is called (before the caller starts
    any thread of its own, e.g. a progress bar: see :func:`start_method`)."""
    todo = list(todo)
    if not todo:
        return iter(())
    if executor == "ray":
        return _run_ray(out, plan_json, todo, workers, address)
    if workers == 1 or len(todo) == 1:
        from physim.generate import write_shard

        return (write_shard(str(out), plan_json, k) for k in todo)
    return _run_pool(out, plan_json, todo, workers)


def _os_threads() -> int:
    """Threads of this process as the OS counts them (native ones too); -1 if unknown."""
    import os

    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1


def _load_blas() -> None:
    """Load now the BLAS that physim's kernels bring in, so that its threads count in
    :data:`_BASE_THREADS`: the first compiled kernel a process loads sets up numba's CPU
    target, whose ``numba.np.arraymath`` imports SciPy's BLAS, and SciPy's bundled OpenBLAS
    starts its thread pool then (fork-aware, like NumPy's). Counted after that, a
    ``physim generate`` that has loaded its kernels (to check the plan) still forks."""
    try:
        import numba.np.arraymath  # noqa: F401
    except ImportError:
        pass


_load_blas()
_BASE_THREADS = _os_threads()  # numpy's and SciPy's BLAS pools (fork-aware), this thread


def start_method() -> str:
    """``"fork"`` where it is safe, else ``"spawn"``.

    A forked worker starts in milliseconds with physim imported and its kernels compiled;
    a spawned one re-imports numpy, numba and physim and reloads the compiled kernels
    (about a second each, which made ``--workers 2`` slower than one worker at 100K
    videos). A fork copies only the calling thread, so any other thread that holds a lock
    at that moment leaves it held forever in the child. Fork only on Linux, with one
    Python thread, no more OS threads than when physim was imported (numpy's BLAS pool,
    which handles fork; not a numba parallel pool or a progress bar's monitor), and JAX
    not imported (XLA's thread pools are not fork-safe); spawn otherwise.
    """
    import sys
    import threading

    if (sys.platform.startswith("linux") and threading.active_count() == 1
            and "jax" not in sys.modules and 0 < _os_threads() <= _BASE_THREADS):
        return "fork"
    return "spawn"


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


class _PoolResults:
    """Infos of a pool's shards as they complete; ``close()`` cancels what has not
    started and waits for the workers."""

    def __init__(self, pool, pending):
        self._pool, self._pending = pool, pending

    def __iter__(self):
        try:
            while self._pending:
                done, self._pending = wait(self._pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
        finally:
            self.close()

    def close(self) -> None:
        for f in self._pending:
            f.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _run_pool(out, plan_json, todo, workers) -> _PoolResults:
    """Start the pool and submit every shard now (the workers fork or spawn here)."""
    import os

    from physim.generate import write_shard

    ctx = multiprocessing.get_context(start_method())
    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                               initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        pending = {pool.submit(write_shard, str(out), plan_json, k) for k in todo}
    except BaseException:
        pool.shutdown(cancel_futures=True)
        raise
    return _PoolResults(pool, pending)


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
