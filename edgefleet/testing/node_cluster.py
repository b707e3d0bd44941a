"""A one-node Kubernetes cluster with a real kubelet: the project's images run here as real pods.

The control plane of ``kube_testenv`` (etcd, kube-apiserver, controller-manager, scheduler), plus a node
made of a kubelet and kube-proxy built from the same pinned Kubernetes module, containerd and runc from
Debian, the CNI bridge plugin, and CoreDNS for Service names, as ``minikube start --driver=none`` does.
Pods live on a bridge (``efnode0``, 10.247.0.0/16) whose gateway address is the host's; the API server,
kubelet and CoreDNS listen on that address. Nothing routes off the machine: pod traffic is not
masqueraded, and CoreDNS forwards nothing. Images reach containerd by import, never by pull.

Needs root (mounts, network namespaces, iptables). Known traps on VMs like this one, handled here:
containerd's ``restrict_oom_score_adj`` (root without CAP_SYS_RESOURCE cannot lower oom_score_adj), runc
with cgroupfs (not systemd) cgroups, and a kube-proxy that must not tune conntrack sysctls.

    python -m edgefleet.testing.node_cluster up     # last line: export KUBECONFIG=... PATH=...
    python -m edgefleet.testing.node_cluster down   # leaves no mounts, iptables chains, veths or processes
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from edgefleet.testing.kube_testenv import (
    KubeTestEnv,
    KubeTestEnvError,
    down,
    free_port,
    serve,
    up,
)

RUN_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgefleet" / "node-cluster" / "run"
NODE_ROOT = Path("/var/lib/edgefleet-node")  # kubelet and CNI state (removed by stop()); containerd's images (kept)
STATE_ROOT = Path("/run/edgefleet-node")  # containerd's socket and runtime state
NODE_NAME = "edgefleet-node"
BRIDGE = "efnode0"
NODE_IP = "10.247.0.1"
POD_CIDR = "10.247.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
NODE_TOOLS = ("containerd", "runc", "ctr", "iptables", "ip", "docker")
CNI_PLUGINS = Path("/usr/lib/cni")
STOP_TIMEOUT = 90.0
LOCK_FILE = Path("/run/edgefleet-node.lock")  # one node per machine: the bridge, addresses and roots are fixed
LOCK_TIMEOUT = 900.0


def _run(argv: list[str], *, input: bytes | None = None, check: bool = True, timeout: float = 300) -> str:
    result = subprocess.run(argv, capture_output=True, input=input, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise KubeTestEnvError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr.decode()[-2000:]}")
    return result.stdout.decode()


def _our_mounts() -> list[str]:
    """Mount points under the node's directories, deepest first (so children unmount before parents)."""
    points = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if any(point == str(root) or point.startswith(f"{root}/") for root in (NODE_ROOT, STATE_ROOT)):
                points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def _kube_chains_present() -> list[str]:
    """iptables lines (any table, v4 and v6) that name a KUBE- or CNI- chain."""
    found = []
    for save in ("iptables-save", "ip6tables-save"):
        if shutil.which(save):
            found += [ln for ln in _run([save], check=False).splitlines() if "KUBE-" in ln or "CNI-" in ln]
    return found


def _remove_kube_chains() -> None:
    """Drop every KUBE-/CNI- chain and the rules that jump to them; other rules (Docker's) are kept."""
    for save, restore in (("iptables-save", "iptables-restore"), ("ip6tables-save", "ip6tables-restore")):
        if not shutil.which(save):
            continue
        dump = _run([save], check=False)
        if "KUBE-" not in dump and "CNI-" not in dump:
            continue
        kept = "\n".join(ln for ln in dump.splitlines() if "KUBE-" not in ln and "CNI-" not in ln) + "\n"
        _run([restore], input=kept.encode(), check=False)


def leftovers() -> list[str]:
    """What a stopped cluster must not leave behind: each entry names one thing that is still there."""
    found = [f"mount {point}" for point in _our_mounts()]
    found += [f"iptables {line}" for line in _kube_chains_present()]
    links = _run(["ip", "-o", "link", "show"], check=False)
    found += [f"link {ln.split(':')[1].strip()}" for ln in links.splitlines()
              if f"master {BRIDGE}" in ln or f": {BRIDGE}:" in ln]  # fmt: skip
    for flag, pattern in (("-x", "kubelet"), ("-x", "kube-proxy"), ("-x", "coredns"), ("-f", STATE_ROOT.as_posix())):
        pids = _run(["pgrep", flag, pattern], check=False).split()
        found += [f"process {pid} ({pattern})" for pid in pids if int(pid) != os.getpid()]
    return found


class NodeCluster(KubeTestEnv):
    """The control plane plus one real node (this machine). Start with ``start()``; ``stop()`` cleans up."""

    address = NODE_IP
    required_tools = (
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy",
        "coredns", "pause",
    )  # fmt: skip

    def __init__(self, workdir: Path | None = None, bin_dir: Path | None = None, images: tuple[str, ...] = ()) -> None:
        super().__init__(workdir, bin_dir)
        images_env = os.environ.get("EDGEFLEET_NODE_IMAGES", "")
        self.images = images or tuple(i for i in images_env.split(",") if i)
        self.containerd_sock = STATE_ROOT / "containerd" / "containerd.sock"
        self._host_prepared = False
        self._lock: int | None = None

    def _acquire_machine(self) -> None:
        """Wait (bounded) until no other one-node cluster runs on this machine, then hold the lock."""
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise KubeTestEnvError(
                        f"another one-node cluster held {LOCK_FILE} for {LOCK_TIMEOUT:.0f}s (make cluster-down?)"
                    ) from None
                time.sleep(1)  # waiting for the other cluster to stop, bounded by the deadline
        self._lock = fd

    def _release_machine(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None

    # -- host preparation --

    def _prepare_host(self) -> None:
        if os.geteuid() != 0:
            raise KubeTestEnvError("the one-node cluster needs root (mounts, network namespaces, iptables)")
        missing = [tool for tool in NODE_TOOLS if shutil.which(tool) is None]
        missing += [f"{CNI_PLUGINS}/{p}" for p in ("bridge", "host-local", "loopback", "portmap")
                    if not (CNI_PLUGINS / p).exists()]  # fmt: skip
        if missing:
            raise KubeTestEnvError(f"missing on this machine: {', '.join(missing)} (hack/system-deps.sh node)")
        if leftovers():
            # A previous run died without cleaning up: clean now rather than run on top of it.
            self._cleanup_host()
        if shutil.which("modprobe"):  # without kmod, the modules must already be loaded (checked below)
            for module in ("br_netfilter", "overlay"):
                _run(["modprobe", module], check=False)
        if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
            raise KubeTestEnvError("br_netfilter is not loaded: Services would not reach pods on the bridge")
        for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
            path = Path("/proc/sys") / key
            if path.exists() and path.read_text().strip() != "1":
                path.write_text("1")
        self._host_prepared = True
        # The bridge exists before the API server so that it can listen on the pods' gateway address.
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", f"{NODE_IP}/16", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
        NODE_ROOT.mkdir(parents=True, exist_ok=True)
        STATE_ROOT.mkdir(parents=True, exist_ok=True)

    def _cleanup_host(self) -> None:
        for point in _our_mounts():
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        # Network namespaces of pod sandboxes that were not torn down through CNI.
        netns_dir = Path("/run/netns")
        marker = NODE_ROOT / "netns-before"
        before = set(marker.read_text().split()) if marker.exists() else None
        if before is not None and netns_dir.exists():
            for entry in netns_dir.glob("cni-*"):
                if entry.name not in before:
                    subprocess.run(["ip", "netns", "delete", entry.name], capture_output=True, check=False)
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)
        _remove_kube_chains()
        # containerd's content store stays: the next start reuses the imported images.
        for path in NODE_ROOT.iterdir() if NODE_ROOT.exists() else ():
            if path.name != "containerd":
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
        shutil.rmtree(STATE_ROOT, ignore_errors=True)

    # -- the node --

    def _start_all(self) -> None:
        self._acquire_machine()
        self._prepare_host()
        netns_dir = Path("/run/netns")
        names = sorted(p.name for p in netns_dir.iterdir()) if netns_dir.exists() else []
        (NODE_ROOT / "netns-before").write_text("\n".join(names))
        super()._start_all()

    def _start_nodes(self) -> None:
        self._start_containerd()
        self._import_images()
        self._start_coredns()
        self._start_kube_proxy()
        self._start_kubelet()

    def _write(self, name: str, content: str) -> Path:
        path = self.workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        return path

    def _start_containerd(self) -> None:
        # Under STATE_ROOT so that this containerd and its shims are recognisable by their command lines.
        config = STATE_ROOT / "containerd.toml"
        config.write_text(f"""\
version = 2
root = "{NODE_ROOT}/containerd"
state = "{STATE_ROOT}/containerd-state"
disabled_plugins = ["io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{self.containerd_sock}"
[ttrpc]
  address = "{self.containerd_sock}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Root on this VM lacks CAP_SYS_RESOURCE: without this, runc fails every sandbox with
  # "can't get final child's PID from pipe: EOF" when it lowers oom_score_adj.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which("runc")}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_PLUGINS}"
    conf_dir = "{self.workdir / "cni"}"
""")
        self._write("cni/10-edgefleet.conflist", json.dumps({
            "cniVersion": "0.4.0",
            "name": "edgefleet",
            "plugins": [
                {
                    "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "rangeStart": "10.247.1.1", "gateway": NODE_IP}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": f"{NODE_ROOT}/cni/networks",
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                # Docker sets the FORWARD policy to DROP; this accepts traffic to and from each pod's address.
                {"type": "firewall", "backend": "iptables"},
            ],
        }, indent=2))  # fmt: skip
        containerd = self._spawn("containerd", ["containerd", "--config", str(config)])
        self._wait("containerd", lambda: self._ctr("version", check=True) != "", containerd)

    def _ctr(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        return _run(["ctr", "--address", str(self.containerd_sock), "--namespace", "k8s.io", *args],
                    input=input, check=check)  # fmt: skip

    def _import_images(self) -> None:
        """The pause image (from the module's pause.c) and the project's images, from Docker, by import."""
        listed = self._ctr("images", "ls", "-q").split()
        if PAUSE_IMAGE not in listed:
            staging = self.workdir / "pause-rootfs"
            staging.mkdir(exist_ok=True)
            shutil.copy2(self.bin_dir / "pause", staging / "pause")
            tar = subprocess.run(["tar", "-C", str(staging), "-c", "pause"], capture_output=True, check=True).stdout
            _run(["docker", "import", "--change", 'ENTRYPOINT ["/pause"]', "-", PAUSE_IMAGE], input=tar)
            self._import_from_docker(PAUSE_IMAGE)
        for image in self.images:
            # Docker's image id is the config digest, which containerd also lists: same id, nothing to do.
            docker_id = _run(["docker", "image", "inspect", "--format", "{{.Id}}", image], check=False).strip()
            if not (image in listed and docker_id in listed):
                self._import_from_docker(image)

    def _import_from_docker(self, image: str) -> None:
        saved = subprocess.run(["docker", "save", image], capture_output=True, check=False)
        if saved.returncode != 0:
            raise KubeTestEnvError(f"docker save {image} failed (run `make images` first):\n{saved.stderr.decode()}")
        self._ctr("images", "import", "-", input=saved.stdout)

    def _start_coredns(self) -> None:
        health, ready = free_port(), free_port()
        corefile = self._write(
            "Corefile",
            f"""\
cluster.local:53 in-addr.arpa:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{health}
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa {{
        kubeconfig {self.kubeconfig}
        pods insecure
    }}
}}
.:53 {{
    bind {NODE_IP}
    errors
}}
""",
        )
        coredns = self._spawn("coredns", [str(self.bin_dir / "coredns"), "-conf", str(corefile)])
        self._wait("CoreDNS ready", lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{ready}/ready", timeout=2).status == 200, coredns)  # fmt: skip

    def _start_kube_proxy(self) -> None:
        config = self._write("kube-proxy.yaml", json.dumps({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.kubeconfig)},
            "hostnameOverride": NODE_NAME,
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "bindAddress": NODE_IP,
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "nodePortAddresses": [f"{NODE_IP}/32"],
            # Leave the host's conntrack sysctls alone (read-only on many VMs and containers).
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            "iptables": {"localhostNodePorts": False},
        }, indent=2))  # fmt: skip
        self._spawn("kube-proxy", [str(self.bin_dir / "kube-proxy"), f"--config={config}", "--v=1"])

    def _start_kubelet(self) -> None:
        config = self._write("kubelet.yaml", json.dumps({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": str(self.pki / "ca.crt")}},
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.containerd_sock}",
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "clusterDNS": [NODE_IP],
            "clusterDomain": "cluster.local",
            "resolvConf": "",
            "serializeImagePulls": False,
            # The images were imported; garbage collection must never delete them under disk pressure.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "maxPods": 110,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
        }, indent=2))  # fmt: skip
        kubelet = self._spawn("kubelet", [
            str(self.bin_dir / "kubelet"),
            f"--config={config}",
            f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={NODE_ROOT}/kubelet",
            f"--cert-dir={self.workdir / 'kubelet-certs'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--v=1",
        ])  # fmt: skip
        self._wait(
            f"node {NODE_NAME} Ready (kubelet running)",
            lambda: self.kubectl(
                "get", "node", NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
            ).stdout.strip() == "True",
            kubelet,
        )  # fmt: skip

    # -- teardown --

    def _drain(self) -> None:
        """Stop pod sandboxes through the kubelet (CNI teardown: veths, IPs, namespaces) before it stops."""
        by_name = {child.name: child for child in self.children}
        kubelet = by_name.get("kubelet")
        if kubelet is None or not kubelet.alive():
            return
        for name in ("kube-controller-manager", "kube-scheduler"):  # nothing new gets created or placed
            if name in by_name:
                by_name[name].stop()
        self.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=0", "--force", "--wait=false",
                     check=False, timeout=60)  # fmt: skip
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            running = [ln for ln in self._ctr("tasks", "ls", check=False).splitlines()[1:] if "RUNNING" in ln]
            links = _run(["ip", "-o", "link", "show", "master", BRIDGE], check=False).strip()
            if not running and not links:
                return
            time.sleep(0.5)  # polling the runtime for stopped sandboxes, bounded by the deadline

    def _remove_containers(self) -> None:
        """With the kubelet stopped: kill what is left, delete tasks and containers (unmounting rootfs)."""
        if "containerd" not in {child.name for child in self.children if child.alive()}:
            return
        for task in self._ctr("tasks", "ls", "-q", check=False).split():
            self._ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
        deadline = time.monotonic() + 30
        while self._ctr("tasks", "ls", "-q", check=False).split() and time.monotonic() < deadline:
            for task in self._ctr("tasks", "ls", "-q", check=False).split():
                self._ctr("tasks", "delete", "-f", task, check=False)
            time.sleep(0.2)  # waiting for killed tasks to exit, bounded
        for container in self._ctr("containers", "ls", "-q", check=False).split():
            self._ctr("containers", "delete", container, check=False)

    def stop(self) -> None:
        try:
            with contextlib.suppress(KubeTestEnvError, subprocess.SubprocessError, OSError):
                self._drain()
            by_name = {child.name: child for child in self.children}
            for name in ("kubelet", "kube-proxy", "coredns"):
                if name in by_name:
                    by_name[name].stop()
            with contextlib.suppress(KubeTestEnvError, subprocess.SubprocessError, OSError):
                self._remove_containers()
            if "kube-proxy" in by_name:
                _run([str(self.bin_dir / "kube-proxy"), "--cleanup"], check=False, timeout=60)
        finally:
            super().stop()
            if self._host_prepared:
                self._cleanup_host()
                self._host_prepared = False
            self._release_machine()


# ---- command line: make cluster-up / cluster-down ----------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgefleet.testing.node_cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start in the background and print the export line")
    start.add_argument("--image", action="append", default=[], help="Docker image to import (repeatable)")
    sub.add_parser("down", help="stop the cluster and clean up the host")
    sub.add_parser("leftovers", help="list what a stopped cluster left behind (exit 1 if anything)")
    run = sub.add_parser("serve", help="run in the foreground until SIGTERM")
    run.add_argument("workdir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "up":
        if args.image:
            os.environ["EDGEFLEET_NODE_IMAGES"] = ",".join(args.image)
        return up(RUN_DIR, "edgefleet.testing.node_cluster", "one-node cluster", "make cluster-down", timeout=600)
    if args.command == "down":
        return down(RUN_DIR, "one-node cluster", timeout=STOP_TIMEOUT + 60)
    if args.command == "leftovers":
        left = leftovers()
        print("\n".join(left) or "nothing left behind")
        return 1 if left else 0
    return serve(args.workdir, NodeCluster)


if __name__ == "__main__":
    sys.exit(main())
