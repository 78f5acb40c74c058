//! The approval file `approve` writes: built here, in the core, and checked by the same
//! loader `validate` uses before anyone commits it.

use crate::model::PlanHash;

/// What an approval says: which plan's destructive set, why, by whom, until when.
#[derive(Debug, Clone)]
pub struct ApprovalDraft<'a> {
    pub hash: &'a PlanHash,
    pub reason: &'a str,
    pub approved_by: &'a [String],
    pub ticket: Option<&'a str>,
    /// `YYYY-MM-DD`.
    pub expires: Option<&'a str>,
    /// `YYYY-MM-DD`: the date in the file's name.
    pub today: &'a str,
}

impl ApprovalDraft<'_> {
    /// `approvals/<today>-<first 12 hex digits of the hash>.yaml`. The hash is a checked
    /// `PlanHash`, so the name cannot leave `approvals/`.
    pub fn path(&self) -> String {
        let prefix: String = self
            .hash
            .as_str()
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        format!("approvals/{}-{prefix}.yaml", self.today)
    }

    /// The file's YAML, every text quoted (a JSON string is a YAML string), or why it
    /// would not load.
    pub fn render(&self) -> Result<String, Vec<String>> {
        let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
        let by: Vec<String> = self.approved_by.iter().map(|e| quote(e)).collect();
        let mut yaml = format!(
            "apiVersion: slack-gitops/v1\nkind: Approval\nhash: {}\nreason: {}\napproved_by: [{}]\n",
            self.hash,
            quote(self.reason),
            by.join(", ")
        );
        if let Some(ticket) = self.ticket {
            yaml.push_str(&format!("ticket: {}\n", quote(ticket)));
        }
        if let Some(expires) = self.expires {
            yaml.push_str(&format!("expires: {}\n", quote(expires)));
        }
        let loaded = super::load(
            &[super::SourceFile {
                path: self.path(),
                bytes: yaml.clone().into_bytes(),
            }],
            None,
        );
        let problems: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.file.starts_with("approvals/"))
            .map(|d| d.message.clone())
            .collect();
        if problems.is_empty() {
            Ok(yaml)
        } else {
            Err(problems)
        }
    }
}
