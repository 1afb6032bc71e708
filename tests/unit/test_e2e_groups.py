"""The e2e tier's scheduling (tests/support/e2e_groups.py): what shares namespace ci or the loop runs
on one worker, one test after the other; a new module is not run beside them by accident."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.e2e_groups import ALONE, CI_GROUP, CI_GROUP_TESTS, OWN_GROUP, e2e_scope

E2E = Path(__file__).resolve().parents[1] / "e2e"


def _tests_of(module: Path) -> list[str]:
    tree = ast.parse(module.read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


def _modules() -> dict[str, list[str]]:
    return {m.stem: _tests_of(m) for m in sorted(E2E.glob("test_*.py"))}


def test_every_e2e_module_is_in_exactly_one_kind_of_scope():
    kinds = [CI_GROUP, OWN_GROUP, ALONE]
    for module in _modules():
        assert sum(module in kind for kind in kinds) == 1, f"{module}: put it in one of CI_GROUP, OWN_GROUP, ALONE"
    assert set().union(*kinds) == set(_modules()), "a group names a module that does not exist"


def test_the_ci_group_tests_of_other_modules_exist():
    modules = _modules()
    for name in CI_GROUP_TESTS:
        module, test = name.split("::")
        assert module in ALONE and test in modules[module], name


def test_the_loops_modules_share_one_scope_and_the_rest_have_their_own():
    scope = {f"tests/e2e/{m}.py::{t}": e2e_scope(f"tests/e2e/{m}.py::{t}") for m, ts in _modules().items() for t in ts}
    assert {s for n, s in scope.items() if "/test_loop.py" in n or "/test_otap_loop.py" in n} == {"ci"}
    samples = e2e_scope("tests/e2e/test_samples.py::test_sample[tasks/druppie-clone/0.1/samples/clone.yaml]")
    assert samples == e2e_scope("tests/e2e/test_samples.py::test_sample[other]") == "test_samples"
    assert e2e_scope("tests/e2e/test_flux_wait.py::test_the_tasks_rbac_is_enough_and_no_more") == "ci"
    alone = [n for n in scope if "/test_flux_wait.py" in n and scope[n] != "ci"]
    assert alone and all(scope[n] == n for n in alone)  # each its own scope: the two workers share them
