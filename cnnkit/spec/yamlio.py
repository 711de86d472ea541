"""Safe YAML loading for spec files, keeping a line number for every value.

PyYAML's ``safe_load`` silently keeps the last of duplicate keys, reads ``1e-3``
as a string (YAML 1.1 floats need a dot), expands alias bombs and recurses until
the interpreter gives up on deep nesting. Spec files are small hand-written
documents, so we refuse all of that early and with a line number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnkit.errors import SpecError
from cnnkit.text import one_line

# Spec files are a few kB; a cap keeps a 50 MB file from being parsed at all.
MAX_FILE_BYTES = 1_000_000
# Real specs nest 4-5 levels deep; this is far above that and far below the recursion limit.
MAX_DEPTH = 50
# Counts every value after alias expansion; a billion-laughs document hits this in microseconds.
MAX_NODES = 20_000

_STANDARD_TAGS = {
    "tag:yaml.org,2002:" + t
    for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary", "merge")
}

# Accept `1e-3`, `5E4`, `-2e+1` as the floats the user meant (YAML 1.2 reads them so).
_FLOAT_WITHOUT_DOT = re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$")


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader with a nesting limit while composing (composition is recursive)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: D401 - PyYAML hook
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise _TooDeep(mark.line + 1)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_WITHOUT_DOT, list("-+0123456789"))


class _TooDeep(Exception):
    def __init__(self, line: int):
        self.line = line


@dataclass
class Document:
    """Plain Python data plus the line of every value, keyed by its path."""

    data: Any
    file: str
    lines: dict[tuple, int] = field(default_factory=dict)
    # path -> the `--set KEY=VALUE` text that put a value there, so errors can point at it
    overrides: dict[tuple, str] = field(default_factory=dict)

    def line(self, path: tuple) -> int | None:
        """Line of the value at ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def load_file(path: str | Path) -> Document:
    """Read and parse a spec file; every problem is a SpecError with file:line."""
    path = Path(path)
    name = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SpecError("file not found", file=name, hint="check the path") from None
    except OSError as err:
        raise SpecError(f"cannot read: {err.strerror}", file=name) from None
    if path.is_dir():
        raise SpecError("is a directory, expected a YAML spec file", file=name)
    if size > MAX_FILE_BYTES:
        raise SpecError(
            f"file is {size / 1e6:.1f} MB; spec files are limited to {MAX_FILE_BYTES // 1_000_000} MB",
            file=name,
            hint="a spec names layers and settings; data goes in data.path",
        )
    raw = path.read_bytes()
    return load_text(raw, name)


def load_text(raw: bytes | str, name: str = "<string>") -> Document:
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8-sig")  # -sig: tolerate a UTF-8 byte-order mark
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            raise SpecError(
                f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start})",
                file=name,
                line=line,
                hint="save the file as UTF-8",
            ) from None
    else:
        text = raw.lstrip("\ufeff")
    if not text.strip():
        raise SpecError("file is empty; expected a mapping with `input_shape` and `layers`", file=name)
    if all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise SpecError("file holds only comments; expected a mapping with `input_shape` and `layers`", file=name)

    try:
        # The reader checks every character up front, in the constructor.
        loader = _SpecLoader(text)
    except yaml.reader.ReaderError as err:
        raise _unprintable(err, text, name) from None
    try:
        node = loader.get_single_node()
    except _TooDeep as err:
        raise SpecError(
            f"nesting deeper than {MAX_DEPTH} levels; refusing to parse", file=name, line=err.line
        ) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        col = f", column {mark.column + 1}" if mark else ""
        problem = err.problem or err.context or "invalid YAML"
        context, hint = err.context_mark, None
        if err.problem and err.context and context and mark and context.line != mark.line:
            # e.g. an unclosed `[`: PyYAML stops lines later; say where the open bracket is
            problem += f" ({err.context} that starts on line {context.line + 1}, column {context.column + 1})"
        if "flow" in (err.context or ""):
            hint = "is a [ or { left open, or a comma missing?"
        elif "'\\t'" in problem:
            hint = "indent with spaces; YAML does not allow tabs there"
        raise SpecError(one_line(f"YAML syntax error{col}: {problem}"), file=name, line=line, hint=hint) from None
    except yaml.reader.ReaderError as err:
        raise _unprintable(err, text, name) from None
    except (ValueError, OverflowError):
        # PyYAML's scanner calls chr() on "\U..." escapes without a range check
        mark = loader.get_mark()
        raise SpecError(
            "YAML syntax error: an escape such as \\U... names no Unicode character",
            file=name,
            line=mark.line + 1,
            hint="escapes go up to \\U0010FFFF",
        ) from None
    except yaml.YAMLError as err:
        raise SpecError(f"YAML error: {err}", file=name) from None
    finally:
        loader.dispose()
    if node is None:
        raise SpecError("file is empty; expected a mapping with `input_shape` and `layers`", file=name)

    doc = Document(data=None, file=name)
    budget = [MAX_NODES]
    doc.data = _construct(node, (), doc, loader, budget)
    if not isinstance(doc.data, dict):
        kind = type(doc.data).__name__
        raise SpecError(
            f"the top level must be a mapping (name, input_shape, layers, ...). Received: a {kind}",
            file=name,
            line=node.start_mark.line + 1,
        )
    return doc


def _unprintable(err: yaml.reader.ReaderError, text: str, name: str) -> SpecError:
    """A control character (or a lone surrogate) that YAML does not allow anywhere in a file."""
    before = text[: err.position]
    line, column = before.count("\n") + 1, err.position - (before.rfind("\n") + 1) + 1
    return SpecError(
        f"character U+{err.character:04X} at column {column} is not allowed in YAML",
        file=name,
        line=line,
        hint="remove it; save the file as plain UTF-8 text",
    )


def _construct(node: yaml.Node, path: tuple, doc: Document, loader: _SpecLoader, budget: list) -> Any:
    budget[0] -= 1
    line = node.start_mark.line + 1
    if budget[0] < 0:
        raise SpecError(
            f"document expands to more than {MAX_NODES} values (YAML alias bomb?); refusing it",
            file=doc.file,
            line=line,
        )
    doc.lines.setdefault(path, line)
    if node.tag not in _STANDARD_TAGS:
        raise SpecError(
            f"YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed in a spec",
            file=doc.file,
            line=line,
            hint="specs hold plain values only",
        )
    if isinstance(node, yaml.MappingNode):
        result: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SpecError(
                    "YAML merge keys (<<) are not supported in a spec", file=doc.file, line=key_node.start_mark.line + 1
                )
            key = _construct(key_node, path + ("<key>",), doc, loader, budget)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise SpecError(
                    f"mapping keys must be plain names. Received: {key!r}",
                    file=doc.file,
                    line=key_node.start_mark.line + 1,
                )
            key_line = key_node.start_mark.line + 1
            if key in result:
                first = doc.lines.get(path + (key,))
                raise SpecError(
                    one_line(f"duplicate key '{key}' (first defined on line {first})"),
                    file=doc.file,
                    line=key_line,
                    path=one_line(_dotted(path)) or None,
                    hint="YAML would silently keep only the last one; remove one of them",
                )
            doc.lines[path + (key,)] = key_line
            result[key] = _construct(value_node, path + (key,), doc, loader, budget)
            doc.lines[path + (key,)] = key_line
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), doc, loader, budget) for i, item in enumerate(node.value)]
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError as err:
        raise SpecError(f"cannot read value: {getattr(err, 'problem', err)}", file=doc.file, line=line) from None
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError):
        # PyYAML's constructors crash on explicit tags that do not fit the text (`!!int abc`).
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise SpecError(
            f"cannot read {node.value!r} as {tag}",
            file=doc.file,
            line=line,
            hint="drop the tag; a spec needs no YAML tags",
        ) from None
    if isinstance(value, (bytes, bytearray)) or type(value).__module__ == "datetime":
        raise SpecError(
            f"unexpected {type(value).__name__} value {node.value!r}; quote it if it is text", file=doc.file, line=line
        )
    # NaN/inf are let through: the validator knows which fields must be finite.
    return value


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


dotted_path = _dotted
