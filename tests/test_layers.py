"""The shape of the source tree: lengen's modules import each other without a circle, never from
inside a function, and stay small (files <= 400 lines, functions <= 80 lines).

The import graph is read from the source with ``ast`` (nothing is imported), so a circle is caught even
where Python would resolve it at run time. Imports under ``if TYPE_CHECKING:`` are left out: they are
never executed (the type checker alone reads them), so they cannot make a run-time circle. Imports inside functions are allowed only for optional
third-party packages (transformers, ray, gguf, tokenizers, ...), which are loaded lazily on purpose.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "lengen"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


def modules(src: Path = SRC) -> dict[str, Module]:
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = Module(".".join(parts), path, is_package)
    return out


def _owner(name: str, known: dict[str, Module]) -> str | None:
    """The lengen module that defines ``name`` (``lengen.tasks.Task`` -> ``lengen.tasks``)."""
    while name not in known:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def imported(node: ast.Import | ast.ImportFrom, module: Module, known: dict[str, Module]) -> set[str]:
    """The lengen modules an import statement names (``from pkg import sub`` names ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.name if module.is_package else module.name.rsplit(".", 1)[0]
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    found = {_owner(n, known) for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}
    return {n for n in found if n is not None and n != module.name}


def _is_type_checking_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:``: imports there are read by the type checker only, never executed, so they
    cannot form a run-time circle (annotations of a lower layer may name a higher layer's class)."""
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def import_graph(src: Path = SRC) -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """(module -> lengen modules it imports anywhere in its file, [(module, line, target)] of lengen
    imports made inside a function body)."""
    known = modules(src)
    graph: dict[str, set[str]] = {name: set() for name in known}
    inner = []
    for name, module in known.items():
        tree = ast.parse(module.path.read_text(encoding="utf-8"))
        typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking_block(block)
                       for n in ast.walk(block)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in typing_only:
                graph[name] |= imported(node, module, known)
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(fn):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        inner += [(name, node.lineno, t) for t in sorted(imported(node, module, known))]
    return graph, sorted(set(inner))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (each holds an import circle),
    and modules importing themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the graph has ~130 nodes, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle() -> None:
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_no_lengen_import_inside_a_function() -> None:
    _, inner = import_graph()
    assert inner == [], "import these at the top of the module (an inner import hides a layer problem)"


def test_layers() -> None:
    """Tokenizers and corpora sit below the tasks; the diagnosis and checkpoints above them."""
    graph, _ = import_graph()

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            v = todo.pop()
            if v == b:
                return True
            if v not in seen:
                seen.add(v)
                todo += graph[v]
        return False

    assert reaches("lengen.tasks.text", "lengen.text.corpus")
    for low in ("lengen.text.corpus", "lengen.text.tokenizers", "lengen.tasks", "lengen.config"):
        for high in ("lengen.diagnose.sources", "lengen.checkpoint", "lengen.experiment", "lengen.config_parse"):
            assert not reaches(low, high), f"{low} imports {high}, a module above it"


def test_the_checker_sees_a_circle(tmp_path: Path) -> None:
    """The checks above can fail: a circle through a function-level import and a submodule import."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from lengen.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from lengen import a\n    import ray\n")
    graph, inner = import_graph(tmp_path)
    assert cycles(graph) == [["lengen.a", "lengen.sub.b"]]
    assert inner == [("lengen.sub.b", 2, "lengen.a")]


# -- size -----------------------------------------------------------------------------------------

# Known exceptions to the limits (none since issue 17); each entry must still be over its limit (a stale
# entry fails), so the list only shrinks.
KNOWN_LONG_FILES: set[str] = set()
KNOWN_LONG_FUNCTIONS: set[str] = set()


def function_lengths(src: Path = SRC) -> dict[str, int]:
    """``path:qualified name`` -> lines from its first decorator to its last line, for every function."""
    out = {}

    def visit(node: ast.AST, prefix: str, rel: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    out[f"{rel}:{name}"] = (child.end_lineno or child.lineno) - start + 1
                visit(child, f"{name}.", rel)

    for module in modules(src).values():
        visit(ast.parse(module.path.read_text(encoding="utf-8")), "", module.path.relative_to(src).as_posix())
    return out


def file_lengths(src: Path = SRC) -> dict[str, int]:
    return {m.path.relative_to(src).as_posix(): len(m.path.read_text(encoding="utf-8").splitlines())
            for m in modules(src).values()}


def test_no_file_over_400_lines() -> None:
    long = {name for name, n in file_lengths().items() if n > MAX_FILE_LINES}
    assert long - KNOWN_LONG_FILES == set(), "split these files"
    assert KNOWN_LONG_FILES - long == set(), "these are short now: take them off KNOWN_LONG_FILES"


def test_no_function_over_80_lines() -> None:
    long = {name for name, n in function_lengths().items() if n > MAX_FUNCTION_LINES}
    assert long - KNOWN_LONG_FUNCTIONS == set(), "split these functions"
    assert KNOWN_LONG_FUNCTIONS - long == set(), "these are short now: take them off KNOWN_LONG_FUNCTIONS"


def test_the_size_checks_measure_what_they_say(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    body = "".join(f"        x{i} = {i}\n" for i in range(78))
    (pkg / "m.py").write_text(f"class C:\n    @staticmethod\n    def f():\n{body}        return 1\n")
    assert function_lengths(tmp_path) == {"lengen/m.py:C.f": 81}  # decorator + def + 78 + return
    assert file_lengths(tmp_path)["lengen/m.py"] == 82
