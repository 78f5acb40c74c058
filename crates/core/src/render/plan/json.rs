//! The versioned JSON plan, and reading it back (`PlanDocument`).

use super::*;

#[derive(Serialize)]
struct JsonPlan<'a> {
    version: u32,
    summary: String,
    counts: Tally,
    identity: &'a IdentityCounts,
    verdict: &'a Verdict,
    mappings: &'a BTreeMap<String, String>,
    /// The hash of the destructive set, which approvals name.
    hash: String,
    /// The destructive set itself, so `apply --plan` can tell what was reviewed.
    destructive: Vec<String>,
    /// Every change, one line each: what the next plan of the pull request compares with.
    /// Always in the JSON plan; left out of the policy input.
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<Vec<String>>,
    /// The commit planned at, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<&'a str>,
    /// Where live Slack came from, when it came from the controller's mirror.
    #[serde(skip_serializing_if = "Option::is_none")]
    slack_read: Option<&'a super::SlackRead>,
    /// What the repository's Rego policies said, when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<PolicyChecks<'a>>,
    plan: &'a Plan,
}

/// The parts of a JSON plan that later commands read back: `plan --baseline` (identity
/// counts, mapping digests) and `apply --plan` (the hash and destructive set that were
/// reviewed). Other fields are ignored, so plans of the same major version stay readable.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct PlanDocument {
    pub version: u32,
    pub identity: IdentityCounts,
    /// Absent in plans written before they were recorded.
    #[serde(default)]
    pub mappings: BTreeMap<String, String>,
    /// Absent in plans written before it was recorded.
    #[serde(default)]
    pub hash: Option<String>,
    /// The destructive action set, one canonical line each ([`crate::policy::destructive_set`]).
    #[serde(default)]
    pub destructive: Option<Vec<String>>,
    /// Every change, one line each ([`Plan::change_lines`]); absent in older plans.
    #[serde(default)]
    pub changes: Option<Vec<String>>,
}

impl PlanDocument {
    /// Parses a JSON plan; the error says what is wrong.
    pub fn parse(text: &str) -> Result<PlanDocument, String> {
        let document: PlanDocument = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if document.version != JSON_VERSION {
            return Err(format!(
                "version {} is not {JSON_VERSION}, the version this build reads",
                document.version
            ));
        }
        Ok(document)
    }
}

/// The versioned JSON plan: every action with its provenance.
pub fn json(report: &PlanReport) -> String {
    let mut bytes = Vec::new();
    write_json(report, &mut bytes).expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("serde_json writes UTF-8")
}

/// The versioned JSON plan written to `out` as it is serialised: a 200,000-person plan
/// (a hundred megabytes, mostly full member lists) never sits in memory as text.
pub fn write_json(report: &PlanReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &json_plan(report))?;
    out.write_all(b"\n")
}

/// The plan as a policy sees it (`input.plan`), as JSON text: the JSON plan without the
/// change lines and with each usergroup change's full member list emptied (its adds
/// and removes stay). Written straight to text: a large plan never becomes a JSON value.
pub fn policy_plan(report: &PlanReport) -> String {
    let mut plan = report.plan.clone();
    for action in &mut plan.actions {
        if let crate::plan::action::Action::SetUsergroupMembers { members, .. } = action {
            *members = Vec::new();
        }
    }
    let report = PlanReport {
        plan: &plan,
        policy: None,
        ..report.clone()
    };
    let mut document = json_plan(&report);
    document.changes = None;
    serde_json::to_string(&document).expect("a plan serialises")
}

/// The policy checks as the JSON plan records them.
#[derive(Serialize)]
struct PolicyChecks<'a> {
    packages: &'a [String],
    findings: &'a [crate::rego::Finding],
    problems: Vec<serde_json::Value>,
    /// The hash an approval overriding denials carries, when a denial may be overridden.
    #[serde(skip_serializing_if = "Option::is_none")]
    override_hash: Option<&'a str>,
    /// The plan hash a guardrail approval carries, when a refused plan also needs one.
    #[serde(skip_serializing_if = "Option::is_none")]
    guardrail_hash: Option<&'a str>,
}

fn policy_checks(outcome: &crate::rego::Outcome) -> PolicyChecks<'_> {
    PolicyChecks {
        packages: &outcome.packages,
        findings: &outcome.findings,
        problems: outcome
            .problems
            .iter()
            .map(|p| {
                serde_json::json!({
                    "file": p.file,
                    "line": p.span.map(|s| s.start.line),
                    "code": p.code.as_str(),
                    "message": p.message,
                })
            })
            .collect(),
        override_hash: outcome.override_hash.as_deref(),
        guardrail_hash: outcome.guardrail_hash.as_deref(),
    }
}

fn json_plan<'a>(report: &'a PlanReport) -> JsonPlan<'a> {
    JsonPlan {
        policy: report.policy.map(policy_checks),
        version: JSON_VERSION,
        summary: summary(report.plan),
        counts: tally(report.plan),
        identity: report.identity,
        verdict: report.verdict,
        mappings: report.mappings,
        hash: crate::policy::plan_hash(report.plan),
        destructive: crate::policy::destructive_set(report.plan)
            .into_iter()
            .collect(),
        changes: Some(report.plan.change_lines()),
        commit: report.context.commit.as_deref(),
        slack_read: report.context.slack_read.as_ref(),
        plan: report.plan,
    }
}
