"""druppie-build's AppArmor profile (tasks/druppie-build/0.1/apparmor/druppie-build) and the component
that makes the build step name it (install/apparmor).

The profile is compiled by Debian's apparmor_parser (3.0.8; `apparmor_parser --skip-kernel-load -Q`,
everything but loading it into a kernel): it is valid AppArmor 3 policy. It is NOT enforced here:
this machine's kernel has no AppArmor (no /sys/kernel/security/apparmor), so no build ran under it;
that buildah builds with it on an AppArmor node is unmeasured (README: AppArmor). What is checked
is what it says: mount, umount and pivot_root, which the runtime's default profile denies, are
allowed; the default's denials of writes to /proc and /sys stay; ptrace is not allowed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hack import catalog
from tests.support import kustomize
from tests.support.tools import tekton_validate

ROOT = catalog.ROOT
PROFILE = ROOT / "tasks/druppie-build/0.1/apparmor/druppie-build"
COMPONENT = ROOT / "install/apparmor"
PARSER = shutil.which("apparmor_parser") or "/usr/sbin/apparmor_parser"


def parse(path: Path) -> subprocess.CompletedProcess[str]:
    if not Path(PARSER).is_file():
        pytest.fail("apparmor_parser is missing: make setup installs Debian's apparmor package")
    return subprocess.run([PARSER, "--skip-kernel-load", "-Q", str(path)], capture_output=True, text=True)


def rules() -> list[str]:
    """The profile's rules, one per line, without comments (an `#include` is a rule)."""
    lines = []
    for line in PROFILE.read_text().splitlines():
        line = line.strip()
        if line.startswith("#include"):
            lines.append(line)
        elif line and not line.startswith("#"):
            lines.append(re.sub(r"\s+#.*$", "", line))
    return lines


def test_apparmor_parser_compiles_the_profile():
    proc = parse(PROFILE)
    assert proc.returncode == 0, proc.stderr


def test_the_parser_check_has_teeth(tmp_path):
    """A misspelt rule fails; and `userns,` (AppArmor 4) fails on AppArmor 3's parser, which is why
    the profile leaves it to a node-local include (README)."""
    broken = tmp_path / "broken"
    broken.write_text(PROFILE.read_text().replace("  pivot_root,\n", "  pivot_rot,\n"))
    assert parse(broken).returncode != 0
    userns = tmp_path / "userns"
    userns.write_text(PROFILE.read_text().replace("  pivot_root,\n", "  pivot_root,\n  userns,\n"))
    proc = parse(userns)
    assert proc.returncode != 0 and "line" in proc.stderr


def test_it_allows_what_the_default_profile_denies_and_keeps_the_rest_of_its_denials():
    found = rules()
    assert "profile druppie-build flags=(attach_disconnected,mediate_deleted) {" in found
    for allowed in ("mount,", "remount,", "umount,", "pivot_root,", "file,", "network,", "capability,"):
        assert allowed in found, allowed
    assert "deny mount," not in found
    assert not [r for r in found if r.startswith("ptrace")], "no ptrace, not even among the build's processes"
    denials = [r for r in found if r.startswith("deny ")]
    assert "deny @{PROC}/sysrq-trigger rwklx," in denials and "deny @{PROC}/kcore rwklx," in denials
    assert "deny /sys/kernel/security/** rwklx," in denials and "deny /sys/firmware/** rwklx," in denials
    assert len(denials) == 14
    assert "#include if exists <local/druppie-build>" in found


def test_the_component_names_the_profile_in_the_build_step_and_tekton_accepts_it(tmp_path):
    overlay = tmp_path / "team"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {"resources": [os.path.relpath(ROOT, overlay)], "components": [os.path.relpath(COMPONENT, overlay)]}
        )
    )
    objects = [d for d in yaml.safe_load_all(kustomize.build(overlay)) if d]
    (task,) = [d for d in objects if d["kind"] == "Task" and d["metadata"]["name"] == "druppie-build"]
    context = task["spec"]["steps"][0]["securityContext"]
    assert context["appArmorProfile"] == {"type": "Localhost", "localhostProfile": "druppie-build"}
    assert "profile druppie-build " in PROFILE.read_text()
    validator = tekton_validate()
    if validator.is_file():  # Tekton v1.15.0's own validation (hack/tekton-validate), as make lint runs it
        rendered = tmp_path / "druppie-build.yaml"
        rendered.write_text(yaml.safe_dump(task))
        proc = subprocess.run([str(validator), str(rendered)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "0 problems" in proc.stdout, proc.stdout + proc.stderr
