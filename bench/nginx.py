"""nginx as a reverse proxy in front of one service: the floor of REST passthrough.

What it does is what the gateway's passthrough does at the least: `/api/catalog/{tail}` to
`{tail}` on the upstream, over kept-alive HTTP/1.1 connections, one worker process, an access
line per request. Everything it needs lives in a temporary directory (its config, pid file,
logs and temp paths, `-p <dir> -c <file>`, `daemon off`): no system config is read or touched.
nginx is a bench tool, not a dependency: `nginx_path()` is None when it is not installed, and
the bench then says so and leaves its row out.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench.procs import Children, Pinning, free_port
from bench.stack import START_TIMEOUT, Server

_CONFIG = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{
    worker_connections 1024;
}}

http {{
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format line '$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent '
                    '$request_time $upstream_response_time';
    access_log {dir}/access.log line;
    keepalive_requests 1000000;

    upstream {name} {{
        server {upstream};
        keepalive 64;
    }}

    server {{
        listen 127.0.0.1:{port};
        location /api/{name}/ {{
            proxy_pass http://{name}/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""


def nginx_path() -> str | None:
    """The nginx program on PATH or in /usr/sbin (Debian's package puts it there), or None."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def write_config(directory: Path, name: str, upstream_url: str, port: int) -> Path:
    """The config of a proxy from `127.0.0.1:port/api/{name}/` to `upstream_url`."""
    upstream = upstream_url.removeprefix("http://").rstrip("/")
    # As root, the master would switch its worker to `nobody`, which may not write here.
    user = f"user {_user_name()};" if os.geteuid() == 0 else ""
    text = _CONFIG.format(dir=directory, user=user, name=name, upstream=upstream, port=port)
    path = directory / "nginx.conf"
    path.write_text(text)
    return path


def _user_name() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def start_nginx(
    children: Children, pinning: Pinning, directory: Path, name: str, upstream_url: str
) -> Server:
    """nginx (master and its one worker) pinned to the target core, once it proxies `/`."""
    program = nginx_path()
    if program is None:
        raise RuntimeError("nginx is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = write_config(directory, name, upstream_url, port)
    argv = [*pinning.prefix(pinning.target_core), program, "-p", str(directory), "-c", str(config)]
    child = children.start("nginx", argv)
    server = Server(child, f"http://127.0.0.1:{port}")
    child.wait_http_ok(f"{server.url}/api/{name}/_stats", START_TIMEOUT)
    return server
