"""`make bundles` and `make release TAG=...` with the real tkn against a real registry (docker-registry
on loopback): the bundles of the real catalog are read back over the registry's HTTP API, each holding
exactly its object with the annotations Tekton's bundles resolver looks for; the Pipelines name their
Tasks' bundles by the digests the registry serves, and catalog.yaml records those. The release commit
is made in a copy of the catalog, the image build replaced by given digests (buildah is the e2e's).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time

import pytest
import yaml

from hack import bundles, catalog, release
from localcluster.process import http_request
from localcluster.toolchain import optional_binaries
from testbed.registry import free_port, start_registry
from tests.support.release import catalog_repo, git, refs
from tests.support.tools import tekton_validate

ROOT = catalog.ROOT
TKN = optional_binaries()["tkn"]
VERSION = catalog.step_version()
MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json")

if not TKN.is_file():
    pytest.skip("tkn is not built: hack/cluster-build.sh tkn", allow_module_level=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


def manifest(host: str, repository: str, reference: str) -> tuple[dict, str]:
    """The manifest the registry serves and its digest (the header, checked against the bytes)."""
    url = f"http://{host}/v2/{repository}/manifests/{reference}"
    with http_request(url, headers={"Accept": ", ".join(MANIFEST_TYPES)}) as response:
        body, digest = response.read(), response.headers["Docker-Content-Digest"]
    assert digest == "sha256:" + hashlib.sha256(body).hexdigest()
    return json.loads(body), digest


def layer_files(host: str, repository: str, digest: str) -> dict[str, bytes]:
    with http_request(f"http://{host}/v2/{repository}/blobs/{digest}") as response:
        blob = response.read()
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == digest
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def read_bundle(host: str, bundle: str, reference: str) -> tuple[str, dict, dict]:
    """(digest, the layer's annotations, the one object) of the bundle ``bundle`` (repository:tag) at ``reference``."""
    repository = bundle.removeprefix(host + "/").rsplit(":", 1)[0]
    body, digest = manifest(host, repository, reference)
    (layer,) = body["layers"]  # exactly one object per bundle
    files = layer_files(host, repository, layer["digest"])
    (name,) = files
    assert name == layer["annotations"]["dev.tekton.image.name"]
    return digest, layer["annotations"], json.loads(files[name])


def expected_task(path: str, images: dict[str, tuple[str, str]]) -> dict:
    """The Task as released, built from the parsed source (not by the code under test)."""
    doc = yaml.safe_load((ROOT / path).read_text())
    for step in doc["spec"]["steps"]:
        name, tag = step["image"].split(":")
        assert images[name][0] == tag
        step["image"] = f"{name}:{tag}@{images[name][1]}"
    return doc


@pytest.fixture(scope="module")
def pushed(registry, tmp_path_factory):
    """`hack/bundles.py --registry` as `make bundles` runs it, into a copy of catalog.yaml; run twice."""
    catalog_file = tmp_path_factory.mktemp("bundles") / "catalog.yaml"
    shutil.copy(ROOT / "catalog.yaml", catalog_file)
    runs = []
    for _ in range(2):
        started = time.monotonic()
        run = subprocess.run(
            [
                sys.executable,
                str(ROOT / "hack/bundles.py"),
                "--registry",
                registry.host,
                "--catalog",
                str(catalog_file),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        runs.append((catalog_file.read_text(), time.monotonic() - started))
    return catalog_file, runs


def test_each_task_and_pipeline_is_a_bundle_of_exactly_itself_and_catalog_yaml_records_the_served_digests(
    registry, pushed, tmp_path
):
    catalog_file, runs = pushed
    index = yaml.safe_load(catalog_file.read_text())
    assert catalog_file.read_text().startswith((ROOT / "catalog.yaml").read_text())  # the block is added, at the end
    assert runs[0][0] == runs[1][0]  # reproducible: the same files push the same digests
    images = bundles.recorded_images((ROOT / "catalog.yaml").read_text())
    recorded = {b["name"]: b for b in index["bundles"]}
    listed = bundles.entries((ROOT / "catalog.yaml").read_text())
    assert [b["name"] for b in index["bundles"]] == [e.name for e in listed]  # Tasks first, in catalog order
    served = {}
    for entry in listed:
        bundle = f"{registry.host}/waterschap/druppie-catalog/{entry.name}:{entry.version}"
        digest, annotations, obj = read_bundle(registry.host, bundle, entry.version)
        served[entry.name] = f"{bundle}@{digest}"
        assert recorded[entry.name] == {
            "name": entry.name,
            "kind": entry.kind,
            "version": entry.version,
            "bundle": bundle,
            "digest": digest,
        }
        assert annotations == {
            "dev.tekton.image.apiVersion": "v1",
            "dev.tekton.image.kind": entry.kind,
            "dev.tekton.image.name": entry.name,
        }
        if entry.kind == "task":
            assert obj == expected_task(entry.path, images)
        else:
            source = yaml.safe_load((ROOT / entry.path).read_text())
            released_tasks = [*obj["spec"]["tasks"], *obj["spec"].get("finally", [])]
            for pipeline_task in released_tasks:
                ref = {p["name"]: p["value"] for p in pipeline_task["taskRef"]["params"]}
                assert pipeline_task["taskRef"]["resolver"] == "bundles" and ref["kind"] == "task"
                assert ref["bundle"] == served[ref["name"]]  # the Task's bundle, by the digest the registry serves
                pipeline_task["taskRef"] = {"name": ref["name"]}
            assert obj == source  # and nothing else differs
    checkout = tmp_path / "checkout"  # a checkout after `make bundles`: `make lint` accepts its catalog.yaml
    for item in ("tasks", "pipelines", "steps/pyproject.toml", "README.md"):
        (checkout / item).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, checkout / item)
    shutil.copy(catalog_file, checkout / "catalog.yaml")
    assert catalog.check(checkout) == []


def test_tkn_reads_the_pipeline_the_readme_names_from_its_bundle_by_digest(registry, pushed, tmp_path):
    """The README's pipelineRef, with this registry and the digest catalog.yaml records, as the
    bundles resolver gets it (bundle, name, kind)."""
    catalog_file, _ = pushed
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (run,) = [yaml.safe_load(b) for b in blocks if "resolver: bundles" in b and "kind: PipelineRun" in b]
    params = {p["name"]: p["value"] for p in run["spec"]["pipelineRef"]["params"]}
    digest = next(
        b["digest"] for b in yaml.safe_load(catalog_file.read_text())["bundles"] if b["name"] == params["name"]
    )
    bundle = (
        params["bundle"].replace("registry.example", registry.host).replace("sha256:<digest from catalog.yaml>", digest)
    )
    listed = subprocess.run(
        [
            str(TKN),
            "bundle",
            "list",
            bundle,
            params["kind"],
            params["name"],
            "-o",
            "json",
            "--cache-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    pipeline = json.loads(listed.stdout)
    assert pipeline["kind"] == "Pipeline" and pipeline["metadata"]["name"] == params["name"]
    assert all(t["taskRef"]["resolver"] == "bundles" for t in pipeline["spec"]["tasks"])


DIGESTS = {name: "sha256:" + f"{i}" * 64 for i, name in enumerate(release.IMAGES, 1)}


def test_the_release_commit_holds_the_released_files_and_moves_no_branch(registry, tmp_path, monkeypatch):
    repo = catalog_repo(tmp_path / "catalog", monkeypatch)
    head = git(repo, "rev-parse", "HEAD")
    tag = f"v{VERSION}"
    assert release.main(["--tag", tag, "--registry", registry.host], root=repo, build_images=lambda _: DIGESTS) == 0

    commit = git(repo, "rev-parse", f"{tag}^{{commit}}")
    assert git(repo, "cat-file", "-t", tag) == "tag"  # annotated
    assert git(repo, "rev-parse", "release") == commit
    assert git(repo, "rev-parse", f"{commit}^@") == head  # one parent: the HEAD it was made from
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(repo, "status", "--porcelain") == ""  # the work tree was not touched
    listed = bundles.entries((ROOT / "catalog.yaml").read_text())
    changed = set(git(repo, "diff", "--name-only", head, commit).splitlines())
    assert changed == {"catalog.yaml", *(e.path for e in listed)}

    released = tmp_path / "released"
    released.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", tag], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(released, filter="data")
    index = yaml.safe_load((released / "catalog.yaml").read_text())
    assert {i["name"]: i["digest"] for i in index["images"]} == DIGESTS
    images = {name: (VERSION, digest) for name, digest in DIGESTS.items()}
    for entry in index["bundles"]:
        path = released / next(e.path for e in listed if e.name == entry["name"])
        digest, _, obj = read_bundle(registry.host, entry["bundle"], entry["version"])
        assert entry["digest"] == digest
        assert obj == yaml.safe_load(path.read_text())  # the bundle holds the released file
        assert read_bundle(registry.host, entry["bundle"], VERSION)[0] == digest  # tagged by the release too
        if entry["kind"] == "task":
            assert obj == expected_task(str(path.relative_to(released)), images)
    assert catalog.check(released) == []  # `make lint`'s conventions hold at the tag too
    if tekton_validate().is_file():  # and Tekton's own validation (the taskRefs by bundle)
        checked = subprocess.run(
            [str(tekton_validate()), "tasks", "pipelines"], cwd=released, capture_output=True, text=True
        )
        assert checked.returncode == 0 and " 0 problems" in checked.stdout, checked.stdout + checked.stderr


def test_a_failed_push_leaves_no_commit_tag_or_branch(tmp_path, monkeypatch):
    """A registry that refuses the push (it wants a login): nothing is written in the repository."""
    repo = catalog_repo(tmp_path / "catalog", monkeypatch)
    monkeypatch.setenv("HOME", str(tmp_path))  # no docker config of the machine's
    (tmp_path / "locked").mkdir()
    locked = start_registry(tmp_path / "locked", user="ci", password="s3cret-registry-pw")
    before, objects = refs(repo), git(repo, "count-objects")
    try:
        with pytest.raises(SystemExit) as raised:
            release.main(["--tag", f"v{VERSION}", "--registry", locked.host], root=repo, build_images=lambda _: DIGESTS)
    finally:
        locked.stop()
    message = str(raised.value.code)
    target = f"{locked.host}/waterschap/druppie-catalog/druppie-tag-commit:0.1"
    assert message.startswith(f"release: tkn bundle push {target} failed: ")
    assert "401 Unauthorized" in message and "\n" not in message
    assert refs(repo) == before and git(repo, "count-objects") == objects
    assert git(repo, "tag") == "" and "release" not in git(repo, "branch")


def test_no_registry_to_push_to_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("REGISTRY", raising=False)
    monkeypatch.setenv("DRUPPIE_CLUSTER_DIR", str(tmp_path / "no-cluster"))
    run = subprocess.run([sys.executable, str(ROOT / "hack/bundles.py")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr == "bundles: no registry: pass --registry HOST:PORT, set REGISTRY, or start the local cluster\n"
    shutil.copy(ROOT / "catalog.yaml", tmp_path / "catalog.yaml")
    closed = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "hack/bundles.py"),
            "--registry",
            closed,
            "--catalog",
            str(tmp_path / "catalog.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(
        f"bundles: tkn bundle push {closed}/waterschap/druppie-catalog/druppie-tag-commit:0.1 failed: "
        "Error: could not push"
    )
    assert "connection refused" in run.stderr and time.monotonic() - started < 30
    assert (tmp_path / "catalog.yaml").read_text() == (ROOT / "catalog.yaml").read_text()  # nothing recorded
