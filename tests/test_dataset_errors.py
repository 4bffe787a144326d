"""Bad input to generation and reading: clear errors, nothing half-written, data untouched."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from physim import dataset, generate, shards


def tree(root) -> dict[str, bytes]:
    root = Path(root)
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def gen(out, n=30, **kw):
    kw.setdefault("shard_size", 10)
    return generate.generate(kw.pop("scenario", "uniform"), kw.pop("split", "train"), n,
                             kw.pop("seed", 1), out, progress=False, **kw)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scenario": "nope"}, "unknown scenario 'nope'"),
        ({"overrides": {"warp": 9}}, r"unknown key\(s\) \['warp'\]"),
        ({"overrides": {"v_id": (5.0, 1.0)}}, "empty or invalid range"),
        ({"n": 0}, "positive integer"),
        ({"n": -3}, "positive integer"),
        ({"split": "test"}, "unknown split 'test'"),
        ({"seed": -1}, "seed"),
        ({"shards": "5:9"}, "outside 0:3"),
        ({"shards": "a:b"}, "A:B"),
        ({"executor": "dask"}, "unknown executor"),
        ({"workers": 0}, "workers"),
        # Field values are checked against the spec before anything is written.
        ({"overrides": {"restitution": -1.0}}, r"restitution must be in \[0, 1\]"),
        ({"overrides": {"dt": float("nan")}}, "finite number"),
        ({"overrides": {"dt": "nan"}}, "expected a number"),
        ({"overrides": {"n_frames": "abc"}}, "expected a number"),
        ({"overrides": {"n_frames": 2.5}}, "expected an integer"),
        ({"overrides": {"n_frames": 100_000_000}}, "n_frames <= 10000"),
        ({"overrides": {"grid_r": "abc"}}, "expected a number"),
        ({"overrides": {"v_id": (1.0, 2.0, 3.0)}}, "expected 2 values"),
        ({"scenario": "parabola", "overrides": {"gravity": (float("nan"), -1.0)}},
         "finite number"),
        ({"split": "id", "overrides": {"restitution": -1.0}}, "restitution"),
    ],
)
def test_bad_arguments_write_nothing(tmp_path, kwargs, match):
    out = tmp_path / "d"
    n = kwargs.pop("n", 30)
    with pytest.raises(ValueError, match=match):
        gen(out, n=n, **kwargs)
    assert not out.exists()


def test_good_field_values_still_generate(tmp_path):
    # The positive control of the checks above: the same fields with sound values.
    gen(tmp_path / "ok", n=10, scenario="parabola",
        overrides={"restitution": 0.5, "dt": 0.05, "n_frames": 16, "gravity": (0.0, -1.0)})
    ds = dataset.open(tmp_path / "ok")
    assert len(ds) == 10 and ds.n_frames == 16


def test_simulate_refuses_non_finite_gravity():
    from physim import Objects, simulate

    with pytest.raises(ValueError, match="gravity must be finite"):
        simulate(Objects.make([1.0]), [[5, 5]], [[0, 0]], gravity=(0, float("nan")))
    traj = simulate(Objects.make([1.0]), [[5, 5]], [[0, 0]], gravity=(0, -1.0), walls=False)
    np.testing.assert_allclose(traj.positions[5, 0, 1], 5 - 0.5 * 0.5**2, atol=1e-12)


@pytest.mark.parametrize(("name", "content", "match"), [
    ("notes.txt", b"precious", "not empty and is not a physim dataset"),
    ("manifest.json", b'{"mine": 1}', "not a physim dataset manifest"),  # never overwritten
])
def test_foreign_directory_content_is_untouched(tmp_path, name, content, match):
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_bytes(content)
    with pytest.raises(ValueError, match=match):
        gen(out)
    assert tree(out) == {name: content}


def test_our_own_manifest_is_extended(tmp_path):
    gen(tmp_path / "ours", n=10)  # the positive control of the test above
    gen(tmp_path / "ours", n=4, split="id")
    assert set(dataset.open(tmp_path / "ours").manifest["splits"]) == {"train", "id"}


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not a directory|not writable"):
        gen(blocker)
    with pytest.raises(ValueError, match="not writable"):
        gen(blocker / "sub")
    assert blocker.read_text() == "x"
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(ValueError, match="not writable"):
                gen(ro / "d")
        finally:
            ro.chmod(0o700)


def test_other_dataset_or_plan_in_the_folder_is_refused(tmp_path):
    out = tmp_path / "d"
    gen(out)
    before = tree(out)
    with pytest.raises(ValueError, match="seed 1 and another spec"):
        gen(out, seed=2)
    with pytest.raises(ValueError, match="different plan"):
        gen(out, n=40)
    with pytest.raises(ValueError, match="seed 1 and another spec"):
        gen(out, overrides={"v_id": (1.0, 3.0)}, split="id")
    assert tree(out) == before
    gen(out, split="ood", n=12)  # another split of the same dataset is fine
    assert sorted(dataset.open(out).manifest["splits"]) == ["ood", "train"]


def test_corrupt_shard_is_named(tmp_path):
    out = tmp_path / "d"
    gen(out)
    path = out / "train" / "shard-00001-of-00003.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    ds = dataset.open(out)
    ds[0]  # shard 0 is fine
    with pytest.raises(dataset.DatasetError, match=r"shard-00001-of-00003\.npz is corrupt"):
        ds[15]
    with pytest.raises(dataset.DatasetError, match="shard-00001"):
        ds.verify_all()


def test_truncated_or_garbage_shard_is_named(tmp_path):
    out = tmp_path / "d"
    gen(out)
    path = out / "train" / "shard-00002-of-00003.npz"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 2])
    with pytest.raises(dataset.DatasetError, match=r"shard-00002-of-00003\.npz has \d+ bytes"):
        dataset.open(out)[25]
    path.write_bytes(b"\0" * size)  # right size, not a zip; no checksum check
    with pytest.raises(dataset.DatasetError, match=r"shard-00002-of-00003\.npz is unreadable"):
        dataset.open(out, verify=False)[25]


def test_wrong_shape_is_named(tmp_path):
    out = tmp_path / "d"
    gen(out)
    path = out / "train" / "shard-00000-of-00003.npz"
    with np.load(path) as z:
        cols = {k: z[k] for k in z.files}
    cols["velocities"] = cols["velocities"][:, :5]  # T = 5 instead of 32
    blob = shards.npz_bytes(cols)
    path.write_bytes(blob)
    man = json.loads((out / "manifest.json").read_text())
    man["splits"]["train"]["shards"][0].update(sha256=shards.sha256(blob), bytes=len(blob))
    (out / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(dataset.DatasetError, match=r"shard-00000-of-00003\.npz: column 'velo"):
        dataset.open(out)[0]


def test_unknown_manifest_version_and_missing_manifest(tmp_path):
    out = tmp_path / "d"
    gen(out)
    man = json.loads((out / "manifest.json").read_text())
    man["format_version"] = 99
    (out / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(dataset.DatasetError, match="unknown manifest format version 99"):
        dataset.open(out)
    (out / "manifest.json").unlink()
    with pytest.raises(dataset.DatasetError, match="incomplete"):
        dataset.open(out)
    with pytest.raises(dataset.DatasetError, match="not a physim dataset"):
        dataset.open(tmp_path)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(dataset.DatasetError, match="not valid JSON"):
        dataset.open(out)


def test_unknown_split_on_open(tmp_path):
    gen(tmp_path / "d")
    with pytest.raises(dataset.DatasetError, match="no split 'ood'"):
        dataset.open(tmp_path / "d", split="ood")


def _rewrite_manifest(root, edit):
    p = Path(root) / "manifest.json"
    m = json.loads(p.read_text())
    edit(m)
    p.write_text(json.dumps(m))


@pytest.mark.parametrize("edit", [
    lambda m: m.__setitem__("scenario", "../../../escape"),
    lambda m: m["splits"]["train"]["shards"][0].__setitem__("file", "/etc/passwd"),
    lambda m: m["splits"]["train"]["shards"][0].__setitem__("file", "../../outside.npz"),
    lambda m: m["splits"].__setitem__("../x", m["splits"].pop("train")),
])
def test_hostile_manifest_names_are_refused(tmp_path, edit):
    gen(tmp_path / "d", n=10)
    assert len(dataset.open(tmp_path / "d")) == 10  # positive control
    _rewrite_manifest(tmp_path / "d", edit)
    with pytest.raises(dataset.DatasetError, match="not a plain name"):
        dataset.open(tmp_path / "d")


def test_hostile_video_ids_are_refused_even_with_a_matching_sha256(tmp_path):
    gen(tmp_path / "d", n=10)
    root = tmp_path / "d"
    entry = json.loads((root / "manifest.json").read_text())["splits"]["train"]["shards"][0]
    path = root / entry["file"]
    with np.load(path, allow_pickle=False) as z:
        cols = {k: z[k] for k in z.files}
    meta = json.loads(str(cols["meta"]))
    meta["scenario"] = "../../x"  # ids are {scenario}-{split}-{index}
    cols["meta"] = np.array(json.dumps(meta))
    data = shards.npz_bytes(cols)
    path.write_bytes(data)

    def fix(m):
        e = m["splits"]["train"]["shards"][0]
        e["sha256"], e["bytes"] = shards.sha256(data), len(data)
    _rewrite_manifest(root, fix)
    ds = dataset.open(root)
    with pytest.raises(dataset.DatasetError, match="video id '../../x-train-0000000'"):
        ds.ids  # noqa: B018
    # every writer named by an id refuses it through the CLI, writing nothing anywhere
    from physim import cli

    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    for argv in (["export", str(root), "--format", "npy", "--out", str(tmp_path / "o/a/b")],
                 ["export", str(root), "--format", "npy", "--conditioning-only",
                  "--out", str(tmp_path / "o/c/d")],
                 ["preview", str(root), "--out", str(tmp_path / "o/e/f")]):
        assert cli.main(argv + ["--no-progress"] * (argv[0] == "export")) == 2, argv
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before
    assert not list(tmp_path.rglob("x-train-*"))


def test_a_shard_linked_out_of_the_dataset_is_refused(tmp_path):
    gen(tmp_path / "d", n=20)
    gen(tmp_path / "other", n=20)
    root = tmp_path / "d"
    name = "train/shard-00001-of-00002.npz"
    ds = dataset.open(root)
    ds[15]  # positive control: the real shard reads
    # the same bytes (sha256 and size match the manifest), but through a link out of "d"
    (root / name).unlink()
    (root / name).symlink_to(tmp_path / "other" / name)
    ds = dataset.open(root)
    ds[0]  # shard 0 is still the folder's own
    with pytest.raises(dataset.DatasetError, match="outside the dataset"):
        ds[15]
    # a link inside the folder, and a dataset folder that is itself a link, are fine
    (root / name).unlink()
    os.replace(tmp_path / "other" / name, root / "train" / "moved.npz")
    (root / name).symlink_to(root / "train" / "moved.npz")
    (tmp_path / "link").symlink_to(root)
    assert dataset.open(tmp_path / "link")[15].id == dataset.open(root)[15].id


def test_a_manifest_entry_pointing_at_another_shard_is_refused(tmp_path):
    gen(tmp_path / "d", n=30)  # 3 shards of 10
    root = tmp_path / "d"
    ds = dataset.open(root)
    assert len(set(ds.ids)) == 30  # positive control
    m = json.loads((root / "manifest.json").read_text())
    a, b = m["splits"]["train"]["shards"][:2]
    for k in ("file", "sha256", "bytes"):  # entry 0 now names shard 1's file, consistently
        a[k] = b[k]
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(dataset.DatasetError, match="the manifest says 'train' 0..9"):
        dataset.open(root).ids  # noqa: B018


@pytest.mark.parametrize("field", ["levels", "params", "count"])
def test_a_tampered_sidecar_of_another_split_does_not_enter_the_manifest(tmp_path, field):
    root = tmp_path / "d"
    gen(root, n=20)  # train: 2 shards, manifest written
    side = next(p for p in sorted(root.rglob("*.json")) if "train" in str(p)
                and p.name not in ("plan.json", "manifest.json"))
    info = json.loads(side.read_text())
    info[field] = ({"forged": 99} if field == "levels" else
                   {"v": [-50.0, 50.0]} if field == "params" else info["count"] + 1)
    side.write_text(json.dumps(info))
    before = (root / "manifest.json").read_text()
    sidecar = re.escape(f"train/{side.name}")
    with pytest.raises(ValueError, match=f"does not match its sidecar {sidecar}"):
        gen(root, n=5, split="id")
    assert (root / "manifest.json").read_text() == before  # the forged entry did not land
    # The command the error names repairs the split; then the other split is accepted.
    gen(root, n=20)
    gen(root, n=5, split="id")
    man = json.loads((root / "manifest.json").read_text())
    assert set(man["splits"]) == {"train", "id"} and "forged" not in json.dumps(man)
    assert man["splits"]["train"]["count"] == 20
