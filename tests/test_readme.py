"""The README's examples run as written: its config, its commands, its ports.

A newcomer copies these first; each check here is one thing that would otherwise fail for them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bff.cli import build_parser, usable_settings
from bff.config import Settings, inactive_sections, settings_from_dict
from bff.config.loader import load_settings
from services import SERVICE_NAMES, RunningServices
from services.cli import DEFAULT_PORT_BASE, PORTS_PER_SERVICE
from tests.curl_lines import curl_commands, run_curl
from tests.support import GraphQLClient, UpstreamCalls, running_gateway
from tests.test_cli import running_bff, wait_for
from tests.tls_certs import Authority

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def minimal_config() -> str:
    """The README's minimal config: its one YAML block that names the upstreams."""
    [config] = [block for block in blocks("yaml") if block.startswith("server:")]
    return config


def cli_table_commands() -> list[str]:
    """The commands of the README's CLI table, optional parts included, placeholders filled."""
    samples = {"H": "127.0.0.1", "P": "8001", "N": "2", "FILE": "bff.yaml", "NAMES": "users"}
    commands = []
    for line in README.splitlines():
        match = re.match(r"\| `(bff [^|]*?)` \|", line)
        if match is None:
            continue
        for command in match.group(1).split("`, `"):
            words = command.replace("[", "").replace("]", "").split()
            commands.append(" ".join(samples.get(w, w) for w in words))
    return commands


def test_the_minimal_config_is_valid_and_fully_active(tmp_path: Path) -> None:
    config = minimal_config()
    path = tmp_path / "bff.yaml"
    path.write_text(config, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    settings = load_settings(path, env=environ)
    assert inactive_sections(settings) == []
    assert settings_from_dict(yaml.safe_load(config)) == settings


def test_the_minimal_config_names_what_bff_services_starts() -> None:
    """One instance per service, on the ports `bff services` uses by default."""
    settings = settings_from_dict(yaml.safe_load(minimal_config()))
    started = {
        name: [f"http://127.0.0.1:{DEFAULT_PORT_BASE + PORTS_PER_SERVICE * i}"]
        for i, name in enumerate(SERVICE_NAMES)
    }
    configured = {
        name: [str(instance.url).rstrip("/") for instance in upstream.instances]
        for name, upstream in settings.upstreams.items()
    }
    assert configured == started


def test_the_cli_table_commands_parse() -> None:
    commands = cli_table_commands()
    assert {c.split()[1] for c in commands} >= {
        "demo", "serve", "services", "check-config", "schema", "--version",
    }  # fmt: skip
    for command in commands:
        args = shlex.split(command)[1:]
        if args[0] in ("--version", "COMMAND"):
            continue
        parsed = build_parser().parse_args(args)
        assert parsed.command == args[0]
    with pytest.raises(SystemExit) as version:
        build_parser().parse_args(["--version"])
    assert version.value.code == 0


def test_the_shell_commands_name_what_exists() -> None:
    shell = "\n".join(blocks("sh"))
    assert "scripts/test" in shell and os.access(ROOT / "scripts" / "test", os.X_OK)
    for module in re.findall(r"python -m ([\w.]+)", shell):
        assert importlib.util.find_spec(module) is not None, module
    assert ".venv/bin/bff demo" in shell


def write_es256_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def write_tls_files(directory: Path, snippet: str) -> None:
    """The CA, certificate and key files a TLS snippet names, made for the test."""
    names = dict(re.findall(r"(ca_file|cert_file|key_file): ([\w/.-]+)", snippet))
    if not names:
        return
    (directory / "issued").mkdir(exist_ok=True)
    authority = Authority(directory / "issued", "readme-ca")
    issued = authority.issue("readme-client", client=True)
    sources = {"ca_file": authority.ca_file, "cert_file": issued.cert, "key_file": issued.key}
    for key, relative in names.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(sources[key].read_bytes())


def sectional(index: int) -> bool:
    """A YAML block that shows one section (the OpenAPI example is a whole file: its test
    runs it as written)."""
    return not blocks("yaml")[index].startswith("graph: none")


@pytest.mark.parametrize("index", [i for i in range(len(blocks("yaml"))) if sectional(i)])
def test_every_config_snippet_passes_check_config(
    tmp_path: Path, index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each YAML block, merged into the minimal config (they show one section each; a section
    of named entries, like `upstreams`, adds to the minimal one's), is a file `bff
    check-config` accepts, with every key active; the files and variables it names exist."""
    snippet = yaml.safe_load(blocks("yaml")[index])
    data = yaml.safe_load(minimal_config())
    for key, value in snippet.items():
        named = key == "upstreams" and isinstance(value, dict)
        data[key] = {**data.get(key, {}), **value} if named else value
    for variable in re.findall(r"\$\{(\w+)\}", blocks("yaml")[index]):
        monkeypatch.setenv(variable, "set-by-the-test")
    for key_file in re.findall(r"private_key_file: ([\w/.-]+)", blocks("yaml")[index]):
        write_es256_key(tmp_path / key_file)
    write_tls_files(tmp_path, blocks("yaml")[index])
    path = tmp_path / "bff.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    settings = usable_settings(str(path))  # what check-config runs
    assert inactive_sections(settings) == []


def test_the_telemetry_example_passes_check_config() -> None:
    """The README sends a user to deploy/telemetry/ with `bff serve --config` on its file."""
    settings = usable_settings(str(ROOT / "deploy" / "telemetry" / "bff-telemetry.yaml"))
    assert settings.telemetry.exporter == "otlp_http"
    assert inactive_sections(settings) == []


def test_the_readme_cites_only_files_the_repository_has() -> None:
    for target in re.findall(r"\]\(([^)#:]+)\)", README):
        assert (ROOT / target).exists(), target
    assert "SPEC" not in README  # the specification is not part of the repository


def test_redis_url_is_documented_as_unset_by_default() -> None:
    reference = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    [row] = [line for line in reference.splitlines() if line.startswith("| `redis.url` |")]
    assert "*unset*" in row


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`bff demo` on a free port: the gateway the README's curl lines are written for."""
    stderr = tmp_path_factory.mktemp("readme") / "stderr"
    with running_bff("demo", "--port", "0", stderr=stderr) as child:
        lines = child.until(lambda line: "Ctrl+C" in line)
        base = next(w for w in " ".join(lines).split() if w.endswith("/graphql"))
        base = base.removesuffix("/graphql")
        wait_for(f"{base}/healthz", child.process)
        token = lines[next(i for i, x in enumerate(lines) if "token for user 1" in x) + 1]
        yield {"base": base, "admin": token.strip(), "stderr": stderr}


def login(base: str, username: str = "user2") -> dict[str, Any]:
    password = username.replace("user", "password")
    response = httpx.post(
        f"{base}/auth/token", json={"username": username, "password": password}, trust_env=False
    )
    assert response.status_code == 200
    pair: dict[str, Any] = response.json()
    return pair


def test_every_readme_curl_line_works_against_the_demo(demo: dict[str, Any]) -> None:
    base = demo["base"]
    commands = list(curl_commands("\n".join(blocks("sh"))))
    assert len(commands) >= 8
    for number, command in enumerate(commands, start=3):
        if "..." in command:  # the README's placeholders are tokens like these
            # a user of its own per line: the demo throttles logins per username (10 a minute)
            pair = login(base, f"user{number}")
            command = command.replace("bfr_...", pair["refresh_token"])
            command = command.replace("token=...", f"token={pair['access_token']}")
            command = command.replace("Bearer ...", f"Bearer {pair['access_token']}")
        response = run_curl(command, {"TOKEN": demo["admin"]}, base)
        assert response.status_code == 200, (command, response.text)
    # the lines above left catalog slow and orders failing: put them back
    for name in ("catalog", "orders", "users"):
        control = f"curl -s -X POST {base}/demo/services/{name}/0 -H 'Authorization: Bearer $TOKEN'"
        assert run_curl(control + " -d '{}'", {"TOKEN": demo["admin"]}, base).status_code == 200


def test_a_missing_scope_is_a_field_error_in_a_200(demo: dict[str, Any]) -> None:
    """As the README says: on GraphQL, FORBIDDEN on the field; the rest of the data is there."""
    customer = login(demo["base"])["access_token"]
    response = httpx.post(
        f"{demo['base']}/graphql",
        json={"query": "{ me { id } user(id: 1) { name email } }"},
        headers={"Authorization": f"Bearer {customer}"},
        trust_env=False,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"]["me"] == {"id": "2"}
    assert body["data"]["user"]["name"] and body["data"]["user"]["email"] is None
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["user", "email"], "FORBIDDEN")
    ]
    passthrough = httpx.get(
        f"{demo['base']}/api/orders/orders",
        headers={"Authorization": f"Bearer {customer}"},
        trust_env=False,
    )
    assert passthrough.status_code == 403


def test_the_access_log_line_is_the_one_the_readme_shows(demo: dict[str, Any]) -> None:
    [example] = blocks("json")
    shown = json.loads(example.replace("…", ""))
    httpx.get(f"{demo['base']}/healthz", trust_env=False)
    deadline = time.monotonic() + 10
    while True:
        lines = [x for x in demo["stderr"].read_text().splitlines() if x.startswith("{")]
        if any('"/healthz"' in x for x in lines):
            break
        assert time.monotonic() < deadline, demo["stderr"].read_text()
        time.sleep(0.05)
    written = [json.loads(line) for line in lines if '"method"' in line]
    assert written and all(set(record) == set(shown) for record in written), written[0]


def test_the_dashboard_takes_the_five_upstream_calls_the_readme_says(
    demo: dict[str, Any],
) -> None:
    [dashboard] = [block for block in blocks("graphql") if "query Dashboard" in block]
    deadline = time.monotonic() + 20
    for attempt in range(1000):  # until every instance the curl lines stopped is back in use
        request_id = f"readme-dashboard-{attempt}"
        response = httpx.post(
            f"{demo['base']}/graphql",
            json={"query": dashboard},
            headers={"Authorization": f"Bearer {demo['admin']}", "X-Request-Id": request_id},
            timeout=15,
            trust_env=False,
        )
        body = response.json()
        if "errors" not in body:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    assert len(body["data"]["orders"]["nodes"]) == 20
    while f'"{request_id}"' not in demo["stderr"].read_text():
        assert time.monotonic() < deadline + 10
        time.sleep(0.05)
    [line] = [x for x in demo["stderr"].read_text().splitlines() if f'"{request_id}"' in x]
    record = json.loads(line)
    assert record["operation"] == "Dashboard" and record["upstream_calls"] == 5


def test_the_code_first_service_is_the_file_the_tests_run() -> None:
    """README "Your own services": its one Python block is tests/graphs/shipping.py, which
    tests/test_graphs.py serves against a real shipping service."""
    (block,) = blocks("python")
    assert block == (ROOT / "tests" / "graphs" / "shipping.py").read_text(encoding="utf-8")


def test_the_openapi_source_example_runs_as_written(shop: RunningServices) -> None:
    """The "Your own services" config (its paths relative to the repository's top, where the
    README says to save it) over the sample services, and its query: 2 upstream calls."""
    [block] = [block for block in blocks("yaml") if block.startswith("graph: none")]
    data = yaml.safe_load(block)
    settings = Settings.model_validate(data, context={"base_dir": ROOT})
    assert [s.openapi for s in settings.sources] == [
        ROOT / "bench/openapi/shop/orders.yaml",
        ROOT / "bench/openapi/shop/users.yaml",
    ]
    for name, upstream in data["upstreams"].items():  # the ports `bff services` picked here
        upstream["instances"] = [{"url": url} for url in shop.urls[name]]
    data["rate_limits"] = {"enabled": False}
    [query] = [block for block in blocks("graphql") if "orders(limit" in block]
    calls = UpstreamCalls(shop)
    with running_gateway(Settings.model_validate(data, context={"base_dir": ROOT})) as url:
        client = GraphQLClient(url)
        calls.reset()
        orders = client.data(query)["orders"]["items"]
        client.close()
    assert len(orders) == 3 and all(order["user"]["name"] for order in orders)
    assert calls.by_service() == {"orders": 1, "users": 1}
    calls.close()
