//! The diagnostics reference documents every code the tool can emit.

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
