"""Options that come from a flag or, for Tekton, from an environment variable.

The conventions every step's command line follows (tests/unit/test_cli_conventions.py checks each):

- **Environment.** Every option ``--foo-bar`` is also read from ``DRUPPIE_FOO_BAR``, so a Task passes
  params through ``env`` and never pastes them into a script. An optional workspace's folder comes
  with ``DRUPPIE_<FLAG>_BOUND`` (``workspace_option``). ``DRUPPIE_DEBUG`` is not an option: cli.main
  reads it to print the traceback of an unexpected error.
- **Durations** have one grammar and one parser (``DURATION``): a number and a unit, ``500ms``,
  ``90s``, ``30m``, ``1.5h``, ``7d``, several in a row (``1h30m``, ``1d12h``), or a bare number of
  seconds (``300``). A bad value is one line naming the option and the value, exit code 2:
  ``error: --timeout: "5 minutes" is not a duration (use 90s, 30m, 1.5h or 7d)``. Zero is refused,
  except where it means "no limit" (``--max-db-age 0``, also ``none`` or ``off``).
- **--timeout** is on every step, with one meaning: the deadline of the whole step, retries and
  waits included (``timeout_option``; each step has its own default).
- **--source**, in every step that reads the app's source (test, scan, build): default ``.``, and
  the same checks and words for a folder that is missing or not a folder (``source_folder``).
- **--output** is where a step writes: in test, scan and build the folder the reports go to
  (default ``.``; the Tasks' optional ``reports`` workspace), never the app's source, which they
  only read (``output_option``, ``output_folder``); in clone the folder it checks out into.
- **Booleans are flags**, ``--x/--no-x`` (``flag_option``), never ``--x true``; from the
  environment they read ``true``/``false`` (also ``1``/``0``, ``yes``/``no``) as Tekton passes them.
- **A git repository is ``--repo-url``** in every step that takes one (clone, tag-commit,
  flux-wait). An older name still works but is not shown in ``--help`` (clone's ``--url`` and
  ``DRUPPIE_URL``): ``hidden_aliases``.
- Results go to ``--results-dir``; a bad value of any kind is ``error: invalid --flag 'value': why``
  (or the duration line above) on one line, exit code 2, before anything is changed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .errors import InvalidInputError

ENV_PREFIX = "DRUPPIE_"
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


class Option(click.Option):
    """``click.Option`` whose ``hidden_aliases`` (old flags and their variables) work but stay out of --help."""

    def __init__(self, *args: Any, hidden_aliases: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden_aliases = hidden_aliases

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        opts, envvar = self.opts, self.envvar
        self.opts = [o for o in opts if o not in self.hidden_aliases]
        if isinstance(envvar, list | tuple):
            self.envvar = [e for e in envvar if e not in self.hidden_aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts, self.envvar = opts, envvar


def option(flag: str, *decls: str, hidden_aliases: tuple[str, ...] = (), **kwargs: Any) -> Decorator:
    """``click.option`` with the matching ``DRUPPIE_*`` environment variable shown in ``--help``.

    ``hidden_aliases``: old flags that still work, unlisted in --help; their ``DRUPPIE_*`` variables
    are read too, after the new one's.
    """
    if "envvar" not in kwargs:
        names = [env_name(flag), *(env_name(a) for a in hidden_aliases)]
        kwargs["envvar"] = names if hidden_aliases else names[0]
    kwargs.setdefault("show_envvar", True)
    if kwargs.get("default") not in (None, "") and not kwargs.get("is_flag"):
        kwargs.setdefault("show_default", True)
    hidden = hidden_aliases + tuple(env_name(a) for a in hidden_aliases)
    return click.option(flag, *hidden_aliases, *decls, cls=Option, hidden_aliases=hidden, **kwargs)


def flag_option(flag: str, *decls: str, default: bool, help: str) -> Decorator:
    """A boolean: ``--x/--no-x``, and ``DRUPPIE_X`` = true/false from a Task."""
    name = flag.removeprefix("--")
    return option(f"--{name}/--no-{name}", *decls, envvar=env_name(flag), default=default, help=help)


results_dir_option = option(
    "--results-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for Tekton results, one file per result (e.g. /tekton/results).",
)


def workspace_option(flag: str, dest: str, what: str) -> Decorator:
    """A folder from an optional Tekton workspace.

    The Task passes ``$(workspaces.x.path)`` as ``DRUPPIE_<FLAG>`` and ``$(workspaces.x.bound)`` as
    ``DRUPPIE_<FLAG>_BOUND``; an unbound workspace counts as not given, whatever its path says.
    """

    def unless_unbound(ctx: click.Context, param: click.Parameter, value: str) -> str:
        if (
            os.environ.get(env_name(flag) + "_BOUND", "true").lower() == "false"
            and ctx.get_parameter_source(param.name or "") == click.core.ParameterSource.ENVIRONMENT
        ):
            return ""
        return value

    return option(flag, dest, default="", callback=unless_unbound, help=f"{what} (a Tekton workspace).")


# ---- the app's source ----------------------------------------------------------------------

source_option = option(
    "--source",
    default=".",
    help="The app's source folder (the source workspace, a checkout).",
)


def source_folder(value: str) -> Path:
    """``--source`` as an absolute path (the steps run programs elsewhere); InvalidInputError when it is
    missing or not a folder. "" is the current folder, like the default."""
    path = Path(value or ".").absolute()
    if not path.exists():
        raise InvalidInputError(f"invalid --source {value!r}: no such folder")
    if not path.is_dir():
        raise InvalidInputError(f"invalid --source {value!r}: not a folder")
    return path


# ---- where reports go ----------------------------------------------------------------------


def _output_unless_unbound(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An unbound reports workspace (``DRUPPIE_OUTPUT_BOUND=false``) is the default, the current folder."""
    if (
        os.environ.get(env_name("--output") + "_BOUND", "true").lower() == "false"
        and ctx.get_parameter_source(param.name or "") == click.core.ParameterSource.ENVIRONMENT
    ):
        return "."
    return value


output_option = option(
    "--output",
    default=".",
    callback=_output_unless_unbound,
    help="Folder for the reports (the Task's reports workspace); report paths are relative to it. "
    "Not the source: the app's source is only read.",
)


def output_folder(value: str) -> Path:
    """``--output`` as an absolute path ("" is the current folder); InvalidInputError when it exists
    but is not a folder. It is created when a report is written."""
    path = Path(value or ".").absolute()
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"invalid --output {value!r}: not a folder")
    return path


# ---- durations -----------------------------------------------------------------------------

UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h|d))+|{_NUMBER}")
_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d)")
HINT = "use 90s, 30m, 1.5h or 7d"
NO_LIMIT = ("0", "none", "off")


@dataclass(frozen=True)
class Duration:
    """A duration as given (``text``, for messages) and in seconds."""

    seconds: float
    text: str

    def __str__(self) -> str:
        return self.text


def parse_duration(value: str, flag: str = "--timeout", zero_means_no_limit: bool = False) -> Duration:
    """``90s``, ``30m``, ``1.5h``, ``7d``, ``1h30m``, ``500ms``, ``300`` (seconds); the one parser of the steps.

    InvalidInputError naming ``flag`` and the value otherwise; zero is refused unless it means no limit.
    """
    text = value.strip().lower()
    hint = HINT + ("; 0 for no limit" if zero_means_no_limit else "")
    if zero_means_no_limit and text in NO_LIMIT:
        return Duration(0.0, value.strip())
    if not _DURATION.fullmatch(text):
        raise InvalidInputError(f'{flag}: "{value}" is not a duration ({hint})')
    parts = _PART.findall(text) or [(text, "s")]
    seconds = sum(float(number) * UNIT_SECONDS[unit] for number, unit in parts)
    if seconds <= 0 and not zero_means_no_limit:
        raise InvalidInputError(f'{flag}: "{value}" must be more than zero ({hint})')
    return Duration(seconds, value.strip())


if TYPE_CHECKING:
    _ParamType = click.ParamType[Duration]
else:  # click's ParamType takes type arguments only since 8.2 (pyproject allows 8.1)
    _ParamType = click.ParamType


class DurationType(_ParamType):
    """The click type of every duration option: the value arrives as a ``Duration``."""

    name = "duration"

    def __init__(self, zero_means_no_limit: bool = False) -> None:
        self.zero_means_no_limit = zero_means_no_limit

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Duration:
        if isinstance(value, Duration):
            return value
        flag = param.opts[0] if param is not None and param.opts else "duration"
        # An InvalidInputError, not click's usage error: one line naming the option, as for every bad value.
        return parse_duration(str(value), flag, self.zero_means_no_limit)


DURATION = DurationType()
DURATION_OR_NO_LIMIT = DurationType(zero_means_no_limit=True)


def timeout_option(default: str) -> Decorator:
    """``--timeout``: the deadline of the whole step, retries and waits included."""
    return option(
        "--timeout",
        type=DURATION,
        default=default,
        help="Deadline for the whole step, retries and waits included, e.g. 90s, 30m, 1.5h.",
    )
