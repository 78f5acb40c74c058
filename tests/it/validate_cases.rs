//! Data-driven diagnostics: each file in `tests/it/cases/validate/` is one YAML file put
//! into a copy of `tests/fixtures/minimal`, and its rendered diagnostics are the snapshot.
//!
//! A case's first line names where the file goes and exactly which diagnostics it must
//! produce: `# case: mappings/web.yaml | expect: invalid-handle@5:15, ...`. The snapshot
//! shows what a person reads (the text rendering) and what GitHub shows (annotations).

use std::collections::BTreeMap;
use std::path::Path;

use slack_gitops::config::{self, SourceFile};
use slack_gitops::gitops::worktree;
use slack_gitops::render;

struct Case {
    target: String,
    expected: Vec<String>,
}

fn read_case(text: &str) -> Case {
    let header = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("# case: "))
        .expect("a case starts with `# case: PATH | expect: ...`");
    let (target, expected) = header
        .split_once(" | expect: ")
        .expect("the header names the expected diagnostics");
    Case {
        target: target.trim().to_string(),
        expected: expected.split(", ").map(|s| s.trim().to_string()).collect(),
    }
}

fn fixture_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minimal");
    let tree = worktree::read(&root).expect("the fixture is readable");
    assert!(tree.diagnostics.is_empty());
    let loaded = config::load(&tree.files, None);
    assert!(
        loaded.diagnostics.is_empty(),
        "the fixture must be valid: {:?}",
        loaded.diagnostics
    );
    tree.files
}

#[test]
fn validate_cases() {
    let base = fixture_files();
    let mut mismatches = Vec::new();
    insta::glob!("cases/validate/*.yaml", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let case = read_case(&text);
        let mut files: Vec<SourceFile> = base
            .iter()
            .filter(|f| f.path != case.target)
            .cloned()
            .collect();
        files.push(SourceFile {
            path: case.target.clone(),
            bytes: text.clone().into_bytes(),
        });
        let loaded = config::load(&files, None);

        let found: Vec<String> = loaded
            .diagnostics
            .iter()
            .map(|d| {
                let span = d.span.expect("every case's diagnostic has a span");
                format!("{}@{}:{}", d.code, span.start.line, span.start.column)
            })
            .collect();
        if found != case.expected || loaded.repository.is_some() {
            mismatches.push(format!(
                "{}: expected {:?}, found {:?}",
                path.display(),
                case.expected,
                found
            ));
        }
        assert!(loaded.diagnostics.iter().all(|d| d.file == case.target));

        let sources: BTreeMap<String, String> = files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    String::from_utf8_lossy(&f.bytes).into_owned(),
                )
            })
            .collect();
        let snapshot = format!(
            "{}--- github ---\n{}",
            render::diagnostics::text(&loaded.diagnostics, &sources, false),
            render::diagnostics::github(&loaded.diagnostics)
        );
        insta::assert_snapshot!(snapshot);
    });
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
