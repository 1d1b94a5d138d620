"""Extension without edits: another package adds a scheme and a task through entry points, and the
shared property tests run over them.

The package is written to a temporary folder as a real distribution (a module folder plus a
``*.dist-info`` with METADATA and entry_points.txt) and put on sys.path, where importlib.metadata
finds it as it finds any installed package; no pip. Its files are the code blocks of
docs/extending.md, so the documented examples are the tested ones.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from properties import check_scheme, check_task
from test_task_properties import _with_ground_truth

from lengen import plugins
from lengen.cli import main
from lengen.config_parse import parse_experiment
from lengen.errors import ConfigError
from lengen.metrics import METRICS, check_metrics
from lengen.positions import SCHEMES
from lengen.tasks import TASKS

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
PACKAGE = "my_lengen_plugin"
ENTRY_POINTS = {
    "lengen.schemes": {"decay": f"{PACKAGE}.decay:Decay"},
    "lengen.tasks": {"first_symbol": f"{PACKAGE}.first_symbol:FirstSymbol"},
    "lengen.metrics": {"first_answer_accuracy": f"{PACKAGE}.first_answer_accuracy:first_answer_accuracy"},
}


def documented_files() -> dict[str, str]:
    """``file name -> source`` of the python blocks in docs/extending.md that start ``# <package>/<file>``."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    out = {}
    for block in blocks:
        first = block.splitlines()[0]
        if first.startswith(f"# {PACKAGE}/"):
            out[first.removeprefix(f"# {PACKAGE}/")] = block
    return out


def write_distribution(root: Path, name: str, files: dict[str, str],
                       entry_points: dict[str, dict[str, str]]) -> None:
    """A package folder and its dist-info, as pip would leave them in site-packages."""
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for file, source in files.items():
        (package / file).write_text(source)
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for group, eps in entry_points.items()))


def _forget(names: dict[str, list[str]], modules: str) -> None:
    for name in names["scheme"]:
        SCHEMES.unregister(name)
    for name in names["task"]:
        TASKS.unregister(name)
    for name in names.get("metric", []):
        METRICS.pop(name, None)
    for module in [m for m in sys.modules if m == modules or m.startswith(modules + ".")]:
        del sys.modules[module]
    plugins.forget()


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The documented scheme, task and metric installed as package my_lengen_plugin."""
    files = documented_files()
    assert {"decay.py", "first_symbol.py", "first_answer_accuracy.py"} <= set(files)
    groups = {g: dict(eps) for g, eps in ENTRY_POINTS.items()}
    write_distribution(tmp_path, PACKAGE, files, groups)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.forget()
    yield
    _forget({"scheme": ["decay"], "task": ["first_symbol"], "metric": ["first_answer_accuracy"]}, PACKAGE)


def test_a_plugin_package_adds_a_metric_found_by_name(installed):
    assert "first_answer_accuracy" not in METRICS  # not imported until a metric is looked up
    assert check_metrics(["accuracy", "first_answer_accuracy"]) == ["accuracy", "first_answer_accuracy"]
    assert "first_answer_accuracy" in METRICS


def test_a_plugin_package_adds_a_scheme_and_a_task_without_edits(installed):
    assert "decay" in SCHEMES.names() and "first_symbol" in TASKS.names()
    assert SCHEMES.get_class("decay").shift_invariant
    assert ("first_symbol", {}) in _with_ground_truth()  # what test_task_properties parametrizes over


@pytest.mark.parametrize("args", [{}, {"init": 0.5}])
def test_the_shared_scheme_properties_hold_for_the_plugin_scheme(installed, args):
    check_scheme("decay", args)


@pytest.mark.parametrize("args", [{}, {"alphabet": 8}])
def test_the_shared_task_properties_hold_for_the_plugin_task(installed, args):
    check_task("first_symbol", args)


def test_plugins_work_in_experiment_files_and_listings(installed, capsys):
    cfg = parse_experiment({"task": "first_symbol", "task_args": {"alphabet": 6},
                            "schemes": ["decay", {"position": "decay", "position_args": {"init": 0.3}, "label": "d3"}],
                            "model": {"d_model": 16, "n_layers": 1, "n_heads": 2},
                            "train": {"steps": 5, "min_len": 4, "max_len": 8}, "eval": {"lengths": [8, 16]}})
    assert [c.model.vocab_size for c in cfg.cells()] == [13, 13]
    assert main(["schemes"]) == 0 and "decay: Learned linear distance penalty per head." in capsys.readouterr().out
    assert main(["tasks"]) == 0 and "alphabet (int, default 4): number of symbols" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="task first_symbol: alphabet must be >= 2"):
        TASKS.create("first_symbol", alphabet=1)


def test_a_broken_plugin_is_one_line_naming_its_entry_point(tmp_path, monkeypatch):
    write_distribution(tmp_path, "broken_plugin", {"scheme.py": "import no_such_module_anywhere\n"},
                       {"lengen.schemes": {"broken": "broken_plugin.scheme:Broken"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.forget()
    try:
        with pytest.raises(ConfigError) as err:
            SCHEMES.get_class("rope")
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith("plugin broken = broken_plugin.scheme:Broken in entry point group lengen.schemes "
                                  "(package broken-plugin) failed to load: ModuleNotFoundError")
        assert SCHEMES.get_class("rope").name == "rope"  # raised once; the group counts as loaded
    finally:
        _forget({"scheme": [], "task": []}, "broken_plugin")


def test_each_group_loads_once(installed):
    assert plugins.load_group("lengen.schemes") == ["decay"]
    assert plugins.load_group("lengen.schemes") == []
    assert "decay" in SCHEMES.names()
