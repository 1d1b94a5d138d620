"""Flag values shared by several subcommands: one parser, one line per bad value, from every subcommand."""

import pytest

from lengen.cli import main
from lengen.cli.arguments import check_threads, parse_assignments
from lengen.errors import ConfigError


def test_assignments_read_yaml_scalars_and_lists():
    got = parse_assignments(["k=3", "window=none", "flag=true", "lengths=[1, 2]", "name=abc", "eq=a=b"], "--x")
    assert got == {"k": 3, "window": None, "flag": True, "lengths": [1, 2], "name": "abc", "eq": "a=b"}
    assert parse_assignments(None, "--x") == {}


@pytest.mark.parametrize("item, message", [
    ("k", "--task-arg expects key=value, got 'k'"),
    ("=3", "--task-arg expects key=value, got '=3'"),
    ("k=[1", "--task-arg 'k=[1': the value is not a YAML scalar or list"),
])
def test_bad_assignments_name_the_flag(item, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        parse_assignments([item], "--task-arg")


def test_train_reports_a_bad_task_argument_in_one_line(tmp_path, capsys):
    # lengen diagnose reads --task-arg through the same parser (tests/test_diagnose_sources.py)
    assert main(["train", "--task-arg", "k=[1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--task-arg 'k=[1': the value is not a YAML scalar or list" in err[0], err
    assert not (tmp_path / "o").exists()


def test_thread_bounds():
    check_threads(None, 1)
    check_threads(1, 1)
    check_threads(0, 0)
    with pytest.raises(ConfigError, match=r"--threads must be between 0 \(torch's default\) and 4096, got -1"):
        check_threads(-1, 0, " (torch's default)")
    with pytest.raises(ConfigError, match="--threads must be between 1 and 4096, got 5000"):
        check_threads(5000, 1)
