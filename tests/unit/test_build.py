"""build's own logic without buildah or a registry: where it finds its programs, what it checks first."""

from __future__ import annotations

import json
import sys

import pytest

from druppie_steps import build
from druppie_steps.core.errors import InvalidInputError, StepError
from druppie_steps.core.registry import NoSuchTagError
from tests.support.checkout import COMMITTER_DATE, commit_all

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


# --- exactly the commit, never a moved tag (no buildah, no registry) ---


def test_a_containerfile_may_not_lead_outside_the_context(tmp_path):
    context = tmp_path / "app"
    (context / "docker").mkdir(parents=True)
    (context / "docker" / "Containerfile").write_text("FROM scratch\n")
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    assert build.find_containerfile(context, "docker/Containerfile") == context / "docker" / "Containerfile"
    with pytest.raises(InvalidInputError, match=r"^invalid --containerfile '\.\./Containerfile': leads outside"):
        build.find_containerfile(context, "../Containerfile")
    with pytest.raises(InvalidInputError, match=r"^invalid --containerfile '/etc/hostname': leads outside"):
        build.find_containerfile(context, "/etc/hostname")
    (context / "Dockerfile").symlink_to(tmp_path / "Containerfile")
    with pytest.raises(InvalidInputError, match=r"^invalid Dockerfile in .*: a symlink that leads outside"):
        build.find_containerfile(context, "")
    (context / "Containerfile").symlink_to("docker/Containerfile")  # inside: fine, and found first
    assert build.find_containerfile(context, "") == context / "docker" / "Containerfile"


def _relative(ctx, out):
    (ctx / "Containerfile").symlink_to("../Containerfile")


def _chain(ctx, out):  # Containerfile -> a -> b -> outside
    (ctx / "b").symlink_to(out / "Containerfile")
    (ctx / "a").symlink_to("b")
    (ctx / "Containerfile").symlink_to("a")


def _dangling(ctx, out):  # its target does not exist here (it may in the pod)
    (ctx / "Containerfile").symlink_to("/etc/no-such-file")


@pytest.mark.parametrize("make", [_relative, _chain, _dangling], ids=["relative", "chain", "dangling"])
def test_a_containerfile_symlink_leading_outside_is_refused_however_it_leads_there(tmp_path, make):
    context = tmp_path / "app"
    context.mkdir()
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    (context / "Dockerfile").write_text("FROM scratch\n")  # a Dockerfile inside must not be taken instead
    make(context, tmp_path)
    with pytest.raises(InvalidInputError, match=r"^invalid Containerfile in .*: a symlink that leads outside"):
        build.find_containerfile(context, "")


def test_a_dangling_containerfile_symlink_inside_the_context_is_an_error_not_skipped(tmp_path):
    context = tmp_path / "app"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    (context / "Containerfile").symlink_to("docker/Containerfile")
    with pytest.raises(InvalidInputError, match=r"^invalid Containerfile in .*: a symlink to .*, which is not a file$"):
        build.find_containerfile(context, "")


def test_a_named_containerfile_in_a_symlinked_folder_that_leads_outside_is_refused(tmp_path):
    context, elsewhere = tmp_path / "app", tmp_path / "elsewhere"
    context.mkdir()
    elsewhere.mkdir()
    (elsewhere / "Containerfile").write_text("FROM scratch\n")
    (context / "docker").symlink_to(elsewhere)
    with pytest.raises(InvalidInputError, match=r"^invalid --containerfile 'docker/Containerfile': leads outside"):
        build.find_containerfile(context, "docker/Containerfile")
    (context / "inside").mkdir()
    (context / "inside" / "Containerfile").write_text("FROM scratch\n")
    (context / "linked").symlink_to("inside")  # a symlinked folder inside the context: fine
    assert build.find_containerfile(context, "linked/Containerfile") == context / "inside" / "Containerfile"


def test_the_tree_must_be_exactly_the_commit(tmp_path, capsys):
    app = tmp_path / "app"
    app.mkdir()
    (app / "a.py").write_text("A = 1\n")
    (app / ".gitignore").write_text("*.log\n")
    sha = commit_all(app)
    assert build.check_exact_commit(app, "") == sha
    assert build.check_exact_commit(app, sha[:7]) == sha
    (app / "debug.log").write_text("ignored files do not count\n")
    assert build.check_exact_commit(app, sha) == sha
    with pytest.raises(StepError) as err:
        build.check_exact_commit(app, "0" * 40)
    assert str(err.value) == f"--source {app} is at commit {sha[:12]}, not --commit {'0' * 40}; not building it"
    for i in range(7):
        (app / f"new{i}.py").write_text("")
    (app / "a.py").write_text("A = 2\n")
    with pytest.raises(StepError) as err:
        build.check_exact_commit(app, sha)
    assert str(err.value) == (
        f"--source {app} is not exactly commit {sha[:12]}: 8 modified or untracked path(s): "
        "M a.py, ?? new0.py, ?? new1.py, ?? new2.py, ?? new3.py and 3 more; not building it"
    )


def test_outside_a_git_checkout_only_an_unchecked_build_without_a_commit(tmp_path, capsys):
    assert build.check_exact_commit(tmp_path, "") == ""
    assert "is not a git checkout: building the folder as it is, unchecked" in capsys.readouterr().err
    with pytest.raises(
        StepError, match=r"is not a git checkout \(git: .*\): cannot check that it is --commit abc1234$"
    ):
        build.check_exact_commit(tmp_path, "abc1234")


def test_the_timestamp_is_the_commits_date_unless_given(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    sha = commit_all(app, date=COMMITTER_DATE)
    assert build.source_date_epoch_of("", app, sha) == COMMITTER_DATE
    assert build.source_date_epoch_of(" 1700000000 ", app, sha) == 1_700_000_000
    assert build.source_date_epoch_of("", tmp_path, "") is None
    for bad in ("yesterday", "-1", "1.5", "2026-01-01"):
        with pytest.raises(InvalidInputError, match=rf"^invalid --source-date-epoch '{bad}': seconds since 1970"):
            build.source_date_epoch_of(bad, app, sha)


def test_source_date_epoch_is_read_from_the_usual_variable_too(monkeypatch):
    command = build.build
    args = ["--image", "registry.example/app", "--version", "1.0.0"]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert command.make_context("build", list(args)).params["source_date_epoch"] == "1700000000"
    monkeypatch.setenv("DRUPPIE_SOURCE_DATE_EPOCH", "1767225600")  # the Task's own wins
    assert command.make_context("build", list(args)).params["source_date_epoch"] == "1767225600"


def _registry(monkeypatch, tags: dict[str, str]) -> None:
    """served_digest as core.registry answers: a digest, or a StepError for a tag it has not."""

    def served(image, tag, auth_file=None, tls_verify=True, cert_dir=None):
        if tag in tags:
            return tags[tag]
        raise NoSuchTagError(f"registry registry.example has no {image}:{tag}: manifest unknown")

    monkeypatch.setattr(build, "served_digest", served)


def test_what_the_registry_already_has_of_this_version_and_commit(monkeypatch):
    image, other = "registry.example/app", "sha256:" + "cd" * 32
    _registry(monkeypatch, {})
    assert build.already_built(image, "1.0.0", "abc1234", None, True) == (None, None)
    _registry(monkeypatch, {"1.0.0": DIGEST, "abc1234": DIGEST})
    assert build.already_built(image, "1.0.0", "abc1234", None, True) == (DIGEST, DIGEST)
    _registry(monkeypatch, {"1.0.0": DIGEST})
    assert build.already_built(image, "1.0.0", "abc1234", None, True) == (DIGEST, None)
    assert build.already_built(image, "1.0.0", "", None, True) == (DIGEST, None)
    _registry(monkeypatch, {"1.0.0": DIGEST, "abc1234": other})
    with pytest.raises(StepError) as err:
        build.already_built(image, "1.0.0", "abc1234", None, True)
    assert str(err.value) == (
        f"registry has {image}:1.0.0 at {DIGEST} but {image}:abc1234 at {other}: version 1.0.0 was built "
        "from another commit; not moving it (a new commit needs a new version)"
    )


def test_a_registry_error_that_is_not_a_missing_tag_is_not_taken_for_one(monkeypatch):
    def refused(image, tag, auth_file=None, tls_verify=True, cert_dir=None):
        raise StepError("registry registry.example refused to show registry.example/app:1.0.0: denied")

    monkeypatch.setattr(build, "served_digest", refused)
    with pytest.raises(StepError, match="refused to show"):
        build.tag_digest("registry.example/app", "1.0.0", None, True)


def test_the_registry_is_asked_with_the_ca_certs_workspace_too(tmp_path, monkeypatch, capsys):
    """A registry with a private CA: the checks before the build trust ca-certs, as buildah does."""
    from druppie_steps.cli import main

    app = tmp_path / "app"
    app.mkdir()
    (app / "Containerfile").write_text("FROM scratch\n")
    commit_all(app)
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_text("not parsed here\n")
    seen = []

    def check_access(image, auth_file=None, tls_verify=True, cert_dir=None):
        seen.append(cert_dir)
        raise StepError("stopped here")

    monkeypatch.setattr(build, "check_access", check_access)
    monkeypatch.setattr(build.tools, "require", lambda name, hint: f"/usr/bin/{name}")
    argv = ["build", "--source", str(app), "--image", "registry.example/app", "--version", "1.0.0"]
    assert main([*argv, "--ca-certs", str(certs), "--output", str(tmp_path / "out")]) == 1
    assert seen == [str(certs)] and capsys.readouterr().err.endswith("error: stopped here\n")
