"""Release the catalog: build and push the images, and with --tag make the release commit (`make release`).

The version has one source: steps/pyproject.toml. The files on the branch (main) name the images
by that version's tag, so a checkout runs what `make images` built. Two modes:

- without --tag (as before): build and push druppie-step, -scan and -build for every platform of
  hack/catalog.py's BUILT_PLATFORMS (linux/amd64 and linux/arm64: one manifest list per image, whose
  digest is the one recorded and pinned), record their digests in catalog.yaml (its images block),
  and write the Task files with each image pinned by its
  digest to dist/ (git-ignored; a preview of the released Tasks, e.g. to apply by hand): dist/tasks/
  is a whole catalog folder (each version folder, artifacthub-repo.yml), as Artifact Hub reads one.
- with --tag vX.Y.Z: a release. It refuses a tag that is not v<steps/pyproject.toml's version>, a
  tag that exists and a work tree with uncommitted changes, before building anything. Then it
  builds and pushes the images, pushes every Task and Pipeline as a bundle (hack/bundles.py;
  under the folder version and under the release version, e.g. :0.1 and :0.1.0), and writes the
  released files in place into a new commit whose parent is HEAD: tasks/*/<v>/*.yaml with images
  pinned by digest, pipelines/*/<v>/*.yaml with taskRefs to the Tasks' bundles by digest, and
  catalog.yaml with the images' and the bundles' digests. The commit is made with a temporary
  index (git commit-tree): no branch moves and the work tree and dist/ are not touched. Then, in
  one git transaction, the annotated tag vX.Y.Z points at it and the branch `release` moves to it
  (not a fast-forward from the previous release: push it with `git push origin vX.Y.Z +release`).
  Nothing is half-written: no commit unless every push succeeded, no tag without its commit.

    hack/release.py [--registry HOST:PORT] [--catalog catalog.yaml] [--dist dist]
    hack/release.py --tag vX.Y.Z [--registry HOST:PORT]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from hack import bundles  # noqa: E402 - after the path is set
from hack.catalog import BUILT_PLATFORMS  # noqa: E402

IMAGES = tuple(f"ghcr.io/waterschap/druppie-{kind}" for kind in ("step", "scan", "build"))
BEGIN, END = bundles.IMAGES_BEGIN, bundles.IMAGES_END
RELEASE_BRANCH = "release"


class ReleaseError(Exception):
    """A one-line reason to stop; main prints it with the program's name and exits 1."""


def version(root: Path = ROOT) -> str:
    return re.search(r'^version = "([^"]+)"', (root / "steps" / "pyproject.toml").read_text(), re.M)[1]


def images_env(registry: str | None, digest_file: str) -> dict[str, str]:
    """hack/images.sh's environment for a release: every platform the Tasks claim (BUILT_PLATFORMS),
    so each image is one manifest list of them and DIGEST_FILE gets the lists' digests."""
    return {
        **os.environ,
        "DIGEST_FILE": digest_file,
        "PLATFORMS": " ".join(BUILT_PLATFORMS),
        **({"REGISTRY": registry} if registry else {}),
    }


def build_and_push(registry: str | None) -> dict[str, str]:
    """Build and push every image for BUILT_PLATFORMS; {image name: the digest the registry serves}
    (of the manifest list when there is more than one platform)."""
    with tempfile.NamedTemporaryFile() as digest_file:
        env = images_env(registry, digest_file.name)
        built = subprocess.run([str(ROOT / "hack" / "images.sh")], env=env)
        if built.returncode != 0:
            raise SystemExit(
                f"release: hack/images.sh failed (exit {built.returncode}, its log above); nothing released"
            )
        lines = Path(digest_file.name).read_text().split("\n")
    digests = dict(line.split() for line in lines if line.strip())
    if set(digests) != set(IMAGES) or not all(re.fullmatch(r"sha256:[0-9a-f]{64}", d) for d in digests.values()):
        raise SystemExit("release: not every image was pushed (no REGISTRY and no local cluster running?)")
    return digests


def with_images(catalog_text: str, digests: dict[str, str], version_: str) -> str:
    """catalog.yaml's text with its images block recording ``digests``."""
    return bundles.replace_block(catalog_text, BEGIN, END, bundles.images_block(digests, version_, IMAGES))


def record_in_catalog(catalog: Path, digests: dict[str, str]) -> None:
    catalog.write_text(with_images(catalog.read_text(), digests, version()))


def write_released_tasks(dist: Path, digests: dict[str, str]) -> list[tuple[Path, str]]:
    images = {name: (version(), digests[name]) for name in IMAGES}
    written = []
    for source in sorted(ROOT.glob("tasks/*/*/*.yaml")):
        if source.stem != source.parent.parent.name:
            continue  # rbac.yaml and the like are copied unchanged below
        text = source.read_text()
        used = [name for name in IMAGES if f"image: {name}:{version()}\n" in text]
        text = bundles.pin_images(text, images, str(source.relative_to(ROOT)))
        target = dist / source.relative_to(ROOT)
        # The whole version folder (README.md, samples/, rbac.yaml, ...), as Artifact Hub's tracker
        # reads it, then the Task with its images pinned.
        shutil.copytree(source.parent, target.parent, dirs_exist_ok=True)
        target.write_text(text)
        written.extend((target, f"{name}:{version()}@{digests[name]}") for name in used)
    # The repository metadata sits at the registered path (hack/artifacthub.py), so dist/tasks/ is a
    # catalog Artifact Hub can track as it is.
    shutil.copy(ROOT / "tasks" / "artifacthub-repo.yml", dist / "tasks" / "artifacthub-repo.yml")
    return written


# ---- the release commit ------------------------------------------------------------------------


def git(root: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None, raw: bool = False) -> str:
    """git's output (stripped unless ``raw``); a failure is a ReleaseError with git's last line."""
    run = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, **(env or {})},
    )
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ReleaseError(f"git {' '.join(args[:2])} failed: {last}")
    return run.stdout if raw else run.stdout.strip()


def refuse(root: Path, tag: str) -> None:
    """Raise ReleaseError (one line naming the bad value and the option) unless ``tag`` can be released."""
    want = f"v{version(root)}"
    if not re.fullmatch(r"v\d+\.\d+\.\d+", tag):
        raise ReleaseError(f"--tag {tag!r} is not vX.Y.Z (this release would be --tag {want})")
    if tag != want:
        raise ReleaseError(
            f"--tag {tag} does not match steps/pyproject.toml's version {version(root)}: "
            f"use --tag {want}, or change the version there first"
        )
    existing = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if existing:
        raise ReleaseError(
            f"--tag {tag} already exists (commit {existing[:12]}): a release is never remade; "
            "raise steps/pyproject.toml's version for a new one"
        )
    dirty = git(root, "status", "--porcelain", "--untracked-files=all", raw=True).splitlines()
    if dirty:
        files = ", ".join(line[3:] for line in dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise ReleaseError(f"--tag {tag} needs a clean work tree; uncommitted: {files} (commit or stash them)")
    try:
        git(root, "var", "GIT_COMMITTER_IDENT")
    except ReleaseError as error:
        raise ReleaseError(f"--tag {tag}: git has no committer identity to tag with ({error})") from None
    for block in git(root, "worktree", "list", "--porcelain").split("\n\n"):
        if f"branch refs/heads/{RELEASE_BRANCH}" in block.splitlines():
            where = block.splitlines()[0].removeprefix("worktree ")
            raise ReleaseError(
                f"--tag {tag}: branch {RELEASE_BRANCH} is checked out in {where}; moving it would leave "
                "that work tree behind its branch (check out another branch there)"
            )


def release_commit(root: Path, parent: str, files: dict[str, str], message: str) -> str:
    """A commit of ``parent``'s tree with ``files`` (path: text) written in, made with a temporary
    index: no branch, no work tree and not the repository's own index is touched."""
    with tempfile.TemporaryDirectory(prefix="druppie-release-") as folder:
        env = {"GIT_INDEX_FILE": str(Path(folder) / "index")}
        git(root, "read-tree", parent, env=env)
        for path, text in sorted(files.items()):
            listed = git(root, "ls-tree", parent, "--", path)
            mode = listed.split()[0] if listed else "100644"
            blob = git(root, "hash-object", "-w", "--stdin", stdin=text)
            git(root, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
        tree = git(root, "write-tree", env=env)
    return git(root, "commit-tree", tree, "-p", parent, "-m", message)


def tag_and_move(root: Path, tag: str, commit: str, message: str) -> None:
    """The annotated tag ``tag`` on ``commit`` and the release branch moved to it, both or neither."""
    tagger = git(root, "var", "GIT_COMMITTER_IDENT")
    tag_object = git(root, "mktag", stdin=f"object {commit}\ntype commit\ntag {tag}\ntagger {tagger}\n\n{message}\n")
    before = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "-q", "--verify", f"refs/heads/{RELEASE_BRANCH}"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    move = (
        f"update refs/heads/{RELEASE_BRANCH} {commit} {before}"
        if before
        else f"create refs/heads/{RELEASE_BRANCH} {commit}"
    )
    git(root, "update-ref", "--stdin", stdin=f"start\ncreate refs/tags/{tag} {tag_object}\n{move}\nprepare\ncommit\n")


def release(
    root: Path,
    tag: str,
    registry: str,
    build_images: Callable[[str | None], dict[str, str]] = build_and_push,
    tkn: Path | None = None,
) -> str:
    """The release ``tag``: images, bundles, the release commit, its tag and the release branch; its sha."""
    refuse(root, tag)
    head = git(root, "rev-parse", "HEAD")

    def read(path: str) -> str:
        return git(root, "cat-file", "blob", f"{head}:{path}", raw=True)

    version_ = version(root)
    digests = build_images(registry)
    catalog_text = with_images(read("catalog.yaml"), digests, version_)
    images = {name: (version_, digests[name]) for name in IMAGES}
    pushed, texts = bundles.push_catalog(registry, catalog_text, read, images, tags=(version_,), tkn=tkn)
    files = {**texts, "catalog.yaml": bundles.record(catalog_text, pushed)}
    if git(root, "rev-parse", "HEAD") != head or git(root, "status", "--porcelain", "--untracked-files=all"):
        raise ReleaseError(
            f"--tag {tag}: HEAD or the work tree changed while the images were built; nothing committed, run again"
        )
    listing = "\n".join(f"  {b.ref}" for b in pushed)
    message = (
        f"Release {tag}\n\nThe released files of {head[:12]}: Tasks with their images pinned by digest, "
        "Pipelines with their taskRefs to the Tasks' bundles by digest, catalog.yaml recording both "
        f"(make release TAG={tag}).\n\nBundles:\n{listing}\n"
    )
    commit = release_commit(root, head, files, message)
    tag_and_move(root, tag, commit, f"Druppie catalog {tag}\n\n{listing}")
    return commit


def main(
    argv: list[str] | None = None,
    *,
    root: Path = ROOT,
    build_images: Callable[[str | None], dict[str, str]] = build_and_push,
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="push here (default: REGISTRY, else the local cluster's registry)")
    parser.add_argument("--catalog", type=Path, help="without --tag: record the image digests here (catalog.yaml)")
    parser.add_argument("--dist", type=Path, help="without --tag: write the pinned Tasks here (dist)")
    parser.add_argument(
        "--tag", help="release vX.Y.Z (steps/pyproject.toml's version): the release commit, tag, branch"
    )
    args = parser.parse_args(argv)
    if not args.tag:
        digests = build_images(args.registry)
        record_in_catalog(args.catalog or root / "catalog.yaml", digests)
        try:
            written = write_released_tasks(args.dist or root / "dist", digests)
        except bundles.BundleError as error:
            raise SystemExit(f"release: {error}") from None
        for path, ref in written:
            print(f"release: {path} pins {ref}")
        return 0
    try:
        if args.catalog or args.dist:
            raise ReleaseError(f"--tag {args.tag} writes the release commit, not --catalog or --dist: leave those out")
        registry = args.registry or bundles.default_registry()
        if not registry:
            raise ReleaseError(f"--tag {args.tag}: no registry: pass --registry HOST:PORT or set REGISTRY")
        commit = release(root, args.tag, registry, build_images)
    except (ReleaseError, bundles.BundleError) as error:
        raise SystemExit(f"release: {error}") from None
    print(
        f"release: {args.tag} is commit {commit[:12]} (parent HEAD), branch {RELEASE_BRANCH} moved there; "
        f"publish with: git push origin {args.tag} +{RELEASE_BRANCH}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
