"""A non-editable install, as a pip user gets it: built into a wheel, installed into a fresh venv.

The wheel installs one top-level package (`feeder`, with its schemas and `py.typed` inside); the consumer
programs are `feeder` subcommands that answer `--help` and `--check` from any directory. The fresh venv
gets the runtime dependencies from the test environment (a .pth line: the suite runs offline).
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_DEADLINE = 170
RUN_DEADLINE = 60

PROBE = """
import numpy as np
import feeder
from feeder.ring import RingReader, RingWriter
from feeder.ring.schema import schema_dir
with RingWriter.create("book.INSTALL", "book", 8) as w, RingReader("book.INSTALL", start="oldest") as r:
    w.publish(np.zeros(1, w.dtype))
    print(feeder.__file__)
    print(schema_dir())
    print(r.read()["seq"].tolist())
"""

# subcommand -> arguments that pass --check without a running feeder
TOOLS = {
    "monitor": ["book.BTC", "--display", "plain"],
    "record": ["OUT", "book.BTC", "--format", "npy"],
    "recording": None,  # a loader: --help only (it has nothing to plan)
    "latency": ["book.BTC", "--json"],
    "example-strategy": ["--instrument", "BTC-PERPETUAL", "--ring", "book.BTC"],
}


class Installed:
    def __init__(self, wheel: Path, prefix: Path):
        self.wheel, self.prefix = wheel, prefix
        self.python, self.feeder = prefix / "bin" / "python", prefix / "bin" / "feeder"

    def run(self, *argv: str | Path, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=RUN_DEADLINE,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    """`pip wheel .` then `pip install --no-deps <wheel>` into a new venv (dependencies from this one)."""
    tmp = tmp_path_factory.mktemp("install")
    wheels, prefix = tmp / "wheels", tmp / "venv"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)],
        capture_output=True, text=True, timeout=BUILD_DEADLINE,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    [wheel] = wheels.glob("feeder-*.whl")
    venv.create(prefix, with_pip=False)
    install = subprocess.run(
        [*pip, "--python", str(prefix / "bin" / "python"), "install", "--no-deps", str(wheel)],
        capture_output=True, text=True, timeout=BUILD_DEADLINE,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    [fresh_site] = prefix.glob("lib/python*/site-packages")
    (fresh_site / "test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return Installed(wheel, prefix)


def test_the_wheel_installs_only_the_feeder_package(installed):
    with zipfile.ZipFile(installed.wheel) as whl:
        names = whl.namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"feeder"}
    assert {"feeder/py.typed", "feeder/_schemas/book.json", "feeder/consumers/monitor.py"} <= set(names)


def test_an_installed_wheel_carries_the_schemas_and_runs_from_another_directory(installed, tmp_path):
    probe = installed.run(installed.python, "-c", PROBE, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    package, schemas, seqs = probe.stdout.splitlines()
    [fresh_site] = installed.prefix.glob("lib/python*/site-packages")
    assert Path(package).is_relative_to(fresh_site)
    assert Path(schemas) == fresh_site / "feeder" / "_schemas"
    assert seqs == "[0]"
    generic = installed.run(installed.python, "-c", "import consumers", cwd=tmp_path)
    assert "No module named 'consumers'" in generic.stderr


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_each_tool_is_an_installed_subcommand_with_help_and_check(installed, tool, tmp_path, instance):
    helped = installed.run(installed.feeder, tool, "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith(f"usage: feeder {tool}")
    if TOOLS[tool] is None:
        return
    args = [str(tmp_path / a) if a == "OUT" else a for a in TOOLS[tool]]
    checked = installed.run(installed.feeder, tool, *args, "--check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    plan = json.loads(checked.stdout)
    assert plan["ok"] is True and plan["program"] == tool and plan["instance"] == instance
