"""emit/markup.py quotes as xml.sax.saxutils does, and emit/libvirt.py names a domain as uuid.uuid5
does (the oracles), without their start-up cost."""

from xml.sax.saxutils import escape, quoteattr

from hypothesis import given
from hypothesis import strategies as st

from layoutd.emit import markup

TEXT = st.text(alphabet=st.sampled_from("ab&<>\"'\n\r\t é"), max_size=12)


@given(TEXT)
def test_escape_and_quoteattr_match_the_standard_library(text: str) -> None:
    assert markup.escape(text) == escape(text)
    assert markup.quoteattr(text) == quoteattr(text)


@given(st.text(max_size=20))
def test_uuid5_is_the_standard_librarys(name: str) -> None:
    import uuid

    from layoutd.emit.libvirt import UUID_NAMESPACE, uuid5

    assert uuid5(UUID_NAMESPACE, name) == str(uuid.uuid5(uuid.UUID(bytes=UUID_NAMESPACE), name))
