"""Turning recipe text into a plain document (dicts, lists, scalars), JSON or YAML by content.

Greengrass Classic reads YAML recipes with Jackson, which differs from PyYAML's YAML 1.1 defaults in
ways that matter for recipes, so the loader here follows Jackson:

- mapping keys stay text as written (``on:``, ``1:``, ``null:`` are the keys ``"on"``, ``"1"``,
  ``"null"``, not a boolean, a number or None);
- only ``true``/``false`` are booleans (``yes``, ``on``, ``off`` stay strings: they are common values
  in ``Setenv`` and configuration);
- numbers follow YAML 1.2 (``0o17``, ``0x1F``; no sexagesimal ``1:30``; ``010`` is ten);
- dates are not converted, so an unquoted ``RecipeFormatVersion: 2020-01-25`` stays a string.

A document that starts with ``{`` is read as JSON first, because JSON indented with tabs is not YAML.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"

_INT_RE = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT_RE = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with Jackson-like scalar resolution (see the module docstring)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = (
                key_node.value if isinstance(key_node, ScalarNode) else self.construct_object(key_node, deep)
            )
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found an unhashable key",
                    key_node.start_mark,
                ) from None
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _construct_bool(loader: yaml.SafeLoader, node: Node) -> bool:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.casefold() in ("true", "false"):
        return text.casefold() == "true"
    raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not a boolean", node.start_mark)


def _construct_int(loader: yaml.SafeLoader, node: Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    try:
        return int(text, 10)
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not an integer", node.start_mark
        ) from None


def _construct_float(loader: yaml.SafeLoader, node: Node) -> float:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    special = text.lstrip("+-").casefold()
    if special in (".inf", ".nan"):
        value = float(special[1:])
        return -value if text.startswith("-") else value
    try:
        return float(text)
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a number", node.start_mark
        ) from None


_RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _INT, _FLOAT, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RecipeLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_RecipeLoader.add_implicit_resolver(_INT, re.compile(rf"^(?:{_INT_RE.pattern})$"), list("-+0123456789"))
_RecipeLoader.add_implicit_resolver(_FLOAT, re.compile(rf"^(?:{_FLOAT_RE.pattern})$"), list("-+.0123456789"))
_RecipeLoader.add_constructor(_BOOL, _construct_bool)
_RecipeLoader.add_constructor(_INT, _construct_int)
_RecipeLoader.add_constructor(_FLOAT, _construct_float)


class DocumentSyntaxError(ValueError):
    """Recipe text that is neither JSON nor YAML; the message says where."""


def load_document(text: str) -> Any:
    """Parse recipe text; raise :class:`DocumentSyntaxError` if it does not parse."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            pass  # not JSON after all: YAML has the final word, and a better message
    try:
        document = yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise DocumentSyntaxError(f"is not valid YAML or JSON: {_one_line(exc)}") from None
    except RecursionError:
        raise DocumentSyntaxError("is nested too deeply to read") from None
    _reject_cycles(document)
    return document


def _reject_cycles(document: Any) -> None:
    """YAML aliases can make a node contain itself; nothing downstream could walk such a tree."""
    finished: set[int] = set()
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(document, False)]
    while stack:
        node, leaving = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if leaving:
            on_path.discard(id(node))
            finished.add(id(node))
            continue
        if id(node) in finished:
            continue
        if id(node) in on_path:
            raise DocumentSyntaxError("contains itself through a YAML alias")
        on_path.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in (node.values() if isinstance(node, dict) else node))


def _one_line(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())
