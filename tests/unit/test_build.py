"""build's own logic without buildah or a registry: where it finds its programs."""

from __future__ import annotations

import json
import sys

import pytest

from druppie_steps import build
from druppie_steps.core.errors import StepError

DIGEST = "sha256:" + "ab" * 32
# A stand-in for syft: writes an empty SBOM where `-o <format>=<file>` says.
FAKE_SYFT = '#!/bin/sh\nfor a; do case $a in *=*) out=${a#*=};; esac; done\necho \'{"fake": "syft"}\' > "$out"\n'


def _venv(tmp_path, monkeypatch):
    """A venv's bin folder as the running interpreter's, and a PATH without syft."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    return bin_dir


def test_syft_is_found_beside_the_interpreter(tmp_path, monkeypatch):
    bin_dir = _venv(tmp_path, monkeypatch)
    (bin_dir / "syft").write_text(FAKE_SYFT)
    (bin_dir / "syft").chmod(0o755)
    target = tmp_path / "src" / ".druppie" / "sbom.cdx.json"
    deadline = build.Deadline(60)
    build.write_sbom("registry.example/app", DIGEST, target, "cyclonedx-json", None, True, {}, deadline)
    assert json.loads(target.read_text()) == {"fake": "syft"}


def test_missing_syft_says_where_it_was_looked_for(tmp_path, monkeypatch):
    bin_dir = _venv(tmp_path, monkeypatch)
    target = tmp_path / "src" / "sbom.json"
    with pytest.raises(StepError) as err:
        build.write_sbom("registry.example/app", DIGEST, target, "cyclonedx-json", None, True, {}, build.Deadline(60))
    assert str(err.value) == (
        f"syft not found on PATH or in {bin_dir}: the druppie-build image carries it; "
        "locally, make setup links it into .venv/bin"
    )
