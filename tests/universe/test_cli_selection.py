"""`feeder --check` resolves patterns with the exchange and sizes shared memory; what selects nothing and
what does not fit in /dev/shm exit 2 with a message that names it, before anything is created."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from feeder.cli.run import main
from feeder.sim import SimServer

HUGE = "[capacity]\nbook = 1073741824\n"  # 2**30 records of 8 KB rings... 412 GB per book ring


def test_check_resolves_patterns_with_the_embedded_simulator_and_prints_the_memory(capsys):
    assert main(["--check", "--sim", "--instruments", "BTC-*-C,ETH-PERPETUAL", "--chains", "option"]) == 0
    plan = json.loads(capsys.readouterr().out)
    calls = [name for name in plan["instruments"] if name != "ETH-PERPETUAL"]
    assert calls and all(name.startswith("BTC-") and name.endswith("-C") for name in calls)
    assert plan["asked_exchange"] and plan["follows_listings"]
    assert {"book.BTC-options", "ticker.BTC-options", "markprice.btc_usd", "book.ETH"} <= set(plan["rings"])
    assert plan["shm_bytes"] == sum(plan["ring_bytes"].values()) and plan["shm_size_advice"].endswith(
        ("m", "g")
    )


def test_check_names_every_pattern_name_kind_and_currency_that_selects_nothing(capsys):
    with SimServer(rate=0) as sim:
        assert main(["--check", "--url", sim.ws_url, "--instruments", "BTC-*-X,BTC-FOO,BTC-PERPETUAL"]) == 2
        err = capsys.readouterr().err
        assert "pattern 'BTC-*-X' matched nothing" in err and "instrument 'BTC-FOO' is not listed" in err
        assert main(["--check", "--url", sim.ws_url, "--currency", "XYZ"]) == 2
        assert "currency 'XYZ': the exchange refused it" in capsys.readouterr().err
    assert main(["--check", "--kind", "options"]) == 2
    assert "kinds among option, future, perpetual, spot" in capsys.readouterr().err


def test_check_refuses_rings_that_do_not_fit_in_dev_shm(tmp_path, capsys):
    config = tmp_path / "huge.toml"
    config.write_text(HUGE)
    assert main(["--check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "MiB of shared memory" in err and "shm_size: " in err


def test_the_feeder_refuses_to_start_when_dev_shm_is_too_small_and_creates_nothing(tmp_path, instance):
    config = tmp_path / "huge.toml"
    config.write_text(HUGE)
    done = subprocess.run(
        [sys.executable, "-m", "feeder", "--sim", "--config", str(config), "--duration", "60", "--display", "off"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "MiB of shared memory" in done.stderr and "docker run --shm-size=" in done.stderr
    assert not list(Path("/dev/shm").glob(f"feeder.{instance}.*"))
