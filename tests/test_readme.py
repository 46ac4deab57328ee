"""The README's examples run as written: its config, its commands, its ports.

A newcomer copies these first; each check here is one thing that would otherwise fail for them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from bff.cli import build_parser
from bff.config import Settings, inactive_sections, settings_from_dict
from bff.config.loader import load_settings
from services import SERVICE_NAMES, RunningServices
from services.cli import DEFAULT_PORT_BASE, PORTS_PER_SERVICE
from tests.support import GraphQLClient, UpstreamCalls, running_gateway

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
