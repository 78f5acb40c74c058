//! The imported mappings as YAML someone would write by hand: one file per team (or
//! workspace, or one file), usergroups then channels, keys in the documented order, flow
//! lists for short lists, and comments with the evidence for each rule. The same input
//! writes the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{
    Adoption, ChannelOut, Imported, Options, Org, Report, SplitBy, Unmanaged, UsergroupOut,
};
use crate::model::directory::PersonId;
use crate::model::live::Live;

/// The policy written when the repository has none: adoption starts cautious, and the
/// account the tool acts as and the primary owner are never deactivated or removed.
fn default_policy(options: &Options, live: &Live) -> String {
    let mut text = String::from(
        "\
# Written by `slack-gitops import`: the guardrails an adoption starts with. Tighten or
# loosen them in a reviewed change once the first syncs have run.
apiVersion: slack-gitops/v1
kind: Policy
limits:
  deactivate: { max: 10, max_percent: 2 }
  remove_from_usergroup: { max: 100, max_percent: 10 }
  remove_from_channel: { max: 100 }
",
    );
    let protect = options.starting_protected(live);
    if !protect.is_empty() {
        text.push_str("protected:\n  users:\n");
        for email in protect {
            let owner = live
                .users
                .iter()
                .any(|u| u.primary_owner && u.email == email);
            let why = if owner {
                "the primary owner (Slack never deactivates them)"
            } else {
                "the account slack-gitops acts as"
            };
            let _ = writeln!(text, "    - {}   # {why}", scalar(&email));
        }
    }
    text.push_str(
        "\
identity:
  max_shrink: { max: 50, max_percent: 5 }
drift: { every: 15m, action: report }
",
    );
    text
}

/// What a starting `slack-gitops.yaml` says, from `import`'s flags.
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// `enterprise-grid` or `business-plus`.
    pub plan: String,
    /// Workspace name and team id.
    pub workspaces: Vec<(String, String)>,
    /// Environment variables of the admin and bot tokens, when not the defaults.
    pub token_env: Option<String>,
    pub bot_token_env: Option<String>,
    /// The `identity` keys (`source`, `path`, `url`, `token_env`, ...) in that order.
    pub identity: Vec<(String, String)>,
    /// `eager` or `just-in-time`.
    pub provisioning: String,
    /// The IdP groups whose members get an account.
    pub scope: Vec<String>,
}

/// A starting `slack-gitops.yaml`, in the documented key order. Not checked here: the
/// caller loads it like any config before writing it.
pub fn starting_config(start: &Start) -> String {
    let mut text = String::from(
        "# Written by `slack-gitops import`: the org, the identity source and who gets an\n\
         # account. Secrets stay in the environment variables named here.\n\
         apiVersion: slack-gitops/v1\nkind: Config\nslack:\n",
    );
    let _ = writeln!(text, "  plan: {}", scalar(&start.plan));
    text.push_str("  workspaces:\n");
    for (name, team) in &start.workspaces {
        let _ = writeln!(text, "    {}: {}", scalar(name), scalar(team));
    }
    for (key, value) in [
        ("token_env", &start.token_env),
        ("bot_token_env", &start.bot_token_env),
    ] {
        if let Some(value) = value {
            let _ = writeln!(text, "  {key}: {}", scalar(value));
        }
    }
    text.push_str("identity:\n");
    for (key, value) in &start.identity {
        let _ = writeln!(text, "  {}: {}", scalar(key), scalar(value));
    }
    text.push_str("users:\n");
    let _ = writeln!(text, "  provisioning: {}", scalar(&start.provisioning));
    let _ = writeln!(text, "  scope: {}", flow(&start.scope));
    text
}

/// The first line of every mappings file `import` writes: how it knows its own files.
pub const SIGNATURE: &str =
    "# Imported from live Slack and the identity provider by `slack-gitops import`.";

const HEADER: &str = "\
# Imported from live Slack and the identity provider by `slack-gitops import`.
# Each mapping says how much of its membership the rule explains and lists the
# exceptions; review them, then tighten the rules as the owners agree.
apiVersion: slack-gitops/v1
kind: Mappings
";

/// A file is closed once it holds this much; the next mapping opens `-2`, `-3`... so
/// that files stay reviewable and far below the loader's limit.
const FILE_BYTES: usize = 1024 * 1024;

/// One mapping's text, and its report.
struct Block {
    usergroup: bool,
    text: String,
    report: Imported,
}

/// The files and the report.
pub(super) fn files(
    org: &Org,
    options: &Options,
    usergroups: Vec<UsergroupOut>,
    channels: Vec<ChannelOut>,
    mut unmanaged: Vec<Unmanaged>,
) -> Adoption {
    let mut by_key: BTreeMap<String, Vec<Block>> = BTreeMap::new();
    for group in usergroups {
        let key = file_key(options.split_by, &group.handle, &group.workspaces[0]);
        let mut text = String::new();
        usergroup(&mut text, org, &group);
        let report = group.report;
        by_key.entry(key).or_default().push(Block {
            usergroup: true,
            text,
            report,
        });
    }
    for channel in channels {
        let key = file_key(options.split_by, &channel.name, &channel.workspace);
        let mut text = String::new();
        channel_entry(&mut text, org, &channel);
        let report = channel.report;
        by_key.entry(key).or_default().push(Block {
            usergroup: false,
            text,
            report,
        });
    }
    let mut report = Report::default();
    let mut files = Vec::new();
    let mut taken = options.taken.clone();
    for (key, blocks) in by_key {
        let mut part: Vec<Block> = Vec::new();
        let mut size = 0;
        for block in blocks {
            if block.text.len() + HEADER.len() + 32 > crate::config::MAX_FILE_BYTES {
                // Too long to list even alone: left for the owners to map.
                let (target, workspace) = (&block.report.target, &block.report.workspaces[0]);
                unmanaged.push(Unmanaged {
                    target: target.clone(),
                    workspace: workspace.clone(),
                    why: "its membership, listed by name, is over the 4 MiB a config file may be"
                        .into(),
                });
                continue;
            }
            if size + block.text.len() > FILE_BYTES && !part.is_empty() {
                let path = free_path(&key, &taken);
                taken.insert(path.clone());
                close(&mut files, &mut report, path, std::mem::take(&mut part));
                size = 0;
            }
            size += block.text.len();
            part.push(block);
        }
        if !part.is_empty() {
            let path = free_path(&key, &taken);
            taken.insert(path.clone());
            close(&mut files, &mut report, path, part);
        }
    }
    if options.writes_starting_policy(org.repository) {
        let path = "policies/default.yaml".to_string();
        report.files.push(path.clone());
        files.push((path, default_policy(options, org.live)));
    }
    unmanaged.sort();
    report.unmanaged = unmanaged;
    Adoption { files, report }
}

/// Writes `blocks` (usergroups first, then channels, as they came) into the file `path`.
fn close(files: &mut Vec<(String, String)>, report: &mut Report, path: String, blocks: Vec<Block>) {
    let mut text = String::from(HEADER);
    let (groups, channels): (Vec<Block>, Vec<Block>) =
        blocks.into_iter().partition(|b| b.usergroup);
    for (key, list) in [("usergroups", &groups), ("channels", &channels)] {
        if list.is_empty() {
            continue;
        }
        if text.len() > HEADER.len() {
            text.push('\n');
        }
        text.push_str(key);
        text.push_str(":\n");
        for (i, block) in list.iter().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(&block.text);
        }
    }
    for block in groups {
        report.usergroups.push(Imported {
            file: path.clone(),
            ..block.report
        });
    }
    for block in channels {
        report.channels.push(Imported {
            file: path.clone(),
            ..block.report
        });
    }
    report.files.push(path.clone());
    files.push((path, text));
}

/// `mappings/<key>.yaml`, or with `-2`, `-3`... when that is taken.
fn free_path(key: &str, taken: &BTreeSet<String>) -> String {
    let mut path = format!("mappings/{key}.yaml");
    let mut n = 2;
    while taken.contains(&path) {
        path = format!("mappings/{key}-{n}.yaml");
        n += 1;
    }
    path
}

/// The file a mapping goes to, as `split_by` says: a safe file name in any case.
fn file_key(split_by: SplitBy, name: &str, workspace: &str) -> String {
    let raw = match split_by {
        // `eng-backend` goes with `eng`; a name of one word less its number (`c123`)
        // goes with the others of that word.
        SplitBy::Prefix => name
            .split(['-', '_', '.'])
            .next()
            .map(|word| word.trim_end_matches(|c: char| c.is_ascii_digit()))
            .unwrap_or_default(),
        SplitBy::Workspace => workspace,
        SplitBy::One => "imported",
    };
    let key: String = raw
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if key.is_empty() { "misc".into() } else { key }
}

/// The evidence for a rule, as comment lines at `indent`.
fn evidence(out: &mut String, indent: &str, report: &Imported, explicit: bool) {
    let by = if report.usergroups.is_empty() {
        String::new()
    } else {
        format!(" (with the usergroups {})", report.usergroups.join(", "))
    };
    if explicit {
        let _ = writeln!(
            out,
            "{indent}# No rule explains most of its {} members{by}: the rest are listed.",
            report.members
        );
    } else {
        let _ = writeln!(
            out,
            "{indent}# The rule explains {} of {} members{by}.",
            report.explained, report.members
        );
    }
    let lists = [
        (
            &report.missed_deprovisions,
            "suspended in the identity provider (a missed deprovision; the plan deactivates them)",
        ),
        (
            &report.unknown,
            "unknown to the identity provider (the plan deactivates them)",
        ),
        (
            &report.protected,
            "not active in the identity provider but protected (the plan keeps them)",
        ),
    ];
    for (list, what) in lists {
        if !list.is_empty() {
            let _ = writeln!(
                out,
                "{indent}# {} {what}: {}",
                list.len(),
                super::shortlist(list)
            );
        }
    }
}

/// Whether no rule explains most of a membership, so that the rest is a plain list.
fn explicit(report: &Imported) -> bool {
    report.explained * 2 < report.members
}

fn usergroup(out: &mut String, org: &Org, group: &UsergroupOut) {
    let explicit = explicit(&group.report);
    evidence(out, "  ", &group.report, explicit);
    let _ = writeln!(out, "  - handle: {}", scalar(&group.handle));
    let _ = writeln!(out, "    name: {}", scalar(&group.name));
    if !group.description.is_empty() {
        let _ = writeln!(out, "    description: {}", scalar(&group.description));
    }
    let _ = writeln!(out, "    workspaces: {}", flow(&group.workspaces));
    out.push_str("    members:\n");
    members(out, org, "      ", &group.rule, explicit);
    if !group.channels.is_empty() {
        let _ = writeln!(out, "    channels: {}", flow(&group.channels));
    }
}

fn channel_entry(out: &mut String, org: &Org, channel: &ChannelOut) {
    let explicit = explicit(&channel.report);
    evidence(out, "  ", &channel.report, explicit);
    let _ = writeln!(out, "  - name: {}", scalar(&channel.name));
    let _ = writeln!(out, "    workspace: {}", scalar(&channel.workspace));
    if channel.private {
        out.push_str("    private: true\n");
    }
    let rule = &channel.rule;
    if !(rule.groups.is_empty() && rule.users.is_empty()) {
        out.push_str("    members:\n");
        members(out, org, "      ", rule, explicit);
    }
}

/// A `members:` block's keys at `indent`.
fn members(out: &mut String, org: &Org, indent: &str, rule: &super::Inferred, explicit: bool) {
    let names = |groups: &[u32]| -> Vec<String> {
        groups
            .iter()
            .map(|&g| org.groups.name(g).to_string())
            .collect()
    };
    if !rule.groups.is_empty() {
        let _ = writeln!(out, "{indent}groups: {}", flow(&names(&rule.groups)));
    }
    if !rule.exclude.is_empty() {
        let _ = writeln!(out, "{indent}exclude: {}", flow(&names(&rule.exclude)));
    }
    let why = (!explicit).then_some("in no group of the rule: probably added by hand");
    people(out, org, indent, "users", &rule.users, why);
    let why = Some("selected by the groups, not a member");
    people(out, org, indent, "exclude_users", &rule.exclude_users, why);
}

/// A list of people, one per line, each with `why` as a comment when given.
fn people(
    out: &mut String,
    org: &Org,
    indent: &str,
    key: &str,
    ids: &[PersonId],
    why: Option<&str>,
) {
    if ids.is_empty() {
        return;
    }
    let _ = writeln!(out, "{indent}{key}:");
    for &id in ids {
        let email = scalar(org.resolution.email(id));
        match why {
            Some(why) => {
                let _ = writeln!(out, "{indent}  - {email}  # {why}");
            }
            None => {
                let _ = writeln!(out, "{indent}  - {email}");
            }
        }
    }
}

/// `[a, b, c]`.
fn flow(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| scalar(i)).collect();
    format!("[{}]", items.join(", "))
}

/// A YAML scalar: plain when that reads back as the same string in block and flow
/// context, else double-quoted (a JSON string is a valid YAML double-quoted scalar).
pub fn scalar(text: &str) -> String {
    if plain(text) {
        text.to_string()
    } else {
        serde_json::to_string(text).expect("a string serialises")
    }
}

fn plain(text: &str) -> bool {
    const WORDS: [&str; 12] = [
        "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~", "nan", "inf",
    ];
    let Some(first) = text.chars().next() else {
        return false;
    };
    first.is_ascii_alphabetic()
        && !text.ends_with(' ')
        && !text.contains(" #")
        && text.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    ' ' | '-' | '_' | '.' | '@' | '/' | '(' | ')' | '\'' | '+'
                )
        })
        && !WORDS.contains(&text.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::scalar;

    #[test]
    fn the_signature_opens_the_header() {
        assert!(super::HEADER.starts_with(super::SIGNATURE));
    }

    #[test]
    fn scalars_are_plain_only_when_they_read_back_the_same() {
        assert_eq!(scalar("eng-backend"), "eng-backend");
        assert_eq!(scalar("Site reliability (SRE)"), "Site reliability (SRE)");
        assert_eq!(scalar("ada@acme.example"), "ada@acme.example");
        assert_eq!(scalar("yes"), "\"yes\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar("Pages, handovers"), "\"Pages, handovers\"");
        assert_eq!(scalar("#general"), "\"#general\"");
        assert_eq!(scalar("123"), "\"123\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("say \"hi\""), "\"say \\\"hi\\\"\"");
    }
}
