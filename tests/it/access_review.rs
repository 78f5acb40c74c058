//! `export access-review` and `history` against the emulator, through the binary: Acme
//! applied from a commit, then a leaver and a mover in the identity provider applied from
//! a second commit, then a member added by hand in Slack. The export must show the
//! leaver's evidence from the journal, the mover's new usergroup granted by the rule at
//! the second commit since the second run, and the hand-added member as an exception, in
//! every format; the HTML page is checked in a real headless Chromium.

use crate::common;

use crate::common::org::Org;
use serde_json::Value;
use slack_gitops::review::AccessReview;

const MOVER: &str = "aisha.stroustrup@acme.example";
const LEAVER: &str = "amara.sparckjones@acme.example";
const HAND_ADDED: &str = "ada.clarke@acme.example";

/// Moves a person from one IdP group to another in the directory export.
fn move_between_groups(text: &str, email: &str, from: &str, to: &str) -> String {
    let groups = text.find("\ngroups:").unwrap();
    let (people, groups_text) = text.split_at(groups);
    let mut out = String::new();
    let mut current = String::new();
    for line in groups_text.split_inclusive('\n') {
        if let Some(name) = line.trim().strip_prefix("- name: ") {
            current = name.trim().to_string();
        }
        if current == from && line.trim() == format!("- {email}") {
            continue;
        }
        out.push_str(line);
        if current == to && line.trim() == "members:" {
            out.push_str(&format!("      - {email}\n"));
        }
    }
    format!("{people}{out}")
}

struct Scenario {
    org: Org,
    second_commit: String,
}

/// Acme applied twice (the second time with a leaver and a mover), then a hand-added
/// usergroup member.
async fn scenario() -> Scenario {
    let org = Org::new(|_| {}).await;
    let (code, out, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{out}{err}");
    let directory = org.repo.join("identity/directory.yaml");
    let text = std::fs::read_to_string(&directory).unwrap();
    let text = move_between_groups(&text, MOVER, "eng-backend", "eng-mobile");
    std::fs::write(&directory, common::suspend(&text, LEAVER)).unwrap();
    let second_commit = org.merge("a leaver and a mover");
    let (code, out, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("deactivate-user {LEAVER}: done")),
        "{out}"
    );

    // Someone adds a person to @mobile by hand in Slack.
    org.add_by_hand("mobile", HAND_ADDED).await;
    Scenario { org, second_commit }
}

impl Scenario {
    async fn export(&self, format: &str, out: &std::path::Path) {
        let (code, stdout, err) = self
            .org
            .run(&[
                "export",
                "access-review",
                self.org.repo_arg(),
                "--state",
                self.org.state.to_str().unwrap(),
                "--format",
                format,
                "--out",
                out.to_str().unwrap(),
            ])
            .await;
        assert_eq!(code, 0, "{stdout}{err}");
    }
}

fn row<'a>(
    review: &'a AccessReview,
    email: &str,
    kind: &str,
    name: &str,
) -> &'a slack_gitops::review::Entitlement {
    review
        .entitlements
        .iter()
        .find(|r| r.email == email && r.kind == kind && r.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name} row for {email}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_review_shows_provenance_exceptions_and_leaver_evidence_in_every_format() {
    let scenario = scenario().await;
    let dir = scenario.org.temp.path();
    let json_path = dir.join("review.json");
    scenario.export("json", &json_path).await;
    let text = std::fs::read_to_string(&json_path).unwrap();

    // The JSON validates against its schema, and its digest verifies, and stops
    // verifying when a row changes.
    let value: Value = serde_json::from_str(&text).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture("schema/access-review.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let review: AccessReview = serde_json::from_value(value).unwrap();
    assert!(review.verify());
    let mut tampered = review.clone();
    tampered.entitlements[0].status = "granted by rule".into();
    tampered.entitlements[0].email.push('x');
    assert!(!tampered.verify());
    assert_eq!(review.header.commit, scenario.second_commit);

    // The mover: @mobile since the second run, by the rule at the second commit.
    let moved = row(&review, MOVER, "usergroup", "@mobile");
    assert_eq!(moved.status, "granted by rule");
    assert_eq!(
        moved.rule.as_deref(),
        Some(
            format!(
                "mappings/engineering.yaml:48@{}",
                &scenario.second_commit[..12]
            )
            .as_str()
        )
    );
    assert_eq!(moved.via, ["eng-mobile"]);
    let change = moved.last_change.as_ref().unwrap();
    assert_eq!((change.run, change.change.as_str()), (2, "granted"));
    assert_eq!(
        change.commit.as_deref(),
        Some(scenario.second_commit.as_str())
    );
    assert_eq!(moved.granted_since, change.at);
    assert!(
        !review
            .entitlements
            .iter()
            .any(|r| r.email == MOVER && r.name == "@backend")
    );
    // Access older than the store is "before" its first run.
    let old = row(
        &review,
        "alan.borg@acme.example",
        "org",
        "T0000MAIN,T0000SUPP",
    );
    assert!(old.granted_since.starts_with("before "), "{old:?}");

    // The hand-added member is an exception.
    let hand = row(&review, HAND_ADDED, "usergroup", "@mobile");
    assert_eq!(hand.status, "exception");
    assert!(hand.note.contains("added by hand"), "{}", hand.note);

    // The leaver: real timestamps from the journal, within the SLA, run 2 at commit 2;
    // no access left.
    let leaver = review.leavers.iter().find(|l| l.email == LEAVER).unwrap();
    assert_eq!(leaver.left_in_idp, "suspended");
    assert!(leaver.deactivated.is_some() && leaver.signed_out.is_some());
    assert!(leaver.first_seen <= *leaver.deactivated.as_ref().unwrap());
    assert!(leaver.seconds_to_signed_out.unwrap() >= leaver.seconds_to_deactivation.unwrap());
    assert_eq!(leaver.within_sla, Some(true));
    assert_eq!(leaver.run, Some(2));
    assert_eq!(
        leaver.commit.as_deref(),
        Some(scenario.second_commit.as_str())
    );
    assert_eq!(review.leaver_summary.leavers, 4);
    assert_eq!(review.leaver_summary.within_sla, 4);
    assert!(!review.entitlements.iter().any(|r| r.email == LEAVER));
    assert!(
        review
            .out_of_scope
            .iter()
            .any(|o| o.name == "#random" && o.members.is_some())
    );

    // CSV: the documented columns, the same rows and the same digest.
    let csv_dir = dir.join("csv");
    scenario.export("csv", &csv_dir).await;
    let mut reader = csv::Reader::from_path(csv_dir.join("entitlements.csv")).unwrap();
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(headers, slack_gitops::render::review::ENTITLEMENT_COLUMNS);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), review.entitlements.len());
    let mover_row = records
        .iter()
        .find(|r| &r[0] == MOVER && &r[8] == "@mobile")
        .unwrap();
    assert_eq!(&mover_row[13], "eng-mobile");
    let mut leavers = csv::Reader::from_path(csv_dir.join("leavers.csv")).unwrap();
    assert_eq!(leavers.records().count(), review.leavers.len());
    let digest = std::fs::read_to_string(csv_dir.join("digest.txt")).unwrap();
    assert!(digest.starts_with(&review.digest), "{digest}");

    // history answers "when did this person get into @mobile, and why".
    let (code, out, _) = scenario
        .org
        .run(&[
            "history",
            scenario.org.repo_arg(),
            "--person",
            MOVER,
            "--state",
            scenario.org.state.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 0);
    let line = out.lines().find(|l| l.contains("/@mobile")).unwrap();
    assert!(
        line.contains("granted")
            && line.contains("by mappings/engineering.yaml:48")
            && line.contains("(run 2, commit"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("removed") && l.contains("/@backend")),
        "{out}"
    );

    // A reader that stops reading (`| head`) ends the command quietly, never a panic.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .args([
            "history",
            scenario.org.repo_arg(),
            "--person",
            MOVER,
            "--state",
        ])
        .arg(&scenario.org.state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A mistyped --state is an error, never an empty record: evidence does not silently
    // come from a store that was never written.
    let typo = scenario.org.state.with_file_name("slack-gitop.db");
    for args in [
        vec!["history", scenario.org.repo_arg(), "--person", MOVER],
        vec![
            "export",
            "access-review",
            scenario.org.repo_arg(),
            "--format",
            "json",
        ],
    ] {
        let mut args = args.clone();
        args.extend(["--state", typo.to_str().unwrap()]);
        let (code, out, err) = scenario.org.run(&args).await;
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(err.contains("does not exist"), "{args:?}: {err}");
        assert!(!typo.exists(), "{args:?} created the mistyped store");
    }

    // HTML: a real headless Chromium renders it without console errors; the figures on
    // the page are the JSON's; the status filter shows exactly the exceptions.
    let html = dir.join("review.html");
    scenario.export("html", &html).await;
    let page = std::fs::read_to_string(&html).unwrap();
    // Self-contained: nothing is fetched (the header names the Slack URL as text only).
    for outside in [
        "<link",
        "<script src",
        "<img",
        "url(",
        "@import",
        "src=\"http",
    ] {
        assert!(
            !page.contains(outside),
            "the page loads something: {outside}"
        );
    }
    let (dom, console) = chromium_dom(&html, "status=exception");
    for (id, figure) in [
        ("people", review.summary.people),
        ("entitlements", review.summary.entitlements),
        ("exceptions", review.summary.exceptions),
        ("leavers", review.leaver_summary.leavers),
        ("breaches", review.leaver_summary.breaches),
    ] {
        assert!(
            dom.contains(&format!("id=\"count-{id}\">{figure}<")),
            "{id} is not {figure} on the page"
        );
    }
    let table = &dom[dom.find("id=\"entitlements\"").unwrap()..];
    let visible = table.matches("<tr class=").count() - table.matches(" hidden=\"\"").count();
    assert_eq!(
        visible as u64, review.summary.exceptions,
        "the filter shows the exceptions only"
    );
    assert!(dom.contains(&format!(
        "<span id=\"shown\">{}</span>",
        review.summary.exceptions
    )));
    assert!(!console.contains("Uncaught"), "{console}");
}

/// The DOM of a page after its scripts ran in headless Chromium, and what it logged.
fn chromium_dom(page: &std::path::Path, hash: &str) -> (String, String) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Chromium is needed for the HTML report test: apt-get install chromium (.ci/run installs it)");
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=2000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}#{hash}", page.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
