"""seccomp-install, the DaemonSet's program: profiles land on the node whole, bad ones nowhere; drift is repaired."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from druppie_steps.cli import main
from hack import seccomp_install
from testbed.readme import yaml_blocks
from tests.support import kustomize
from tests.support.paths import REPO_ROOT, STEP

PROFILE = REPO_ROOT / "tasks/druppie-build/0.1/seccomp/druppie-build.json"


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    """A ConfigMap's mount as the kubelet makes it: the files are symlinks into a ..data folder."""
    folder = tmp_path / "profiles"
    data = folder / "..2026_12_05_00_00_00.000000001"
    data.mkdir(parents=True)
    (data / "druppie-build.json").write_bytes(PROFILE.read_bytes())
    (folder / "..data").symlink_to(data.name)
    (folder / "druppie-build.json").symlink_to("..data/druppie-build.json")
    return folder


@pytest.fixture
def node(tmp_path: Path) -> Path:
    seccomp = tmp_path / "kubelet" / "seccomp"
    seccomp.mkdir(parents=True)
    (seccomp / "someone-elses.json").write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    return seccomp


def test_installs_the_profile_byte_for_byte_and_touches_nothing_else(profiles, node, capsys):
    assert main(["seccomp-install", "--profiles", str(profiles), "--into", str(node), "--once"]) == 0
    installed = node / "druppie-build.json"
    assert installed.read_bytes() == PROFILE.read_bytes() and not installed.is_symlink()
    assert oct(installed.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in node.iterdir()) == ["druppie-build.json", "someone-elses.json"]
    assert "installed druppie-build.json (sha256 " in capsys.readouterr().err
    # A second run finds it in place and writes nothing.
    before = installed.stat().st_mtime_ns
    assert main(["seccomp-install", "--profiles", str(profiles), "--into", str(node), "--once"]) == 0
    assert installed.stat().st_mtime_ns == before
    assert "druppie-build.json already installed in" in capsys.readouterr().err


def test_check_is_the_readiness_probe_it_fails_until_installed_and_after_an_edit(profiles, node, capsys):
    args = ["seccomp-install", "--profiles", str(profiles), "--into", str(node), "--check"]
    assert main(args) == 1
    assert f"not installed in {node}: druppie-build.json" in capsys.readouterr().err
    assert not (node / "druppie-build.json").exists(), "--check writes nothing"
    main(["seccomp-install", "--profiles", str(profiles), "--into", str(node), "--once"])
    assert main(args) == 0
    (node / "druppie-build.json").write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    assert main(args) == 1


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "bad.json is not JSON"),
        ('["SCMP_ACT_ALLOW"]', "bad.json is not a seccomp profile: not a JSON object"),
        ('{"defaultAction": "ALLOW"}', "bad.json is not a seccomp profile: defaultAction 'ALLOW' is none of"),
        ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]}',
         "a syscalls entry has no list of names"),
    ],
)  # fmt: skip
def test_a_bad_profile_is_refused_in_one_line_and_no_profile_is_written(profiles, node, capsys, content, why):
    data = next(profiles.glob("..2026*"))
    (data / "bad.json").write_text(content)
    (profiles / "bad.json").symlink_to("..data/bad.json")
    assert main(["seccomp-install", "--profiles", str(profiles), "--into", str(node), "--once"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: invalid --profiles {profiles}: ") and why in err and "\n" not in err, err
    assert not (node / "druppie-build.json").exists(), "the good profile waits for the bad one"


def test_no_profiles_or_no_node_folder_are_clear_errors(tmp_path, profiles, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["seccomp-install", "--profiles", str(empty), "--into", str(tmp_path), "--once"]) == 2
    assert f"invalid --profiles {empty}: it holds no *.json seccomp profile" in capsys.readouterr().err
    missing = tmp_path / "no-kubelet" / "seccomp"
    assert main(["seccomp-install", "--profiles", str(profiles), "--into", str(missing), "--once"]) == 2
    assert f"invalid --into {missing}: not a folder" in capsys.readouterr().err
    assert main(["seccomp-install", "--profiles", str(profiles), "--into", str(tmp_path), "--interval", "0"]) == 2
    assert 'error: --interval: "0" must be more than zero' in capsys.readouterr().err


def test_a_profile_that_cannot_be_written_is_a_clear_error_and_leaves_no_temporary_file(profiles, node, capsys):
    (node / "druppie-build.json").mkdir()  # what a wrong hand on the node might leave: a folder by that name
    (node / "druppie-build.json" / "x").write_text("")
    assert main(["seccomp-install", "--profiles", str(profiles), "--into", str(node), "--once"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot write {node / 'druppie-build.json'}: ") and "\n" not in err, err
    assert sorted(p.name for p in node.iterdir()) == ["druppie-build.json", "someone-elses.json"]


def test_watching_it_puts_back_a_deleted_or_edited_profile_and_stops_cleanly_on_sigterm(profiles, node):
    proc = subprocess.Popen([str(STEP), "seccomp-install", "--profiles", str(profiles), "--into", str(node),
                             "--interval", "100ms"], stderr=subprocess.PIPE, text=True)  # fmt: skip
    installed = node / "druppie-build.json"
    try:
        wait_for(lambda: installed.exists())
        installed.unlink()
        wait_for(lambda: installed.exists())
        installed.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
        wait_for(lambda: installed.read_bytes() == PROFILE.read_bytes())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert err.count("installed druppie-build.json") == 3 and err.rstrip().endswith("stopped"), err
    assert [p.name for p in node.iterdir() if p.name.startswith(".")] == [], "no temporary file left"


def wait_for(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ---- the installers: install/seccomp (DaemonSet) and install/seccomp-operator (SPO) ------------------------------
def rendered(folder: Path) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(kustomize.build(folder)) if d}


def test_the_copies_of_the_profile_are_what_the_measured_one_makes():
    assert seccomp_install.problems() == []
    spec = yaml.safe_load(seccomp_install.OPERATOR_PROFILE.read_text())["spec"]
    profile = json.loads(PROFILE.read_text())
    assert spec["defaultAction"] == profile["defaultAction"] and spec["architectures"] == profile["architectures"]
    rules = [[(r["action"], r["names"]) for r in p["syscalls"]] for p in (spec, profile)]
    assert rules[0] == rules[1]


def test_the_daemonset_writes_only_the_kubelets_seccomp_folder_with_no_capability_token_or_network():
    objects = rendered(REPO_ROOT / "install/seccomp")
    assert {kind for kind, _ in objects} == {"Namespace", "ServiceAccount", "NetworkPolicy", "ConfigMap", "DaemonSet"}
    pod = objects[("DaemonSet", "druppie-seccomp-install")]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    host = [v for v in pod["volumes"] if "hostPath" in v]
    assert [v["hostPath"]["path"] for v in host] == ["/var/lib/kubelet/seccomp"]
    configmap = next(o for (kind, _), o in objects.items() if kind == "ConfigMap")
    assert configmap["data"] == {"druppie-build.json": PROFILE.read_text()}
    assert next(v for v in pod["volumes"] if "configMap" in v)["configMap"]["name"] == configmap["metadata"]["name"]
    policy = objects[("NetworkPolicy", "druppie-seccomp-deny-all")]["spec"]
    assert policy == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, "no ingress or egress rule"


def test_the_operator_component_makes_the_task_name_the_operators_path(tmp_path):
    """druppie-build README's `components:` block, added to the team catalog base."""
    url = "https://github.com/waterschap/druppie-catalog//install/seccomp-operator/task?ref=main"
    (block,) = [b for b in yaml_blocks(REPO_ROOT / "tasks/druppie-build/0.1/README.md") if url in b]
    overlay = tmp_path / "team"
    overlay.mkdir()
    components = yaml.safe_load(
        block.replace(url, os.path.relpath(REPO_ROOT / "install/seccomp-operator/task", overlay))
    )
    base = os.path.relpath(REPO_ROOT, overlay)  # kustomize takes relative paths only
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({"resources": [base], **components}))
    objects = rendered(overlay)
    step = objects[("Task", "druppie-build")]["spec"]["steps"][0]
    assert step["securityContext"]["seccompProfile"] == {"type": "Localhost",
                                                         "localhostProfile": "operator/druppie-build.json"}  # fmt: skip
    patched = objects[("Task", "druppie-build")]
    step["securityContext"]["seccompProfile"]["localhostProfile"] = "druppie-build.json"
    assert rendered(REPO_ROOT)[("Task", "druppie-build")] == patched, "nothing else changed"


def test_the_readme_overlay_for_another_kubelet_root_moves_only_the_host_path(tmp_path):
    url = "https://github.com/waterschap/druppie-catalog//install/seccomp?ref=main"
    (block,) = [b for b in yaml_blocks(REPO_ROOT / "tasks/druppie-build/0.1/README.md") if url in b]
    overlay = tmp_path / "seccomp-k0s"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        block.replace(url, os.path.relpath(REPO_ROOT / "install/seccomp", overlay))
    )
    moved, shipped = rendered(overlay), rendered(REPO_ROOT / "install/seccomp")
    volumes = moved[("DaemonSet", "druppie-seccomp-install")]["spec"]["template"]["spec"]["volumes"]
    assert [v["hostPath"]["path"] for v in volumes if "hostPath" in v] == ["/var/lib/k0s/kubelet/seccomp"]
    volumes[1]["hostPath"]["path"] = "/var/lib/kubelet/seccomp"
    assert moved == shipped, "nothing else changed"
