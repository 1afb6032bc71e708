"""A Task's step environment as the Tekton controller makes it, for running a step as its Task would."""

from __future__ import annotations

import re


def tekton_env(
    task: dict, params: dict[str, str], workspaces: dict[str, str], results_dir: str, step: str | None = None
) -> dict[str, str]:
    """Substitute $(params.x) (defaults included) and $(workspaces.x.*) as the Tekton controller does,
    in the env of the step named ``step`` (default: the first)."""
    values = {p["name"]: p.get("default") for p in task["spec"]["params"]} | params
    missing = [k for k, v in values.items() if v is None]
    assert not missing, f"required params not given: {missing}"
    env = {}
    steps = task["spec"]["steps"]
    chosen = steps[0] if step is None else next(s for s in steps if s["name"] == step)
    for e in chosen["env"]:

        def sub(m: re.Match) -> str:
            kind, name, attr = m[1], m[2], m[3]
            if kind == "params":
                return values[name]
            if attr == "bound":
                return "true" if name in workspaces else "false"
            return workspaces.get(name, "")

        env[e["name"]] = re.sub(r"\$\((params|workspaces)\.([\w-]+)(?:\.(\w+))?\)", sub, e["value"])
    env["DRUPPIE_RESULTS_DIR"] = results_dir
    return env
