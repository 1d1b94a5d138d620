"""Wall time of the default main job, ``lengen run --out <tmp>``, run as a subprocess.

    python benchmarks/default_job.py            # the embedded default experiment (minutes)
    python benchmarks/default_job.py --quick    # a 1-cell, 30-step copy of it (seconds)
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import emit, machine

from lengen.config_parse import default_experiment_path

TARGET_S = 600.0
LAUNCH = "import sys; from lengen.cli import main; sys.exit(main())"


def quick_copy(folder: Path) -> Path:
    raw = yaml.safe_load(default_experiment_path().read_text(encoding="utf-8"))
    raw["seeds"] = raw["seeds"][:1]
    raw["eval"]["grid"] = {"k": raw["eval"]["grid"]["k"][:2]}
    # one thread: a single-cell run would otherwise take both cores, and two OpenMP threads crawl
    # when other processes share the cores (docs/performance.md)
    raw["train"].update(steps=30, warmup=5, check_every=10, target_accuracy=None, threads=1)
    raw["eval"].update(lengths=[24, 32], samples=64)
    path = folder / "quick.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny copy of the default job (smoke test)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        script = Path(sys.executable).parent / "lengen"  # the installed console script, as a user runs it
        cmd = [str(script)] if script.is_file() else [sys.executable, "-c", LAUNCH]
        cmd += ["run", "--out", str(out), "--quiet"]
        if args.quick:
            cmd.insert(-3, str(quick_copy(Path(tmp))))
        info = machine()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds of the job and its workers: what it costs whatever else shares the cores
        cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        if proc.returncode != 0:
            sys.exit(f"default job failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        rows = (out / "results.csv").read_text(encoding="utf-8").count("\n") - 1
    print(f"command: {' '.join(cmd)}")
    print(f"wall time: {wall:.1f} s  (target <= {TARGET_S:.0f} s: {'met' if wall <= TARGET_S else 'MISSED'})")
    cores = info["cpu_count"] or 1
    print(f"CPU time of the job: {cpu:.1f} s, i.e. >= {cpu / cores:.1f} s of wall time on {cores} idle cores")
    print(f"result rows: {rows}; load average at start: {info['load_avg_1min']} on {cores} cores")
    emit({"benchmark": "default_job", "quick": args.quick, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
          "idle_machine_wall_s_lower_bound": round(cpu / cores, 2), "rows": rows,
          "target_s": TARGET_S, "machine": info})


if __name__ == "__main__":
    main()
