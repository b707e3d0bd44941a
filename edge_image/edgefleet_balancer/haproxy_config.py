"""The HAProxy configuration of the balancer's data path, rendered as text from the balancer's settings.

A pure function: the same settings give a byte-identical file. Membership is *not* in the file: the backend
has ``slots`` empty server slots (``server-template``), and the control plane fills and empties them through
the runtime API (``set server ... addr``/``state``), so a membership change never reloads HAProxy and never
drops a connection.

What each part is for (HAProxy 2.6 configuration manual):

- ``balance uri whole path-only`` hashes the request target's path and query exactly as received
  (``balance uri path-only`` stops at ``?`` for ``hashing.key: path``); ``hash-type consistent`` puts
  ``weight``-many points per server on a ring, so adding an edge to n moves about 1/(n+1) of the keys;
  ``hash-balance-factor`` is the bounded-load factor c in percent: no server takes more than c times the
  mean of the requests in flight, a hot key spills to the next server on the ring.
- ``retry-on`` + ``retries 1`` + ``option redispatch 1``: a request that failed to connect, got no answer or
  timed out waiting for the answer is tried once on another edge; ``disable-l7-retry`` limits the retries
  after the request was sent to GET and HEAD (the predefined ACL ``METH_GET`` matches both), so a POST
  that may have reached an edge is never sent twice (a POST whose connection was refused never reached
  anyone, and may go to the next edge).
- ``option http-buffer-request`` is deliberately absent: request bodies stream to the edge (a 128 MB upload
  is never held in memory). Only a request with ``Expect: 100-continue`` waits for its body
  (``wait-for-body``, at most 16 KB or 1 s): that makes HAProxy answer "100 Continue" itself and drop the
  header, so a client waiting for it never stalls on an edge that does not send it.
- Timeouts: ``http-request`` bounds how long a client may take to send a request head (idle and
  slow-header sockets are closed, so a flood of them cannot hold every slot), ``http-keep-alive`` how long
  an idle keep-alive connection is kept, ``client``/``server`` are *inactivity* timeouts, so a slow client
  downloading 20 MB is never cut off while it keeps reading.
- HAProxy never normalises the target (no ``normalize-uri`` rules): ``%3F``, ``%23`` and ``%2e%2e`` reach
  the edge as the client sent them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BACKEND = "edges"
SLOT_PREFIX = "slot"


@dataclass(frozen=True)
class HAProxyLimits:
    """Limits and timeouts of the data path, in one place (seconds unless named otherwise)."""

    max_connections: int = 4096
    connect_timeout: float = 2.0
    request_head_timeout: float = 10.0
    keep_alive_timeout: float = 10.0
    client_timeout: float = 30.0
    server_timeout: float = 30.0
    queue_timeout: float = 5.0
    check_interval: float = 2.0
    check_timeout: float = 4.0
    falls: int = 3
    """Failed health checks before an edge is taken out. Tolerant on purpose: on a saturated node an edge's
    /healthz answers slowly while its data port still serves, and taking every edge out at once answers 503
    ("no server is available") to everyone; a dead edge costs nothing meanwhile, because its refused connections
    are retried on the next owner (``retry-on conn-failure``)."""
    rises: int = 1
    """Passed health checks before it is taken back."""


@dataclass(frozen=True)
class HAProxyConfig:
    listen: tuple[str, int]
    """The data port, where clients connect."""
    metrics_socket: Path
    """Unix socket of HAProxy's Prometheus exporter (the agent serves it on its token-protected admin port)."""
    socket: Path
    """The runtime API (stats socket, admin level), for the control plane only."""
    edge_names_map: Path
    """HAProxy map from slot name to edge name, filled through the runtime API, for ``X-Edge``."""
    hash_key: str = "pathAndQuery"
    load_factor: float = 1.25
    x_edge: bool = True
    slots: int = 64
    threads: int = 0
    """0: HAProxy's default (one per CPU it may use)."""
    limits: HAProxyLimits = HAProxyLimits()
    health_checks: bool = True
    """Off only in tests whose edges are not reachable (nothing may be sent to them)."""


def slot_name(index: int) -> str:
    """Slots are numbered from 1, as ``server-template`` names them."""
    return f"{SLOT_PREFIX}{index}"


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def balance_line(hash_key: str) -> str:
    if hash_key == "pathAndQuery":
        return "balance uri whole path-only"
    if hash_key == "path":
        return "balance uri path-only"
    raise ValueError(f"unknown hash key {hash_key!r} (pathAndQuery or path)")


def balance_factor(load_factor: float) -> int:
    """``hash-balance-factor`` is c in percent and must be above 100 to bound anything (0 disables it)."""
    if load_factor < 1.0:
        raise ValueError(f"load factor {load_factor} is below 1")
    return max(101, round(load_factor * 100))


def render(config: HAProxyConfig) -> str:
    limits = config.limits
    lines = [
        "# Rendered by edgefleet balancer; membership lives in the runtime API, not in this file.",
        # Tuning is HAProxy's defaults on purpose (tune.bufsize 16k, epoll without busy-polling, profiling.tasks
        # auto, keep-alive on both sides): bench/balancer_tuning.py measured each alternative side by side and none
        # cut CPU per request beyond its noise floor; a bigger buffer, a second thread on a shared core,
        # busy-polling and http-server-close cost more. HAProxy already makes the fewest system calls a proxied
        # request can take (one read and one write per side), which is most of its CPU (bench/README.md).
        "global",
        f"    maxconn {limits.max_connections}",
        *([f"    nbthread {config.threads}"] if config.threads else []),
        f"    stats socket {config.socket} mode 600 level admin",
        "    stats timeout 30s",
        "    log stderr format short local0 notice",
        "    quiet",
        "    hard-stop-after 30s",
        "",
        "defaults",
        "    mode http",
        f"    maxconn {limits.max_connections}",
        "    log global",
        "    option httplog",
        "    option dontlog-normal",
        "    option abortonclose",
        f"    timeout connect {_ms(limits.connect_timeout)}",
        f"    timeout http-request {_ms(limits.request_head_timeout)}",
        f"    timeout http-keep-alive {_ms(limits.keep_alive_timeout)}",
        f"    timeout client {_ms(limits.client_timeout)}",
        f"    timeout server {_ms(limits.server_timeout)}",
        f"    timeout queue {_ms(limits.queue_timeout)}",
        f"    timeout check {_ms(limits.check_timeout)}",
        "",
        "frontend data",
        f"    bind {_address(*config.listen)}",
        "    option forwardfor",
        "    http-request wait-for-body time 1s at-least 16k if { req.hdr(expect) -i 100-continue }",
        f"    default_backend {BACKEND}",
        "",
        "frontend metrics",
        f"    bind unix@{config.metrics_socket} mode 600",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    http-request return status 404",
        "",
        f"backend {BACKEND}",
        f"    {balance_line(config.hash_key)}",
        "    hash-type consistent",
        f"    hash-balance-factor {balance_factor(config.load_factor)}",
        "    retries 1",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response response-timeout",
        "    http-request disable-l7-retry unless METH_GET",  # METH_GET is GET or HEAD
        "    http-reuse always",
        "    option httpchk GET /healthz",
        "    http-check expect status 200",
        *([f"    http-response set-header X-Edge %[srv_name,map({config.edge_names_map},-)]"] if config.x_edge else []),
        f"    default-server {'check ' if config.health_checks else ''}inter {_ms(limits.check_interval)}"
        f" fall {limits.falls} rise {limits.rises} weight 256 init-addr none",
        f"    server-template {SLOT_PREFIX} 1-{config.slots} 0.0.0.0:0 disabled",
        "",
    ]
    return "\n".join(lines)
