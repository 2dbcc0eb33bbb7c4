"""labdeck.emulators.bigquery.tokens: issue/verify round trip and every way a token can be bad."""

import base64
import json

import pytest

from labdeck.emulators.bigquery.tokens import TokenError, issue, verify

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
NOW = 1_700_000_000.0
CLAIMS = {
    "sub": "alice",
    "projects": ["labdeck-local"],
    "datasets": {"labdeck-local.alice": "rw", "labdeck-local.demo": "ro"},
}


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_round_trip():
    token = issue(KEY, CLAIMS, ttl=3600, now=NOW)
    claims = verify(KEY, token, now=NOW + 10)
    assert claims == {**CLAIMS, "exp": int(NOW + 3600)}


def test_issue_does_not_mutate_claims():
    claims = dict(CLAIMS)
    issue(KEY, claims, ttl=60, now=NOW)
    assert claims == CLAIMS


def _forged_signature():
    return issue(OTHER_KEY, CLAIMS, ttl=3600, now=NOW)


def _tampered_claims():
    payload, sig = issue(KEY, CLAIMS, ttl=3600, now=NOW).split(".")
    evil = {**CLAIMS, "admin": True, "exp": int(NOW + 3600)}
    return _b64(evil) + "." + sig


def _swapped_signature():
    token_a = issue(KEY, CLAIMS, ttl=3600, now=NOW)
    token_b = issue(KEY, {**CLAIMS, "sub": "bob"}, ttl=3600, now=NOW)
    return token_b.split(".")[0] + "." + token_a.split(".")[1]


@pytest.mark.parametrize(
    "make_token, message",
    [
        (_forged_signature, "bad token signature"),
        (_tampered_claims, "bad token signature"),
        (_swapped_signature, "bad token signature"),
        (lambda: issue(KEY, CLAIMS, ttl=60, now=NOW - 120), "token expired"),
        (lambda: "", "malformed token"),
        (lambda: "garbage", "malformed token"),
        (lambda: "a.b.c", "malformed token"),
        (lambda: ".", "malformed token"),
        (lambda: "é.é", "malformed token"),
        (lambda: None, "malformed token"),
    ],
    ids=["forged", "tampered", "swapped", "expired", "empty", "garbage", "three-parts",
         "dot", "non-ascii", "none"],
)
def test_bad_tokens(make_token, message):
    token = make_token()
    with pytest.raises(TokenError) as info:
        verify(KEY, token, now=NOW)
    assert str(info.value) == message
    assert KEY.decode() not in str(info.value)
    if token:
        assert token not in str(info.value)


def test_signed_but_not_json_is_malformed():
    import hashlib
    import hmac

    payload = base64.urlsafe_b64encode(b"not json").rstrip(b"=").decode()
    sig = base64.urlsafe_b64encode(
        hmac.new(KEY, payload.encode(), hashlib.sha256).digest()
    ).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="malformed token"):
        verify(KEY, f"{payload}.{sig}", now=NOW)


def test_signed_without_exp_is_malformed():
    import hashlib
    import hmac

    payload = _b64({"sub": "alice"})
    sig = base64.urlsafe_b64encode(
        hmac.new(KEY, payload.encode(), hashlib.sha256).digest()
    ).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="malformed token"):
        verify(KEY, f"{payload}.{sig}", now=NOW)


@pytest.mark.parametrize(
    "key, claims, ttl",
    [(b"short", CLAIMS, 60), (KEY, CLAIMS, 0), (KEY, {"projects": []}, 60)],
    ids=["short-key", "zero-ttl", "no-sub"],
)
def test_issue_rejects_bad_arguments(key, claims, ttl):
    with pytest.raises(ValueError):
        issue(key, claims, ttl=ttl, now=NOW)
