"""``druppie-step``: one subcommand per step, each imported only when it runs (keeps --help fast)."""

import importlib
import os
import traceback

import click

from . import __version__
from .core.errors import StepError
from .core.redact import redact

# With this set to 1 (or true), an unexpected error prints its traceback too, redacted like every line.
DEBUG_ENV = "DRUPPIE_DEBUG"
# name -> (module, attribute, one-line help). The help is here so that listing the commands
# imports no step module at all.
STEPS = {
    "tag-commit": ("druppie_steps.tag_commit", "tag_commit", "Write a new image tag into the GitOps repo and push it."),
    "clone": ("druppie_steps.clone", "clone", "Check out one revision of a repository, shallow, into a workspace."),
    "test": ("druppie_steps.run_tests", "run_tests", "Run the app's tests in an isolated environment; JUnit report."),
    "scan": ("druppie_steps.scan", "scan", "Scan code, secrets, dependencies and config; one SARIF report."),
    "build": ("druppie_steps.build", "build", "Build the app's image with buildah, push it, write its SBOM."),
    "flux-wait": (
        "druppie_steps.flux_wait",
        "flux_wait",
        "Make Flux apply a pushed revision and wait until it is applied and healthy.",
    ),
    "promotion-gate": (
        "druppie_steps.promotion_gate",
        "promotion_gate",
        "Build once: check an environment runs an image healthy; its tag and digest to promote.",
    ),
    "summary": (
        "druppie_steps.summary",
        "summary",
        "Summarise a PipelineRun: its tasks, results, and which failed and why.",
    ),
    "commit-status": (
        "druppie_steps.commit_status",
        "commit_status",
        "Report a run's stages as commit statuses on the app's forge (Gitea, GitHub).",
    ),
}

# The catalog's services and jobs (a Deployment or CronJob runs them), not steps of a Task: the
# steps' conventions (--timeout, --source) do not apply.
SERVICES = {
    "prune-runs": (
        "druppie_steps.prune",
        "prune_runs",
        "Keep the last N finished PipelineRuns of each app; delete the older ones with their volumes.",
    ),
    "osv-db-push": (
        "druppie_steps.osv_db_push",
        "osv_db_push",
        "Push the OSV advisory database (a folder, or downloaded) as an OCI artifact for scan --osv-db-ref.",
    ),
    "seccomp-install": (
        "druppie_steps.seccomp_install",
        "seccomp_install",
        "Install the catalog's seccomp profiles into a node's kubelet folder; keep them there.",
    ),
    "webhook-gate": (
        "druppie_steps.webhook_gate",
        "webhook_gate",
        "Serve the EventListener's interceptor: which pushes may start a run.",
    ),
}


def commands() -> dict[str, tuple[str, str, str]]:
    return {**STEPS, **SERVICES}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(commands())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in commands():
            return None
        module, attr, _ = commands()[name]
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module}.{attr} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Steps"):
            formatter.write_dl([(name, STEPS[name][2]) for name in sorted(STEPS)])
        with formatter.section("Services"):
            formatter.write_dl([(name, SERVICES[name][2]) for name in sorted(SERVICES)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="druppie-step")
def cli() -> None:
    """Steps of the Druppie CI/CD catalog. Every option can also be set by its DRUPPIE_* variable.

    DRUPPIE_DEBUG=1 prints the traceback of an unexpected error (exit code 3), secrets masked.
    """


def debug_enabled() -> bool:
    """DRUPPIE_DEBUG is 1, true, yes or on (a Task passes its debug param, "true" or "false")."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> int:
    """Run a step; a StepError becomes one redacted line on stderr and its exit code, anything else exit 3."""
    try:
        cli.main(args=argv, prog_name="druppie-step", standalone_mode=False)
    except StepError as err:
        click.echo(redact(f"error: {err}"), err=True)
        return err.exit_code
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except Exception as err:  # noqa: BLE001 - the one place that turns surprises into a clear exit
        if debug_enabled():  # before the line, so that the line stays the last one of the log
            click.echo(redact(traceback.format_exc().rstrip("\n")), err=True)
        click.echo(redact(f"unexpected error: {type(err).__name__}: {err}"), err=True)
        return 3
    return 0
