"""promotion-gate: build once. What leaves an environment is what it runs, healthy, never a new build.

1. The environment's Flux Kustomization (read only, no reconcile requested) must run healthy what it
   last applied: flux/status.py ``running_healthy`` (not suspended, health checks on, current spec
   reconciled, Ready=True, nothing newer being applied). Its GitRepository must follow --repo-url.
2. druppie-apps at exactly the commit Flux applied (``lastAppliedRevision``), in the Kustomization's own
   ``spec.path``: the one reference of --image set there is what runs (gitops/image_edit.py
   ``deployed_reference``). It must pin a digest: a tag alone can be pushed over.
3. With --digest (the build's IMAGE_DIGEST), anything else is refused.

Its results (tag, digest) are what tag-commit writes into the next environment; source-commit is the
app's commit that digest was built from, as tag-commit recorded it (``Source-Commit:``) in the commit
that brought the digest there: where the prod run reports its commit status after a merge. Every refusal is one
line saying which environment, which reference and why; exit 1 (exit 2 for a bad option, before any
call).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .core import log
from .core.errors import InvalidInputError, StepError
from .core.options import Duration, flag_option, option, results_dir_option, timeout_option, workspace_option
from .core.results import summary_line, write_results

# How far back the commit that brought the running digest in is looked for.
SOURCE_DEPTH = 200

if TYPE_CHECKING:
    from .flux.status import Deployed


@click.command("promotion-gate")
@option(
    "--kustomization",
    required=True,
    help="The Flux Kustomization of the environment promoted from, e.g. drone-service-test.",
)
@option("--namespace", default="flux-system", help="Namespace of the Kustomization.")
@option("--image", required=True, help="Image name without tag or digest, e.g. registry.example/druppie/app.")
@option(
    "--digest",
    default="",
    help="The digest that should be promoted (sha256:...); refused unless the environment runs it. "
    "Empty: promote whatever it runs.",
)
@option("--repo-url", required=True, help="The GitOps repository the Kustomization's GitRepository follows.")
@timeout_option("2m")
@option("--kubeconfig", default="", help="Kubeconfig file; default: in-cluster, then KUBECONFIG.")
@flag_option(
    "--allow-plain-http",
    default=False,
    help="Permit credentials for --repo-url over http:// to a non-loopback host (an in-cluster git server).",
)
@workspace_option("--basic-auth", "basic_auth_dir", "Folder with .git-credentials and .gitconfig for --repo-url")
@workspace_option("--ssh-directory", "ssh_dir", "Folder with ssh keys and known_hosts for --repo-url")
@results_dir_option
def promotion_gate(
    kustomization: str,
    namespace: str,
    image: str,
    digest: str,
    repo_url: str,
    timeout: Duration,
    kubeconfig: str,
    allow_plain_http: bool,
    basic_auth_dir: str,
    ssh_dir: str,
    results_dir: str | None,
) -> None:
    """Check that KUSTOMIZATION runs IMAGE healthy (at DIGEST); print and write the tag and digest it runs."""
    from .gitops.git import TransientRetry, Workspace, check_plain_http, git_environment, validate_repo_url
    from .gitops.image_edit import deployed_reference
    from .gitops.imageref import DIGEST_RE, validate_image_name

    image = validate_image_name(image.strip())
    digest = digest.strip()
    if digest and not DIGEST_RE.match(digest):
        raise InvalidInputError(f"invalid --digest {digest!r}: must be sha256: and 64 lowercase hex digits")
    validate_repo_url(repo_url)
    check_plain_http(repo_url, bool(basic_auth_dir), allow_plain_http)  # before any network call
    deadline = time.monotonic() + timeout.seconds
    name = f"Kustomization {namespace}/{kustomization}"

    deployed = _running_healthy(kustomization, namespace, repo_url, kubeconfig or None, deadline)
    log.progress(f"{name} runs {deployed.revision} healthy, from {deployed.path}")
    with tempfile.TemporaryDirectory(prefix="druppie-promotion-gate-") as scratch:
        env = git_environment(Path(scratch), basic_auth_dir or None, ssh_dir or None)
        ws = Workspace.at_commit(repo_url, deployed.sha, deployed.path, Path(scratch) / "apps", env,
                                 TransientRetry(deadline=deadline))  # fmt: skip
        ref, where = deployed_reference(ws.path, deployed.path, image, ws.include)
        source = ws.source_commit(deployed.path, ref.digest, SOURCE_DEPTH) if ref.digest else ""
    at = f"{name} (applied {deployed.revision}, {', '.join(where)})"
    if not ref.tag or not ref.digest:
        raise StepError(f"{at} runs {ref} without a {'tag' if not ref.tag else 'digest'}: build once needs both")
    if digest and ref.digest != digest:
        raise StepError(f"refused to promote {image}@{digest}: {at} runs {ref}, not that digest")
    result = {
        "image-ref": str(ref),
        "tag": ref.tag,
        "digest": ref.digest,
        "applied-revision": deployed.revision,
        "path": deployed.path,
        "source-commit": source,
    }
    write_results(results_dir, result)
    click.echo(summary_line("promotion-gate", result))


def _running_healthy(name: str, namespace: str, repo_url: str, kubeconfig: str | None, deadline: float) -> Deployed:
    """The Kustomization and its GitRepository read once (a restarting apiserver is waited out)."""
    from .core.kube import api_client
    from .flux.status import running_healthy
    from .flux.watch import FluxApi, FluxObject, WaitTimeoutError
    from .gitops.git import repo_identity

    api = FluxApi(api_client(kubeconfig))
    ref = FluxObject("Kustomization", namespace, name)
    try:
        ks = api.get_retrying(ref, deadline)
        source_ref = (ks.get("spec") or {}).get("sourceRef") or {}
        if source_ref.get("kind") != "GitRepository":
            raise StepError(f"{ref} takes its manifests from a {source_ref.get('kind')}, not a GitRepository")
        src = FluxObject("GitRepository", source_ref.get("namespace") or namespace, source_ref.get("name", ""))
        source = api.get_retrying(src, deadline)
    except WaitTimeoutError as err:
        raise StepError(f"the API server did not answer before the deadline (--timeout) reading {ref}") from err
    url = (source.get("spec") or {}).get("url", "")
    if repo_identity(url) != repo_identity(repo_url):
        raise StepError(
            f"{src} follows {url}, not --repo-url {repo_url}: what it runs must be read where Flux reads it"
        )
    try:
        return running_healthy(ks)
    except ValueError as err:
        raise StepError(f"refused to promote: {err}") from err
