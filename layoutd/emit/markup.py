"""XML text and attribute quoting for the SVG and libvirt encoders, byte for byte as
xml.sax.saxutils' `escape` and `quoteattr`, whose module imports urllib.request (http, ssl,
email, tempfile: some 25 ms at every start of `plan` and `check`). Pure."""


def escape(text: str) -> str:
    """Character data: &, < and > as entities."""
    return text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


def quoteattr(text: str) -> str:
    """An attribute value with its quotes: double unless the value holds a double quote and no
    single one; line breaks and tabs as character references."""
    text = escape(text).replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    if '"' not in text:
        return f'"{text}"'
    if "'" not in text:
        return f"'{text}'"
    return '"{}"'.format(text.replace('"', "&quot;"))
