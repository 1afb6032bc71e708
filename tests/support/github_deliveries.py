"""Webhook deliveries as GitHub sends them (docs.github.com, "Webhook events and payloads":
pull_request and issue_comment), for a repository that lives elsewhere: GitHub itself cannot be
reached from these machines, so the e2e tier sends GitHub's shapes to the real EventListener with
the local forge's URLs and commits in them. Only GitHub's headers (no X-Gitea-Event), GitHub's
field layout (no Gitea-only field such as is_pull), signed as GitHub signs (X-Hub-Signature-256)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid


def _id(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:7], 16)


def _user(login: str) -> dict:
    return {"login": login, "id": _id(login), "node_id": "MDQ6VXNlcjE=", "type": "User",
            "site_admin": False, "html_url": f"https://github.com/{login}"}  # fmt: skip


def repository(full_name: str, clone_url: str) -> dict:
    """GitHub's repository object, with the clone URL the platform configured for it."""
    owner, name = full_name.split("/")
    return {
        "id": _id(full_name), "node_id": "R_kgDOAAAAAA", "name": name, "full_name": full_name,
        "private": False, "owner": _user(owner), "html_url": clone_url.removesuffix(".git"), "fork": False,
        "clone_url": clone_url, "git_url": clone_url.replace("http", "git", 1), "default_branch": "main",
        "ssh_url": f"git@{clone_url.split('/')[2]}:{full_name}.git", "visibility": "public",
    }  # fmt: skip


def pull_request(number: int, action: str, author: str, head_repo: dict, base_repo: dict, branch: str,
                 sha: str) -> dict:  # fmt: skip
    """A pull_request event: ``author`` asks to merge ``branch`` (at ``sha``) of ``head_repo`` into main."""
    url = f"{base_repo['html_url']}/pull/{number}"
    return {
        "action": action, "number": number,
        "pull_request": {
            "url": url, "id": number * 1000 + 7, "node_id": "PR_kwDOAAAAAA", "html_url": url, "number": number,
            "state": "open", "locked": False, "title": "A proposal", "user": _user(author), "body": None,
            "draft": False, "merged": False, "merge_commit_sha": None, "author_association": "CONTRIBUTOR",
            "head": {"label": f"{head_repo['owner']['login']}:{branch}", "ref": branch, "sha": sha,
                     "user": head_repo["owner"], "repo": head_repo},
            "base": {"label": f"{base_repo['owner']['login']}:main", "ref": "main", "sha": "0" * 40,
                     "user": base_repo["owner"], "repo": base_repo},
        },
        "repository": base_repo, "sender": _user(author),
    }  # fmt: skip


def issue_comment(number: int, comment_id: int, author: str, body: str, base_repo: dict) -> dict:
    """An issue_comment event on pull request ``number`` (GitHub marks that by issue.pull_request)."""
    url = f"{base_repo['html_url']}/pull/{number}"
    return {
        "action": "created",
        "issue": {"url": url, "number": number, "title": "A proposal", "user": _user("someone"), "state": "open",
                  "locked": False, "pull_request": {"url": url, "html_url": url, "diff_url": f"{url}.diff",
                                                    "patch_url": f"{url}.patch", "merged_at": None}},
        "comment": {"id": comment_id, "node_id": "IC_kwDOAAAAAA", "user": _user(author), "body": body,
                    "author_association": "OWNER", "html_url": f"{url}#issuecomment-{comment_id}"},
        "repository": base_repo, "sender": _user(author),
    }  # fmt: skip


def headers(event: str, body: bytes, secret: bytes) -> dict[str, str]:
    """GitHub's delivery headers, signed with the webhook's secret."""
    return {
        "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/2d5e4d4", "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()), "X-GitHub-Hook-ID": "471100",
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
    }  # fmt: skip


def encode(payload: dict) -> bytes:
    return json.dumps(payload).encode()
