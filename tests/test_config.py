"""Config: every error names its key and says why; secrets never render; docs match the models."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from bff.config import (
    NOT_YET_BUILT,
    ConfigError,
    JwtConfig,
    Settings,
    inactive_sections,
    load_settings,
    parse_duration,
    parse_size,
    settings_from_dict,
)
from bff.config.reference import render_reference
from bff.config.units import format_duration, format_size

SECRET = "s3cr3t-planted-value-0123456789abcdef"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings_from_dict(data)
    return info.value.errors


def write(tmp_path: Path, text: str, name: str = "bff.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def upstream(*urls: str, **extra: Any) -> dict[str, Any]:
    return {"instances": [{"url": url} for url in urls], **extra}


# --- units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("2s", 2.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("7d", 604800.0),
        ("1.5s", 1.5),
        (" 10 s ", 10.0),
        ("30", 30.0),
        ("0.5", 0.5),
        (3, 3.0),
        (0.25, 0.25),
        (0, 0.0),
    ],
)
def test_parse_duration(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "fast", "2 sec", "5M", "1w", "s", "1.2.3s", True, None, []])
def test_parse_duration_rejects_garbage(text: Any) -> None:
    with pytest.raises(ValueError, match=r"^not a duration; use a number of seconds"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["-1s", -1, -0.5, "-250ms"])
def test_parse_duration_rejects_negative(text: Any) -> None:
    with pytest.raises(ValueError, match=r"^must not be negative"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1MB", 1_000_000),
        ("1MiB", 1_048_576),
        ("1KB", 1000),
        ("1KiB", 1024),
        ("2GB", 2_000_000_000),
        ("1GiB", 1_073_741_824),
        ("512B", 512),
        ("1.5KiB", 1536),
        ("64kb", 64_000),
        ("4096", 4096),
        (4096, 4096),
    ],
)
def test_parse_size(text: Any, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1XB", "not a size"),
        ("big", "not a size"),
        (True, "not a size"),
        ("-1MB", "must not be negative"),
        ("1.5B", "not a whole number of bytes"),
    ],
)
def test_parse_size_rejects(text: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=f"^{reason}"):
        parse_size(text)


def test_formatting_round_trips() -> None:
    assert [format_duration(s) for s in (0.25, 2, 900, 604800, 90, 1.5)] == [
        "250ms",
        "2s",
        "15m",
        "7d",
        "90s",
        "1500ms",
    ]
    assert [format_size(n) for n in (1_000_000, 1_048_576, 1536, 7)] == [
        "1MB",
        "1MiB",
        "1536B",
        "7B",
    ]


# --- defaults and immutability -----------------------------------------------------------


def test_defaults() -> None:
    settings = load_settings(None, env={})
    assert settings == Settings()
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8000
    assert settings.server.max_body == 1_000_000
    assert settings.server.trusted_proxies == []
    assert settings.upstreams == {} and settings.routes == []
    assert settings.auth.access_ttl == 900.0 and settings.auth.refresh_ttl == 604800.0
    assert settings.auth.jwt.algorithm == "HS256" and settings.auth.jwt.secret is None
    assert settings.rate_limits.default.requests == 600
    assert settings.rate_limits.default.per == 60.0
    assert settings.telemetry.exporter == "none"
    assert settings.logging.level == "info"


def test_upstream_defaults_and_units() -> None:
    settings = settings_from_dict(
        {"upstreams": {"users": upstream("http://127.0.0.1:9101/", timeout={"total": "3s"})}}
    )
    users = settings.upstreams["users"]
    assert users.instances[0].url == "http://127.0.0.1:9101"
    assert (users.timeout.connect, users.timeout.total) == (0.5, 3.0)
    assert users.retries.attempts == 2
    assert (users.health_check.interval, users.health_check.timeout) == (2.0, 0.5)
    assert users.outlier.ejection == 30.0
    assert users.balancer == "round_robin" and users.required is True


def test_settings_are_frozen() -> None:
    settings = settings_from_dict({"upstreams": {"users": upstream("http://a:1")}})
    with pytest.raises(ValidationError, match="frozen"):
        settings.server.port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        settings.upstreams["users"].instances[0].url = "http://b"  # type: ignore[misc]


# --- error paths and reasons -------------------------------------------------------------


def test_bad_url_names_the_instance() -> None:
    errors = errors_of({"upstreams": {"users": upstream("http://127.0.0.1:9101", "ftp//x")}})
    assert errors == [
        "upstreams.users.instances[1].url: not a URL (got 'ftp//x'); use http:// or https:// "
        "and a host, e.g. http://127.0.0.1:9101"
    ]


def test_unknown_top_level_key() -> None:
    assert errors_of({"serverr": {}}) == ["serverr: unknown key; did you mean 'server'?"]


def test_unknown_nested_key() -> None:
    errors = errors_of({"upstreams": {"users": upstream("http://a:1", timeout={"conect": 1})}})
    assert errors == ["upstreams.users.timeout.conect: unknown key; did you mean 'connect'?"]


def test_unknown_key_without_close_match_lists_the_keys() -> None:
    assert errors_of({"limits": {"zzz": 1}}) == [
        "limits.zzz: unknown key; expected one of: enabled, max_depth, max_cost, max_aliases, "
        "max_tokens, max_fields, max_variables, default_list_size"
    ]


def test_bad_and_negative_durations() -> None:
    errors = errors_of({"auth": {"access_ttl": "soon", "refresh_ttl": "-1d"}})
    hint = "use a number of seconds or a number with a unit: 250ms, 2s, 5m, 1h, 7d"
    assert errors == [
        f"auth.access_ttl: not a duration (got 'soon'); {hint}",
        f"auth.refresh_ttl: must not be negative (got '-1d'); {hint}",
    ]


def test_zero_duration_and_connect_beyond_total() -> None:
    errors = errors_of({"rate_limits": {"default": {"per": 0}}})
    assert errors == ["rate_limits.default.per: must be greater than 0 (got 0)"]
    errors = errors_of({"upstreams": {"u": upstream("http://a", timeout={"connect": "3s"})}})
    assert errors == [
        "upstreams.u.timeout.connect: must not exceed total (2s) (got '3s'); "
        "the total budget covers connecting"
    ]


def test_bad_size() -> None:
    [error] = errors_of({"server": {"max_body": "1XB"}})
    assert error.startswith("server.max_body: not a size (got '1XB'); use a number of bytes")


def test_port_out_of_range() -> None:
    assert errors_of({"server": {"port": 70000}}) == [
        "server.port: must be at most 65535 (got 70000)"
    ]
    assert errors_of({"server": {"port": "http"}}) == ["server.port: not an integer (got 'http')"]


def test_route_naming_unknown_upstream() -> None:
    errors = errors_of(
        {
            "upstreams": {"users": upstream("http://a:1"), "catalog": upstream("http://b:1")},
            "routes": [
                {"name": "users", "upstream": "users"},
                {"name": "billing", "upstream": "billing"},
            ],
        }
    )
    assert errors == [
        "routes[1].upstream: no upstream of that name (got 'billing'); "
        "use a key of upstreams (catalog, users)"
    ]


def test_route_shapes() -> None:
    settings = settings_from_dict(
        {
            "upstreams": {"orders": upstream("http://a:1")},
            "routes": [
                {"name": "orders", "upstream": "orders", "methods": ["get", "POST"]},
                {"name": "o2", "upstream": "orders", "auth": {"scopes": ["orders:read"]}},
                {"name": "o3", "upstream": "orders", "auth": "public"},
            ],
        }
    )
    assert settings.routes[0].methods == ["GET", "POST"]
    assert settings.routes[0].auth == "authenticated"
    assert settings.routes[1].auth.scopes == ["orders:read"]  # type: ignore[union-attr]
    assert settings.routes[2].auth == "public"
    errors = errors_of(
        {
            "upstreams": {"orders": upstream("http://a:1")},
            "routes": [
                {"name": "Orders!", "upstream": "orders", "auth": "anyone"},
                {"name": "x", "upstream": "orders", "auth": {"scope": ["a"]}, "methods": ["GRAB"]},
            ],
        }
    )
    assert errors[0].startswith("routes[0].name: not a valid name (got 'Orders!')")
    assert errors[1:] == [
        "routes[0].auth: must be 'public' or 'authenticated' (got 'anyone')",
        "routes[1].methods[0]: not an HTTP method (got 'GRAB'); "
        "use one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        "routes[1].auth.scopes: required key is missing",
        "routes[1].auth.scope: unknown key; did you mean 'scopes'?",
    ]


def test_route_path_options() -> None:
    """`strip_prefix` defaults to true; a `rewrite` prefix is stored without its trailing slash."""
    settings = settings_from_dict(
        {
            "upstreams": {"catalog": upstream("http://a:1")},
            "routes": [
                {"name": "catalog", "upstream": "catalog"},
                {"name": "full", "upstream": "catalog", "strip_prefix": False},
                {"name": "v2", "upstream": "catalog", "rewrite": "/v2/catalog/"},
                {"name": "root", "upstream": "catalog", "rewrite": "/"},
                {"name": "odd", "upstream": "catalog", "rewrite": "/a-b_c~d/x;v=1/@me:!$&'()*+,="},
            ],
        }
    )
    assert [(r.strip_prefix, r.rewrite) for r in settings.routes] == [
        (True, None),
        (False, None),
        (True, "/v2/catalog"),
        (True, "/"),
        (True, "/a-b_c~d/x;v=1/@me:!$&'()*+,="),
    ]


@pytest.mark.parametrize(
    ("rewrite", "error"),
    [
        (
            "v2/catalog",
            "must be an absolute path (got 'v2/catalog'); start it with '/', e.g. /v2/catalog",
        ),
        ("", "must be an absolute path (got ''); start it with '/', e.g. /v2/catalog"),
        (
            "/v2?x=1",
            "a path prefix cannot have a query or fragment (got '/v2?x=1'); "
            "remove the part after ? or #",
        ),
        (
            "/v2#top",
            "a path prefix cannot have a query or fragment (got '/v2#top'); "
            "remove the part after ? or #",
        ),
        (
            "/v2\\catalog",
            "must not contain a backslash (got '/v2\\\\catalog'); separate segments with '/'",
        ),
        (
            "/v2%2Fcatalog",
            "must not contain percent-escapes (got '/v2%2Fcatalog'); "
            "write the path in plain characters",
        ),
        (
            "/v2//catalog",
            "must not have an empty segment (//) (got '/v2//catalog'); use single slashes",
        ),
        (
            "//evil.example",
            "must not have an empty segment (//) (got '//evil.example'); use single slashes",
        ),
        (
            "/v2/../admin",
            "must not contain '..' or a '.' segment (got '/v2/../admin'); write the path it means",
        ),
        (
            "/v2/..",
            "must not contain '..' or a '.' segment (got '/v2/..'); write the path it means",
        ),
        ("/./v2", "must not contain '..' or a '.' segment (got '/./v2'); write the path it means"),
        (
            "/v2 catalog",
            "has a character a path cannot carry unescaped (got '/v2 catalog'); "
            "use letters, digits and - . _ ~ ! $ & ' ( ) * + , ; = : @",
        ),
        (
            "/katalog/ü",
            "has a character a path cannot carry unescaped (got '/katalog/ü'); "
            "use letters, digits and - . _ ~ ! $ & ' ( ) * + , ; = : @",
        ),
    ],
)
def test_a_bad_rewrite_names_the_route_and_the_reason(rewrite: str, error: str) -> None:
    errors = errors_of(
        {
            "upstreams": {"catalog": upstream("http://a:1")},
            "routes": [
                {"name": "catalog", "upstream": "catalog"},
                {"name": "v2", "upstream": "catalog", "rewrite": rewrite},
            ],
        }
    )
    assert errors == [f"routes[1].rewrite: {error}"]


def test_rewrite_with_strip_prefix_false_is_an_error() -> None:
    errors = errors_of(
        {
            "upstreams": {"catalog": upstream("http://a:1")},
            "routes": [
                {"name": "v2", "upstream": "catalog", "rewrite": "/v2", "strip_prefix": False},
                {"name": "v3", "upstream": "catalog", "rewrite": "/v3", "strip_prefix": True},
            ],
        }
    )
    assert errors == [
        "routes[0].rewrite: cannot be combined with strip_prefix: false (the rewrite replaces "
        "the stripped /api/{name}); remove one of the two"
    ]
    [error] = errors_of(
        {
            "upstreams": {"catalog": upstream("http://a:1")},
            "routes": [{"name": "v2", "upstream": "catalog", "strip_prefix": "sometimes"}],
        }
    )
    assert error.startswith("routes[0].strip_prefix: ")


def test_trusted_proxies_are_networks() -> None:
    settings = settings_from_dict(
        {"server": {"trusted_proxies": ["10.0.0.1", "10.0.0.0/8", "::1"]}}
    )
    assert settings.server.trusted_proxies == ["10.0.0.1", "10.0.0.0/8", "::1"]
    [error] = errors_of({"server": {"trusted_proxies": ["10.0.0.1", "proxy.local"]}})
    assert error.startswith("server.trusted_proxies[1]: not an IP address or CIDR network")


def test_many_problems_are_reported_together() -> None:
    errors = errors_of({"server": {"port": 0, "workers": 0}, "logging": {"format": "xml"}})
    assert errors == [
        "server.port: must be at least 1 (got 0)",
        "server.workers: must be at least 1 (got 0)",
        "logging.format: must be 'json' or 'text' (got 'xml')",
    ]
    assert str(ConfigError(errors)) == "\n".join(errors)


def test_wrong_section_types() -> None:
    assert errors_of({"server": [], "upstreams": {"u": {}}}) == [
        "server: must be a mapping of keys (got a list)",
        "upstreams.u.instances: required key is missing",
    ]


# --- JWT keys ----------------------------------------------------------------------------


def test_hs256_without_secret() -> None:
    assert errors_of({"auth": {"jwt": {"algorithm": "HS256"}}}) == [
        "auth.jwt.secret: required when auth.jwt.algorithm is HS256; set it, preferably "
        "through the BFF_AUTH__JWT__SECRET environment variable"
    ]
    assert errors_of({"auth": {"jwt": {"secret": ""}}}) == ["auth.jwt.secret: must not be empty"]


@pytest.mark.parametrize("secret", ["x", "s3cr3t-but-only-31-bytes-long-x", "é" * 15])
def test_hs256_secret_shorter_than_32_bytes_is_refused(secret: str) -> None:
    [error] = errors_of({"auth": {"jwt": {"algorithm": "HS256", "secret": secret}}})
    size = len(secret.encode())
    unit = "byte" if size == 1 else "bytes"
    assert error.startswith(f"auth.jwt.secret: too short ({size} {unit}); HS256 needs at least 32")
    assert secret not in error


def test_hs256_secret_of_32_bytes_is_accepted() -> None:
    assert settings_from_dict({"auth": {"jwt": {"secret": "k" * 32}}}).auth.jwt.secret is not None


def test_hs256_keys() -> None:
    jwt = settings_from_dict({"auth": {"jwt": {"secret": SECRET}}}).auth.jwt
    assert jwt.verification_key() == SECRET
    assert jwt.signing_key() == SECRET


def test_rs256_with_missing_key_file(tmp_path: Path) -> None:
    config = write(tmp_path, "auth: {jwt: {algorithm: RS256, private_key_file: keys/nope.pem}}")
    with pytest.raises(ConfigError) as info:
        load_settings(config, env={})
    missing = tmp_path / "keys" / "nope.pem"
    assert info.value.errors == [f"auth.jwt.private_key_file: file not found (got '{missing}')"]
    assert errors_of({"auth": {"jwt": {"algorithm": "ES256"}}}) == [
        "auth.jwt.private_key_file: required when algorithm is ES256; set private_key_file "
        "(or public_key_file alone to verify tokens without issuing them)"
    ]


def _pem_files(tmp_path: Path, key: Any) -> tuple[Path, Path]:
    private = tmp_path / "private.pem"
    public = tmp_path / "public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_rs256_verification_key_is_derived_from_the_private_key(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = _pem_files(tmp_path, key)
    config = write(tmp_path, "auth: {jwt: {algorithm: RS256, private_key_file: private.pem}}")
    jwt = load_settings(config, env={}).auth.jwt
    assert jwt.private_key_file == private
    assert jwt.verification_key() == public.read_bytes()
    signing = jwt.signing_key()
    assert isinstance(signing, bytes) and signing.startswith(b"-----BEGIN PRIVATE KEY-----")

    verify_only = JwtConfig(algorithm="RS256", public_key_file=public)
    assert verify_only.verification_key() == public.read_bytes()
    assert verify_only.signing_key() is None


def test_key_kind_must_fit_the_algorithm(tmp_path: Path) -> None:
    private, _ = _pem_files(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    [error] = errors_of({"auth": {"jwt": {"algorithm": "RS256", "private_key_file": str(private)}}})
    assert (
        error
        == f"auth.jwt.private_key_file: wrong kind of key (got '{private}'); RS256 needs an RSA key"
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    [error] = errors_of({"auth": {"jwt": {"algorithm": "ES256", "public_key_file": str(garbage)}}})
    assert error == f"auth.jwt.public_key_file: not a PEM public key (got '{garbage}')"
    settings = settings_from_dict(
        {"auth": {"jwt": {"algorithm": "ES256", "private_key_file": str(private)}}}
    )
    assert settings.auth.jwt.signing_key() is not None


# --- secrets never render ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"auth": {"jwt": {"algorithm": "RS256", "secret": SECRET}}},
        {"auth": {"jwt": {"secret": SECRET, "algorithm": "HS999"}}},
        {"auth": {"jwt": {"secrett": SECRET}}},
        {"auth": {"jwt": {"secret": [SECRET]}}},
        {"auth": {"jwt": {"secret": SECRET}}, "server": {"port": "x"}},
        {"redis": {"url": f"http://user:{SECRET}@redis"}},
    ],
)
def test_secret_never_appears_in_errors(data: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict(data)
    assert info.value.errors
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_secret_never_appears_in_settings_repr() -> None:
    settings = settings_from_dict(
        {"auth": {"jwt": {"secret": SECRET}}, "redis": {"url": f"redis://:{SECRET}@r:6379/0"}}
    )
    assert settings.auth.jwt.secret is not None
    assert settings.auth.jwt.secret.get_secret_value() == SECRET
    assert settings.redis.url == f"redis://:{SECRET}@r:6379/0"
    for text in (repr(settings), str(settings), repr(settings.auth), str(settings.redis)):
        assert SECRET not in text


def test_secret_never_appears_in_yaml_errors(tmp_path: Path) -> None:
    config = write(tmp_path, f"auth:\n  jwt:\n    secret: {SECRET}: [\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config, env={})
    assert SECRET not in str(info.value)


# --- files -------------------------------------------------------------------------------


def test_load_from_file(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
        server: {port: 9000, max_body: 2MiB, zone: dc1}
        upstreams:
          users:
            instances:
              - {url: "http://127.0.0.1:9101", weight: 1, zone: dc1}
              - {url: "http://127.0.0.1:9102", weight: 3, zone: dc2}
            timeout: {connect: 250ms, total: 5s}
        """,
    )
    settings = load_settings(config, env={})
    assert settings.server.port == 9000 and settings.server.max_body == 2 * 1024 * 1024
    assert [i.weight for i in settings.upstreams["users"].instances] == [1, 3]
    assert settings.upstreams["users"].timeout.connect == 0.25


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), env={}) == Settings()


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    config = write(tmp_path, "server:\n  port: 8000\n   host: x\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config, env={})
    assert info.value.errors == [
        f"{config}: YAML syntax error at line 3, column 8: mapping values are not allowed here"
    ]
    assert info.value.source == str(config)


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    config = write(tmp_path, "server:\n  port: 1\n  port: 2\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config, env={})
    assert info.value.errors == [
        f"{config}: YAML error at line 3, column 3: duplicate key 'port' (first on line 2)"
    ]


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(missing, env={})
    assert info.value.errors == [f"{missing}: file not found"]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "- server\n"), env={})
    assert info.value.errors[0].endswith(
        ": the top level must be a mapping of sections (server, upstreams, ...), not a list"
    )


# --- environment overrides ---------------------------------------------------------------


def test_env_overrides(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
        server: {port: 8000, graphiql: true}
        upstreams: {users: {instances: [{url: "http://127.0.0.1:9101"}]}}
        """,
    )
    env = {
        "BFF_SERVER__PORT": "9000",
        "BFF_SERVER__GRAPHIQL": "false",
        "BFF_SERVER__TRUSTED_PROXIES": "[10.0.0.1, 10.1.0.0/16]",
        "BFF_AUTH__JWT__SECRET": "0123456789" * 4,
        "BFF_UPSTREAMS__USERS__INSTANCES__0__WEIGHT": "3",
        "BFF_UPSTREAMS__USERS__TIMEOUT__TOTAL": "5s",
        "BFF_CONFIG": "elsewhere.yaml",
        "PATH": "/bin",
    }
    settings = load_settings(config, env=env)
    assert settings.server.port == 9000
    assert settings.server.graphiql is False
    assert settings.server.trusted_proxies == ["10.0.0.1", "10.1.0.0/16"]
    assert settings.auth.jwt.secret is not None
    assert settings.auth.jwt.secret.get_secret_value() == "0123456789" * 4  # text stays text
    assert settings.upstreams["users"].instances[0].weight == 3
    assert settings.upstreams["users"].timeout.total == 5.0


def test_env_can_add_a_whole_section() -> None:
    env = {
        "BFF_UPSTREAMS__USERS__INSTANCES": "[{url: 'http://a:1'}]",
        "BFF_LOGGING__LEVEL": "DEBUG",
    }
    settings = load_settings(None, env=env)
    assert settings.upstreams["users"].instances[0].url == "http://a:1"
    assert settings.logging.level == "debug"


def test_env_unknown_key_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"BFF_SERVER__PROT": "1", "BFF_NOPE": "1"})
    assert info.value.errors == [
        "BFF_NOPE: unknown key 'nope' in the top level; expected one of: graph, server, upstreams, "
        "routes, auth, redis, memcached, limits, rate_limits, persisted_queries, telemetry, "
        "logging, sources, links, cache",
        "BFF_SERVER__PROT: unknown key 'prot' in server; did you mean 'port'?",
    ]


def test_env_bad_values_name_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"BFF_SERVER__PORT": "abc", "BFF_SERVER__PORT__X": "1"})
    assert info.value.errors == [
        "BFF_SERVER__PORT__X: server.port is a single value; it has no key 'x'"
    ]
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"BFF_SERVER__PORT": "abc", "BFF_AUTH__JWT__SECRET": ""})
    assert info.value.errors == [
        "server.port: not an integer (got 'abc') (set by BFF_SERVER__PORT)",
        "auth.jwt.secret: must not be empty (set by BFF_AUTH__JWT__SECRET)",
    ]
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"BFF_UPSTREAMS__USERS__INSTANCES__0__URL": "http://a"})
    assert info.value.errors == [
        "BFF_UPSTREAMS__USERS__INSTANCES__0__URL: upstreams.users.instances has no item [0]; "
        "an override can only change an item the file already has (0 there)"
    ]


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BFF_SERVER__PORT", "9123")
    assert load_settings().server.port == 9123


# --- features not built yet --------------------------------------------------------------


def test_inactive_sections_warn_for_every_key_the_user_wrote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The mechanism, on a list of its own: features land and leave NOT_YET_BUILT."""
    monkeypatch.setattr(
        "bff.config.loader.NOT_YET_BUILT",
        (
            ("routes", "passthrough is off"),
            ("upstreams.*.balancer", "balancing is off"),
            ("upstreams.*.instances.*.zone", "zones are off"),
            ("limits", "limits are off"),
        ),
    )
    assert inactive_sections(Settings()) == []
    written_as_defaults = settings_from_dict(
        {
            "upstreams": {"u": upstream("http://a", balancer="round_robin")},
            "limits": {"max_depth": 10},
        }
    )
    assert inactive_sections(written_as_defaults) == [
        "upstreams.u.balancer: balancing is off; this setting has no effect",
        "limits: limits are off; this section has no effect",
    ]
    settings = settings_from_dict(
        {
            "upstreams": {
                "u": {
                    "instances": [{"url": "http://a"}, {"url": "http://b", "zone": "dc2"}],
                    "retries": {"attempts": 3},
                }
            },
            "routes": [{"name": "u", "upstream": "u"}],
        }
    )
    assert inactive_sections(settings) == [
        "routes: passthrough is off; this section has no effect",
        "upstreams.u.instances[1].zone: zones are off; this setting has no effect",
    ]


def test_active_keys_do_not_warn() -> None:
    """Keys that work today: the readiness probe's path and timeout, timeouts, the server."""
    settings = settings_from_dict(
        {
            "server": {"host": "127.0.0.1", "port": 8001, "graphiql": False, "workers": 2},
            "upstreams": {
                "u": {
                    "instances": [{"url": "http://a"}],
                    "timeout": {"connect": "1s", "total": "3s"},
                    "health_check": {"path": "/up", "timeout": "1s"},
                    "max_connections": 10,
                    "required": False,
                }
            },
            "auth": {"issuer": "me", "audience": "you", "jwt": {"secret": "k" * 32}},
            "logging": {"level": "debug"},
        }
    )
    assert inactive_sections(settings) == []


def test_the_reference_says_not_active_yet_from_the_one_list() -> None:
    """docs/config.md's notes are generated from NOT_YET_BUILT: each entry shows up there."""
    text = render_reference()
    for pattern, message in NOT_YET_BUILT:
        note = f"*Not active yet: {message}.*"
        if "." not in pattern:
            assert f"## `{pattern}`" in text
            section = text.split(f"## `{pattern}`")[1].split("\n|")[0]
            assert note in section, pattern
        else:
            key = pattern.replace(".*.instances.*.", ".<name>.instances[].").replace(
                ".*.", ".<name>."
            )
            row = next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))
            assert row.endswith(f"{note} |"), row
    active = next(line for line in text.splitlines() if line.startswith("| `server.port` |"))
    assert "Not active yet" not in active


def test_not_yet_built_paths_exist() -> None:
    """Each entry names real keys, so deleting or renaming a key cannot orphan one."""
    from bff.config import paths

    for pattern, _ in NOT_YET_BUILT:
        annotation: Any = Settings
        for part in pattern.split("."):
            keys: list[str | int] = ["any-name", 0] if part == "*" else [part]
            annotation = next(
                (found for key in keys if (found := paths.child(annotation, key)) is not None),
                None,
            )
            assert annotation is not None, pattern


# --- generated reference -----------------------------------------------------------------


def test_docs_match_the_models() -> None:
    assert DOCS.read_text(encoding="utf-8") == render_reference(), (
        "docs/config.md is stale: run python -m bff.config.reference docs/config.md"
    )


def test_reference_covers_every_key() -> None:
    text = render_reference()
    for path in (
        "`server.max_body` | size",
        "`upstreams.<name>.instances[].url` | URL | *required*",
        "`upstreams.<name>.timeout.connect` | duration, > 0 | `500ms`",
        "`routes[].auth.scopes`",
        "`auth.refresh_ttl` | duration, > 0 | `7d`",
        "`auth.jwt.secret` | string (secret) | *unset*",
        "`logging.format`",
    ):
        assert path in text
