"""The shape SARIF 2.1.0 requires (and GitHub code scanning reads), checked on every level."""

from __future__ import annotations


def assert_sarif_shape(doc: dict) -> None:
    """The keys SARIF 2.1.0 requires (and GitHub code scanning reads), on every level."""
    assert set(doc) >= {"$schema", "version", "runs"} and doc["version"] == "2.1.0"
    for run in doc["runs"]:
        driver = run["tool"]["driver"]
        assert driver["name"] and isinstance(driver["rules"], list)
        ids = [r["id"] for r in driver["rules"]]
        for result in run["results"]:
            assert result["message"]["text"] and result["level"] in ("error", "warning", "note", "none")
            assert ids[result["ruleIndex"]] == result["ruleId"]
            for loc in result["locations"]:
                uri = loc["physicalLocation"]["artifactLocation"]["uri"]
                assert not uri.startswith("/") and "://" not in uri
                assert loc["physicalLocation"].get("region", {"startLine": 1})["startLine"] >= 1
