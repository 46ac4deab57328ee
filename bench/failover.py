"""`python -m bench.failover`: the Dashboard while one of three users instances dies and returns.

The sample services run as separate processes: catalog, orders, reviews, inventory and auth
in one, and each of three users instances in its own, on a fixed port. The gateway (`bff
serve`, default pool settings: retries 2, health checks every 2 s, outlier ejection after 5
failures) balances over the three. A load generator in this process keeps `--concurrency`
Dashboard requests in flight for `--duration` seconds; at `--kill-at` the second users
instance is killed (SIGKILL: sockets reset, as a crash), at `--restart-at` it starts again on
the same port.

Printed: requests/s and errors/s for every second, the totals, and the goal lines:
zero client-visible errors (any non-200, any GraphQL error, any failed connection), and
throughput in the fault window at least 0.8 x the throughput before it (the first second,
warm-up, left out). Processes are pinned as in `bench.run` when possible (gateway on one core,
services and load on the other).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if not __package__:  # run as `python bench/failover.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson
import yaml

from bench.procs import Child, Children, Pinning, detect_pinning, free_port
from bench.stack import START_TIMEOUT, gateway_config, serve_config, sign_token
from bench.workloads import dashboard

OTHERS = ("catalog", "orders", "reviews", "inventory", "auth")
THROUGHPUT_GOAL = 0.8


@dataclass
class Timeline:
    started: float
    ok: dict[int, int] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)
    first_error: str | None = None

    def count(self, good: bool, what: str = "") -> None:
        second = int(time.monotonic() - self.started)
        into = self.ok if good else self.errors
        into[second] = into.get(second, 0) + 1
        if not good and self.first_error is None:
            self.first_error = what

    def rate(self, first: int, last: int) -> float:
        """Good requests per second over seconds [first, last)."""
        seconds = max(1, last - first)
        return sum(self.ok.get(s, 0) for s in range(first, last)) / seconds


def users_argv(pinning: Pinning, port: int) -> list[str]:
    # users is the first service, so its instance 0 listens on exactly --port-base
    return [
        *pinning.prefix(pinning.load_core),
        sys.executable,
        "-m",
        "services",
        "users",
        "--port-base",
        str(port),
        "--host",
        "127.0.0.1",
    ]


def start_users(children: Children, pinning: Pinning, port: int, name: str) -> Child:
    child = children.start(name, users_argv(pinning, port))
    child.wait_for_line(lambda line: line.strip() == "ready", START_TIMEOUT)
    return child


def others_urls(child: Child) -> dict[str, str]:
    lines = child.wait_for_line(lambda line: line.strip() == "ready", START_TIMEOUT)
    urls = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] in OTHERS:
            urls[parts[0]] = parts[1]
    return urls


async def load(url: str, token: str, concurrency: int, duration: float, timeline: Timeline) -> None:
    body = dashboard(20).body
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": f"Bearer {token}",
    }
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=10, limits=limits, trust_env=False) as client:

        async def worker() -> None:
            end = timeline.started + duration
            while time.monotonic() < end:
                try:
                    response = await client.post(f"{url}/graphql", content=body, headers=headers)
                except httpx.HTTPError as exc:
                    timeline.count(False, f"{type(exc).__name__}: {exc}")
                    continue
                if response.status_code != 200:
                    timeline.count(False, f"status {response.status_code}: {response.text[:200]}")
                elif b'"errors"' in response.content:
                    errors = orjson.loads(response.content).get("errors")
                    timeline.count(not errors, str(errors)[:200])
                else:
                    timeline.count(True)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def faults(
    children: Children,
    pinning: Pinning,
    victim: list[Child],
    port: int,
    timeline: Timeline,
    kill_at: float,
    restart_at: float,
) -> None:
    await asyncio.sleep(max(0.0, timeline.started + kill_at - time.monotonic()))
    say(f"{kill_at:g} s: killing users instance 2 (port {port})")
    os.killpg(victim[0].pid, signal.SIGKILL)
    children.stop(victim[0])
    await asyncio.sleep(max(0.0, timeline.started + restart_at - time.monotonic()))
    say(f"{restart_at:g} s: restarting users instance 2 on port {port}")
    victim[0] = await asyncio.to_thread(start_users, children, pinning, port, "users-2-again")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def report(timeline: Timeline, args: argparse.Namespace) -> tuple[str, bool]:
    last = int(args.duration)
    lines = ["| second | requests/s | errors/s |", "|---:|---:|---:|"]
    for second in range(last):
        mark = ""
        if second == int(args.kill_at):
            mark = " (killed)"
        elif second == int(args.restart_at):
            mark = " (restarted)"
        ok, bad = timeline.ok.get(second, 0), timeline.errors.get(second, 0)
        lines.append(f"| {second}{mark} | {ok} | {bad} |")
    total_ok = sum(timeline.ok.values())
    total_errors = sum(timeline.errors.values())
    before = timeline.rate(1, int(args.kill_at))
    during = timeline.rate(int(args.kill_at), int(args.restart_at))
    after = timeline.rate(int(args.restart_at), last)
    ratio = during / before if before else 0.0
    lines += [
        "",
        f"total: {total_ok} requests answered, {total_errors} errors, in {args.duration:g} s "
        f"at concurrency {args.concurrency} ({total_ok / args.duration:.1f} requests/s)",
        f"requests/s: before {before:.1f}, fault window {during:.1f}, after {after:.1f}",
    ]
    no_errors = total_errors == 0
    kept = ratio >= THROUGHPUT_GOAL
    lines.append(f"{'PASS' if no_errors else 'FAIL'} zero client-visible errors ({total_errors})")
    lines.append(
        f"{'PASS' if kept else 'FAIL'} throughput in the fault window >= {THROUGHPUT_GOAL} x "
        f"before: {ratio:.2f} x"
    )
    if timeline.first_error:
        lines.append(f"first error: {timeline.first_error}")
    return "\n".join(lines), no_errors and kept


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (30)")
    parser.add_argument("--kill-at", type=float, default=10.0, help="second of the kill (10)")
    parser.add_argument("--restart-at", type=float, default=20.0, help="restart second (20)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (16)")
    args = parser.parse_args(argv)
    if not 1 <= args.kill_at < args.restart_at < args.duration:
        parser.error("need 1 <= --kill-at < --restart-at < --duration")
    pinning = detect_pinning()
    say(f"pinning: {pinning.reason}")
    with tempfile.TemporaryDirectory(prefix="bff-failover-") as tmp:
        work = Path(tmp)
        with Children(work, Path.cwd()) as children:
            others = children.start(
                "services",
                [
                    *pinning.prefix(pinning.load_core),
                    sys.executable,
                    "-m",
                    "services",
                    *OTHERS,
                    "--port-base",
                    "0",
                    "--host",
                    "127.0.0.1",
                ],
            )
            ports = [free_port() for _ in range(3)]
            users = [start_users(children, pinning, p, f"users-{k}") for k, p in enumerate(ports)]
            urls = others_urls(others)
            config = gateway_config({**urls, "users": ""}, secrets.token_urlsafe(32))
            config["upstreams"]["users"] = {
                "instances": [{"url": f"http://127.0.0.1:{p}"} for p in ports]
            }
            config_path = work / "bff.yaml"
            config_path.write_text(yaml.safe_dump(config, sort_keys=False))
            url = serve_config(children, pinning, config_path, ready_path="/readyz").url
            token = sign_token(config_path)
            victim = [users[1]]
            timeline = Timeline(time.monotonic())

            async def scenario() -> None:
                await asyncio.gather(
                    load(url, token, args.concurrency, args.duration, timeline),
                    faults(
                        children, pinning, victim, ports[1], timeline, args.kill_at, args.restart_at
                    ),
                )

            say(f"load: the Dashboard at concurrency {args.concurrency} for {args.duration:g} s")
            asyncio.run(scenario())
            text, passed = report(timeline, args)
            print(text)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
