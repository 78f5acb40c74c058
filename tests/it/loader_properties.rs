//! Whatever bytes arrive, the loader answers with diagnostics, never a panic, and never
//! an invalid repository without saying why.

use proptest::prelude::*;
use slack_gitops::config::{self, SourceFile};
use slack_gitops::diagnostic::Code;

fn example_files() -> Vec<SourceFile> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/acme");
    slack_gitops::gitops::worktree::read(&root).unwrap().files
}

/// Loading either returns a repository with no errors, or reports at least one error.
fn check(files: &[SourceFile]) -> Result<(), TestCaseError> {
    let loaded = config::load(files, None);
    let errors = slack_gitops::diagnostic::has_errors(&loaded.diagnostics);
    prop_assert_eq!(loaded.repository.is_some(), !errors);
    for diagnostic in &loaded.diagnostics {
        prop_assert!(!diagnostic.message.is_empty());
        if let Some(span) = diagnostic.span {
            prop_assert!(span.start.line >= 1 && span.start.column >= 1);
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Replace(usize, u8),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let snippet = prop::sample::select(vec![
        b": ".to_vec(),
        b"\n".to_vec(),
        b"\t".to_vec(),
        b"- ".to_vec(),
        b"&a ".to_vec(),
        b"*a".to_vec(),
        b"!!".to_vec(),
        b"[".to_vec(),
        b"}".to_vec(),
        b"\"".to_vec(),
        b"---\n".to_vec(),
        b"? ".to_vec(),
        b"\xff".to_vec(),
        b"#".to_vec(),
        b"null".to_vec(),
        b"-1".to_vec(),
        b"  ".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), snippet).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Replace(at, byte)),
        (any::<usize>(), 1usize..200).prop_map(|(at, len)| Mutation::Duplicate(at, len)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match mutation {
        Mutation::Insert(at, insert) => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, insert.iter().copied());
        }
        Mutation::Delete(at, len) => {
            let at = at % bytes.len();
            let end = (at + len).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::Replace(at, byte) => {
            let at = at % bytes.len();
            bytes[at] = *byte;
        }
        Mutation::Duplicate(at, len) => {
            let at = at % bytes.len();
            let end = (at + len).min(bytes.len());
            let copy: Vec<u8> = bytes[at..end].to_vec();
            bytes.splice(end..end, copy);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), which in 0usize..4) {
        let path = ["slack-gitops.yaml", "mappings/x.yaml", "policies/x.yaml", "approvals/x.yaml"][which];
        let mut files = example_files();
        files.retain(|f| f.path != path);
        files.push(SourceFile { path: path.to_string(), bytes });
        check(&files)?;
    }

    #[test]
    fn mutated_valid_files_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut files = example_files();
        let index = which.index(files.len());
        for mutation in &mutations {
            mutate(&mut files[index].bytes, mutation);
        }
        check(&files)?;
    }
}

#[test]
fn the_untouched_example_loads() {
    let loaded = config::load(&example_files(), None);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let repository = loaded.repository.unwrap();
    assert_eq!(repository.mappings.len(), 3);
    let usergroups: usize = repository
        .mappings
        .iter()
        .map(|m| m.value.usergroups.len())
        .sum();
    let channels: usize = repository
        .mappings
        .iter()
        .map(|m| m.value.channels.len())
        .sum();
    assert!(
        usergroups >= 12 && channels >= 8,
        "{usergroups} usergroups, {channels} channels"
    );
}

#[test]
fn group_names_are_checked_against_the_identity_snapshot() {
    let files = example_files();
    let mut known: std::collections::BTreeSet<String> = [
        "everyone",
        "engineering",
        "contractors",
        "marketing",
        "support-tier1",
        "eng-platform",
        "eng-backend",
        "eng-frontend",
        "eng-mobile",
        "data",
        "sre",
        "oncall",
        "security",
        "sales",
        "sales-emea",
        "sales-amer",
        "support",
        "support-tier2",
        "finance",
        "leadership",
        "managers",
        "people-ops",
        "it",
        "it-admins",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let loaded = config::load(&files, Some(&known));
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);

    known.remove("oncall");
    let loaded = config::load(&files, Some(&known));
    let found: Vec<(String, usize, usize)> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            assert_eq!(d.code, Code::UnknownIdpGroup);
            let span = d.span.unwrap();
            (d.file.clone(), span.start.line, span.start.column)
        })
        .collect();
    // `oncall` is named by the oncall usergroup and by the eng-oncall channel.
    assert_eq!(
        found,
        [
            ("mappings/engineering.yaml".to_string(), 75, 16),
            ("mappings/engineering.yaml".to_string(), 96, 25),
        ]
    );
}
