"""Datasets: shard round trips, byte identity across workers/shard splits, eval grids, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import physim
from physim import dataset, generate, shards


def tree(root) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    root = Path(root)
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def gen(out, n=50, split="train", seed=3, scenario="collision", **kw):
    kw.setdefault("shard_size", 20)
    return generate.generate(scenario, split, n, seed, out, progress=False, **kw)


def test_records_read_back_equal_the_simulator(tmp_path):
    r = gen(tmp_path / "d", n=50)
    assert r["complete"] and r["written"] == 3 and r["videos"] == 50
    ds = dataset.open(tmp_path / "d")
    assert len(ds) == 50 and ds.splits == ["train"]
    spec = physim.scenario("collision")
    for i in (0, 19, 20, 49, -1):
        j = i % 50
        want = spec.batch(3, "train", [j]).record(0)
        assert shards.records_equal(ds[i], want)
    assert not shards.records_equal(ds[1], spec.batch(3, "train", [2]).record(0))  # control
    assert ds.ids[7] == "collision-train-0000007" and ds.index("collision-train-0000007") == 7
    with pytest.raises(KeyError):
        ds.index("collision-train-0009999")
    with pytest.raises(IndexError):
        ds[50]


def test_manifest_contents(tmp_path):
    gen(tmp_path / "d", n=50)
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert m["format_version"] == generate.MANIFEST_VERSION and m["seed"] == 3
    assert m["scenario"] == "collision" and m["spec"]["v_id"] == [1.0, 4.0]
    assert m["conventions"]["frames"] == 32 and m["conventions"]["world_size"] == 10.0
    assert m["counts"]["train"] == {"total": 50, "levels": {"id": 50}}
    files = m["splits"]["train"]["shards"]
    assert [f["count"] for f in files] == [20, 20, 10]
    for f in files:
        assert shards.file_sha256(tmp_path / "d" / f["file"]) == f["sha256"]
    lo, hi = m["splits"]["train"]["params"]["v1"]
    assert 1.0 <= lo < hi <= 4.0


def test_forked_workers_write_the_same_bytes(tmp_path):
    """The CLI process is single-threaded, so its pool forks (no re-import per worker),
    also after it has loaded its kernels to check the plan (which starts SciPy's BLAS
    threads); its shards are the bytes one in-process worker writes."""
    code = ("import physim.executors as e, physim.cli as c, sys; m = e.start_method; "
            "e.start_method = lambda: print(m(), flush=True) or m(); "  # what the pool uses
            "sys.exit(c.main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "generate", "collision", "--n", "60",
                        "--seed", "3", "--shard-size", "10", "--workers", "2",
                        "--out", str(tmp_path / "fork"), "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "fork"
    gen(tmp_path / "one", n=60, shard_size=10)
    assert tree(tmp_path / "fork") == tree(tmp_path / "one")


def test_start_method_spawns_beside_other_threads():
    import threading

    from physim import executors

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert executors.start_method() == "spawn"  # another Python thread is running
    finally:
        stop.set()
        t.join()


def test_same_bytes_for_any_workers_and_shard_split(tmp_path):
    gen(tmp_path / "a", n=60, shard_size=10)
    gen(tmp_path / "b", n=60, shard_size=10, workers=2)
    r1 = gen(tmp_path / "c", n=60, shard_size=10, shards="3:6")
    assert not r1["complete"] and not (tmp_path / "c" / "manifest.json").exists()
    r2 = gen(tmp_path / "c", n=60, shard_size=10, shards="0:3")
    assert r2["complete"]
    a = tree(tmp_path / "a")
    assert a == tree(tmp_path / "b") == tree(tmp_path / "c")
    gen(tmp_path / "e", n=60, shard_size=10, seed=4)  # control: another seed differs
    assert (
        tree(tmp_path / "e")["train/shard-00000-of-00006.npz"]
        != a["train/shard-00000-of-00006.npz"]
    )


def test_eval_grid_rows_are_evenly_spaced(tmp_path):
    spec = physim.scenario("uniform")
    g = spec.size("ood")
    gen(tmp_path / "d", n=40, split="ood", scenario="uniform")
    ds = dataset.open(tmp_path / "d", split="ood")
    rows = [int(i.rsplit("-", 1)[1]) for i in ds.ids]
    assert rows == [k * g // 40 for k in range(40)]
    levels = [ds[i].level for i in range(len(ds))]
    man = ds.manifest["counts"]["ood"]["levels"]
    assert man == {lv: levels.count(lv) for lv in set(levels)} and sum(man.values()) == 40
    gen(tmp_path / "d", n=10**6, split="id", scenario="uniform")  # more than the grid
    assert len(dataset.open(tmp_path / "d", split="id")) == spec.size("id")


def test_rerun_skips_verified_and_repairs_corrupt(tmp_path):
    gen(tmp_path / "d", n=50)
    before = tree(tmp_path / "d")
    r = gen(tmp_path / "d", n=50)
    assert (r["written"], r["skipped"]) == (0, 3) and tree(tmp_path / "d") == before
    shard = tmp_path / "d" / "train" / "shard-00001-of-00003.npz"
    data = bytearray(shard.read_bytes())
    data[-200] ^= 0xFF
    shard.write_bytes(bytes(data))
    r = gen(tmp_path / "d", n=50)
    assert (r["written"], r["skipped"]) == (1, 2) and tree(tmp_path / "d") == before


_KILLED_RUN = """
import sys, time
from physim import generate
orig = generate.store_shard
def slow(*a, **k):
    info = orig(*a, **k)
    time.sleep(0.3)
    return info
generate.store_shard = slow
generate.generate("uniform", "train", 400, 7, sys.argv[1], shard_size=20, progress=False)
"""


def test_sigkill_then_rerun_gives_the_identical_dataset(tmp_path):
    ref = tmp_path / "ref"
    generate.generate("uniform", "train", 400, 7, ref, shard_size=20, progress=False)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(out)])
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("train/.shard-*.json"))) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(out.glob("train/.shard-*.json")))  # sidecars: shards known complete
    assert 2 <= done < 20 and not (out / "manifest.json").exists()
    r = generate.generate("uniform", "train", 400, 7, out, shard_size=20, progress=False)
    assert r["complete"] and r["skipped"] >= done
    assert tree(out) == tree(ref)


@pytest.mark.slow
def test_ray_executor_gives_the_same_bytes(tmp_path):
    pytest.importorskip("ray", reason="Ray is optional (pip install 'physim[ray]')")
    gen(tmp_path / "local", n=40, shard_size=10)
    gen(tmp_path / "ray", n=40, shard_size=10, executor="ray", workers=2)
    assert tree(tmp_path / "local") == tree(tmp_path / "ray")


def test_shard_npz_is_plain_numpy(tmp_path):
    gen(tmp_path / "d", n=20)
    path = tmp_path / "d" / "train" / "shard-00000-of-00001.npz"
    with np.load(path, allow_pickle=False) as z:
        assert z["positions"].shape == (20, 32, 2, 2) and z["positions"].dtype == np.float64
        assert "angles" not in z.files  # all-zero columns are elided
        meta = json.loads(str(z["meta"]))
    s = shards.Shard(path)
    assert np.array_equal(s["positions"], np.load(path)["positions"])
    assert meta["scenario"] == "collision" and s["positions"].ctypes.data % 64 == 0


def test_record_shards_round_trip_extra_and_ragged_bodies():
    spec = physim.scenario("collision")
    a = spec.batch(1, "train", [0]).record(0)
    u = physim.scenario("uniform").batch(1, "train", [5]).record(0)
    b = type(u)(**{**u.__dict__, "id": "collision-train-0000005", "scenario": "collision",
                   "extra": {"geometry": [[1, 2.5], "bar"]}})  # fmt: skip
    cols = shards.columns_from_records([a, b], "collision", "train", 1)
    blob = shards.npz_bytes(cols)
    assert blob == shards.npz_bytes(cols)  # deterministic
    with pytest.raises(ValueError, match="object dtype"):
        shards.npz_bytes({"x": np.array([{}], dtype=object)})


def test_record_shard_reads_back(tmp_path):
    spec = physim.scenario("collision")
    a = spec.batch(1, "train", [0]).record(0)
    u = physim.scenario("uniform").batch(1, "train", [5]).record(0)
    b = type(u)(**{**u.__dict__, "id": "collision-train-0000005", "scenario": "collision",
                   "extra": {"geometry": [[1, 2.5], "bar"]}})  # fmt: skip
    c = type(u)(**{**u.__dict__, "id": "custom id", "scenario": "collision"})
    cols = shards.columns_from_records([a, b, c], "collision", "train", 1)
    (tmp_path / "s.npz").write_bytes(shards.npz_bytes(cols))
    s = shards.Shard(tmp_path / "s.npz")
    s.check(count=3)
    assert shards.records_equal(s.record(0), a)
    assert shards.records_equal(s.record(1), b) and s.record(1).objects.n == 1
    assert s.record(2).id == "custom id"


class _RecordScenario:
    """A per-video scenario (like the pymunk combinatorial one): sample() -> Record with
    extra metadata and a geometry hook; no batch()."""

    name = "recfake"
    splits = ("train",)

    def size(self, split):
        return None

    def sample(self, seed, split, index):
        import dataclasses

        rec = physim.scenario("uniform").sample(seed, split, index)
        return dataclasses.replace(
            rec, id=f"recfake-{split}-{index:07d}", scenario="recfake",
            extra={"bar": [index, 0.5], "kind": "jar"},
        )  # fmt: skip

    def geometry(self, record):
        from physim import render

        r = float(record.radii[0])
        return render.Geometry.empty().add_rect(0, 2 * r, r, "blue")  # an asymmetric body


def _record_factory():
    return _RecordScenario()


def test_per_video_scenarios_use_record_shards(tmp_path, monkeypatch):
    import dataclasses

    from physim import render, scenarios

    monkeypatch.setitem(scenarios.REGISTRY, "recfake", _record_factory)
    from physim import plan

    monkeypatch.setattr(plan, "spec_fields", lambda spec: {})
    r = generate.generate("recfake", "train", 7, 1, tmp_path / "d", progress=False)
    assert r["complete"] and r["n_shards"] == 1  # per-video scenarios default to small shards
    ds = dataset.open(tmp_path / "d")
    spec = _RecordScenario()
    for i in range(7):
        assert shards.records_equal(ds[i], spec.sample(1, "train", i))
    assert ds[3].extra == {"bar": [3, 0.5], "kind": "jar"}
    rec = ds[2]
    want = render.render_bodies(spec.geometry(rec), rec.positions, rec.trajectory.angles, 16)
    assert np.array_equal(ds.frames(2, resolution=16), want)  # the spec's geometry is used
    mirrored = ds.frames(2, resolution=16, flip=True)
    assert np.abs(mirrored.astype(int) - want[:, :, ::-1]).max() <= 1
    assert dataclasses.is_dataclass(rec)


def test_manifest_of_just_written_shards_equals_the_fully_verified_one(tmp_path):
    """generate writes the manifest from the infos of the shards it has just written and
    hashed (sidecar and size checked, no re-read); that manifest is the one a full
    verification of every shard builds. A sidecar that no longer says what this process
    wrote is verified in full again, and one that does not describe its shard is refused."""
    out = tmp_path / "d"
    gen(out, n=60, shard_size=10, workers=2)
    written = json.loads((out / "manifest.json").read_text())
    assert generate.build_manifest(out) == written  # every shard re-read and re-hashed
    plan = generate.read_plan(out, "train")
    infos = {k: json.loads((out / plan.sidecar_file(k)).read_text()) for k in range(6)}
    assert generate._written_info(out, plan, 0, infos[0]) == infos[0]
    stale = {**infos[0], "sha256": "0" * 64}  # not what the sidecar on disk says
    assert generate._written_info(out, plan, 0, stale) is None
    assert generate.split_summary(out, plan, {0: stale}) == written["splits"]["train"]
    side = out / plan.sidecar_file(1)
    side.write_text(json.dumps({**infos[1], "count": 9}))
    with pytest.raises(ValueError, match="does not match its sidecar"):
        generate.split_summary(out, plan, {0: infos[0], 1: infos[1]})
