"""File-name bytes that are not UTF-8, written as text: lone surrogates as \\udcXX escapes."""

from __future__ import annotations

import re

# os.fsdecode keeps undecodable bytes as lone surrogates U+DC80-U+DCFF ("surrogateescape");
# Windows names can hold other unpaired surrogates. None of them can be encoded as UTF-8.
_SURROGATES = re.compile("[\ud800-\udfff]")


def escape(text: str) -> str:
    """`text` with every lone surrogate as a \\uXXXX escape, so it encodes as UTF-8.

    The same escape as JSON's: a name seen in `dropsight status`, a sidecar and the log
    reads alike, and JSON-decoding the escape then `os.fsencode` gives the original bytes.
    """
    return _SURROGATES.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
