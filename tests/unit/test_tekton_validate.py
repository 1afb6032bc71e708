"""Every Task, Pipeline and run in the repo passes Tekton's own SetDefaults and Validate (strict
decoding, as the webhook), and the cross-object checks; broken copies are caught with file and field.

The checker is hack/tekton-validate, built into the cache by `hack/cluster-build.sh tekton-validate`
under a key that carries a hash of its sources, so a stale binary is never used.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.tools import tekton_validate

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = [name for name in ("tasks", "pipelines", "triggers") if (ROOT / name).is_dir()]
BINARY = tekton_validate()
if not BINARY.is_file():
    pytest.skip(
        "tekton-validate is not built for this source: run hack/cluster-build.sh tekton-validate",
        allow_module_level=True,
    )


def run(*paths: Path | str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINARY), *map(str, paths)], cwd=cwd, capture_output=True, text=True, timeout=60)


def tekton_documents(root: Path) -> int:
    count = 0
    for folder in FOLDERS:
        for path in (root / folder).rglob("*.y*ml"):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and str(doc.get("apiVersion", "")).startswith("tekton.dev/"):
                    count += 1
    return count


def test_every_task_pipeline_and_sample_validates_clean():
    result = run(*FOLDERS)
    assert result.returncode == 0, result.stdout + result.stderr
    files = sum(1 for folder in FOLDERS for _ in (ROOT / folder).rglob("*.y*ml"))
    # Every Tekton document is counted: none is skipped as an unknown kind or version.
    assert result.stdout.splitlines() == [
        f"tekton-validate: {tekton_documents(ROOT)} objects in {files} files, 0 problems"
    ]


TAG_COMMIT = "tasks/druppie-tag-commit/0.1/druppie-tag-commit.yaml"
FLUX_WAIT = "tasks/druppie-flux-reconcile-wait/0.1/druppie-flux-reconcile-wait.yaml"
PROMOTE = "pipelines/druppie-promote/0.1/druppie-promote.yaml"
PROMOTE_RUN = "pipelines/druppie-promote/0.1/samples/promote-drone-service.yaml"
SSH_RUN = "tasks/druppie-tag-commit/0.1/samples/promote-with-ssh.yaml"
WAIT_SAMPLE = "tasks/druppie-flux-reconcile-wait/0.1/samples/promote-and-wait.yaml"

# (id, file, text in the real file, its broken replacement, the field path, words of the message)
BROKEN = [
    (
        "undeclared-param-in-step",
        TAG_COMMIT,
        "value: $(params.tag)\n",
        "value: $(params.nope)\n",
        "spec.steps[0].env[DRUPPIE_TAG]",
        'non-existent variable in "$(params.nope)"',
    ),
    (
        "bad-result-name",
        TAG_COMMIT,
        "- name: previous-tag\n",
        "- name: Bad Name!\n",
        "spec.results[3].name",
        'invalid key name "Bad Name!"',
    ),
    ("unknown-field-in-spec", FLUX_WAIT, "\n  steps:\n", "\n  stepz:\n", "spec.stepz", "unknown field"),
    (
        "typo-in-step-field",
        TAG_COMMIT,
        "      image: ghcr.io",
        "      imgae: ghcr.io",
        "spec.steps[0].imgae",
        "unknown field",
    ),
    (
        "duplicate-field",
        FLUX_WAIT,
        "      image: ghcr.io",
        "      command: [x]\n      image: ghcr.io",
        "document 1",
        'key "command" already set',
    ),
    (
        "missing-result-of-task",
        PROMOTE,
        "value: $(tasks.tag-commit.results.revision)}",
        "value: $(tasks.tag-commit.results.nope)}",
        "spec.tasks[1].params[2].value",
        'refers to result "nope", which the task of "tag-commit" does not declare',
    ),
    (
        "missing-pipeline-task-in-params",
        PROMOTE,
        "value: $(tasks.tag-commit.results.revision)}",
        "value: $(tasks.tag-comit.results.revision)}",
        "spec.tasks[1].params[2].value",
        'refers to pipeline task "tag-comit", which is not in spec.tasks',
    ),
    (
        "missing-pipeline-task-in-results",
        PROMOTE,
        "$(tasks.flux-wait.results.applied-revision)",
        "$(tasks.flux-wate.results.applied-revision)",
        "spec.results[1].value",
        "referencing a nonexistent task",
    ),
    (
        "missing-result-in-sample-pipeline-results",
        "tasks/druppie-tag-commit/0.1/samples/promote-with-basic-auth.yaml",
        "value: $(tasks.tag-commit.results.revision)",
        "value: $(tasks.tag-commit.results.revisions)",
        "spec.results[0].value",
        'refers to result "revisions"',
    ),
    (
        "param-not-declared-by-task",
        WAIT_SAMPLE,
        "{name: timeout, value: 10m}",
        "{name: timeot, value: 10m}",
        "spec.tasks[1].params[3].name",
        'param "timeot" is not declared by Task druppie-flux-reconcile-wait',
    ),
    (
        "required-param-not-passed",
        SSH_RUN,
        "    - name: tag\n",
        "    - name: tagg\n",
        "spec.params",
        'Task druppie-tag-commit requires param "tag", which is not passed',
    ),
    (
        "workspace-not-declared-by-task",
        PROMOTE,
        "{name: basic-auth, workspace: gitops-write-credentials}\n    - name: flux-wait",
        "{name: basic-auth, workspace: gitops-write-credentials}\n"
        "        - {name: ssh, workspace: gitops-write-credentials}\n"
        "    - name: flux-wait",
        "spec.tasks[0].workspaces[1].name",
        'workspace "ssh" is not declared by Task druppie-tag-commit',
    ),
    (
        "task-run-spec-of-missing-task",
        PROMOTE_RUN,
        "pipelineTaskName: flux-wait",
        "pipelineTaskName: flux-wiat",
        "spec.taskRunSpecs[1].pipelineTaskName",
        'has no pipeline task "flux-wiat"',
    ),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_copy_is_caught_with_file_and_field(tmp_path, case):
    _, rel, good, bad, field, words = case
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, tmp_path / folder)
    target = tmp_path / rel
    text = target.read_text()
    assert good in text, f"the real {rel} changed: update this case"
    target.write_text(text.replace(good, bad, 1))

    result = run(*FOLDERS, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    problems = result.stdout.splitlines()[:-1]
    assert any(line.startswith(f"{rel}: ") and f": {field}: " in line and words in line for line in problems), (
        result.stdout
    )
    # Only the broken file is blamed; the summary counts the problems.
    assert problems and all(line.startswith(f"{rel}: ") for line in problems), result.stdout
    assert re.fullmatch(
        rf"tekton-validate: {len(problems)} problems in \d+ objects \(\d+ files\)", result.stdout.splitlines()[-1]
    )


def test_other_kinds_are_skipped_and_v1beta1_is_validated(tmp_path):
    (tmp_path / "mixed.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: b}\n---\n"
        "apiVersion: tekton.dev/v1beta1\nkind: Task\nmetadata: {name: old}\n"
        "spec:\n  params: [{name: who}]\n  steps:\n    - {name: hi, image: busybox, script: echo hi}\n"
        "---\n# only a comment\n"
    )
    assert run("mixed.yaml", cwd=tmp_path).stdout == "tekton-validate: 1 objects in 1 files, 0 problems\n"
    (tmp_path / "mixed.yaml").write_text(
        (tmp_path / "mixed.yaml").read_text().replace("script: echo hi", "scrip: echo hi")
    )
    result = run("mixed.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("mixed.yaml: Task/old: spec.steps[0].scrip: unknown field\n"), result.stdout
