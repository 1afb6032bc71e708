"""Catalog tooling: README tables generated from the YAML, and the checks hubs and catlin make.

python hack/catalog.py readme   # rewrite the generated part of every README
python hack/catalog.py check    # list every convention broken (exit 1 if any), Artifact Hub's
                                # rules (hack/artifacthub.py) included
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

try:
    from hack import artifacthub
except ImportError:  # run as a script: hack/ itself is on sys.path
    import artifacthub  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- BEGIN GENERATED: do not edit, run `make catalog` -->", "<!-- END GENERATED -->"
CATEGORIES = {
    "Automation",
    "Build Tools",
    "CLI",
    "Cloud",
    "Code Quality",
    "Continuous Integration",
    "Deployment",
    "Developer Tools",
    "Image Build",
    "Integration & Delivery",
    "Git",
    "Kubernetes",
    "Messaging",
    "Monitoring",
    "Networking",
    "Openshift",
    "Publishing",
    "Security",
    "Storage",
    "Testing",
}
REQUIRED_ANNOTATIONS = (
    "tekton.dev/pipelines.minVersion",
    "tekton.dev/categories",
    "tekton.dev/tags",
    "tekton.dev/displayName",
    "tekton.dev/platforms",
)
KINDS = {"tasks": "Task", "pipelines": "Pipeline"}
# The platforms the catalog's images are built for: `make release` builds each image for all of them,
# one manifest list per image (hack/release.py passes them to hack/images.sh as PLATFORMS), and
# `make test-slow` checks every ELF file of the arm64 images is aarch64. A Task or Pipeline may claim
# no other.
BUILT_PLATFORMS = ("linux/amd64", "linux/arm64")
# A seccomp profile's architectures (SCMP_ARCH_*) and the platform each is: a Task whose step runs
# under a Localhost profile of its seccomp/ folder claims only the platforms the profile was made for
# (a profile measured on x86_64 says nothing of arm64's syscalls).
SECCOMP_PLATFORMS = {"SCMP_ARCH_X86_64": "linux/amd64", "SCMP_ARCH_AARCH64": "linux/arm64"}


def claimed_platforms(doc: dict) -> list[str]:
    annotations = doc.get("metadata", {}).get("annotations", {})
    return [p for p in (p.strip() for p in str(annotations.get("tekton.dev/platforms", "")).split(",")) if p]


def _localhost_profiles(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["localhostProfile"]] if isinstance(node.get("localhostProfile"), str) else []
        return found + [name for value in node.values() for name in _localhost_profiles(value)]
    if isinstance(node, list):
        return [name for value in node for name in _localhost_profiles(value)]
    return []


def seccomp_platforms(path: Path, doc: dict) -> set[str] | None:
    """The platforms the Task's own seccomp profiles (seccomp/<localhostProfile>) were made for; None
    when it has none."""
    platforms: set[str] | None = None
    for name in _localhost_profiles(doc.get("spec", {})):
        profile = path.parent / "seccomp" / Path(name).name
        if profile.is_file():
            archs = json.loads(profile.read_text()).get("architectures", [])
            made_for = {SECCOMP_PLATFORMS.get(a, a) for a in archs}
            platforms = made_for if platforms is None else platforms & made_for
    return platforms


STEP_IMAGE = "ghcr.io/waterschap/druppie-step"
# The catalog's own images share one version (steps/pyproject.toml): the step program, the same
# plus the scanners (druppie-scan), the same plus buildah and syft (druppie-build).
CATALOG_IMAGES = tuple(f"ghcr.io/waterschap/druppie-{kind}" for kind in ("step", "scan", "build"))


def step_version(root: Path = ROOT) -> str:
    """The one source of the step image's version: steps/pyproject.toml."""
    pyproject = root / "steps" / "pyproject.toml"
    if not pyproject.is_file():
        pyproject = ROOT / "steps" / "pyproject.toml"
    return re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.M)[1]


def resources(root: Path = ROOT) -> list[tuple[str, Path, dict]]:
    """(kind folder, yaml path, document) for every tasks/<name>/<version>/<name>.yaml and pipelines/..."""
    found = []
    for folder in KINDS:
        for path in sorted((root / folder).glob("*/*/*.yaml")):
            if path.stem == path.parent.parent.name:
                found.append((folder, path, yaml.safe_load(path.read_text())))
    return found


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def tables(doc: dict) -> str:
    spec = doc["spec"]
    out = []
    if spec.get("params"):
        out += ["### Parameters", "", "| name | type | description | default |", "|---|---|---|---|"]
        for p in spec["params"]:
            default = f"`{_cell(p['default'])}`" if "default" in p else "(required)"
            if default == "``":
                default = '`""`'
            out.append(f"| `{p['name']}` | {p.get('type', 'string')} | {_cell(p.get('description', ''))} | {default} |")
        out.append("")
    if spec.get("workspaces"):
        out += ["### Workspaces", "", "| name | description | optional |", "|---|---|---|"]
        for w in spec["workspaces"]:
            out.append(
                f"| `{w['name']}` | {_cell(w.get('description', ''))} | {'yes' if w.get('optional') else 'no'} |"
            )
        out.append("")
    if spec.get("results"):
        out += ["### Results", "", "| name | description |", "|---|---|"]
        for r in spec["results"]:
            out.append(f"| `{r['name']}` | {_cell(r.get('description', ''))} |")
        out.append("")
    return "\n".join(out)


def render_readme(text: str, doc: dict) -> str:
    return _replace_block(text, tables(doc))


def _replace_block(text: str, content: str) -> str:
    block = f"{BEGIN}\n{content}{END}"
    if BEGIN in text and END in text:
        return re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def index_table(root: Path = ROOT) -> str:
    """The README.md overview: every task and pipeline with its params and results."""
    out = [
        "| task / pipeline | version | what it does | params (**required**) | results | platforms |",
        "|---|---|---|---|---|---|",
    ]
    for _, path, doc in resources(root):
        spec = doc["spec"]
        params = ", ".join(f"**{p['name']}**" if "default" not in p else p["name"] for p in spec.get("params", []))
        results = ", ".join(r["name"] for r in spec.get("results", []))
        link = f"[{doc['metadata']['name']}]({path.parent.relative_to(root)}/README.md)"
        summary = _cell(spec.get("description", "")).split(". ")[0].rstrip(".") + "."
        platforms = ", ".join(claimed_platforms(doc))
        out.append(f"| {link} | {path.parent.name} | {summary} | {params} | {results} | {platforms} |")
    return "\n".join(out) + "\n"


def _steps(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    return (
        list(spec.get("steps", []))
        + list(spec.get("sidecars", []))
        + ([spec["stepTemplate"]] if "stepTemplate" in spec else [])
    )


BUNDLES_BEGIN, BUNDLES_END = "# BEGIN bundles: written by `make bundles`", "# END bundles"
BUNDLE_KINDS = {"tasks": "task", "pipelines": "pipeline"}


def _bundles(root: Path, index: dict, listed: dict) -> tuple[dict[str, dict], list[str]]:
    """catalog.yaml's bundles block (written by `make bundles`; a release commit has one): {task or
    pipeline name: its entry}, and what is wrong with it. No block is fine: main has none."""
    entries = index.get("bundles")
    text = (root / "catalog.yaml").read_text()
    if entries is None:
        return {}, ([f"catalog.yaml: {BUNDLES_BEGIN!r} without a bundles: list"] if BUNDLES_BEGIN in text else [])
    problems = []
    lines = text.splitlines()
    if (
        BUNDLES_BEGIN not in lines
        or BUNDLES_END not in lines
        or not (lines.index(BUNDLES_BEGIN) < lines.index("bundles:") < lines.index(BUNDLES_END))
    ):
        problems.append(f"catalog.yaml: the bundles list must stand between {BUNDLES_BEGIN!r} and {BUNDLES_END!r}")
    found: dict[str, dict] = {}
    registries = set()
    for entry in entries if isinstance(entries, list) else []:
        name, kind, version = entry.get("name"), entry.get("kind"), str(entry.get("version"))
        folder = next((f for f, k in BUNDLE_KINDS.items() if k == kind), None)
        label = f"catalog.yaml: bundles: {name}"
        if folder is None or (folder, name, version) not in listed:
            problems.append(f"{label}: {kind} {name} {version} is no task or pipeline of catalog.yaml")
            continue
        if name in found:
            problems.append(f"{label}: listed twice")
        found[name] = entry
        bundle = str(entry.get("bundle", ""))
        registry, _, rest = bundle.rpartition("/waterschap/druppie-catalog/")
        registries.add(registry)
        if not registry or rest != f"{name}:{version}":
            problems.append(
                f"{label}: bundle {bundle!r} must be <registry>/waterschap/druppie-catalog/{name}:{version}"
            )
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", str(entry.get("digest", ""))):
            problems.append(f"{label}: digest {entry.get('digest')!r} is not sha256:<64 hex digits>")
    if len(registries) > 1:
        problems.append(f"catalog.yaml: bundles: pushed to more than one registry ({', '.join(sorted(registries))})")
    for folder, name, version in listed:
        if name not in found:
            problems.append(f"catalog.yaml: bundles: no bundle of {BUNDLE_KINDS[folder]} {name} {version}")
    return found, problems


def _task_refs(rel: Path, spec: dict, recorded: dict[str, dict]) -> list[str]:
    """A Pipeline's taskRefs to bundles (a released Pipeline) name the bundle catalog.yaml records, by digest."""
    problems = []
    for task in [*spec.get("tasks", []), *spec.get("finally", [])]:
        ref = task.get("taskRef") or {}
        if ref.get("resolver") != "bundles":
            continue
        params = {p.get("name"): p.get("value") for p in ref.get("params", [])}
        entry = recorded.get(params.get("name"))
        want = f"{entry['bundle']}@{entry['digest']}" if entry else None
        if params.get("kind") != "task" or entry is None or entry.get("kind") != "task" or params.get("bundle") != want:
            problems.append(
                f"{rel}: task {task.get('name')!r}: its bundles taskRef (bundle {params.get('bundle')!r}, "
                f"name {params.get('name')!r}, kind {params.get('kind')!r}) is not a Task's bundle "
                "by the digest catalog.yaml records"
            )
    return problems


def check(root: Path = ROOT) -> list[str]:
    problems: list[str] = []
    index = yaml.safe_load((root / "catalog.yaml").read_text()) or {}
    for entry in index.get("images") or []:
        if entry.get("name") in CATALOG_IMAGES and str(entry.get("version")) != step_version(root):
            problems.append(
                f"catalog.yaml: images: {entry.get('name')} version {entry.get('version')!r} is not "
                f"steps/pyproject.toml's {step_version(root)!r}: run `make release`"
            )
    recorded_images = {e.get("name"): e.get("digest") for e in index.get("images") or []}
    listed = {(k, e["name"], str(e["version"])): e for k in KINDS for e in index.get(k) or []}
    recorded_bundles, bundle_problems = _bundles(root, index, listed)
    problems += bundle_problems
    seen = set()
    found = resources(root)
    # What each of the catalog's Tasks claims (over its versions): a Pipeline claims no more than its Tasks.
    task_platforms: dict[str, set[str]] = {}
    for folder, path, doc in found:
        if folder == "tasks":
            claims = set(claimed_platforms(doc))
            name = path.parent.parent.name
            task_platforms[name] = task_platforms.get(name, claims) & claims
    for folder, path, doc in found:
        rel = path.relative_to(root)
        name, version = path.parent.parent.name, path.parent.name
        meta = doc.get("metadata", {})
        seen.add((folder, name, version))
        if doc.get("kind") != KINDS[folder] or doc.get("apiVersion") != "tekton.dev/v1":
            problems.append(f"{rel}: must be a tekton.dev/v1 {KINDS[folder]}")
        if meta.get("name") != name:
            problems.append(f"{rel}: metadata.name {meta.get('name')!r} differs from folder {name!r}")
        if str(meta.get("labels", {}).get("app.kubernetes.io/version")) != version:
            problems.append(f"{rel}: label app.kubernetes.io/version must be {version!r} (the folder)")
        annotations = meta.get("annotations", {})
        for key in REQUIRED_ANNOTATIONS:
            if not annotations.get(key):
                problems.append(f"{rel}: missing annotation {key}")
        profiled = seccomp_platforms(path, doc) if folder == "tasks" else None
        if folder == "pipelines":
            for pipeline_task in [*doc.get("spec", {}).get("tasks", []), *doc.get("spec", {}).get("finally", [])]:
                ref = (pipeline_task.get("taskRef") or {}).get("name")
                if ref in task_platforms:
                    profiled = task_platforms[ref] if profiled is None else profiled & task_platforms[ref]
        for platform in claimed_platforms(doc):
            if platform not in BUILT_PLATFORMS:
                problems.append(f"{rel}: tekton.dev/platforms claims {platform}, but the images are built for "
                                f"{', '.join(BUILT_PLATFORMS)} only")  # fmt: skip
            elif profiled is not None and platform not in profiled:
                why = "its seccomp profile is made for" if folder == "tasks" else "its Tasks claim"
                problems.append(f"{rel}: tekton.dev/platforms claims {platform}, but {why} "
                                f"{', '.join(sorted(profiled)) or 'no platform'} only")  # fmt: skip
        for category in filter(None, (c.strip() for c in str(annotations.get("tekton.dev/categories", "")).split(","))):
            if category not in CATEGORIES:
                problems.append(f"{rel}: unknown category {category!r}")
        spec = doc.get("spec", {})
        if not spec.get("description"):
            problems.append(f"{rel}: spec.description is empty")
        for p in spec.get("params", []):
            if not p.get("description") or not p.get("type"):
                problems.append(f"{rel}: param {p.get('name')!r} needs a description and a type")
        for r in spec.get("results", []):
            if not r.get("description"):
                problems.append(f"{rel}: result {r.get('name')!r} needs a description")
        for step in _steps(doc):
            label = f"{rel}: step {step.get('name', '(template)')!r}"
            for field in ("script", "command", "args", "workingDir"):
                if "$(params." in yaml.safe_dump(step.get(field, "")):
                    problems.append(f"{label}: $(params.*) in {field}; pass params through env")
            image = step.get("image")
            if image is not None:
                if "." not in image.split("/")[0] or len(image.split("/")) < 2:
                    problems.append(f"{label}: image {image!r} is not fully qualified")
                if image.endswith(":latest") or (":" not in image.split("/")[-1] and "@" not in image):
                    problems.append(f"{label}: image {image!r} must be pinned (no :latest)")
                own = next((i for i in CATALOG_IMAGES if image.startswith(i + ":")), None)
                tagged, _, digest = image.partition("@")
                if own and tagged != f"{own}:{step_version(root)}":
                    problems.append(
                        f"{label}: image {image!r} must be {own}:{step_version(root)} "
                        "(the version in steps/pyproject.toml; `make release` pins the digest)"
                    )
                elif own and digest and digest != recorded_images.get(own):
                    # a released file (the release commit) pins the digest catalog.yaml records
                    problems.append(
                        f"{label}: image {image!r} is pinned to another digest than catalog.yaml's images "
                        f"record ({recorded_images.get(own)})"
                    )
            if (
                folder == "tasks"
                and "name" in step
                and "computeResources" not in step
                and "computeResources" not in spec.get("stepTemplate", {})
            ):
                problems.append(f"{label}: needs computeResources")
            for env in step.get("env", []):
                if re.search(r"(?i)(token|password|secret)", env.get("name", "")) and "value" in env:
                    problems.append(f"{label}: secret-like env {env['name']!r} set as a plain value")
        if folder == "pipelines":
            problems += _task_refs(rel, spec, recorded_bundles)
        readme = path.parent / "README.md"
        if not readme.is_file():
            problems.append(f"{rel.parent}: missing README.md")
        elif render_readme(readme.read_text(), doc) != readme.read_text():
            problems.append(f"{rel.parent}/README.md: generated tables are stale; run `make catalog`")
        if folder == "tasks" and not list((path.parent / "samples").glob("*.yaml")):
            problems.append(f"{rel.parent}: no samples/*.yaml")
        entry = listed.get((folder, name, version))
        if entry is None:
            problems.append(f"catalog.yaml: {folder} entry {name} {version} missing")
        elif entry.get("path") != str(rel):
            problems.append(f"catalog.yaml: {name} {version} path should be {rel}")
    top = root / "README.md"
    if top.is_file() and _replace_block(top.read_text(), index_table(root)) != top.read_text():
        problems.append("README.md: the task table is stale; run `make catalog`")
    for key in set(listed) - seen:
        problems.append(f"catalog.yaml: lists {key[0]} {key[1]} {key[2]}, which does not exist")
    return problems + artifacthub.check(root)


def main(argv: list[str]) -> int:
    if argv[:1] == ["readme"]:
        for _, path, doc in resources():
            readme = path.parent / "README.md"
            text = readme.read_text() if readme.exists() else f"# {doc['metadata']['name']}\n"
            new = render_readme(text, doc)
            if new != text:
                readme.write_text(new)
                print(f"updated {readme.relative_to(ROOT)}")
        top = ROOT / "README.md"
        new = _replace_block(top.read_text(), index_table())
        if new != top.read_text():
            top.write_text(new)
            print("updated README.md")
        return 0
    if argv[:1] == ["check"]:
        problems = check()
        for p in problems:
            print(p)
        print(f"catalog: {len(resources())} resources, {len(problems)} problems")
        return 1 if problems else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
