"""The `physim` command: happy paths and bad input (message, exit code, nothing written)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from physim import cli, dataset, video


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_parse_set_values():
    assert cli.parse_sets(["v_id=1,3", "r_id=(0.5, 1.0)", "grid_r=4", "start=top"]) == {
        "v_id": (1, 3), "r_id": (0.5, 1.0), "grid_r": 4, "start": "top",
    }  # fmt: skip
    assert cli.parse_value("[1, [2, 3]]") == (1, (2, 3)) and cli.parse_value('"a,b"') == "a,b"
    with pytest.raises(ValueError, match="KEY=VALUE"):
        cli.parse_sets(["novalue"])


def test_generate_info_preview_export(tmp_path, capsys):
    d = tmp_path / "d"
    argv = ["generate", "uniform", "--split", "train", "--n", 12, "--seed", 2, "--out", d,
            "--shard-size", 5, "--set", "v_id=1,3", "--no-progress"]  # fmt: skip
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "complete, manifest written" in out
    ds = dataset.open(d)
    assert len(ds) == 12 and ds.manifest["spec"]["v_id"] == [1, 3]
    assert all(1 <= ds[i].params["v"] <= 3 for i in range(12))

    code, out, _ = run(capsys, "info", d, "--plot", tmp_path / "h.png")
    assert code == 0 and "split train: 12 videos in 3 shards" in out
    assert video.read_image(tmp_path / "h.png").shape[2] == 3

    code, out, _ = run(
        capsys, "preview", d, "--index", 3, "--resolution", 16, "--out", tmp_path / "p"
    )
    assert code == 0
    sheet = video.read_image(tmp_path / "p" / "uniform-train-0000003.png")
    assert sheet.shape == (4 * 18 + 2, 8 * 18 + 2, 3)
    gif = video.read_image(tmp_path / "p" / "uniform-train-0000003.gif")
    assert np.array_equal(gif, ds.frames(3, resolution=16))
    code, _, _ = run(capsys, "preview", d, "--grid", "--resolution", 8, "--out", tmp_path / "p")
    assert code == 0 and list((tmp_path / "p").glob("grid-*.gif"))
    for bad, msg in ((("--index", 9999), "out of range: the dataset has 12 videos"),
                     (("--resolution", 0), "--resolution must be >= 4")):
        code, _, err = run(capsys, "preview", d, *bad, "--out", tmp_path / "bad")
        assert code == 2 and msg in err and not (tmp_path / "bad").exists()

    code, _, _ = run(capsys, "export", d, "--format", "npy", "--out", tmp_path / "x",
                     "--resolution", 8, "--no-progress")  # fmt: skip
    assert code == 0 and len(list((tmp_path / "x").glob("*.npy"))) == 12


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "nope", "--n", "5"], "unknown scenario 'nope'"),
        (["generate", "uniform", "--n", "5", "--set", "bogus=1"], "unknown key"),
        (["generate", "uniform", "--n", "0"], "positive integer"),
        (["generate", "uniform", "--n", "-4"], "positive integer"),
        (["generate", "uniform", "--n", "5", "--split", "test"], "unknown split"),
    ],
)
def test_bad_generate_input(tmp_path, capsys, argv, message):
    out = tmp_path / "d"
    code, _, err = run(capsys, *argv, "--out", out, "--no-progress")
    assert code == 2 and err.startswith("physim: error:") and message in err
    assert not out.exists()


def test_foreign_directory_and_bad_datasets(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a.txt").write_text("keep")
    code, _, err = run(capsys, "generate", "uniform", "--n", 5, "--out", foreign, "--no-progress")
    assert code == 2 and "not a physim dataset" in err and (foreign / "a.txt").read_text() == "keep"
    assert sorted(p.name for p in foreign.iterdir()) == ["a.txt"]

    d = tmp_path / "d"
    assert run(capsys, "generate", "uniform", "--n", 5, "--out", d, "--no-progress")[0] == 0
    shard = next((d / "train").glob("shard-*.npz"))
    data = bytearray(shard.read_bytes())
    data[-300] ^= 1
    shard.write_bytes(bytes(data))
    code, _, err = run(
        capsys, "export", d, "--format", "npy", "--out", tmp_path / "x", "--no-progress"
    )
    assert code == 2 and shard.name in err and "corrupt" in err

    man = json.loads((d / "manifest.json").read_text())
    man["format_version"] = 7
    (d / "manifest.json").write_text(json.dumps(man))
    code, _, err = run(capsys, "info", d, "--no-plot")
    assert code == 2 and "unknown manifest format version 7" in err


def test_external_subcommands_do_not_break_the_cli(capsys):
    # Whatever other packages provide, core commands parse and `--help` lists every command.
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("generate", "export", "preview", "info", "evaluate", "train", "sample"):
        assert name in out


def test_console_script_runs(tmp_path):
    exe = Path(sys.executable).with_name("physim")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "physim.cli"]
    r = subprocess.run([*cmd, "info", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "not a physim dataset" in r.stderr


def test_templates_flag_selects_the_combinatorial_training_set(tmp_path, capsys):
    out = str(tmp_path / "c")
    code, _, _ = run(capsys, "generate", "combinatorial", "--split", "in-template",
                     "--templates", "6", "--n", "1", "--out", out, "--no-progress")  # fmt: skip
    assert code == 0
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["spec"]["templates"] == 6
    code, _, err = run(capsys, "generate", "uniform", "--templates", "6", "--n", "1",
                       "--out", str(tmp_path / "u"), "--no-progress")  # fmt: skip
    assert code != 0 and "templates" in err and not (tmp_path / "u" / "manifest.json").exists()
