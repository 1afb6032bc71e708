"""What a Python app needs installed for its tests, read from its own project definition (pure).

Supported, in one pip resolve:

- ``requirements.txt``, ``requirements-dev.txt``, ``requirements-test.txt`` (``-r`` each; pins
  in them are the lock);
- ``pyproject.toml`` with ``[project]`` or ``[build-system]`` (or a ``setup.py``): the project
  itself, with its ``test`` (or ``tests``) extra when it declares one;
- PEP 735 ``[dependency-groups]``: the ``test``, ``tests`` and ``dev`` groups (includes resolved);
- ``uv.lock`` and ``poetry.lock``: every package the lock takes from an index becomes a
  ``name==version`` constraint, so pip installs the locked versions (hashes are not checked).

Not read: Poetry's own dependency groups, Pipfile/Pipfile.lock, pdm.lock (export a
requirements file instead). Every problem is a ProjectError naming the file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import StepError

REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt", "requirements-test.txt")
TEST_EXTRAS = ("test", "tests")
TEST_GROUPS = ("test", "tests", "dev")
LOCK_FILES = ("uv.lock", "poetry.lock")
UNSUPPORTED = ("Pipfile", "Pipfile.lock", "pdm.lock")


class ProjectError(StepError):
    """The app's project definition is missing or broken; the message names the file."""


@dataclass
class PythonProject:
    label: str  # the app folder as errors name it, e.g. examples/drone-service
    requirement_files: list[str] = field(default_factory=list)
    install_self: bool = False  # pip install . (a pyproject.toml with [project]/[build-system], or setup.py)
    extras: list[str] = field(default_factory=list)
    group_requirements: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)  # name==version from a lock file
    lock: str = ""
    notes: list[str] = field(default_factory=list)  # said in the log as warnings

    def pip_arguments(self) -> list[str]:
        """The requirement arguments of ``pip install`` run in the app folder (constraints apart)."""
        args: list[str] = []
        for name in self.requirement_files:
            args += ["-r", name]
        if self.install_self:
            args.append(f".[{','.join(self.extras)}]" if self.extras else ".")
        return args + self.group_requirements

    def describe(self) -> str:
        parts = list(self.requirement_files)
        if self.install_self:
            parts.append("the project" + (f" with extra {', '.join(self.extras)}" if self.extras else ""))
        if self.groups:
            parts.append(f"dependency group {', '.join(self.groups)}")
        if self.lock:
            parts.append(f"versions locked by {self.lock}")
        return "; ".join(parts) or "no dependencies of its own"


def _load_toml(path: Path, label: str) -> dict[str, Any]:
    where = f"{label}/{path.name}" if label not in ("", ".") else path.name
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ProjectError(f"{where}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise ProjectError(f"{where}: cannot read: {err.strerror}") from err
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ProjectError(f"{where}: invalid TOML: {err}{_quote_line(text, str(err))}") from err


def _quote_line(text: str, message: str) -> str:
    """``: <the line>`` for a tomllib message that ends ``(at line N, column M)``."""
    match = re.search(r"\(at line (\d+), column \d+\)$", message)
    lines = text.splitlines()
    number = int(match[1]) if match else 0
    if 0 < number <= len(lines) and lines[number - 1].strip():
        return f": {lines[number - 1].strip()[:120]}"
    return ""


def _table(doc: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ProjectError(f"{where}: [{key}] must be a table, not {type(value).__name__}")
    return value


def _requirement(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProjectError(f"{where}: {value!r} is not a requirement string")
    if value.lstrip().startswith("-"):  # never an option to pip
        raise ProjectError(f"{where}: {value!r} is not a requirement (it reads as a pip option)")
    return value.strip()


def dependency_group(groups: dict[str, Any], name: str, where: str, seen: tuple[str, ...] = ()) -> list[str]:
    """The requirements of PEP 735 group ``name``, its ``{include-group = ...}`` entries expanded."""
    norm = {re.sub(r"[-_.]+", "-", k).lower(): k for k in groups}
    key = norm.get(re.sub(r"[-_.]+", "-", name).lower())
    if key is None:
        raise ProjectError(f"{where}: [dependency-groups] includes group {name!r}, which is not defined")
    if key in seen:
        raise ProjectError(f"{where}: [dependency-groups] {key!r} includes itself ({' -> '.join((*seen, key))})")
    entries = groups[key]
    if not isinstance(entries, list):
        raise ProjectError(f"{where}: [dependency-groups] {key} must be a list")
    out: list[str] = []
    for entry in entries:
        if isinstance(entry, dict):
            if set(entry) != {"include-group"} or not isinstance(entry["include-group"], str):
                raise ProjectError(
                    f"{where}: [dependency-groups] {key}: {entry!r} is neither a requirement "
                    'nor {include-group = "name"}'
                )
            out += dependency_group(groups, entry["include-group"], where, (*seen, key))
        else:
            out.append(_requirement(entry, f"{where}: [dependency-groups] {key}"))
    return out


def lock_constraints(lock: dict[str, Any], kind: str, where: str) -> tuple[list[str], list[str]]:
    """``name==version`` for every package the lock takes from an index; and the names skipped
    because the lock holds several versions of them (for different platforms or Pythons)."""
    packages = lock.get("package", [])
    if not isinstance(packages, list):
        raise ProjectError(f"{where}: [[package]] must be an array of tables")
    versions: dict[str, set[str]] = {}
    for pkg in packages:
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            raise ProjectError(f"{where}: a [[package]] entry has no name")
        source = pkg.get("source") or {}
        if not isinstance(source, dict):
            raise ProjectError(f"{where}: package {pkg['name']}: source must be a table")
        from_index = "registry" in source if kind == "uv.lock" else source.get("type", "legacy") == "legacy"
        if not from_index or not isinstance(pkg.get("version"), str):
            continue  # the project itself, a path, a git checkout or a URL: not a pin
        versions.setdefault(re.sub(r"[-_.]+", "-", pkg["name"]).lower(), set()).add(pkg["version"])
    pins = [f"{name}=={next(iter(v))}" for name, v in sorted(versions.items()) if len(v) == 1]
    forked = sorted(name for name, v in versions.items() if len(v) > 1)
    return pins, forked


def missing_message(app: Path, label: str) -> str:
    """The error for a folder without a Python project definition."""
    found = [f for f in UNSUPPORTED if (app / f).is_file()]
    hint = (
        f"; {found[0]} is not supported: export a requirements.txt (e.g. `pipenv requirements`)"
        if found
        else "; for an app of another kind pass --command"
    )
    return f"{label}: no Python project here (no pyproject.toml, setup.py or requirements.txt){hint}"


def detect(app: Path, label: str) -> PythonProject | None:
    """The Python project in ``app``, or None when the folder has no Python project definition."""

    def name(file: str) -> str:
        return f"{label}/{file}" if label not in ("", ".") else file

    project = PythonProject(label=label)
    project.requirement_files = [f for f in REQUIREMENT_FILES if (app / f).is_file()]
    pyproject_path = app / "pyproject.toml"
    pyproject = _load_toml(pyproject_path, label) if pyproject_path.is_file() else None
    has_setup_py = (app / "setup.py").is_file()
    if pyproject is None and not has_setup_py and not project.requirement_files:
        return None

    if pyproject is not None:
        where = name("pyproject.toml")
        meta = _table(pyproject, "project", where)
        _table(pyproject, "build-system", where)
        project.install_self = "project" in pyproject or "build-system" in pyproject or has_setup_py
        optional = meta.get("optional-dependencies", {})
        if not isinstance(optional, dict) or not all(isinstance(v, list) for v in optional.values()):
            raise ProjectError(f"{where}: [project.optional-dependencies] must be a table of lists of requirements")
        for extra, reqs in optional.items():
            for req in reqs:
                _requirement(req, f"{where}: [project.optional-dependencies] {extra}")
        if project.install_self:
            project.extras = [e for e in TEST_EXTRAS if e in optional][:1]
        groups = _table(pyproject, "dependency-groups", where)
        for group in TEST_GROUPS:
            if group in groups:
                project.groups.append(group)
                project.group_requirements += dependency_group(groups, group, where)
        if "poetry" in _table(pyproject, "tool", where) and not project.extras and not project.groups:
            project.notes.append(
                f"{where}: Poetry dependency groups are not read; declare the test tools in "
                "a `test` extra, a [dependency-groups] test group or requirements-test.txt"
            )
    else:
        project.install_self = has_setup_py

    for lock_name in LOCK_FILES:
        if not (app / lock_name).is_file():
            continue
        if pyproject is None:
            project.notes.append(f"{name(lock_name)} is not used: there is no pyproject.toml it belongs to")
            continue
        pins, forked = lock_constraints(_load_toml(app / lock_name, label), lock_name, name(lock_name))
        project.constraints, project.lock = pins, lock_name
        if forked:
            project.notes.append(
                f"{name(lock_name)}: {', '.join(forked)} locked at several versions (per "
                "platform or Python); pip resolves those itself"
            )
        break
    for other in UNSUPPORTED:
        if (app / other).is_file():
            project.notes.append(
                f"{name(other)} is not read; pip installs from "
                f"{', '.join(project.requirement_files) or 'pyproject.toml'}"
            )
    if not project.requirement_files and not project.install_self and not project.groups:
        project.notes.append(f"{label}: no dependencies declared; only the test runner is installed")
    return project
