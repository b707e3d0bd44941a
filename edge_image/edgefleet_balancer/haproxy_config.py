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
- ``observe layer4 error-limit 1 on-error mark-down``: the first connection a live request cannot open to
  an edge takes that edge out at once (the health checks take it back as soon as one passes). This is what
  makes a replaced edge pod cost no request (issue #14): between the old pod's exit and the EndpointSlice
  update that removes it, every connection to it is refused; the retry is redispatched, but with bounded
  loads HAProxy's consistent-hash lookup (``chash_get_server_hash``) skips a saturated server, and when
  every other server is at its bound it gives back the very server it was asked to avoid. With two edges
  and a few requests in flight that is common, and the retry failed on the dead edge again: HAProxy's own
  ``503`` (termination ``SC``, one retry, not redispatched). Out of the ring after its first refusal, the
  dead edge is never the fallback.
- ``option http-buffer-request`` is deliberately absent: request bodies stream to the edge (a 128 MB upload
  is never held in memory). Only a request with ``Expect: 100-continue`` waits for its body
  (``wait-for-body``, at most 16 KB or 1 s): that makes HAProxy answer "100 Continue" itself and drop the
  header, so a client waiting for it never stalls on an edge that does not send it.
- Timeouts: ``http-request`` bounds how long a client may take to send a request head (idle and
  slow-header sockets are closed, so a flood of them cannot hold every slot), ``http-keep-alive`` how long
  an idle keep-alive connection is kept, ``client``/``server`` are *inactivity* timeouts, so a slow client
  downloading 20 MB is never cut off while it keeps reading.
- Logs: successful requests are not logged (``dontlog-normal``); failed ones (a 5xx, a retry, a
  redispatch) are raised to level ``err`` (``log-separate-errors``), so they pass the ``notice`` filter
  with their termination flags (``SC``: no server or no connection, ``sQ``: queue timeout, ...).
- Warm requests have a path of their own: the ``warm`` frontend, on a unix socket in the agent's run
  directory (mode 600: only the agent can connect), and the ``warm`` backend, whose servers ``track`` the
  data backend's slots one for one. Same names, same ids (declaration order), same weights, same ``balance``
  line: the same consistent-hash ring, so a warm request goes where a shopper's request for that key goes
  when nothing is loaded. What it does *not* have is ``hash-balance-factor``: a warm request always lands on
  the owner, never spills. And because they are separate server objects, a warm request in flight does not
  count against the owner's bound on the data path, so it never makes the next shopper's GET of that key
  spill either. ``track`` keeps the two in step by construction: a slot put in maintenance, taken out by
  its health checks or brought back is the same in both; only the address is set in both by the runtime API
  (``membership.runtime_commands``). Why not ``use-server`` on the data frontend: it needs the slot chosen
  by the agent, i.e. a second implementation of HAProxy's ring in Python that must agree with HAProxy's
  byte for byte; and why not a header-selected backend on the data port: then any client could send one.
  (Without health checks, in tests whose edges are unreachable, there is nothing to track: the warm servers
  start disabled and the runtime API sets their state too.)
- The data frontend deletes any ``X-Edgefleet-Warm`` header a client sends (``edgefleet.warm_marker``):
  only the agent's own requests, which come through the warm frontend, carry one.
- HAProxy never normalises the target (no ``normalize-uri`` rules): ``%3F``, ``%23`` and ``%2e%2e`` reach
  the edge as the client sent them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgefleet.warm_marker import HEADER as WARM_HEADER

BACKEND = "edges"
WARM_BACKEND = "warm"
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
    ("no server is available") to everyone. A dead edge does not wait for them: the first connection a request
    cannot open to it takes it out (``observe layer4 ... on-error mark-down``)."""
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
    warm_socket: Path
    """Unix socket of the warm frontend: the agent's own path to each key's owner, without bounded loads."""
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
    x_edge = (
        [f"    http-response set-header X-Edge %[srv_name,map({config.edge_names_map},-)]"] if config.x_edge else []
    )
    retry = [
        "    retries 1",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response response-timeout",
    ]
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
        "    option log-separate-errors",
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
        f"    http-request del-header {WARM_HEADER}",
        f"    default_backend {BACKEND}",
        "",
        "frontend warm",
        f"    bind unix@{config.warm_socket} mode 600",
        f"    default_backend {WARM_BACKEND}",
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
        *retry,
        "    http-request disable-l7-retry unless METH_GET",  # METH_GET is GET or HEAD
        "    http-reuse always",
        "    option httpchk GET /healthz",
        "    http-check expect status 200",
        *x_edge,
        f"    default-server {'check ' if config.health_checks else ''}inter {_ms(limits.check_interval)}"
        f" fall {limits.falls} rise {limits.rises} weight 256 init-addr none"
        f"{' observe layer4 error-limit 1 on-error mark-down' if config.health_checks else ''}",
        f"    server-template {SLOT_PREFIX} 1-{config.slots} 0.0.0.0:0 disabled",
        "",
        f"backend {WARM_BACKEND}",
        f"    {balance_line(config.hash_key)}",
        "    hash-type consistent",
        *retry,
        "    http-reuse always",
        *x_edge,
        "    default-server weight 256 init-addr none",
        *(
            f"    server {slot_name(index)} 0.0.0.0:0 "
            + (f"track {BACKEND}/{slot_name(index)}" if config.health_checks else "disabled")
            for index in range(1, config.slots + 1)
        ),
        "",
    ]
    return "\n".join(lines)
