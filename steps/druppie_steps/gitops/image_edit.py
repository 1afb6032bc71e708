"""Set an image's tag (and digest) in a GitOps folder, changing nothing else in the files.

Round-trip YAML libraries re-emit the whole document and drift on indentation, quoting or
comment placement. Here we only *read* with PyYAML's composer, which gives every node's exact
character span and quoting style, and then splice the new value into the original text. Every
byte outside the changed value stays as the humans wrote it (comments, order, quotes, CRLF).

Rules, as `kustomize edit set image` applies them:
- a ``kustomization.yaml`` with an ``images:`` entry whose ``name`` or ``newName`` is the image:
  set ``newTag`` (and ``digest``; a digest left over from an older tag is removed);
- a kustomization without such an entry whose resources use the image: add an entry
  ``{name: image, newTag: tag, digest: digest}``; local ``resources``, ``components`` and
  ``bases`` are followed also outside the folder (the ``base/<app>`` of an ``envs/<env>/<app>``
  overlay), as image fields or as ``images:`` entries that name the image;
- no kustomization: every ``image:`` field with that image name is rewritten in place.

Correct or refused: every edit is checked before it can be written. The new text is parsed
again and must hold exactly the old documents with the asked change applied (the image's tag
and digest as asked, nothing else different); otherwise a StepError names file and line.
Constructs that cannot be changed safely in place are refused up front with the same kind of
message: a value that is an alias or an anchor used elsewhere, a merge key (``<<``) in a
matching ``images:`` entry. Anchors and explicit tags on a value are kept, block scalars are
replaced whole, an empty value gets one.

Public API (tag_commit and the kustomize-oracle tests use it)::

    plan_image_update(root: Path, subdir: str, image: str, tag: str, digest: str | None,
                      include: Callable[[str], None] | None = None) -> ImagePlan

``include(folder)`` is called with a repository-relative POSIX folder that a kustomization
lists but that is not on disk, before it is read (``Workspace.include`` in a sparse clone;
None when every folder is already there). ``ImagePlan.changed_files``, ``.previous_tag``,
``.where`` and ``.apply()`` then tell and write the change.

    deployed_reference(root: Path, subdir: str, image: str, include=None) -> (ImageRef, [where])

reads, without changing anything, the one reference a folder deploys (promotion-gate).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..core.errors import InvalidInputError, StepError
from .imageref import ImageRef, highest_tag, parse_reference

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class Splice:
    start: int
    end: int
    text: str


@dataclass
class FileEdit:
    path: Path
    old_text: str
    label: str
    splices: list[Splice] = field(default_factory=list)

    @property
    def new_text(self) -> str:
        text, limit = self.old_text, len(self.old_text)
        # Back to front, so earlier offsets stay valid; of two inserts at one point the first added stays first.
        for _, s in sorted(enumerate(self.splices), key=lambda p: (p[1].start, p[0]), reverse=True):
            if s.end > limit:
                raise StepError(f"{self.label}:{_line(text, s.start)}: two changes overlap; set the tag by hand")
            text, limit = text[: s.start] + s.text + text[s.end :], s.start
        return text

    @cached_property
    def docs(self) -> list[Node]:
        try:
            return [n for n in yaml.compose_all(self.old_text, Loader=yaml.SafeLoader) if n is not None]
        except yaml.YAMLError as err:
            raise StepError(f"{self.label}: not valid YAML: {_one_line(err)}") from err

    @cached_property
    def value_starts(self) -> dict[int, int]:
        """End offset -> start offset of each scalar's own text, after any anchor (&a) or tag (!!str)."""
        return {
            t.end_mark.index: t.start_mark.index
            for t in yaml.scan(self.old_text, Loader=yaml.SafeLoader)
            if isinstance(t, yaml.ScalarToken)
        }

    @cached_property
    def references(self) -> dict[int, int]:
        """How many places (parent node and position) hold each node: more than one is an anchor in use."""
        counts: dict[int, int] = {}
        seen: set[int] = set()
        stack = list(self.docs)
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            children = (
                [c for pair in node.value for c in pair]
                if isinstance(node, MappingNode)
                else (node.value if isinstance(node, SequenceNode) else [])
            )
            for child in children:
                counts[id(child)] = counts.get(id(child), 0) + 1
                stack.append(child)
        return counts


@dataclass
class ImagePlan:
    """What setting the image would change, found (and checked) before anything is written."""

    edits: list[FileEdit]
    previous_tags: list[str]
    where: list[str]  # human-readable locations, for the log

    @property
    def changed_files(self) -> list[FileEdit]:
        return [e for e in self.edits if e.new_text != e.old_text]

    @property
    def previous_tag(self) -> str:
        """The highest tag found (see imageref.highest_tag), or '' when none was set."""
        return highest_tag(self.previous_tags)

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


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _line(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _load_all(text: str, label: str, what: str = "not valid YAML") -> list[Any]:
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise StepError(f"{label}: {what}: {_one_line(err)}") from err


def _get(mapping: MappingNode, key: str) -> Node | None:
    for k, v in mapping.value:
        if isinstance(k, ScalarNode) and k.value == key and isinstance(v, Node):
            return v
    return None


def _key_node(mapping: MappingNode, key: str) -> Node | None:
    return next((k for k, _ in mapping.value if isinstance(k, ScalarNode) and k.value == key), None)


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _image_fields(node: Node) -> Iterator[tuple[ScalarNode, ScalarNode]]:
    """(key, value) for every scalar that is the value of an ``image:`` key, anywhere in the document."""
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == "image" and isinstance(v, ScalarNode):
                yield k, v
            else:
                yield from _image_fields(v)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from _image_fields(item)


def _names_image(entry: Any, image: str) -> bool:
    """An ``images:`` entry (constructed data) that applies to ``image``."""
    return isinstance(entry, dict) and image in (entry.get("name"), entry.get("newName"))


# ---- writing scalars -----------------------------------------------------------------------


def _scalar_text(value: str, style: str | None) -> str:
    """The YAML text for ``value`` in the original quoting style, quoted only where it must be."""
    if style == "'":
        return f"'{value}'"
    if style == '"':
        return f'"{value}"'
    # Values are validated tags, digests and references, but a plain 1.10 would still read back as
    # the float 1.1 (and 1e3 as a number): quote those. The re-parse check stands behind this.
    plain = yaml.resolver.Resolver().resolve(ScalarNode, value, (True, False)) == _STR_TAG
    return value if plain else f'"{value}"'


def _is_alias(key: Node, value: Node) -> bool:
    """A value written as ``*name``: the node PyYAML gives back is the anchored one, elsewhere in the text."""
    return value.start_mark.index < key.end_mark.index


def _value_end(text: str, node: Node) -> int:
    """Where a value's text ends: a block scalar's span runs on over the line breaks after it."""
    start, end = node.start_mark.index, node.end_mark.index
    return start + len(text[start:end].rstrip(" \t\r\n")) if getattr(node, "style", None) in ("|", ">") else end


def _replace_scalar(edit: FileEdit, key: Node, node: ScalarNode, value: str) -> None:
    if node.value == value:
        return
    if _is_alias(key, node) or edit.references[id(node)] > 1:
        raise StepError(
            f"{edit.label}:{key.start_mark.line + 1}: '{key.value}' is an alias or an anchor used "
            "elsewhere; changing it would change the other uses too, set it by hand"
        )
    text = edit.old_text
    start = edit.value_starts.get(node.end_mark.index, node.end_mark.index)  # no token: empty, insert at its end
    end = _value_end(text, node)  # a block scalar is replaced whole (header and lines), its line breaks kept
    new = _scalar_text(value, node.style if node.style in ("'", '"') else None)
    if start == end:  # an empty value sits right after `:` (or its anchor): `newTag:` -> `newTag: 1.0.5`
        new = " " + new
    edit.splices.append(Splice(start, end, new))


def _line_end(text: str, index: int) -> int:
    """Just after the line break that ends the line of ``index`` (the end of a file without one)."""
    return text.find("\n", index) + 1 or len(text)


def _set_key(edit: FileEdit, mapping: MappingNode, key: str, value: str) -> None:
    """Set ``key: value`` in a mapping: replace the value, or add the key after the last one."""
    current, key_node = _get(mapping, key), _key_node(mapping, key)
    if isinstance(current, ScalarNode) and key_node is not None:
        _replace_scalar(edit, key_node, current, value)
        return
    label = f"{edit.label}:{mapping.start_mark.line + 1}"
    if current is not None:
        raise StepError(f"{label}: '{key}' is not a plain value; fix it by hand")
    text = edit.old_text
    rendered = f"{key}: {_scalar_text(value, None)}"
    if mapping.flow_style:
        close = mapping.end_mark.index - 1  # the closing brace
        edit.splices.append(Splice(close, close, ", " + rendered))  # a matching entry has a name already
        return
    last_key, last_value = mapping.value[-1]
    if not isinstance(last_value, ScalarNode) or _is_alias(last_key, last_value):
        raise StepError(f"{label}: cannot add '{key}' after a nested or aliased value; add it by hand once")
    indent = " " * mapping.value[0][0].start_mark.column
    at = _line_end(text, _value_end(text, last_value))
    nl = _newline(text)
    prefix = "" if text[:at].endswith("\n") else nl
    edit.splices.append(Splice(at, at, f"{prefix}{indent}{rendered}{nl}"))


def _remove_key(edit: FileEdit, mapping: MappingNode, key: str) -> None:
    pairs = mapping.value
    for i, (k, v) in enumerate(pairs):
        if isinstance(k, ScalarNode) and k.value == key:
            text = edit.old_text
            if _is_alias(k, v) or text.count("\n", k.start_mark.index, v.end_mark.index):
                raise StepError(
                    f"{edit.label}:{k.start_mark.line + 1}: cannot remove the stale '{key}' "
                    "automatically; remove it by hand"
                )
            line_start = k.start_mark.index - k.start_mark.column
            if not mapping.flow_style and not text[line_start : k.start_mark.index].strip():
                edit.splices.append(Splice(line_start, _line_end(text, v.end_mark.index), ""))
            elif i and mapping.flow_style:  # `, digest: x` after the value before it
                edit.splices.append(Splice(pairs[i - 1][1].end_mark.index, v.end_mark.index, ""))
            else:  # `digest: x, ` or `- digest: x` (as kustomize writes it) up to the next key, which the name is
                edit.splices.append(Splice(k.start_mark.index, pairs[i + 1][0].start_mark.index, ""))
            return


# ---- checking an edit ----------------------------------------------------------------------


def _check(
    edit: FileEdit, expect: Callable[[list[Any]], None], effective: Callable[[list[Any]], bool], what: str
) -> None:
    """Parse the new text: it must be the old documents with exactly the expected change applied.

    ``expect`` applies the change to a copy of the old data (aliased mappings stay shared, as in
    the file); ``effective`` says whether the new data sets the image as asked.
    """
    if not edit.splices:
        return
    line = _line(edit.old_text, min(s.start for s in edit.splices))
    where = f"{edit.label}:{line}"
    new_text = edit.new_text
    expected = _load_all(edit.old_text, edit.label)  # a fresh copy to change
    expect(expected)
    actual = _load_all(new_text, where, "the edit would not be valid YAML, nothing written")
    if not effective(actual):
        raise StepError(
            f"{where}: the edit would not set {what} (YAML construct not supported here); "
            "nothing written, set it by hand"
        )
    if actual != expected:
        raise StepError(
            f"{where}: the edit would change more than {what} (YAML construct not supported "
            "here); nothing written, set it by hand"
        )


# ---- the plan ------------------------------------------------------------------------------


def plan_image_update(
    root: Path, subdir: str, image: str, tag: str, digest: str | None, include: Callable[[str], None] | None = None
) -> ImagePlan:
    """Work out every splice that sets ``image`` to ``tag``/``digest`` under ``root/subdir``, checked."""
    folder = (root / subdir).resolve()
    if not folder.is_relative_to(root.resolve()):
        raise InvalidInputError(f"invalid --path {subdir!r}: leaves the repository (through a symlink)")
    if not folder.is_dir():
        raise StepError(f"--path {subdir!r} is not a folder in the repository")
    for name in KUSTOMIZATION_NAMES:
        if (folder / name).is_file():
            return _plan_kustomization(root, folder / name, subdir, image, tag, digest, include)
    return _plan_manifests(root, folder, subdir, image, tag, digest)


def _plan_kustomization(
    root: Path, path: Path, subdir: str, image: str, tag: str, digest: str | None, include: Callable[[str], None] | None
) -> ImagePlan:
    label = str(path.relative_to(root))
    edit = FileEdit(path, _read(path), label)
    docs = edit.docs
    if len(docs) != 1 or not isinstance(docs[0], MappingNode):
        raise StepError(f"{label}: expected one YAML mapping")
    top = docs[0]
    images = _get(top, "images")
    entries = list(images.value) if isinstance(images, SequenceNode) else []
    (data,) = _load_all(edit.old_text, label)
    data_entries = data.get("images") if isinstance(data.get("images"), list) else []
    matching: list[tuple[MappingNode, dict[str, Any]]] = []
    for entry, entry_data in zip(entries, data_entries, strict=False):
        if not isinstance(entry, MappingNode) or any(entry is m for m, _ in matching):
            continue  # the same entry reached again through an alias is changed once
        merge = next((k for k, _ in entry.value if k.tag == _MERGE_TAG), None)
        if merge is not None and _names_image(entry_data, image):
            raise StepError(
                f"{label}:{merge.start_mark.line + 1}: the images entry for {image} uses a merge key "
                "(<<); set the tag by hand"
            )
        names = [_get(entry, k) for k in ("name", "newName")]
        if any(isinstance(node, ScalarNode) and node.value == image for node in names):
            matching.append((entry, entry_data))
    plan = ImagePlan([edit], [], [])
    what = f"{image} to {tag}" + (f"@{digest}" if digest else "")
    if matching:
        for entry, entry_data in matching:
            old_tag = entry_data.get("newTag")
            if old_tag not in (None, ""):
                plan.previous_tags.append(str(old_tag).strip())  # a block scalar's value ends in a line break
            _set_key(edit, entry, "newTag", tag)
            if digest:
                _set_key(edit, entry, "digest", digest)
            elif _get(entry, "digest") is not None and old_tag != tag:
                # A digest pins the old build: left in place it would win over the new tag.
                _remove_key(edit, entry, "digest")
            plan.where.append(f"{label} images[name={entry_data.get('name')}]")
    else:
        users = list(_resource_image_uses(root, path.parent, image, set(), include))
        if not users:
            raise StepError(
                f"image {image!r} not found under {subdir!r}: no images: entry in {label} and no resource uses it"
            )
        plan.previous_tags.extend(ref.tag for _, ref in users if ref.tag)
        _add_images_entry(edit, top, images, image, tag, digest)
        plan.where.append(f"{label} images (new entry; used by {', '.join(sorted({u for u, _ in users}))})")
    _check(
        edit,
        lambda docs: _expect_kustomization(docs[0], image, tag, digest),
        lambda docs: _kustomization_sets(docs[0], image, tag, digest),
        what,
    )
    return plan


def _expect_kustomization(data: dict[str, Any], image: str, tag: str, digest: str | None) -> None:
    """The change `kustomize edit set image` semantics ask for, on the constructed data."""
    entries = [e for e in data.get("images") or [] if _names_image(e, image)]
    if not entries:
        data.setdefault("images", []).append({"name": image, "newTag": tag, **({"digest": digest} if digest else {})})
    for entry in entries:
        stale = entry.get("newTag") != tag
        entry["newTag"] = tag
        if digest:
            entry["digest"] = digest
        elif stale:
            entry.pop("digest", None)


def _kustomization_sets(data: Any, image: str, tag: str, digest: str | None) -> bool:
    entries = [e for e in (data.get("images") if isinstance(data, dict) else None) or [] if _names_image(e, image)]
    return bool(entries) and all(e.get("newTag") == tag and (not digest or e.get("digest") == digest) for e in entries)


def _resource_image_uses(
    root: Path, folder: Path, image: str, seen: set[Path], include: Callable[[str], None] | None
) -> Iterator[tuple[str, ImageRef]]:
    """(file, current reference) for every use of ``image`` in the kustomization's local resources.

    A use is an ``image:`` field or an ``images:`` entry of a kustomization further down that
    names the image. Folders outside the sparse checkout are materialised through ``include``.
    """
    if folder in seen:
        return
    seen.add(folder)
    kpath = next((folder / n for n in KUSTOMIZATION_NAMES if (folder / n).is_file()), None)
    if kpath is None:
        return
    label = str(kpath.relative_to(root))
    text = _read(kpath)
    top = next(iter(_load_all(text, label)), None)
    if not isinstance(top, dict):
        return
    for entry in top.get("images") or []:  # a base's own entry for the image is a use
        if not _names_image(entry, image):
            continue
        if entry.get("newName") not in (None, image):  # another image leaves the base: ours would match nothing
            raise StepError(f"{label}: renames {image} to {entry['newName']}; set the image in that base by hand")
        yield label, _entry_reference(entry, image)
    for key in ("resources", "bases", "components"):
        for item in top.get(key) or []:
            if not isinstance(item, str) or "://" in item:
                continue  # remote bases are not ours to edit
            target = (folder / item).resolve()
            if not target.is_relative_to(root.resolve()):
                continue
            if not target.exists() and include is not None:
                include(target.relative_to(root.resolve()).as_posix())
            if target.is_dir():
                yield from _resource_image_uses(root, target, image, seen, include)
            elif target.is_file():
                rel = str(target.relative_to(root.resolve()))
                for doc in _load_all(_read(target), rel):
                    for _, value in _data_image_fields(doc):
                        ref = parse_reference(value)
                        if ref and ref.name == image:
                            yield rel, ref


def _entry_reference(entry: dict[str, Any], image: str) -> ImageRef:
    """What a kustomization ``images:`` entry makes of ``image``: its tag and digest (empty: not set)."""
    tag, digest = (str(entry.get(k) or "").strip() for k in ("newTag", "digest"))
    return ImageRef(image, tag or None, digest or None)


def deployed_reference(
    root: Path, subdir: str, image: str, include: Callable[[str], None] | None = None
) -> tuple[ImageRef, list[str]]:
    """The one reference of ``image`` that ``root/subdir`` deploys, and where it is set; StepError when the
    folder does not use the image or sets it to more than one reference (nothing to promote then).

    A kustomization's own ``images:`` entries decide when there are any (they override the bases);
    otherwise every use in its resources, followed as tag-commit does, must agree. Plain manifests:
    every ``image:`` field. Reads only: the folder is checked out as it was deployed.
    """
    folder = (root / subdir).resolve()
    if not folder.is_relative_to(root.resolve()) or not folder.is_dir():
        raise StepError(f"{subdir!r} is not a folder in the repository (or leaves it through a symbolic link)")
    kpath = next((folder / n for n in KUSTOMIZATION_NAMES if (folder / n).is_file()), None)
    uses: list[tuple[str, ImageRef]] = []
    if kpath is not None:
        label = str(kpath.relative_to(root))
        top = next(iter(_load_all(_read(kpath), label)), None)
        entries = [e for e in (top.get("images") if isinstance(top, dict) else None) or [] if _names_image(e, image)]
        uses = [(f"{label} images[name={e.get('name')}]", _entry_reference(e, image)) for e in entries]
        uses = uses or list(_resource_image_uses(root, folder, image, set(), include))
    else:
        for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
            rel = str(path.relative_to(root))
            for doc in _load_all(_read(path), rel):
                found = (parse_reference(v) for _, v in _data_image_fields(doc))
                uses += [(rel, r) for r in found if r and r.name == image]
    if not uses:
        raise StepError(f"image {image!r} not found under {subdir!r}: nothing there deploys it")
    refs = sorted({str(ref) for _, ref in uses})
    if len(refs) > 1:
        raise StepError(f"{subdir!r} sets {image} to {len(refs)} references ({', '.join(refs)}): which one runs?")
    return uses[0][1], [where for where, _ in uses]


def _sequence_indent(top: MappingNode) -> str:
    """How this file indents block sequences under a top-level key ('' for `- x` under `key:`, '  ' etc.)."""
    for _, v in top.value:
        if isinstance(v, SequenceNode) and not v.flow_style and v.value:
            return " " * v.start_mark.column  # top-level keys start at column 0 (else the re-parse check refuses)
    return ""


def _add_images_entry(
    edit: FileEdit, top: MappingNode, images: Node | None, image: str, tag: str, digest: str | None
) -> None:
    text, nl = edit.old_text, _newline(edit.old_text)
    fields = [("name", image), ("newTag", tag)] + ([("digest", digest)] if digest else [])
    if top.flow_style:
        raise StepError(f"{edit.label}: a flow-style kustomization cannot be extended automatically")

    def block_item(dash_indent: str) -> str:
        lines = [f"{dash_indent}- {fields[0][0]}: {_scalar_text(fields[0][1], None)}"]
        lines += [f"{dash_indent}  {k}: {_scalar_text(v, None)}" for k, v in fields[1:]]
        return nl.join(lines) + nl

    if isinstance(images, SequenceNode) and images.value and not images.flow_style:
        dash = " " * images.start_mark.column
        last = images.value[-1]
        anchor = last.value[-1][1] if isinstance(last, MappingNode) and last.value else last
        at = _line_end(text, _value_end(text, anchor))
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
        raise StepError(f"{edit.label}: 'images' is not a list; fix it by hand")


def _plan_manifests(root: Path, folder: Path, subdir: str, image: str, tag: str, digest: str | None) -> ImagePlan:
    plan = ImagePlan([], [], [])
    new_refs: dict[str, str] = {}  # old reference -> new one, for the check
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        rel = str(path.relative_to(root))
        edit = FileEdit(path, _read(path), rel)
        reached: set[int] = set()  # node ids: a field reached again through an alias is changed once
        for doc in edit.docs:
            for key, node in _image_fields(doc):
                ref = parse_reference(node.value)
                if not ref or ref.name != image or id(node) in reached:
                    continue
                if ref.tag:
                    plan.previous_tags.append(ref.tag)
                keep_digest = ref.digest if (ref.tag == tag and not digest) else None
                new_refs[node.value] = str(ImageRef(image, tag, digest or keep_digest))
                _replace_scalar(edit, key, node, new_refs[node.value])
                reached.add(id(node))
                plan.where.append(f"{rel}:{key.start_mark.line + 1}")
        if reached:
            _check(
                edit,
                lambda docs: _expect_manifests(docs, image, new_refs),
                lambda docs: _manifests_set(docs, image, tag, digest),
                f"{image} to {tag}",
            )
            plan.edits.append(edit)
    if not plan.where:
        raise StepError(f"image {image!r} not found under {subdir!r}: no kustomization and no image: field uses it")
    return plan


def _data_image_fields(data: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """(mapping, value) for every string under an ``image`` key in constructed data."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k == "image" and isinstance(v, str):
                yield data, v
            else:
                yield from _data_image_fields(v)
    elif isinstance(data, list):
        for item in data:
            yield from _data_image_fields(item)


def _expect_manifests(docs: list[Any], image: str, new_refs: dict[str, str]) -> None:
    for mapping, value in list(_data_image_fields(docs)):
        ref = parse_reference(value)
        if ref and ref.name == image:
            mapping["image"] = new_refs.get(value, value)


def _manifests_set(docs: list[Any], image: str, tag: str, digest: str | None) -> bool:
    refs = [r for r in (parse_reference(v) for _, v in _data_image_fields(docs)) if r and r.name == image]
    return bool(refs) and all(r.tag == tag and (not digest or r.digest == digest) for r in refs)


ENVS = "envs"  # the folder of the environments: tag-commit writes under it only, unless told otherwise


def validate_path(value: str, allow_outside_envs: bool = False) -> str:
    """``--path`` as written, when it is a plain relative folder under ``envs/``; InvalidInputError otherwise.

    Plain: relative, folders separated by ``/``, no ``..``, ``.`` or empty folder name (``//``, a
    trailing ``/``), no backslash or control character. Nothing is normalised away, so what is
    checked is what is used (``envs/prod/../../flux-system`` is refused, not read as ``flux-system``).
    Under ``envs/``: ``envs/<environment>[/...]``, unless ``allow_outside_envs`` (the explicit opt-in
    for another layout). Symbolic links are the clone's to check (``check_inside``).
    """
    text = value.strip()

    def bad(why: str) -> InvalidInputError:
        return InvalidInputError(f"invalid --path {value!r}: {why}")

    if not text:
        raise bad("must not be empty; give the app's folder, e.g. envs/prod/app")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise bad("a control character")
    if "\\" in text:
        raise bad("a backslash; separate folders with /")
    if text.startswith(("/", "~")):
        raise bad("must be relative to the repository's root, e.g. envs/prod/app")
    parts = text.split("/")
    for part, why in (("..", "'..' is not allowed"), ("", "an empty folder name (// or a trailing /)")):
        if part in parts:
            raise bad(why)
    if "." in parts:
        raise bad("'.' is not allowed")
    if not allow_outside_envs and (parts[0] != ENVS or len(parts) < 2):
        raise bad(
            f"outside {ENVS}/: tag-commit writes only under {ENVS}/<environment>/...; "
            "pass --allow-path-outside-envs for another folder"
        )
    return text


def check_inside(root: Path, subdir: str, top: str, files: Iterable[Path] = ()) -> None:
    """``root/subdir`` and ``files`` must lie under ``root/top`` ("" is the repository) once symbolic links
    are followed: a link in the repository must not carry an edit out of it. InvalidInputError naming
    --path when the folder leads out, StepError naming the file when a file does."""
    bound = root.resolve() / top if top else root.resolve()
    where = f"{top}/" if top else "the repository"
    if not (root / subdir).resolve().is_relative_to(bound):
        raise InvalidInputError(f"invalid --path {subdir!r}: it leads outside {where} through a symbolic link")
    for path in files:
        if not path.resolve().is_relative_to(bound):
            raise StepError(
                f"{path.relative_to(root)} is a symbolic link to {path.resolve()}, outside {where}: "
                "not editing it; nothing written"
            )
