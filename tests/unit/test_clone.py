"""The pure parts of clone: which revisions and folders are accepted, the URL result, emptying a folder."""

import re

import pytest

from druppie_steps.clone import empty_folder, public_url, target_folder, validate_revision
from druppie_steps.core.errors import InvalidInputError
from druppie_steps.core.redact import redact
from druppie_steps.gitops.git import validate_repo_url


@pytest.mark.parametrize(
    "revision,expected",
    [
        ("main", "main"),
        ("release/1.0", "release/1.0"),
        ("v1.0.5", "v1.0.5"),
        ("refs/pull/12/head", "refs/pull/12/head"),
        ("HEAD", "HEAD"),
        ("", "HEAD"),
        ("  ", "HEAD"),
        ("a" * 40, "a" * 40),
        ("9c54f66", "9c54f66"),
    ],
)
def test_revisions_accepted(revision, expected):
    assert validate_revision(revision) == expected


@pytest.mark.parametrize(
    "revision",
    [
        "main:refs/heads/evil",
        "+main",
        "-b",
        "--upload-pack=x",
        "main~1",
        "main^",
        "a..b",
        "with space",
        "refs/heads/",
        "x.lock",
        "@{-1}",
        "a\\b",
    ],
)
def test_revisions_refused_name_the_value(revision):
    with pytest.raises(InvalidInputError, match=re.escape(f"invalid --revision {revision!r}")):
        validate_revision(revision)


@pytest.mark.parametrize(
    "url,expected",
    [
        ("https://ci-bot:ghp_secret@github.com/org/app.git", "https://github.com/org/app.git"),
        ("https://ghp_secret@github.com:8443/org/app.git", "https://github.com:8443/org/app.git"),
        ("https://bot:p@ss@word@host/org/app.git", "https://host/org/app.git"),
        ("http://[::1]:3000/app.git", "http://[::1]:3000/app.git"),
        ("ssh://git@github.com/org/app.git", "ssh://git@github.com/org/app.git"),
        ("ssh://git:hunter22@github.com/org/app.git", "ssh://git@github.com/org/app.git"),
        ("git@github.com:org/app.git", "git@github.com:org/app.git"),
    ],
)
def test_public_url_has_no_credentials(url, expected):
    assert public_url(url) == expected


def test_an_ssh_login_is_not_masked_as_a_secret():
    validate_repo_url("ssh://deploy@git.example.org/org/app.git", "--url")
    assert (
        redact("user deploy, ssh://deploy@git.example.org/org/app.git")
        == "user deploy, ssh://deploy@git.example.org/org/app.git"
    )
    validate_repo_url("ssh://deploy2:pa55word@git.example.org/org/app.git", "--url")
    assert "pa55word" not in redact("pa55word")


@pytest.mark.parametrize("url", ["-oProxyCommand=x:y", "--upload-pack:x", "ftp://host/app.git", "file:///srv/app.git"])
def test_urls_refused_name_the_flag(url):
    with pytest.raises(InvalidInputError, match=re.escape(f"invalid --url {url!r}")):
        validate_repo_url(url, "--url")


def test_target_folder_stays_inside_the_workspace(tmp_path):
    (tmp_path / "inside").mkdir()
    (tmp_path / "link-in").symlink_to(tmp_path / "inside")
    assert target_folder(str(tmp_path), "") == tmp_path
    assert target_folder(str(tmp_path), "src/app/") == tmp_path / "src" / "app"
    assert target_folder(str(tmp_path), "./src/../lib") == tmp_path / "lib"
    assert target_folder(str(tmp_path), "link-in") == tmp_path / "link-in"  # a link that stays inside is fine
    (tmp_path / "link-out").symlink_to("/")
    for bad in ("..", "../x", "/abs", "~/x", "link-out", "link-out/etc"):
        with pytest.raises(InvalidInputError, match=re.escape(f"invalid --subdirectory {bad!r}")):
            target_folder(str(tmp_path), bad)
    with pytest.raises(InvalidInputError, match="missing --output"):
        target_folder("", "")
    with pytest.raises(InvalidInputError, match="refusing to empty the file system root"):
        target_folder("/", "")


def test_empty_folder_removes_content_not_link_targets(tmp_path):
    folder, outside = tmp_path / "folder", tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    (folder / "deep" / "er").mkdir(parents=True)
    (folder / "deep" / "er" / "f").write_text("x")
    (folder / "deep" / "er").chmod(0o555)
    (folder / ".dot").write_text("x")
    (folder / "dirlink").symlink_to(outside)
    (folder / "filelink").symlink_to(outside / "keep")
    (folder / "dangling").symlink_to(tmp_path / "nothing")
    assert empty_folder(folder) == 5
    assert list(folder.iterdir()) == [] and (outside / "keep").read_text() == "x"
