"""A safe XML reader that remembers where every element sits in the original bytes.

Expat with every DTD hook refused: no DOCTYPE, no entity declarations, so nothing expands and
nothing is fetched. Byte offsets let callers edit the text surgically and keep the rest exact.
"""

from __future__ import annotations

from xml.parsers import expat

from layoutd.errors import InputError
from layoutd.record import Record, field

MAX_XML_BYTES = 16 * 1024 * 1024


class Node(Record, kw_only=False, frozen=False):
    """One element: its tag as written (prefix included), attributes, text and byte span."""

    tag: str
    attrs: dict[str, str]
    start: int  # offset of '<'
    end: int = -1  # offset just past the closing '>'
    inner_start: int = -1  # just past the start tag's '>' (== end for <empty/>)
    inner_end: int = -1  # offset of '</' (== end for <empty/>)
    text: str = ""
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None

    def find(self, tag: str) -> Node | None:
        return next((child for child in self.children if child.tag == tag), None)

    def findall(self, tag: str) -> list[Node]:
        return [child for child in self.children if child.tag == tag]

    def path(self, *tags: str) -> Node | None:
        node: Node | None = self
        for tag in tags:
            node = node.find(tag) if node is not None else None
        return node

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attrs.get(name, default)

    @property
    def empty(self) -> bool:
        return self.inner_start == self.end


class _Builder:
    def __init__(self, data: bytes, source: str):
        self.data = data
        self.source = source
        self.root: Node | None = None
        self.stack: list[Node] = []
        self.parser = expat.ParserCreate()
        self.parser.buffer_text = True
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.parser.CharacterDataHandler = self.chars
        self.parser.StartDoctypeDeclHandler = self.refuse
        self.parser.EntityDeclHandler = self.refuse
        self.parser.UnparsedEntityDeclHandler = self.refuse
        self.parser.ExternalEntityRefHandler = self.refuse
        self.parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse(self, *_: object) -> int:
        raise InputError(
            f"line {self.parser.CurrentLineNumber}: DOCTYPE and entity declarations are not "
            "accepted in a libvirt domain XML",
            file=self.source,
        )

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        offset = self.parser.CurrentByteIndex
        node = Node(tag, dict(attrs), offset, parent=self.stack[-1] if self.stack else None)
        close = _tag_close(self.data, offset)
        node.inner_start = close + 1
        if self.data[close - 1 : close] == b"/":  # <empty/>
            node.end = node.inner_end = node.inner_start
        if node.parent is not None:
            node.parent.children.append(node)
        elif self.root is None:
            self.root = node
        self.stack.append(node)

    def end(self, _tag: str) -> None:
        node = self.stack.pop()
        if node.end < 0:
            offset = self.parser.CurrentByteIndex
            node.inner_end = offset
            node.end = self.data.index(b">", offset) + 1

    def chars(self, text: str) -> None:
        if self.stack:
            self.stack[-1].text += text


def _tag_close(data: bytes, offset: int) -> int:
    """The offset of the '>' that closes the start tag at `offset` ('>' may sit in a quoted value)."""
    quote = 0
    for index in range(offset, len(data)):
        byte = data[index]
        if quote:
            quote = 0 if byte == quote else quote
        elif byte in (0x22, 0x27):
            quote = byte
        elif byte == 0x3E:
            return index
    raise InputError("unterminated start tag")


def parse(data: bytes | str, source: str = "<stdin>") -> Node:
    """Parse a whole document; InputError (exit 2) naming the line on anything malformed."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_XML_BYTES:
        raise InputError(f"larger than {MAX_XML_BYTES} bytes; not a domain XML", file=source)
    builder = _Builder(raw, source)
    try:
        builder.parser.Parse(raw, True)
    except expat.ExpatError as error:
        raise InputError(f"line {error.lineno}: invalid XML: {expat.errors.messages[error.code]}",
                         file=source) from error
    if builder.root is None:
        raise InputError("no XML element found", file=source)
    return builder.root
