
"""Configuration errors are caught up front, each as one line that names the problem."""

import numpy as np
import pytest
from helpers import tiny_experiment

from lengen.cli import main
from lengen.config import Cell
from lengen.config_parse import load_experiment, parse_experiment
from lengen.errors import ConfigError


@pytest.mark.parametrize("overrides,message", [
    ({"task": "sparse_parityy"}, "unknown task 'sparse_parityy' (did you mean 'sparse_parity'?)"),
    ({"schemes": ["ropee"]}, "unknown position scheme 'ropee' (did you mean 'rope'?)"),
    ({"grid": {"k": [12]}}, "train.min_len = 4 is shorter than the task needs (12"),
    ({"grid": {"k": [3]}, "task_args": {"window": 2}}, "window (2) is smaller than k (3)"),
    ({"train": {"steps": 0}}, "train: steps must be a positive integer, got 0"),
    ({"train": {"steps": -5}}, "train: steps must be a positive integer"),
    ({"train": {"min_len": 9}}, "min_len (9) is larger than max_len (8)"),
    ({"train": {"stepz": 9}}, "train: unknown key 'stepz' (did you mean 'steps'?)"),
    ({"eval": {"lengths": []}}, "eval: lengths is empty"),
    ({"eval": {"lengths": [2]}, "grid": {"k": [3]}}, "eval lengths [2] are shorter"),
    ({"model": {"d_model": 30, "n_heads": 4}}, "divisible"),
    ({"model": {"position": "rope"}}, "set position schemes under 'schemes'"),
    ({"seeds": ["a"]}, "seeds: expected a list of integers, got ['a']"),
    ({"grid": {"k": []}}, "grid.k: expected a non-empty list"),
    ({"exp": 1}, "unknown key 'exp'"),
    ({"schemes": [{"position": "learned", "position_args": {"max_position": 10}}]},
     "eval length 16 needs position ids up to"),
    ({"schemes": ["nope", "nope"]}, "scheme labels must be unique"),
    ({"schemes": [{"position": "rope", "seeds": []}]}, "schemes[0].seeds is empty"),
    ({"schemes": ["nope", {"position": "rope", "seeds": [0, -1]}]}, "schemes[1].seeds: every seed must be >= 0"),
    ({"schemes": [{"position": "rope", "seeds": [1, 1]}]}, "schemes[0].seeds: a seed is listed twice"),
    ({"schemes": [{"position": "rope", "seeds": "0"}]}, "seeds"),
])
def test_bad_experiment_gives_one_clear_error(overrides, message):
    with pytest.raises(ConfigError) as err:
        parse_experiment(tiny_experiment(**overrides))
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_experiment(bad)
    with pytest.raises(ConfigError, match="experiment file not found"):
        load_experiment(tmp_path / "missing.yaml")
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_experiment(not_mapping)


def test_yaml_is_never_executed(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("task: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_experiment(evil)


def test_cli_prints_one_error_line_and_exits_2(tmp_path, capsys):
    code = main(["train", "--task-arg", "k=30", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("lengen: error:") and "shorter than the task needs" in err


def test_grid_expands_schemes_seeds_and_task_parameters():
    cfg = parse_experiment(tiny_experiment(grid={"k": [1, 2], "window": [None, 4]}, schemes=["nope", "rope"],
                                           seeds=[0, 1, 2]))
    cells = cfg.cells()
    assert len(cells) == 2 * 2 * 2 * 3
    assert len({c.key for c in cells}) == len(cells)
    assert {c.task_args["k"] for c in cells} == {1, 2}
    assert all(c.task_args["noise_vocab"] == 4 for c in cells)


def test_a_scheme_can_run_its_own_seeds_without_changing_any_cell_key():
    base = parse_experiment(tiny_experiment(schemes=["nope", "rope"], seeds=[0, 1, 2])).cells()
    own = parse_experiment(tiny_experiment(schemes=[{"position": "nope", "seeds": [0]}, "rope"],
                                           seeds=[0, 1, 2])).cells()
    assert [(c.scheme.label, c.seed) for c in own] == [("nope", 0), ("rope", 0), ("rope", 1), ("rope", 2)]
    # the seed list is scheduling: the cells it keeps are the same models, under the same keys
    keys = {c.key for c in base}
    assert {c.key for c in own} <= keys and len(keys) == 6
    assert all(Cell.from_dict(c.to_dict()).key == c.key for c in own)


def test_a_task_version_bump_retrains_old_cells_and_rebuilds_their_task():
    raw = tiny_experiment(task="addition", train={"min_len": 1, "max_len": 3})
    raw["task_args"] = {}
    del raw["grid"]
    cell = parse_experiment(raw).cells()[0]
    assert cell.task_version == 1 and cell.canonical()["task_version"] == 1
    assert cell.build_task().id_layout == "local"
    # a cell saved before versions existed (no task_version in its cell.json) is version 0: another
    # key, so it is not resumed as today's task, and it rebuilds the layout it was trained on
    saved = cell.to_dict()
    del saved["task_version"]
    old = Cell.from_dict(saved)
    assert old.task_version == 0 and "task_version" not in old.canonical()
    assert old.key != cell.key
    assert old.build_task().id_layout == "legacy" and old.build_eval_task().id_layout == "legacy"
    assert Cell.from_dict(cell.to_dict()).key == cell.key  # a round trip keeps the key
    # tasks whose version is 0 keep the keys they had before versions existed
    copy_cell = parse_experiment({**{k: v for k, v in tiny_experiment().items() if k != "grid"}, "task": "copy",
                                  "task_args": {}}).cells()[0]
    assert "task_version" not in copy_cell.canonical()


def test_protocol_0_cells_keep_their_keys_and_rebuild_the_old_protocol():
    cell = parse_experiment(tiny_experiment()).cells()[0]
    assert cell.protocol == 1 and cell.canonical()["protocol"] == 1
    saved = cell.to_dict()
    del saved["protocol"]
    for key in ("stop_on", "select", "stop_samples", "curve_every", "curve_multiples", "curve_samples"):
        del saved["train"][key]
    for key in ("grid", "learned_bar", "l_star_level"):
        del saved["eval"][key]
    old = Cell.from_dict(saved)
    # protocol 0: stopped on the training mixture, kept the last weights, no curves; another key
    assert old.protocol == 0 and (old.train.stop_on, old.train.select, old.train.curve_every) == ("mixture", "last", 0)
    assert "protocol" not in old.canonical() and "stop_on" not in old.canonical()["train"]
    assert old.key != cell.key
    assert Cell.from_dict(cell.to_dict()).key == cell.key


def test_sparse_parity_names_k_in_the_query_when_k_varies():
    from lengen.tasks import make_task

    task = make_task("sparse_parity", k=4, k_min=1)
    batch = task.sample(np.random.default_rng(0), 256, 12)
    planted = (batch.dependencies[:, 0, :] >= 0).sum(1)
    query = batch.tokens[:, 12] - task.query_token
    assert bool((query == planted - 1).all())  # ?k for a sample with k planted bits
    fixed = make_task("sparse_parity", k=2, k_tokens=4)  # the same vocabulary, k fixed at 2 for evaluation
    assert fixed.vocab_size == task.vocab_size
    assert bool((fixed.sample(np.random.default_rng(1), 8, 12).tokens[:, 12] == task.query_token + 1).all())
    # version 0 (one query token for every k) is rebuilt for cells made before the change
    assert make_task("sparse_parity", k=4, k_min=1, k_tokens=0).vocab_size == task.vocab_size - 3


def test_extends_merges_mappings_and_replaces_lists(tmp_path):
    import yaml

    base = tiny_experiment(schemes=["nope", "rope"], quick={"train": {"steps": 5}, "seeds": [0]})
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    child = tmp_path / "sub" / "child.yaml"  # the parent's path is relative to the extending file
    child.write_text("extends: ../base.yaml\nexperiment: child\nschemes: [alibi]\n"
                     "train: {lr: 0.01}\nquick: {train: {batch_size: 8}}\n")
    got = load_experiment(child).to_dict()
    want = parse_experiment({**base, "experiment": "child", "schemes": ["alibi"],
                             "train": {**base["train"], "lr": 0.01}}).to_dict()
    want.pop("quick", None)
    got.pop("quick", None)
    assert got == want
    quick = load_experiment(child, quick=True)
    cell = quick.cells()[0]
    # both files' quick: overrides apply, the child's merged into the parent's
    assert (cell.train.steps, cell.train.batch_size, cell.train.lr) == (5, 8, 0.01)
    assert quick.experiment == "child-quick"


def test_extends_errors_name_the_file(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("extends: b.yaml\n")
    b.write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extends makes a cycle") as err:
        load_experiment(a)
    assert "\n" not in str(err.value)
    a.write_text("extends: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"experiment file not found: .*missing.yaml \(extended by .*a.yaml\)"):
        load_experiment(a)
    a.write_text("extends: [b.yaml]\n")
    with pytest.raises(ConfigError, match="extends must be the path of another experiment file"):
        load_experiment(a)
    b.write_text("- 1\n")
    a.write_text("extends: b.yaml\n")
    with pytest.raises(ConfigError, match="extended experiment file must be a mapping"):
        load_experiment(a)
