"""A real local Kubernetes with real Flux controllers, as plain processes on loopback.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built from Go modules by
hack/cluster-build.sh), a real kubelet on containerd and runc (hack/node.py; kwok with DRUPPIE_NODE_SIDE=kwok), Flux source-controller
and kustomize-controller with the CRDs from their module sources, a git smart-HTTP server hosting
druppie-apps, and a container registry (Debian's docker-registry).

    python hack/cluster.py up      # start; prints the kubeconfig path; state in $DRUPPIE_CLUSTER_DIR
    python hack/cluster.py down    # stop every process, leave nothing behind
    python hack/cluster.py status

The same class is the pytest fixture of the e2e tier (tests/e2e/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.gitserver import seed_repo  # noqa: E402

# The node side: a real kubelet (hack/node.py) unless DRUPPIE_NODE_SIDE=kwok, which fakes nodes and
# pods (Deployments then still go through the real controller-manager, scheduler and Flux).
NODE_SIDES = ("kubelet", "kwok")
ADMIN_TOKEN = "druppie-local-admin-token"  # loopback-only throwaway cluster


def toolchain() -> dict[str, str]:
    env = {}
    for line in (ROOT / "hack" / "toolchain.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def cache_dir() -> Path:
    return Path(os.environ.get("DRUPPIE_CACHE", "/var/cache/druppie"))


def binaries() -> dict[str, Path]:
    v = toolchain()
    c = cache_dir()
    k8s = c / f"kubernetes-{v['KUBERNETES_VERSION']}"
    return {
        "etcd": c / f"etcd-{v['ETCD_VERSION']}" / "etcd",
        "kube-apiserver": k8s / "kube-apiserver",
        "kube-controller-manager": k8s / "kube-controller-manager",
        "kube-scheduler": k8s / "kube-scheduler",
        "kubelet": k8s / "kubelet",
        "kubectl": c / f"kubectl-{v['KUBERNETES_VERSION']}" / "kubectl",
        "kwok": c / f"kwok-{v['KWOK_VERSION']}" / "kwok",
        "source-controller": c / f"source-controller-{v['SOURCE_CONTROLLER_VERSION']}" / "source-controller",
        "kustomize-controller": c / f"kustomize-controller-{v['KUSTOMIZE_CONTROLLER_VERSION']}" / "kustomize-controller",
    }


def crd_dirs() -> list[Path]:
    v = toolchain()
    c = cache_dir()
    return [c / f"source-controller-{v['SOURCE_CONTROLLER_VERSION']}" / "crds",
            c / f"kustomize-controller-{v['KUSTOMIZE_CONTROLLER_VERSION']}" / "crds",
            c / f"notification-crds-{v['NOTIFICATION_API_VERSION']}" / "crds"]


def node_side() -> str:
    side = os.environ.get("DRUPPIE_NODE_SIDE", "kubelet")
    if side not in NODE_SIDES:
        raise RuntimeError(f"DRUPPIE_NODE_SIDE={side!r}: use one of {', '.join(NODE_SIDES)}")
    return side


def missing_binaries() -> list[str]:
    """What the cache (and, for the kubelet, the machine) lacks; empty when the e2e tier can run."""
    missing = [name for name, path in binaries().items() if not path.is_file()]
    if node_side() == "kubelet":
        missing += [tool for tool in ("containerd", "ctr", "runc", "gcc") if not shutil.which(tool)]
        missing += [] if Path("/usr/lib/cni/bridge").is_file() else ["containernetworking-plugins (Debian package)"]
    if not (binaries()["kwok"].parent / "stages.yaml").is_file():
        missing.append("kwok stages.yaml")
    missing += [str(d) for d in crd_dirs() if not d.is_dir()]
    if not shutil.which("docker-registry"):
        missing.append("docker-registry (Debian package)")
    return missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


@dataclass
class LocalCluster:
    state_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    node_side: str = field(default_factory=node_side)

    def __post_init__(self) -> None:
        from hack.node import KubeletNode

        self.node = KubeletNode(self) if self.node_side == "kubelet" else None

    # ---- paths -----------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def git_root(self) -> Path:
        return self.state_dir / "git"

    @property
    def git_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['git']}/druppie-apps.git"

    @property
    def registry(self) -> str:
        return f"127.0.0.1:{self.ports['registry']}"

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def _save(self) -> None:
        (self.state_dir / "state.json").write_text(json.dumps(
            {"ports": self.ports, "pids": self.pids, "node_side": self.node_side}, indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> "LocalCluster":
        data = json.loads((state_dir / "state.json").read_text())
        return cls(state_dir, data["ports"], data["pids"], data.get("node_side", "kwok"))

    # ---- processes ---------------------------------------------------------------------------
    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                    start_new_session=True)  # own group: `down` kills children too
        self.pids[name] = proc.pid
        self._save()

    def wait_until(self, name: str, check, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not _alive(self.pids.get(name, 0)):
                raise RuntimeError(f"{name} exited; see {self.state_dir / 'logs' / (name + '.log')}:\n"
                                   + _tail(self.state_dir / "logs" / f"{name}.log"))
            try:
                if check():
                    return
            except Exception as err:  # noqa: BLE001 - not ready yet
                last = str(err)
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready after {timeout:.0f}s ({last}); log:\n"
                           + _tail(self.state_dir / "logs" / f"{name}.log"))

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(binaries()["kubectl"]), "--kubeconfig", str(self.kubeconfig), *args],
                              input=input, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    # ---- up / down ---------------------------------------------------------------------------
    def up(self) -> "LocalCluster":
        started = time.monotonic()
        missing = missing_binaries()
        if missing:
            raise RuntimeError(f"cluster cache incomplete, run `make cluster-build` first; missing: {', '.join(missing)}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok", "sc-storage", "sc-metrics",
                     "sc-health", "kc-metrics", "kc-health", "git", "registry", "kubelet", "kubelet-healthz"):
            self.ports[name] = free_port()
        self._certs()
        try:
            self._control_plane()
            self._cluster_objects()
            self._git_and_registry()
            if self.node:
                self.node.start()
                _log("kubelet node ready (containerd + runc, bridge CNI)")
            else:
                self._kwok_node()
            self._flux()
        except BaseException:
            self.down()
            raise
        _log(f"ready in {time.monotonic() - started:.1f}s: kubeconfig {self.kubeconfig}, git {self.git_url}, "
             f"registry {self.registry}")
        return self

    def _certs(self) -> None:
        pki = self.state_dir / "pki"
        pki.mkdir(exist_ok=True)
        if not (pki / "sa.key").exists():
            subprocess.run(["openssl", "genrsa", "-out", str(pki / "sa.key"), "2048"], check=True, capture_output=True)
            subprocess.run(["openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")],
                           check=True, capture_output=True)
        (pki / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin,"system:masters"\n')

    def _control_plane(self) -> None:
        b, p, d = binaries(), self.ports, self.state_dir
        self.spawn("etcd", [b["etcd"], "--data-dir", d / "etcd", "--name", "druppie",
                             "--listen-client-urls", f"http://127.0.0.1:{p['etcd']}",
                             "--advertise-client-urls", f"http://127.0.0.1:{p['etcd']}",
                             "--listen-peer-urls", f"http://127.0.0.1:{p['etcd-peer']}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{p['etcd-peer']}",
                             "--initial-cluster", f"druppie=http://127.0.0.1:{p['etcd-peer']}",
                             "--unsafe-no-fsync", "--log-level", "warn"])
        self.wait_until("etcd", lambda: _http_ok(f"http://127.0.0.1:{p['etcd']}/health"))
        _log("etcd ready")
        self.start_apiserver()
        self._write_kubeconfig()
        self.spawn("kube-controller-manager", [
            b["kube-controller-manager"], "--kubeconfig", self.kubeconfig, "--leader-elect=false",
            "--bind-address", "127.0.0.1", "--secure-port", p["kcm"], "--use-service-account-credentials",
            "--service-account-private-key-file", d / "pki" / "sa.key",
            "--root-ca-file", d / "apiserver-certs" / "apiserver.crt",
            "--controllers", "*,-nodeipam,-cloud-node-lifecycle,-route,-service,-persistentvolume-binder",
            "--concurrent-deployment-syncs", "10", "--v", "1"])
        self.spawn("kube-scheduler", [b["kube-scheduler"], "--kubeconfig", self.kubeconfig, "--leader-elect=false",
                                       "--bind-address", "127.0.0.1", "--secure-port", p["scheduler"]])

    def start_apiserver(self) -> None:
        """(Re)start kube-apiserver on its port; the e2e tests restart it to test resuming watches."""
        b, p, d = binaries(), self.ports, self.state_dir
        self.spawn("kube-apiserver", [
            b["kube-apiserver"], "--etcd-servers", f"http://127.0.0.1:{p['etcd']}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", p["apiserver"],
            "--cert-dir", d / "apiserver-certs", "--token-auth-file", d / "pki" / "tokens.csv",
            "--authorization-mode", "Node,RBAC", "--service-cluster-ip-range", "10.96.0.0/16",
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", d / "pki" / "sa.pub",
            "--service-account-signing-key-file", d / "pki" / "sa.key",
            "--api-audiences", "https://kubernetes.default.svc", "--allow-privileged",
            "--enable-priority-and-fairness=false", "--profiling=false"])
        self.wait_until("kube-apiserver", lambda: _http_ok(f"{self.api_url}/readyz", token=ADMIN_TOKEN), timeout=90)
        _log("kube-apiserver ready")

    def stop_apiserver(self) -> None:
        _kill(self.pids.pop("kube-apiserver", 0))
        self._save()

    def _write_kubeconfig(self) -> None:
        ca = self.state_dir / "apiserver-certs" / "apiserver.crt"
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "druppie",
            "clusters": [{"name": "druppie", "cluster": {"server": self.api_url, "certificate-authority": str(ca)}}],
            "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
            "contexts": [{"name": "druppie", "context": {"cluster": "druppie", "user": "admin"}}],
        }, indent=2))
        os.chmod(self.kubeconfig, 0o600)

    def _cluster_objects(self) -> None:
        for ns in ("flux-system", "productie"):
            self.kubectl("create", "namespace", ns, check=False)
        for d in crd_dirs():
            self.kubectl("apply", "--server-side", "-f", str(d))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        _log("namespaces and Flux CRDs established")

    def _kwok_node(self) -> None:
        b, p = binaries(), self.ports
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": "kwok-node-0", "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": "kwok-node-0", "type": "kwok"}},
            "spec": {}, "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                                   "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"}}}
        self.kubectl("apply", "-f", "-", input=json.dumps(node))
        self.spawn("kwok", [b["kwok"], "--kubeconfig", self.kubeconfig, "--config", b["kwok"].parent / "stages.yaml",
                             "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                             "--cidr=10.244.0.0/16", "--node-ip=127.0.0.1", "--node-port", p["kwok"]])
        self.wait_until("kwok", lambda: node_ready(self, "kwok-node-0"), timeout=60)
        _log("kwok node ready")

    def publish_image(self, reference: str) -> None:
        """Make ``registry.example/<repo>:<tag>`` pullable by the node (a no-op for kwok's fake pods)."""
        if self.node:
            self.node.publish(reference)

    def _flux(self) -> None:
        b, p, d = binaries(), self.ports, self.state_dir
        env = {"KUBECONFIG": str(self.kubeconfig), "RUNTIME_NAMESPACE": "flux-system"}
        (d / "flux-artifacts").mkdir(exist_ok=True)
        self.spawn("source-controller", [
            b["source-controller"], "--storage-path", d / "flux-artifacts",
            "--storage-addr", f"127.0.0.1:{p['sc-storage']}", "--storage-adv-addr", f"127.0.0.1:{p['sc-storage']}",
            "--metrics-addr", f"127.0.0.1:{p['sc-metrics']}", "--health-addr", f"127.0.0.1:{p['sc-health']}",
            "--enable-leader-election=false", "--watch-all-namespaces", "--log-level", "info"], env)
        self.spawn("kustomize-controller", [
            b["kustomize-controller"], "--metrics-addr", f"127.0.0.1:{p['kc-metrics']}",
            "--health-addr", f"127.0.0.1:{p['kc-health']}", "--enable-leader-election=false",
            "--watch-all-namespaces", "--log-level", "info"], env)
        self.wait_until("source-controller", lambda: _http_ok(f"http://127.0.0.1:{p['sc-health']}/readyz"))
        self.wait_until("kustomize-controller", lambda: _http_ok(f"http://127.0.0.1:{p['kc-health']}/readyz"))
        _log("Flux source-controller and kustomize-controller ready")

    def _git_and_registry(self) -> None:
        seed_repo(self.git_root / "druppie-apps.git", source_dir=ROOT / "examples" / "druppie-apps")
        self.spawn("git-server", [sys.executable, "-m", "tests.support.gitserver", self.git_root, self.ports["git"]],
                    env={"PYTHONPATH": str(ROOT)})
        self.wait_until("git-server", lambda: _http_ok(f"{self.git_url}/info/refs?service=git-upload-pack"))
        config = self.state_dir / "registry.yml"
        config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {self.state_dir / 'registry'}\n"
                          f"http:\n  addr: 127.0.0.1:{self.ports['registry']}\nlog:\n  level: warn\n")
        self.spawn("registry", [shutil.which("docker-registry"), "serve", config])
        self.wait_until("registry", lambda: _http_ok(f"http://{self.registry}/v2/"))
        _log("git server and registry ready")

    def down(self) -> None:
        if self.node and _alive(self.pids.get("kubelet", 0)) and _alive(self.pids.get("kube-apiserver", 0)):
            # Stop whatever would recreate pods, then let the kubelet tear every pod down properly.
            for name in ("kube-controller-manager", "kube-scheduler", "source-controller", "kustomize-controller"):
                _kill(self.pids.pop(name, 0))
            self.node.drain()
        for name in reversed(list(self.pids)):
            _kill(self.pids[name])
        self.pids.clear()
        if self.node:
            self.node.cleanup()
        if (self.state_dir / "state.json").exists():
            self._save()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours counts as dead (and is reaped here)
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:
        pass
    try:  # an exited process not yet reaped by its parent (or init) is a zombie: dead too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill(pid: int, timeout: float = 10) -> None:
    if not _alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)


def _http_ok(url: str, token: str | None = None) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # readiness probe only
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
        return resp.status == 200


def node_ready(cluster: LocalCluster, name: str) -> bool:
    """Has the node registered and reported Ready (kubelet or kwok)?"""
    proc = cluster.kubectl("get", "node", name, "-o", "json", check=False)
    node = json.loads(proc.stdout) if proc.returncode == 0 else {}
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def default_state_dir() -> Path:
    return Path(os.environ.get("DRUPPIE_CLUSTER_DIR", "/tmp/druppie-cluster"))


def main(argv: list[str]) -> int:
    state = default_state_dir()
    command = argv[0] if argv else "status"
    if command == "up":
        if (state / "state.json").exists() and any(_alive(p) for p in LocalCluster.load(state).pids.values()):
            print(f"cluster already running (state in {state}); `make cluster-down` first", file=sys.stderr)
            return 1
        shutil.rmtree(state, ignore_errors=True)
        try:
            cluster = LocalCluster(state).up()
        except RuntimeError as err:
            print(f"cluster-up failed: {err}", file=sys.stderr)
            return 1
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(f"# druppie-apps: {cluster.git_url}   registry: {cluster.registry}   node side: {cluster.node_side}")
        return 0
    if command == "down":
        if (state / "state.json").exists():
            LocalCluster.load(state).down()
            shutil.rmtree(state, ignore_errors=True)
        print("cluster down")
        return 0
    if command == "status":
        if not (state / "state.json").exists():
            print("no cluster")
            return 1
        cluster = LocalCluster.load(state)
        for name, pid in cluster.pids.items():
            print(f"{name:<24} pid {pid:<8} {'running' if _alive(pid) else 'STOPPED'}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
