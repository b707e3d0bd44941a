"""A real Kubernetes control plane on loopback, for tests and for poking around.

etcd, kube-apiserver (RBAC on, service-account tokens), kube-controller-manager (Deployments get
ReplicaSets, garbage collection, EndpointSlices), kube-scheduler and kwok (a fake node whose pods become
Ready without containers), all built by hack/kube-testenv/build.sh. No Docker, no kind: the same API
server semantics operators meet in production (schemas, CEL, subresources, conflicts, GC).

    python -m edgefleet.testing.kube_testenv up     # background; last line: export KUBECONFIG=... PATH=...
    python -m edgefleet.testing.kube_testenv down
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "kube-testenv" / "build.sh"
RUN_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgefleet" / "kube-testenv" / "run"
FAKE_NODE = "kwok-node-0"
START_TIMEOUT = 180.0


class KubeTestEnvError(RuntimeError):
    """The control plane could not be built or started; the message says which part and why."""


def find_bin_dir() -> Path:
    """EDGEFLEET_KUBE_BIN if set (``make test`` sets it), else build or reuse via build.sh."""
    configured = os.environ.get("EDGEFLEET_KUBE_BIN")
    if configured:
        return Path(configured)
    try:
        result = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as exc:
        raise KubeTestEnvError(f"building the control plane failed:\n{exc.stderr[-3000:]}") from exc
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- certificates ---------------------------------------------------------------------------------


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Name, rsa.RSAPrivateKey] | None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_certificates(pki: Path, extra_ips: tuple[str, ...] = ()) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgefleet-testenv-ca")])
    ca = _cert(ca_name, ca_key, None, ca=True)
    serving_key = _key()
    serving = _cert(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        serving_key,
        (ca_name, ca_key),
        sans=[
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
            *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in extra_ips),
        ],
    )
    admin_key = _key()
    admin = _cert(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, "edgefleet-admin"),
            ]
        ),
        admin_key,
        (ca_name, ca_key),
        client=True,
    )
    sa_key = _key()
    files = {
        "ca.crt": _pem_cert(ca),
        "ca.key": _pem_key(ca_key),
        "apiserver.crt": _pem_cert(serving),
        "apiserver.key": _pem_key(serving_key),
        "admin.crt": _pem_cert(admin),
        "admin.key": _pem_key(admin_key),
        "sa.key": _pem_key(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, data in files.items():
        path = pki / name
        path.write_bytes(data)
        path.chmod(0o600)


def kubeconfig_text(server: str, ca: bytes, user: dict[str, str], name: str = "edgefleet-testenv") -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca).decode()}}
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    return json.dumps(config, indent=2)


# ---- processes ------------------------------------------------------------------------------------


class _Child:
    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        handle = log.open("ab")
        try:
            self.process = subprocess.Popen(
                argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        finally:
            handle.close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class KubeTestEnv:
    """Start with ``start()`` (or as a context manager); everything lives under ``workdir``."""

    # The API server listens here; a cluster whose pods must reach it (node_cluster) uses a bridge address.
    address = "127.0.0.1"
    required_tools: tuple[str, ...] = (
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl",
    )  # fmt: skip

    def __init__(self, workdir: Path | None = None, bin_dir: Path | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="edgefleet-kube-"))
        self.bin_dir = bin_dir or find_bin_dir()
        self.pki = self.workdir / "pki"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.children: list[_Child] = []
        self.api_port = 0
        self.started_seconds = 0.0

    # -- public helpers used by tests --

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.api_port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}",
        }

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubeTestEnvError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin_dir / "helm"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**self.env, "HELM_CACHE_HOME": str(self.workdir / "helm-cache"),
                 "HELM_CONFIG_HOME": str(self.workdir / "helm-config"),
                 "HELM_DATA_HOME": str(self.workdir / "helm-data")},
        )  # fmt: skip
        if check and result.returncode != 0:
            raise KubeTestEnvError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` authenticated as the admin."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def service_account_kubeconfig(self, namespace: str, name: str, duration: str = "2h") -> Path:
        """A kubeconfig that authenticates as ServiceAccount ``namespace/name`` (TokenRequest API)."""
        token = self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}").stdout.strip()
        path = self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        path.write_text(kubeconfig_text(self.server, (self.pki / "ca.crt").read_bytes(), {"token": token}))
        path.chmod(0o600)
        return path

    # -- lifecycle --

    def _spawn(self, name: str, argv: list[str]) -> _Child:
        child = _Child(name, argv, self.workdir / f"{name}.log")
        self.children.append(child)
        return child

    def _wait(self, what: str, probe: object, child: _Child | None = None, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if child is not None and not child.alive():
                raise KubeTestEnvError(f"{child.name} exited while waiting for {what}:\n{child.tail()}")
            try:
                if probe():  # type: ignore[operator]
                    return
            except (OSError, urllib.error.URLError, ssl.SSLError, subprocess.SubprocessError, KubeTestEnvError):
                pass
            if time.monotonic() > deadline:
                logs = f"\n{child.name} log:\n{child.tail()}" if child else ""
                raise KubeTestEnvError(f"timed out after {timeout:.0f}s waiting for {what}{logs}")
            time.sleep(0.2)  # polling a readiness condition under a deadline

    def start(self) -> KubeTestEnv:
        started = time.monotonic()
        for tool in self.required_tools:
            if not (self.bin_dir / tool).exists():
                raise KubeTestEnvError(f"{tool} missing in {self.bin_dir}: run hack/kube-testenv/build.sh")
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - started
        return self

    def _start_all(self) -> None:
        write_certificates(self.pki, (self.address,))
        pki = self.pki
        ca = (pki / "ca.crt").read_bytes()
        etcd_port, peer_port, self.api_port = free_port(), free_port(), free_port()
        etcd = self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",  # test data: durability is not the point, speed is
                "--log-level=warn",
            ],
        )
        self._wait("etcd health", lambda: b'"true"' in urllib.request.urlopen(
            f"http://127.0.0.1:{etcd_port}/health", timeout=2).read(), etcd)  # fmt: skip
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--authorization-mode=RBAC",
                "--kubelet-preferred-address-types=InternalIP",  # node names need not resolve (logs, exec)
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        admin_user = {
            "client-certificate-data": base64.b64encode((pki / "admin.crt").read_bytes()).decode(),
            "client-key-data": base64.b64encode((pki / "admin.key").read_bytes()).decode(),
        }
        self.kubeconfig.write_text(kubeconfig_text(self.server, ca, admin_user))
        self.kubeconfig.chmod(0o600)
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))

        def apiserver_ready() -> bool:
            with urllib.request.urlopen(f"{self.server}/readyz", timeout=3, context=context) as response:
                return bool(response.status == 200)

        self._wait("kube-apiserver /readyz", apiserver_ready, apiserver)
        kcm = self._spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                "--controllers=*",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
        )
        scheduler = self._spawn(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--cert-dir={self.workdir / 'scheduler-certs'}",
                "--v=1",
            ],
        )
        self._wait(
            "the default ServiceAccount (kube-controller-manager running)",
            lambda: self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0,
            kcm,
        )
        self._start_nodes()
        for child in (scheduler,):
            if not child.alive():
                raise KubeTestEnvError(f"{child.name} exited:\n{child.tail()}")

    def _start_nodes(self) -> None:
        """The cluster's nodes: here one kwok node whose pods become Ready without containers."""
        kwok = self._spawn(
            "kwok",
            [
                str(self.bin_dir / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{free_port()}",
                "--cidr=10.244.0.1/16",
            ],
        )
        self.kubectl("apply", "-f", "-", input=json.dumps(_fake_node(FAKE_NODE)))
        self._wait(
            f"node {FAKE_NODE} Ready (kwok running)",
            lambda: self.kubectl(
                "get", "node", FAKE_NODE, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
            ).stdout.strip() == "True",
            kwok,
        )  # fmt: skip

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KubeTestEnv:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _fake_node(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": "zone-a",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
        },
    }


# ---- command line: make kube-up / kube-down -------------------------------------------------------


def serve(workdir: Path, factory: type[KubeTestEnv] = KubeTestEnv) -> int:
    """Run ``factory``'s cluster in the foreground until SIGTERM; ``workdir/ready`` marks it usable."""
    env = factory(workdir=workdir)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        env.start()
        (workdir / "ready").write_text(f"{env.kubeconfig}\n{env.bin_dir}\n")
        while not stopping:
            signal.pause()
    finally:
        env.stop()
        (workdir / "ready").unlink(missing_ok=True)
    return 0


def up(
    run_dir: Path = RUN_DIR,
    module: str = "edgefleet.testing.kube_testenv",
    what: str = "control plane",
    stop: str = "make kube-down",
    timeout: float = START_TIMEOUT + 30,
) -> int:
    """Start ``python -m module serve run_dir`` in the background; print the export line when it is ready."""
    pid_file = run_dir / "pid"
    if pid_file.exists() and (run_dir / "ready").exists():
        try:
            os.kill(int(pid_file.read_text()), 0)
            kubeconfig, running_bin = (run_dir / "ready").read_text().split()
            print(f"export KUBECONFIG={kubeconfig} PATH={running_bin}:$PATH")
            return 0
        except (ProcessLookupError, ValueError):
            pass
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    bin_dir = find_bin_dir()
    log = (run_dir / "serve.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", module, "serve", str(run_dir)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "EDGEFLEET_KUBE_BIN": str(bin_dir)},
    )  # fmt: skip
    log.close()
    pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while not (run_dir / "ready").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            print((run_dir / "serve.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            print(f"up: the {what} did not start", file=sys.stderr)
            return 1
        time.sleep(0.2)  # polling for the ready marker under a deadline
    kubeconfig, bin_path = (run_dir / "ready").read_text().split()
    print(f"{what} running (logs in {run_dir}); stop it with: {stop}")
    print(f"export KUBECONFIG={kubeconfig} PATH={bin_path}:$PATH")
    return 0


def down(run_dir: Path = RUN_DIR, what: str = "control plane", timeout: float = 60) -> int:
    pid_file = run_dir / "pid"
    if not pid_file.exists():
        print(f"down: no {what} running")
        return 0
    pid = int(pid_file.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)  # waiting for the server to exit, bounded
    else:
        print(f"down: the {what} (pid {pid}) did not stop within {timeout:.0f}s; see {run_dir}", file=sys.stderr)
        return 1
    pid_file.unlink(missing_ok=True)
    print(f"down: {what} stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgefleet.testing.kube_testenv")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start in the background and print the export line")
    sub.add_parser("down", help="stop the background control plane")
    foreground = sub.add_parser("serve", help="run in the foreground until SIGTERM")
    foreground.add_argument("workdir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "up":
        return up()
    if args.command == "down":
        return down()
    return serve(args.workdir)


if __name__ == "__main__":
    sys.exit(main())
