"""A non-editable install finds its schemas inside the package and can create, write and read a ring."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_DEADLINE = 170

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


def test_an_installed_wheel_carries_the_schemas_and_runs_from_another_directory(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=BUILD_DEADLINE,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = wheels.glob("feeder-*.whl")
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=BUILD_DEADLINE,
    )
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert probe.returncode == 0, probe.stderr
    package, schemas, seqs = probe.stdout.splitlines()
    assert Path(package).is_relative_to(site)
    assert Path(schemas) == site / "feeder" / "_schemas"
    assert seqs == "[0]"
