"""The README's five-minute tutorial, run as a new user would: every command and program in it, in order,
against a real `feeder --sim`, so the tutorial stays true."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from helpers import wait_until
from runtime.feederkit import FeederProcess, cleanup_run_dir

from feeder import RingNotFound, RingReader
from feeder.ring.names import SHM_DIR

ROOT = Path(__file__).resolve().parent.parent
BIN = str(Path(sys.executable).parent)


def tutorial() -> list[tuple[str, str]]:
    """The (language, text) of each code block of the tutorial section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Five-minute tutorial", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(bash|python)\n(.*?)```", section, flags=re.S)


def run(command: list[str], cwd: Path, timeout: float = 120) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_five_minute_tutorial_works_as_written(tmp_path, instance):
    blocks = tutorial()
    assert [lang for lang, _ in blocks] == ["bash", "bash", "python", "python", "bash", "python"]
    (_, start), (_, watch), (_, read_book), (_, order), (_, record), (_, read_replay) = blocks
    assert start.strip() == "feeder --sim"
    replayed = f"{instance}-r"  # a name of this test's own, so parallel runs never share it
    record = record.replace("--instance replayed", f"--instance {replayed}")
    read_replay = read_replay.replace('instance="replayed"', f'instance="{replayed}"')
    feeder = FeederProcess("--sim", log=tmp_path / "feeder.log")
    replay = None
    try:
        feeder.start(workers=2, timeout=90)
        for line in watch.strip().splitlines():
            run(shlex.split(line.split("#")[0]), tmp_path)
        book = run([sys.executable, "-c", read_book], tmp_path)
        assert "BTC-PERPETUAL" in book
        orders = run([sys.executable, "-c", order], tmp_path).splitlines()
        assert orders[0].split()[1:] == ["open", orders[0].split()[2]] and orders[0].split()[2].startswith(
            "fh-"
        )
        assert orders[-1] == "cancelled"
        recording, check, replay_command = record.strip().splitlines()
        run(shlex.split(recording), tmp_path)
        run(shlex.split(check), tmp_path)
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
        replay = subprocess.Popen(shlex.split(replay_command), cwd=tmp_path, env=env, start_new_session=True)
        wait_until(lambda: _replayed(replayed), 60, "the replayed rings")
        out = run([sys.executable, "-c", read_replay], tmp_path)
        assert int(out.split()[0]) > 0
    finally:
        if replay is not None:
            replay.send_signal(signal.SIGINT)
            try:
                replay.wait(30)
            except subprocess.TimeoutExpired:
                replay.kill()
                replay.wait(30)
        feeder.stop()
        feeder.kill()
        cleanup_run_dir(instance)
        cleanup_run_dir(replayed)
    assert not list(Path(SHM_DIR).glob(f"feeder.{replayed}.*")), "the replay left rings behind"


def _replayed(instance: str) -> bool:
    try:
        with RingReader("book.BTC", instance=instance, start="oldest") as reader:
            return reader.write_seq > 0
    except RingNotFound:
        return False
