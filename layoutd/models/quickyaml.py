"""A reader for the plain YAML a VM spec is usually written in, without importing PyYAML (~25 ms).

It reads block mappings and sequences, one-line flow collections, plain and quoted one-line
scalars and comments, and resolves scalars as the spec loader does (models/spec.py `_loader`:
YAML 1.1 booleans and nulls, 1.2 numbers). Anything else - anchors, tags, block or multi-line
scalars, escapes, timestamps, repeated keys, odd indentation, a syntax error - raises
`Unsupported`, and the caller reads the text with PyYAML, which also reports every error.
tests/core/test_quickyaml.py checks it against PyYAML.
"""

from __future__ import annotations

import re
from typing import Any


class Unsupported(Exception):
    """Not in the subset this reader knows: read the text with PyYAML."""


_INT = re.compile(r"[-+]?[0-9]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_BOOLS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
_BOOL_FORMS = {form for word in _BOOLS for form in (word, word.capitalize(), word.upper())}
_NULLS = {"~", "null", "Null", "NULL", ""}
_PLAIN_START = set("-?:,[]{}#&*!|>'\"%@`")
_FLOW_STOP = ",[]{}"
_ODD = re.compile(r"[^\x20-\x7e\n]")


def load(text: str) -> Any:
    """The document, as PyYAML with the spec loader would give it, or Unsupported."""
    if _ODD.search(text):
        raise Unsupported("a character beyond printable ASCII")
    lines = _lines(text)
    if not lines:
        raise Unsupported("empty")
    value, end = _block(lines, 0, lines[0][0])
    if end != len(lines):
        raise Unsupported("text after the document")
    return value


def _lines(text: str) -> list[tuple[int, str]]:
    """(indent, content without its comment) of each line that has content."""
    found = []
    for raw in text.split("\n"):
        line = raw
        if line.startswith(("---", "...", "%")):
            raise Unsupported("a document marker or directive")
        content = line.lstrip(" ")
        if not content or content.startswith("#"):
            continue
        found.append((len(line) - len(content), content))
    return found


def _block(lines: list[tuple[int, str]], at: int, indent: int) -> tuple[Any, int]:
    if _is_item(lines[at][1]):
        return _sequence(lines, at, indent)
    return _mapping(lines, at, indent)


def _sequence(lines: list[tuple[int, str]], at: int, indent: int) -> tuple[list[Any], int]:
    items = []
    while at < len(lines) and lines[at][0] == indent and _is_item(lines[at][1]):
        rest = lines[at][1][1:]
        inner = rest.lstrip(" ")
        if not _strip_comment(inner):
            value, at = _nested(lines, at + 1, indent, allow_same=False)
        elif _is_key_line(inner):
            # "- key: value": a mapping whose keys line up after the dash
            lines[at] = (indent + 1 + len(rest) - len(inner), inner)
            value, at = _mapping(lines, at, lines[at][0])
        else:
            value = _inline(inner)
            at += 1
        items.append(value)
    return items, _after(lines, at, indent)


def _mapping(lines: list[tuple[int, str]], at: int, indent: int) -> tuple[dict[Any, Any], int]:
    result: dict[Any, Any] = {}
    seen: set[str] = set()
    while at < len(lines) and lines[at][0] == indent:
        content = lines[at][1]
        if _is_item(content):
            break
        key_text, rest = _split_key(content)
        if not key_text:
            raise Unsupported("an empty key")
        key = _inline(key_text)
        _new_key(key, _raw(key_text), result, seen)
        if _strip_comment(rest):
            result[key] = _inline(rest)
            at += 1
        else:
            result[key], at = _nested(lines, at + 1, indent, allow_same=True)
    return result, _after(lines, at, indent)


def _nested(lines: list[tuple[int, str]], at: int, indent: int, allow_same: bool) -> tuple[Any, int]:
    """The value below a `key:` or `-` with nothing after it: a deeper block, a sequence at the
    same indent (mappings only), or null."""
    if at < len(lines):
        deeper, content = lines[at]
        if deeper > indent:
            return _block(lines, at, deeper)
        if allow_same and deeper == indent and _is_item(content):
            return _sequence(lines, at, indent)
    return None, at


def _is_item(content: str) -> bool:
    return content == "-" or content.startswith("- ")


def _after(lines: list[tuple[int, str]], at: int, indent: int) -> int:
    if at < len(lines) and lines[at][0] > indent:
        raise Unsupported("unexpected indentation")
    return at


def _is_key_line(content: str) -> bool:
    if content[0] in "[{":
        return False
    try:
        _split_key(content)
    except Unsupported:
        return False
    return True


def _split_key(content: str) -> tuple[str, str]:
    """'key: rest' -> ('key', 'rest'); a quoted key is kept whole."""
    if content[0] in "'\"":
        end = _quoted_end(content, 0)
        if content[end:end + 1] != ":" or content[end + 1:end + 2] not in ("", " "):
            raise Unsupported("not a key")
        return content[:end], content[end + 1:]
    for index, char in enumerate(content):
        if char == ":" and content[index + 1:index + 2] in ("", " "):
            return content[:index].rstrip(" "), content[index + 1:]
        if char == "#" and index and content[index - 1] == " ":
            break
    raise Unsupported("not a key")


def _new_key(key: Any, raw: str, mapping: dict[Any, Any], seen: set[str]) -> None:
    """The spec loader refuses a key whose text repeats (quoted or not); a collection key, or
    two texts with one value, are PyYAML's to judge."""
    if isinstance(key, list | dict) or key in mapping or raw in seen:
        raise Unsupported("a repeated or collection key")
    seen.add(raw)


def _raw(text: str) -> str:
    text = text.strip(" ")
    return _unquote(text) if text[:1] in ("'", '"') else text


def _strip_comment(text: str) -> str:
    text = text.strip(" ")
    return "" if text.startswith("#") else text


def _inline(text: str) -> Any:
    """A scalar or a one-line flow collection, the whole of `text` but a comment."""
    text = text.strip(" ")
    if text[:1] in ("[", "{"):
        value, end = _flow(text, 0)
        if _strip_comment(text[end:]):
            raise Unsupported("text after a flow collection")
        return value
    if text[:1] in ("'", '"'):
        end = _quoted_end(text, 0)
        if _strip_comment(text[end:]):
            raise Unsupported("text after a quoted scalar")
        return _unquote(text[:end])
    cut = text.find(" #")
    plain = (text if cut < 0 else text[:cut]).rstrip(" ")
    if ": " in plain or plain.endswith(":"):
        raise Unsupported("a mapping inside a plain scalar")
    return _plain(plain)


def _flow(text: str, at: int) -> tuple[Any, int]:
    """A [...] or {...} starting at `at`; returns it and the index after it."""
    closing = "]" if text[at] == "[" else "}"
    items: list[Any] = []
    mapping: dict[Any, Any] = {}
    seen: set[str] = set()
    at = _skip(text, at + 1)
    while True:
        if at >= len(text):
            raise Unsupported("a flow collection open at the end of the line")
        if text[at] == closing:
            return (items if closing == "]" else mapping), at + 1
        start = at
        value, at = _flow_value(text, at)
        at = _skip(text, at)
        if closing == "}":
            if text[at:at + 1] != ":":
                raise Unsupported("a flow mapping entry without a value")
            _new_key(value, _raw(text[start:at].strip(" ")), mapping, seen)
            key = value
            value, at = _flow_value(text, _skip(text, at + 1))
            mapping[key] = value
            at = _skip(text, at)
        else:
            items.append(value)
        if text[at:at + 1] == ",":
            at = _skip(text, at + 1)
            if text[at:at + 1] in ("]", "}"):
                raise Unsupported("a trailing comma")
        elif text[at:at + 1] != closing:
            raise Unsupported("a flow collection without a separator")


def _flow_value(text: str, at: int) -> tuple[Any, int]:
    if at >= len(text):
        raise Unsupported("a flow value missing")
    char = text[at]
    if char in "[{":
        return _flow(text, at)
    if char in "'\"":
        end = _quoted_end(text, at)
        return _unquote(text[at:end]), end
    end = at
    while end < len(text):
        char, after = text[end], text[end + 1:end + 2]
        if char == "?" or (char == ":" and after and after in ",?[]{}"):
            raise Unsupported("'?' or ':' before an indicator in a flow scalar (libyaml refuses some)")
        if char in _FLOW_STOP or (char == ":" and after in ("", " ")):
            break
        if char == "#" and text[end - 1] == " ":
            raise Unsupported("a comment inside a flow collection")
        end += 1
    plain = text[at:end].rstrip(" ")
    if not plain:
        raise Unsupported("an empty flow value")
    return _plain(plain), end


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] == " ":
        at += 1
    return at


def _quoted_end(text: str, at: int) -> int:
    quote = text[at]
    index = at + 1
    while index < len(text):
        char = text[index]
        if quote == '"' and char == "\\":
            raise Unsupported("an escape")
        if char == quote:
            if quote == "'" and text[index + 1:index + 2] == "'":
                index += 2
                continue
            return index + 1
        index += 1
    raise Unsupported("a quoted scalar open at the end of the line")


def _unquote(text: str) -> str:
    inner = text[1:-1]
    return inner.replace("''", "'") if text[0] == "'" else inner


def _plain(text: str) -> Any:
    if text[:1] in _PLAIN_START and not (text[:1] == "-" and text[1:2] not in ("", " ")):
        raise Unsupported("a plain scalar starting with an indicator")
    if text in ("<<", "="):
        raise Unsupported("a merge or value key")
    if text in _NULLS:
        return None
    if text in _BOOL_FORMS:
        return _BOOLS[text.lower()]
    if text[:1].isdigit() and re.match(r"[0-9]{4}-[0-9]", text):
        raise Unsupported("a timestamp")
    if _INT.fullmatch(text):
        digits = text.lstrip("+-")
        if len(digits) > 1 and digits[0] == "0" and not digits.startswith("0x"):
            raise Unsupported("an octal number")
        return int(digits, 16) if digits.startswith("0x") else int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text
