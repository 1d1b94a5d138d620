"""``python -m lengen.text.recovery_rerun RUN``: the gain-recovered analysis (issue 14) of a finished language
run again, with other sufficiency settings, from the run's caches."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import yaml

from lengen.config_parse import parse_experiment
from lengen.config_rules import validate_language
from lengen.errors import LengenError
from lengen.run_folder import CONFIG_FILE, as_written_back
from lengen.text.analysis import run_language_analysis


def main(argv: list[str] | None = None) -> None:
    """Rerun the language analysis of a finished run folder with other sufficiency settings."""
    parser = argparse.ArgumentParser(description="The gain-recovered analysis of a finished language run.")
    parser.add_argument("run_dir")
    parser.add_argument("--gain-threshold", type=float, default=None, help="nats (default: the run's, 0.5)")
    parser.add_argument("--share", type=float, default=None, help="share of the gain a sufficient set recovers")
    parser.add_argument("--max-measured", type=int, default=None)
    args = parser.parse_args(argv)
    stored = Path(args.run_dir) / CONFIG_FILE
    if not stored.is_file():
        raise SystemExit(f"lengen: {stored} not found (give the folder of a finished lengen run)")
    cfg = parse_experiment(as_written_back(yaml.safe_load(stored.read_text(encoding="utf-8"))), str(stored))
    if cfg.language is None:
        raise SystemExit(f"lengen: {stored} has no language: section")
    changes = {k: v for k, v in (("gain_threshold", args.gain_threshold), ("recover_share", args.share),
                                  ("max_measured", args.max_measured)) if v is not None}
    cfg.language = dataclasses.replace(cfg.language, **changes)
    try:
        validate_language(cfg.language, cfg)
        run_language_analysis(cfg, Path(args.run_dir))
    except LengenError as e:
        raise SystemExit(f"lengen: {e}") from None
    print((Path(args.run_dir) / "language" / "summary.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
