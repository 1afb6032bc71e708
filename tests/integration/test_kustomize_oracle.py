"""tag-commit checked against the real kustomize: what it pushes must build exactly like the original
repository after ``kustomize edit set image`` in --path.

Every kustomization root of the repository is built on both sides, so an edit that leaks into a
shared base (and so into another environment) fails as surely as a wrong tag in --path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from druppie_steps.gitops.image_edit import KUSTOMIZATION_NAMES
from localcluster.gitserver import run
from tests.support import kustomize
from tests.support.paths import EXAMPLE_APPS, REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "kustomize"
IMAGE = "registry.example/druppie/app"
DIGEST = "sha256:" + "0123456789abcdef" * 4
OLD_DIGEST = "sha256:" + "f" * 64


def workload(image: str, name: str = "app", kind: str = "Deployment") -> str:
    api = "batch/v1" if kind == "Job" else "apps/v1"
    return (
        f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  template:\n"
        f"    spec:\n      containers:\n        - name: {name}\n          image: {image}\n"
    )


def kustomization(body: str, kind: str = "Kustomization") -> str:
    api = "v1alpha1" if kind == "Component" else "v1beta1"
    return f"apiVersion: kustomize.config.k8s.io/{api}\nkind: {kind}\n{body}"


BASE = {
    "base/app/kustomization.yaml": kustomization("resources:\n  - deployment.yaml\n"),
    "base/app/deployment.yaml": workload(f"{IMAGE}:1.0.0"),
}
# Two environments over one base; the oracle builds both, so only prod may change.
OVERLAYS = {
    f"envs/{env}/app/kustomization.yaml": kustomization(f"namespace: {env}\nresources:\n  - ../../../base/app\n")
    for env in ("prod", "test")
}


def overlay_with_images(images: str, base_image: str = f"{IMAGE}:1.0.0") -> dict[str, str]:
    return {
        **BASE,
        **OVERLAYS,
        "base/app/deployment.yaml": workload(base_image),
        "envs/prod/app/kustomization.yaml": kustomization(f"resources:\n  - ../../../base/app\nimages:\n{images}"),
    }


@dataclass
class Layout:
    id: str
    path: str
    files: dict[str, str] = field(default_factory=dict)
    source_dir: Path | None = None
    image: str = IMAGE
    tag: str = "2.0.0"
    digest: str | None = None
    # Plain manifests: kustomize needs a kustomization to build, so both sides get the same one,
    # listing the manifests, after the push (it is never part of the repository).
    wrap: bool = False

    def args(self, repo) -> tuple[str, ...]:
        return (
            "tag-commit",
            "--repo-url",
            repo.url,
            "--path",
            self.path,
            "--image",
            self.image,
            "--tag",
            self.tag,
            *(("--digest", self.digest) if self.digest else ()),
            # Layouts from elsewhere (apps/web, kustomize/, manifests/...) need the opt-in.
            *(() if self.path.startswith("envs/") else ("--allow-path-outside-envs",)),
        )


LAYOUTS = [
    Layout("overlay-base-outside-path", "envs/prod/app", {**BASE, **OVERLAYS}),
    Layout("overlay-base-outside-path-digest", "envs/prod/app", {**BASE, **OVERLAYS}, digest=DIGEST),
    Layout(
        "overlay-with-components",
        "envs/prod/app",
        {
            **BASE,
            **OVERLAYS,
            "components/ha/kustomization.yaml": kustomization(
                "patches:\n  - target: {kind: Deployment}\n"
                "    patch: |\n      - {op: add, path: /spec/replicas, value: 3}\n",
                "Component",
            ),
            # The image is used in the component's own resource too: both uses must get the tag.
            "components/migrate/kustomization.yaml": kustomization("resources:\n  - job.yaml\n", "Component"),
            "components/migrate/job.yaml": workload(f"{IMAGE}:1.0.0", "migrate", "Job"),
            "envs/prod/app/kustomization.yaml": kustomization(
                "resources:\n  - ../../../base/app\n"
                "components:\n  - ../../../components/ha\n  - ../../../components/migrate\n"
            ),
        },
    ),
    Layout(
        "base-has-images-entry",
        "envs/prod/app",
        {
            **BASE,
            **OVERLAYS,
            "base/app/kustomization.yaml": kustomization(
                f"resources:\n  - deployment.yaml\nimages:\n  - name: {IMAGE}\n    newTag: 1.0.0\n"
            ),
            "base/app/deployment.yaml": workload(IMAGE),
        },
    ),
    Layout(
        "nested-bases-two-levels",
        "envs/prod/app",
        {
            **BASE,
            "platform/app/kustomization.yaml": kustomization(
                "resources:\n  - ../../base/app\nlabels:\n  - pairs: {tier: platform}\n"
            ),
            "envs/prod/app/kustomization.yaml": kustomization(
                "namespace: prod\nresources:\n  - ../../../platform/app\n"
            ),
            "envs/test/app/kustomization.yaml": kustomization(
                "namespace: test\nresources:\n  - ../../../platform/app\n"
            ),
        },
    ),
    Layout("overlay-entry-newTag", "envs/prod/app", overlay_with_images(f"  - name: {IMAGE}\n    newTag: 1.5.0\n")),
    Layout(
        "overlay-entry-newName-tagged-by-newName",
        "envs/prod/app",
        overlay_with_images(f"  - name: app\n    newName: {IMAGE}\n    newTag: 1.5.0\n", "app"),
    ),
    Layout(
        "overlay-entry-newName-tagged-by-name",
        "envs/prod/app",
        overlay_with_images(f"  - name: app\n    newName: {IMAGE}\n    newTag: 1.5.0\n", "app"),
        image="app",
    ),
    Layout(
        "overlay-entry-stale-digest-dropped",
        "envs/prod/app",
        overlay_with_images(f"  - name: {IMAGE}\n    newTag: 1.5.0\n    digest: {OLD_DIGEST}\n"),
    ),
    Layout(
        "overlay-entry-digest-replaced",
        "envs/prod/app",
        overlay_with_images(f"  - name: {IMAGE}\n    newTag: 1.5.0\n    digest: {OLD_DIGEST}\n"),
        digest=DIGEST,
    ),
    Layout(
        "plain-kustomization",
        "apps/web",
        {
            "apps/web/kustomization.yaml": "resources:\n- deployment.yaml\n",
            "apps/web/deployment.yaml": workload(f"{IMAGE}:1.0.0"),
        },
    ),
    Layout(
        "plain-kustomization-digest",
        "apps/web",
        {
            "apps/web/kustomization.yaml": "resources:\n- deployment.yaml\n",
            "apps/web/deployment.yaml": workload(f"{IMAGE}:1.0.0"),
        },
        digest=DIGEST,
    ),
    Layout(
        "plain-manifests-digest",
        "apps/web",
        {
            "apps/web/deployment.yaml": workload(f"{IMAGE}:1.0.0@{OLD_DIGEST}"),
            "apps/web/worker.yaml": workload(f"{IMAGE}:1.0.0", "worker"),
        },
        digest=DIGEST,
        wrap=True,
    ),
    # Each environment of the example over its one base: the other two must build as before.
    *(
        Layout(
            "examples-druppie-apps" + ("" if env == "prod" else f"-{env}"),
            f"envs/{env}/drone-service",
            source_dir=EXAMPLE_APPS,
            image="registry.example/druppie/drone-service",
            tag="1.0.5",
        )
        for env in ("prod", "acceptatie", "test")
    ),
    # Public kustomizations, copied unchanged (see the README beside each).
    Layout("podinfo", "kustomize", source_dir=FIXTURES / "podinfo", image="ghcr.io/stefanprodan/podinfo", tag="6.15.0"),
    Layout(
        "podinfo-under-an-overlay",
        "envs/prod/podinfo",
        {
            "envs/prod/podinfo/kustomization.yaml": kustomization(
                "namespace: prod\nresources:\n  - ../../../kustomize\n"
            ),
        },
        source_dir=FIXTURES / "podinfo",
        image="ghcr.io/stefanprodan/podinfo",
        tag="6.15.0",
    ),
    # The base names a staging image; the release component renames it (newName) and pins a tag,
    # so the image that runs, and that CI tags, exists only in the component's images: entry.
    Layout(
        "metrics-server-release",
        "manifests/overlays/release",
        source_dir=FIXTURES / "metrics-server",
        image="registry.k8s.io/metrics-server/metrics-server",
        tag="v0.9.1",
    ),
]


def clone(repo, dest: Path, commit: str | None = None) -> Path:
    run("git", "clone", "--quiet", repo.url, str(dest))
    if commit:
        run("git", "-C", str(dest), "checkout", "--quiet", commit)
    return dest


def wrap_manifests(folder: Path) -> None:
    manifests = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.y*ml"))
    (folder / "kustomization.yaml").write_text(yaml.safe_dump({"resources": manifests}))


def roots(tree: Path) -> list[str]:
    """Every folder kustomize can build (a Component cannot be built on its own)."""
    found = []
    for name in KUSTOMIZATION_NAMES:
        for path in tree.rglob(name):
            component = yaml.safe_load(path.read_text()).get("kind") == "Component"
            if ".git" not in path.relative_to(tree).parts and not component:
                found.append(str(path.parent.relative_to(tree)))
    return sorted(found)


def tag_commit(layout: Layout, repo, run_step) -> str:
    """Run tag-commit as the Task does; returns the commit it started from."""
    seed = repo.head()
    step = run_step(*layout.args(repo))
    assert step.returncode == 0, step.output
    assert step.results["changed"] == "true", step.output
    return seed


def assert_builds_like_kustomize(layout: Layout, repo, seed: str, tmp_path: Path) -> None:
    pushed, oracle = clone(repo, tmp_path / "pushed"), clone(repo, tmp_path / "oracle", seed)
    if layout.wrap:
        wrap_manifests(pushed / layout.path)
        wrap_manifests(oracle / layout.path)
    before = kustomize.build(oracle / layout.path)
    kustomize.edit_set_image(oracle / layout.path, layout.image, layout.tag, layout.digest)
    assert kustomize.build(oracle / layout.path) != before, "the layout does not exercise the image"
    assert roots(pushed) == roots(oracle)
    for root in roots(oracle):
        assert kustomize.build(pushed / root) == kustomize.build(oracle / root), f"kustomize build {root} differs"


@pytest.mark.parametrize("layout", [pytest.param(layout, id=layout.id) for layout in LAYOUTS])
def test_push_builds_like_kustomize_edit_set_image(layout, new_repo, run_step, tmp_path):
    repo = new_repo(files=layout.files, source_dir=layout.source_dir)
    seed = tag_commit(layout, repo, run_step)
    assert_builds_like_kustomize(layout, repo, seed, tmp_path)


def test_overlay_fetches_only_its_resource_tree(new_repo, run_step, tmp_path, git_server):
    """A 4 MB file beside the base (outside what the overlay uses) is never downloaded."""
    layout = LAYOUTS[0]
    repo = new_repo(files={**layout.files, "base/blobs/big.txt": os.urandom(2 * 1024 * 1024).hex()})
    sent_before = git_server.bytes_sent
    seed = tag_commit(layout, repo, run_step)
    assert git_server.bytes_sent - sent_before < 200_000
    assert_builds_like_kustomize(layout, repo, seed, tmp_path)  # clones everything: after the count


REFUSED = [
    # The image lives in a remote base: not in this repository, nothing to check the entry against.
    Layout(
        "remote-base",
        "envs/prod/app",
        {
            "envs/prod/app/kustomization.yaml": kustomization(
                "resources:\n  - https://github.com/example/app//deploy?ref=v1.0.0\n"
            ),
        },
    ),
    Layout("image-used-nowhere", "envs/prod/app", {**BASE, **OVERLAYS}, image="registry.example/druppie/other"),
    Layout(
        "flow-style-overlay",
        "envs/prod/app",
        {
            **BASE,
            "envs/prod/app/kustomization.yaml": "{resources: [../../../base/app]}\n",
        },
    ),
    Layout(
        "merge-key-in-images-entry",
        "envs/prod/app",
        overlay_with_images(f"  - <<: {{newTag: 1.5.0}}\n    name: {IMAGE}\n"),
    ),
]


@pytest.mark.parametrize("layout", [pytest.param(layout, id=layout.id) for layout in REFUSED])
def test_refused_layout_is_one_line_and_pushes_nothing(layout, new_repo, run_step):
    repo = new_repo(files=layout.files)
    seed = repo.head()
    step = run_step(*layout.args(repo))
    # stderr holds the progress lines, then the refusal: one line, no traceback.
    errors = [line for line in step.stderr.splitlines() if not line.startswith("[")]
    assert step.returncode != 0 and len(errors) == 1 and errors[0].startswith("error: "), step.output
    assert layout.path in errors[0], step.output
    assert repo.head() == seed
