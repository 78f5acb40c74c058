//! Policies as code: the repository's `policies/*.rego` (Rego as OPA defines it, v1
//! syntax), evaluated in-process with regorus over a documented input (the config, the
//! identity directory, and at plan time the plan: see `schema/policy-input.schema.json`).
//!
//! Rules follow conftest's conventions: in every package (tests aside), `deny` (or
//! `violation`) and `warn` are sets of messages, each a string or an object with `msg`
//! and optionally `id` (a stable name such as `acme.contractors_private_channels`),
//! `file` and `line` (where in the repository it applies). A `deny` fails `validate` and
//! refuses a plan; a `warn` is reported.
//!
//! Policies are hostile input too. They see only the input: regorus is built without
//! the builtins that reach the environment (`opa.runtime`) or the network (`http.send`),
//! and Rego has none for files. Evaluation stops at [`TIME_LIMIT`] (regorus checks its
//! clock between evaluation steps; a single builtin that builds a huge value runs to its
//! end, and the shell bounds that with a deadline of its own). A policy whose rule yields
//! anything but the shapes above is an error, never a silent pass.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::diagnostic::{Code, Diagnostic, Span};

/// The longest one evaluation (every policy over one input) may take, unless the shell
/// says otherwise.
pub const TIME_LIMIT: Duration = Duration::from_secs(10);

/// The most findings one rule may yield before the rest are dropped with an error.
pub const MAX_FINDINGS: usize = 10_000;

/// A `.rego` file of the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoFile {
    /// Repository-relative path (`policies/contractors.rego`).
    pub path: String,
    pub text: String,
}

impl RegoFile {
    /// A test file (`*_test.rego`): its rules run under `policy test`, never as policy.
    pub fn is_test(&self) -> bool {
        self.path.ends_with("_test.rego")
    }
}

/// Whether a repository path is a Rego policy: `policies/<name>.rego`.
pub fn is_rego_path(path: &str) -> bool {
    path.strip_prefix("policies/").is_some_and(|name| {
        name.ends_with(".rego") && !name.contains('/') && !name.starts_with('.')
    })
}

/// How strong a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Deny,
    Warn,
}

/// One message a policy yielded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub level: Level,
    /// The policy's package (`acme.contractors`).
    pub package: String,
    /// The stable id the policy gave, if any.
    pub id: Option<String>,
    pub message: String,
    /// Where it applies, when the policy said (a repository path and a line).
    pub file: Option<String>,
    pub line: Option<usize>,
    /// A denial the policy lets an approval override: who may approve it, and how many
    /// of them must (`approvals`, default 1). Empty: no approval overrides it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overridable_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals: Option<usize>,
    /// The approval file that overrides this denial for this plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden_by: Option<String>,
}

impl Finding {
    /// A denial no approval has overridden.
    pub fn denies(&self) -> bool {
        self.level == Level::Deny && self.overridden_by.is_none()
    }
}

impl Finding {
    /// A denial an approval may override: it has an id and names who may approve.
    fn overridable(&self) -> bool {
        self.level == Level::Deny
            && self.id.is_some()
            && !self.overridable_by.is_empty()
            && self.approvals_needed() <= self.approvers().len()
    }

    /// How many of the people the policy names must approve an override (at least one).
    pub(crate) fn approvals_needed(&self) -> usize {
        self.approvals.unwrap_or(1).max(1)
    }

    /// The people the policy lets approve an override, each once whatever its case.
    fn approvers(&self) -> std::collections::BTreeSet<String> {
        self.overridable_by
            .iter()
            .map(|email| email.to_ascii_lowercase())
            .collect()
    }

    /// A denial an approval may override and none has yet.
    pub fn awaits_override(&self) -> bool {
        self.overridable() && self.overridden_by.is_none()
    }
}

#[cfg(test)]
impl Finding {
    /// A denial `a@x.example` may override, for tests.
    pub(crate) fn overridable_denial(package: &str, id: &str, message: &str) -> Finding {
        Finding {
            level: Level::Deny,
            package: package.into(),
            id: Some(id.into()),
            message: message.into(),
            file: None,
            line: None,
            overridable_by: vec!["a@x.example".into()],
            approvals: None,
            overridden_by: None,
        }
    }
}

/// The hash an approval overriding the `findings`' denials carries: `sha256:` over the
/// plan's hash (its destructive set) and each overridable denial, its package, id and
/// message, sorted, each field length-prefixed so no two sets of denials encode alike. It
/// covers what is denied as well as what the plan removes, so an approval to add one
/// person where a policy forbids it never lets another in, and a new overridable denial
/// needs a new approval. `None` when nothing can be overridden.
pub fn override_hash(plan_hash: &str, findings: &[Finding]) -> Option<String> {
    use sha2::{Digest, Sha256};
    let denials: std::collections::BTreeSet<[&str; 3]> = findings
        .iter()
        .filter(|f| f.overridable())
        .map(|f| {
            [
                f.package.as_str(),
                f.id.as_deref().unwrap_or_default(),
                f.message.as_str(),
            ]
        })
        .collect();
    if denials.is_empty() {
        return None;
    }
    let mut hasher = Sha256::new();
    for field in std::iter::once(plan_hash).chain(denials.iter().flatten().copied()) {
        hasher.update(format!("{}:", field.len()).as_bytes());
        hasher.update(field.as_bytes());
    }
    Some(format!("sha256:{}", crate::model::hex(&hasher.finalize())))
}

/// Marks each denial an approval overrides: an approval carrying the [`override_hash`] of
/// this plan (`plan_hash`) and these denials, not expired at `today` (`YYYY-MM-DD`),
/// naming the denial's id in `overrides`, approved by at least as many of the people the
/// policy allows as it asks for. Records the override hash in the outcome, for the plan
/// to show.
pub fn apply_overrides(
    outcome: &mut Outcome,
    approvals: &[crate::config::Located<crate::config::types::ApprovalFile>],
    plan_hash: &str,
    today: &str,
) {
    outcome.override_hash = override_hash(plan_hash, &outcome.findings);
    let Some(hash) = outcome.override_hash.as_deref() else {
        return;
    };
    for finding in outcome.findings.iter_mut() {
        if !finding.overridable() {
            continue;
        }
        let id = finding.id.as_deref().unwrap_or_default();
        let needed = finding.approvals_needed();
        let allowed = finding.approvers();
        let overriding = approvals.iter().find(|approval| {
            let value = &approval.value;
            // Each approver counts once, however often or in whatever case listed.
            let by = value
                .approved_by
                .iter()
                .map(|e| e.as_str().to_ascii_lowercase())
                .filter(|e| allowed.contains(e))
                .collect::<std::collections::BTreeSet<String>>()
                .len();
            value.hash.as_str() == hash
                && value.expires.as_deref().is_none_or(|e| e >= today)
                && value.overrides.iter().any(|o| o == id)
                && by >= needed
        });
        finding.overridden_by = overriding.map(|a| a.file.clone());
    }
}

/// What evaluating the policies gave: findings, and problems with the policies
/// themselves (syntax, evaluation errors, wrong shapes, the time limit).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The policies' packages evaluated (`acme.contractors`), sorted.
    pub packages: Vec<String>,
    pub findings: Vec<Finding>,
    pub problems: Vec<Diagnostic>,
    /// The hash an approval overriding denials must carry ([`override_hash`]), once
    /// [`apply_overrides`] has run; `None` when no denial can be overridden.
    pub override_hash: Option<String>,
    /// The plan hash a guardrail approval must carry as well, when the policies refused a
    /// plan that also exceeds a guardrail (the refusal hides that verdict) and an approval
    /// may lift every refusal of theirs.
    pub guardrail_hash: Option<String>,
}

impl Outcome {
    /// Whether any policy denies (and no approval overrides it).
    pub fn denied(&self) -> bool {
        self.findings.iter().any(Finding::denies)
    }

    /// Whether an approval could lift every refusal of these policies: each denial awaits an
    /// override and no policy is broken.
    pub fn only_overridable_refusals(&self) -> bool {
        self.problems.is_empty()
            && self
                .findings
                .iter()
                .filter(|f| f.denies())
                .all(Finding::awaits_override)
    }

    /// Why a plan is refused: each denial and each broken policy, in words.
    pub fn refusals(&self) -> Vec<String> {
        let denials = self.findings.iter().filter(|f| f.denies()).map(|f| {
            let id =
                f.id.as_deref()
                    .map_or_else(String::new, |id| format!("[{id}] "));
            format!("policy `{}` denies: {id}{}", f.package, f.message)
        });
        let broken = self.problems.iter().map(|p| {
            let line = p
                .span
                .map_or(String::new(), |s| format!(":{}", s.start.line));
            format!(
                "policy {}{line} is broken ({}): {}",
                p.file,
                p.code.as_str(),
                p.message
            )
        });
        denials.chain(broken).collect()
    }
}

/// The version of the policy input document (`input.version`).
pub const INPUT_VERSION: u64 = 1;

/// The policy input as JSON text: the config (each mapping with the `file` and `line` it
/// is declared at), the identity directory when it was read, and at plan time the plan
/// (as [`crate::render::plan::policy_plan`] writes it) and live roles. Documented in
/// `docs/policies.md`, checked by `schema/policy-input.schema.json`. Written straight
/// to text, so a 200,000-person directory never becomes a JSON value.
pub fn input_text(
    repository: &crate::config::Repository,
    directory: Option<&crate::model::directory::Directory>,
    plan: Option<(String, &crate::model::live::Live)>,
) -> String {
    let (plan, live) = match plan {
        Some((plan, live)) => (plan, live_input(live).to_string()),
        None => ("null".to_string(), "null".to_string()),
    };
    let identity = directory.map_or_else(
        || "null".to_string(),
        |d| serde_json::to_string(&IdentityRef(d)).expect("a directory serialises"),
    );
    format!(
        "{{\"version\":{INPUT_VERSION},\"config\":{},\"identity\":{identity},\"plan\":{plan},\"live\":{live},\"approvals\":{}}}",
        config_input(repository),
        approvals_input(repository),
    )
}

/// The policy input as a JSON value (for printing it): [`input_text`] parsed.
pub fn input(
    repository: &crate::config::Repository,
    directory: Option<&crate::model::directory::Directory>,
    plan: Option<(String, &crate::model::live::Live)>,
) -> Value {
    serde_json::from_str(&input_text(repository, directory, plan)).unwrap_or_default()
}

/// Live Slack as far as policies need it: who holds a role now.
fn live_input(live: &crate::model::live::Live) -> Value {
    let emails = |keep: fn(&crate::model::live::LiveUser) -> bool| -> Vec<&str> {
        let mut emails: Vec<&str> = live
            .users
            .iter()
            .filter(|u| u.active && keep(u))
            .map(|u| u.email.as_str())
            .collect();
        emails.sort_unstable();
        emails
    };
    serde_json::json!({
        "admins": emails(|u| u.admin || u.owner || u.primary_owner),
        "owners": emails(|u| u.owner || u.primary_owner),
    })
}

/// The approval files, as policies may read them (`file`, `hash`, `approved_by`, ...).
fn approvals_input(repository: &crate::config::Repository) -> Value {
    repository
        .approvals
        .iter()
        .map(|a| {
            let mut value = serde_json::to_value(&a.value).unwrap_or_default();
            value["file"] = Value::from(a.file.clone());
            value
        })
        .collect()
}

fn config_input(repository: &crate::config::Repository) -> Value {
    let config = &repository.config.value;
    let mut usergroups = Vec::new();
    let mut channels = Vec::new();
    for file in &repository.mappings {
        let line = |pointer: String| file.span(&pointer).map_or(0, |s| s.start.line);
        for (i, spec) in file.value.usergroups.iter().enumerate() {
            let mut value = serde_json::to_value(spec).unwrap_or_default();
            value["file"] = Value::from(file.file.clone());
            value["line"] = Value::from(line(format!("/usergroups/{i}")));
            usergroups.push(value);
        }
        for (i, spec) in file.value.channels.iter().enumerate() {
            let mut value = serde_json::to_value(spec).unwrap_or_default();
            if value.get("members").is_none_or(Value::is_null) {
                value["members"] =
                    serde_json::to_value(crate::config::types::MemberSpec::default())
                        .unwrap_or_default();
            }
            value["file"] = Value::from(file.file.clone());
            value["line"] = Value::from(line(format!("/channels/{i}")));
            channels.push(value);
        }
    }
    serde_json::json!({
        "slack": {
            "plan": config.slack.plan,
            "workspaces": config.slack.workspaces,
        },
        "users": config.users,
        "usergroups": usergroups,
        "channels": channels,
    })
}

/// The directory as `input.identity` (`source`, `people` by email, `groups` by name).
struct IdentityRef<'a>(&'a crate::model::directory::Directory);

impl serde::Serialize for IdentityRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct PersonRef<'a> {
            status: crate::model::directory::PersonStatus,
            title: &'a str,
            department: &'a str,
            manager: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct GroupRef<'a> {
            members: &'a [String],
            groups: &'a [String],
        }
        struct People<'a>(&'a [crate::model::directory::Person]);
        impl serde::Serialize for People<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|p| {
                    let person = PersonRef {
                        status: p.status,
                        title: &p.title,
                        department: &p.department,
                        manager: p.manager.as_deref(),
                    };
                    (p.email.as_str(), person)
                }))
            }
        }
        struct Groups<'a>(&'a [crate::model::directory::Group]);
        impl serde::Serialize for Groups<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|g| {
                    let group = GroupRef {
                        members: &g.members,
                        groups: &g.groups,
                    };
                    (g.name.as_str(), group)
                }))
            }
        }
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("source", &self.0.source)?;
        map.serialize_entry("people", &People(&self.0.people))?;
        map.serialize_entry("groups", &Groups(&self.0.groups))?;
        map.end()
    }
}

/// An engine with every file compiled, or the syntax problems. Test files are left out
/// unless `tests`.
fn engine(
    files: &[RegoFile],
    tests: bool,
    limit: Duration,
) -> (regorus::Engine, Vec<(String, String)>, Vec<Diagnostic>) {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(false);
    engine.set_strict_builtin_errors(true);
    engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
        limit,
        check_interval: NonZeroU32::new(64).expect("not zero"),
    });
    let mut packages = Vec::new();
    let mut problems = Vec::new();
    for file in files.iter().filter(|f| tests || !f.is_test()) {
        match engine.add_policy(file.path.clone(), file.text.clone()) {
            Ok(package) => packages.push((file.path.clone(), package)),
            Err(error) => problems.push(syntax(file, &error.to_string())),
        }
    }
    (engine, packages, problems)
}

/// A compile error as a diagnostic at its line.
fn syntax(file: &RegoFile, error: &str) -> Diagnostic {
    let (at, message) = located(error);
    Diagnostic::error(Code::RegoSyntax, &file.path, at, message)
        .with_help("policies are Rego v1 (`deny contains msg if { ... }`); `opa check --v1-compatible` shows the same")
}

/// Where an error of regorus is (it writes `--> file:line:col`) and what it says (its
/// `error:` line, or its first).
fn located(error: &str) -> (Option<Span>, String) {
    let at = error
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> "))
        .and_then(|place| {
            let mut parts = place.rsplitn(3, ':');
            let column = parts.next()?.parse::<usize>().ok()?;
            let line = parts.next()?.parse::<usize>().ok()?;
            Some(Span::point(line, column))
        });
    let message = error
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(|| first_line(error), |m| m.chars().take(300).collect());
    (at, message)
}

/// Evaluates every policy (test files aside) over `input` (JSON text, as
/// [`input_text`] writes it), for at most `limit`. regorus parses it sharing the keys
/// repeated across objects.
pub fn evaluate(files: &[RegoFile], input: &str, limit: Duration) -> Outcome {
    let mut outcome = Outcome::default();
    if files.iter().all(RegoFile::is_test) {
        return outcome;
    }
    let (mut engine, packages, problems) = engine(files, false, limit);
    outcome.problems = problems;
    if !outcome.problems.is_empty() {
        return outcome;
    }
    let input = match regorus::Value::from_json_str(input) {
        Ok(input) => input,
        Err(error) => {
            outcome.problems.push(Diagnostic::error(
                Code::RegoError,
                &files[0].path,
                None,
                format!("the policy input could not be built: {error}"),
            ));
            return outcome;
        }
    };
    engine.set_input(input);
    outcome.packages = packages
        .iter()
        .map(|(_, p)| p.strip_prefix("data.").unwrap_or(p).to_string())
        .collect();
    outcome.packages.sort();
    for (path, package) in packages {
        let text = files
            .iter()
            .find(|f| f.path == path)
            .map_or("", |f| f.text.as_str());
        // Every rule the module declares whose name is `deny`, `violation` or `warn`, or
        // starts with one of them and `_` (conftest's `deny_no_contractors`).
        for rule in rules_named(text, &["deny", "violation", "warn"]) {
            let level = if rule.starts_with("warn") {
                Level::Warn
            } else {
                Level::Deny
            };
            match engine.eval_rule(format!("{package}.{rule}")) {
                Ok(value) => collect(&path, &package, &rule, level, &value, &mut outcome),
                // Declared in another module of the same package, never a silent pass.
                Err(error) => outcome.problems.push({
                    let (at, message) = located(&error.to_string());
                    Diagnostic::error(
                        Code::RegoError,
                        &path,
                        at,
                        format!("`{package}.{rule}` failed: {message}"),
                    )
                    .with_help("a policy must finish within the time limit and call builtins with the arguments they take; `deny`, `violation` and `warn` rules are sets (`deny contains msg if`)")
                }),
            }
        }
    }
    outcome.findings.sort();
    outcome.findings.dedup();
    outcome
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(text)
        .chars()
        .take(300)
        .collect()
}

/// A rule's value as findings: undefined is none; a set or array of messages, each a
/// string or an object with a string `msg`. Anything else is a problem of the policy.
fn collect(
    path: &str,
    package: &str,
    rule: &str,
    level: Level,
    value: &regorus::Value,
    outcome: &mut Outcome,
) {
    if *value == regorus::Value::Undefined {
        return;
    }
    let package_name = package.strip_prefix("data.").unwrap_or(package).to_string();
    let shape = |why: String| {
        Diagnostic::error(Code::RegoError, path, None, format!("`{package}.{rule}` {why}"))
            .with_help("yield strings, or objects with `msg` (and optionally `id`, `file`, `line`), as conftest does")
    };
    let Ok(json) = value.to_json_str() else {
        outcome.problems.push(shape("is not JSON".into()));
        return;
    };
    let items = match serde_json::from_str::<Value>(&json) {
        Ok(Value::Array(items)) => items,
        _ => {
            outcome
                .problems
                .push(shape("is not a set of messages".into()));
            return;
        }
    };
    if items.len() > MAX_FINDINGS {
        outcome.problems.push(shape(format!(
            "yields {} messages, more than {MAX_FINDINGS}",
            items.len()
        )));
        return;
    }
    for item in items {
        let finding = match &item {
            Value::String(message) => Some(Finding {
                level,
                package: package_name.clone(),
                id: None,
                message: message.clone(),
                file: None,
                line: None,
                overridable_by: Vec::new(),
                approvals: None,
                overridden_by: None,
            }),
            Value::Object(fields) => {
                fields
                    .get("msg")
                    .and_then(Value::as_str)
                    .map(|message| Finding {
                        level,
                        package: package_name.clone(),
                        id: fields.get("id").and_then(Value::as_str).map(str::to_string),
                        message: message.to_string(),
                        file: fields
                            .get("file")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        line: fields
                            .get("line")
                            .and_then(Value::as_u64)
                            .map(|l| l as usize),
                        overridable_by: fields
                            .get("overridable_by")
                            .and_then(Value::as_array)
                            .map(|list| {
                                list.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_string)
                                    .collect()
                            })
                            .unwrap_or_default(),
                        approvals: fields
                            .get("approvals")
                            .and_then(Value::as_u64)
                            .map(|n| n as usize),
                        overridden_by: None,
                    })
            }
            _ => None,
        };
        match finding {
            Some(finding) => outcome.findings.push(finding),
            None => {
                let what = if item.is_object() {
                    "an object without a string `msg`"
                } else {
                    "neither a string nor an object"
                };
                outcome.problems.push(shape(format!("yields {what}")));
                return;
            }
        }
    }
}

/// Findings as diagnostics: a denial is an error, a warning a warning, each at the file
/// and line the policy named (when that file is one of `files`, the repository's), else
/// at the policy's own file.
pub fn diagnostics(
    findings: &[Finding],
    policy_files: &[RegoFile],
    files: &[String],
) -> Vec<Diagnostic> {
    findings
        .iter()
        .map(|finding| {
            let named = finding.file.as_ref().filter(|f| files.contains(f));
            let policy_file = policy_files
                .iter()
                .find(|f| !f.is_test())
                .map_or("policies", |f| f.path.as_str());
            let file = named.map_or(policy_file, |f| f.as_str());
            let span = named.and(finding.line).map(|line| Span::point(line, 1));
            let id = finding
                .id
                .as_deref()
                .map_or_else(String::new, |id| format!("[{id}] "));
            let message = format!("{id}{}", finding.message);
            let help = format!("policy `{}`", finding.package);
            match finding.level {
                Level::Deny => {
                    Diagnostic::error(Code::PolicyDenied, file, span, message).with_help(help)
                }
                Level::Warn => Diagnostic::error(Code::PolicyWarned, file, span, message)
                    .warning()
                    .with_help(help),
            }
        })
        .collect()
}

/// One test rule's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestResult {
    pub file: String,
    /// `data.acme.contractors_test.test_denies_contractors`.
    pub name: String,
    pub passed: bool,
    /// Why it failed, when it did not merely come out false or undefined.
    pub error: Option<String>,
}

/// Runs every `test_*` rule of the `*_test.rego` files, as `opa test` does: a test
/// passes when its rule is true. Answers the results, and the policies' problems.
pub fn run_tests(files: &[RegoFile]) -> (Vec<TestResult>, Vec<Diagnostic>) {
    let (mut engine, packages, problems) = engine(files, true, TIME_LIMIT);
    if !problems.is_empty() {
        return (Vec::new(), problems);
    }
    let mut results = Vec::new();
    for (path, package) in packages {
        let Some(file) = files.iter().find(|f| f.path == path && f.is_test()) else {
            continue;
        };
        for name in test_rules(&file.text) {
            let rule = format!("{package}.{name}");
            let (passed, error) = match engine.eval_rule(rule.clone()) {
                Ok(value) => (value == regorus::Value::Bool(true), None),
                Err(error) => (false, Some(first_line(&error.to_string()))),
            };
            results.push(TestResult {
                file: path.clone(),
                name: rule,
                passed,
                error,
            });
        }
    }
    (results, Vec::new())
}

/// The names of the `test_*` rules a module defines (each once, in order).
fn test_rules(text: &str) -> Vec<String> {
    rules_named(text, &["test"])
        .into_iter()
        .filter(|name| name.starts_with("test_"))
        .collect()
}

/// The rules a module declares (a rule head starts a line) named one of `stems`, or a
/// stem followed by `_` and more: each once, in order. A ref head (`deny.x contains`)
/// counts as its first part, so it is evaluated and refused for its shape.
fn rules_named(text: &str, stems: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let named = stems.iter().any(|stem| {
            name == *stem
                || name
                    .strip_prefix(stem)
                    .is_some_and(|rest| rest.starts_with('_'))
        });
        if named && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(path: &str, text: &str) -> RegoFile {
        RegoFile {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn deny_and_warn_become_findings_with_their_ids_and_places() {
        let policy = file(
            "policies/p.rego",
            "package p\n\ndeny contains {\"msg\": \"no\", \"id\": \"p.no\", \"file\": \"mappings/a.yaml\", \"line\": 4} if { input.x == 1 }\nwarn contains \"careful\" if { true }\n",
        );
        let outcome = evaluate(&[policy], &json!({"x": 1}).to_string(), TIME_LIMIT);
        assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
        assert!(outcome.denied());
        assert_eq!(outcome.findings[0].id.as_deref(), Some("p.no"));
        assert_eq!(outcome.findings[0].line, Some(4));
        assert_eq!(outcome.findings[1].level, Level::Warn);
        let outcome = evaluate(
            &[file(
                "policies/p.rego",
                "package p\n\ndeny contains \"no\" if { input.x == 1 }\n",
            )],
            &json!({"x": 2}).to_string(),
            TIME_LIMIT,
        );
        assert!(outcome.findings.is_empty() && outcome.problems.is_empty());
    }

    #[test]
    fn a_syntax_error_is_a_diagnostic_at_its_line() {
        let outcome = evaluate(
            &[file(
                "policies/bad.rego",
                "package bad\n\ndeny contains msg if {\n  msg := \n}\n",
            )],
            &json!({}).to_string(),
            TIME_LIMIT,
        );
        let problem = &outcome.problems[0];
        assert_eq!(problem.code, Code::RegoSyntax);
        assert_eq!(problem.span.map(|s| s.start.line), Some(4), "{problem:?}");
    }

    #[test]
    fn prefixed_rules_count_and_ref_heads_are_refused_not_skipped() {
        let outcome = evaluate(
            &[file(
                "policies/p.rego",
                "package p\n\ndeny_no_x contains \"no x\" if { input.x == 1 }\nwarn_y contains \"y\" if { true }\n",
            )],
            &json!({"x": 1}).to_string(),
            TIME_LIMIT,
        );
        assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
        let found: Vec<(&str, Level)> = outcome
            .findings
            .iter()
            .map(|f| (f.message.as_str(), f.level))
            .collect();
        assert_eq!(found, [("no x", Level::Deny), ("y", Level::Warn)]);
        let outcome = evaluate(
            &[file(
                "policies/r.rego",
                "package r\n\ndeny.contractors contains \"no\" if { true }\n",
            )],
            &json!({}).to_string(),
            TIME_LIMIT,
        );
        assert_eq!(outcome.problems.len(), 1, "{:?}", outcome);
        assert_eq!(outcome.problems[0].code, Code::RegoError);
    }

    #[test]
    fn a_wrong_shape_is_an_error_never_a_pass() {
        for text in [
            "package s\n\ndeny := 3\n",
            "package s\n\ndeny contains {\"message\": \"no msg key\"} if { true }\n",
            "package s\n\ndeny contains 7 if { true }\n",
        ] {
            let outcome = evaluate(
                &[file("policies/s.rego", text)],
                &json!({}).to_string(),
                TIME_LIMIT,
            );
            assert_eq!(outcome.problems.len(), 1, "{text}: {:?}", outcome.problems);
            assert_eq!(outcome.problems[0].code, Code::RegoError);
        }
    }

    #[test]
    fn policies_cannot_reach_the_environment_or_the_network() {
        for text in [
            "package e\n\ndeny contains x if { x := opa.runtime().env.HOME }\n",
            "package e\n\ndeny contains x if { x := http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1/\"}).body }\n",
        ] {
            let outcome = evaluate(
                &[file("policies/e.rego", text)],
                &json!({}).to_string(),
                TIME_LIMIT,
            );
            assert!(outcome.findings.is_empty(), "{text}");
            let problem = &outcome.problems[0];
            assert!(
                matches!(problem.code, Code::RegoSyntax | Code::RegoError),
                "{text}: {problem:?}"
            );
            assert!(
                problem.message.contains("could not find function"),
                "{problem:?}"
            );
        }
    }

    #[test]
    fn tests_pass_and_fail_as_opa_test_says() {
        let policy = file(
            "policies/p.rego",
            "package p\n\ndeny contains \"no\" if { input.x == 1 }\n",
        );
        let tests = file(
            "policies/p_test.rego",
            "package p_test\n\nimport data.p\n\ntest_denies if {\n  count(p.deny) == 1 with input as {\"x\": 1}\n}\n\ntest_wrong if {\n  count(p.deny) == 1 with input as {\"x\": 2}\n}\n",
        );
        let (results, problems) = run_tests(&[policy, tests]);
        assert!(problems.is_empty(), "{problems:?}");
        let outcome: Vec<(&str, bool)> = results
            .iter()
            .map(|r| (r.name.as_str(), r.passed))
            .collect();
        assert_eq!(
            outcome,
            [
                ("data.p_test.test_denies", true),
                ("data.p_test.test_wrong", false)
            ]
        );
    }

    fn denial(package: &str, id: &str, message: &str) -> Finding {
        Finding::overridable_denial(package, id, message)
    }

    #[test]
    fn the_override_hash_tells_every_set_of_denials_apart() {
        let plan = "sha256:00";
        let hash = |findings: &[Finding]| override_hash(plan, findings).unwrap();
        // Fields run together, separators inside them, or a package moved: each differs.
        let pairs = [
            (
                vec![denial("p", "a\tb", "c")],
                vec![denial("p", "a", "b\tc")],
            ),
            (
                vec![denial("p", "a", "one\ntwo")],
                vec![denial("p", "a", "one\\ntwo")],
            ),
            (
                vec![denial("p", "p\tm\nq", "r")],
                vec![denial("p", "p", "m"), denial("p", "q", "r")],
            ),
            (vec![denial("p", "a", "b")], vec![denial("q", "a", "b")]),
            (vec![denial("p", "ab", "c")], vec![denial("p", "a", "bc")]),
        ];
        for (one, other) in pairs {
            assert_ne!(hash(&one), hash(&other), "{one:?} vs {other:?}");
        }
        // The order the policies yielded them in does not matter; the plan does.
        let both = [denial("p", "a", "b"), denial("q", "c", "d")];
        let reversed = [both[1].clone(), both[0].clone()];
        assert_eq!(hash(&both), hash(&reversed));
        assert_ne!(hash(&both), override_hash("sha256:01", &both).unwrap());
    }

    #[test]
    fn a_denial_asking_more_approvers_than_it_names_cannot_be_overridden() {
        let mut finding = denial("p", "a", "b");
        finding.overridable_by = vec!["a@x.example".into(), "A@X.example".into()];
        finding.approvals = Some(2);
        let outcome = Outcome {
            findings: vec![finding.clone()],
            ..Outcome::default()
        };
        assert!(!finding.awaits_override());
        assert!(!outcome.only_overridable_refusals());
        assert_eq!(override_hash("sha256:00", &outcome.findings), None);
        finding.overridable_by.push("b@x.example".into());
        assert!(finding.awaits_override());
    }
}
