"""Who a redraft's changes are written in the history's name, and why (entry.Author and entry.Origin).

A request body may name anyone, so a name from it is only ever *unverified*; the token's signed name (a
`redraft token --name`) is verified and wins over whatever the body says. The AI's own edits are written
as the AI (kind "ai"), with the person who asked as the requester: a client can never claim kind ai or
server, because the kind is set here, never read from a request.
"""

from __future__ import annotations

import re

from ..auth import is_valid_name
from ..history.entry import ANONYMOUS, Author, Origin
from .request import parse_person

AI_AUTHOR = Author("Redraft AI", None, verified=True, kind="ai")  # the AI peer's awareness name
STRICT_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


def person(claimed, verified_name: str | None) -> dict:
    """{"name", "color", "verified"} of whoever acts: the token's name when it has one, else the name the
    client gave (unverified), else Anonymous. Only `name` and `color` are read from the client."""
    claimed = claimed if isinstance(claimed, dict) else {}
    color = claimed.get("color")
    color = color if isinstance(color, str) and STRICT_COLOR.fullmatch(color) else None
    if verified_name is not None:
        return {"name": verified_name, "color": color, "verified": True}
    name = claimed.get("name")
    return {"name": name if is_valid_name(name) else ANONYMOUS, "color": color, "verified": False}


def trusted_person(value) -> dict | None:
    """A person another replica of this server resolved (forwarded over Redis): verified only as that
    replica said, and checked again all the same; an unverified one as the client gave it (for display)."""
    if not isinstance(value, dict):
        return None
    name = value.get("name")
    if value.get("verified") is True and is_valid_name(name):
        return person(value, name)
    return parse_person(value)


def author(someone: dict | None) -> Author:
    """The history's Author for a person dict (`person`, or a display {"name", "color"}: unverified)."""
    if not isinstance(someone, dict):
        return Author(ANONYMOUS)
    name = someone.get("name")
    resolved = person(someone, name if someone.get("verified") is True and is_valid_name(name) else None)
    return Author(resolved["name"], resolved["color"], verified=resolved["verified"])


def merge_change(redraft) -> tuple[Author, Origin]:
    """The author and origin of a redraft's merge, or of a restore (made by a person, not the AI)."""
    requester = author(redraft.requester)
    if redraft.kind == "restore":
        return requester, Origin("restore", redraft.id, requester=requester, version=redraft.restored)
    return AI_AUTHOR, Origin("redraft", redraft.id, redraft.instruction or None, redraft.model, requester)


def take_back_change(redraft, doing: str, by: dict | None) -> tuple[Author, Origin]:
    """The author and origin of an undo or redo (`doing`): written by whoever clicked it (Anonymous when the
    client did not say), for the redraft that `requester` asked for."""
    requester = author(redraft.requester)
    origin = Origin(doing, redraft.id, redraft.instruction or None, redraft.model, requester, redraft.restored)
    return author(by), origin
