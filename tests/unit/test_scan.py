"""scan without the tools: normalising their reports, severities, the ignore file, SARIF, fail-on."""

from __future__ import annotations

import datetime as dt
import json
import sys
import zipfile
from pathlib import Path

import pytest

from druppie_steps import scan as step
from druppie_steps.cli import main
from druppie_steps.core.errors import InvalidInputError, StepError
from druppie_steps.core.options import parse_duration
from druppie_steps.scanners import Finding, ScanOutcome, bandit, gitleaks, ignore, osv, relative, sarif, trivy
from tests.support.sarif import assert_sarif_shape

ROOT = Path(__file__).resolve().parents[2]
OSV_DB = ROOT / "tests" / "fixtures" / "osv-db"
TOKEN = "ghp_UtQ2ss1Il14GzuySgVhsQODuFH0ML9qKipFU"  # the planted-secret variant's fake token


def finding(rule="B602", severity="high", path="app/x.py", line=3, scanner="code", aliases=()):
    return Finding(
        scanner=scanner, tool="bandit", rule=rule, severity=severity, path=path, line=line, message="m", aliases=aliases
    )


# --- normalising each tool's report (shapes as the tools write them) ---


def test_bandit_report_is_normalised_and_hides_quoted_passwords(tmp_path):
    report = {
        "errors": [{"filename": "./old.py", "reason": "syntax error while parsing AST from file"}],
        "results": [
            {
                "test_id": "B602",
                "test_name": "subprocess_popen_with_shell_equals_true",
                "issue_severity": "HIGH",
                "issue_confidence": "HIGH",
                "filename": "./drone_service/diag.py",
                "line_number": 11,
                "issue_text": "subprocess call with shell=True identified, security issue.",
                "more_info": "https://bandit.readthedocs.io/en/1.9.4/plugins/b602.html",
                "code": "11 x\n",
            },
            {
                "test_id": "B105",
                "test_name": "hardcoded_password_string",
                "issue_severity": "LOW",
                "issue_confidence": "MEDIUM",
                "filename": "./s.py",
                "line_number": 8,
                "issue_text": f"Possible hardcoded password: '{TOKEN}'",
                "code": f"8 T = '{TOKEN}'\n",
            },
        ],
    }
    findings, notes = bandit.parse(report, tmp_path)
    assert [(f.rule, f.severity, f.path, f.line) for f in findings] == [
        ("B602", "high", "drone_service/diag.py", 11),
        ("B105", "low", "s.py", 8),
    ]
    assert findings[0].message == "subprocess call with shell=True identified, security issue. (confidence high)"
    assert TOKEN not in findings[1].message and "value not shown" in findings[1].message
    assert notes == ["bandit could not read old.py: syntax error while parsing AST from file"]


def test_gitleaks_report_keeps_rule_and_place_never_the_secret(tmp_path):
    report = [
        {
            "RuleID": "github-pat",
            "Description": "Uncovered a GitHub Personal Access Token.",
            "StartLine": 8,
            "File": "drone_service/settings.py",
            "Match": TOKEN,
            "Secret": TOKEN,
            "Line": f'GITHUB_TOKEN = "{TOKEN}"',
            "Fingerprint": "drone_service/settings.py:github-pat:8",
        }
    ]
    [f] = gitleaks.parse(report, tmp_path)
    assert (f.rule, f.severity, f.path, f.line, f.scanner) == (
        "github-pat",
        "high",
        "drone_service/settings.py",
        8,
        "secrets",
    )
    assert TOKEN not in repr(f)


def test_gitleaks_config_extends_the_default_rules():
    text = gitleaks.config_text()
    assert "useDefault = true" in text and r"\.venv" in text and "node_modules" in text


OSV_REPORT = {
    "results": [
        {
            "source": {"path": "/src/requirements.txt", "type": "lockfile"},
            "packages": [
                {
                    "package": {"name": "pyyaml", "version": "5.3.1", "ecosystem": "PyPI"},
                    "groups": [
                        {
                            "ids": ["GHSA-8q59-q68h-6hv4", "PYSEC-2021-142"],
                            "aliases": ["CVE-2020-14343"],
                            "max_severity": "9.8",
                        }
                    ],
                    "vulnerabilities": [
                        {
                            "id": "GHSA-8q59-q68h-6hv4",
                            "summary": "Improper Input Validation in PyYAML",
                            "database_specific": {"severity": "CRITICAL"},
                            "affected": [
                                {
                                    "package": {"name": "pyyaml", "ecosystem": "PyPI"},
                                    "ranges": [
                                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.4"}]}
                                    ],
                                }
                            ],
                        },
                        {"id": "PYSEC-2021-142", "affected": []},
                    ],
                },
                {
                    "package": {"name": "requests", "version": "2.31.0", "ecosystem": "PyPI"},
                    "groups": [{"ids": ["GHSA-9wx4-h78v-vm56"], "aliases": ["CVE-2024-35195"], "max_severity": "5.6"}],
                    "vulnerabilities": [
                        {
                            "id": "GHSA-9wx4-h78v-vm56",
                            "summary": "Requests Session ...",
                            "database_specific": {"severity": "MODERATE"},
                            "affected": [],
                        }
                    ],
                },
            ],
        }
    ]
}


def test_osv_report_is_one_finding_per_advisory_group(tmp_path):
    (tmp_path / "requirements.txt").write_text("# pins\nrequests==2.31.0\nPyYAML==5.3.1\n")
    report = json.loads(json.dumps(OSV_REPORT).replace("/src", str(tmp_path)))
    pyyaml, requests = osv.parse(report, tmp_path)
    assert (pyyaml.rule, pyyaml.severity, pyyaml.path, pyyaml.line) == (
        "GHSA-8q59-q68h-6hv4",
        "critical",
        "requirements.txt",
        3,
    )
    assert set(pyyaml.aliases) == {"CVE-2020-14343", "PYSEC-2021-142"}
    assert pyyaml.message == (
        "pyyaml 5.3.1: GHSA-8q59-q68h-6hv4 (CVE-2020-14343): Improper Input Validation in PyYAML; fixed in 5.4"
    )
    assert (requests.rule, requests.severity, requests.line) == ("GHSA-9wx4-h78v-vm56", "medium", 2)


@pytest.mark.parametrize(
    "labels,score,expected",
    [
        (["CRITICAL"], "", "critical"),
        (["MODERATE"], "9.8", "medium"),
        (["LOW", "HIGH"], "", "high"),
        ([], "9.0", "critical"),
        ([], "7.5", "high"),
        ([], "4.0", "medium"),
        ([], "3.9", "low"),
        ([], "", "medium"),
        (["negligible"], "", "info"),
    ],
)
def test_osv_severity_prefers_the_advisory_label_then_cvss(labels, score, expected):
    vulns = [{"database_specific": {"severity": label}} for label in labels]
    assert osv.severity_of(vulns, score) == expected


TRIVY_REPORT = {
    "SchemaVersion": 2,
    "ArtifactName": ".",
    "Results": [
        {
            "Target": "Containerfile",
            "Class": "config",
            "Type": "dockerfile",
            "Misconfigurations": [
                {
                    "ID": "DS-0002",
                    "AVDID": "AVD-DS-0002",
                    "Title": "Image user should not be 'root'",
                    "Message": "Last USER command in Dockerfile should not be 'root'",
                    "Severity": "HIGH",
                    "PrimaryURL": "https://avd.aquasec.com/misconfig/ds-0002",
                    "Status": "FAIL",
                    "CauseMetadata": {"StartLine": 6, "EndLine": 6},
                },
                {"ID": "DS-0026", "Title": "No HEALTHCHECK defined", "Severity": "LOW", "Status": "PASS"},
            ],
        },
        {"Target": "requirements.txt", "Class": "lang-pkgs"},
    ],
}


def test_trivy_report_keeps_failures_only(tmp_path):
    [f] = trivy.parse(TRIVY_REPORT, tmp_path)
    assert (f.rule, f.severity, f.path, f.line, f.aliases) == ("DS-0002", "high", "Containerfile", 6, ("AVD-DS-0002",))
    assert f.message == "Image user should not be 'root': Last USER command in Dockerfile should not be 'root'"


def test_relative_paths_from_any_tool(tmp_path):
    assert relative("./a/b.py", tmp_path) == "a/b.py"
    assert relative(tmp_path / "c" / "d.txt", tmp_path) == "c/d.txt"
    assert relative("e.ini", tmp_path) == "e.ini"


def test_a_finding_refuses_an_unknown_severity():
    with pytest.raises(ValueError):
        finding(severity="moderate")


# --- the ignore file ---

TODAY = dt.date(2026, 11, 26)


def test_ignore_entries_suppress_by_rule_alias_and_path_until_they_expire():
    entries = ignore.parse(
        {
            "ignore": [
                {"rule": "B602", "path": "tools/*", "reason": "fixed command", "expires": dt.date(2026, 11, 26)},
                {"rule": "CVE-2020-14343", "path": "app/*", "reason": "not reachable", "expires": "2026-12-31"},
                {"rule": "github-pat", "path": "x.py", "reason": "old", "expires": dt.date(2026, 11, 25)},
                {"rule": "DS-0*", "path": "nothing/*", "reason": "unused", "expires": dt.date(2027, 1, 1)},
            ]
        }
    )
    kept_b602 = finding(path="app/x.py")
    tools_b602 = finding(path="tools/deep/run.py")
    vuln = finding(rule="GHSA-8q59-q68h-6hv4", severity="critical", scanner="deps", aliases=("CVE-2020-14343",))
    secret = finding(rule="github-pat", path="x.py", scanner="secrets")
    applied = ignore.apply([kept_b602, tools_b602, vuln, secret], entries, TODAY)
    assert applied.kept == [kept_b602, secret]  # the expired entry no longer hides the secret
    assert [(f, e.index) for f, e in applied.suppressed] == [(tools_b602, 1), (vuln, 2)]
    assert [e.index for e in applied.expired] == [3]
    assert [e.index for e in applied.unused] == [4]


def test_ignore_entry_counts_through_its_expiry_day():
    [entry] = ignore.parse({"ignore": [{"rule": "B1*", "path": "app/*.py", "reason": "r", "expires": "2026-11-26"}]})
    assert ignore.apply([finding(rule="B101")], [entry], dt.date(2026, 11, 26)).kept == []
    assert len(ignore.apply([finding(rule="B101")], [entry], dt.date(2026, 11, 27)).kept) == 1


@pytest.mark.parametrize(
    "doc,message",
    [
        ([{"rule": "B1"}], "must be a mapping with one key, ignore"),
        ({"ignore": {"rule": "B1"}}, "ignore must be a list"),
        (
            {"ignore": [{"rule": "B602", "path": "a", "expires": "2026-12-31"}]},
            "entry 1 (rule B602): reason is required",
        ),
        ({"ignore": [{"rule": "B602", "path": "a", "reason": "r"}]}, "entry 1 (rule B602): expires is required"),
        (
            {"ignore": [{"rule": "B602", "path": "a", "reason": "r", "expires": "2026-13-01"}]},
            "entry 1 (rule B602): expires '2026-13-01' is not a date YYYY-MM-DD",
        ),
        (
            {
                "ignore": [
                    {"rule": "B1", "path": "a", "reason": "r", "expires": "2026-12-31"},
                    {"rule": "B602", "path": "a", "reason": "r", "expiry": "2026-12-31"},
                ]
            },
            "entry 2 (rule B602): unknown key 'expiry'",
        ),
        ({"ignore": [{"reason": "r", "expires": "2026-12-31"}]}, "entry 1: rule is required"),
        ({"ignore": ["B602"]}, "entry 1: must be a mapping"),
    ],
)
def test_malformed_ignore_file_names_file_and_entry(doc, message):
    with pytest.raises(InvalidInputError) as err:
        ignore.parse(doc)
    assert str(err.value).startswith(".druppie-scan.yaml") and message in str(err.value)


def entry(rule="B602", path="tools/*.py", expires="2026-12-31", **more) -> dict:
    return {"rule": rule, "path": path, "reason": "a reason", "expires": expires, **more}


# Every glob that matches every rule id or every path has no letter or digit outside a bracket
# expression; regex-minded ways to say "all" have none either.
EVERYTHING = ["*", "**", "?*", "*?", "*/*", "**/*", "./*", ".*", ".+", "^.*$", "*.*", "[A-Z]*", "[!x]*", "*-*", "*_*"]


@pytest.mark.parametrize("rule", EVERYTHING)
def test_a_rule_that_matches_every_rule_is_refused(rule):
    with pytest.raises(InvalidInputError) as err:
        ignore.parse({"ignore": [entry(), entry(rule=rule)]})
    assert str(err.value) == (
        f".druppie-scan.yaml: entry 2 (rule {rule}): rule {rule!r} matches every rule; "
        "name the rule (B602, CVE-2024-35195, github-pat)"
    )


@pytest.mark.parametrize("path", [*EVERYTHING, "", "  "])
def test_a_path_that_matches_every_file_is_refused(path):
    with pytest.raises(InvalidInputError) as err:
        ignore.parse({"ignore": [entry(path=path)]})
    assert str(err.value) == (
        f".druppie-scan.yaml: entry 1 (rule B602): path {path!r} matches every file; "
        "name the file or folder (src/app.py, tools/*.py)"
    )


@pytest.mark.parametrize("rule", ["B*", "B?02", "CVE-*", "GHSA-*", "KSV*", "generic-*", "DS-?", "*602"])
def test_a_rule_that_matches_a_whole_family_is_refused(rule):
    with pytest.raises(InvalidInputError, match=r"matches a whole family of rules; a wildcard must come after the id"):
        ignore.parse({"ignore": [entry(rule=rule)]})


@pytest.mark.parametrize("rule", ["B602", "B60?", "B6*", "CVE-2024-3*", "DS-0*", "github-pat", "AVD-DS-0002"])
def test_a_named_rule_or_a_wildcard_after_its_number_is_accepted(rule):
    assert [e.rule for e in ignore.parse({"ignore": [entry(rule=rule)]})] == [rule]


@pytest.mark.parametrize("path", ["tools/*.py", "*.py", "requirements.txt", "src/[ab]pp.py", "./x.py", "deploy/*"])
def test_a_path_naming_files_is_accepted(path):
    assert len(ignore.parse({"ignore": [entry(path=path)]})) == 1


def test_the_path_is_required_since_leaving_it_out_meant_every_file():
    item = entry()
    del item["path"]
    with pytest.raises(InvalidInputError) as err:
        ignore.parse({"ignore": [item]})
    assert str(err.value) == (
        ".druppie-scan.yaml: entry 1 (rule B602): path is required (a glob such as src/*.py, or the file's own path)"
    )


def test_what_once_switched_the_scan_off_is_refused_twice_over():
    """The review's case: rule "*" until 2099 turned a failing HIGH into exit 0."""
    doc = {"ignore": [{"rule": "*", "reason": "x", "expires": "2099-12-31"}]}
    with pytest.raises(InvalidInputError, match="path is required"):
        ignore.parse(doc)
    with pytest.raises(InvalidInputError, match=r"rule '\*' matches every rule"):
        ignore.parse({"ignore": [entry(rule="*", expires="2099-12-31")]})
    limit = ignore.Limit(dt.date(2027, 2, 24), "--max-suppression-age 90d")
    with pytest.raises(InvalidInputError) as err:
        ignore.parse({"ignore": [entry(expires="2099-12-31")]}, limit)
    assert str(err.value) == (
        ".druppie-scan.yaml: entry 1 (rule B602): expires 2099-12-31 is later than 2027-02-24 "
        "(--max-suppression-age 90d from today); set an earlier date and renew the exception when it is due"
    )


def test_an_expiry_up_to_the_limit_is_accepted_and_one_day_more_is_not():
    limit = ignore.Limit(dt.date(2027, 2, 24), "--max-suppression-age 90d")
    assert len(ignore.parse({"ignore": [entry(expires="2027-02-24")]}, limit)) == 1
    with pytest.raises(InvalidInputError, match="expires 2027-02-25 is later than 2027-02-24"):
        ignore.parse({"ignore": [entry(expires="2027-02-24"), entry(expires="2027-02-25")]}, limit)


def test_the_active_entries_in_one_line_for_a_result():
    entries = ignore.parse(
        {
            "ignore": [
                entry(rule="B602", path="tools/*.py", expires="2026-12-31"),
                entry(rule="B101", path="tests/*", expires="2026-12-01"),
                entry(rule="B105", path="old.py", expires="2026-11-01"),  # expired: not active
            ]
        }
    )
    findings = [finding(path="tools/a.py"), finding(path="tools/b.py")]
    applied = ignore.apply(findings, entries, TODAY)
    assert [e.index for e in applied.active] == [1, 2]
    assert ignore.summary(applied) == (
        "B602 tools/*.py until 2026-12-31 (2 findings); B101 tests/* until 2026-12-01 (0 findings)"
    )
    assert ignore.summary(applied, limit=85) == (
        "B602 tools/*.py until 2026-12-31 (2 findings); ... and 1 more (see the report)"
    )
    assert ignore.summary(applied, limit=40) == "... and 2 more (see the report)"
    assert ignore.summary(ignore.apply(findings, [], TODAY)) == ""


def test_ignore_file_that_is_not_yaml_names_its_line(tmp_path):
    (tmp_path / ".druppie-scan.yaml").write_text("ignore:\n  - rule: [B602\n")
    with pytest.raises(InvalidInputError, match=r"^\.druppie-scan\.yaml line \d+: not readable YAML"):
        ignore.load(tmp_path)
    assert ignore.load(tmp_path / "nowhere") == []


def scan_with_ignore_file(tmp_path, capsys, expires: dt.date, *args: str) -> tuple[int, str, Path, Path]:
    app, out, results = tmp_path / "app", tmp_path / "out", tmp_path / "results"
    app.mkdir(parents=True)
    (app / "x.py").write_text("import subprocess\nsubprocess.call('ls', shell=True)\n")
    (app / ".druppie-scan.yaml").write_text(
        f"ignore:\n  - rule: B602\n    path: x.py\n    reason: fixed command\n    expires: {expires.isoformat()}\n"
    )
    code = main(["scan", "--source", str(app), "--output", str(out), "--results-dir", str(results), *args])
    return code, capsys.readouterr().err, out, results


def test_an_exception_expiring_past_max_suppression_age_fails_before_scanning(tmp_path, capsys):
    far = dt.date.today() + dt.timedelta(days=91)
    code, err, out, results = scan_with_ignore_file(tmp_path, capsys, far, "--scanners", "code")
    limit = (dt.date.today() + dt.timedelta(days=90)).isoformat()
    assert code == 2
    assert err.splitlines() == [
        f"error: .druppie-scan.yaml: entry 1 (rule B602): expires {far.isoformat()} is later than {limit} "
        "(--max-suppression-age 90d from today); set an earlier date and renew the exception when it is due"
    ]
    assert not out.exists() and not results.exists()  # nothing scanned, nothing written

    code, err, _, _ = scan_with_ignore_file(
        tmp_path / "b", capsys, dt.date.today() + dt.timedelta(days=20), "--max-suppression-age", "2w"
    )
    assert (code, err.splitlines()) == (
        2,
        ['error: --max-suppression-age: "2w" is not a duration (use 90s, 30m, 1.5h or 7d)'],
    )
    code, err, _, _ = scan_with_ignore_file(
        tmp_path / "c", capsys, dt.date.today() + dt.timedelta(days=20), "--max-suppression-age", "14d"
    )
    assert code == 2 and "is later than" in err and "(--max-suppression-age 14d from today)" in err


# --- SARIF ---


def test_sarif_has_one_run_per_scanner_with_rules_results_and_suppressions():
    entry = ignore.parse({"ignore": [{"rule": "B101", "path": "app/*", "reason": "tests", "expires": "2027-01-01"}]})[0]
    outcomes = [ScanOutcome("code", "bandit", "1.9.4"), ScanOutcome("deps", "osv-scanner", skipped="no lockfile")]
    kept = [finding(rule="B602", path="a b/x.py"), finding(rule="B602", severity="low", line=None)]
    suppressed = [(finding(rule="B101", severity="low"), entry)]
    doc = sarif.build(outcomes, kept, suppressed)
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    code, deps = doc["runs"]
    assert code["tool"]["driver"]["name"] == "bandit" and code["tool"]["driver"]["version"] == "1.9.4"
    assert [r["id"] for r in code["tool"]["driver"]["rules"]] == ["B602", "B101"]
    assert code["tool"]["driver"]["rules"][0]["properties"]["security-severity"] == "8.0"
    first, second, third = code["results"]
    assert first["level"] == "error" and first["ruleIndex"] == 0
    assert first["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "a%20b/x.py", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 3},
    }
    assert "region" not in second["locations"][0]["physicalLocation"]
    assert third["suppressions"][0]["kind"] == "external" and "tests" in third["suppressions"][0]["justification"]
    assert third["suppressions"][0]["properties"] == {
        "entry": 1,
        "rule": "B101",
        "path": "app/*",
        "expires": "2027-01-01",
    }
    assert (
        deps["results"] == []
        and "no lockfile" in deps["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]
    )
    assert_sarif_shape(doc)


def test_sarif_lists_every_active_exception_with_what_it_suppressed():
    used, unused = ignore.parse(
        {"ignore": [entry(rule="B101", path="app/*"), entry(rule="CVE-2024-1*", path="requirements.txt")]}
    )
    doc = sarif.build([ScanOutcome("code", "bandit")], [], [(finding(rule="B101"), used)], [used, unused])
    assert doc["properties"]["suppressions"] == [
        {"entry": 1, "rule": "B101", "path": "app/*", "expires": "2026-12-31", "reason": "a reason", "suppressed": 1},
        {
            "entry": 2,
            "rule": "CVE-2024-1*",
            "path": "requirements.txt",
            "expires": "2026-12-31",
            "reason": "a reason",
            "suppressed": 0,
        },
    ]
    assert_sarif_shape(doc)


# --- options and the verdict ---


def test_fail_on_counts_findings_at_or_above_the_level():
    findings = [finding(severity=s) for s in ("critical", "high", "medium", "low", "info")]
    assert [len(step.fails(findings, level)) for level in ("critical", "high", "medium", "low", "info", "never")] == [
        1,
        2,
        3,
        4,
        5,
        0,
    ]
    assert step.counts(findings) == {"critical": 1, "high": 1, "medium": 1, "low": 1, "info": 1}


@pytest.mark.parametrize(
    "value,expected", [("all", list(step.SCANNERS)), ("deps, code", ["code", "deps"]), ("SECRETS", ["secrets"])]
)
def test_scanner_selection(value, expected):
    assert step.parse_scanners(value) == expected


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: step.parse_scanners("code,sast"), "invalid --scanners 'code,sast': unknown scanner 'sast'"),
        (lambda: step.parse_scanners(" , "), "invalid --scanners ' , ': empty"),
        (lambda: step.parse_fail_on("severe"), "invalid --fail-on 'severe': use one of critical, high, medium"),
        (lambda: age("a week"), '--max-db-age: "a week" is not a duration (use 90s, 30m, 1.5h or 7d; 0 for no limit)'),
        (lambda: age("7days"), '--max-db-age: "7days" is not a duration'),
        (lambda: step.parse_advisories("off"), "invalid --deps-advisories 'off': use check (the deps scanner needs"),
    ],
)
def test_bad_options_are_one_line_naming_the_value(call, message):
    with pytest.raises(InvalidInputError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)


def age(text):
    return parse_duration(text, "--max-db-age", zero_means_no_limit=True)


def test_ages():
    assert age("7d").seconds == 7 * 86400 and age("1d12h").seconds == 36 * 3600 and age("0").seconds == 0
    assert age("none").seconds == age("off").seconds == 0
    assert step.human_age(3 * 86400 + 4 * 3600 + 5) == "3d 4h" and step.human_age(5 * 3600 + 120) == "5h 2m"
    assert step.human_age(-5) == "0m"


# --- the advisory database ---


def test_db_from_unpacked_advisories_gets_osv_scanners_layout(tmp_path):
    db = osv.find_db(OSV_DB)
    assert set(db.ecosystems) == {"PyPI"}
    root = osv.lay_out(db, tmp_path)
    with zipfile.ZipFile(root / "osv-scalibr" / "PyPI" / "all.zip") as archive:
        assert sorted(archive.namelist()) == ["GHSA-8q59-q68h-6hv4.json", "GHSA-9wx4-h78v-vm56.json"]


def test_db_as_osv_publishes_it_is_linked_not_copied(tmp_path):
    (tmp_path / "db" / "PyPI").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "db" / "PyPI" / "all.zip", "w") as archive:
        for path in (OSV_DB / "PyPI").glob("*.json"):
            archive.write(path, path.name)
    db = osv.find_db(tmp_path / "db")
    target = osv.lay_out(db, tmp_path / "scratch") / "osv-scalibr" / "PyPI" / "all.zip"
    assert target.is_symlink() and target.resolve() == (tmp_path / "db" / "PyPI" / "all.zip").resolve()
    assert osv.db_updated(db) == dt.datetime(2024, 5, 20, 22, 7, 29, tzinfo=dt.UTC)


def test_db_age_from_its_stamp_else_its_newest_advisory(tmp_path):
    db = osv.find_db(OSV_DB)
    assert osv.db_updated(db) == dt.datetime(2024, 5, 20, 22, 7, 29, tzinfo=dt.UTC)
    assert db.age_from == "the newest advisory"
    (tmp_path / "PyPI").mkdir()
    (tmp_path / "PyPI" / "a.json").write_text('{"id": "X", "modified": "2026-01-01T00:00:00Z"}')
    (tmp_path / "last-updated").write_text("2026-11-26T06:00:00Z\n")
    stamped = osv.find_db(tmp_path)
    assert osv.db_updated(stamped) == dt.datetime(2026, 11, 26, 6, tzinfo=dt.UTC)
    assert stamped.age_from == "last-updated"
    (tmp_path / "last-updated").write_text("yesterday")
    with pytest.raises(InvalidInputError, match="holds 'yesterday', not an ISO 8601 time"):
        osv.db_updated(stamped)


def test_db_folder_without_a_database_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match=r"no advisory database in it; expected <Ecosystem>/all\.zip"):
        osv.find_db(tmp_path)
    with pytest.raises(InvalidInputError, match="not a folder"):
        osv.find_db(tmp_path / "missing")


def test_stale_db_fails_past_max_age_and_warns_before(tmp_path, capsys):
    (tmp_path / "PyPI").mkdir()
    (tmp_path / "PyPI" / "a.json").write_text('{"id": "X", "modified": "2020-01-01T00:00:00Z"}')
    three_days = dt.datetime.now(dt.UTC) - dt.timedelta(days=3, hours=1)
    (tmp_path / "last-updated").write_text(three_days.isoformat())
    step._check_db(tmp_path, age("7d"))
    err = capsys.readouterr().err
    assert err.startswith("warning: advisory database") and "3d 1h ago (from last-updated): stale" in err
    with pytest.raises(StepError, match=r"3d 1h ago \(from last-updated\): older than --max-db-age 2d"):
        step._check_db(tmp_path, age("2d"))
    step._check_db(tmp_path, age("0"))  # no limit


def test_a_claimed_time_can_age_a_database_never_make_it_fresher(tmp_path, capsys):
    """An artifact's annotation or config claims a time: the older of it and the content's own counts."""
    (tmp_path / "PyPI").mkdir()
    (tmp_path / "PyPI" / "a.json").write_text('{"id": "X", "modified": "2020-01-01T00:00:00Z"}')
    three_days = dt.datetime.now(dt.UTC) - dt.timedelta(days=3, hours=1)
    (tmp_path / "last-updated").write_text(three_days.isoformat())
    fresh = {"its io.druppie.osv-db.updated annotation": dt.datetime.now(dt.UTC)}
    with pytest.raises(StepError, match=r"3d 1h ago \(from last-updated\): older than --max-db-age 2d"):
        step._check_db(tmp_path, age("2d"), claimed=fresh)
    older = {"its config": three_days - dt.timedelta(days=2)}
    with pytest.raises(StepError, match=r"5d 1h ago \(from its config\): older than --max-db-age 4d"):
        step._check_db(tmp_path, age("4d"), "--osv-db-ref r.example/db:1", "r.example/db@sha256:1", older)
    db = step._check_db(tmp_path, age("7d"), "--osv-db-ref r.example/db:1", "r.example/db@sha256:1", older)
    assert db.age_from == "its config" and db.updated == older["its config"]
    assert "advisory database r.example/db@sha256:1 (PyPI): updated " in capsys.readouterr().err


def test_the_advisories_result_names_the_database_or_why_there_was_none():
    checked = {"status": "checked", "source": "r.example/db@sha256:ab", "updated": "2026-11-26T06:17Z"}
    assert step.advisories_result(checked) == "checked: r.example/db@sha256:ab (updated 2026-11-26T06:17Z)"
    skipped = {"status": "skipped", "reason": "opted out with --deps-advisories skip"}
    assert step.advisories_result(skipped) == "skipped: opted out with --deps-advisories skip"


def test_sarif_says_what_the_dependencies_were_checked_against():
    opted_out = ScanOutcome("deps", "osv-scanner", skipped=step.OPTED_OUT, notes=[step.LOUD])
    doc = sarif.build([opted_out], [], [], [], {"status": "skipped", "reason": "opted out"})
    assert doc["properties"]["advisories"] == {"status": "skipped", "reason": "opted out"}
    notes = doc["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert [(n["level"], n["message"]["text"]) for n in notes] == [
        ("note", f"skipped: {step.OPTED_OUT}"),
        ("warning", step.LOUD),
    ]
    assert "advisories" not in sarif.build([], [], [])["properties"]
    assert_sarif_shape(doc)


def test_deps_without_a_database_fails_before_anything_runs(tmp_path, capsys):
    app, out, results = tmp_path / "app", tmp_path / "out", tmp_path / "results"
    app.mkdir()
    (app / "requirements.txt").write_text("requests==2.31.0\n")
    code = main(["scan", "--source", str(app), "--output", str(out), "--results-dir", str(results)])
    assert code == 2 and capsys.readouterr().err.splitlines() == [f"error: {step.NO_DB}"]
    assert not out.exists() and not results.exists()


def _program(folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("#!/bin/sh\nexit 0\n")
    (folder / name).chmod(0o755)
    return str(folder / name)


def test_find_tool_looks_on_path_then_beside_the_interpreter(monkeypatch, tmp_path):
    """`.venv/bin/druppie-step` without an activated venv: make setup's links in .venv/bin count."""
    from druppie_steps import scanners

    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    beside = _program(tmp_path / "venv" / "bin", "gitleaks")
    assert scanners.find_tool("gitleaks") == beside
    on_path = _program(tmp_path / "path", "gitleaks")
    assert scanners.find_tool("gitleaks") == on_path  # PATH first, as the images have it


def test_missing_tool_is_a_clear_error_naming_where_it_looked(monkeypatch, tmp_path):
    from druppie_steps import scanners

    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StepError) as err:
        scanners.find_tool("gitleaks")
    assert str(err.value).startswith(f"gitleaks not found on PATH or in {tmp_path / 'venv' / 'bin'}: ")
    assert "make setup links it into .venv/bin" in str(err.value)
