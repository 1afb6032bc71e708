"""Set an image's tag (and digest) in a GitOps folder, changing nothing else in the files.

Round-trip YAML libraries re-emit the whole document and drift on indentation, quoting or
comment placement. Here we only *read* with PyYAML's composer, which gives every node's exact
character span and quoting style, and then splice the new value into the original text. Every
byte outside the changed value stays as the humans wrote it (comments, order, quotes, CRLF).

Rules, as `kustomize edit set image` applies them:
- a ``kustomization.yaml`` with an ``images:`` entry whose ``name`` or ``newName`` is the image:
  set ``newTag`` (and ``digest``; a digest left over from an older tag is removed);
- a kustomization without such an entry whose resources use the image: add an entry;
- no kustomization: every ``image:`` field with that image name is rewritten in place.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..core.errors import InvalidInput, StepError
from .imageref import ImageRef, compare_tags, parse_reference

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass
class Splice:
    start: int
    end: int
    text: str


@dataclass
class FileEdit:
    path: Path
    old_text: str
    splices: list[Splice] = field(default_factory=list)

    @property
    def new_text(self) -> str:
        text = self.old_text
        for s in sorted(self.splices, key=lambda s: s.start, reverse=True):
            text = text[: s.start] + s.text + text[s.end :]
        return text


@dataclass
class ImagePlan:
    """What setting the image would change, found before anything is written."""

    edits: list[FileEdit]
    previous_tags: list[str]
    where: list[str]  # human-readable locations, for the log

    @property
    def changed_files(self) -> list[FileEdit]:
        return [e for e in self.edits if e.new_text != e.old_text]

    @property
    def previous_tag(self) -> str:
        """The highest tag found (semver order where it applies), or '' when none was set."""
        best = ""
        for tag in self.previous_tags:
            if not best or (compare_tags(tag, best) or 0) > 0:
                best = tag
        return best

    def apply(self) -> None:
        for edit in self.changed_files:
            edit.path.write_text(edit.new_text, encoding="utf-8", newline="")


# ---- reading -------------------------------------------------------------------------------

def _read(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", newline="") as f:  # newline="" keeps CRLF as it is
            return f.read()
    except UnicodeDecodeError as err:
        raise StepError(f"{path.name}: not UTF-8 text ({err.reason})") from err


def _compose_all(text: str, label: str) -> list[Node]:
    try:
        return [n for n in yaml.compose_all(text, Loader=yaml.SafeLoader) if n is not None]
    except yaml.YAMLError as err:
        first_line = str(err).replace("\n", " ")
        raise StepError(f"{label}: not valid YAML: {first_line}") from err


def _get(mapping: MappingNode, key: str) -> Node | None:
    for k, v in mapping.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return v
    return None


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _image_fields(node: Node):
    """Every scalar that is the value of an ``image:`` key, anywhere in the document."""
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == "image" and isinstance(v, ScalarNode):
                yield v
            else:
                yield from _image_fields(v)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from _image_fields(item)


# ---- writing scalars -----------------------------------------------------------------------

def _scalar_text(value: str, style: str | None) -> str:
    """The YAML text for ``value`` in the original quoting style, quoted only where it must be."""
    if style == "'":
        return f"'{value}'"
    if style == '"':
        return f'"{value}"'
    resolved = yaml.resolver.Resolver().resolve(ScalarNode, value, (True, False))
    # A plain 1.10 would be read back as the float 1.1 (and 1e3 as a number): quote those.
    return value if resolved == _STR_TAG and value.strip() == value and ":" not in value[:1] else f'"{value}"'


def _replace_scalar(edit: FileEdit, node: ScalarNode, value: str) -> None:
    if node.value == value:
        return
    style = node.style if node.style in ("'", '"') else None
    edit.splices.append(Splice(node.start_mark.index, node.end_mark.index, _scalar_text(value, style)))


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end + 1


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _set_key(edit: FileEdit, mapping: MappingNode, key: str, value: str, label: str) -> None:
    """Set ``key: value`` in a mapping: replace the value, or add the key after the last one."""
    current = _get(mapping, key)
    if isinstance(current, ScalarNode):
        _replace_scalar(edit, current, value)
        return
    if current is not None:
        raise StepError(f"{label}: '{key}' is not a plain value; fix it by hand")
    text = edit.old_text
    rendered = f"{key}: {_scalar_text(value, None)}"
    if mapping.flow_style:
        close = mapping.end_mark.index - 1  # the closing brace
        sep = ", " if mapping.value else ""
        edit.splices.append(Splice(close, close, sep + rendered))
        return
    last_value = mapping.value[-1][1]
    if not isinstance(last_value, ScalarNode):
        raise StepError(f"{label}: cannot add '{key}' after a nested value; add it by hand once")
    indent = " " * mapping.value[0][0].start_mark.column
    at = _line_end(text, last_value.end_mark.index)
    nl = _newline(text)
    prefix = "" if text[:at].endswith("\n") else nl
    edit.splices.append(Splice(at, at, f"{prefix}{indent}{rendered}{nl}"))


def _remove_key(edit: FileEdit, mapping: MappingNode, key: str, label: str) -> None:
    for k, v in mapping.value:
        if isinstance(k, ScalarNode) and k.value == key:
            text = edit.old_text
            if mapping.flow_style or text.count("\n", k.start_mark.index, v.end_mark.index):
                raise StepError(f"{label}: cannot remove the stale '{key}' automatically; remove it by hand")
            edit.splices.append(Splice(_line_start(text, k.start_mark.index), _line_end(text, v.end_mark.index), ""))
            return


# ---- the plan ------------------------------------------------------------------------------

def plan_image_update(root: Path, subdir: str, image: str, tag: str, digest: str | None) -> ImagePlan:
    """Work out every splice that sets ``image`` to ``tag``/``digest`` under ``root/subdir``."""
    folder = (root / subdir).resolve()
    if not folder.is_relative_to(root.resolve()):
        raise InvalidInput(f"invalid --path {subdir!r}: leaves the repository (through a symlink)")
    if not folder.is_dir():
        raise StepError(f"--path {subdir!r} is not a folder in the repository")
    for name in KUSTOMIZATION_NAMES:
        if (folder / name).is_file():
            return _plan_kustomization(root, folder / name, subdir, image, tag, digest)
    return _plan_manifests(root, folder, subdir, image, tag, digest)


def _plan_kustomization(root: Path, path: Path, subdir: str, image: str, tag: str, digest: str | None) -> ImagePlan:
    label = str(path.relative_to(root))
    edit = FileEdit(path, _read(path))
    docs = _compose_all(edit.old_text, label)
    if len(docs) != 1 or not isinstance(docs[0], MappingNode):
        raise StepError(f"{label}: expected one YAML mapping")
    top = docs[0]
    images = _get(top, "images")
    entries = [e for e in (images.value if isinstance(images, SequenceNode) else []) if isinstance(e, MappingNode)]
    matching = [
        e for e in entries
        if any(isinstance(_get(e, k), ScalarNode) and _get(e, k).value == image for k in ("name", "newName"))
    ]
    plan = ImagePlan([edit], [], [])
    if matching:
        for entry in matching:
            old_tag = _get(entry, "newTag")
            old_digest = _get(entry, "digest")
            tag_same = isinstance(old_tag, ScalarNode) and old_tag.value == tag
            if isinstance(old_tag, ScalarNode) and old_tag.value:
                plan.previous_tags.append(old_tag.value)
            _set_key(edit, entry, "newTag", tag, label)
            if digest:
                _set_key(edit, entry, "digest", digest, label)
            elif old_digest is not None and not tag_same:
                # A digest pins the old build: left in place it would win over the new tag.
                _remove_key(edit, entry, "digest", label)
            plan.where.append(f"{label} images[name={_get(entry, 'name').value}]")
        return plan

    users = list(_resource_image_uses(root, path.parent, image, set()))
    if not users:
        raise StepError(
            f"image {image!r} not found under {subdir!r}: no images: entry in {label} and no resource uses it"
        )
    plan.previous_tags.extend(ref.tag for _, ref in users if ref.tag)
    _add_images_entry(edit, top, images, image, tag, digest, label)
    plan.where.append(f"{label} images (new entry; used by {', '.join(sorted({u for u, _ in users}))})")
    return plan


def _resource_image_uses(root: Path, folder: Path, image: str, seen: set[Path]):
    """(file, ImageRef) for every use of ``image`` in the kustomization's local resources."""
    if folder in seen:
        return
    seen.add(folder)
    kpath = next((folder / n for n in KUSTOMIZATION_NAMES if (folder / n).is_file()), None)
    if kpath is None:
        return
    label = str(kpath.relative_to(root))
    (top,) = _compose_all(_read(kpath), label)[:1] or (None,)
    if not isinstance(top, MappingNode):
        return
    for key in ("resources", "bases", "components"):
        listed = _get(top, key)
        for item in listed.value if isinstance(listed, SequenceNode) else []:
            if not isinstance(item, ScalarNode) or "://" in item.value:
                continue  # remote bases are not ours to edit
            target = (folder / item.value).resolve()
            if not target.is_relative_to(root.resolve()):
                continue
            if target.is_dir():
                yield from _resource_image_uses(root, target, image, seen)
            elif target.is_file():
                rel = str(target.relative_to(root))
                for doc in _compose_all(_read(target), rel):
                    for node in _image_fields(doc):
                        ref = parse_reference(node.value)
                        if ref and ref.name == image:
                            yield rel, ref


def _sequence_indent(top: MappingNode) -> str:
    """How this file indents block sequences under a key ('' for `- x` under `key:`, '  ' etc.)."""
    for k, v in top.value:
        if isinstance(v, SequenceNode) and not v.flow_style and v.value:
            return " " * max(0, v.start_mark.column - k.start_mark.column)
    return ""


def _add_images_entry(edit: FileEdit, top: MappingNode, images: Node | None, image: str, tag: str,
                      digest: str | None, label: str) -> None:
    text, nl = edit.old_text, _newline(edit.old_text)
    fields = [("name", image), ("newTag", tag)] + ([("digest", digest)] if digest else [])
    if top.flow_style:
        raise StepError(f"{label}: a flow-style kustomization cannot be extended automatically")

    def block_item(dash_indent: str) -> str:
        lines = [f"{dash_indent}- {fields[0][0]}: {_scalar_text(fields[0][1], None)}"]
        lines += [f"{dash_indent}  {k}: {_scalar_text(v, None)}" for k, v in fields[1:]]
        return nl.join(lines) + nl

    if isinstance(images, SequenceNode) and images.value and not images.flow_style:
        dash = " " * images.start_mark.column
        last = images.value[-1]
        anchor = last.value[-1][1] if isinstance(last, MappingNode) and last.value else last
        at = _line_end(text, anchor.end_mark.index)
        prefix = "" if text[:at].endswith("\n") else nl
        edit.splices.append(Splice(at, at, prefix + block_item(dash)))
    elif isinstance(images, SequenceNode) and images.flow_style:
        inner = ", ".join(f"{k}: {_scalar_text(v, None)}" for k, v in fields)
        close = images.end_mark.index - 1
        edit.splices.append(Splice(close, close, (", " if images.value else "") + "{" + inner + "}"))
    elif images is None:
        at = len(text)
        prefix = "" if not text or text.endswith("\n") else nl
        edit.splices.append(Splice(at, at, f"{prefix}images:{nl}" + block_item(_sequence_indent(top))))
    else:
        raise StepError(f"{label}: 'images' is not a list; fix it by hand")


def _plan_manifests(root: Path, folder: Path, subdir: str, image: str, tag: str, digest: str | None) -> ImagePlan:
    plan = ImagePlan([], [], [])
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        rel = str(path.relative_to(root))
        edit = FileEdit(path, _read(path))
        for doc in _compose_all(edit.old_text, rel):
            for node in _image_fields(doc):
                ref = parse_reference(node.value)
                if not ref or ref.name != image:
                    continue
                if ref.tag:
                    plan.previous_tags.append(ref.tag)
                keep_digest = ref.digest if (ref.tag == tag and not digest) else None
                _replace_scalar(edit, node, str(ImageRef(image, tag, digest or keep_digest)))
                plan.where.append(f"{rel}:{node.start_mark.line + 1}")
        if edit.splices:
            plan.edits.append(edit)
    if not plan.where:
        raise StepError(f"image {image!r} not found under {subdir!r}: no kustomization and no image: field uses it")
    return plan


def safe_subdir(value: str) -> str:
    """``--path`` as a clean relative POSIX path that cannot leave the repository."""
    cleaned = posixpath.normpath(value.strip().replace("\\", "/")) if value.strip() else ""
    if not cleaned or value.startswith(("/", "~")) or cleaned == ".." or cleaned.startswith("../") or "\0" in value:
        raise InvalidInput(f"invalid --path {value!r}: must be a folder inside the repository, e.g. envs/prod/app")
    return "" if cleaned == "." else cleaned
