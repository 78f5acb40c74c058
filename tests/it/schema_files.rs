//! The committed JSON schemas under `schema/` are generated from the config types.
//! This test regenerates them; when a committed file differs it writes the new one and
//! fails, so a stale schema never lands unnoticed.

use std::path::Path;

use slack_gitops::config::{Kind, schema};

#[test]
fn committed_schemas_are_current() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    let mut stale = Vec::new();
    for kind in Kind::ALL {
        let path = directory.join(kind.schema_file_name());
        let expected = schema::schema_text(kind);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != expected {
            std::fs::create_dir_all(&directory).unwrap();
            std::fs::write(&path, &expected).unwrap();
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale schemas were regenerated; commit them: {stale:?}"
    );
}

/// The access review's JSON document has a committed schema too (for auditors' tools).
#[test]
fn the_access_review_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/access-review.schema.json");
    let schema = schemars::schema_for!(slack_gitops::review::AccessReview);
    let mut expected = serde_json::to_string_pretty(&schema).unwrap();
    expected.push('\n');
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != expected {
        std::fs::write(&path, &expected).unwrap();
        panic!("schema/access-review.schema.json was stale and is regenerated; commit it");
    }
}

#[test]
fn every_example_file_names_its_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = slack_gitops::gitops::worktree::read(&root.join("examples/acme")).unwrap();
    let mut files: Vec<(String, String)> = tree
        .files
        .iter()
        // Rego policies have no JSON schema.
        .filter(|f| !slack_gitops::rego::is_rego_path(&f.path))
        .map(|f| {
            (
                format!("examples/acme/{}", f.path),
                String::from_utf8(f.bytes.clone()).unwrap(),
            )
        })
        .collect();
    files.push((
        "policies/default.yaml".into(),
        std::fs::read_to_string(root.join("policies/default.yaml")).unwrap(),
    ));
    assert!(files.len() >= 6);
    for (path, text) in files {
        let kind =
            slack_gitops::config::kind_for_path(path.trim_start_matches("examples/acme/")).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let target = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{path} does not start with a yaml-language-server line"));
        assert!(
            target.ends_with(&kind.schema_file_name()),
            "{path}: {target}"
        );
        // The relative path must lead to the committed schema.
        let resolved = root.join(&path).parent().unwrap().join(target);
        assert!(
            resolved.exists(),
            "{path}: {} does not exist",
            resolved.display()
        );
    }
}
