#!/usr/bin/env python3
"""CI: every install line the README documents, on a fresh virtual environment with exactly the extras
it names, followed by the `lengen run` commands of the same code block as dry runs (`--dry-run`:
validation, data loading and every import a run needs, no training). A missing dependency in an extra
then fails here, although the test command (which installs every extra) cannot see it.

The README's test command (all extras, then pytest) is run by .ci/run itself and is skipped here.
Usage: python3 .ci/install_smoke.py [README.md]   (from the repository root; exit 1 on any failure)
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TORCH = "torch==2.13.0"  # the README's CPU build; pip takes it from its cache or local wheels


def blocks(readme: str) -> list[list[str]]:
    """The shell code blocks of a Markdown file, as lists of lines (comments stripped)."""
    out, current = [], None
    for line in readme.splitlines():
        if line.startswith("```"):
            if current is None and line.strip() in ("```bash", "```sh", "```"):
                current = []
            elif current is not None:
                out.append(current)
                current = None
            continue
        if current is not None:
            current.append(line.split(" #", 1)[0].strip())
    return out


def words_of(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # not a shell command we could run (prose, a Python snippet)
        return []


def install_specs(line: str) -> list[str]:
    """The `pip install` arguments of one line (each `&&`-separated command), without torch."""
    specs = []
    for command in line.split("&&"):
        words = words_of(command)
        if words[:2] == ["pip", "install"]:
            specs += [w for w in words[2:] if not w.startswith("torch")]
    return specs


def lengen_runs(lines: list[str]) -> list[list[str]]:
    runs = []
    for line in lines:
        for command in line.split("&&"):
            words = words_of(command)
            if words[:2] == ["lengen", "run"]:
                runs.append(words[1:])
    return runs


def main() -> int:
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md").read_text(encoding="utf-8")
    cases = []
    for block in blocks(readme):
        for line in block:
            specs = install_specs(line)
            if specs and not re.search(r"&&\s*pytest", line):
                cases.append((line, specs, lengen_runs(block)))
    if not cases:
        print("install smoke: no install lines found in the README", file=sys.stderr)
        return 1
    failed = 0
    for line, specs, runs in cases:
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="lengen-smoke-") as tmp:
            venv = Path(tmp) / "venv"
            steps = [[sys.executable, "-m", "venv", str(venv)],
                     [str(venv / "bin" / "pip"), "install", "-q", TORCH, *specs]]
            steps += [[str(venv / "bin" / "lengen"), *run, "--dry-run", "--out", str(Path(tmp) / "out")]
                      for run in runs]
            # an empty token cache: a corpus tokenized earlier must not hide a missing tokenizer
            env = {**os.environ, "LENGEN_CACHE": str(Path(tmp) / "cache")}
            for step in steps:
                result = subprocess.run(step, capture_output=True, text=True, env=env)
                if result.returncode != 0:
                    tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                    print(f"install smoke: FAILED `{line}` at `{' '.join(step[-6:])}`: {' | '.join(tail)}")
                    failed += 1
                    break
            else:
                print(f"install smoke: ok `{line}` ({len(runs)} lengen run dry run(s), "
                      f"{time.monotonic() - start:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
