//! Data-driven plans: each file in `tests/it/cases/plan/` is a config, an identity directory
//! and a live Slack state in a compact form; the snapshot is the plan as a person reads it
//! (text and markdown), with the verdict.
//!
//! Case format (YAML; the first comment line says what the case shows):
//!
//! ```yaml
//! users: { provisioning: eager, scope: [everyone] }  # optional, these are the defaults
//! mappings: |          # the body of mappings/m.yaml
//!   usergroups: [...]
//! policy: |            # optional body of policies/p.yaml
//!   limits: {...}
//! people: ["ada@acme.example", "bob@acme.example suspended title=CTO manager=ada@acme.example"]
//! groups: { everyone: { members: [...], groups: [...] } }
//! live:
//!   users: ["W1 ada@acme.example", "W2 bob@acme.example inactive bot guest primary-owner ws=T0000MAIN,T0000SUPP title=X manager=W1"]
//!   usergroups: ["S1 eng disabled name=X desc=Y: W1 W2"]   # live name/description default to the config's
//!   channels: ["C1 eng private: W1", "C2 random"]            # no colon: members not read
//! apps: ["A1 T0000MAIN W3 Deploy notifier"]  # optional: apps installed (id, workspace, installer, name)
//! baseline: 12         # optional: people in scope at the last good run
//! baseline_mappings: | # optional, with baseline: the mappings at the last good run
//! json: true           # optional: also snapshot the JSON plan
//! ```
//!
//! Every case is also planned a second time from inputs in reverse order, and all three
//! renderings must be byte-identical: plans are deterministic.

use std::collections::BTreeMap;

use serde_json::Value;
use slack_gitops::config::{self, SourceFile};
use slack_gitops::model::directory::{Directory, Group, Person, PersonStatus};
use slack_gitops::model::live::{
    GuestKind, InstalledApps, Live, LiveApp, LiveChannel, LiveUser, LiveUsergroup,
};
use slack_gitops::plan::{
    desired::desired,
    diff::{explain_by_mapping, plan},
};
use slack_gitops::policy::{IdentityCounts, verdict};
use slack_gitops::render::plan::{PlanReport, json, markdown, text};

const CONFIG: &str = "apiVersion: slack-gitops/v1\nkind: Config\nslack:\n  plan: enterprise-grid\n  workspaces: { main: T0000MAIN, support: T0000SUPP }\nidentity:\n  source: file\n  path: identity/directory.yaml\n";

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `key=value` words, with `_` for spaces in values.
fn option(words: &[&str], key: &str) -> Option<String> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .map(|v| v.replace('_', " "))
}

fn repository(case: &Value) -> config::Repository {
    repository_with(
        case,
        case["mappings"].as_str().expect("a case has mappings"),
    )
}

fn repository_with(case: &Value, mappings: &str) -> config::Repository {
    let users = &case["users"];
    let provisioning = users["provisioning"].as_str().unwrap_or("eager");
    let scope = users
        .get("scope")
        .map_or_else(|| vec!["everyone".to_string()], strings);
    let mut files = vec![
        SourceFile {
            path: "slack-gitops.yaml".into(),
            bytes: format!(
                "{CONFIG}users:\n  provisioning: {provisioning}\n  scope: [{}]\n",
                scope.join(", ")
            )
            .into_bytes(),
        },
        SourceFile {
            path: "mappings/m.yaml".into(),
            bytes: format!("apiVersion: slack-gitops/v1\nkind: Mappings\n{mappings}").into_bytes(),
        },
    ];
    if let Some(policy) = case["policy"].as_str() {
        files.push(SourceFile {
            path: "policies/p.yaml".into(),
            bytes: format!("apiVersion: slack-gitops/v1\nkind: Policy\n{policy}").into_bytes(),
        });
    }
    let loaded = config::load(&files, None);
    assert!(
        loaded.diagnostics.is_empty(),
        "the case's config is valid: {:?}",
        loaded.diagnostics
    );
    loaded.repository.unwrap()
}

fn directory(case: &Value) -> Directory {
    let people = strings(&case["people"])
        .iter()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            Person {
                email: words[0].to_string(),
                given_name: option(&words, "given").unwrap_or_default(),
                family_name: option(&words, "family").unwrap_or_default(),
                title: option(&words, "title").unwrap_or_default(),
                department: option(&words, "department").unwrap_or_default(),
                manager: option(&words, "manager"),
                status: if words.contains(&"suspended") {
                    PersonStatus::Suspended
                } else {
                    PersonStatus::Active
                },
            }
        })
        .collect();
    let groups = case["groups"]
        .as_object()
        .map(|groups| {
            groups
                .iter()
                .map(|(name, group)| Group {
                    name: name.clone(),
                    description: String::new(),
                    members: strings(&group["members"]),
                    groups: strings(&group["groups"]),
                })
                .collect()
        })
        .unwrap_or_default();
    Directory {
        source: "identity/directory.yaml".into(),
        people,
        groups,
    }
    .normalise()
}

fn live(case: &Value, repository: &config::Repository) -> Live {
    let users = strings(&case["live"]["users"])
        .iter()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            LiveUser {
                id: words[0].into(),
                email: words[1].into(),
                user_name: words[1].split('@').next().unwrap().into(),
                given_name: option(&words, "given").unwrap_or_default(),
                family_name: option(&words, "family").unwrap_or_default(),
                title: option(&words, "title").unwrap_or_default(),
                department: option(&words, "department").unwrap_or_default(),
                manager: option(&words, "manager"),
                active: !words.contains(&"inactive"),
                admin: false,
                owner: words.contains(&"primary-owner"),
                primary_owner: words.contains(&"primary-owner"),
                guest: words.contains(&"guest").then_some(GuestKind::Multi),
                bot: words.contains(&"bot"),
                workspaces: option(&words, "ws").map_or_else(
                    || vec!["T0000MAIN".to_string()],
                    |w| w.split(',').map(str::to_string).collect(),
                ),
            }
        })
        .collect();
    let configured = |handle: &str| {
        repository
            .mappings
            .iter()
            .flat_map(|m| &m.value.usergroups)
            .find(|u| u.handle.as_str() == handle)
            .map(|u| (u.name.clone(), u.description.clone().unwrap_or_default()))
            .unwrap_or_else(|| (handle.to_string(), String::new()))
    };
    let usergroups = strings(&case["live"]["usergroups"])
        .iter()
        .map(|line| {
            let (head, members) = line.split_once(':').unwrap_or((line, ""));
            let words: Vec<&str> = head.split_whitespace().collect();
            let (name, description) = configured(words[1]);
            LiveUsergroup {
                id: words[0].into(),
                workspace: option(&words, "ws").unwrap_or_else(|| "T0000MAIN".into()),
                handle: words[1].into(),
                name: option(&words, "name").unwrap_or(name),
                description: option(&words, "desc").unwrap_or(description),
                members: members.split_whitespace().map(str::to_string).collect(),
                channels: Vec::new(),
                disabled: words.contains(&"disabled"),
            }
        })
        .collect();
    let channels = strings(&case["live"]["channels"])
        .iter()
        .map(|line| {
            let (head, members) = match line.split_once(':') {
                Some((head, members)) => (
                    head,
                    Some(members.split_whitespace().map(str::to_string).collect()),
                ),
                None => (line.as_str(), None),
            };
            let words: Vec<&str> = head.split_whitespace().collect();
            LiveChannel {
                id: words[0].into(),
                workspace: option(&words, "ws").unwrap_or_else(|| "T0000MAIN".into()),
                name: words[1].into(),
                private: words.contains(&"private"),
                archived: false,
                members,
                num_members: None,
            }
        })
        .collect();
    Live {
        users,
        usergroups,
        channels,
        ..Default::default()
    }
}

/// The apps the case says were installed, as the integration logs would give them.
fn apps(case: &Value) -> Vec<LiveApp> {
    strings(&case["apps"])
        .iter()
        .map(|line| {
            let mut words = line.splitn(4, ' ');
            let mut next = || words.next().unwrap_or_default().to_string();
            let (id, workspace, installed_by, name) = (next(), next(), next(), next());
            LiveApp {
                id,
                name,
                workspace,
                installed_by,
            }
        })
        .collect()
}

/// The last good run: people in scope, and the mapping digests then.
struct Baseline {
    in_scope: u64,
    mappings: BTreeMap<String, String>,
}

fn baseline(case: &Value, directory: &Directory) -> Option<Baseline> {
    let in_scope = case["baseline"].as_u64()?;
    let mappings = case["baseline_mappings"]
        .as_str()
        .map(|before| {
            let resolution = directory.resolve();
            desired(&repository_with(case, before), directory, &resolution).mapping_digests()
        })
        .unwrap_or_default();
    Some(Baseline { in_scope, mappings })
}

/// Plans and renders in every format: (text, markdown, json, identity diagnostics).
fn render(
    repository: &config::Repository,
    directory: &Directory,
    live: &Live,
    apps: &[LiveApp],
    baseline: Option<&Baseline>,
) -> (String, String, String, Vec<String>) {
    let resolution = directory.resolve();
    let wanted = desired(repository, directory, &resolution);
    let mut live = live.clone();
    if !apps.is_empty() {
        live.apps = InstalledApps::Known(apps.to_vec());
    }
    let mut plan = plan(&wanted, directory, &live);
    let mappings = wanted.mapping_digests();
    if let Some(baseline) = baseline {
        explain_by_mapping(&mut plan, &mappings, &baseline.mappings);
    }
    let identity = IdentityCounts::of(&wanted, directory);
    let baseline = baseline.map(|b| IdentityCounts {
        in_scope: b.in_scope,
        ..identity
    });
    let verdict = verdict(&plan, &live, repository, &identity, baseline.as_ref());
    let report = PlanReport {
        plan: &plan,
        verdict: &verdict,
        identity: &identity,
        first_run: baseline.is_none(),
        mappings: &mappings,
        context: Default::default(),
        policy: None,
    };
    let diagnostics = resolution
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.code.as_str(), d.message))
        .collect();
    (
        text(&report, false),
        markdown(&report),
        json(&report),
        diagnostics,
    )
}

#[test]
fn plan_cases() {
    insta::glob!("cases/plan/*.yaml", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let case = config::yaml::parse("case.yaml", &source)
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
            .value;
        let repository = repository(&case);
        let directory = directory(&case);
        let live = live(&case, &repository);
        let apps = apps(&case);
        let baseline = baseline(&case, &directory);
        let (text, markdown, json, diagnostics) =
            render(&repository, &directory, &live, &apps, baseline.as_ref());

        // The same inputs in another order give byte-identical output in every format.
        let mut shuffled_directory = directory.clone();
        shuffled_directory.people.reverse();
        shuffled_directory.groups.reverse();
        let mut shuffled_live = live.clone();
        shuffled_live.users.reverse();
        shuffled_live.usergroups.reverse();
        shuffled_live.channels.reverse();
        for group in &mut shuffled_live.usergroups {
            group.members.reverse();
        }
        let again = render(
            &repository,
            &shuffled_directory.normalise(),
            &shuffled_live,
            &apps.iter().rev().cloned().collect::<Vec<_>>(),
            baseline.as_ref(),
        );
        assert_eq!(again.0, text, "text is deterministic");
        assert_eq!(again.1, markdown, "markdown is deterministic");
        assert_eq!(again.2, json, "json is deterministic");

        let what = source.lines().next().unwrap_or_default();
        let mut snapshot = format!("{what}\n\n--- text\n{text}\n--- markdown\n{markdown}");
        if !diagnostics.is_empty() {
            snapshot = format!("{snapshot}\n--- identity\n{}\n", diagnostics.join("\n"));
        }
        if case["json"].as_bool() == Some(true) {
            snapshot = format!("{snapshot}\n--- json\n{json}");
        }
        insta::assert_snapshot!(snapshot);
    });
}
