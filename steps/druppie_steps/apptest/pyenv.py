"""The app's own virtual environment, outside the workspace, filled by pip.

The venv is made ``--without-pip`` and pip runs from the wheel the interpreter bundles for
ensurepip (unpacked once into the scratch folder): the same pip, seconds faster than installing
it (and setuptools) into every venv, and the app's environment holds only what it declares plus
the test runner. Without a bundled wheel the venv is made the ordinary way, pip inside.

Nothing of the step's own environment reaches the app: PYTHONPATH (the step image puts its own
packages there), VIRTUAL_ENV and every DRUPPIE_* variable (an index URL may carry a token) are
dropped; the tests themselves (``tests_environment``) get no PIP_* variable either (pip's index
and its credentials are the install's business).

The venv can be made in one process and used in another (``--phase install``, then ``--phase run``
in a second Tekton step, which never sees the index credentials): it is made at the path it is
used from, and a marker file in it (``MARKER``) says what was installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InvalidInputError, StepError
from . import process

DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONEXECUTABLE")
DEBIAN_WHEELS = "/usr/share/python-wheels"  # python3-venv's pip wheel on Debian
PIP_QUIET_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PIP_PROGRESS_BAR": "off"}


def app_environment(base: dict[str, str]) -> dict[str, str]:
    """``base`` without the step's own Python settings and DRUPPIE_* parameters."""
    return {k: v for k, v in base.items() if k not in DROPPED_ENV and not k.startswith("DRUPPIE_")}


def tests_environment(base: dict[str, str]) -> dict[str, str]:
    """What the app's tests run with: ``app_environment`` without pip's settings (an index URL in
    PIP_INDEX_URL or PIP_EXTRA_INDEX_URL may carry a token)."""
    return {k: v for k, v in app_environment(base).items() if not k.startswith("PIP_")}


def _version(wheel: Path) -> tuple[int, ...]:
    match = re.match(r"pip-(\d+(?:\.\d+)*)", wheel.name)
    return tuple(int(p) for p in match[1].split(".")) if match else ()


def bundled_pip_wheel() -> Path | None:
    """The newest pip wheel this interpreter's ensurepip would install (CPython's or Debian's)."""
    try:
        import ensurepip
    except ImportError:
        return None
    folders = [Path(ensurepip.__file__).parent / "_bundled"]
    for folder in (sysconfig.get_config_var("WHEEL_PKG_DIR"), DEBIAN_WHEELS):
        if folder:
            folders.append(Path(folder))
    wheels = [w for f in folders if f.is_dir() for w in f.glob("pip-*-py3-none-any.whl") if _version(w)]
    return max(wheels, key=_version, default=None)


@dataclass
class Venv:
    path: Path
    pip: list[str]  # the argv prefix that runs pip for this venv

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        env = app_environment(base)
        env["VIRTUAL_ENV"] = str(self.path)
        env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
        return env

    def write_marker(self, tools: list[str], project: str) -> None:
        """Record what the install phase put here, for the run phase to check."""
        (self.path / MARKER).write_text(json.dumps({"tools": tools, "project": project}) + "\n", encoding="utf-8")


MARKER = "druppie-test.json"


def existing(path: Path, shown: str) -> tuple[Venv, list[str]]:
    """The venv an install phase made at ``path`` and the test tools it installed; InvalidInputError
    naming ``shown`` (the option's value) when there is none."""
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
        tools = [str(t) for t in marker["tools"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise InvalidInputError(
            f"invalid --venv {shown!r}: no environment made by --phase install there; "
            "run the install phase first (the Task's install step)"
        ) from None
    if not (path / "bin" / "python").exists():
        raise InvalidInputError(f"invalid --venv {shown!r}: has no bin/python; run --phase install again")
    return Venv(path, [str(path / "bin" / "python"), "-m", "pip"]), tools


def create(path: Path, scratch: Path, deadline_seconds: float) -> Venv:
    """A fresh venv at ``path`` (pip, if bundled, unpacked into ``scratch``); StepError with the
    interpreter's own words when it cannot."""
    wheel = bundled_pip_wheel()
    argv = [sys.executable, "-m", "venv", *(["--without-pip"] if wheel else []), str(path)]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=max(deadline_seconds, 1),
            env=app_environment(dict(os.environ)),
        )
    except subprocess.TimeoutExpired as err:
        raise StepError("creating the virtual environment did not finish within the --timeout") from err
    if proc.returncode != 0:
        last = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        raise StepError(
            f"cannot create a virtual environment with {sys.executable}: "
            f"{last[-1].strip() if last else f'exit code {proc.returncode}'}"
        )
    if wheel is None:
        return Venv(path, [str(path / "bin" / "python"), "-m", "pip"])
    unpacked = scratch / "pip"
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(unpacked)
    except (OSError, zipfile.BadZipFile) as err:
        raise StepError(f"cannot unpack {wheel}: {err}") from err
    return Venv(path, [str(path / "bin" / "python"), str(unpacked / "pip")])


def plain_http_host(url: str) -> str:
    """``host[:port]`` of an http:// URL (what pip's --trusted-host takes); "" for any other URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port}" if parts.port else host


@dataclass
class PipSettings:
    wheelhouse: str = ""  # --find-links
    index_url: str = ""
    offline: bool = False  # --no-index: the wheelhouse only
    cache_dir: str = ""


def install(
    venv: Venv,
    requirements: list[str],
    constraints: list[str],
    cwd: Path,
    scratch: Path,
    settings: PipSettings,
    deadline: float,
    timeout_text: str,
) -> tuple[process.Finished, int]:
    """``pip install`` the requirements in ``cwd`` (one resolve); the run and how many downloads
    the cache served. StepError with pip's last error line when it fails."""
    argv = [*venv.pip, "install", "--no-compile"]  # a venv used once: bytecode only for what is imported
    if settings.offline:
        argv.append("--no-index")
    if settings.wheelhouse:
        argv += ["--find-links", settings.wheelhouse]
    if constraints:
        pins = scratch / "constraints.txt"
        pins.write_text("\n".join(constraints) + "\n", encoding="utf-8")
        argv += ["-c", str(pins)]
    argv += requirements
    env = venv.environment(dict(os.environ)) | PIP_QUIET_ENV
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # pip's own bytecode, in scratch, serves its build subprocesses
    if settings.index_url:
        env["PIP_INDEX_URL"] = settings.index_url  # not in argv: a token in it stays out of `ps`
        host = plain_http_host(settings.index_url)
        if host:  # pip ignores a plain-http index unless trusted, and never caches from it otherwise
            env["PIP_TRUSTED_HOST"] = host
    if settings.cache_dir:
        env["PIP_CACHE_DIR"] = settings.cache_dir
        env.pop("PIP_NO_CACHE_DIR", None)
    else:
        env["PIP_NO_CACHE_DIR"] = "1"
    cached = 0

    def count_cached(line: str) -> None:
        nonlocal cached
        cached += line.lstrip().startswith("Using cached ")

    run = process.run(
        argv,
        cwd=cwd,
        env=env,
        deadline=deadline,
        what="pip install",
        timeout_text=timeout_text,
        echo_prefix="  pip: ",
        on_line=count_cached,
    )
    if run.returncode != 0:
        reason = run.last_line(r"^ERROR: ").removeprefix("ERROR: ") or f"exit code {run.returncode}"
        if settings.offline and ("No matching distribution" in reason or "Could not find a version" in reason):
            reason += f" (offline: only the wheelhouse {settings.wheelhouse or '(none)'} is used)"
        raise StepError(f"pip could not install the project: {reason}")
    return run, cached
