//! Incremental identity reads: Okta's System Log and Graph's delta queries followed from
//! a kept directory, against the emulator crate's Okta and Graph fakes. A read after
//! changes makes a handful of calls and gives the same directory a full read gives; a
//! cursor the provider refuses, or one older than the System Log keeps, is a full read
//! with its reason; `plan --state` keeps the directory in the state store and plans the
//! same as a full read.

use std::collections::BTreeSet;

use slack_emulator::idp::{Idp, Standing};
use slack_gitops::identity::Source;
use slack_gitops::identity::entra::EntraSource;
use slack_gitops::identity::kept::HowRead;
use slack_gitops::identity::okta::OktaSource;
use slack_gitops::model::directory::{Directory, Group, Person, PersonStatus};

use crate::common::{self, org::Org};

fn email(n: usize) -> String {
    format!("p{n}@org.example")
}

/// `people` people in leaf groups of 20, and a parent group over every ten leaves.
fn generated(people: usize) -> Directory {
    let leaves = people / 20;
    let mut groups: Vec<Group> = (0..leaves)
        .map(|g| Group {
            name: format!("g{g}"),
            description: format!("leaf {g}"),
            members: (0..20).map(|m| email(g * 20 + m)).collect(),
            groups: Vec::new(),
        })
        .collect();
    groups.extend((0..leaves.div_ceil(10)).map(|p| {
        Group {
            name: format!("parent{p}"),
            description: String::new(),
            members: Vec::new(),
            groups: (p * 10..(p * 10 + 10).min(leaves))
                .map(|g| format!("g{g}"))
                .collect(),
        }
    }));
    Directory {
        source: "generated".into(),
        people: (0..people)
            .map(|n| Person {
                email: email(n),
                given_name: format!("P{n}"),
                family_name: "Person".into(),
                title: "Engineer".into(),
                department: "Engineering".into(),
                manager: (n > 0).then(|| email(0)),
                status: PersonStatus::Active,
            })
            .collect(),
        groups,
    }
    .normalise()
}

/// The groups the config names: every even leaf and the first parent.
fn wanted(people: usize) -> BTreeSet<String> {
    let mut wanted: BTreeSet<String> = (0..people / 20)
        .step_by(2)
        .map(|g| format!("g{g}"))
        .collect();
    wanted.insert("parent0".into());
    wanted
}

/// Ten changes of the kinds the feeds report: members added and removed (in groups the
/// config reads and one it does not), a suspension, a deactivation, a new title, a joiner
/// and their first group.
fn ten_changes(idp: &Idp) {
    idp.add_member("g0", &email(45));
    idp.remove_member("g2", &email(41));
    idp.add_member("g1", &email(80)); // a group whose members are not read
    idp.remove_member("g4", &email(82));
    idp.set_standing(&email(10), Standing::Suspended);
    idp.set_standing(&email(11), Standing::Deactivated);
    idp.set_title(&email(12), "Staff Engineer");
    idp.add_person(Person {
        email: "joiner@org.example".into(),
        given_name: "Jo".into(),
        family_name: "Iner".into(),
        title: "Engineer".into(),
        department: "Engineering".into(),
        manager: Some(email(0)),
        status: PersonStatus::Active,
    });
    idp.add_member("g6", "joiner@org.example");
    idp.add_member("g3", &email(0)); // a leaf under parent0, not read itself
}

fn okta(base: &str, people: usize) -> Source {
    Source::Okta(
        OktaSource::new(base.into(), "okta-token".into()).reading_members_of(wanted(people)),
    )
}

fn entra(base: &str, people: usize) -> Source {
    Source::Entra(
        EntraSource::new(
            "tenant".into(),
            "client".into(),
            "secret".into(),
            Some(base.into()),
        )
        .reading_members_of(wanted(people)),
    )
}

/// A full read, ten changes, then a read from what the first kept: a few calls, and the
/// directory a fresh full read gives. A read with nothing new costs one or two calls.
async fn reads_only_what_changed(source: impl Fn() -> Source, idp: &Idp, most_calls: u64) {
    let first = source().read_keeping(None, None).await.unwrap();
    assert!(matches!(first.how, HowRead::Full { .. }), "{:?}", first.how);
    assert!(
        first.calls > 30,
        "a full read lists every member: {}",
        first.calls
    );
    ten_changes(idp);
    idp.take_requests();
    let second = source()
        .read_keeping(first.kept.as_deref(), None)
        .await
        .unwrap();
    let requests = idp.take_requests();
    assert_eq!(second.how, HowRead::Incremental { changes: 10 });
    assert!(
        second.calls <= most_calls && requests.len() as u64 == second.calls,
        "{} calls: {requests:#?}",
        second.calls
    );
    let full = source().read().await.unwrap();
    assert_eq!(
        second.directory, full,
        "the incremental read differs from a full read"
    );
    let joiner = full.people.iter().find(|p| p.email == "joiner@org.example");
    assert!(joiner.is_some(), "the joiner is read");
    let third = source()
        .read_keeping(second.kept.as_deref(), None)
        .await
        .unwrap();
    assert_eq!(third.how, HowRead::Incremental { changes: 0 });
    assert!(third.calls <= 3, "{} calls with nothing new", third.calls);
    assert_eq!(third.directory, full);
}

#[tokio::test(flavor = "multi_thread")]
async fn okta_follows_the_system_log_and_reads_what_a_full_read_reads() {
    let (base, idp) = common::okta::serve(generated(2_000)).await;
    // Two calls per person named (the user and their groups), and the log's two pages.
    reads_only_what_changed(|| okta(&base, 2_000), &idp, 20).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_follows_delta_links_and_reads_what_a_full_read_reads() {
    let (base, idp) = common::okta::serve_graph(generated(2_000)).await;
    // The token, a page of each delta round, and one read per changed user.
    reads_only_what_changed(|| entra(&base, 2_000), &idp, 10).await;
}

/// An expired cursor (Okta refuses the `since`; Graph answers 410) is a full read that
/// says why, and the read after it follows the new cursor.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_cursor_is_a_full_read_with_its_reason() {
    for graph in [false, true] {
        let (base, idp) = if graph {
            common::okta::serve_graph(generated(400)).await
        } else {
            common::okta::serve(generated(400)).await
        };
        let source = || {
            if graph {
                entra(&base, 400)
            } else {
                okta(&base, 400)
            }
        };
        let first = source().read_keeping(None, None).await.unwrap();
        idp.add_member("g0", &email(30));
        idp.expire_cursors();
        let second = source()
            .read_keeping(first.kept.as_deref(), None)
            .await
            .unwrap();
        let HowRead::Full { reason } = &second.how else {
            panic!("{:?}", second.how)
        };
        let expected = if graph { "HTTP 410" } else { "HTTP 400" };
        assert!(reason.contains(expected), "{reason}");
        assert_eq!(second.directory, source().read().await.unwrap());
        idp.add_member("g0", &email(31));
        let third = source()
            .read_keeping(second.kept.as_deref(), None)
            .await
            .unwrap();
        // Okta's cursor after a full read starts a few minutes early (events reach the
        // log late), so the change made before the expiry may be seen again.
        assert!(
            matches!(third.how, HowRead::Incremental { changes: 1 | 2 }),
            "graph: {graph}: {:?}",
            third.how
        );
        assert_eq!(third.directory, source().read().await.unwrap());
    }
}

/// A System Log cursor older than the log's 90 days is read in full without asking.
#[tokio::test(flavor = "multi_thread")]
async fn an_okta_cursor_older_than_the_retention_is_a_full_read() {
    let (base, idp) = common::okta::serve(generated(400)).await;
    let first = okta(&base, 400).read_keeping(None, None).await.unwrap();
    let mut kept: serde_json::Value = serde_json::from_str(first.kept.as_deref().unwrap()).unwrap();
    let since = kept["kept"]["since"].as_f64().unwrap();
    kept["kept"]["since"] = serde_json::json!(since - 100.0 * 86_400.0);
    idp.take_requests();
    let second = okta(&base, 400)
        .read_keeping(Some(&kept.to_string()), None)
        .await
        .unwrap();
    assert_eq!(
        second.how,
        HowRead::Full {
            reason: "the System Log cursor is older than the log's 90-day retention".into()
        }
    );
    let requests = idp.take_requests();
    assert!(
        !requests.iter().any(|r| r.starts_with("/api/v1/logs")),
        "{requests:?}"
    );
    // A document of another format, or none, is a full read too.
    let other = okta(&base, 400)
        .read_keeping(Some("{\"format\":0}"), None)
        .await
        .unwrap();
    assert!(matches!(other.how, HowRead::Full { reason } if reason.contains("another format")));
}

/// `plan --state` through Okta: the first plan reads in full and keeps the directory in
/// the store; after ten changes in Okta the second reads the System Log and the people it
/// names (a few dozen calls at most), and plans exactly what a plan without the store
/// (a full read) plans. An expired cursor is a full read with a warning.
#[tokio::test(flavor = "multi_thread")]
async fn plan_with_a_state_store_reads_okta_incrementally_and_plans_the_same() {
    let org = Org::new(|_| {}).await;
    let directory = {
        use slack_gitops::identity::IdentitySource;
        slack_gitops::identity::file::FileSource::new(org.repo.join("identity/directory.yaml"))
            .read()
            .await
            .unwrap()
    };
    let (base, idp) = common::okta::serve(directory.clone()).await;
    common::edit(
        &org.repo.join("slack-gitops.yaml"),
        "  source: file\n  path: identity/directory.yaml\n",
        &format!("  source: okta\n  url: {base}\n  token_env: OKTA_TOKEN\n"),
    );
    let state = org.state.to_str().unwrap();
    let plan = |with_state: bool| {
        let mut args = vec!["plan", org.repo_arg(), "--format", "json"];
        if with_state {
            args.extend(["--state", state]);
        }
        let child = org.spawn_with(&args, &[("OKTA_TOKEN", "okta-token")]);
        async move {
            let output = child.wait_with_output().await.unwrap();
            let stderr = String::from_utf8(output.stderr).unwrap();
            assert!(matches!(output.status.code(), Some(0 | 2)), "{stderr}");
            let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            (plan, stderr)
        }
    };
    std::fs::create_dir_all(org.state.parent().unwrap()).unwrap();
    let (_, first) = plan(true).await;
    assert!(
        first.contains("identity provider read in full (nothing was kept from an earlier read): ")
            && first.contains(" skipped (no mapping names them); "),
        "{first}"
    );
    // Ten changes: people moved between groups the mappings use, a suspension, a
    // deactivation, a new title.
    let members = |name: &str| {
        directory
            .groups
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.members.clone())
            .unwrap()
    };
    let backend = members("eng-backend");
    let frontend = members("eng-frontend");
    for person in &backend[..3] {
        idp.remove_member("eng-backend", person);
        idp.add_member("eng-frontend", person);
    }
    idp.remove_member("eng-frontend", &frontend[0]);
    idp.set_standing(&members("sales-emea")[0], Standing::Suspended);
    idp.set_standing(&members("marketing")[0], Standing::Deactivated);
    idp.set_title(&members("support-tier1")[0], "Support Lead");
    idp.take_requests();
    let (incremental, second) = plan(true).await;
    let calls = idp.take_requests();
    assert!(
        second.contains("read incrementally (10 changes"),
        "{second}"
    );
    assert!(calls.len() <= 30, "{} calls: {calls:#?}", calls.len());
    assert!(
        calls.iter().any(|c| c.starts_with("/api/v1/logs"))
            && !calls.iter().any(|c| c.ends_with("/users?limit=1000")),
        "the System Log and the people it names, no member listing: {calls:#?}"
    );
    let (full, _) = plan(false).await;
    for field in ["hash", "changes", "identity"] {
        assert_eq!(incremental[field], full[field], "{field}");
    }
    assert!(
        incremental["changes"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "the changes are planned: {incremental}"
    );
    idp.expire_cursors();
    let (after_expiry, third) = plan(true).await;
    assert!(
        third.contains("WARN")
            && third.contains("reading it in full")
            && third.contains("HTTP 400"),
        "{third}"
    );
    assert_eq!(after_expiry["hash"], full["hash"]);
}
