"""Artifact Hub's rules for the catalog's two registrations, checked offline (`make lint` runs them
through hack/catalog.py check; tests/unit/test_artifacthub.py breaks each one).

Artifact Hub itself cannot run on these machines, so nothing here talks to a hub. The rules come
from its documentation (docs/tekton_tasks_repositories.md, tekton_pipelines_repositories.md,
tekton_annotations.md, metadata/artifacthub-repo.yml) and, where the docs say less than the code
does, from its Tekton tracker (internal/tracker/source/tekton/tekton.go, directory-based
versioning) and what that calls: a rule learnt from the code says so in its comment. When these
rules were written, Artifact Hub's own `ah lint` (built from its source outside this repository)
agreed on the catalog and on the tests' broken copies; it is no part of the build.

Two registrations, one per kind, each at its own path of https://github.com/waterschap/druppie-catalog:

| Artifact Hub kind | URL path   | repository name (the hub resolver's `catalog`) |
|-------------------|------------|------------------------------------------------|
| Tekton tasks      | tasks/     | druppie-tasks                                  |
| Tekton pipelines  | pipelines/ | druppie-pipelines                              |

(branch `main`: Artifact Hub's default is `master`, so the registration sets it.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

REPOSITORY_URL = "https://github.com/waterschap/druppie-catalog"
BRANCH = "main"
DOCS_URL = f"{REPOSITORY_URL}/blob/{BRANCH}/README.md"
LICENSE = "Apache-2.0"  # the catalog's license (an SPDX identifier, as Artifact Hub asks)
PROVIDER = "Druppie platform team"
MAINTAINERS = [{"name": "Druppie platform team", "email": "platform@druppie.local"}]
METADATA_FILE = "artifacthub-repo.yml"


@dataclass(frozen=True)
class Registration:
    folder: str  # the path in the repository URL Artifact Hub is given
    kind: str  # the Tekton kind its manifests must be
    package_kind: str  # Artifact Hub's name of the kind, in package URLs
    name: str  # the Artifact Hub repository name: the hub resolver's `catalog` param


REGISTRATIONS = {
    "tasks": Registration("tasks", "Task", "tekton-task", "druppie-tasks"),
    "pipelines": Registration("pipelines", "Pipeline", "tekton-pipeline", "druppie-pipelines"),
}

# tekton_annotations.md: "Please use only one category from the following list".
CATEGORIES = {
    "ai-machine-learning",
    "database",
    "integration-delivery",
    "monitoring-logging",
    "networking",
    "security",
    "storage",
    "streaming-messaging",
    "skip-prediction",  # the documented special value: no category, and no guess either
}
# tekton_annotations.md: "the valid supported kinds are added, changed, deprecated, removed, fixed and security".
CHANGE_KINDS = {"added", "changed", "deprecated", "removed", "fixed", "security"}
# Of the annotations Artifact Hub reads (tekton_annotations.md), those every Task and Pipeline here carries.
REQUIRED = (
    "artifacthub.io/license",
    "artifacthub.io/provider",
    "artifacthub.io/category",
    "artifacthub.io/maintainers",
    "artifacthub.io/links",
    "artifacthub.io/changes",
)
# The package URLs Artifact Hub's web UI turns into recommended packages (web/src/layout/package/
# RecommendedPackages/index.tsx); any other URL is dropped without a word.
RECOMMENDATION_RE = re.compile(
    r"^https://artifacthub\.io/packages/(?P<kind>helm|falco|opa|olm|tbaction|krew|helm-plugin|tekton-task|"
    r"keda-scaler|coredns|keptn|tekton-pipeline|kubewarden|gatekeeper|kyverno|knative-client-plugin|backstage|"
    r"argo-template|kubearmor|inspektor-gadget|tekton-stepaction|meshery|opencost|radius|bootc|kagent|container)"
    r"/(?P<repo>[a-z0-9-]+)/(?P<name>[a-z0-9-]+)$"
)
SKIPS = "Artifact Hub skips the package"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when there: the same answers, faster


def _load(text: str) -> object:
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)


# Masterminds/semver v3 NewVersion (CoerceNewVersion, the default): "0.1" is 0.1.0, "v1" is 1.0.0.
_LOOSE_SEMVER = re.compile(
    r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$"
)


def hub_version(text: object) -> str | None:
    """The version as Artifact Hub normalises it (Masterminds semver, loose), or None if it refuses it."""
    if not isinstance(text, str):
        return None
    m = _LOOSE_SEMVER.match(text)
    if not m:
        return None
    numbers = [int(part.lstrip(".")) if part else 0 for part in m.group(1, 2, 3)]
    if any(n >= 2**64 for n in numbers):
        return None
    pre, build = m.group(5), m.group(8)
    if pre and any(p.isdigit() and len(p) > 1 and p[0] == "0" for p in pre.split(".")):
        return None  # a numeric pre-release part with a leading zero
    return ".".join(map(str, numbers)) + (f"-{pre}" if pre else "") + (f"+{build}" if build else "")


# go-containerregistry name.ParseReference, which Artifact Hub uses to validate the images it lists.
_REPOSITORY_CHARS = re.compile(r"^[a-z0-9_./-]{2,255}$")
_TAG_CHARS = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def image_reference_problem(ref: str) -> str | None:
    """Why Artifact Hub would refuse this image reference, or None: [registry/]repository[:tag][@sha256:hex]."""
    name = ref
    if "@" in ref:
        name, _, digest = ref.partition("@")
        if "@" in digest or not _DIGEST.match(digest):
            return "its digest is not sha256:<64 hex digits>"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = name.rpartition(":")
        if not _TAG_CHARS.match(tag):
            return f"its tag {tag!r} is not [A-Za-z0-9_.-]{{1,128}}"
    first, slash, rest = name.partition("/")
    repository = rest if slash and ("." in first or ":" in first) else name  # a registry has a . or a :
    if not _REPOSITORY_CHARS.match(repository) or "//" in repository or repository.endswith("/"):
        return f"its repository {repository!r} is not lower-case [a-z0-9_./-]"
    return None


def _yaml_list(rel: str, key: str, value: str) -> tuple[list | None, list[str]]:
    """An annotation holding a YAML list (links, maintainers, changes, recommendations)."""
    try:
        parsed = _load(value)
    except yaml.YAMLError as err:
        return None, [f"{rel}: annotation {key}: is not valid YAML ({str(err).splitlines()[0]}); {SKIPS}"]
    if not isinstance(parsed, list):
        return None, [f"{rel}: annotation {key}: must be a YAML list (a string holding '- ...' entries); {SKIPS}"]
    return parsed, []


def _https(url: object) -> bool:
    return isinstance(url, str) and re.match(r"^https://[^\s/]+(/\S*)?$", url) is not None


def check_links(rel: str, value: str, own_folder: str) -> list[str]:
    key = "artifacthub.io/links"
    links, problems = _yaml_list(rel, key, value)
    if links is None:
        return problems
    for i, link in enumerate(links, 1):
        if not isinstance(link, dict):
            problems.append(f"{rel}: annotation {key}: entry {i} must be a mapping of name and url; {SKIPS}")
            continue
        if set(link) - {"name", "url"}:
            problems.append(f"{rel}: annotation {key}: entry {i} has keys other than name and url")
        if not isinstance(link.get("name"), str) or not link["name"].strip():
            problems.append(f"{rel}: annotation {key}: entry {i} has no name")
        if not _https(link.get("url")):
            problems.append(f"{rel}: annotation {key}: entry {i} url {link.get('url')!r} is not an https:// URL")
    urls = {link.get("url") for link in links if isinstance(link, dict)}
    readme = f"{REPOSITORY_URL}/tree/{BRANCH}/{own_folder}"
    for wanted, what in (
        (REPOSITORY_URL, "the source repository"),
        (readme, "this package's folder"),
        (DOCS_URL, "the catalog's docs"),
    ):
        if wanted not in urls:
            problems.append(f"{rel}: annotation {key}: no link to {what} ({wanted})")
    return problems


def check_maintainers(rel: str, value: str) -> list[str]:
    key = "artifacthub.io/maintainers"
    maintainers, problems = _yaml_list(rel, key, value)
    if maintainers is None:
        return problems
    if not maintainers:
        problems.append(f"{rel}: annotation {key}: lists nobody")
    for i, m in enumerate(maintainers, 1):
        if not isinstance(m, dict):
            problems.append(f"{rel}: annotation {key}: entry {i} must be a mapping of name and email; {SKIPS}")
            continue
        # The docs say an entry without email is ignored; tekton.go refuses the whole package.
        if not m.get("email"):
            problems.append(f"{rel}: annotation {key}: entry {i} has no email; {SKIPS}")
        elif not isinstance(m["email"], str) or not re.match(r"^[^@\s]+@[^@\s]+$", m["email"]):
            problems.append(f"{rel}: annotation {key}: entry {i} email {m['email']!r} is not an email address")
        if not isinstance(m.get("name"), str) or not m["name"].strip():
            problems.append(f"{rel}: annotation {key}: entry {i} has no name")
    return problems


def check_changes(rel: str, value: str) -> list[str]:
    key = "artifacthub.io/changes"
    changes, problems = _yaml_list(rel, key, value)
    if changes is None:
        return problems
    if not changes:
        problems.append(f"{rel}: annotation {key}: lists no change")
    # source.ParseChangesAnnotation reads a list of mappings, else a list of strings: not both at once.
    if any(isinstance(c, str) for c in changes) and any(isinstance(c, dict) for c in changes):
        problems.append(f"{rel}: annotation {key}: mixes plain strings and mappings; {SKIPS}")
    for i, change in enumerate(changes, 1):
        if isinstance(change, str):
            if not change.strip():
                problems.append(f"{rel}: annotation {key}: entry {i} is empty; {SKIPS}")
            continue
        if not isinstance(change, dict):
            problems.append(
                f"{rel}: annotation {key}: entry {i} must be a string or a mapping (kind, description, links); {SKIPS}"
            )
            continue
        kind = change.get("kind")
        if kind is not None and (not isinstance(kind, str) or kind.lower() not in CHANGE_KINDS):
            problems.append(
                f"{rel}: annotation {key}: entry {i} kind {kind!r} is not one of "
                f"{', '.join(sorted(CHANGE_KINDS))}; {SKIPS}"
            )
        if not isinstance(change.get("description"), str) or not change["description"].strip():
            problems.append(f"{rel}: annotation {key}: entry {i} has no description; {SKIPS}")
        for link in change.get("links") or []:
            if not isinstance(link, dict) or not link.get("name") or not link.get("url"):
                problems.append(f"{rel}: annotation {key}: entry {i} has a link without name or url; {SKIPS}")
    return problems


def check_recommendations(rel: str, value: str, packages: dict[tuple[str, str], set[str]]) -> list[str]:
    """packages: {(Artifact Hub package kind, repository name): names}, the packages of each registered
    folder present (a recommendation into a folder not checked here, e.g. dist/ has no pipelines/, is
    checked only for its form)."""
    key = "artifacthub.io/recommendations"
    recommendations, problems = _yaml_list(rel, key, value)
    if recommendations is None:
        return problems
    for i, rec in enumerate(recommendations, 1):
        if not isinstance(rec, dict) or "url" not in rec:
            problems.append(f"{rel}: annotation {key}: entry {i} must be a mapping with a url; {SKIPS}")
            continue
        m = RECOMMENDATION_RE.match(str(rec["url"]))
        if not m:
            problems.append(
                f"{rel}: annotation {key}: entry {i} url {rec['url']!r} is not an Artifact Hub package URL "
                "(https://artifacthub.io/packages/<kind>/<repository>/<name>); the hub shows nothing for it"
            )
            continue
        ours = {r.name: r.package_kind for r in REGISTRATIONS.values()}
        if m["repo"] in ours and ours[m["repo"]] != m["kind"]:
            problems.append(
                f"{rel}: annotation {key}: entry {i} url {rec['url']!r}: {m['repo']} holds {ours[m['repo']]} packages"
            )
        elif (m["kind"], m["repo"]) in packages and m["name"] not in packages[(m["kind"], m["repo"])]:
            problems.append(
                f"{rel}: annotation {key}: entry {i} recommends {m['kind']}/{m['repo']}/{m['name']}, "
                "which this catalog does not have"
            )
    return problems


def recommended(value: object, reg: Registration) -> set[str]:
    """The names of reg's packages a recommendations annotation names."""
    try:
        entries = _load(value) if isinstance(value, str) else None
    except yaml.YAMLError:
        return set()
    urls = [e.get("url") for e in entries or [] if isinstance(e, dict)] if isinstance(entries, list) else []
    found = (RECOMMENDATION_RE.match(str(url)) for url in urls)
    return {m["name"] for m in found if m and (m["kind"], m["repo"]) == (reg.package_kind, reg.name)}


def _steps(doc: dict) -> list[dict]:
    spec = doc.get("spec") or {}
    return list(spec.get("steps") or [])


def check_manifest(
    root: Path, reg: Registration, path: Path, doc: object, packages: dict[tuple[str, str], set[str]], pinned: bool
) -> list[str]:
    """One <name>/<version>/<name>.yaml as Artifact Hub's Tekton tracker reads it."""
    rel = str(path.relative_to(root))
    name, version = path.parent.parent.name, path.parent.name
    if not isinstance(doc, dict):
        return [f"{rel}: is not a YAML mapping; {SKIPS}"]
    problems = []
    meta = doc.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    # ObjectMeta's labels and annotations are map[string]string.
    for where, values in (("label", labels), ("annotation", annotations)):
        for key, value in values.items():
            if not isinstance(value, str):
                problems.append(
                    f"{rel}: {where} {key}: value {value!r} must be a quoted YAML string (Kubernetes takes only "
                    "strings there; Artifact Hub would read an unquoted 0.10 as 0.1)"
                )
    if doc.get("kind") != reg.kind:
        problems.append(
            f"{rel}: kind {doc.get('kind')!r}: the {reg.folder}/ registration reads every manifest as a {reg.kind}"
        )
    if not meta.get("name"):
        problems.append(f"{rel}: metadata.name missing; {SKIPS}")
    if not (doc.get("spec") or {}).get("description"):
        problems.append(f"{rel}: spec.description missing; {SKIPS}")
    label = labels.get("app.kubernetes.io/version")
    if label is None or label == "":
        problems.append(f"{rel}: label app.kubernetes.io/version missing; {SKIPS} (it is the package's version)")
    elif isinstance(label, str):
        if hub_version(label) is None:
            problems.append(f"{rel}: label app.kubernetes.io/version {label!r} is not a semantic version; {SKIPS}")
        elif hub_version(label) != hub_version(version):
            problems.append(
                f"{rel}: label app.kubernetes.io/version {label!r} is not the folder's version {version!r} "
                f"({hub_version(label)} != {hub_version(version)}); {SKIPS}"
            )

    for key in REQUIRED:
        if not annotations.get(key):
            problems.append(f"{rel}: annotation {key} missing")
    own_folder = f"{reg.folder}/{name}/{version}"
    checks = {
        "artifacthub.io/links": lambda v: check_links(rel, v, own_folder),
        "artifacthub.io/maintainers": lambda v: check_maintainers(rel, v),
        "artifacthub.io/changes": lambda v: check_changes(rel, v),
        "artifacthub.io/recommendations": lambda v: check_recommendations(rel, v, packages),
    }
    for key, run in checks.items():
        if isinstance(annotations.get(key), str):
            problems += run(annotations[key])
    maintainers = annotations.get("artifacthub.io/maintainers")
    if isinstance(maintainers, str) and not check_maintainers(rel, maintainers) and _load(maintainers) != MAINTAINERS:
        problems.append(
            f"{rel}: annotation artifacthub.io/maintainers: must be {MAINTAINERS} "
            f"(as {reg.folder}/{METADATA_FILE}'s owners)"
        )
    if annotations.get("artifacthub.io/license") not in (None, LICENSE):
        problems.append(
            f"{rel}: annotation artifacthub.io/license {annotations['artifacthub.io/license']!r} "
            f"is not the catalog's {LICENSE}"
        )
    if annotations.get("artifacthub.io/provider") not in (None, PROVIDER):
        problems.append(
            f"{rel}: annotation artifacthub.io/provider {annotations['artifacthub.io/provider']!r} is not {PROVIDER!r}"
        )
    category = annotations.get("artifacthub.io/category")
    if category is not None and category not in CATEGORIES:
        problems.append(
            f"{rel}: annotation artifacthub.io/category {category!r} is not one of "
            f"{', '.join(sorted(CATEGORIES))}; {SKIPS}"
        )
    alternative = annotations.get("artifacthub.io/alternativeName")
    if isinstance(alternative, str) and alternative and alternative not in name and name not in alternative:
        problems.append(
            f"{rel}: annotation artifacthub.io/alternativeName {alternative!r} must contain or be contained in {name!r}"
        )
    deprecated = annotations.get("tekton.dev/deprecated")  # tekton.go: strconv.ParseBool
    if deprecated is not None and deprecated not in {
        "1",
        "t",
        "T",
        "TRUE",
        "true",
        "True",
        "0",
        "f",
        "F",
        "FALSE",
        "false",
        "False",
    }:
        problems.append(f"{rel}: annotation tekton.dev/deprecated {deprecated!r} is not true or false; {SKIPS}")
    for platform in str(annotations.get("tekton.dev/platforms", "")).split(","):
        if platform.strip() and not re.match(r"^[a-z0-9]+/[a-z0-9_]+(/v[0-9]+)?$", platform.strip()):
            problems.append(f"{rel}: annotation tekton.dev/platforms: {platform.strip()!r} is not os/arch")
    min_version = annotations.get("tekton.dev/pipelines.minVersion")
    if isinstance(min_version, str) and not re.match(r"^[0-9]+\.[0-9]+\.[0-9]+$", min_version):
        problems.append(
            f"{rel}: annotation tekton.dev/pipelines.minVersion {min_version!r} is not a version like 0.56.0"
        )

    if reg.kind == "Pipeline":
        # Convention: a Pipeline recommends each catalog Task it runs, so its page leads to them.
        spec = doc.get("spec") or {}
        tasks = REGISTRATIONS["tasks"]
        used = {
            (t.get("taskRef") or {}).get("name")
            for t in list(spec.get("tasks") or []) + list(spec.get("finally") or [])
            if isinstance(t, dict)
        }
        ours = packages.get((tasks.package_kind, tasks.name), set())
        missing = sorted(
            n for n in used & ours if n not in recommended(annotations.get("artifacthub.io/recommendations"), tasks)
        )
        if missing:
            problems.append(
                f"{rel}: annotation artifacthub.io/recommendations: does not recommend the tasks it runs: "
                f"{', '.join(missing)}"
            )

    # Images: Artifact Hub lists the steps' image: fields (a Pipeline's only from embedded taskSpecs),
    # no annotation; a parameterised image is left out of the list, a malformed one fails the package.
    for step in _steps(doc):
        image = step.get("image")
        label = f"{rel}: step {step.get('name', '?')!r} image {image!r}"
        if not isinstance(image, str) or not image:
            continue
        if "$(" in image:
            problems.append(f"{label}: a parameter; Artifact Hub lists no image for this step")
            continue
        why = image_reference_problem(image)
        if why:
            problems.append(f"{label}: {why}; {SKIPS}")
        elif pinned and "@sha256:" not in image:
            problems.append(f"{label}: a released Task names its image by digest (name:tag@sha256:...)")

    # README.md and samples/*.yaml: read only as regular files; a symlinked README is left out, a
    # symlinked sample fails the whole package (generic.GetFilesWithSuffix -> util.ReadRegularFile).
    readme = path.parent / "README.md"
    if readme.is_symlink() or not readme.is_file():
        problems.append(
            f"{rel.rsplit('/', 1)[0]}/README.md: missing or not a regular file; Artifact Hub shows no README"
        )
    samples = path.parent / "samples"
    if samples.is_dir():
        for sample in sorted(samples.rglob("*.yaml")):
            if sample.is_symlink() or not sample.is_file():
                problems.append(f"{sample.relative_to(root)}: sample is not a regular file; {SKIPS}")
    return problems


def check_metadata_file(root: Path, reg: Registration) -> list[str]:
    """<registered path>/artifacthub-repo.yml: where Artifact Hub reads it for a git registration
    (internal/repo/manager.go locateMetadataFile: the clone joined with the URL's path)."""
    path = root / reg.folder / METADATA_FILE
    rel = f"{reg.folder}/{METADATA_FILE}"
    if not path.is_file():
        return [
            f"{rel}: missing; Artifact Hub reads the repository metadata (owners, repositoryID) at the registered path"
        ]
    try:
        data = _load(path.read_text())
    except yaml.YAMLError as err:
        return [f"{rel}: is not valid YAML ({str(err).splitlines()[0]}); Artifact Hub ignores it"]
    if not isinstance(data, dict):
        return [f"{rel}: must be a mapping (repositoryID, owners, ignore); Artifact Hub ignores it"]
    problems = []
    if set(data) - {"repositoryID", "owners", "ignore"}:
        problems.append(
            f"{rel}: unknown keys {sorted(set(data) - {'repositoryID', 'owners', 'ignore'})} "
            "(Artifact Hub reads repositoryID, owners, ignore)"
        )
    repo_id = data.get("repositoryID")
    uuid = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    if repo_id not in (None, "") and not (isinstance(repo_id, str) and re.match(uuid, repo_id)):
        problems.append(f"{rel}: repositoryID {repo_id!r} is not a UUID; Artifact Hub rejects the whole file")
    owners = data.get("owners")
    if not isinstance(owners, list) or not owners:
        problems.append(f"{rel}: owners: must list the repository's owners (name, email) for the ownership claim")
    else:
        for i, owner in enumerate(owners, 1):
            if not isinstance(owner, dict) or not owner.get("email") or not owner.get("name"):
                problems.append(f"{rel}: owners: entry {i} needs a name and an email")
        if owners != MAINTAINERS:
            problems.append(f"{rel}: owners: must be {MAINTAINERS} (the packages' maintainers)")
    for i, entry in enumerate(data.get("ignore") or [], 1):
        if not isinstance(entry, dict) or not entry.get("name"):
            problems.append(f"{rel}: ignore: entry {i} needs a package name")
            continue
        try:
            re.compile(str(entry.get("version", "")))
        except re.error:
            problems.append(f"{rel}: ignore: entry {i} version {entry['version']!r} is not a regular expression")
    return problems


def check(root: Path, folders: tuple[str, ...] = tuple(REGISTRATIONS), pinned: bool = False) -> list[str]:
    """Every problem Artifact Hub's Tekton tracker would have with the registered paths under root.

    pinned: the released files (hack/release.py's dist/), whose step images must carry their digest.
    """
    problems = []
    for name in ("artifacthub-repo.yml", "artifacthub-repo.yaml"):
        if (root / name).exists():
            problems.append(
                f"{name}: at the repository root no registration reads it; it belongs at the registered paths "
                f"({', '.join(f'{f}/{METADATA_FILE}' for f in REGISTRATIONS)})"
            )
    packages = {
        (reg.package_kind, reg.name): {p.name for p in (root / reg.folder).iterdir() if p.is_dir()}
        for reg in REGISTRATIONS.values()
        if (root / reg.folder).is_dir()
    }
    for folder in folders:
        reg = REGISTRATIONS[folder]
        base = root / folder
        if not base.is_dir():
            problems.append(f"{folder}/: missing, but registered on Artifact Hub as {reg.name}")
            continue
        problems += check_metadata_file(root, reg)
        # tekton.go processDirBasedCatalog: every folder is a package, every sub-folder whose name
        # parses as a (loose) semantic version is one of its versions; anything else is skipped.
        for package in sorted(p for p in base.iterdir() if p.is_dir()):
            versions = sorted(v for v in package.iterdir() if v.is_dir())
            if not versions:
                problems.append(f"{package.relative_to(root)}: no version folder; Artifact Hub lists nothing for it")
            for version in versions:
                rel = version.relative_to(root)
                if hub_version(version.name) is None:
                    problems.append(
                        f"{rel}: folder name is not a semantic version; Artifact Hub skips it without a word"
                    )
                    continue
                manifest = version / f"{package.name}.yaml"
                if not manifest.is_file():
                    problems.append(
                        f"{rel}: no {package.name}.yaml (the manifest is named after its package folder); {SKIPS}"
                    )
                    continue
                try:
                    doc = _load(manifest.read_text())
                except yaml.YAMLError as err:
                    problems.append(
                        f"{manifest.relative_to(root)}: is not valid YAML ({str(err).splitlines()[0]}); {SKIPS}"
                    )
                    continue
                problems += check_manifest(root, reg, manifest, doc, packages, pinned)
    return problems
