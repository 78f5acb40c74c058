//! The pure core stays pure by construction: no module of `config`, `model`, `plan`,
//! `policy`, `render`, `review` or `diagnostic` may name an I/O crate, the file system, the
//! environment, the network, processes or the clock. A change that needs one of them
//! belongs in the shell (`pipeline`, `slack`, `identity`, `gitops`, `store`, `apply`).

use std::path::{Path, PathBuf};

const CORE: &[&str] = &[
    "src/config",
    "src/model",
    "src/model.rs",
    "src/plan",
    "src/policy.rs",
    "src/render",
    "src/review.rs",
    "src/diagnostic.rs",
];

/// What a core module may not mention (outside comments).
const FORBIDDEN: &[&str] = &[
    "tokio",
    "reqwest",
    "git2",
    "rusqlite",
    "clap",
    "axum",
    "std::fs",
    "std::env",
    "std::net",
    "std::process",
    "SystemTime",
    "Instant",
    "crate::slack",
    "crate::identity",
    "crate::gitops",
    "crate::store",
    "crate::emulator",
    "crate::pipeline",
    "crate::apply",
    "crate::cli",
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

#[test]
fn the_core_names_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for part in CORE {
        rust_files(&root.join(part), &mut files);
    }
    assert!(files.len() >= 15, "the core was not found: {files:?}");
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in FORBIDDEN {
                if code.contains(word) {
                    problems.push(format!(
                        "{}:{}: `{word}` in the pure core: {}",
                        file.strip_prefix(root).unwrap().display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
