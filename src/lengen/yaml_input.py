"""YAML from users, with a bound on what aliases may expand to.

``yaml.safe_load`` builds an alias as a shared reference, so a 1 KB file of nested aliases (a "billion
laughs" document) loads instantly into a structure with billions of leaves; the first code that walks
it (validation, ``dataclasses.asdict``, an error message's repr) then runs for minutes and takes
gigabytes. Here the composed node graph is measured, expanded, before any Python object is built.
"""

from __future__ import annotations

from typing import Any

import yaml

from lengen.errors import ConfigError

MAX_NODES = 100_000  # the largest experiment file in this repository expands to a few hundred nodes


class _BoundedLoader(yaml.SafeLoader):
    def compose_document(self) -> yaml.Node | None:
        node: yaml.Node | None = super().compose_document()
        if node is not None:
            expanded_size(node, MAX_NODES)
            refuse_duplicate_keys(node)
        return node


def refuse_duplicate_keys(root: yaml.Node) -> None:
    """A key written twice in one mapping is refused (PyYAML keeps the last silently). Checked on the
    composed nodes, before ``<<`` merges are applied: a key that overrides a merged one is not a repeat."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[str, int] = {}
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue
                if key.value in lines:
                    raise ConfigError(f"key {key.value!r} is written twice in one mapping (lines {lines[key.value]} "
                                      f"and {key.start_mark.line + 1}); keep one")
                lines[key.value] = key.start_mark.line + 1
        stack.extend(_children(node))


def expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes in the document with every alias expanded; raises once ``limit`` is passed. Linear in the
    number of distinct nodes: each node's expanded size is computed once (iteratively, no recursion)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not children_done:
            if key in open_nodes:
                raise ConfigError("the YAML refers to itself through an alias (a recursive structure)")
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        open_nodes.discard(key)
        total = 1 + sum(sizes[id(child)] for child in children)
        if total > limit:
            raise ConfigError(f"the YAML expands to more than {limit:,} values through its aliases (&/*); "
                              f"write the values out or use fewer nested aliases")
        sizes[key] = total
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with the alias bound (raises ConfigError, or yaml.YAMLError for bad syntax)."""
    return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
