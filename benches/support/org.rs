//! A generated org for the planning and access-review benchmarks: 20,000 IdP groups
//! nested up to five deep, 5,000 usergroups, 50,000 channels (scaled down with the org),
//! and live Slack with about 5% drift.

use slack_gitops::config::{self, SourceFile};
use slack_gitops::model::directory::{Directory, Group, Person, PersonStatus};
use slack_gitops::model::live::{Live, LiveChannel, LiveUser, LiveUsergroup};

pub struct Org {
    pub repository: config::Repository,
    pub directory: Directory,
    /// Live Slack (not read by the identity benchmark).
    #[allow(dead_code)]
    pub live: Live,
    /// What building each took in resident memory (KiB): the directory, and live Slack
    /// (read by the planning benchmark only).
    #[allow(dead_code)]
    pub directory_kib: u64,
    #[allow(dead_code)]
    pub live_kib: u64,
}

pub fn generate(people: usize) -> Org {
    let at_start = status_kib("VmRSS:");
    let groups = (people / 10).min(20_000);
    let usergroups = (people / 40).min(5_000);
    let channels = (people / 4).min(50_000);
    let email = |n: usize| format!("p{n}@org.example");
    // Leaf groups hold people; every level up holds ten groups of the level below.
    let leaves = groups * 9 / 10;
    let mut directory_groups: Vec<Group> = (0..leaves)
        .map(|g| Group {
            name: format!("g{g}"),
            description: String::new(),
            members: (0..people / leaves)
                .map(|m| email(g * (people / leaves) + m))
                .collect(),
            groups: Vec::new(),
        })
        .collect();
    let mut level: Vec<String> = (0..leaves).map(|g| format!("g{g}")).collect();
    let mut next_id = leaves;
    for _ in 0..4 {
        if level.len() <= 1 || next_id >= groups {
            break;
        }
        let parents: Vec<Group> = level
            .chunks(10)
            .map(|chunk| {
                next_id += 1;
                Group {
                    name: format!("g{next_id}"),
                    description: String::new(),
                    members: Vec::new(),
                    groups: chunk.to_vec(),
                }
            })
            .collect();
        level = parents.iter().map(|g| g.name.clone()).collect();
        directory_groups.extend(parents);
    }
    directory_groups.push(Group {
        name: "everyone".into(),
        description: String::new(),
        members: Vec::new(),
        groups: level,
    });
    let directory = Directory {
        source: "generated".into(),
        people: (0..people)
            .map(|n| Person {
                email: email(n),
                given_name: "P".into(),
                family_name: n.to_string(),
                title: String::new(),
                department: String::new(),
                manager: None,
                status: if n % 100 == 0 {
                    PersonStatus::Suspended
                } else {
                    PersonStatus::Active
                },
            })
            .collect(),
        groups: directory_groups,
    }
    .normalise();
    let directory_kib = status_kib("VmRSS:").saturating_sub(at_start);

    let mut files = vec![SourceFile {
        path: "slack-gitops.yaml".into(),
        bytes: b"apiVersion: slack-gitops/v1\nkind: Config\nslack:\n  plan: enterprise-grid\n  workspaces: { main: T0000MAIN }\nidentity:\n  source: file\n  path: d.yaml\nusers:\n  provisioning: eager\n  scope: [everyone]\n".to_vec(),
    }];
    let per_file = 25;
    for file in 0..usergroups.div_ceil(per_file) {
        let mut text = String::from("apiVersion: slack-gitops/v1\nkind: Mappings\nusergroups:\n");
        for u in file * per_file..((file + 1) * per_file).min(usergroups) {
            text.push_str(&format!(
                "  - handle: team-{u}\n    name: Team {u}\n    workspaces: [main]\n    members: {{ groups: [g{}] }}\n    channels: [c{u}]\n",
                (u * 7) % leaves
            ));
        }
        text.push_str("channels:\n");
        for c in (file * per_file..((file + 1) * per_file).min(usergroups)).map(|u| u + usergroups)
        {
            text.push_str(&format!(
                "  - name: c{c}\n    workspace: main\n    members: {{ groups: [g{}] }}\n",
                (c * 3) % leaves
            ));
        }
        files.push(SourceFile {
            path: format!("mappings/m{file:04}.yaml"),
            bytes: text.into_bytes(),
        });
    }
    files.push(SourceFile {
        path: "policies/p.yaml".into(),
        bytes:
            b"apiVersion: slack-gitops/v1\nkind: Policy\nlimits:\n  deactivate: { max: 100000 }\n"
                .to_vec(),
    });
    let loaded = config::load(&files, None);
    assert!(
        loaded.diagnostics.is_empty(),
        "{:?}",
        loaded.diagnostics.first()
    );
    let repository = loaded.repository.unwrap();

    // Live: everyone has an account (5% drift in memberships), plus the channels.
    let resolution = directory.resolve();
    let before_live = status_kib("VmRSS:");
    let id = |n: usize| format!("W{n:08}");
    let users: Vec<LiveUser> = (0..people)
        .map(|n| LiveUser {
            id: id(n),
            email: email(n),
            user_name: format!("p{n}"),
            given_name: "P".into(),
            family_name: n.to_string(),
            title: String::new(),
            department: String::new(),
            manager: None,
            active: true,
            admin: false,
            owner: false,
            primary_owner: false,
            guest: None,
            bot: false,
            workspaces: vec!["T0000MAIN".into()],
        })
        .collect();
    let members_of = |group: &str| -> Vec<String> {
        let emails = resolution.member_emails(group);
        emails
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 20 != 0)
            .map(|(_, e)| id(e[1..e.find('@').unwrap()].parse().unwrap()))
            .collect()
    };
    let live_usergroups = (0..usergroups)
        .map(|u| LiveUsergroup {
            id: format!("S{u:08}"),
            workspace: "T0000MAIN".into(),
            handle: format!("team-{u}"),
            name: format!("Team {u}"),
            description: String::new(),
            members: members_of(&format!("g{}", (u * 7) % leaves)),
            channels: Vec::new(),
            disabled: false,
        })
        .collect();
    let live_channels = (0..channels)
        .map(|c| LiveChannel {
            id: format!("C{c:08}"),
            workspace: "T0000MAIN".into(),
            name: format!("c{c}"),
            private: false,
            archived: false,
            members: (c < 2 * usergroups).then(|| members_of(&format!("g{}", (c * 3) % leaves))),
            num_members: None,
        })
        .collect();
    let live = Live {
        users,
        usergroups: live_usergroups,
        channels: live_channels,
        ..Default::default()
    };
    let live_kib = status_kib("VmRSS:").saturating_sub(before_live);
    Org {
        repository,
        directory,
        live,
        directory_kib,
        live_kib,
    }
}

/// A line from /proc/self/status, in KiB (Linux only; 0 elsewhere).
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
