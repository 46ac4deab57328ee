"""The load generator: `wrk`, driven by a generated Lua script.

Why wrk: a C load generator on its own core costs far less per request than any Python client,
so the numbers describe the server, not the client. The script makes every request a POST with
the workload's body and headers, counts the requests it *sent* (the `request()` hook), and in
`done()` prints one JSON line with what `wrk --latency` would print and more: exact
percentiles in microseconds, completed and sent requests, and the error counters. Parsing that
line is more precise than parsing wrk's rounded text output.

wrk is a closed-loop generator: each of the `concurrency` connections sends its next request as
soon as the previous answer arrives, so req/s at concurrency 1 is 1 / latency.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.procs import run_bounded

RESULT_PREFIX = "BENCH_RESULT "
REQUEST_TIMEOUT = "10s"  # wrk's per-request timeout: far above any sane latency here
MISSING_WRK = (
    "wrk is required and was not found on PATH; install it first "
    "(Debian/Ubuntu: apt-get install -y wrk, macOS: brew install wrk)"
)

_SCRIPT = """\
wrk.method = "POST"
wrk.body = {body}
{headers}
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  prepared = wrk.format()
end

function request()
  sent = sent + 1
  return prepared
end

function done(summary, latency, requests)
  local total_sent = 0
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
  end
  local e = summary.errors
  io.write(string.format(
    '{prefix}{{"requests": %d, "sent": %d, "duration_us": %d, "bytes": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
    '"errors": {{"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}}}\\n',
    summary.requests, total_sent, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One wrk run. Latencies in milliseconds."""

    requests: int  # completed responses (any status)
    sent: int  # requests written (completed + cut off when the run ended)
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int]  # connect, read, write, status (non-2xx/3xx), timeout

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "rps": self.rps}

    @classmethod
    def pooled(cls, runs: Sequence[LoadResult]) -> LoadResult:
        """Several runs of one cell as one: counts, durations and errors summed, the mean
        weighted by requests, the maximum the largest, and each percentile the median of the
        runs' (wrk's histograms are gone by then; the median run is what a typical run saw)."""
        requests = sum(r.requests for r in runs)
        return cls(
            requests=requests,
            sent=sum(r.sent for r in runs),
            duration_s=sum(r.duration_s for r in runs),
            p50_ms=statistics.median(r.p50_ms for r in runs),
            p90_ms=statistics.median(r.p90_ms for r in runs),
            p99_ms=statistics.median(r.p99_ms for r in runs),
            max_ms=max(r.max_ms for r in runs),
            mean_ms=sum(r.mean_ms * r.requests for r in runs) / requests if requests else 0.0,
            errors={k: sum(r.errors.get(k, 0) for r in runs) for k in runs[0].errors},
        )


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    """wrk's version line (it prints usage to stderr, exit status 1, when given -v)."""
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10, check=False)
    text = (result.stdout + result.stderr).strip()
    first = text.splitlines()[0] if text else "wrk (version unknown)"
    return first.split(" Copyright")[0]


def lua_string(text: str) -> str:
    """`text` as a Lua long-bracket literal whose level never collides with its content."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def write_script(path: Path, body: bytes, headers: dict[str, str]) -> Path:
    lines = "\n".join(
        f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}" for k, v in headers.items()
    )
    script = _SCRIPT.format(body=lua_string(body.decode()), headers=lines, prefix=RESULT_PREFIX)
    path.write_text(script)
    return path


def run_wrk(
    url: str,
    script: Path,
    *,
    concurrency: int,
    duration: float,
    prefix: list[str],
) -> LoadResult:
    """Drive `url` for `duration` seconds with `concurrency` connections on one wrk thread."""
    argv = [
        *prefix,
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={REQUEST_TIMEOUT}",
        "-s",
        str(script),
        url,
    ]
    out, err = run_bounded(argv, timeout=duration + 60)
    return parse_result(out, err)


def parse_result(output: str, errors: str = "") -> LoadResult:
    """The `done()` line. wrk runs on with its defaults after a script error, so a missing
    line (or the script's error on stderr) fails the run rather than measuring plain GETs."""
    match = re.search(rf"^{re.escape(RESULT_PREFIX)}(.*)$", output, re.MULTILINE)
    if match is None or errors.strip():
        raise RuntimeError(f"wrk did not run its script as expected:\n{errors}{output[-2000:]}")
    data = json.loads(match.group(1))
    return LoadResult(
        requests=data["requests"],
        sent=data["sent"],
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        errors={k: int(v) for k, v in data["errors"].items()},
    )
