"""Image references and tags: parsing, validation and semver ordering.

The grammar is the one of the distribution/reference package (what Docker, Podman and the
Kubernetes runtimes accept), so anything we write into a manifest can also be pulled.
"""

import re
from dataclasses import dataclass

import semver

from ..core.errors import InvalidInputError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
NAME_RE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_REFERENCE_RE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)


@dataclass(frozen=True)
class ImageRef:
    name: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_reference(text: str) -> ImageRef | None:
    """Split ``name[:tag][@digest]``; None when the text is not an image reference."""
    match = _REFERENCE_RE.match(text.strip())
    if not match or len(match["name"]) > 255:
        return None
    return ImageRef(match["name"], match["tag"], match["digest"])


def validate_image_name(value: str) -> str:
    if "@" in value or (":" in value.rsplit("/", 1)[-1]):
        raise InvalidInputError(
            f"invalid --image {value!r}: give the name only, without tag or digest (use --tag/--digest)"
        )
    if not NAME_RE.match(value) or len(value) > 255:
        raise InvalidInputError(
            f"invalid --image {value!r}: not an image name (lowercase path components, optional registry host[:port])"
        )
    return value


def normalize_semver(tag: str) -> semver.Version | None:
    """``1.0.5`` or ``v1.0.5`` as a Version; None for tags that are not semver (``latest``, a sha)."""
    candidate = tag[1:] if tag[:1] in ("v", "V") else tag
    try:
        return semver.Version.parse(candidate)
    except ValueError:
        return None


def validate_tag(value: str, flag: str = "--tag") -> str:
    if not TAG_RE.match(value) or normalize_semver(value) is None:
        raise InvalidInputError(f"invalid {flag} {value!r}: must be a semantic version such as 1.0.5 or v1.0.5")
    return value


def validate_digest(value: str | None) -> str | None:
    if value and not DIGEST_RE.match(value):
        raise InvalidInputError(f"invalid --digest {value!r}: must be sha256: followed by 64 lowercase hex digits")
    return value or None


def compare_tags(current: str, new: str) -> int | None:
    """-1/0/1 as semver compares current with new; None when current is not semver."""
    a, b = normalize_semver(current), normalize_semver(new)
    if a is None or b is None:
        return None
    return a.compare(b)


def highest_tag(tags: list[str]) -> str:
    """The highest semver tag; the first tag when none is semver; '' for none.

    A tag that is not semver (latest, a commit sha) has no order, so it never hides a semver one
    from the older-tag guard.
    """
    ordered = [(version, t) for t in tags if (version := normalize_semver(t)) is not None]
    return max(ordered, key=lambda vt: vt[0])[1] if ordered else next(iter(tags), "")


def is_older(new: str, current: str) -> bool | None:
    """Whether ``new`` is an older semver than ``current``; None when ``current`` cannot be ordered.

    tag-commit's rule: a current tag that is not semver (latest, a sha) is replaced by the new
    semver tag with a warning; between semver tags an older one never overwrites a newer one.
    """
    order = compare_tags(current, new)
    return None if order is None else order > 0
