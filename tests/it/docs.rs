//! The diagnostics reference documents every code the tool can emit.

use crate::common;
use slack_gitops::diagnostic::Code;

#[test]
fn every_diagnostic_code_is_documented() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/diagnostics.md");
    let docs = std::fs::read_to_string(path).unwrap();
    let undocumented: Vec<&str> = Code::ALL
        .iter()
        .map(|code| code.as_str())
        .filter(|code| !docs.contains(&format!("\n### `{code}`\n")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "undocumented codes: {undocumented:?}"
    );
}

#[test]
fn codes_are_unique_kebab_case() {
    let mut seen = std::collections::BTreeSet::new();
    for code in Code::ALL {
        let text = code.as_str();
        assert!(seen.insert(text), "{text} is used twice");
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{text} is not kebab-case"
        );
    }
}

/// One example of `docs/diagnostics.md`: the file it shows and the output it quotes.
struct Example {
    code: String,
    path: String,
    yaml: String,
    /// Where the quoted output stands in the document (byte range of its text).
    output: std::ops::Range<usize>,
}

/// The examples: under each `### \`code\``, "In `path`:", a `yaml` block, a `text` block.
fn examples(doc: &str) -> Vec<Example> {
    let mut found = Vec::new();
    let mut code = String::new();
    let mut at = 0;
    while at < doc.len() {
        let rest = &doc[at..];
        let line_end = rest.find('\n').map_or(doc.len(), |i| at + i + 1);
        let line = &doc[at..line_end];
        if let Some(name) = line.strip_prefix("### `") {
            code = name.trim_end().trim_end_matches('`').to_string();
        }
        if let Some(path) = line
            .strip_prefix("In `")
            .and_then(|p| p.trim_end().strip_suffix("`:"))
        {
            let yaml_start = doc[line_end..].find("```yaml\n").unwrap() + line_end + 8;
            let yaml_end = doc[yaml_start..].find("```\n").unwrap() + yaml_start;
            let text_start = doc[yaml_end..].find("```text\n").unwrap() + yaml_end + 8;
            let text_end = doc[text_start..].find("```\n").unwrap() + text_start;
            found.push(Example {
                code: code.clone(),
                path: path.to_string(),
                yaml: doc[yaml_start..yaml_end].to_string(),
                output: text_start..text_end,
            });
            at = text_end;
            continue;
        }
        at = line_end;
    }
    found
}

/// What `validate` prints about `code` when `yaml` is put at `path` in a copy of the
/// minimal repository: each of its diagnostics' blocks, as a terminal shows them.
fn validate_output(example: &Example) -> String {
    let temp = tempfile::tempdir().unwrap();
    common::copy_dir(&common::fixture("tests/fixtures/minimal"), temp.path());
    let path = temp.path().join(&example.path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &example.yaml).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .args(["validate", ".", "--color", "never"])
        .current_dir(temp.path())
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let mut blocks = Vec::new();
    for block in text.split("\n\n") {
        let head = block.lines().next().unwrap_or("");
        if head.starts_with(&format!("error[{}]", example.code))
            || head.starts_with(&format!("warning[{}]", example.code))
        {
            blocks.push(block.trim_end().to_string());
        }
    }
    blocks.join("\n\n") + "\n"
}

/// Each example in the diagnostics reference is what `validate` prints for its file, line
/// and column included. `SLACK_GITOPS_UPDATE_DOCS=1` writes the outputs into the document
/// instead (review the diff).
#[test]
fn the_documented_diagnostics_are_what_validate_prints() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/diagnostics.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let found = examples(&doc);
    assert!(found.len() >= 35, "{} examples", found.len());
    let update = std::env::var_os("SLACK_GITOPS_UPDATE_DOCS").is_some();
    let mut updated = doc.clone();
    let mut wrong = Vec::new();
    // From the last, so the earlier ranges stay valid while the document is rewritten.
    for example in found.iter().rev() {
        let actual = validate_output(example);
        assert!(
            actual.trim().len() > 1,
            "`{}` printed nothing",
            example.code
        );
        if doc[example.output.clone()] != actual {
            wrong.push(format!(
                "`{}`: the document shows\n{}validate prints\n{actual}",
                example.code,
                &doc[example.output.clone()]
            ));
            updated.replace_range(example.output.clone(), &actual);
        }
    }
    if update {
        std::fs::write(&path, updated).unwrap();
    } else {
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
