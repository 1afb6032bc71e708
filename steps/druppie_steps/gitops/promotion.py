"""The words of a promotion by pull request: its branch, its title and body, the inputs they show.

Pure functions (no git, no network), so the body a reviewer reads is tested exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..core.errors import InvalidInputError
from ..core.redact import redact
from .imageref import parse_reference

BRANCH_PREFIX = "promote"
_SHA = re.compile(r"^[0-9a-f]{7,64}$")
# A run's name or address: what Tekton names and URLs hold, nothing that could break out of a code span.
_RUN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@%?=&+#~-]{0,299}$")


def promotion_branch(subdir: str) -> tuple[str, str, str]:
    """(app, environment, ``promote/<app>/<env>``) of a folder ``envs/<env>/<app>``; deeper folders keep
    their path as the app (``envs/prod/team/api``: ``promote/team/api/prod``)."""
    parts = PurePosixPath(subdir).parts
    if len(parts) < 3 or parts[0] != "envs":
        raise InvalidInputError(
            f"invalid --path {subdir!r}: --mode pull-request needs envs/<environment>/<app>, "
            "which names the branch promote/<app>/<environment>"
        )
    env, app = parts[1], "/".join(parts[2:])
    return app, env, f"{BRANCH_PREFIX}/{app}/{env}"


def validate_source_commit(value: str) -> str:
    value = value.strip()
    if value and not _SHA.match(value):
        raise InvalidInputError(
            f"invalid --source-commit {value!r}: must be the app's commit sha, 7 to 64 lowercase hex digits"
        )
    return value


def parse_tested_by(value: str) -> list[str]:
    """The runs that tested the image: names or URLs, separated by commas, spaces or new lines."""
    runs = [r for r in re.split(r"[\s,]+", value.strip()) if r]
    for run in runs:
        if not _RUN.match(run) or ("://" in run and "@" in run.split("://", 1)[1].split("/", 1)[0]):
            raise InvalidInputError(
                f"invalid --tested-by {redact(run)!r}: a run's name or URL (letters, digits and ._:/@%?=&+#~-, "
                "no credentials), several separated by commas"
            )
    return runs


def _code(text: str) -> str:
    """Free text as a code span in a table cell: no backtick or pipe can end either."""
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


@dataclass(frozen=True)
class Proposal:
    """What one pull request proposes; ``body()`` is the text the reviewers read."""

    app: str
    env: str
    path: str
    image: str
    tag: str
    digest: str | None
    previous_tag: str
    base: str
    source_commit: str = ""
    tested_by: tuple[str, ...] = ()
    pipeline_run: str = ""
    rollback: str = ""  # a rollback's reason (its commit's Rollback: trailer)

    def trailers(self) -> list[str]:
        """What the body shows beyond the image lines of every tag-commit commit, as trailers of the
        branch's commit: the body can then be written again from the branch alone (``from_message``)."""
        lines = [f"Previous-Tag: {self.previous_tag}"] if self.previous_tag else []
        if self.source_commit:
            lines.append(f"Source-Commit: {self.source_commit}")
        if self.tested_by:
            lines.append(f"Tested-By: {', '.join(self.tested_by)}")
        return lines

    @classmethod
    def from_message(cls, message: str, app: str, env: str, path: str, base: str) -> Proposal | None:
        """The proposal a promote branch's commit records (its ``Image:`` line and trailers); None when
        the commit is not one of ours."""
        fields: dict[str, str] = {}
        for line in message.splitlines()[1:]:
            key, sep, value = line.partition(": ")
            if sep and key in (
                "Image",
                "Previous-Tag",
                "Source-Commit",
                "Tested-By",
                "Tekton-Pipeline-Run",
                "Rollback",
            ):
                fields[key] = value.strip()
        ref = parse_reference(fields.get("Image", ""))
        if ref is None or not ref.tag:
            return None
        runs = tuple(r for r in re.split(r"[\s,]+", fields.get("Tested-By", "")) if r)
        return cls(
            app,
            env,
            path,
            ref.name,
            ref.tag,
            ref.digest,
            fields.get("Previous-Tag", ""),
            base,
            fields.get("Source-Commit", ""),
            runs,
            fields.get("Tekton-Pipeline-Run", ""),
            fields.get("Rollback", ""),
        )

    def body(self) -> str:
        ref = f"{self.image}:{self.tag}" + (f"@{self.digest}" if self.digest else "")
        rows = [
            ("Image", f"`{self.image}:{self.tag}`"),
            ("Digest", f"`{self.digest}`" if self.digest else "not given (the tag alone is written)"),
            ("Source commit", f"`{self.source_commit}`" if self.source_commit else "not given"),
            ("Tested by", ", ".join(f"`{r}`" for r in self.tested_by) if self.tested_by else "not given"),
            (
                "Replaces",
                f"`{self.previous_tag}` on `{self.base}`" if self.previous_tag else f"nothing on `{self.base}`",
            ),
            ("Path", f"`{self.path}`"),
        ]
        if self.pipeline_run:
            rows.append(("Pipeline run", _code(self.pipeline_run)))
        if self.rollback:  # first: what a reviewer must weigh
            rows.insert(0, ("Rollback", _code(self.rollback)))
        headline = (
            f"Rolls **{self.app}** in **{self.env}** back to `{ref}`, which ran there before."
            if self.rollback
            else f"Promotes **{self.app}** to **{self.env}**: `{ref}`."
        )
        lines = [
            headline,
            "",
            "| | |",
            "|---|---|",
            *(f"| {name} | {value} |" for name, value in rows),
            "",
            f"Opened by druppie-tag-commit. A newer promotion of {self.app} to {self.env} rebuilds this branch on "
            f"the current `{self.base}` and updates this pull request; an older one is refused. Merging it is what "
            "deploys (Flux follows "
            f"`{self.base}`).",
        ]
        return redact("\n".join(lines) + "\n")
