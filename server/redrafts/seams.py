"""Where the model's text meets the document: only valid text, and the spacing a person would write.

Seen before this module: "needed to be.The22" (a continue glued to the sentence before it), "TheirA," (a
fill glued to the word before the cursor), a rewritten paragraph glued to the next one, and U+FFFD from a
byte-level token cut mid-character. `clean` keeps only valid text; `frame` sets the seams: a rewrite keeps
the passage's own leading and trailing whitespace, and a fill or continue gets the separating space or
newline the text on each side needs.
"""

from __future__ import annotations

import re

# Lone surrogates (a JSON "\ud83d" without its pair) and the replacement character are not text; nor are
# control characters other than tab and newline.
INVALID = re.compile(r"[\ud800-\udfff\x00-\x08\x0b-\x1f\x7f]")
REPLACEMENT = "\ufffd"
# Text that joins the character before it with no space: closing marks and sentence punctuation.
# Straight quotes open and close alike: they get the space.
CLOSING = ".,;:!?)]}%\u2019\u201d\u2026"
OPENING = "([{\u2018\u201c"
SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u2019\u201d)\]]*(?=\s|$)|\n")


def clean(text: str, passage: str = "") -> str:
    """The model's text without what is not valid text. U+FFFD stays only when the passage had one (the
    model may copy it); otherwise it marks bytes that never made a character."""
    text = INVALID.sub("", text)
    if REPLACEMENT not in passage:
        text = text.replace(REPLACEMENT, "")
    return text


def trim_unfinished(text: str) -> str:
    """The text of an answer the budget cut short, up to its last finished sentence (when that keeps at
    least a third of it), else up to its last whole word: no "…simple reco" left at the seam."""
    body = text.rstrip()
    ends = [m.end() for m in SENTENCE_END.finditer(body)]
    if ends and ends[-1] >= len(body) / 3:
        return body[: ends[-1]]
    cut = max(body.rfind(" "), body.rfind("\n"))
    return body[:cut].rstrip() if cut > 0 else body


def frame(kind: str, passage: str, text: str, before: str, after: str) -> str:
    """The text to merge: for a rewrite, the model's text inside the passage's own leading and trailing
    whitespace; for fill and continue, the model's text with the separator each side needs (`before` and
    `after` are the document's text around the range)."""
    if kind == "rewrite":
        body = passage.strip()
        if not body:
            return text
        lead = passage[: len(passage) - len(passage.lstrip())]
        trail = passage[len(passage.rstrip()) :]
        return lead + text.strip() + trail
    body = text.strip()
    if not body:
        return ""
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
    return _separator(before[-1:], body[0], lead) + body + _separator(body[-1], after[:1], trail)


def _separator(left: str, right: str, model_space: str) -> str:
    """What goes between the character `left` and the character `right` (either may be "" at the text's
    ends): nothing at a text end or beside whitespace already there, the model's own newlines when it
    started or ended a paragraph, nothing before closing punctuation or after an opening mark, else a space."""
    if not left or not right or left.isspace() or right.isspace():
        return ""
    if "\n" in model_space:
        return "\n\n" if model_space.count("\n") >= 2 else "\n"
    if right in CLOSING or left in OPENING:
        return ""
    return " "
