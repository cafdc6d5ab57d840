"""Error fingerprints: what tells one kind of failure from another across many calls.

A fingerprint is the error's type, its message as a template (the parts that
change from call to call replaced by placeholders), its HTTP status, when
there is one, and the innermost frames of its traceback ("module:function",
as the recovery log records them: no line numbers, so an edit elsewhere in a
file keeps the fingerprint): the same error raised at two places is two
fingerprints. An error without frames (a log written before brace recorded
them, an error never raised, a failed response) has the fingerprint of its
type, template and status alone, as before.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

__all__ = ["fingerprint", "template"]

# Longest message part templated: the rest is cut (a hostile log's megabyte message
# costs no more than this).
_MAX_MESSAGE = 2_000

# In order: each pattern's text is replaced before the next one looks.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A URL's query values: ?id=17&name=x -> ?id=<*>&name=<*>
    (re.compile(r"([?&][^=&#\s]+)=[^&#\s]*"), r"\1=<*>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<hex>"),
    # A run of 8 or more hex digits with at least one digit and one letter... or 12+ digits/letters mixed:
    # request ids, hashes, object ids.
    (re.compile(r"\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"'(?:[^'\\\n]|\\.)*'"), "'<str>'"),
    (re.compile(r'"(?:[^"\\\n]|\\.)*"'), '"<str>"'),
    # Numbers: ints, decimals, with a sign or an exponent, on their own or ending a word ("call-0042").
    (re.compile(r"(?<![A-Za-z])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"), "<n>"),
)


def template(message: str) -> str:
    """The message with what varies between occurrences replaced: URL query values by
    <*>, UUIDs by <uuid>, hex ids (0x..., or 8+ hex digits mixing digits and letters) by
    <hex>, quoted strings by '<str>', numbers by <n>; whitespace runs become one space.
    Only the first 2,000 characters are read."""
    text = message[:_MAX_MESSAGE]
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def fingerprint(error_type: str, message: str, status: int | None = None,
                frames: Sequence[str] = ()) -> tuple[str, str]:  # fmt: skip
    """(id, template) of an error: the id is 12 hex digits of a SHA-256 of the type, the
    template, the status and the frames (innermost first; none: the hash of the first
    three alone), the same in every run and on every machine."""
    shape = template(message)
    text = f"{error_type}\n{shape}\n{status}"
    if frames:
        text += "\n" + "\n".join(frames)
    digest = hashlib.sha256(text.encode("utf-8", "backslashreplace"))
    return digest.hexdigest()[:12], shape
