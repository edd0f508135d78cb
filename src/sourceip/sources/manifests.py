"""Read ``-f`` inputs: files, directories and ``-`` (stdin); YAML or JSON; multi-document YAML;
``kind: List`` as ``kubectl get -o yaml|json`` prints it.

Fast path: JSON is read with ``orjson`` when it is installed (the ``fast`` extra; else, and
for what orjson refuses but ``json`` reads, such as NaN or integers past 64 bits, with
``json``), YAML with PyYAML's C loader when available; no line numbers are tracked. Only
when an error needs a line is the file read again with line tracking (``yaml.compose_all``
for YAML; for JSON a scanner that walks to the field, skipping values with
``json``'s own C decoder), so errors still read ``services.yaml:14: spec.ports[0].nodePort: ...``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from json.decoder import scanstring  # type: ignore[attr-defined]
from pathlib import Path
from typing import IO, Any

import yaml

from sourceip.errors import ManifestError
from sourceip.sources.convert import PathSeg, RawObject, _node_line, expand

_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # optional: the `fast` extra
    _orjson = None
SUFFIXES = (".yaml", ".yml", ".json")
_WS = re.compile(r"[ \t\n\r]*")


class Source:
    """One input text (a file, stdin or a built-in example) and the line lookup for it.

    The text is kept only for stdin/examples; a file is read again if an error needs a line."""

    def __init__(self, name: str, *, path: Path | None = None, text: str | None = None,
                 is_json: bool = False) -> None:
        self.name = name
        self.path = path
        self.text = text
        self.is_json = is_json
        self._nodes: list[Any] | None = None
        self._json_text: str | None = None

    def _read(self) -> str:
        if self.text is not None:
            return self.text
        assert self.path is not None
        return _decode(self.path.read_bytes(), self.name)

    # ---- Origin protocol ----
    def line_of(self, doc: int, path: Sequence[PathSeg]) -> int | None:
        if self.is_json:
            if self._json_text is None:
                self._json_text = self._read()
            return _json_line(self._json_text, path)
        node = self._doc_node(doc)
        return _node_line(node, path) if node is not None else None

    def block_text_line(self, doc: int, path: Sequence[PathSeg]) -> int | None:
        if self.is_json:
            return None
        node = self._doc_node(doc)
        for seg in path:
            if isinstance(node, yaml.MappingNode) and isinstance(seg, str):
                node = next((v for k, v in node.value
                             if isinstance(k, yaml.ScalarNode) and k.value == seg), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(seg, int) \
                    and 0 <= seg < len(node.value):
                node = node.value[seg]
            else:
                return None
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            return int(node.start_mark.line) + 1  # the indicator's line; text starts below
        return None

    def _doc_node(self, doc: int) -> Any:
        if self._nodes is None:
            self._nodes = list(yaml.compose_all(self._read(), Loader=_FAST_LOADER))
        return self._nodes[doc] if 0 <= doc < len(self._nodes) else None


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"not UTF-8 text (byte {exc.start})", file=name) from None


def _read_stdin(stdin: IO[str] | None) -> str:
    """Standard input as text: ``stdin`` if given, else ``sys.stdin``'s bytes decoded as UTF-8
    (so that binary input is a located error, not a ``UnicodeDecodeError``)."""
    import sys

    try:
        if stdin is not None:
            return stdin.read()
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:
            return sys.stdin.read()
        return _decode(buffer.read(), "<stdin>")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"not UTF-8 text (byte {exc.start})", file="<stdin>") from None


def parse_text(text: str, name: str, *, path: Path | None = None,
               keep_text: bool = True) -> Iterator[RawObject]:
    """The objects in one input text. Raises ``ManifestError`` at ``name:line`` when the text
    is not YAML/JSON or a document is not a Kubernetes object."""
    head = text.lstrip()[:1]
    docs: list[Any] | None = None
    is_json = False
    if head in ("{", "["):
        try:
            docs = [_json_loads(text)]
            is_json = True
        except json.JSONDecodeError as exc:
            if name.endswith(".json"):
                raise ManifestError(f"invalid JSON: {exc.msg}", file=name,
                                    line=exc.lineno) from None
    if docs is None:
        try:
            docs = list(yaml.load_all(text, Loader=_FAST_LOADER))
        except yaml.MarkedYAMLError as exc:
            raise ManifestError(_yaml_problem(exc, text), file=name,
                                line=_yaml_error_line(exc, text)) from None
        except yaml.YAMLError as exc:
            raise ManifestError(f"invalid YAML: {exc}", file=name) from None
    source = Source(name, path=path, text=text if keep_text or path is None else None,
                    is_json=is_json)
    yield from _objects(docs, source, name)


def _objects(docs: list[Any], source: Source, name: str) -> Iterator[RawObject]:
    if source.is_json:
        # a JSON array at top level: each element is an object
        top = docs[0]
        if isinstance(top, list):
            for i, item in enumerate(top):
                yield from expand(item, origin=source, doc=0, prefix=(i,))
            return
    for i, doc in enumerate(docs):
        if isinstance(doc, str):
            # plain text (a README, /etc/passwd) is one YAML string: say so without echoing it
            shown = doc if len(doc) <= 40 else doc[:40] + "..."
            raise ManifestError(
                "expected a Kubernetes object (a mapping with apiVersion and kind), got text "
                f"({len(doc)} characters: {shown!r}); is this a manifest?", file=name,
                line=source.line_of(i, ()))
        yield from expand(doc, origin=source, doc=i)


def _json_loads(text: str) -> Any:
    """``json.loads(text)``, by orjson when installed (1.5x faster on big inputs, see
    docs/performance.md); input orjson refuses goes to ``json``, whose error messages (and
    leniency: NaN, huge integers) are the reference."""
    if _orjson is not None:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _fast_json(data: bytes) -> list[Any] | None:
    """A file's JSON documents read by orjson straight from its bytes (UTF-8, a BOM allowed),
    or ``None``: not JSON, orjson not installed, or refused by orjson (``parse_text`` then
    reads it, with ``json``'s messages)."""
    if _orjson is None:
        return None
    view = memoryview(data)[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if bytes(view[:64]).lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return [_orjson.loads(view)]
    except _orjson.JSONDecodeError:
        return None


# Constructs PyYAML reports where it finds them unclosed (often lines later, or at the end of
# the stream): the error is located where they begin.
_UNCLOSED = ("flow sequence", "flow mapping", "quoted scalar")


def _yaml_problem(exc: yaml.MarkedYAMLError, text: str) -> str:
    problem = exc.problem or "cannot parse"
    if exc.context:
        problem = f"{problem} ({exc.context})"
    mark = exc.problem_mark
    if mark is not None and _yaml_error_line(exc, text) != mark.line + 1:
        where = ("at the end of the input" if _at_end(mark.index, text)
                 else f"noticed on line {mark.line + 1}")
        problem = f"{problem}; {where}"
    return f"invalid YAML: {problem}"


def _at_end(index: int, text: str) -> bool:
    return index >= len(text.rstrip())


def _yaml_error_line(exc: yaml.MarkedYAMLError, text: str) -> int | None:
    """The 1-based line to blame: where an unclosed bracket or quote begins, else the last
    line with text when the problem shows only at the end of the input, else where PyYAML
    noticed it."""
    mark, context = exc.problem_mark, exc.context_mark
    if mark is None:
        return context.line + 1 if context is not None else None
    if context is not None and context.line < mark.line and any(
            c in (exc.context or "") for c in _UNCLOSED):
        return int(context.line) + 1
    if _at_end(mark.index, text):
        return text.rstrip().count("\n") + 1
    return int(mark.line) + 1


def files_in(directory: Path, *, recursive: bool = False) -> list[Path]:
    """The ``*.yaml``, ``*.yml`` and ``*.json`` files inside ``directory``, sorted; only those
    directly inside unless ``recursive`` (like ``kubectl apply -f DIR [-R]``)."""
    found = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix in SUFFIXES)


def read_inputs(paths: Sequence[str], *, stdin: IO[str] | None = None,
                recursive: bool = False) -> Iterator[RawObject]:
    """Every object in ``paths`` (files, directories, ``-`` for stdin), in order."""
    if not paths:
        raise ManifestError("no input given (-f PATH, or --example NAME)")
    for p in paths:
        if p == "-":
            yield from parse_text(_read_stdin(stdin), "<stdin>")
            continue
        path = Path(p)
        if path.is_dir():
            files = files_in(path, recursive=recursive)
            if not files:
                raise ManifestError("no .yaml, .yml or .json files in this directory", file=p)
        elif path.exists():
            files = [path]
        else:
            raise ManifestError("no such file or directory", file=p)
        for f in files:
            name = str(f)
            try:
                data = f.read_bytes()
            except OSError as exc:
                raise ManifestError(f"cannot read: {exc.strerror}", file=name) from None
            docs = _fast_json(data)
            if docs is not None:  # no text copy of the file: orjson reads the bytes
                del data
                yield from _objects(docs, Source(name, path=f, is_json=True), name)
                continue
            yield from parse_text(_decode(data, name), name, path=f, keep_text=False)


# ---------------------------------------------------------------------------------------------
# JSON: walk to a path and return its line, using json's C decoder to skip values
# ---------------------------------------------------------------------------------------------

_DECODER = json.JSONDecoder()


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m else pos


def _json_line(text: str, path: Sequence[PathSeg]) -> int | None:
    """1-based line of the deepest part of ``path`` present in the JSON ``text`` (an object
    member is located at its key)."""
    pos = _skip_ws(text, 0)
    found = pos
    for seg in path:
        if pos >= len(text):
            break
        c = text[pos]
        if c == "[" and isinstance(seg, int):
            pos = _skip_ws(text, pos + 1)
            i = 0
            ok = True
            while i < seg:
                if text[pos] == "]":
                    ok = False
                    break
                _, pos = _DECODER.raw_decode(text, pos)
                pos = _skip_ws(text, pos)
                if text[pos] == ",":
                    pos = _skip_ws(text, pos + 1)
                i += 1
            if not ok or text[pos] == "]":
                break
            found = pos
        elif c == "{" and isinstance(seg, str):
            pos = _skip_ws(text, pos + 1)
            hit = False
            while pos < len(text) and text[pos] == '"':
                key_pos = pos
                key, pos = scanstring(text, pos + 1)
                pos = _skip_ws(text, pos)
                pos = _skip_ws(text, pos + 1)  # past ':'
                if key == seg:
                    found = key_pos
                    hit = True
                    break
                _, pos = _DECODER.raw_decode(text, pos)
                pos = _skip_ws(text, pos)
                if pos < len(text) and text[pos] == ",":
                    pos = _skip_ws(text, pos + 1)
            if not hit:
                break
        else:
            break
    return text.count("\n", 0, found) + 1
