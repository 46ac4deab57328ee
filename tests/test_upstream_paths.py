"""The path policy for client-chosen paths (REST passthrough): one canonical spelling that
every parser reads alike, or a refusal; never a path that could leave its route."""

from __future__ import annotations

import pytest

from bff.upstream.paths import MAX_PATH, InvalidPath, normalise_path
from bff.upstream.request import InvalidRequest


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("", "/"),
        ("/", "/"),
        ("orders/1", "/orders/1"),
        ("/orders/1/", "/orders/1/"),
        ("/%7Euser/%41bc", "/~user/Abc"),  # escapes of unreserved characters are decoded
        ("/a%2cb/%3a", "/a%2Cb/%3A"),  # other escapes kept, in upper case
        ("/a b/ü", "/a%20b/%C3%BC"),  # characters outside pchar escaped
        ("/a%20b", "/a%20b"),
        ("/x;v=1/@me:!$&'()*+,=", "/x;v=1/@me:!$&'()*+,="),
        ("/.../..a/a..", "/.../..a/a.."),  # only whole dot segments are special
    ],
)
def test_paths_have_one_canonical_spelling(raw: str, canonical: str) -> None:
    assert normalise_path(raw) == canonical
    assert normalise_path(canonical) == canonical  # idempotent


@pytest.mark.parametrize(
    "raw",
    [
        "/orders/../admin",
        "/orders/..",
        "../etc/passwd",
        "/./orders",
        "/orders/%2e%2e/admin",
        "/orders/%2E%2E",
        "/orders/.%2e/admin",
        "/orders/%2e/x",
        "/orders/..%2Fadmin",
        "/orders%2fadmin",
        "/orders%5cadmin",
        "/orders\\..\\admin",
        "//evil.example/x",
        "/a//b",
        "/a%00b",
        "/a%0d%0aX-Admin:%20yes",
        "/a\r\nb",
        "/a\x00b",
        "/a%zz",
        "/a%2",
        "/" + "a" * MAX_PATH,
    ],
)
def test_ambiguous_or_escaping_paths_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPath) as caught:
        normalise_path(raw)
    assert raw not in str(caught.value)  # the message says why, without echoing the path


def test_a_refusal_says_why() -> None:
    """InvalidPath is an InvalidRequest: `UpstreamPool` answers it as BAD_USER_INPUT (400)."""
    with pytest.raises(InvalidRequest, match="dot segment"):
        normalise_path("/a/%2E%2e/b")
    with pytest.raises(InvalidRequest, match="encoded slash"):
        normalise_path("/a%2Fb")
