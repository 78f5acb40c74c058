//! How long `validate` takes on generated config repositories: 500 usergroups in 20 files
//! and 5,000 usergroups in 200 files, each usergroup with a default channel, each file
//! also declaring channels. Loading runs on in-memory files (the pure core) and through
//! the directory reader (what the command does).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use slack_gitops::config::{self, SourceFile};

const CONFIG: &str = "apiVersion: slack-gitops/v1
kind: Config
slack:
  plan: enterprise-grid
  workspaces: { main: T0000MAIN, support: T0000SUPP }
identity:
  source: file
  path: identity/directory.yaml
users:
  provisioning: eager
  scope: [everyone]
";

/// A config repository with `usergroups` usergroups spread over `files` mapping files.
fn generate(usergroups: usize, files: usize) -> Vec<SourceFile> {
    let mut out = vec![SourceFile {
        path: "slack-gitops.yaml".into(),
        bytes: CONFIG.as_bytes().to_vec(),
    }];
    let per_file = usergroups / files;
    for file in 0..files {
        let mut text = String::from(
            "# yaml-language-server: $schema=../schema/mappings.schema.json\napiVersion: slack-gitops/v1\nkind: Mappings\nusergroups:\n",
        );
        for n in 0..per_file {
            let id = file * per_file + n;
            text.push_str(&format!(
                "  - handle: team-{id}\n    name: Team {id}\n    description: Generated team number {id}\n    workspaces: [main]\n    members:\n      groups: [team-{id}, dept-{}]\n      exclude: [contractors]\n    channels: [team-{id}]\n",
                id % 50
            ));
        }
        text.push_str("channels:\n");
        for n in 0..per_file {
            let id = file * per_file + n;
            text.push_str(&format!(
                "  - name: team-{id}\n    workspace: main\n    members: {{ groups: [team-{id}] }}\n"
            ));
        }
        out.push(SourceFile {
            path: format!("mappings/file-{file:03}.yaml"),
            bytes: text.into_bytes(),
        });
    }
    out.push(SourceFile {
        path: "policies/guardrails.yaml".into(),
        bytes: b"apiVersion: slack-gitops/v1\nkind: Policy\nlimits:\n  deactivate: { max: 10, max_percent: 2 }\n".to_vec(),
    });
    out
}

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    group.sample_size(10);
    for (usergroups, files) in [(500, 20), (5_000, 200)] {
        let repository = generate(usergroups, files);
        let bytes: usize = repository.iter().map(|f| f.bytes.len()).sum();
        let loaded = config::load(&repository, None);
        assert!(
            loaded.diagnostics.is_empty(),
            "{:?}",
            &loaded.diagnostics[..1]
        );
        group.throughput(Throughput::Bytes(bytes as u64));
        let label = format!("{usergroups}-usergroups-{files}-files");
        group.bench_with_input(BenchmarkId::new("load", &label), &repository, |b, files| {
            b.iter(|| config::load(files, None))
        });

        let directory = tempfile::tempdir().unwrap();
        for file in &repository {
            let path = directory.path().join(&file.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &file.bytes).unwrap();
        }
        group.bench_with_input(
            BenchmarkId::new("read-and-load", &label),
            directory.path(),
            |b, root| {
                b.iter(|| {
                    let tree = slack_gitops::gitops::worktree::read(root).unwrap();
                    config::load(&tree.files, None)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
