"""YAML that refuses a key given twice in one mapping, for the policy files people edit.

Plain ``yaml.safe_load`` keeps the last of two equal keys silently, so a threshold edited by
appending a line (``max: 0.0`` then ``max: 1.0``), or two ``checks:`` lists left by a merge,
would leave the earlier value in the file looking authoritative while the other decides.
Prompt-filter policies and gate policies both read through :func:`load`, so both refuse it
the same way and name the field (``checks[0].max``) and both lines.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one mapping (a YAML error, so other callers still catch it)."""

    def __init__(self, key: Any, first: yaml.Node, again: yaml.Node) -> None:
        super().__init__("while constructing a mapping", first.start_mark,
                         f"found duplicate key {key!r}", again.start_mark)
        self.key, self.first, self.again = key, first, again

    def describe(self) -> str:
        """``line 5: key 'max' is given twice in one mapping (first on line 4); keep one``."""
        return (f"line {self.again.start_mark.line + 1}: key {self.key!r} is given twice in "
                f"one mapping (first on line {self.first.start_mark.line + 1}); keep one")


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no python tags: nothing runs from a policy file) that refuses a
    key given twice in one mapping (see the module docstring for why)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Hashable, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *anchor" may override
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):
                    continue  # the base class reports an unhashable key
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], key_node)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """The single document in ``text``, read with :class:`UniqueKeyLoader`.

    Raises :class:`DuplicateKeyError` (find its field with :func:`field_at`) or another
    ``yaml.YAMLError``."""
    loader = UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def field_at(text: str, target: yaml.Node) -> str | None:
    """The field path (``backends[0].threshold``) of the key node at ``target``'s position,
    found by composing the document again (no construction), for the duplicate-key error."""
    index = target.start_mark.index
    seen: set[int] = set()

    def walk(node: yaml.Node, where: str) -> str | None:
        if id(node) in seen:  # an alias back to an ancestor
            return None
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                name = f"{where}.{k.value}" if where else str(k.value)
                if k.start_mark.index == index:
                    return name
                found = walk(v, name)
                if found:
                    return found
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                found = walk(v, f"{where}[{i}]")
                if found:
                    return found
        return None

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    return walk(root, "") if root is not None else None
