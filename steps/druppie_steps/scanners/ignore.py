"""The app's exceptions: ``.druppie-scan.yaml`` at the root of the source.

    ignore:
      - rule: B602                      # the scanner's rule id, or an alias (CVE-...); * and ? match
        path: tools/*.py                # glob on the path from the source root (* matches /)
        reason: only ever runs a fixed command from our own config   # required
        expires: 2026-12-31             # the entry counts up to and including that day

Every key is required. An expired entry stops counting: its findings are back, and the log names
the entry. A malformed file fails the step with one line naming the file and the entry.

The file is the app's own, so it must not be able to switch the scan off. Refused, like a
malformed entry (the step fails before scanning):

- **A pattern that matches everything**: a ``rule`` or ``path`` with no letter or digit outside a
  bracket expression (``*``, ``**``, ``?*``, ``*/*``, ``.*``, ``^.*$``, ``[a-z]*``, empty). Every
  glob that matches every rule id or every path is of this kind (a letter or digit outside
  brackets must appear in whatever it matches), and so are regex-minded ways to say "all".
- **A rule pattern that matches a whole family of rules**: a wildcard (``*``, ``?``, ``[``) in
  ``rule`` before any digit (``B*``, ``CVE-*``, ``GHSA-*``, ``KSV*``, ``generic-*``). A wildcard
  must keep the id's number: ``B60?``, ``CVE-2024-3*``.
- **An expiry too far ahead**: later than today plus ``--max-suppression-age`` (``latest``), so an
  exception is reviewed again within that time.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InvalidInputError
from . import Finding

FILENAME = ".druppie-scan.yaml"
KEYS = {"rule", "path", "reason", "expires"}
_BRACKETS = re.compile(r"\[[^\]]*\]?")  # a bracket expression, or an unclosed [ to the end


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


@dataclass(frozen=True)
class Limit:
    """The latest expiry an entry may have, and how to name it in an error."""

    latest: dt.date
    said: str  # e.g. "--max-suppression-age 90d"


def matches_everything(pattern: str) -> bool:
    """No letter or digit outside a bracket expression: the pattern says "anything" (see the module doc)."""
    return not re.search(r"[A-Za-z0-9]", _BRACKETS.sub("", pattern))


def family_wide(rule: str) -> bool:
    """A wildcard before the rule id's first digit: every rule of a tool or every advisory of a kind."""
    first_wildcard = re.search(r"[*?\[]", rule)
    return first_wildcard is not None and not re.search(r"[0-9]", rule[: first_wildcard.start()])


def load(root: Path, limit: Limit | None = None) -> list[Entry]:
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
    return parse(doc, limit)


def parse(doc: object, limit: Limit | None = None) -> list[Entry]:
    if doc is None:
        return []
    if not isinstance(doc, dict) or set(doc) - {"ignore"}:
        raise InvalidInputError(
            f"{FILENAME}: must be a mapping with one key, ignore: a list of entries {{rule, path, reason, expires}}"
        )
    items = doc.get("ignore") or []
    if not isinstance(items, list):
        raise InvalidInputError(f"{FILENAME}: ignore must be a list of entries {{rule, path, reason, expires}}")
    return [_entry(i, item, limit) for i, item in enumerate(items, 1)]


def _entry(index: int, item: object, limit: Limit | None) -> Entry:
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
    if "path" not in item:
        raise InvalidInputError(f"{label}: path is required (a glob such as src/*.py, or the file's own path)")
    path = item["path"]
    if not isinstance(path, str):
        raise InvalidInputError(f"{label}: path must be a glob such as src/*.py, not {path!r}")
    rule = item["rule"].strip()
    if matches_everything(rule):
        raise InvalidInputError(
            f"{label}: rule {rule!r} matches every rule; name the rule (B602, CVE-2024-35195, github-pat)"
        )
    if family_wide(rule):
        raise InvalidInputError(
            f"{label}: rule {rule!r} matches a whole family of rules; a wildcard must come after the "
            "id's number (B60?, CVE-2024-3*), or name the rule"
        )
    if matches_everything(path):
        raise InvalidInputError(
            f"{label}: path {path!r} matches every file; name the file or folder (src/app.py, tools/*.py)"
        )
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
    if limit is not None and expires > limit.latest:
        raise InvalidInputError(
            f"{label}: expires {expires.isoformat()} is later than {limit.latest.isoformat()} "
            f"({limit.said} from today); set an earlier date and renew the exception when it is due"
        )
    path = path.strip()
    while path.startswith("./"):
        path = path[2:]
    return Entry(index, rule, path, item["reason"].strip(), expires)


@dataclass
class Applied:
    kept: list[Finding]  # findings that count
    suppressed: list[tuple[Finding, Entry]]
    expired: list[Entry]  # entries past their date (their findings are in kept)
    unused: list[Entry]  # live entries that matched nothing
    active: list[Entry] = field(default_factory=list)  # live entries, in file order, used or not

    def count(self, entry: Entry) -> int:
        """How many findings ``entry`` suppressed."""
        return sum(1 for _, e in self.suppressed if e.index == entry.index)


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
    return Applied(kept, suppressed, expired, [e for e in live if e.index not in used], live)


def summary(applied: Applied, limit: int = 1000) -> str:
    """The active entries in one line for a Tekton result, at most ``limit`` characters:
    ``B602 tools/*.py until 2026-12-31 (2 findings); ...``, empty when there is none."""
    parts = [
        f"{e.rule} {e.path} until {e.expires.isoformat()} ({applied.count(e)} finding"
        f"{'' if applied.count(e) == 1 else 's'})"
        for e in applied.active
    ]
    for keep in range(len(parts), -1, -1):
        rest = len(parts) - keep
        text = "; ".join(parts[:keep] + ([f"... and {rest} more (see the report)"] if rest else []))
        if len(text) <= limit:
            break
    return text
