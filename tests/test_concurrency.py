"""Concurrent writers and killed parents (issue 19, items 5 and 6): runs into one folder
are serialised by its lock, an incompatible one is refused, and pool workers (generate's
and the Grain loader's) die with their parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import physim.dataset
from physim import shards as sh

GEN = [sys.executable, "-c", "import sys; from physim.cli import main; sys.exit(main())",
       "generate"]


def _start(*args):
    return subprocess.Popen([*GEN, *args, "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_seeds_into_one_new_folder_one_wins_and_the_manifest_is_true(tmp_path):
    out = str(tmp_path / "d")
    a = _start("uniform", "--split", "train", "--n", "3000", "--seed", "0", "--out", out)
    b = _start("uniform", "--split", "train", "--n", "3000", "--seed", "1", "--out", out)
    ra, rb = a.wait(timeout=300), b.wait(timeout=300)
    errs = a.stderr.read() + b.stderr.read()
    assert sorted([ra, rb]) == [0, 2], errs  # exactly one is refused, with a clear error
    assert "another spec" in errs or "seed" in errs
    winner = 0 if ra == 0 else 1
    ds = physim.dataset.open(out)
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["seed"] == winner == ds.seed
    ds.verify_all()
    assert ds[0].seed == winner  # every shard is the winner's


def test_compatible_splits_generated_concurrently_both_land(tmp_path):
    out = str(tmp_path / "d")
    a = _start("collision", "--split", "id", "--n", "200", "--out", out)
    b = _start("collision", "--split", "ood", "--n", "200", "--out", out)
    assert a.wait(timeout=300) == 0, a.stderr.read()
    assert b.wait(timeout=300) == 0, b.stderr.read()
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert set(manifest["splits"]) == {"id", "ood"}
    assert (tmp_path / "d" / sh.LOCK_NAME).is_file()
    # the lock file does not make the folder look foreign to a later run
    physim.dataset.generate("collision", split="id", n=200, out=out, progress=False)


def test_a_run_meeting_a_split_being_claimed_waits_for_the_lock(tmp_path):
    # The state another run leaves for an instant under the lock: its split folder made,
    # its plan.json not yet written. A compatible run must wait for the lock, not refuse
    # the folder as foreign (the cause of the id + ood flake above).
    import shutil

    ref = tmp_path / "ref"
    physim.dataset.generate("collision", split="id", n=20, out=ref, progress=False)
    out = tmp_path / "d"
    out.mkdir()
    with sh.folder_lock(out):
        (out / "id").mkdir()
        p = _start("collision", "--split", "ood", "--n", "20", "--out", str(out))
        line = p.stderr.readline()
        assert "waiting for another process" in line, line + p.stderr.read()
        shutil.copy(ref / "id" / "plan.json", out / "id" / "plan.json")  # the claim lands
    assert p.wait(timeout=300) == 0, p.stderr.read()
    assert (out / "ood" / "plan.json").is_file()
    # control: without a lock file the same half-made folder is foreign and refused
    bare = tmp_path / "bare"
    (bare / "id").mkdir(parents=True)
    (bare / "id" / "stray.txt").write_text("x")
    q = _start("collision", "--split", "ood", "--n", "20", "--out", str(bare))
    assert q.wait(timeout=300) == 2 and "not a physim dataset" in q.stderr.read()


def test_a_lock_holder_makes_the_next_run_wait(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    with sh.folder_lock(out):
        p = _start("uniform", "--split", "id", "--n", "4", "--out", str(out))
        line = p.stderr.readline()  # blocks until the run reports the held lock
        assert "waiting for another process" in line
        time.sleep(1)
        assert p.poll() is None and not (out / "manifest.json").exists()  # still waiting
    assert p.wait(timeout=300) == 0
    assert (out / "manifest.json").is_file()


def _workers(pid: int) -> list[int]:
    """Pool workers of ``pid`` (its children but multiprocessing's resource tracker)."""
    kids = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"resource_tracker" not in cmd:
            kids.append(int(d))
    return kids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_pool_workers_die_with_a_killed_parent(tmp_path):
    out = tmp_path / "d"
    # big shards, many of them: the workers are busy when the parent is killed
    p = _start("uniform", "--split", "train", "--n", "2000000", "--out", str(out),
               "--workers", "2", "--shard-size", "20000")
    shard_dir = out / "train"
    deadline = time.time() + 300
    while time.time() < deadline and not list(shard_dir.glob("shard-*.npz")):
        time.sleep(0.2)
    assert list(shard_dir.glob("shard-*.npz")), "no shard written in 300 s"
    workers = _workers(p.pid)
    assert len(workers) == 2
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    before = len(list(shard_dir.glob("shard-*.npz")))
    # a worker still importing ends as soon as it starts (its initializer sees the parent
    # gone); a working one is killed by the kernel at once
    deadline = time.time() + 120
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.2)
    assert not [w for w in workers if _alive(w)]
    time.sleep(1)
    assert len(list(shard_dir.glob("shard-*.npz"))) <= before + 1  # at most a rename in flight


_LOADER_CHILD = """
import sys, time
from physim import dataset, loader

if __name__ == "__main__":  # Grain spawns its workers: they re-import this file
    it = iter(loader.make_loader(dataset.open(sys.argv[1]), batch_size=4, resolution=16,
                                 n_frames=6, shard_index=0, shard_count=1, workers=2))
    next(it)
    print("READY", flush=True)
    while True:
        next(it)
        time.sleep(0.05)
"""


def test_grain_loader_workers_die_with_a_killed_trainer(tmp_path):
    physim.dataset.generate("collision", split="train", n=24, seed=5, out=tmp_path / "d",
                            shard_size=10, progress=False)
    script = tmp_path / "child.py"
    script.write_text(_LOADER_CHILD)
    p = subprocess.Popen([sys.executable, str(script), str(tmp_path / "d")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    workers = []
    try:
        assert p.stdout.readline().strip() == "READY"  # batches came from the workers
        workers = _workers(p.pid)
        assert len(workers) == 2 and all(_alive(w) for w in workers)
        time.sleep(1)
        assert all(_alive(w) for w in workers)  # they live as long as their parent
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        deadline = time.time() + 60
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not [w for w in workers if _alive(w)]
    finally:  # a failed run leaves nothing behind either
        p.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def test_a_huge_n_and_an_impossible_grid_are_refused_before_writing(tmp_path):
    import pytest

    from physim.plan import MAX_VIDEOS

    with pytest.raises(ValueError, match="above the"):
        physim.dataset.generate("uniform", split="train", n=MAX_VIDEOS + 1,
                                out=tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="impossible to place"):
        physim.dataset.generate("collision", split="id", n=10, out=tmp_path / "b",
                                overrides={"v_id": (0.0, 0.0)}, progress=False)
    assert not (tmp_path / "b").exists()
    # the good inputs go through
    physim.dataset.generate("collision", split="id", n=10, out=tmp_path / "b", progress=False)
    assert len(physim.dataset.open(tmp_path / "b")) > 0
    # a random split whose videos cannot be placed: refused before plan.json, so the
    # corrected command then runs in the same folder (it used to be poisoned)
    with pytest.raises(ValueError, match="placement impossible.*nothing written"):
        physim.dataset.generate("collision", split="train", n=5, out=tmp_path / "c",
                                overrides={"v_id": (0.0, 0.0)}, progress=False)
    assert not (tmp_path / "c").exists()
    physim.dataset.generate("collision", split="train", n=5, out=tmp_path / "c", progress=False)
    assert len(physim.dataset.open(tmp_path / "c")) == 5
