"""Every consumer program: --help, --check (validate, print the plan, attach to nothing), bad arguments."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

VALID = {
    "monitor": ["book.BTC", "book.ETH", "--display", "plain"],
    "record": ["OUT", "book.BTC", "trades.BTC", "--chunk-records", "1000"],
    "latency": ["book.BTC", "--window", "5", "--json"],
    "example-strategy": ["--instrument", "ETH-PERPETUAL", "--ring", "book.ETH", "--label", "s1"],
}


@pytest.mark.parametrize("program", sorted(VALID))
def test_help_describes_the_program_and_its_exit_codes(run, program):
    done = run(program, "--help")
    assert done.returncode == 0
    assert f"usage: feeder {program}" in done.stdout
    assert "exit codes:" in done.stdout and "--check" in done.stdout and "--instance" in done.stdout


@pytest.mark.parametrize("program", sorted(VALID))
def test_check_validates_without_a_running_feeder(run, program, instance, tmp_path):
    args = [str(tmp_path / a) if a == "OUT" else a for a in VALID[program]]
    done = run(program, *args, "--check")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["ok"] is True and plan["program"] == program and plan["instance"] == instance
    assert not (tmp_path / "OUT").exists()  # nothing created, nothing attached


def test_check_reports_the_resolved_settings(run):
    plan = json.loads(run("monitor", "book.BTC", "--display", "plain", "--check").stdout)
    assert plan["rings"] == ["book.BTC"] and plan["display"] == "plain" and plan["interval_s"] == 1.0
    plan = json.loads(run("example-strategy", "--check").stdout)
    assert (plan["instrument"], plan["ring"], plan["label_prefix"]) == ("BTC-PERPETUAL", "book.BTC", "quoter")


@pytest.mark.parametrize(
    ("program", "args", "message"),
    [
        ("monitor", ["BOOK.btc"], "ring name 'BOOK.btc' is not allowed: expected '<stream>.<symbol>'"),
        ("monitor", ["book.BTC", "book.BTC"], "ring 'book.BTC' is given twice"),
        (
            "monitor",
            ["book.BTC", "--interval", "0"],
            "argument --interval: '0': expected a number greater than 0",
        ),
        ("monitor", ["book.BTC", "--display", "fancy"], "argument --display: invalid choice: 'fancy'"),
        ("monitor", ["book.BTC", "--instance", "a/b"], "instance name 'a/b' is not allowed"),
        ("latency", ["book.BTC", "--count", "many"], "argument --count: 'many' is not an integer"),
        ("record", ["OUT"], "the following arguments are required: RING"),
        ("example-strategy", ["--ring", "trades.BTC"], "--ring 'trades.BTC' is not a book ring"),
        ("example-strategy", ["--label", "has space"], "label prefix 'has space' is not allowed"),
        (
            "example-strategy",
            ["--instrument", "BTC PERP"],
            "--instrument 'BTC PERP' is not an instrument name",
        ),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(run, program, args, message):
    done = run(program, *args, "--check")
    assert done.returncode == 2
    assert message in done.stderr


def test_recorder_refuses_an_output_that_is_a_file(run, tmp_path):
    out = tmp_path / "file"
    out.write_text("")
    done = run("record", str(out), "book.BTC", "--check")
    assert done.returncode == 2 and "exists and is not a directory" in done.stderr


def test_recording_loader_has_help(run):
    done = run("recording", "--help")
    assert done.returncode == 0 and "usage: feeder recording" in done.stdout


NO_PYARROW = "import sys; sys.modules['pyarrow'] = None; from feeder.cli.main import main; sys.exit(main(sys.argv[1:]))"


@pytest.mark.parametrize(("storage", "code"), [("npy", 0), ("parquet", 2)])
def test_only_parquet_needs_pyarrow_and_says_how_to_install_it(tmp_path, storage, code):
    args = ["record", str(tmp_path / "OUT"), "book.BTC", "--format", storage, "--check"]
    done = subprocess.run(
        [sys.executable, "-c", NO_PYARROW, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == code, done.stderr
    assert (code == 2) == ("pip install 'feeder[parquet]'" in done.stderr)
