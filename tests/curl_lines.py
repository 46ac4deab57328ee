"""Run the `curl` lines a user copies (from the README, from `bff demo`'s banner) with httpx.

Only what those lines use: `-s`, `-X METHOD`, `-H 'Name: value'`, `-d DATA` (a form when it is
not JSON, as curl sends it), `$VAR` from `env`, `\\` continuations, a URL without a scheme.
Anything else fails the test that runs it, so a new kind of line gets noticed.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping

import httpx


def curl_commands(text: str) -> Iterator[str]:
    """Each `curl ...` command in `text`, continuation lines joined, comments dropped."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if pending:
            pending += " " + line.removesuffix("\\").strip()
        elif line.startswith("curl "):
            pending = line.removesuffix("\\").strip()
        else:
            continue
        if not line.endswith("\\"):
            yield pending.split(" # ", 1)[0].strip()
            pending = ""


def run_curl(command: str, env: Mapping[str, str], base: str) -> httpx.Response:
    """Send `command` as curl would; a URL's `localhost:8000` or `127.0.0.1:8000` is `base`."""
    words = shlex.split(_expand(command, env))
    assert words[0] == "curl", command
    method, headers, data, url = None, {}, None, None
    args = iter(words[1:])
    for word in args:
        if word == "-s":
            continue
        if word == "-X":
            method = next(args)
        elif word == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            data = next(args)
        elif not word.startswith("-") and url is None:
            url = word
        else:
            raise AssertionError(f"curl option not understood: {word!r} in {command}")
    assert url is not None, command
    for local in ("http://localhost:8000", "localhost:8000", "http://127.0.0.1:8000"):
        if url.startswith(local):
            url = base + url.removeprefix(local)
    if data is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/x-www-form-urlencoded"  # curl's -d default
    with httpx.Client(timeout=15, trust_env=False) as client:
        return client.request(
            method or ("POST" if data is not None else "GET"),
            url,
            headers=headers,
            content=data.encode() if data is not None else None,
        )


def _expand(command: str, env: Mapping[str, str]) -> str:
    for name, value in env.items():
        command = command.replace(f"${name}", value)
    return command
