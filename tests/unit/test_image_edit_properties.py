"""Property: for any generated kustomization or Deployment the edit is refused, or exactly right.

Exactly right: the new text parses to the old documents with only the image's tag (and digest)
changed, and every byte outside the changed values (and the points where a key or entry may be
added) is the original byte. Each generated file is a list of parts: literal text that must
survive byte for byte, values that may be rewritten, points where text may be inserted, and a
stale digest that may be removed whole (``(OPT, (key, value, end))``).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from druppie_steps.core.errors import StepError
from druppie_steps.gitops.image_edit import plan_image_update
from druppie_steps.gitops.imageref import parse_reference

IMAGE = "registry.example/druppie/drone-service"
OLD_DIGEST = "sha256:" + "cd" * 32
DIGEST = "sha256:" + "ab" * 32
# Under mutation testing (mutmut runs where it keeps .mutmut-cache) any failing example will do: fewer, unshrunk.
_MUTATION = Path(".mutmut-cache").exists()
SETTINGS = settings(
    max_examples=30 if _MUTATION else 100,
    deadline=None,
    phases=[p for p in Phase if not (_MUTATION and p is Phase.shrink)],
    suppress_health_check=[HealthCheck.too_slow],
)

LIT, VAL, INS, OPT = "lit", "val", "ins", "opt"
PATTERN = {VAL: r"[^\r\n]*?", INS: r"[\s\S]*?"}  # a new value is one line; an insert is whole keys or entries


def render(parts) -> str:
    return "".join("".join(text) if kind == OPT else text for kind, text in parts)


def byte_pattern(parts) -> re.Pattern:
    def one(kind, text):
        if kind == OPT:
            key, _, end = text
            return f"(?:{re.escape(key)}{PATTERN[VAL]}{re.escape(end)})?"
        return re.escape(text) if kind == LIT else PATTERN[kind]

    return re.compile("".join(one(kind, text) for kind, text in parts))


def drop_final_newline(parts) -> list:
    """The same file without its trailing line break (the last literal ends with one)."""
    i = max(i for i, (kind, _) in enumerate(parts) if kind == LIT)
    return [*parts[:i], (LIT, parts[i][1].rstrip("\r\n")), *parts[i + 1 :]]


quoted = st.sampled_from(["{}", "'{}'", '"{}"'])  # plain, single, double
comment = st.sampled_from(["", "  # kept", " #x"])


@st.composite
def tag_value(draw, block_ok: bool, indent: str, nl: str):
    """(text, kind) of a current newTag: quoted or not, with an anchor or a tag, a block scalar, empty."""
    current = draw(st.sampled_from(["1.0.4", "1.0.5", "latest", "v0.9.0"]))
    kinds = ["quoted", "anchor", "tag", "empty"] + (["block"] if block_ok else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "block":
        return f"{draw(st.sampled_from(['|', '>-', '|-']))}{nl}{indent}    {current}", kind
    if kind == "empty":
        return "", kind
    text = draw(quoted).format(current)
    return {"anchor": "&t " + text, "tag": "!!str " + text}.get(kind, text), kind


@st.composite
def kustomizations(draw):
    """(parts, index of our images entry or None when one must be added, must the edit be refused)."""
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    ind = draw(st.sampled_from(["", "  "]))
    parts: list = []

    def lit(text):
        parts.append((LIT, text.replace("\n", nl)))

    if draw(st.booleans()):
        lit("# managed by CI  \n")
    lit("apiVersion: kustomize.config.k8s.io/v1beta1\nkind:   Kustomization\n")
    lit(draw(st.sampled_from([f"resources:\n{ind}- deployment.yaml\n", "resources: [deployment.yaml]\n"])))
    mode = draw(st.sampled_from(["absent", "block", "block", "flow", "alias", "shared"]))
    other = f"name: other/image{draw(comment) if mode == 'block' else ''}"
    others_before = draw(st.booleans())
    name = draw(quoted).format(IMAGE)
    digest = f"digest: {OLD_DIGEST}" if draw(st.booleans()) else ""
    index, refuse = (1 if others_before else 0), False
    if mode == "absent":
        index = None
    elif mode == "block":
        lit("images:\n")
        if others_before:
            lit(f"{ind}- {other}\n{ind}  newTag: '2.0'\n")
        lit(f"{ind}- name: {name}\n{ind}  newTag: ")
        value, kind = draw(tag_value(True, ind, nl))
        parts.append((VAL, value))
        lit(("" if kind == "block" else draw(comment)) + "\n")  # after a block scalar's line: its text
        if digest:
            parts.append((OPT, (f"{ind}  digest: ", OLD_DIGEST, nl)))
        parts.append((INS, ""))
        if not others_before:
            lit(f"{ind}- {other}\n")
    elif mode in ("flow", "alias"):
        value, _ = draw(tag_value(False, ind, nl))
        entry = (
            [(LIT, f"{{name: {name}, newTag: "), (VAL, value)]
            + ([(OPT, (", digest: ", OLD_DIGEST, ""))] if digest else [])
            + [(INS, ""), (LIT, "}")]
        )
        if mode == "alias":  # one entry reached twice through an alias
            parts += [(LIT, "x-entry: &e "), *entry, (LIT, nl)]
            lit("images: [*e, *e]\n")
            index = 0
        else:
            lit("images: [")
            if others_before:
                lit(f"{{{other}}}, ")
            parts += entry
            lit("" if others_before else f", {{{other}}}")
            parts.append((INS, ""))
            lit("]\n")
    else:  # the value's anchor is used elsewhere: changing it would change that too
        lit(f"images:\n- name: {name}\n  newTag: &t 1.0.4\nlabels: [{{pairs: {{version: *t}}}}]\n")
        index, refuse = 0, True
    lit(draw(st.sampled_from(["", "# trailing comment\n", "namePrefix: p-\n"])))
    parts.append((INS, ""))
    if draw(st.booleans()):
        parts = drop_final_newline(parts)
    return parts, index, refuse


@st.composite
def deployments(draw):
    """(parts, [(document, container list key, index) of our image fields])."""
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    parts, ours = [], []

    def lit(text):
        parts.append((LIT, text.replace("\n", nl)))

    for doc in range(draw(st.integers(1, 2))):
        if doc:
            lit(draw(st.sampled_from(["---\n", "--- # next\n"])))
        lit(f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d{doc}\nspec:\n  template:\n    spec:\n")
        flow = draw(st.booleans())
        lit("      containers: [" if flow else "      containers:\n")
        anchored = False
        images = draw(st.lists(st.sampled_from(["ours", "ours@", "other", "busybox"]), min_size=1, max_size=3))
        if doc == 0 and not any(i.startswith("ours") for i in images):
            images[0] = "ours"
        for j, kind in enumerate(images):
            ref = {
                "ours": f"{IMAGE}:1.0.4",
                "ours@": f"{IMAGE}:1.0.4@{OLD_DIGEST}",
                "busybox": "busybox",
                "other": "registry.example/druppie/other:1.0.4",
            }[kind]
            value = draw(quoted).format(ref)
            if flow:
                anchored = anchored or (j == 0 and kind.startswith("ours"))
                lit(f"{', ' if j else ''}{'&c ' if anchored and not j else ''}{{name: c{j}, image: ")
                parts.append((VAL, value))
                lit("}")
            else:
                lit(f"      - name: c{j}\n        image: ")
                parts.append((VAL, value))
                lit(draw(comment) + "\n")
            if kind.startswith("ours"):
                ours.append((doc, "containers", j))
        if flow:
            lit("]\n")
            if anchored and draw(st.booleans()):
                lit("      initContainers: [*c]\n")  # the same container reached again
                ours.append((doc, "initContainers", 0))
    if draw(st.booleans()):
        parts = drop_final_newline(parts)
    return parts, ours


new_tags = st.sampled_from(["1.0.5", "1.0.10", "10.20.300", "v2.0.0"])
digests = st.sampled_from([None, DIGEST])


def run_edit(files: dict[str, str], tag: str, digest: str | None):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8", newline="")
        plan = plan_image_update(root, "app", IMAGE, tag, digest)
        return {str(e.path.relative_to(root)): e.new_text for e in plan.changed_files}


def check_bytes(parts, new_text: str) -> None:
    assert byte_pattern(parts).fullmatch(new_text), f"bytes outside the value changed:\n{new_text!r}"


@SETTINGS
@given(kustomizations(), new_tags, digests)
def test_kustomization_edit_is_refused_or_exact(generated, tag, digest):
    parts, index, refuse = generated
    text = render(parts)
    deployment = f"kind: Deployment\nspec:\n  containers:\n  - image: {IMAGE}:1.0.4\n"
    try:
        changed = run_edit({"app/kustomization.yaml": text, "app/deployment.yaml": deployment}, tag, digest)
    except StepError as err:
        assert refuse, f"refused a supported file: {err}\n{text!r}"
        return
    assert not refuse, f"edited a file it must refuse:\n{text!r}"
    expected = yaml.safe_load(text)
    pinned = {"digest": digest} if digest else {}
    if index is None:
        expected["images"] = [{"name": IMAGE, "newTag": tag, **pinned}]
    else:  # the entry's other keys as they were; an old digest only stays with its own tag
        entry = expected["images"][index]
        kept = {k: v for k, v in entry.items() if k != "digest" or entry.get("newTag") == tag}
        entry.clear()  # in place: an entry reached twice through an alias is one dict
        entry.update(kept, newTag=tag, **pinned)
    new_text = changed.get("app/kustomization.yaml", text)
    new = yaml.safe_load(new_text)
    assert new == expected
    ours = [e for e in new["images"] if IMAGE in (e.get("name"), e.get("newName"))]
    assert ours and all(e["newTag"] == tag and e.get("digest") == (digest or e.get("digest")) for e in ours)
    check_bytes(parts, new_text)


@SETTINGS
@given(deployments(), new_tags, digests)
def test_manifest_edit_is_refused_or_exact(generated, tag, digest):
    parts, ours = generated
    text = render(parts)
    try:
        changed = run_edit({"app/deploy.yaml": text}, tag, digest)
    except StepError as err:
        raise AssertionError(f"refused a supported file: {err}\n{text!r}") from err
    docs = list(yaml.safe_load_all(text))
    for doc, key, j in ours:
        container = docs[doc]["spec"]["template"]["spec"][key][j]
        ref = parse_reference(container["image"])
        kept = ref.digest if ref.tag == tag and not digest else None
        container["image"] = f"{IMAGE}:{tag}" + (f"@{digest or kept}" if digest or kept else "")
    new_text = changed.get("app/deploy.yaml", text)
    assert list(yaml.safe_load_all(new_text)) == docs
    check_bytes(parts, new_text)
