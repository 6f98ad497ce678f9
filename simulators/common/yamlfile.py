"""YAML files whose errors name the file, the line and the field.

Configuration and scenarios are YAML written by people; an error must point at the place to fix.
``load_yaml_file`` parses a file into data *and* its node tree (``yaml.compose``), refuses a key
written twice in one mapping (PyYAML silently keeps the last), and ``line_of`` turns a path in the
data (``["governorates", "04", "iban"]``, as jsonschema's ``absolute_path`` gives it) into the
1-based line of the deepest node found along it. The catalog loader and the scenario loader
(``harness/loader.py``) both read their files through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml when it is there: the same documents, parsed faster
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - pure-Python PyYAML
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


class YamlFileError(ValueError):
    """Raised when a YAML file cannot be read, does not parse, or holds a wrong value; ``str()`` is
    ``file:line: field: message`` (the parts that are known)."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.message, self.file, self.line, self.field = message, file, line, field
        where = f"{file}:{line}" if file and line else (file or "")
        text = f"{field}: {message}" if field else message
        super().__init__(f"{where}: {text}" if where else text)


def load_yaml_file(path: str | Path, error: type[YamlFileError] = YamlFileError) -> tuple[Any, yaml.Node | None]:
    """``(data, node)`` of one YAML document; ``error`` (a :class:`YamlFileError`) with the line on failure."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read: {exc}", file=file) from None
    return parse_yaml_text(text, file, error)


def parse_yaml_text(text: str, file: str, error: type[YamlFileError] = YamlFileError) -> tuple[Any, yaml.Node | None]:
    """Like :func:`load_yaml_file` for text already read (``file`` only names it in errors)."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"not valid YAML: {problem}", file=file, line=mark.line + 1 if mark else None) from None
    duplicate = _duplicate_key(node)
    if duplicate is not None:
        key, line, first = duplicate
        raise error(f"key {key!r} is written twice in one mapping (first on line {first})", file=file, line=line,
                    field=key)
    return data, node


def _duplicate_key(node: yaml.Node | None, seen: set[int] | None = None) -> tuple[str, int, int] | None:
    """The first key written twice in one mapping: ``(key, line, first line)``, or ``None``."""
    if node is None:
        return None
    seen = seen if seen is not None else set()
    if id(node) in seen:  # an alias: already walked
        return None
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in lines:
                    return key.value, key.start_mark.line + 1, lines[key.value]
                lines[key.value] = key.start_mark.line + 1
            found = _duplicate_key(value, seen)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _duplicate_key(item, seen)
            if found:
                return found
    return None


def line_of(node: yaml.Node | None, path: Sequence[Any]) -> int | None:
    """1-based line of the YAML node at ``path`` (the deepest node found along it); ``None`` without a node.

    A path part that names a mapping key lands on the key's line (so a missing value, or a wrong
    one written on the next line, still points at the key); list indexes land on the item.
    """
    if node is None:
        return None
    best = node.start_mark.line + 1
    current = node
    for part in path:
        nxt: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    best, nxt = key.start_mark.line + 1, value
                    break
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(current.value):
            nxt = current.value[part]
            best = nxt.start_mark.line + 1
        if nxt is None:
            break
        current = nxt
        if isinstance(current, yaml.ScalarNode):
            best = current.start_mark.line + 1
    return best
