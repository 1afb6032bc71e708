"""The shape of the code, read from its imports with ``ast``: the local cluster's components never
import the module that orders them, nothing outside tests/ imports tests/, there is no import
cycle (not even under TYPE_CHECKING), and the component list is consistent data."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from localcluster import cluster
from localcluster.component import Component

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("localcluster", "testbed", "tests", "bench", "hack", "steps/druppie_steps")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT / "steps" if path.is_relative_to(ROOT / "steps") else ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def python_files() -> list[Path]:
    files = []
    for package in PACKAGES:
        files += [p for p in (ROOT / package).rglob("*.py") if "fixtures" not in p.parts]
    return sorted(files)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (also inside functions and TYPE_CHECKING blocks)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}  # `from . import x` imports a module
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in python_files()}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_localcluster_module_imports_the_one_that_orders_the_components():
    offenders = [m for m, deps in graph().items() if m.startswith("localcluster.") and m not in (
        "localcluster.cluster", "localcluster.__main__") and "localcluster.cluster" in deps]  # fmt: skip
    assert offenders == []


def test_nothing_outside_tests_imports_tests():
    offenders = {m: sorted(d for d in deps if d == "tests" or d.startswith("tests."))
                 for m, deps in graph().items() if not m.startswith("tests")}  # fmt: skip
    assert {m: d for m, d in offenders.items() if d} == {}


def test_localcluster_imports_nothing_of_testbed():
    offenders = [m for m, deps in graph().items() if m.startswith("localcluster") and any(
        d.startswith("testbed") for d in deps)]  # fmt: skip
    assert offenders == []


def test_test_modules_share_helpers_through_tests_support_not_each_other():
    offenders = {}
    for module, deps in graph().items():
        if module.startswith("tests."):
            bad = [d for d in deps if d.startswith("tests.") and not d.startswith("tests.support") and d != module]
            if bad:
                offenders[module] = sorted(bad)
    assert offenders == {}


def test_no_import_cycle():
    edges = graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    # A package importing its own submodules (``from . import x`` in __init__) is no cycle of ours.
    assert [c for c in cycles if not any(c[i].startswith(c[i + 1] + ".") for i in range(len(c) - 1))] == []


def test_the_graph_reader_sees_imports_inside_type_checking_and_functions(tmp_path):
    sample = ROOT / "localcluster" / "kwok.py"
    assert "localcluster.component" in imports_of(sample) and "localcluster.toolchain" in imports_of(sample)
    assert imports_of(ROOT / "localcluster" / "cluster.py") >= {"localcluster.kubelet", "localcluster.context"}


# ---- the component list is data --------------------------------------------------------------


def test_every_component_needs_only_components_that_start_before_it():
    order = [c.name for c in cluster.COMPONENTS]
    for position, component in enumerate(cluster.COMPONENTS):
        for needs in (component.needs, component.prepare_needs):
            unknown = [n for n in needs if n not in order]
            later = [n for n in needs if n in order and order.index(n) > position]
            assert (unknown, later) == ([], []), component.name


FEATURE_SETS = [{"kwok"}, {"kubelet"}, {"kubelet", "tekton", "loop"}, {"kubelet", "containerd2", "tekton", "loop"}]


@pytest.mark.parametrize("features", FEATURE_SETS, ids=lambda features: "+".join(sorted(features)))
def test_component_names_are_unique_in_every_plan_and_each_has_the_interface(features):
    names = [c.name for c in cluster.plan(frozenset(features))]
    assert len(names) == len(set(names))
    for component in cluster.COMPONENTS:
        assert isinstance(component, Component)
        for method in ("missing", "prepare", "start", "ready", "stop"):
            assert callable(getattr(component, method)), (component.name, method)


@pytest.mark.parametrize(
    ("features", "present", "absent"),
    [
        ({"kwok"}, {"etcd", "kube-apiserver", "flux", "kwok"}, {"kubelet", "bridge", "tekton", "gitea"}),
        ({"kubelet"}, {"bridge", "containerd", "kubelet", "flux"}, {"kwok", "tekton", "kube-proxy", "gitea"}),
        ({"kubelet", "tekton"}, {"kube-proxy", "tekton", "local-path"}, {"kwok", "triggers", "coredns", "gitea"}),
        ({"kubelet", "tekton", "loop"}, {"tekton", "triggers", "coredns", "gitea"}, {"kwok"}),
    ],
)
def test_which_components_run_follows_from_the_features(features, present, absent):
    planned = {c.name for c in cluster.plan(frozenset(features))}
    assert present <= planned and not (absent & planned)


def test_containerd_v2_stands_in_for_debians_on_request(monkeypatch):
    kinds = {
        f: {type(c).__name__ for c in cluster.plan(frozenset(f))} for f in (("kubelet",), ("kubelet", "containerd2"))
    }
    assert "Containerd" in kinds[("kubelet",)] and "Containerd2" not in kinds[("kubelet",)]
    assert "Containerd2" in kinds[("kubelet", "containerd2")] and "Containerd" not in kinds[("kubelet", "containerd2")]
    monkeypatch.setenv("DRUPPIE_NODE_SIDE", "kubelet")
    monkeypatch.setenv("DRUPPIE_CONTAINERD", "2")
    assert cluster.node_features() == frozenset({"kubelet", "containerd2"})
    monkeypatch.setenv("DRUPPIE_CONTAINERD", "v2")
    with pytest.raises(RuntimeError, match="DRUPPIE_CONTAINERD='v2': use 1"):
        cluster.node_features()


def test_containerd_v2s_config_names_the_built_runc_and_the_same_mirrors(tmp_path, monkeypatch):
    from localcluster.containerd2 import Containerd2
    from localcluster.toolchain import runc2_binary

    class Ctx:  # the two things config() reads
        def component_dir(self, name: str):
            return tmp_path / name

    import localcluster.containerd2 as c2

    monkeypatch.setattr(c2, "socket", lambda ctx: tmp_path / "containerd" / "containerd.sock")
    config = tomllib.loads(Containerd2().config(Ctx()))
    assert config["version"] == 3
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["BinaryName"] == str(runc2_binary())
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["registry"]["config_path"] == str(tmp_path / "containerd" / "certs.d")
    assert images["pinned_images"]["sandbox"] == "druppie.local/pause:1"


def test_a_tier_that_is_not_built_is_left_out(monkeypatch, tmp_path):
    monkeypatch.setenv("DRUPPIE_CACHE", str(tmp_path))  # an empty cache: nothing is built
    monkeypatch.setenv("DRUPPIE_NODE_SIDE", "kubelet")
    assert cluster.wanted_features() == frozenset({"kubelet"})
    assert any("tekton-pipeline" in m for m in cluster.missing("tekton"))
    monkeypatch.setenv("DRUPPIE_NODE_SIDE", "kwok")
    assert cluster.missing("loop") == ["a kubelet node (DRUPPIE_NODE_SIDE=kubelet)"]
