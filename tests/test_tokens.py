"""The verifier's cache of verified tokens never outlives a token's expiry."""

from __future__ import annotations

import time

import pytest

from bff.auth import TokenVerifier
from bff.errors import Unauthenticated
from tests.support import AUDIENCE, ISSUER, SECRET, sign


def verifier() -> TokenVerifier:
    return TokenVerifier("HS256", SECRET, ISSUER, AUDIENCE)


def test_a_cached_token_still_expires() -> None:
    v = verifier()
    now = time.time()
    token = sign(ttl=60, now=now)
    assert v.verify(token, now=now).sub == "1"
    assert v.verify(token, now=now + 30).sub == "1"  # served from the cache
    with pytest.raises(Unauthenticated, match="expired"):
        v.verify(token, now=now + 3600)
    assert token not in v._verified  # forgotten: the next use is verified from scratch


def test_refused_tokens_are_never_cached() -> None:
    v = verifier()
    bad = sign(secret="another-secret-of-sufficient-length")
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="Invalid token"):
            v.verify(bad)


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bff.auth.tokens.CACHE_SIZE", 3)
    v = verifier()
    tokens = [sign(sub=str(i)) for i in range(1, 6)]
    assert [v.verify(t).sub for t in tokens] == ["1", "2", "3", "4", "5"]
    assert len(v._verified) == 3
