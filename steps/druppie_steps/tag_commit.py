"""tag-commit: promote a new image tag into the GitOps repo, safely when pipelines race.

Validate everything, clone the minimum, edit the YAML surgically, commit, push. When the push
is rejected because the branch moved, start over on the new head (re-read, re-edit, re-check
that nothing newer landed meanwhile) after a jittered exponential backoff, until the --timeout
deadline: with many pipelines at once, time is the honest bound, a count is not. Never force-push.

With --mode pull-request the same edit goes to the branch promote/<app>/<env> instead, built on
the target branch's current head and force-updated (with a lease) by every newer promotion, and
one pull request per app and environment is opened or updated through the forge's API
(gitops/forge.py): a protected branch such as production's is then changed only by a reviewed merge.

A build that is not deployed because a newer tag is there fails (exit 1, one line naming both
versions) unless --allow-no-change says a non-deploy is fine; either way the results say so in
words (``deployed``, ``reason``), so a summary never shows a green run that shipped nothing.
"""

from __future__ import annotations

import string
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

from .core import log
from .core.errors import InvalidInputError, StepError
from .core.options import Duration, flag_option, option, results_dir_option, timeout_option, workspace_option
from .core.redact import redact
from .core.results import summary_line, write_results
from .gitops.forge import Forge, ForgeClient, ForgeError, PullRequest, resolve_forge
from .gitops.git import (
    GitError,
    PushOutcome,
    TransientRetry,
    Workspace,
    check_plain_http,
    full_jitter,
    git_environment,
    validate_branch,
    validate_repo_url,
)
from .gitops.image_edit import ENVS, ImagePlan, check_inside, plan_image_update, validate_path
from .gitops.imageref import is_older, validate_digest, validate_image_name, validate_tag
from .gitops.promotion import Proposal, parse_tested_by, promotion_branch, validate_source_commit

DEFAULT_MESSAGE = "{app}: deploy {image}:{new_tag} (was {old_tag})"
# How far back a rollback looks for the build it goes back to: the commits of --branch, newest first.
ROLLBACK_HISTORY = 500
MESSAGE_FIELDS = {"app", "image", "old_tag", "new_tag", "path", "branch"}
BACKOFF_BASE_SECONDS = 0.25
# Racing runs must spread out until their attempts come about one per push window of the server,
# or every attempt collides and the cores only churn (100 runs with a 5 s cap: 2% of the server's
# push rate). 30 s lets about a hundred runs spread; a few runs never get near it.
BACKOFF_CAP_SECONDS = 30.0
LAST_ATTEMPT_RESERVE_SECONDS = 5.0  # a fetch, commit and push before the deadline
MODES = ("push", "pull-request")
MAX_DESCRIBE_ROUNDS = 10  # racing promotions of one app and environment: each round follows a newer one


def validate_message(template: str) -> str:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as err:
        raise InvalidInputError(f"invalid --message {template!r}: {err}") from err
    unknown = sorted(f for f in fields if f not in MESSAGE_FIELDS)
    if unknown or not template.strip():
        raise InvalidInputError(
            f"invalid --message {template!r}: unknown field {{{unknown[0] if unknown else ''}}}; "
            f"use {', '.join('{' + f + '}' for f in sorted(MESSAGE_FIELDS))}"
        )
    return template


def backoff_seconds(attempt: int) -> float:
    """Full jitter keeps racing runs apart; the cap keeps a late run from sleeping past its turn."""
    return full_jitter(attempt, BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS)


@click.command("tag-commit")
@option("--repo-url", required=True, help="GitOps repository (https://, ssh:// or git@host:path).")
@option("--branch", default="main", help="Branch Flux follows.")
@option(
    "--path",
    "subdir",
    required=True,
    help="Folder in the repo that deploys the app, under envs/, e.g. envs/prod/drone-service.",
)
@option("--image", required=True, help="Image name as written in the manifests, without tag.")
@option("--tag", required=True, help="New image tag, a semantic version (1.0.5 or v1.0.5).")
@option("--digest", default="", help="Optional image digest sha256:<64 hex>; pins the exact build.")
@option("--author-name", default="Druppie CI", help="Commit author name.")
@option("--author-email", default="ci@druppie.local", help="Commit author e-mail.")
@option(
    "--message",
    default=DEFAULT_MESSAGE,
    help="Commit subject template; fields: {app} {image} {old_tag} {new_tag} {path} {branch}.",
)
@option("--pipeline-run", default="", help="PipelineRun name, recorded as a commit trailer.")
@option(
    "--mode",
    type=click.Choice(MODES),
    default="push",
    help="push: commit to --branch; pull-request: commit to promote/<app>/<env> and open or update its pull request.",
)
@option(
    "--forge",
    type=click.Choice(("auto", "gitea", "github", "gitlab")),
    default="auto",
    help="The forge's API kind for --mode pull-request; auto: github for github.com, else it must be given.",
)
@option(
    "--forge-api-url",
    default="",
    help="The forge's API root, e.g. https://git.example.org/api/v1; derived from an http(s) --repo-url when empty.",
)
@option("--source-commit", default="", help="The app's commit the image was built from, shown in the pull request.")
@option(
    "--tested-by",
    default="",
    help="The runs that tested the image (names or URLs, comma-separated), shown in the pull request.",
)
@timeout_option("5m")
@option(
    "--max-attempts",
    type=click.IntRange(0, 10_000),
    default=0,
    help="Upper bound on push attempts when the branch keeps moving; 0: none, --timeout bounds them.",
)
@option(
    "--transient-retries",
    type=click.IntRange(0, 20),
    default=4,
    help="Retries of a clone, fetch or push after a server error (HTTP 5xx, connection reset).",
)
@flag_option(
    "--allow-plain-http",
    default=False,
    help="Permit credentials over http:// to a non-loopback host (an in-cluster git server).",
)
@flag_option("--allow-downgrade", default=False, help="Permit a lower tag than the current one (rollback).")
@option(
    "--rollback-reason",
    default="",
    help="A rollback: put --path back to --tag and --digest, which it ran before (checked in its history), "
    "older or not; the reason goes into the commit (and the pull request).",
)
@flag_option(
    "--allow-no-change",
    default=False,
    help="Exit 0 when a newer tag is already there (deployed=false); without it that run fails.",
)
@flag_option(
    "--allow-path-outside-envs",
    default=False,
    help="Permit a --path outside envs/ (another repository layout); .., symbolic links out of it stay refused.",
)
@workspace_option("--basic-auth", "basic_auth_dir", "Folder with .git-credentials and .gitconfig")
@workspace_option("--ssh-directory", "ssh_dir", "Folder with ssh keys (id_*), known_hosts and config")
@results_dir_option
def tag_commit(
    repo_url: str,
    branch: str,
    subdir: str,
    image: str,
    tag: str,
    digest: str,
    author_name: str,
    author_email: str,
    message: str,
    pipeline_run: str,
    mode: str,
    forge: str,
    forge_api_url: str,
    source_commit: str,
    tested_by: str,
    timeout: Duration,
    max_attempts: int,
    transient_retries: int,
    allow_plain_http: bool,
    allow_downgrade: bool,
    rollback_reason: str,
    allow_no_change: bool,
    allow_path_outside_envs: bool,
    basic_auth_dir: str,
    ssh_dir: str,
    results_dir: str | None,
) -> None:
    """Write IMAGE:TAG into the GitOps repo at PATH and push it (retrying races, never downgrading)."""
    retry = TransientRetry(transient_retries, deadline=time.monotonic() + timeout.seconds)
    validate_repo_url(repo_url)
    validate_branch(branch)
    subdir = validate_path(subdir, allow_path_outside_envs)
    validate_image_name(image)
    validate_tag(tag)
    pinned = validate_digest(digest)
    validate_message(message)
    if not author_name.strip():
        raise InvalidInputError(f"invalid --author-name {author_name!r}: must not be empty")
    if "@" not in author_email:
        raise InvalidInputError(f"invalid --author-email {author_email!r}: must be an e-mail address")
    source_commit = validate_source_commit(source_commit)
    runs = parse_tested_by(tested_by)
    rollback_reason = validate_rollback_reason(rollback_reason, pinned)
    check_plain_http(repo_url, bool(basic_auth_dir), allow_plain_http)
    target: Forge | None = None
    if mode == "pull-request":
        promotion_branch(subdir)  # refused before any network call when the path names no app and environment
        target = resolve_forge(repo_url, forge, forge_api_url)
        check_plain_http(target.api_url, True, allow_plain_http)

    with tempfile.TemporaryDirectory(prefix="druppie-tag-commit-") as scratch:
        env = git_environment(Path(scratch), basic_auth_dir or None, ssh_dir or None)
        log.progress(f"cloning {repo_url} ({branch}, only {subdir or 'the root'})")
        ws = Workspace.clone(repo_url, branch, subdir, Path(scratch) / "repo", env, retry)
        trailers: list[str] = []
        if rollback_reason:
            ran = ws.last_commit_setting(subdir, tag, pinned or "", ROLLBACK_HISTORY)
            if not ran:
                raise StepError(
                    f"not a rollback: {image}:{tag}@{pinned} never ran in {subdir} on {branch} (no commit of its last "
                    f"{ROLLBACK_HISTORY} set that tag and digest); a rollback goes back to what ran before"
                )
            log.info(f"rollback: {subdir} ran {image}:{tag}@{pinned} after {ran[:12]}; reason: {rollback_reason}")
            allow_downgrade = True
            trailers = [f"Rollback: {rollback_reason}", f"Rollback-To: {ran}"]
        if target is not None:
            client = _forge_client(ws, target, repo_url)
            outcome = _propose(
                ws,
                client,
                subdir,
                image,
                tag,
                pinned,
                message,
                pipeline_run,
                source_commit,
                tuple(runs),
                author_name,
                author_email,
                max_attempts,
                allow_downgrade,
                "" if allow_path_outside_envs else ENVS,
                trailers,
            )
        else:
            outcome = _promote(
                ws,
                subdir,
                image,
                tag,
                pinned,
                message,
                pipeline_run,
                author_name,
                author_email,
                max_attempts,
                allow_downgrade,
                "" if allow_path_outside_envs else ENVS,
                trailers,
            )
    write_results(results_dir, outcome.results)  # also when not deployed: the summary says why in words
    if outcome.refusal and not allow_no_change:
        raise StepError(outcome.refusal)
    if outcome.refusal:
        log.warn(f"{outcome.results['reason']} (--allow-no-change: not failing)")
    click.echo(summary_line("tag-commit", outcome.results))


@dataclass
class Outcome:
    results: dict[str, str]
    refusal: str = ""  # why this build was not deployed, as the one error line; "" when it was


def _promote(
    ws: Workspace,
    subdir: str,
    image: str,
    tag: str,
    digest: str | None,
    message: str,
    pipeline_run: str,
    author_name: str,
    author_email: str,
    max_attempts: int,
    allow_downgrade: bool,
    bound: str,
    trailers: list[str] | None = None,
) -> Outcome:
    """``bound``: the folder every edit must stay in once symbolic links are followed (envs, or "" for the repo);
    ``trailers``: lines at the end of the commit message (a rollback's reason)."""
    attempt = 0
    while True:
        attempt += 1
        check_inside(ws.path, subdir, bound)
        plan = plan_image_update(ws.path, subdir, image, tag, digest, include=ws.include)
        previous = plan.previous_tag
        if not plan.changed_files:
            return _already_set(ws, image, tag, plan)
        refused = _older_than_target(ws, subdir, image, tag, previous, allow_downgrade)
        if refused:
            return refused
        commit = _commit_edit(
            ws, plan, subdir, image, tag, digest, message, pipeline_run, author_name, author_email, bound, trailers
        )
        outcome = ws.push()
        if outcome.pushed:
            log.progress(
                f"pushed {commit[:12]} to {ws.branch}: {image} {previous or 'none'} -> {tag} "
                f"({', '.join(plan.where)}), attempt {attempt}"
            )
            return Outcome(
                _results(ws, commit, True, previous, f"deployed {tag} (was {previous or 'none'}) in {commit[:12]}")
            )
        _retry_on_the_new_head(ws, ws.branch, outcome, attempt, max_attempts)


def _propose(
    ws: Workspace,
    forge: ForgeClient,
    subdir: str,
    image: str,
    tag: str,
    digest: str | None,
    message: str,
    pipeline_run: str,
    source_commit: str,
    tested_by: tuple[str, ...],
    author_name: str,
    author_email: str,
    max_attempts: int,
    allow_downgrade: bool,
    bound: str,
    trailers: list[str] | None = None,
) -> Outcome:
    """--mode pull-request: the edit on promote/<app>/<env>, rebuilt on the target's head, and its pull request.

    The checks are those of the push mode (and first): nothing older than the target branch has,
    every edit verified before the push. Then nothing older than the open pull request proposes.
    The branch is replaced with a lease on the commit we saw (a racing promotion is redone on the
    new state, never overwritten blind), and left alone when it already holds exactly this change
    on this base (same files, same message), so that a re-run after a failed API call opens the pull
    request and changes nothing else.
    """
    app, env, head = promotion_branch(subdir)
    attempt = 0
    while True:
        attempt += 1
        base = ws.head()
        tip = ws.remote_branch(head)
        proposed = _proposed_tag(ws, head, base, subdir, image, tag, digest) if tip else ""
        open_pr = forge.find_open(head, ws.branch)
        check_inside(ws.path, subdir, bound)
        plan = plan_image_update(ws.path, subdir, image, tag, digest, include=ws.include)
        previous = plan.previous_tag
        if not plan.changed_files:
            return _already_set(ws, image, tag, plan, open_pr.url if open_pr else "")
        refused = _older_than_target(ws, subdir, image, tag, previous, allow_downgrade)
        if refused:
            return refused
        if proposed and is_older(tag, proposed) and not allow_downgrade:
            where = f"the open pull request {open_pr.url}" if open_pr else f"the branch {head} (no pull request open)"
            log.warn(f"{where} already proposes {image}:{proposed}, newer than {tag}: not replacing it")
            return Outcome(
                _results(
                    ws,
                    base,
                    False,
                    previous,
                    f"not proposed: {head} already proposes {proposed}, newer than {tag}",
                    deployed=False,
                    pull_request_url=open_pr.url if open_pr else "",
                ),
                refusal=(
                    f"not proposed: {image}:{tag} is older than {proposed}, which {where} already proposes for "
                    f"{subdir}; --allow-downgrade replaces it anyway, --allow-no-change accepts that nothing is "
                    "proposed"
                ),
            )
        rollback = next((t.partition(": ")[2] for t in trailers or [] if t.startswith("Rollback: ")), "")
        proposal = Proposal(
            app, env, subdir, image, tag, digest, previous, ws.branch, source_commit, tested_by, pipeline_run, rollback
        )
        commit = _commit_edit(
            ws,
            plan,
            subdir,
            image,
            tag,
            digest,
            message,
            pipeline_run,
            author_name,
            author_email,
            bound,
            [*proposal.trailers(), *(trailers or [])],
        )
        if tip and (ws.parents(tip), ws.tree(tip), ws.message(tip)) == ([base], ws.tree(commit), ws.message(commit)):
            commit, changed = tip, False
            log.info(f"{head} already holds this change on {ws.branch} {base[:12]}; not pushing it again")
        else:
            outcome = ws.push(head, lease=tip or "")
            if not outcome.pushed:
                _retry_on_the_new_head(ws, head, outcome, attempt, max_attempts)
                continue
            changed = True
            log.progress(
                f"pushed {commit[:12]} to {head} (on {ws.branch} {base[:12]}): {image} {previous or 'none'} -> {tag}, "
                f"attempt {attempt}"
            )
        title = _subject(message, subdir, image, previous, tag, ws.branch)
        try:
            pr = _open_or_update(forge, open_pr, head, ws.branch, title, proposal.body())
            described = _describe_the_tip(ws, forge, pr, head, commit, app, env, subdir)
        except GitError as err:  # a ForgeError, or the one TransientRetry made of it when giving up
            state = "was pushed" if changed else "is"
            raise StepError(
                f"{err}; the branch {head} {state} at {commit[:12]} but its pull request was not opened or updated: "
                "run again (the same promotion converges)"
            ) from err
        reason = f"proposed {tag} (was {previous or 'none'}) in {pr.url}"
        if described != commit:
            reason += f"; a newer promotion replaced it since ({described[:12]})"
        log.progress(f"pull request {pr.url}: {reason}")
        return Outcome(
            _results(
                ws,
                commit,
                changed,
                previous,
                reason,
                deployed=False,
                branch=head,
                pull_request_url=pr.url,
            )
        )


def _forge_client(ws: Workspace, forge: Forge, repo_url: str) -> ForgeClient:
    """A client with the token git uses for the repository (the basic-auth workspace, or the URL's)."""
    url = repo_url if repo_url.startswith(("https://", "http://")) else forge.api_url
    found = ws.credential(url)
    if found is None:
        raise InvalidInputError(
            f"no credentials for {redact(url)} in the basic-auth workspace: --mode pull-request needs its "
            ".git-credentials to hold a token that may push branches and open pull requests"
        )
    return ForgeClient(forge, found[0], found[1], ws.retry)


def _proposed_tag(ws: Workspace, head: str, base: str, subdir: str, image: str, tag: str, digest: str | None) -> str:
    """The tag the promotion branch holds now (read from its tip), then back to ``base``."""
    ws.checkout_remote(head)
    try:
        return plan_image_update(ws.path, subdir, image, tag, digest, include=ws.include).previous_tag
    except StepError as err:
        raise StepError(f"cannot read what {head} proposes: {err}") from err
    finally:
        ws.reset(base)


def _describe_the_tip(
    ws: Workspace, forge: ForgeClient, pr: PullRequest, head: str, described: str, app: str, env: str, subdir: str
) -> str:
    """Make the pull request's text describe the branch as it is now; returns the commit it describes.

    Racing promotions of one app and environment each push and then write the text; the text of
    an earlier push may land last. Each commit of the branch records its proposal (trailers), so
    whoever sees the branch moved writes the text of the tip instead; every writer checks again
    after writing, so the last text written is the tip's.
    """
    for _ in range(MAX_DESCRIBE_ROUNDS):
        if ws.remote_branch(head) in (None, described):
            return described
        tip = ws.fetch_tip(head)
        text = ws.message(tip)
        proposal = Proposal.from_message(text, app, env, subdir, ws.branch)
        if proposal is None:  # a commit by hand: its author writes the text
            return described
        log.info(f"{head} moved to {tip[:12]} ({proposal.image}:{proposal.tag}) meanwhile; describing that")
        forge.update(pr.number, text.splitlines()[0], proposal.body())
        described = tip
    return described


def _open_or_update(
    forge: ForgeClient, found: PullRequest | None, head: str, base: str, title: str, body: str
) -> PullRequest:
    if found is None:
        created = forge.create(head, base, title, body)
        if created is not None:
            return created
        found = forge.find_open(head, base)  # another run opened it meanwhile
        if found is None:
            raise ForgeError(f"forge API {forge.forge.api_url} says a pull request from {head} exists but lists none")
    return forge.update(found.number, title, body)


def _already_set(ws: Workspace, image: str, tag: str, plan: ImagePlan, pull_request_url: str = "") -> Outcome:
    where = ", ".join(plan.where)
    log.info(f"{image}:{tag} is already set in {where}; nothing to commit")
    return Outcome(
        _results(
            ws,
            ws.head(),
            False,
            plan.previous_tag,
            f"{tag} was already set in {where}",
            pull_request_url=pull_request_url,
        )
    )


def validate_rollback_reason(reason: str, digest: str | None) -> str:
    """The reason of a rollback, one line; a rollback names the very build it goes back to."""
    if not reason:
        return ""
    if not reason.strip() or "\n" in reason or len(reason) > 300:
        raise InvalidInputError(f"invalid --rollback-reason {reason[:80]!r}: one line of 1 to 300 characters")
    if not digest:
        raise InvalidInputError(
            f"invalid --rollback-reason {reason[:80]!r}: a rollback needs the --digest of the build it goes back to"
        )
    return " ".join(reason.split())


def _older_than_target(
    ws: Workspace, subdir: str, image: str, tag: str, previous: str, allow_downgrade: bool
) -> Outcome | None:
    """The refusal of a tag older than the one the target branch has; None when it may be written."""
    older = is_older(tag, previous) if previous else False
    if older is None:
        log.warn(
            f"{image}: the current tag {previous} is not a semantic version and cannot be ordered; "
            f"replacing it with {tag}"
        )
    if not older or allow_downgrade:
        return None
    log.warn(
        f"{image} is already at {previous}, newer than {tag}: not downgrading "
        f"(a newer build landed first; pass --allow-downgrade for a rollback)"
    )
    reason = f"not deployed: {subdir} already has {previous}, newer than {tag}"
    return Outcome(
        _results(ws, ws.head(), False, previous, reason, deployed=False),
        refusal=(
            f"not deployed: {image}:{tag} is older than {previous}, which {subdir} already has "
            "(a newer build landed first, or the version went backwards); --allow-downgrade deploys it "
            "anyway (a rollback), --allow-no-change accepts that nothing is deployed"
        ),
    )


def _subject(message: str, subdir: str, image: str, previous: str, tag: str, branch: str) -> str:
    return message.format(
        app=Path(subdir).name or image.rsplit("/", 1)[-1],
        image=image,
        old_tag=previous or "none",
        new_tag=tag,
        path=subdir,
        branch=branch,
    )


def _commit_edit(
    ws: Workspace,
    plan: ImagePlan,
    subdir: str,
    image: str,
    tag: str,
    digest: str | None,
    message: str,
    pipeline_run: str,
    author_name: str,
    author_email: str,
    bound: str,
    trailers: list[str] | None = None,
) -> str:
    """Write the checked edit and commit it locally; returns the commit. ``trailers``: more lines at its end."""
    check_inside(ws.path, subdir, bound, [e.path for e in plan.changed_files])
    plan.apply()
    subject = _subject(message, subdir, image, plan.previous_tag, tag, ws.branch)
    body = f"{subject}\n\nImage: {image}:{tag}{'@' + digest if digest else ''}\nPath: {subdir}\n"
    if pipeline_run:
        body += f"Tekton-Pipeline-Run: {pipeline_run}\n"
    body += "".join(f"{line}\n" for line in trailers or [])
    return ws.commit([e.path for e in plan.changed_files], body, author_name, author_email)


def _retry_on_the_new_head(ws: Workspace, branch: str, outcome: PushOutcome, attempt: int, max_attempts: int) -> None:
    """After a rejected push: fail when it was not a race or time is up, else wait and start over on the new head."""
    if not outcome.branch_moved:
        raise StepError(f"push to {branch} rejected by the server: {outcome.detail}")
    left = ws.retry.remaining() - LAST_ATTEMPT_RESERVE_SECONDS
    if attempt == max_attempts or left <= 0:
        bound = "--max-attempts" if attempt == max_attempts else "--timeout"
        raise StepError(
            f"gave up after {attempt} attempts in {log.elapsed():.0f}s: {branch} kept moving; "
            f"raise {bound} or spread the pipelines"
        )
    wait = min(backoff_seconds(attempt), left)  # a last try just before the deadline beats giving up
    log.progress(
        f"{branch} moved while we pushed ({outcome.detail}); retry {attempt + 1} on the new head in {wait:.2f}s"
    )
    time.sleep(wait)
    ws.refresh()


def _results(
    ws: Workspace,
    commit: str,
    changed: bool,
    previous: str,
    reason: str,
    deployed: bool = True,
    branch: str = "",
    pull_request_url: str = "",
) -> dict[str, str]:
    """``deployed``: the target branch holds the asked tag now (pushed by us, or already there); a
    promotion by pull request is not deployed until it is merged. ``branch``: where ``commit`` is,
    when not the target branch (the promotion branch)."""
    return {
        "commit": commit,
        "revision": f"{branch or ws.branch}@sha1:{commit}",
        "changed": "true" if changed else "false",
        "previous-tag": previous,
        "deployed": "true" if deployed else "false",
        "reason": reason,
        "pull-request-url": pull_request_url,
    }
