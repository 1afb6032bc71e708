"""The app's exceptions: ``.druppie-scan.yaml`` at the root of the source.

    ignore:
      - rule: B602                      # the scanner's rule id, or an alias (CVE-...); * and ? match
        path: tools/*.py                # optional glob on the path from the source root (* matches /)
        reason: only ever runs a fixed command from our own config   # required
        expires: 2026-12-31             # required; the entry counts up to and including that day

An expired entry stops counting: its findings are back, and the log names the entry. A malformed
file fails the step with one line naming the file and the entry.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InvalidInputError
from . import Finding

FILENAME = ".druppie-scan.yaml"
KEYS = {"rule", "path", "reason", "expires"}


@dataclass(frozen=True)
class Entry:
    index: int  # 1-based, as people count
    rule: str
    path: str
    reason: str
    expires: dt.date

    def matches(self, finding: Finding) -> bool:
        ids = (finding.rule, *finding.aliases)
        return any(fnmatch.fnmatchcase(i, self.rule) for i in ids) and fnmatch.fnmatchcase(finding.path, self.path)

    def describe(self) -> str:
        return f"entry {self.index} (rule {self.rule}, path {self.path})"


def load(root: Path) -> list[Entry]:
    """The entries of the ignore file under ``root``; none when there is no such file."""
    path = root / FILENAME
    if not path.is_file():
        return []
    import yaml

    class Loader(yaml.SafeLoader):
        """Dates stay strings, so that 2027-02-30 is reported with its entry instead of crashing the parser."""

    Loader.yaml_implicit_resolvers = {
        k: [(tag, regexp) for tag, regexp in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506 - a SafeLoader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        where = getattr(err, "problem_mark", None)
        at = f" line {where.line + 1}" if where is not None else ""
        raise InvalidInputError(f"{FILENAME}{at}: not readable YAML: {getattr(err, 'problem', None) or err}") from err
    return parse(doc)


def parse(doc: object) -> list[Entry]:
    if doc is None:
        return []
    if not isinstance(doc, dict) or set(doc) - {"ignore"}:
        raise InvalidInputError(
            f"{FILENAME}: must be a mapping with one key, ignore: a list of entries {{rule, path, reason, expires}}"
        )
    items = doc.get("ignore") or []
    if not isinstance(items, list):
        raise InvalidInputError(f"{FILENAME}: ignore must be a list of entries {{rule, path, reason, expires}}")
    return [_entry(i, item) for i, item in enumerate(items, 1)]


def _entry(index: int, item: object) -> Entry:
    label = f"{FILENAME}: entry {index}"
    if not isinstance(item, dict):
        raise InvalidInputError(f"{label}: must be a mapping with rule, path, reason and expires")
    if isinstance(item.get("rule"), str) and item["rule"].strip():
        label += f" (rule {item['rule'].strip()})"
    unknown = sorted(str(k) for k in set(item) - KEYS)
    if unknown:
        raise InvalidInputError(f"{label}: unknown key {unknown[0]!r}; use rule, path, reason, expires")
    for key in ("rule", "reason"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise InvalidInputError(f"{label}: {key} is required (a non-empty string)")
    path = item.get("path", "*")
    if not isinstance(path, str) or not path.strip():
        raise InvalidInputError(f"{label}: path must be a glob such as src/*.py (leave it out for every file)")
    if "expires" not in item:
        raise InvalidInputError(f"{label}: expires is required (a date YYYY-MM-DD)")
    expires = item["expires"]
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    elif isinstance(expires, str):
        try:
            expires = dt.date.fromisoformat(expires.strip())
        except ValueError:
            raise InvalidInputError(f"{label}: expires {expires!r} is not a date YYYY-MM-DD") from None
    if not isinstance(expires, dt.date):
        raise InvalidInputError(f"{label}: expires {expires!r} is not a date YYYY-MM-DD")
    path = path.strip()
    while path.startswith("./"):
        path = path[2:]
    return Entry(index, item["rule"].strip(), path, item["reason"].strip(), expires)


@dataclass
class Applied:
    kept: list[Finding]  # findings that count
    suppressed: list[tuple[Finding, Entry]]
    expired: list[Entry]  # entries past their date (their findings are in kept)
    unused: list[Entry]  # live entries that matched nothing


def apply(findings: list[Finding], entries: list[Entry], today: dt.date) -> Applied:
    live = [e for e in entries if e.expires >= today]
    expired = [e for e in entries if e.expires < today]
    kept, suppressed, used = [], [], set()
    for finding in findings:
        entry = next((e for e in live if e.matches(finding)), None)
        if entry is None:
            kept.append(finding)
        else:
            suppressed.append((finding, entry))
            used.add(entry.index)
    return Applied(kept, suppressed, expired, [e for e in live if e.index not in used])
