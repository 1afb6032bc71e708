"""The YAML image edit: exact text in, exact text out, every byte around the change kept."""

import re
import shutil
from pathlib import Path

import pytest

from druppie_steps.core.errors import InvalidInputError, StepError
from druppie_steps.gitops.image_edit import check_inside, plan_image_update, validate_path
from druppie_steps.gitops.imageref import highest_tag, is_older

IMAGE = "registry.example/druppie/drone-service"
DIGEST = "sha256:" + "ab" * 32


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        with (root / rel).open("w", newline="") as f:
            f.write(text)


def edit(tmp_path: Path, files: dict[str, str], tag="1.0.5", digest=None, image=IMAGE, subdir="app"):
    write(tmp_path, files)
    plan = plan_image_update(tmp_path, subdir, image, tag, digest)
    return plan, {str(e.path.relative_to(tmp_path)): e.new_text for e in plan.changed_files}


TRICKY = (
    "# top comment  \n"
    "apiVersion: kustomize.config.k8s.io/v1beta1\n"
    "kind:   Kustomization   # odd spacing kept\n"
    "resources: [deployment.yaml]\n"
    "images:\n"
    "    - name: other/image\n"
    "      newTag: '2.0'\n"
    "    # between entries, ünïcode\n"
    "    - newName: registry.example/druppie/drone-service\n"
    "      name: drone-service\n"
    '      newTag: "1.0.4"   # quoted by a human\n'
    "      digest: sha256:" + "cd" * 32 + "\n"
    "\n"
    "# trailing comment\n"
)


def test_updates_images_entry_matching_newname_keeping_every_other_byte(tmp_path):
    plan, changed = edit(tmp_path, {"app/kustomization.yaml": TRICKY})
    expected = TRICKY.replace('newTag: "1.0.4"', 'newTag: "1.0.5"').replace(
        "      digest: sha256:" + "cd" * 32 + "\n", ""
    )
    assert changed == {"app/kustomization.yaml": expected}
    assert plan.previous_tag == "1.0.4"


def test_sets_digest_in_place(tmp_path):
    _, changed = edit(tmp_path, {"app/kustomization.yaml": TRICKY}, digest=DIGEST)
    expected = TRICKY.replace('newTag: "1.0.4"', 'newTag: "1.0.5"').replace("cd" * 32, "ab" * 32)
    assert changed["app/kustomization.yaml"] == expected


def test_crlf_file_stays_crlf(tmp_path):
    crlf = (
        "images:\r\n- name: registry.example/druppie/drone-service # c\r\n  newTag: 1.0.4\r\nresources:\r\n- d.yaml\r\n"
    )
    _, changed = edit(tmp_path, {"app/kustomization.yaml": crlf}, digest=DIGEST)
    assert changed["app/kustomization.yaml"] == (
        "images:\r\n- name: registry.example/druppie/drone-service # c\r\n  newTag: 1.0.5\r\n"
        f"  digest: {DIGEST}\r\nresources:\r\n- d.yaml\r\n"
    )


def test_entry_without_newtag_gets_one(tmp_path):
    text = "images:\n  - name: registry.example/druppie/drone-service  # pinned name only\n"
    _, changed = edit(tmp_path, {"app/kustomization.yaml": text})
    assert changed["app/kustomization.yaml"] == text + "    newTag: 1.0.5\n"


def test_flow_style_entry(tmp_path):
    text = "images: [{name: registry.example/druppie/drone-service, newTag: 1.0.4}]\n"
    _, changed = edit(tmp_path, {"app/kustomization.yaml": text}, digest=DIGEST)
    assert changed["app/kustomization.yaml"] == (
        f"images: [{{name: registry.example/druppie/drone-service, newTag: 1.0.5, digest: {DIGEST}}}]\n"
    )


def test_tag_that_would_read_as_a_number_is_quoted(tmp_path):
    text = "images:\n- name: registry.example/druppie/drone-service\n  newTag: 1.0.4\n"
    _, changed = edit(tmp_path, {"app/kustomization.yaml": text}, tag="v1.10")
    # v1.10 is not semver, but the writer must still never emit a plain scalar YAML reads as non-string
    assert "newTag: v1.10\n" in changed["app/kustomization.yaml"]
    _, changed = edit(tmp_path / "b", {"app/kustomization.yaml": text.replace("1.0.4", "'1'")}, tag="1.10")
    assert "newTag: '1.10'\n" in changed["app/kustomization.yaml"]
    _, changed = edit(tmp_path / "c", {"app/kustomization.yaml": text}, tag="1.10")
    assert 'newTag: "1.10"\n' in changed["app/kustomization.yaml"]


DEPLOYMENT = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: drone-service\nspec:\n  template:\n    spec:\n"
    "      containers:\n        - name: app\n          image: registry.example/druppie/drone-service:1.0.4 # app\n"
    "        - name: sidecar\n          image: 'registry.example/druppie/other:1.0.4'\n"
)


def test_adds_entry_when_resources_use_the_image(tmp_path):
    kust = "# keep me\nresources:\n  - deployment.yaml\n  - ../base\n"
    files = {
        "app/kustomization.yaml": kust,
        "app/deployment.yaml": DEPLOYMENT,
        "base/kustomization.yaml": "resources: [svc.yaml]\n",
        "base/svc.yaml": "kind: Service\n",
    }
    plan, changed = edit(tmp_path, files)
    assert changed == {
        "app/kustomization.yaml": kust + "images:\n  - name: registry.example/druppie/drone-service\n"
        "    newTag: 1.0.5\n"
    }
    assert plan.previous_tag == "1.0.4"


def test_appends_to_existing_images_list(tmp_path):
    kust = "resources:\n- deployment.yaml\nimages:\n- name: other/image\n  newTag: '2.0' # keep\nlabels: []\n"
    _, changed = edit(tmp_path, {"app/kustomization.yaml": kust, "app/deployment.yaml": DEPLOYMENT}, digest=DIGEST)
    assert changed["app/kustomization.yaml"] == (
        "resources:\n- deployment.yaml\nimages:\n- name: other/image\n  newTag: '2.0' # keep\n"
        f"- name: registry.example/druppie/drone-service\n  newTag: 1.0.5\n  digest: {DIGEST}\nlabels: []\n"
    )


def test_plain_manifests_are_updated_in_place(tmp_path):
    files = {
        "app/deployment.yaml": DEPLOYMENT,
        "app/sub/cron.yml": '---\n# x\n---\nimage: "registry.example/druppie/drone-service@' + DIGEST + '"\n',
    }
    plan, changed = edit(tmp_path, files, tag="1.1.0")
    assert changed["app/deployment.yaml"] == DEPLOYMENT.replace(
        "drone-service:1.0.4 # app", "drone-service:1.1.0 # app"
    )
    assert changed["app/sub/cron.yml"] == '---\n# x\n---\nimage: "registry.example/druppie/drone-service:1.1.0"\n'
    assert plan.previous_tag == "1.0.4"


def test_already_set_means_no_change(tmp_path):
    text = "images:\n- name: registry.example/druppie/drone-service\n  newTag: 1.0.5\n  digest: " + DIGEST + "\n"
    plan, changed = edit(tmp_path, {"app/kustomization.yaml": text})
    assert changed == {} and plan.previous_tag == "1.0.5"  # same tag: its digest is kept


def test_image_not_found_is_a_clear_error(tmp_path):
    with pytest.raises(
        StepError,
        match=r"^image 'registry.example/druppie/nope' not found under 'app': "
        "no kustomization and no image: field uses it$",
    ):
        edit(tmp_path, {"app/deployment.yaml": DEPLOYMENT}, image="registry.example/druppie/nope")
    with pytest.raises(
        StepError,
        match=r"^image 'registry.example/x' not found under 'app': no images: entry in "
        "app/kustomization.yaml and no resource uses it$",
    ):
        edit(tmp_path, {"app/kustomization.yaml": "resources: [deployment.yaml]\n"}, image="registry.example/x")


def test_broken_yaml_is_reported_with_the_file(tmp_path):
    with pytest.raises(
        StepError,
        match=r"^app/kustomization.yaml: not valid YAML: while parsing a flow node .* "
        r"line 2, column 1: \^$",
    ):
        edit(tmp_path, {"app/kustomization.yaml": "images: [\n"})


def test_missing_folder(tmp_path):
    with pytest.raises(StepError, match=r"^--path 'app' is not a folder in the repository$"):
        plan_image_update(tmp_path, "app", IMAGE, "1.0.5", None)


def test_symlink_out_of_the_repo_is_refused(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "app").symlink_to(tmp_path / "outside")
    with pytest.raises(InvalidInputError, match=r"^invalid --path 'app': leaves the repository \(through a symlink\)$"):
        plan_image_update(tmp_path / "repo", "app", IMAGE, "1.0.5", None)


@pytest.mark.parametrize("bad", ["../x", "/etc", "a/../../b", "", "~/x", "..", "./", "a/./b", "a\\b", "a//b", "a/"])
def test_paths_that_are_not_plain_folders_are_invalid_even_with_the_opt_in(bad):
    with pytest.raises(InvalidInputError, match=rf"^invalid --path {re.escape(repr(bad))}: "):
        validate_path(bad, allow_outside_envs=True)


def test_paths_are_taken_as_written_not_normalized():
    assert validate_path("envs/prod/drone-service") == "envs/prod/drone-service"
    assert validate_path("apps/web", allow_outside_envs=True) == "apps/web"
    with pytest.raises(InvalidInputError, match=r"^invalid --path 'apps/web': outside envs/"):
        validate_path("apps/web")


def test_a_file_linked_out_of_the_bound_is_not_edited(tmp_path):
    write(tmp_path, {"flux-system/kustomization.yaml": "x: 1\n", "envs/prod/app/deployment.yaml": "x: 1\n"})
    link = tmp_path / "envs/prod/app/kustomization.yaml"
    link.symlink_to("../../../flux-system/kustomization.yaml")
    check_inside(tmp_path, "envs/prod/app", "envs", [tmp_path / "envs/prod/app/deployment.yaml"])
    with pytest.raises(StepError, match=r"^envs/prod/app/kustomization.yaml is a symbolic link to .*/flux-system/"):
        check_inside(tmp_path, "envs/prod/app", "envs", [link])
    check_inside(tmp_path, "envs/prod/app", "", [link])  # inside the repository: the opt-in's bound
    (tmp_path / "envs/evil").symlink_to("..")
    with pytest.raises(InvalidInputError, match=r"^invalid --path 'envs/evil/flux-system': it leads outside envs/"):
        check_inside(tmp_path, "envs/evil/flux-system", "envs")


# ---- constructs the review found pushed wrong files with exit 0 ----------------------------


def test_entry_reached_twice_through_an_alias_is_changed_once(tmp_path):
    text = (
        f"x-entry: &e {{name: {IMAGE}, newTag: 1.0.4}}\n"  # hidden key, only to hold the anchor
        "images: [*e, *e]\n"
    )
    plan, changed = edit(tmp_path, {"app/kustomization.yaml": text}, tag="1.0.10")
    assert changed["app/kustomization.yaml"] == text.replace("1.0.4", "1.0.10")
    assert plan.previous_tag == "1.0.4"


def test_container_reached_twice_through_an_alias_is_changed_once(tmp_path):
    text = (
        f"kind: Pod\nspec:\n  initContainers:\n  - &c\n    name: app\n    image: {IMAGE}:1.0.4\n  containers:\n  - *c\n"
    )
    plan, changed = edit(tmp_path, {"app/pod.yaml": text}, tag="1.0.10")
    assert changed["app/pod.yaml"] == text.replace("1.0.4", "1.0.10")
    assert plan.where == ["app/pod.yaml:6"]


@pytest.mark.parametrize("block", ["|", ">-", "|+", "|-  # a comment on the header"])
def test_block_scalar_value_is_replaced_whole(tmp_path, block):
    text = f"images:\n- name: {IMAGE}\n  newTag: {block}\n    1.0.4\nresources: []\n"
    _, changed = edit(tmp_path, {"app/kustomization.yaml": text})
    assert changed["app/kustomization.yaml"] == f"images:\n- name: {IMAGE}\n  newTag: 1.0.5\nresources: []\n"


def test_anchor_and_explicit_tag_on_the_value_are_kept(tmp_path):
    text = f"images:\n- name: {IMAGE}\n  newTag: &t !!str 1.0.4  # c\n"
    _, changed = edit(tmp_path, {"app/kustomization.yaml": text})
    assert changed["app/kustomization.yaml"] == text.replace("1.0.4", "1.0.5")


@pytest.mark.parametrize("value, line", [("&t 1.0.4", 3), ("*t", 3)])
def test_value_shared_through_an_anchor_is_refused(tmp_path, value, line):
    anchor = "labels: [{pairs: {version: &t 1.0.4}}]\n" if value == "*t" else ""
    uses = "" if value == "*t" else "labels: [{pairs: {version: *t}}]\n"
    text = f"{anchor}images:\n- name: {IMAGE}\n  newTag: {value}\n{uses}"
    line += bool(anchor)
    with pytest.raises(
        StepError,
        match=rf"^app/kustomization.yaml:{line}: 'newTag' is an alias or an anchor used "
        "elsewhere",
    ):
        edit(tmp_path, {"app/kustomization.yaml": text})


@pytest.mark.parametrize(
    "empty, filled",
    [
        ("newTag:\n", "newTag: 1.0.5\n"),
        ("newTag: # c\n", "newTag: 1.0.5 # c\n"),
        ("newTag: ~\n", "newTag: 1.0.5\n"),
        ("newTag: ''\n", "newTag: '1.0.5'\n"),
    ],
)
def test_empty_value_gets_the_tag(tmp_path, empty, filled):
    text = f"images:\n- name: {IMAGE}\n  {empty}resources: []\n"
    plan, changed = edit(tmp_path, {"app/kustomization.yaml": text})
    assert changed["app/kustomization.yaml"] == text.replace(empty, filled)
    assert plan.previous_tags == []


def test_empty_value_in_a_flow_mapping(tmp_path):
    text = f"images: [{{name: {IMAGE}, newTag: }}]\n"
    _, changed = edit(tmp_path, {"app/kustomization.yaml": text})
    assert changed["app/kustomization.yaml"] == f"images: [{{name: {IMAGE}, newTag: 1.0.5 }}]\n"


def test_merge_key_in_the_matching_entry_is_refused(tmp_path):
    text = f"x-base: &base {{newTag: 2.0.0}}\nimages:\n- name: {IMAGE}\n  <<: *base\n"
    with pytest.raises(StepError, match=r"^app/kustomization.yaml:4: the images entry for .* uses a merge key \(<<\)"):
        edit(tmp_path, {"app/kustomization.yaml": text})


# ---- overlays over a base outside --path ---------------------------------------------------

BASE_DEPLOYMENT = DEPLOYMENT.replace("# app", "# the base")


def overlay_files(overlay_kust: str, base_kust="resources:\n- deployment.yaml\n") -> dict[str, str]:
    return {
        "envs/prod/app/kustomization.yaml": overlay_kust,
        "base/app/kustomization.yaml": base_kust,
        "base/app/deployment.yaml": BASE_DEPLOYMENT,
    }


def test_overlay_over_a_base_gets_an_images_entry(tmp_path):
    kust = "# prod\nresources:\n- ../../../base/app\npatches: []\n"
    write(tmp_path, overlay_files(kust))
    plan = plan_image_update(tmp_path, "envs/prod/app", IMAGE, "1.0.5", DIGEST)
    assert [e.new_text for e in plan.changed_files] == [
        kust + f"images:\n- name: {IMAGE}\n  newTag: 1.0.5\n  digest: {DIGEST}\n"
    ]
    assert plan.previous_tag == "1.0.4"
    assert plan.where == ["envs/prod/app/kustomization.yaml images (new entry; used by base/app/deployment.yaml)"]


def test_overlay_base_outside_the_sparse_checkout_is_materialised_through_include(tmp_path):
    full, sparse = tmp_path / "full", tmp_path / "sparse"
    files = overlay_files(
        "resources:\n  - https://example.com/remote\n  - ../../../base/app\ncomponents: [../../../components/x]\n",
        base_kust=f"resources: [deployment.yaml]\nimages:\n- name: x\n- name: {IMAGE}\n  newTag: 1.0.3\n",
    )
    files["components/x/kustomization.yaml"] = "kind: Component\nresources: [../../base/app]\n"
    write(full, files)
    write(sparse, {k: v for k, v in files.items() if k.startswith("envs/")})
    asked = []

    def include(folder: str) -> None:
        asked.append(folder)
        shutil.copytree(full / folder, sparse / folder)

    plan = plan_image_update(sparse, "envs/prod/app", IMAGE, "1.0.5", None, include=include)
    assert asked == ["base/app", "components/x"]
    assert plan.changed_files[0].new_text.endswith(f"images:\n  - name: {IMAGE}\n    newTag: 1.0.5\n")
    assert plan.previous_tags == ["1.0.3", "1.0.4"] and plan.previous_tag == "1.0.4"


def test_overlay_without_a_use_of_the_image_is_refused(tmp_path):
    write(tmp_path, overlay_files("resources: [../../../base/app, 'https://example.com/x']\n"))
    with pytest.raises(StepError, match="no resource uses it"):
        plan_image_update(tmp_path, "envs/prod/app", "registry.example/druppie/nope", "1.0.5", None)


# ---- the older-tag rule --------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags, highest",
    [
        ([], ""),
        (["1.0.4"], "1.0.4"),
        (["1.0.4", "1.0.10"], "1.0.10"),
        (["v2.0.0", "1.9.9"], "v2.0.0"),
        (["latest", "2.0.0"], "2.0.0"),
        (["2.0.0", "latest"], "2.0.0"),
        (["latest", "abc1234"], "latest"),
        (["1.0.0-rc.1", "1.0.0"], "1.0.0"),
    ],
)
def test_highest_tag_never_lets_a_non_semver_tag_hide_a_semver_one(tags, highest):
    assert highest_tag(tags) == highest


@pytest.mark.parametrize(
    "new, current, older",
    [
        ("1.0.5", "1.0.4", False),
        ("1.0.5", "1.0.5", False),
        ("1.0.5", "v1.0.6", True),
        ("1.0.5", "1.0.10", True),
        ("1.0.5", "latest", None),
        ("1.0.5", "3f2c9ab", None),
    ],
)
def test_is_older(new, current, older):
    assert is_older(new, current) is older


def test_previous_tag_is_the_highest_of_two_different_current_tags(tmp_path):
    files = {
        "app/a.yaml": f"image: {IMAGE}:1.0.9\n",
        "app/b.yaml": f"image: {IMAGE}:1.0.10\n",
        "app/c.yaml": f"image: {IMAGE}:latest\n",
    }
    plan, changed = edit(tmp_path, files, tag="1.0.11")
    assert plan.previous_tags == ["1.0.9", "1.0.10", "latest"] and plan.previous_tag == "1.0.10"
    assert set(changed) == {"app/a.yaml", "app/b.yaml", "app/c.yaml"}


# ---- gaps the mutation run showed ----------------------------------------------------------


def test_longer_tag_and_new_digest_in_one_file(tmp_path):
    text = f"images:\n- name: {IMAGE}\n  newTag: 1.0.4\n  digest: sha256:{'cd' * 32}\n- name: x\n  newTag: '1'\n"
    _, changed = edit(tmp_path, {"app/kustomization.yaml": text}, tag="10.20.300", digest=DIGEST)
    assert changed["app/kustomization.yaml"] == text.replace("1.0.4", "10.20.300").replace("cd" * 32, "ab" * 32)


def test_tag_and_digest_both_added_keep_their_order(tmp_path):
    text = f"images:\n- name: {IMAGE}\n"
    _, changed = edit(tmp_path, {"app/kustomization.yaml": text}, digest=DIGEST)
    assert changed["app/kustomization.yaml"] == text + f"  newTag: 1.0.5\n  digest: {DIGEST}\n"


@pytest.mark.parametrize(
    "images, appended",
    [
        ("images: []\n", f"images: [{{name: {IMAGE}, newTag: 1.0.5}}]\n"),
        (
            "images: [{name: o, newTag: '1'}]\n",
            f"images: [{{name: o, newTag: '1'}}, {{name: {IMAGE}, newTag: 1.0.5}}]\n",
        ),
    ],
)
def test_appends_to_a_flow_style_images_list(tmp_path, images, appended):
    files = {"app/kustomization.yaml": "resources: [deployment.yaml]\n" + images, "app/deployment.yaml": DEPLOYMENT}
    _, changed = edit(tmp_path, files)
    assert changed["app/kustomization.yaml"] == "resources: [deployment.yaml]\n" + appended


@pytest.mark.parametrize("name", ["kustomization.yml", "Kustomization"])
def test_other_kustomization_file_names(tmp_path, name):
    text = f"images:\n- name: {IMAGE}\n  newTag: 1.0.4\n"
    files = {f"app/{name}": text, "app/deployment.yaml": DEPLOYMENT}  # the manifest is not edited directly
    _, changed = edit(tmp_path, files)
    assert changed == {f"app/{name}": text.replace("1.0.4", "1.0.5")}


@pytest.mark.parametrize("digest", [None, DIGEST])
def test_files_without_a_trailing_newline(tmp_path, digest):
    kust = "resources:\n- deployment.yaml"
    _, changed = edit(tmp_path, {"app/kustomization.yaml": kust, "app/deployment.yaml": DEPLOYMENT}, digest=digest)
    extra = f"\n  digest: {digest}" if digest else ""
    assert changed["app/kustomization.yaml"] == kust + f"\nimages:\n- name: {IMAGE}\n  newTag: 1.0.5{extra}\n"
    text = f"images:\n- name: {IMAGE}\n  newTag: 1.0.4"
    _, changed = edit(tmp_path / "b", {"app/kustomization.yaml": text}, digest=digest)
    assert changed["app/kustomization.yaml"] == text.replace("1.0.4", "1.0.5") + (f"{extra}\n" if digest else "")


def test_digests_in_plain_manifests(tmp_path):
    old = f"image: {IMAGE}:1.0.4@sha256:{'cd' * 32}\n"
    _, changed = edit(tmp_path, {"app/a.yaml": old}, digest=DIGEST)
    assert changed["app/a.yaml"] == f"image: {IMAGE}:1.0.5@{DIGEST}\n"
    _, changed = edit(tmp_path / "b", {"app/a.yaml": old}, tag="1.0.4")
    assert changed == {}  # same tag, no digest given: the pinned build stays
    _, changed = edit(tmp_path / "c", {"app/a.yaml": old})
    assert changed["app/a.yaml"] == f"image: {IMAGE}:1.0.5\n"  # a new tag drops the old build's digest


def test_an_edit_that_would_change_other_data_is_never_written(tmp_path, monkeypatch):
    from druppie_steps.gitops import image_edit

    text = f"images:\n- name: {IMAGE}\n  newTag: 1.0.4\nlabels: []\n"
    monkeypatch.setattr(image_edit, "_scalar_text", lambda value, style: value + "\nextra: 1")
    with pytest.raises(
        StepError,
        match=rf"^app/kustomization.yaml:3: the edit would change more than {IMAGE} to "
        r"1.0.5 \(YAML construct not supported here\); nothing written, set it "
        "by hand$",
    ):
        edit(tmp_path, {"app/kustomization.yaml": text})
    monkeypatch.setattr(image_edit, "_scalar_text", lambda value, style: "1.0.6")
    with pytest.raises(
        StepError,
        match=rf"^app/kustomization.yaml:3: the edit would not set {IMAGE} to 1.0.5 "
        r"\(YAML construct not supported here\); nothing written, set it by hand$",
    ):
        edit(tmp_path / "b", {"app/kustomization.yaml": text})
    monkeypatch.setattr(image_edit, "_scalar_text", lambda value, style: "[")
    with pytest.raises(StepError, match=r"^app/kustomization.yaml:3: the edit would not be valid YAML"):
        edit(tmp_path / "c", {"app/kustomization.yaml": text})


@pytest.mark.parametrize(
    "entry, after",
    [
        (f"{{name: {IMAGE}, newTag: 1.0.4, digest: {DIGEST}}}", f"{{name: {IMAGE}, newTag: 1.0.5}}"),
        (f"{{digest: {DIGEST}, name: {IMAGE}, newTag: 1.0.4}}", f"{{name: {IMAGE}, newTag: 1.0.5}}"),
        (f"{{newTag: 1.0.4, digest: {DIGEST}, name: {IMAGE}}}", f"{{newTag: 1.0.5, name: {IMAGE}}}"),
    ],
)
def test_stale_digest_is_removed_from_a_flow_entry(tmp_path, entry, after):
    _, changed = edit(tmp_path, {"app/kustomization.yaml": f"images: [{entry}]  # c\n"})
    assert changed["app/kustomization.yaml"] == f"images: [{after}]  # c\n"


def test_digest_is_added_after_a_block_scalar(tmp_path):
    text = f"images:\n- name: {IMAGE}\n  newTag: >-\n    1.0.4\n\nresources: []\n"
    _, changed = edit(tmp_path, {"app/kustomization.yaml": text}, digest=DIGEST)
    assert changed["app/kustomization.yaml"] == (
        f"images:\n- name: {IMAGE}\n  newTag: 1.0.5\n  digest: {DIGEST}\n\nresources: []\n"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        (f"images:\n- name: {IMAGE}\n  newTag: [1]\n", r":2: 'newTag' is not a plain value"),
        (f"images:\n- name: {IMAGE}\n  x: {{a: 1}}\n", r":2: cannot add 'newTag' after a nested"),
        (f"x: &n {IMAGE}\nimages:\n- newTag: 1.0.4\n  name: *n\n", r":3: cannot add 'digest' after a"),
        (
            f"images:\n- name: {IMAGE}\n  newTag: 1.0.4\n  digest: |\n    {DIGEST}\n",
            r":4: cannot remove the stale 'digest' automatically; remove it by hand$",
        ),
        (f"d: &d {DIGEST}\nimages:\n- name: {IMAGE}\n  newTag: 1.0.4\n  digest: *d\n", r":5: cannot remove"),
        ("images: {a: 1}\nresources: [d.yaml]\n", r": 'images' is not a list"),
        ("{resources: [d.yaml]}\n", r": a flow-style kustomization cannot be extended"),
        ("- a\n", r": expected one YAML mapping"),
        ("a: 1\n---\nb: 2\n", r": expected one YAML mapping"),
    ],
)
def test_what_cannot_be_edited_in_place_is_refused_with_file_and_line(tmp_path, text, message):
    files = {"app/kustomization.yaml": text, "app/d.yaml": f"image: {IMAGE}:1.0.4\n"}
    with pytest.raises(StepError, match="^app/kustomization.yaml" + message):
        edit(tmp_path, files, digest=DIGEST if "add 'digest'" in message else None)


def test_image_shared_through_an_anchor_in_manifests_is_refused(tmp_path):
    text = f"a:\n  image: &i {IMAGE}:1.0.4\nenv:\n- value: *i\n"
    with pytest.raises(StepError, match=r"^app/a.yaml:2: 'image' is an alias or an anchor used elsewhere"):
        edit(tmp_path, {"app/a.yaml": text})


def test_non_utf8_and_broken_resources(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "a.yaml").write_bytes(b"image: \xff\n")
    with pytest.raises(StepError, match=r"^a.yaml: not UTF-8 text"):
        plan_image_update(tmp_path, "app", IMAGE, "1.0.5", None)
    files = {"b/kustomization.yaml": "resources: [d.yaml]\n", "b/d.yaml": "image: [\n"}
    with pytest.raises(StepError, match=r"^b/d.yaml: not valid YAML"):
        edit(tmp_path, files, subdir="b")


def test_resources_that_are_not_local_files_are_skipped(tmp_path):
    kust = (
        "resources:\n- https://github.com/x/y//base?ref=v1\n- 7\n- ../../outside\n- missing.yaml\n- d.yaml\n"
        "components: []\nbases:\n- sub\n"
    )
    files = {
        "app/kustomization.yaml": kust,
        "app/d.yaml": f"kind: ConfigMap\nimage: {IMAGE}\n",
        "app/sub/kustomization.yaml": "images: [{name: x}, {name: " + IMAGE + "}]\nresources: [../d2.yaml]\n",
        "app/d2.yaml": f"image: {IMAGE}:v1.0.3\n",
        "outside/kustomization.yaml": f"images: [{{name: {IMAGE}}}]\n",
    }
    plan, changed = edit(tmp_path, files)
    assert plan.previous_tags == ["v1.0.3"] and plan.where == [
        "app/kustomization.yaml images (new entry; used by app/d.yaml, app/d2.yaml, app/sub/kustomization.yaml)"
    ]
    assert changed["app/kustomization.yaml"].endswith(f"bases:\n- sub\nimages:\n- name: {IMAGE}\n  newTag: 1.0.5\n")


def test_where_names_each_entry_and_field(tmp_path):
    text = f"images:\n- name: short\n  newName: {IMAGE}\n- name: {IMAGE}\n  newTag: 1.0.3\n"
    plan, _ = edit(tmp_path, {"app/kustomization.yaml": text})
    assert plan.where == ["app/kustomization.yaml images[name=short]", f"app/kustomization.yaml images[name={IMAGE}]"]
    assert plan.previous_tags == ["1.0.3"]


def test_base_that_renames_the_image_away_is_refused(tmp_path):
    base = f"resources: [deployment.yaml]\nimages:\n- name: {IMAGE}\n  newName: registry.example/druppie/renamed\n"
    write(tmp_path, overlay_files("resources: [../../../base/app]\n", base_kust=base))
    with pytest.raises(
        StepError,
        match=rf"^base/app/kustomization.yaml: renames {IMAGE} to registry.example/druppie/"
        "renamed; set the image in that base by hand",
    ):
        plan_image_update(tmp_path, "envs/prod/app", IMAGE, "1.0.5", None)


def test_overlapping_splices_are_refused_never_applied():
    from druppie_steps.gitops.image_edit import FileEdit, Splice

    edit_ = FileEdit(Path("k.yaml"), "a: 1\nb: 2\n", "app/k.yaml", [Splice(8, 9, "3"), Splice(3, 9, "x")])
    with pytest.raises(StepError, match=r"^app/k.yaml:1: two changes overlap"):
        _ = edit_.new_text
    edit_.splices = [Splice(3, 4, "x"), Splice(8, 9, "3"), Splice(4, 4, "y"), Splice(4, 4, "z")]
    assert edit_.new_text == "a: xyz\nb: 3\n"  # two inserts at one point keep their order


def test_apply_writes_the_new_bytes_exactly(tmp_path):
    text = f"# ünïcode\r\nimages:\r\n- name: {IMAGE}\r\n  newTag: 1.0.4\r\n"
    write(tmp_path, {"app/kustomization.yaml": text})
    plan_image_update(tmp_path, "app", IMAGE, "1.0.5", None).apply()
    assert (tmp_path / "app/kustomization.yaml").read_bytes() == text.replace("1.0.4", "1.0.5").encode()


def test_line_numbers_count_a_leading_blank_line(tmp_path, monkeypatch):
    from druppie_steps.gitops import image_edit

    monkeypatch.setattr(image_edit, "_scalar_text", lambda value, style: "1.0.6")
    with pytest.raises(StepError, match=r"^app/kustomization.yaml:4: the edit would not set "):
        edit(tmp_path, {"app/kustomization.yaml": f"\nimages:\n- name: {IMAGE}\n  newTag: 1.0.4\n"})


def test_an_anchor_used_after_other_shared_nodes_is_still_seen(tmp_path):
    text = f"images:\n- name: {IMAGE}\n  newTag: &t 1.0.4\nx-e: &e {{a: 1}}\nx-list: [*e, *e]\nlabels: {{v: *t}}\n"
    with pytest.raises(StepError, match=r"^app/kustomization.yaml:3: 'newTag' is an alias or an anchor used"):
        edit(tmp_path, {"app/kustomization.yaml": text})


@pytest.mark.parametrize("value", ["*t", ">-\n    1.0.5"])
def test_a_value_already_right_is_left_alone_even_if_it_could_not_be_changed(tmp_path, value):
    text = f"x: &t 1.0.5\nimages:\n- name: {IMAGE}\n  newTag: {value}\n"
    plan, changed = edit(tmp_path, {"app/kustomization.yaml": text})
    assert changed == {} and plan.previous_tag == "1.0.5"


def test_block_scalar_ending_in_x(tmp_path):
    text = f"images:\n- name: {IMAGE}\n  newTag: |\n    build-X\nresources: []\n"
    _, changed = edit(tmp_path, {"app/kustomization.yaml": text})
    assert changed["app/kustomization.yaml"] == f"images:\n- name: {IMAGE}\n  newTag: 1.0.5\nresources: []\n"


@pytest.mark.parametrize(
    "entry, after",
    [
        # as kustomize writes it
        (f"- digest: {DIGEST}\n  name: {IMAGE}\n  newTag: 1.0.4\n", f"- name: {IMAGE}\n  newTag: 1.0.5\n"),
        (f"-   digest: {DIGEST}  # pinned\n    name: {IMAGE}\n", f"-   name: {IMAGE}\n    newTag: 1.0.5\n"),
        (f"- {{digest: {DIGEST}, name: {IMAGE}}}\n", f"- {{name: {IMAGE}, newTag: 1.0.5}}\n"),
    ],
)
def test_stale_digest_as_the_first_key_of_an_entry(tmp_path, entry, after):
    _, changed = edit(tmp_path, {"app/kustomization.yaml": "images:\n" + entry})
    assert changed["app/kustomization.yaml"] == "images:\n" + after


@pytest.mark.parametrize(
    "rel, text",
    [
        ("app/kustomization.yaml", f"images:\n- name: {IMAGE}\n  newTag: 1.0.4\n? [a]\n: unhashable\n"),
        ("app/a.yaml", f"image: {IMAGE}:1.0.4\n? [a]\n: unhashable\n"),
    ],
)
def test_yaml_that_composes_but_cannot_be_read_as_data_is_refused(tmp_path, rel, text):
    with pytest.raises(StepError, match=rf"^{rel}: not valid YAML: while constructing a mapping .*unhashable"):
        edit(tmp_path, {rel: text})


def test_entries_after_other_kinds_and_repeats_are_all_seen(tmp_path):
    text = (
        f"x-e: &e {{name: {IMAGE}, newTag: 1.0.4}}\n"
        f"images: [junk, *e, *e, {{name: short, newName: {IMAGE}, newTag: 1.0.5, digest: {DIGEST}}}]\n"
    )
    plan, changed = edit(tmp_path, {"app/kustomization.yaml": text})
    assert changed["app/kustomization.yaml"] == text.replace("1.0.4", "1.0.5")  # the pinned same-tag build stays
    assert plan.previous_tags == ["1.0.4", "1.0.5"]


def test_the_check_names_the_digest_asked_for(tmp_path, monkeypatch):
    from druppie_steps.gitops import image_edit

    monkeypatch.setattr(image_edit, "_scalar_text", lambda value, style: "1.0.6" if value == "1.0.5" else value)
    with pytest.raises(
        StepError,
        match=rf"^app/kustomization.yaml:3: the edit would not set {IMAGE} to "
        rf"1.0.5@{DIGEST} \(",
    ):
        edit(tmp_path, {"app/kustomization.yaml": f"images:\n- name: {IMAGE}\n  newTag: 1.0.4\n"}, digest=DIGEST)


@pytest.mark.parametrize(
    "images, appended",
    [
        (
            "images:\n  - name: other/image\n    newName: x/y\n    newTag: '2.0'\nlabels: []\n",
            f"  - name: {IMAGE}\n    newTag: 1.0.5\n",
        ),
        ("images:\n- just-a-name\nlabels: []\n", f"- name: {IMAGE}\n  newTag: 1.0.5\n"),
    ],
)
def test_appends_after_the_last_line_of_an_indented_list_or_a_plain_item(tmp_path, images, appended):
    files = {"app/kustomization.yaml": "resources: [deployment.yaml]\n" + images, "app/deployment.yaml": DEPLOYMENT}
    _, changed = edit(tmp_path, files)
    expected = images.replace("labels: []\n", appended + "labels: []\n")
    assert changed["app/kustomization.yaml"] == "resources: [deployment.yaml]\n" + expected


def test_manifests_change_image_fields_only(tmp_path):
    text = (
        f"kind: Pod\nmetadata:\n  annotations: {{built-from: '{IMAGE}:1.0.4'}}\nspec:\n  containers:\n"
        f"  - image: '{{{{ .Values.image }}}}'\n  - image: {IMAGE}:1.0.5@{DIGEST}\n  - image: {IMAGE}:1.0.4\n"
    )
    files = {"app/pod.yaml": text, "app/notes.txt": "image: [ not yaml\n", "app/sub/x.yml": "kind: ConfigMap\n"}
    plan, changed = edit(tmp_path, files)
    new = text.replace(f"  - image: {IMAGE}:1.0.4\n", f"  - image: {IMAGE}:1.0.5\n")
    assert changed == {"app/pod.yaml": new}  # the same-tag field keeps its digest, the annotation is no image field
    assert plan.previous_tags == ["1.0.5", "1.0.4"]


def test_manifest_check_names_file_line_and_what_was_asked(tmp_path, monkeypatch):
    from druppie_steps.gitops import image_edit

    monkeypatch.setattr(image_edit, "_scalar_text", lambda value, style: f"{IMAGE}:1.0.6")
    with pytest.raises(StepError, match=rf"^app/a.yaml:2: the edit would not set {IMAGE} to 1.0.5 \("):
        edit(tmp_path, {"app/a.yaml": f"kind: Pod\nimage: {IMAGE}:1.0.4\n"})


def test_a_base_field_that_is_not_an_image_is_no_use(tmp_path):
    base = "resources: [deployment.yaml, cm.yaml]\n"
    write(tmp_path, overlay_files("resources: [../../../base/app]\n", base_kust=base))
    write(tmp_path, {"base/app/cm.yaml": f"kind: ConfigMap\ndata: {{last: '{IMAGE}:9.9.9'}}\n"})
    plan = plan_image_update(tmp_path, "envs/prod/app", IMAGE, "1.0.5", None)
    assert plan.previous_tags == ["1.0.4"]
