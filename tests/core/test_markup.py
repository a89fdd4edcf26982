"""emit/markup.py quotes as xml.sax.saxutils does (the oracle), without its start-up cost."""

from xml.sax.saxutils import escape, quoteattr

from hypothesis import given
from hypothesis import strategies as st

from layoutd.emit import markup

TEXT = st.text(alphabet=st.sampled_from("ab&<>\"'\n\r\t é"), max_size=12)


@given(TEXT)
def test_escape_and_quoteattr_match_the_standard_library(text: str) -> None:
    assert markup.escape(text) == escape(text)
    assert markup.quoteattr(text) == quoteattr(text)
