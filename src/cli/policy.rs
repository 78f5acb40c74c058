//! `policy test`: the repository's Rego policy tests, as `opa test` runs them.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{EXIT_ERROR, EXIT_OK, emit};
use crate::gitops::worktree;

/// What `policy` does.
#[derive(Debug, Subcommand)]
pub enum PolicyWhat {
    /// Run every `test_*` rule of `policies/*_test.rego`: each passes when true. Exit 0
    /// when all pass, 1 when one fails or a policy does not compile.
    Test(PolicyTestArgs),
}

#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// The config repository.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    format: String,
}

pub(super) fn test(args: &PolicyTestArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(
        matches!(args.format.as_str(), "text" | "json"),
        "--format must be text or json"
    );
    let tree = worktree::read(&args.dir)?;
    let files: Vec<crate::rego::RegoFile> = tree
        .files
        .iter()
        .filter(|f| crate::rego::is_rego_path(&f.path))
        .map(|f| crate::rego::RegoFile {
            path: f.path.clone(),
            text: String::from_utf8_lossy(&f.bytes).into_owned(),
        })
        .collect();
    let (results, problems) = crate::rego::run_tests(&files);
    let failed = results.iter().filter(|r| !r.passed).count();
    let out = match args.format.as_str() {
        "json" => {
            let document = serde_json::json!({
                "version": 1,
                "tests": results,
                "problems": problems.iter().map(|p| serde_json::json!({
                    "file": p.file, "line": p.span.map(|s| s.start.line), "code": p.code.as_str(), "message": p.message,
                })).collect::<Vec<_>>(),
            });
            format!("{}\n", serde_json::to_string_pretty(&document)?)
        }
        _ => {
            let mut text = String::new();
            for problem in &problems {
                let line = problem
                    .span
                    .map_or(String::new(), |s| format!(":{}", s.start.line));
                text.push_str(&format!(
                    "error[{}]: {}{line}: {}\n",
                    problem.code.as_str(),
                    problem.file,
                    problem.message
                ));
            }
            for result in &results {
                let mark = if result.passed { "PASS" } else { "FAIL" };
                text.push_str(&format!("{mark} {} ({})", result.name, result.file));
                if let Some(error) = &result.error {
                    text.push_str(&format!(": {error}"));
                }
                text.push('\n');
            }
            text.push_str(&format!(
                "{} passed, {failed} failed{}\n",
                results.len() - failed,
                if problems.is_empty() {
                    String::new()
                } else {
                    format!(", {} policy error(s)", problems.len())
                }
            ));
            text
        }
    };
    emit(&out)?;
    Ok(if failed > 0 || !problems.is_empty() {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}
