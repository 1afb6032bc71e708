"""Options that come from a flag or, for Tekton, from an environment variable.

Every option ``--foo-bar`` is also read from ``DRUPPIE_FOO_BAR``, so a Task passes params through
``env`` and never pastes them into a script.
"""

from typing import Any, Callable

import click

ENV_PREFIX = "DRUPPIE_"


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def option(flag: str, *decls: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``click.option`` with the matching ``DRUPPIE_*`` environment variable shown in ``--help``."""
    kwargs.setdefault("envvar", env_name(flag))
    kwargs.setdefault("show_envvar", True)
    if "default" in kwargs and not kwargs.get("is_flag"):
        kwargs.setdefault("show_default", True)
    return click.option(flag, *decls, **kwargs)


results_dir_option = option(
    "--results-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for Tekton results, one file per result (e.g. /tekton/results).",
)
