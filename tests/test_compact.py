"""Compact storage (``--storage compact``): initial states only, the rest re-simulated on
read and checked against a digest; reads back exactly what the full format holds."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import physim
import physim.dataset
from physim import columns, shards
from physim.columns import DERIVED


def _pair(tmp_path, scenario, split, n, **kw):
    full, comp = tmp_path / f"{scenario}-full", tmp_path / f"{scenario}-compact"
    physim.dataset.generate(scenario, split=split, n=n, seed=3, out=full, progress=False, **kw)
    physim.dataset.generate(scenario, split=split, n=n, seed=3, out=comp, progress=False,
                            storage="compact", **kw)
    return physim.dataset.open(full), physim.dataset.open(comp), full, comp


def _bytes(root, split):
    d = root / split
    return sum(os.path.getsize(d / f) for f in os.listdir(d) if f.endswith(".npz"))


@pytest.mark.parametrize("scenario,split,budget", [("uniform", "train", 300),
                                                   ("collision", "train", 600),
                                                   ("parabola", "train", 300),
                                                   ("collision", "id", 600)])
def test_compact_reads_back_the_full_states(tmp_path, scenario, split, budget):
    full, comp, full_dir, comp_dir = _pair(tmp_path, scenario, split, 600, shard_size=300)
    assert len(full) == len(comp) and full.ids == comp.ids
    for i in range(len(full)):
        a, b = full[i], comp[i]
        assert shards.records_equal(a, b), a.id
    n_shards = len([f for f in os.listdir(comp_dir / split) if f.endswith(".npz")])
    for s in range(n_shards):
        fs, cs = full.shard(s), comp.shard(s)
        for name in DERIVED:
            np.testing.assert_array_equal(fs[name], cs[name])
            assert fs[name].dtype == cs[name].dtype
    # Frames drawn from either are the same bytes.
    np.testing.assert_array_equal(full.frames(5, resolution=32), comp.frames(5, resolution=32))
    per_video = _bytes(comp_dir, split) / len(comp)
    assert per_video <= budget, per_video
    assert _bytes(full_dir, split) / len(full) > 3 * per_video  # it is compact


def test_default_storage_keeps_its_bytes(tmp_path):
    """The option leaves full datasets as they were: no 'storage' in plan.json or shards."""
    physim.dataset.generate("uniform", split="train", n=50, seed=1, out=tmp_path, progress=False)
    plan = json.loads((tmp_path / "train" / "plan.json").read_text())
    assert "storage" not in plan
    ds = physim.dataset.open(tmp_path)
    assert "storage" not in ds.shard(0).meta and "positions0" not in ds.shard(0).keys()


def test_tampered_compact_shard_is_refused(tmp_path):
    physim.dataset.generate("collision", split="train", n=40, seed=1, out=tmp_path,
                            progress=False, storage="compact")
    path = tmp_path / "train" / "shard-00000-of-00001.npz"
    sh = shards.Shard(path)
    cols = {k: np.array(sh[k]) for k in sh.keys() if k not in DERIVED}
    sh.close()
    meta = json.loads(str(cols["meta"][()]))
    orig = cols["velocities0"].copy()
    cols["velocities0"][7, 0, 0] += 1e-9  # one initial velocity, slightly off
    bad = tmp_path / "bad.npz"
    bad.write_bytes(shards.npz_bytes(cols))
    with pytest.raises(shards.ShardError, match="differ from the digest"):
        shards.Shard(bad)
    # Positive control: the unmodified columns open.
    cols["velocities0"] = orig
    ok = tmp_path / "ok.npz"
    ok.write_bytes(shards.npz_bytes(cols))
    assert len(shards.Shard(ok)) == 40
    meta["storage"]["kind"] = "zstd"
    cols["meta"] = np.array(json.dumps(meta))
    bad.write_bytes(shards.npz_bytes(cols))
    with pytest.raises(shards.ShardError, match="unknown storage"):
        shards.Shard(bad)


def test_compact_refuses_per_video_scenarios_before_writing(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="--storage compact needs"):
        physim.dataset.generate("composition_temporal", split="train", n=4, seed=0, out=out,
                                progress=False, storage="compact")
    with pytest.raises(ValueError, match="--storage must be one of"):
        physim.dataset.generate("uniform", split="train", n=4, seed=0, out=out,
                                progress=False, storage="float16")
    assert not out.exists()


def test_compact_columns_refuse_what_they_cannot_rebuild():
    b = physim.scenario("uniform").batch(0, "train", np.arange(4))
    cols = columns.columns_from_batch(b, {"shard": 0})
    spec = physim.scenario("uniform")
    phys = spec.sim_kwargs()
    # Stored under other physics than simulated: the write-time check fails.
    with pytest.raises(ValueError, match="bit for bit"):
        columns.compact_columns(cols, {**phys, "gravity": [0.0, -2.5]})
    assert "positions0" in columns.compact_columns(cols, phys)


def test_cli_storage_flag(tmp_path, capsys):
    from physim import cli

    out = tmp_path / "c"
    assert cli.main(["generate", "collision", "--n", "30", "--out", str(out), "--storage",
                     "compact", "--no-progress"]) == 0
    plan = json.loads((out / "train" / "plan.json").read_text())
    assert plan["storage"] == "compact"
    ds = physim.dataset.open(out)
    ref = physim.scenario("collision").batch(0, "train", np.arange(30))
    np.testing.assert_array_equal(ds.shard(0)["positions"], ref.positions)


def test_max_events_is_a_scenario_field_kept_by_compact_storage(tmp_path):
    """``--set max_events=N`` reaches the solver and the compact re-simulation; the default
    leaves sim_kwargs (and so shard bytes) as they were; bad values are refused."""
    from physim import physics

    assert "max_events" not in physim.scenario("collision").sim_kwargs()
    assert physim.scenario("collision", max_events=512).sim_kwargs()["max_events"] == 512
    for bad, why in ((0, "max_events must be in"), (1.5, "expected an integer"),
                     (physics.MAX_EVENTS_LIMIT + 1, "max_events must be in")):
        with pytest.raises(ValueError, match=why):
            physim.scenario("collision", max_events=bad)
    full, comp, _, _ = _pair(tmp_path, "collision", "train", 40,
                                    overrides={"max_events": 512})
    meta = comp.shard(0).meta
    assert meta["storage"]["max_events"] == 512
    for i in range(len(full)):
        assert shards.records_equal(full[i], comp[i])
