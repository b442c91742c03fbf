"""mypy --strict on feeder/ (as configured in pyproject.toml), its errors counted by module and by code.

    python scripts/mypy_by_module.py [--errors]

Prints one line per module that has errors (most first), the counts per error code, and mypy's own
summary; `--errors` prints every error as well. Exits with mypy's status: 0 when the package is clean.
Run it from anywhere: it runs mypy at the top of the checkout, with this interpreter (the venv's).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):\d+: error: .*?(?:\[(?P<code>[a-z-]+)\])?$")


def tally(lines: list[str]) -> tuple[Counter[str], Counter[str]]:
    """(errors per module path, errors per error code) in mypy's output lines."""
    modules: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for line in lines:
        m = _ERROR.match(line)
        if m:
            modules[m["path"]] += 1
            codes[m["code"] or "?"] += 1
    return modules, codes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--errors", action="store_true", help="print every error too")
    ns = p.parse_args(argv)
    done = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    lines = done.stdout.splitlines()
    if ns.errors:
        print("\n".join(line for line in lines if _ERROR.match(line)))
    modules, codes = tally(lines)
    for path, n in modules.most_common():
        print(f"{n:5d}  {path}")
    if codes:
        print("by code: " + ", ".join(f"{code} {n}" for code, n in codes.most_common()))
    print(lines[-1] if lines else done.stderr.strip())
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
