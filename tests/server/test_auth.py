"""Share tokens: what they grant, and the reason given when they do not."""

import pytest

from server.auth import AuthError, Grant, mint_engine_token, mint_token, verify_engine_token, verify_token

SECRET = "a-test-secret-of-32-characters!!"


def test_round_trip_and_roles():
    token = mint_token(SECRET, "notes", "read", ttl_s=60, now=1000)
    assert verify_token(SECRET, token, "notes", now=1059) == Grant("read", 1060.0)
    assert verify_token(SECRET, mint_token(SECRET, "*", "edit", None), "any-doc") == Grant("edit", None)


def test_without_a_secret_everyone_edits():
    assert verify_token(None, None, "notes").can_edit


@pytest.mark.parametrize(
    "token, doc, now, reason",
    [
        (None, "notes", 0, "needs a share token"),
        ("", "notes", 0, "needs a share token"),
        ("garbage", "notes", 0, "signature is not valid"),
        (mint_token("another-secret-0123456789", "notes", "edit", None), "notes", 0, "signature is not valid"),
        (mint_token(SECRET, "other", "edit", None), "notes", 0, "for document 'other'"),
        (mint_token(SECRET, "notes", "edit", 10, now=0), "notes", 10, "expired"),
    ],
)
def test_refusals_say_why(token, doc, now, reason):
    with pytest.raises(AuthError, match=reason):
        verify_token(SECRET, token, doc, now=now)


def test_tampered_claims_fail():
    body, _, signature = mint_token(SECRET, "notes", "read", None).partition(".")
    forged = mint_token(SECRET, "notes", "edit", None).partition(".")[0]
    with pytest.raises(AuthError, match="signature"):
        verify_token(SECRET, f"{forged}.{signature}", "notes")
    assert body != forged


def test_unknown_role_is_refused_at_mint():
    with pytest.raises(ValueError, match="role must be one of edit, read"):
        mint_token(SECRET, "notes", "admin", None)


def test_engine_tokens_open_the_api_and_no_document_and_share_tokens_the_reverse():
    engine = mint_engine_token(SECRET, ttl_s=60, now=1000)
    assert verify_engine_token(SECRET, engine, now=1059) is None
    with pytest.raises(AuthError, match="expired"):
        verify_engine_token(SECRET, engine, now=1060)
    with pytest.raises(AuthError, match="this is an engine token: it opens the /v1 API, not documents"):
        verify_token(SECRET, engine, "notes", now=1000)
    with pytest.raises(AuthError, match="this is a document share token; the /v1 API needs an engine token"):
        verify_engine_token(SECRET, mint_token(SECRET, "*", "edit", None))
    with pytest.raises(AuthError, match="signature is not valid"):
        verify_engine_token(SECRET, mint_engine_token("another-secret-0123456789", None))
    with pytest.raises(AuthError, match="needs an engine token"):
        verify_engine_token(SECRET, None)
    verify_engine_token(None, None)  # without a secret (loopback only) the API is open, like the documents
