"""Data-parallel training of an experiment's cells: ``torchrun --nproc-per-node N -m lengen.ddp FILE.yaml``.

Each cell is trained by all N processes together with DistributedDataParallel (gloo on CPU, nccl on
GPU); every rank trains on its own slice of each global batch of ``train.batch_size`` samples
(``lengen.distributed``). Rank 0 evaluates, writes the cell's rows, results.csv and report.html into
the same folder layout as ``lengen run``, so runs resume the same way. The output folder must be
visible to every rank (one machine, or a shared file system), since all ranks resume from the
checkpoint rank 0 writes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import yaml

from lengen.config_parse import default_experiment_path, load_experiment
from lengen.errors import LengenError
from lengen.experiment import read_rows, run_cell, write_results
from lengen.io import atomic_write_json, atomic_write_text, ensure_writable_dir
from lengen.report.html import ENVIRONMENT_FILE, environment, write_report
from lengen.train import train


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrun --nproc-per-node N -m lengen.ddp",
                                description="Train every cell of an experiment with DistributedDataParallel.")
    p.add_argument("file", nargs="?", help="experiment YAML (default: the embedded default experiment)")
    p.add_argument("--out", help="output folder (default: runs/<experiment name>-ddp)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--quiet", action="store_true")
    return p


def run(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    cfg = load_experiment(Path(args.file) if args.file else default_experiment_path())
    out = Path(args.out) if args.out else Path("runs") / f"{cfg.experiment}-ddp"
    if "RANK" not in os.environ:
        raise LengenError("lengen.ddp runs under torchrun: torchrun --nproc-per-node N -m lengen.ddp FILE.yaml")
    cuda = torch.cuda.is_available() and cfg.train.device != "cpu"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        torch.set_num_threads(cfg.train.threads or max(1, (os.cpu_count() or 1) // world))
        problem: list[str | None] = [None]
        if rank == 0:
            try:
                ensure_writable_dir(out)
                atomic_write_text(out / "experiment.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
                atomic_write_json(out / ENVIRONMENT_FILE, {**environment(), "backend": f"ddp x{world}"})
            except LengenError as e:
                problem = [str(e)]
        dist.broadcast_object_list(problem, src=0)  # a problem on rank 0 stops every rank, not just rank 0
        if problem[0] is not None:
            raise LengenError(problem[0])
        cells = cfg.cells()
        for cell in cells:
            cell_dir = out / "cells" / cell.key
            done = [read_rows(cell_dir) is not None if rank == 0 else None]
            dist.broadcast_object_list(done, src=0)  # every rank takes rank 0's view of what is finished
            if done[0]:
                continue
            if rank == 0:
                rows = run_cell(cell, cell_dir, progress=not args.quiet)
                if not args.quiet:
                    print(f"{cell.scheme.label} {cell.grid_values} seed {cell.seed} ({world} processes): "
                          f"{rows[0]['train_steps']} steps, accuracy by length "
                          f"{ {r['eval_len']: round(r['accuracy'], 3) for r in rows} }", flush=True)
            else:
                train(cell, out_dir=cell_dir, resume=True, progress=False)
            dist.barrier()  # rank 0 evaluates while the others wait
        if rank == 0:
            rows = [r for c in cells for r in read_rows(out / "cells" / c.key) or []]
            write_results(cfg, out, rows)
            if not args.no_report:
                write_report(out)
            print(f"wrote {out / 'results.csv'}", flush=True)
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except LengenError as e:
        print(f"lengen.ddp: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
