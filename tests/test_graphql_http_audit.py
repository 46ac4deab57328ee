"""graphql-http's own server audit (the npm package) against a running gateway.

Every MUST and every SHOULD of the GraphQL-over-HTTP spec, as that package checks them, must
pass. The package is pinned in `tests/audit/package.json` + `package-lock.json` and installed
by `scripts/test` (`npm ci`); without node and npm this test fails, it never skips.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

AUDIT_DIR = Path(__file__).resolve().parent / "audit"
TIMEOUT = 120


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not installed: the GraphQL-over-HTTP audit needs node and npm")
    if not (AUDIT_DIR / "node_modules" / "graphql-http").is_dir():
        pytest.fail("graphql-http is not installed: run scripts/test, or `npm ci` in tests/audit")
    return found


def run_audit(url: str) -> list[dict[str, object]]:
    completed = subprocess.run(
        [node(), str(AUDIT_DIR / "audit.mjs"), url],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    results: list[dict[str, object]] = json.loads(completed.stdout)
    return results


def test_every_must_and_should_passes(gateway_url: str) -> None:
    results = run_audit(f"{gateway_url}/graphql")
    assert len(results) > 30  # the audit really ran
    failed = [
        f"{r['name']}: {r.get('reason')} (got {r.get('httpStatus')} {r.get('contentType')}: "
        f"{str(r.get('body'))[:200]})"
        for r in results
        if str(r["name"]).startswith(("MUST", "SHOULD")) and r["status"] != "ok"
    ]
    assert not failed, "\n".join(failed)
    assert any(str(r["name"]).startswith("SHOULD") for r in results)
