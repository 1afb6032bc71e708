"""Options that come from a flag or, for Tekton, from an environment variable.

Every option ``--foo-bar`` is also read from ``DRUPPIE_FOO_BAR``, so a Task passes params through
``env`` and never pastes them into a script.
"""

import os
import re
from collections.abc import Callable
from typing import Any

import click

from .errors import InvalidInputError

ENV_PREFIX = "DRUPPIE_"


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def option(flag: str, *decls: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``click.option`` with the matching ``DRUPPIE_*`` environment variable shown in ``--help``."""
    kwargs.setdefault("envvar", env_name(flag))
    kwargs.setdefault("show_envvar", True)
    if kwargs.get("default") not in (None, "") and not kwargs.get("is_flag"):
        kwargs.setdefault("show_default", True)
    return click.option(flag, *decls, **kwargs)


results_dir_option = option(
    "--results-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for Tekton results, one file per result (e.g. /tekton/results).",
)


def workspace_option(flag: str, dest: str, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
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


def parse_duration(value: str) -> float:
    """``5m``, ``90s``, ``1h30m``, ``300`` (seconds) as seconds; InvalidInputError naming the value otherwise."""
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise InvalidInputError(f"invalid --timeout {value!r}: use a duration such as 5m, 90s or 1h30m")
        seconds = sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in parts)
    if seconds <= 0:
        raise InvalidInputError(f"invalid --timeout {value!r}: must be more than zero")
    return seconds
