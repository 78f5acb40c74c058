//! The real binary against copies of `examples/acme` with one mistake each: every mistake
//! yields exactly one diagnostic, at the right line and column, in all three formats, and
//! exit code 1.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
}

fn acme() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/acme")
}

struct Run {
    code: i32,
    stdout: String,
}

fn validate(dir: &Path, format: &str) -> Run {
    let output = binary()
        .args(["validate", "--format", format])
        .arg(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
    }
}

enum Change {
    /// Replace the first occurrence of a text in a file.
    Replace(&'static str, &'static str, &'static str),
    /// Write these bytes to a file.
    Write(&'static str, Vec<u8>),
    Remove(&'static str),
    /// Make a file a symlink to a file outside the repository.
    LinkOutside(&'static str),
}

struct Mistake {
    name: &'static str,
    change: Change,
    code: &'static str,
    file: &'static str,
    at: Option<(usize, usize)>,
}

fn mistakes() -> Vec<Mistake> {
    use Change::*;
    let m = |name, change, code, file, at| Mistake {
        name,
        change,
        code,
        file,
        at,
    };
    let company = "mappings/company.yaml";
    let guardrails = "policies/guardrails.yaml";
    vec![
        m(
            "yaml syntax",
            Replace(company, "workspaces: [main]", "workspaces: [main"),
            "yaml-syntax",
            company,
            Some((9, 17)),
        ),
        m(
            "duplicate key",
            Replace(
                company,
                "    description: Executive team\n",
                "    description: Executive team\n    name: Leaders\n",
            ),
            "yaml-duplicate-key",
            company,
            Some((9, 5)),
        ),
        m(
            "tab",
            Replace(company, "    name: Leadership", "\tname: Leadership"),
            "yaml-tab",
            company,
            Some((7, 1)),
        ),
        m(
            "anchor",
            Replace(company, "workspaces: [main]", "workspaces: &w [main]"),
            "yaml-anchor",
            company,
            Some((9, 17)),
        ),
        m(
            "alias",
            Replace(guardrails, "  groups: [it-admins]", "  groups: *admins"),
            "yaml-alias",
            guardrails,
            Some((11, 11)),
        ),
        m(
            "not utf-8",
            Write(
                "mappings/legacy.yaml",
                b"apiVersion: slack-gitops/v1\nkind: Mappings\n# Caf\xe9\n".to_vec(),
            ),
            "not-utf8",
            "mappings/legacy.yaml",
            Some((3, 6)),
        ),
        m(
            "too large",
            Write(
                "mappings/huge.yaml",
                format!(
                    "apiVersion: slack-gitops/v1\nkind: Mappings\n#{}\n",
                    "x".repeat(5 << 20)
                )
                .into_bytes(),
            ),
            "file-too-large",
            "mappings/huge.yaml",
            None,
        ),
        m(
            "empty file",
            Write("mappings/new-team.yaml", Vec::new()),
            "empty-file",
            "mappings/new-team.yaml",
            Some((1, 1)),
        ),
        m(
            "no config",
            Remove("slack-gitops.yaml"),
            "missing-config",
            "slack-gitops.yaml",
            None,
        ),
        m(
            "symlink out",
            LinkOutside("mappings/shared.yaml"),
            "symlink-escapes-repository",
            "mappings/shared.yaml",
            None,
        ),
        m(
            "unknown key",
            Replace(
                company,
                "    description: Executive team",
                "    descripton: Executive team",
            ),
            "unknown-key",
            company,
            Some((8, 5)),
        ),
        m(
            "missing key",
            Replace(company, "    name: Leadership\n", ""),
            "missing-key",
            company,
            Some((6, 5)),
        ),
        m(
            "unknown kind",
            Replace(company, "kind: Mappings", "kind: Mapping"),
            "unknown-kind",
            company,
            Some((4, 7)),
        ),
        m(
            "unknown apiVersion",
            Replace(
                company,
                "apiVersion: slack-gitops/v1",
                "apiVersion: slack-gitops/v2",
            ),
            "unknown-api-version",
            company,
            Some((3, 13)),
        ),
        m(
            "kind in the wrong place",
            Replace(company, "kind: Mappings", "kind: Policy"),
            "kind-mismatch",
            company,
            Some((4, 7)),
        ),
        m(
            "duplicate handle",
            Replace(company, "handle: managers", "handle: leadership"),
            "duplicate-usergroup-handle",
            company,
            Some((14, 13)),
        ),
        m(
            "duplicate name",
            Replace(company, "name: People managers", "name: leadership"),
            "duplicate-usergroup-name",
            company,
            Some((15, 11)),
        ),
        m(
            "duplicate channel",
            Replace(company, "  - name: managers\n", "  - name: leadership\n"),
            "duplicate-channel",
            company,
            Some((50, 11)),
        ),
        m(
            "handle rule",
            Replace(company, "handle: leadership", "handle: Leadership"),
            "invalid-handle",
            company,
            Some((6, 13)),
        ),
        m(
            "channel name rule",
            Replace(company, "  - name: it-helpdesk", "  - name: IT Helpdesk"),
            "invalid-channel-name",
            company,
            Some((55, 11)),
        ),
        m(
            "undeclared workspace",
            Replace(
                company,
                "    workspaces: [main]\n    members:\n      groups: [leadership]",
                "    workspaces: [mian]\n    members:\n      groups: [leadership]",
            ),
            "undeclared-workspace",
            company,
            Some((9, 18)),
        ),
        m(
            "member spec selects nobody",
            Replace(
                company,
                "      groups: [leadership]\n    channels",
                "      exclude: [leadership]\n    channels",
            ),
            "empty-member-spec",
            company,
            Some((11, 7)),
        ),
        m(
            "protected user not an email",
            Replace(
                guardrails,
                "users: [breakglass@acme.example,",
                "users: [breakglass,",
            ),
            "invalid-email",
            guardrails,
            Some((10, 11)),
        ),
        m(
            "negative limit",
            Replace(
                guardrails,
                "{ max: 10, max_percent: 2 }",
                "{ max: -10, max_percent: 2 }",
            ),
            "value-out-of-range",
            guardrails,
            Some((6, 22)),
        ),
        m(
            "percent over 100",
            Replace(guardrails, "max_percent: 25", "max_percent: 250"),
            "value-out-of-range",
            guardrails,
            Some((7, 51)),
        ),
        m(
            "IdP group unknown to the file export",
            Replace(
                "mappings/engineering.yaml",
                "      groups: [oncall]\n",
                "      groups: [oncal]\n",
            ),
            "unknown-idp-group",
            "mappings/engineering.yaml",
            Some((75, 16)),
        ),
        m(
            "malformed approval hash",
            Replace(
                "approvals/2026-11-contractor-offboarding.yaml",
                "hash: sha256:3f1c",
                "hash: sha1:3f1c",
            ),
            "malformed-approval-hash",
            "approvals/2026-11-contractor-offboarding.yaml",
            Some((5, 7)),
        ),
    ]
}

fn apply(root: &Path, outside: &Path, change: &Change) {
    match change {
        Change::Replace(file, from, to) => {
            let path = root.join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains(from), "{file} lacks {from:?}");
            std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        }
        Change::Write(file, bytes) => std::fs::write(root.join(file), bytes).unwrap(),
        Change::Remove(file) => std::fs::remove_file(root.join(file)).unwrap(),
        Change::LinkOutside(file) => {
            let target = outside.join("elsewhere.yaml");
            std::fs::write(&target, "apiVersion: slack-gitops/v1\nkind: Mappings\n").unwrap();
            std::os::unix::fs::symlink(&target, root.join(file)).unwrap();
        }
    }
}

#[test]
fn the_example_is_valid() {
    let run = validate(&acme(), "text");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.ends_with("10 files checked: no problems\n"),
        "{}",
        run.stdout
    );
    let json: serde_json::Value = serde_json::from_str(&validate(&acme(), "json").stdout).unwrap();
    assert_eq!(json, serde_json::json!({"version": 1, "diagnostics": []}));
    assert_eq!(validate(&acme(), "github").stdout, "");
}

#[test]
fn each_mistake_gives_one_diagnostic_in_every_format() {
    let mut failures = Vec::new();
    for mistake in mistakes() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("repo");
        common::copy_dir(&acme(), &root);
        apply(&root, temp.path(), &mistake.change);
        let shown_file = format!("{}/{}", root.display(), mistake.file);

        let text = validate(&root, "text");
        let github = validate(&root, "github");
        let json = validate(&root, "json");
        let document: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        let diagnostics = document["diagnostics"].as_array().unwrap();

        let location = match mistake.at {
            Some((line, column)) => format!("{shown_file}:{line}:{column}"),
            None => shown_file.clone(),
        };
        let github_expected = match mistake.at {
            Some((line, column)) => format!("::error file={shown_file},line={line},col={column},"),
            None => format!("::error file={shown_file},title="),
        };
        let checks = [
            ("text exit", text.code == 1),
            ("github exit", github.code == 1),
            ("json exit", json.code == 1),
            (
                "text header",
                text.stdout.matches("error[").count() == 1
                    && text.stdout.contains(&format!("error[{}]", mistake.code)),
            ),
            (
                "text location",
                text.stdout.contains(&format!("--> {location}\n")),
            ),
            (
                "github",
                github.stdout.lines().count() == 1
                    && github.stdout.starts_with(&github_expected)
                    && github.stdout.contains(&format!("title={}::", mistake.code)),
            ),
            ("json count", diagnostics.len() == 1),
            (
                "json code",
                diagnostics
                    .first()
                    .is_some_and(|d| d["code"] == mistake.code && d["file"] == shown_file.as_str()),
            ),
            (
                "json position",
                diagnostics.first().is_some_and(|d| match mistake.at {
                    Some((line, column)) => d["line"] == line && d["column"] == column,
                    None => d["line"].is_null(),
                }),
            ),
        ];
        for (what, ok) in checks {
            if !ok {
                failures.push(format!(
                    "{}: {what} failed\n--- text ---\n{}--- github ---\n{}",
                    mistake.name, text.stdout, github.stdout
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn schema_command_prints_the_committed_schemas() {
    let output = binary().args(["schema", "mappings"]).output().unwrap();
    assert!(output.status.success());
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/mappings.schema.json"),
    )
    .unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), committed);

    let all = binary().arg("schema").output().unwrap();
    let all: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    let kinds: Vec<&String> = all.as_object().unwrap().keys().collect();
    assert_eq!(kinds, ["Approval", "Config", "Mappings", "Policy"]);

    let unknown = binary().args(["schema", "bogus"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown kind `bogus`"));
}

#[test]
fn a_missing_directory_is_an_error_not_a_panic() {
    let output = binary()
        .args(["validate", "/nonexistent/slack-gitops-repo"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read config repository /nonexistent/slack-gitops-repo"),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_file_export_is_a_warning_not_a_failure() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("repo");
    common::copy_dir(&acme(), &root);
    std::fs::remove_file(root.join("identity/directory.yaml")).unwrap();
    let run = validate(&root, "text");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("warning[identity-export-unreadable]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("slack-gitops.yaml:14:9"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .ends_with("10 files checked: 0 errors, 1 warning\n"),
        "{}",
        run.stdout
    );
}
