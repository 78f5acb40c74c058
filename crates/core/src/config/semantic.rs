//! Checks that the schema cannot express: across files, across sections, and against
//! the identity snapshot. Every check pushes diagnostics and keeps going.

use std::collections::{BTreeMap, BTreeSet};

use super::types::{
    IdentitySettings, Limit, MappingsFile, MemberSpec, PolicyFile, SlackPlan, UsergroupSpec,
};
use super::{Files, Located};
use crate::diagnostic::{Code, Diagnostic, Span};

/// Runs every cross-file check over the files that loaded. `known_groups` is the set of
/// IdP group names from the identity snapshot, when one is available.
pub fn check(files: &Files, known_groups: Option<&BTreeSet<String>>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    check_uniqueness(files, &mut out);
    check_workspaces(files, &mut out);
    check_slack_plan(files, &mut out);
    check_member_specs(files, &mut out);
    check_policies(files, &mut out);
    if let Some(config) = &files.config {
        check_identity(config, &mut out);
        check_duplicates(
            config,
            "/users/scope",
            config.value.users.scope.iter(),
            &mut out,
        );
    }
    if let Some(known) = known_groups {
        out.extend(unknown_groups(files, known));
    }
    out
}

/// A place something was first declared, for "already declared at" messages.
struct FirstSeen<'a> {
    file: &'a str,
    span: Option<Span>,
}

impl FirstSeen<'_> {
    fn describe(&self) -> String {
        match self.span {
            Some(span) => format!("{}:{}:{}", self.file, span.start.line, span.start.column),
            None => self.file.to_string(),
        }
    }
}

fn check_uniqueness(files: &Files, out: &mut Vec<Diagnostic>) {
    let mut handles: BTreeMap<&str, FirstSeen> = BTreeMap::new();
    let mut names: BTreeMap<String, FirstSeen> = BTreeMap::new();
    let mut channels: BTreeMap<(&str, &str), FirstSeen> = BTreeMap::new();
    for file in &files.mappings {
        for (index, usergroup) in file.value.usergroups.iter().enumerate() {
            let pointer = format!("/usergroups/{index}/handle");
            let span = file.span(&pointer);
            let handle = usergroup.handle.as_str();
            if let Some(first) = handles.get(handle) {
                out.push(Diagnostic::error(
                    Code::DuplicateUsergroupHandle,
                    &file.file,
                    span,
                    format!(
                        "usergroup handle `{handle}` is already declared at {}",
                        first.describe()
                    ),
                ));
            } else {
                handles.insert(
                    handle,
                    FirstSeen {
                        file: &file.file,
                        span,
                    },
                );
            }
            let pointer = format!("/usergroups/{index}/name");
            let span = file.span(&pointer);
            // Slack compares usergroup names without regard to case.
            let name = usergroup.name.to_lowercase();
            if let Some(first) = names.get(&name) {
                out.push(Diagnostic::error(
                    Code::DuplicateUsergroupName,
                    &file.file,
                    span,
                    format!(
                        "usergroup name `{}` is already declared at {}",
                        usergroup.name,
                        first.describe()
                    ),
                ));
            } else {
                names.insert(
                    name,
                    FirstSeen {
                        file: &file.file,
                        span,
                    },
                );
            }
        }
        for (index, channel) in file.value.channels.iter().enumerate() {
            let span = file.span(&format!("/channels/{index}/name"));
            let key = (channel.workspace.as_str(), channel.name.as_str());
            if let Some(first) = channels.get(&key) {
                out.push(Diagnostic::error(
                    Code::DuplicateChannel,
                    &file.file,
                    span,
                    format!(
                        "channel `{}` in workspace `{}` is already declared at {}",
                        channel.name,
                        channel.workspace,
                        first.describe()
                    ),
                ));
            } else {
                channels.insert(
                    key,
                    FirstSeen {
                        file: &file.file,
                        span,
                    },
                );
            }
        }
    }
}

/// Workspaces named by mappings are declared, and a usergroup's default channels live
/// in one of its workspaces.
fn check_workspaces(files: &Files, out: &mut Vec<Diagnostic>) {
    let declared: Option<BTreeSet<&str>> = files.config.as_ref().map(|c| {
        c.value
            .slack
            .workspaces
            .keys()
            .map(String::as_str)
            .collect()
    });
    let declared = declared.as_ref();
    let homes = channel_homes(files, declared, out);
    for file in &files.mappings {
        for (index, usergroup) in file.value.usergroups.iter().enumerate() {
            check_usergroup_workspaces(file, index, usergroup, declared, &homes, out);
        }
    }
}

/// On Business+ there is one workspace: a second one, and so a usergroup that spans
/// workspaces (an org-wide usergroup), needs Enterprise Grid.
fn check_slack_plan(files: &Files, out: &mut Vec<Diagnostic>) {
    let Some(config) = &files.config else {
        return;
    };
    if config.value.slack.plan != SlackPlan::BusinessPlus {
        return;
    }
    const HELP: &str = "a Business+ org has one workspace; keep one, or set `slack.plan: enterprise-grid` if the org is on Enterprise Grid";
    let workspaces = &config.value.slack.workspaces;
    for key in workspaces.keys().skip(1) {
        out.push(
            Diagnostic::error(
                Code::GridOnly,
                &config.file,
                config.spans.key_span(&format!("/slack/workspaces/{key}")),
                format!(
                    "workspace `{key}`: Business+ has one workspace, and `slack.workspaces` declares {}",
                    workspaces.len()
                ),
            )
            .with_help(HELP),
        );
    }
    for file in &files.mappings {
        for (index, usergroup) in file.value.usergroups.iter().enumerate() {
            if usergroup.workspaces.len() < 2 {
                continue;
            }
            out.push(
                Diagnostic::error(
                    Code::GridOnly,
                    &file.file,
                    file.span(&format!("/usergroups/{index}/workspaces/1")),
                    format!(
                        "usergroup `{}` spans {} workspaces: a usergroup in several workspaces needs Enterprise Grid",
                        usergroup.handle,
                        usergroup.workspaces.len()
                    ),
                )
                .with_help(HELP),
            );
        }
    }
}

/// The help for an undeclared workspace: the declared ones.
fn declare_help(declared: &BTreeSet<&str>) -> String {
    format!(
        "declared workspaces: {}; add it under `slack.workspaces` in slack-gitops.yaml",
        quoted(declared.iter())
    )
}

/// Where each managed channel lives, reporting a channel whose workspace is undeclared.
fn channel_homes<'a>(
    files: &'a Files,
    declared: Option<&BTreeSet<&str>>,
    out: &mut Vec<Diagnostic>,
) -> BTreeMap<&'a str, BTreeSet<&'a str>> {
    let mut homes: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for file in &files.mappings {
        for (index, channel) in file.value.channels.iter().enumerate() {
            homes
                .entry(channel.name.as_str())
                .or_default()
                .insert(channel.workspace.as_str());
            if let Some(declared) = declared
                && !declared.contains(channel.workspace.as_str())
            {
                out.push(
                    Diagnostic::error(
                        Code::UndeclaredWorkspace,
                        &file.file,
                        file.span(&format!("/channels/{index}/workspace")),
                        format!(
                            "channel `{}` names workspace `{}`, which slack-gitops.yaml does not declare",
                            channel.name, channel.workspace
                        ),
                    )
                    .with_help(declare_help(declared)),
                );
            }
        }
    }
    homes
}

/// One usergroup: no workspace or channel twice, its workspaces declared, and each
/// managed default channel in one of them.
fn check_usergroup_workspaces(
    file: &Located<MappingsFile>,
    index: usize,
    usergroup: &UsergroupSpec,
    declared: Option<&BTreeSet<&str>>,
    homes: &BTreeMap<&str, BTreeSet<&str>>,
    out: &mut Vec<Diagnostic>,
) {
    let at = format!("/usergroups/{index}");
    check_duplicates(
        file,
        &format!("{at}/workspaces"),
        usergroup.workspaces.iter(),
        out,
    );
    let channels = usergroup.channels.iter().map(|c| c.as_str());
    check_duplicates(file, &format!("{at}/channels"), channels, out);
    if let Some(declared) = declared {
        let mut undeclared = false;
        for (position, workspace) in usergroup.workspaces.iter().enumerate() {
            if declared.contains(workspace.as_str()) {
                continue;
            }
            undeclared = true;
            out.push(
                Diagnostic::error(
                    Code::UndeclaredWorkspace,
                    &file.file,
                    file.span(&format!("{at}/workspaces/{position}")),
                    format!(
                        "usergroup `{}` names workspace `{workspace}`, which slack-gitops.yaml does not declare",
                        usergroup.handle
                    ),
                )
                .with_help(declare_help(declared)),
            );
        }
        if undeclared {
            // Already reported; which channels fit is unknowable until that is fixed.
            return;
        }
    }
    for (position, channel) in usergroup.channels.iter().enumerate() {
        // A channel not managed here is an existing one, looked up in the usergroup's
        // workspaces when planning.
        let Some(homes) = homes.get(channel.as_str()) else {
            continue;
        };
        if homes
            .iter()
            .any(|home| usergroup.workspaces.iter().any(|w| w == home))
        {
            continue;
        }
        out.push(Diagnostic::error(
            Code::ChannelOutsideUsergroupWorkspaces,
            &file.file,
            file.span(&format!("{at}/channels/{position}")),
            format!(
                "default channel `{channel}` lives in workspace {}, but usergroup `{}` is only in {}",
                quoted(homes.iter()),
                usergroup.handle,
                quoted(usergroup.workspaces.iter()),
            ),
        ).with_help("add the channel's workspace to the usergroup's `workspaces`, or pick a channel in one of them"));
    }
}

fn check_member_specs(files: &Files, out: &mut Vec<Diagnostic>) {
    for file in &files.mappings {
        for (index, usergroup) in file.value.usergroups.iter().enumerate() {
            let what = format!("usergroup `{}`", usergroup.handle);
            check_member_spec(
                file,
                &format!("/usergroups/{index}/members"),
                &usergroup.members,
                &what,
                out,
            );
        }
        for (index, channel) in file.value.channels.iter().enumerate() {
            if let Some(members) = &channel.members {
                let what = format!("channel `{}`", channel.name);
                check_member_spec(
                    file,
                    &format!("/channels/{index}/members"),
                    members,
                    &what,
                    out,
                );
            }
        }
    }
}

fn check_member_spec<T>(
    file: &Located<T>,
    pointer: &str,
    spec: &MemberSpec,
    what: &str,
    out: &mut Vec<Diagnostic>,
) {
    for (list, items) in [
        (
            "groups",
            spec.groups.iter().map(String::as_str).collect::<Vec<_>>(),
        ),
        ("exclude", spec.exclude.iter().map(String::as_str).collect()),
        ("users", spec.users.iter().map(|e| e.as_str()).collect()),
        (
            "exclude_users",
            spec.exclude_users.iter().map(|e| e.as_str()).collect(),
        ),
    ] {
        check_duplicates(file, &format!("{pointer}/{list}"), items.into_iter(), out);
    }
    let excluded_groups: BTreeSet<&str> = spec.exclude.iter().map(String::as_str).collect();
    let excluded_users: BTreeSet<&str> = spec.exclude_users.iter().map(|e| e.as_str()).collect();
    for (index, group) in spec.groups.iter().enumerate() {
        if excluded_groups.contains(group.as_str()) {
            out.push(Diagnostic::error(
                Code::ContradictoryMemberSpec,
                &file.file,
                file.span(&format!("{pointer}/groups/{index}")),
                format!("{what} both includes and excludes IdP group `{group}`, so it selects nobody from it"),
            ));
        }
    }
    for (index, user) in spec.users.iter().enumerate() {
        if excluded_users.contains(user.as_str()) {
            out.push(Diagnostic::error(
                Code::ContradictoryMemberSpec,
                &file.file,
                file.span(&format!("{pointer}/users/{index}")),
                format!("{what} both includes and excludes `{user}`"),
            ));
        }
    }
    if spec.groups.is_empty() && spec.users.is_empty() {
        out.push(
            Diagnostic::error(
                Code::EmptyMemberSpec,
                &file.file,
                file.span(pointer),
                format!("{what} selects nobody: its `members` lists no `groups` and no `users`"),
            )
            .with_help("add IdP groups under `members.groups` or people under `members.users`"),
        );
    }
}

/// Each policy file's settings are valid, and each setting is made in one file only.
fn check_policies(files: &Files, out: &mut Vec<Diagnostic>) {
    let mut set_by: BTreeMap<String, FirstSeen> = BTreeMap::new();
    for file in &files.policies {
        for (setting, pointer) in policy_settings(file, out) {
            let span = file.spans.key_span(&pointer);
            if let Some(first) = set_by.get(setting.as_str()) {
                out.push(
                    Diagnostic::error(
                        Code::ConflictingPolicy,
                        &file.file,
                        span,
                        format!("`{setting}` is already set at {}", first.describe()),
                    )
                    .with_help("each limit is set in exactly one policy file, so a reviewer sees one value"),
                );
            } else {
                set_by.insert(
                    setting,
                    FirstSeen {
                        file: &file.file,
                        span,
                    },
                );
            }
        }
    }
}

/// Checks one policy file's limits, durations and protected lists; returns the settings
/// it makes, each with its pointer.
fn policy_settings(file: &Located<PolicyFile>, out: &mut Vec<Diagnostic>) -> Vec<(String, String)> {
    let policy = &file.value;
    let limits: [(&str, Option<&Limit>); 3] = [
        ("deactivate", policy.limits.deactivate.as_ref()),
        (
            "remove_from_usergroup",
            policy.limits.remove_from_usergroup.as_ref(),
        ),
        (
            "remove_from_channel",
            policy.limits.remove_from_channel.as_ref(),
        ),
    ];
    let mut settings: Vec<(String, String)> = Vec::new();
    for (name, limit) in limits {
        let Some(limit) = limit else { continue };
        let pointer = format!("/limits/{name}");
        settings.push((format!("limits.{name}"), pointer.clone()));
        check_limit(file, &pointer, limit, out);
    }
    if let Some(guard) = &policy.identity {
        settings.push(("identity.max_shrink".into(), "/identity/max_shrink".into()));
        check_limit(file, "/identity/max_shrink", &guard.max_shrink, out);
    }
    if let Some(drift) = &policy.drift {
        settings.push(("drift".into(), "/drift".into()));
        let help = "write a positive duration such as `30s`, `15m`, `1h` or `1h30m`";
        check_duration(file, "/drift/every", &drift.every, help, out);
    }
    if let Some(leavers) = &policy.leavers {
        settings.push(("leavers".into(), "/leavers".into()));
        let help = "write a positive duration such as `30m`, `4h` or `1h30m`";
        check_duration(file, "/leavers/sla", &leavers.sla, help, out);
    }
    if policy.circuit_breaker.is_some() {
        settings.push(("circuit_breaker".into(), "/circuit_breaker".into()));
    }
    let users = policy.protected.users.iter().map(|e| e.as_str());
    check_duplicates(file, "/protected/users", users, out);
    let groups = policy.protected.groups.iter();
    check_duplicates(file, "/protected/groups", groups, out);
    settings
}

/// A duration must parse and be positive.
fn check_duration(
    file: &Located<PolicyFile>,
    pointer: &str,
    text: &str,
    help: &str,
    out: &mut Vec<Diagnostic>,
) {
    if parse_duration_seconds(text).is_none_or(|seconds| seconds == 0) {
        out.push(
            Diagnostic::error(
                Code::InvalidDuration,
                &file.file,
                file.span(pointer),
                format!("`{text}` is not a usable duration"),
            )
            .with_help(help),
        );
    }
}

fn check_limit<T>(file: &Located<T>, pointer: &str, limit: &Limit, out: &mut Vec<Diagnostic>) {
    if limit.max.is_none() && limit.max_percent.is_none() {
        out.push(
            Diagnostic::error(
                Code::EmptyLimit,
                &file.file,
                file.span(pointer),
                "this limit sets neither `max` nor `max_percent`, so it limits nothing",
            )
            .with_help("set `max` (a count), `max_percent` (0-100), or both"),
        );
    }
}

/// Reads `30s`, `15m`, `1h30m`, `2d` as seconds.
pub fn parse_duration_seconds(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let amount: u64 = digits.parse().ok()?;
        total = total.checked_add(amount.checked_mul(unit)?)?;
        digits.clear();
        any = true;
    }
    (any && digits.is_empty()).then_some(total)
}

/// Whether a path a config names stays inside the repository on paper: relative, with
/// no `..` (and no drive or root on any platform). Symlinks are the reader's to check.
pub fn stays_inside(path: &str) -> bool {
    let unix_absolute = path.starts_with('/') || path.starts_with('\\');
    let windows_drive = path.as_bytes().get(1) == Some(&b':');
    !path.is_empty()
        && !unix_absolute
        && !windows_drive
        && !path.contains('\0')
        && path.split(['/', '\\']).all(|part| part != "..")
}

fn check_identity(config: &Located<super::types::ConfigFile>, out: &mut Vec<Diagnostic>) {
    let identity: &IdentitySettings = &config.value.identity;
    let source = identity.source;
    let (required, optional) = source.settings();
    let present: [(&str, bool); 7] = [
        ("path", identity.path.is_some()),
        ("url", identity.url.is_some()),
        ("token_env", identity.token_env.is_some()),
        ("tenant_id", identity.tenant_id.is_some()),
        ("client_id", identity.client_id.is_some()),
        ("client_secret_env", identity.client_secret_env.is_some()),
        ("manager", identity.manager.is_some()),
    ];
    if let Some(path) = &identity.path
        && !stays_inside(path)
    {
        out.push(
            Diagnostic::error(
                Code::PathOutsideRepository,
                &config.file,
                config.span("/identity/path"),
                format!("identity.path `{path}` leaves the repository; it is not read"),
            )
            .with_help(
                "give a path relative to the repository, without `..`, such as identity/directory.yaml",
            ),
        );
    }
    for (name, is_set) in present {
        if required.contains(&name) && !is_set {
            out.push(Diagnostic::error(
                Code::IdentitySettingMissing,
                &config.file,
                config.span("/identity"),
                format!("identity source `{}` needs `{name}`", source.as_str()),
            ));
        }
        if is_set && !required.contains(&name) && !optional.contains(&name) {
            out.push(Diagnostic::error(
                Code::IdentitySettingNotForSource,
                &config.file,
                config.spans.key_span(&format!("/identity/{name}")),
                format!(
                    "`{name}` is not a setting of identity source `{}`",
                    source.as_str()
                ),
            ));
        }
    }
}

/// Reports the second and later occurrences of each item in a list.
fn check_duplicates<'a, T>(
    file: &Located<T>,
    pointer: &str,
    items: impl Iterator<Item = &'a (impl AsRef<str> + ?Sized + 'a)>,
    out: &mut Vec<Diagnostic>,
) {
    let mut seen = BTreeSet::new();
    for (index, item) in items.enumerate() {
        let item = item.as_ref();
        if !seen.insert(item) {
            out.push(Diagnostic::error(
                Code::DuplicateEntry,
                &file.file,
                file.span(&format!("{pointer}/{index}")),
                format!("`{item}` is listed twice"),
            ));
        }
    }
}

/// Reports IdP group names that the identity snapshot does not have.
pub fn unknown_groups(files: &Files, known: &BTreeSet<String>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut report = |file: &str, span: Option<Span>, name: &str| {
        if !known.contains(name) {
            out.push(
                Diagnostic::error(
                    Code::UnknownIdpGroup,
                    file,
                    span,
                    format!("IdP group `{name}` is not in the identity snapshot"),
                )
                .with_help("check the spelling against the identity provider's group names"),
            );
        }
    };
    if let Some(config) = &files.config {
        for (index, name) in config.value.users.scope.iter().enumerate() {
            report(
                &config.file,
                config.span(&format!("/users/scope/{index}")),
                name,
            );
        }
    }
    for file in &files.mappings {
        let specs = file
            .value
            .usergroups
            .iter()
            .enumerate()
            .map(|(i, u)| (format!("/usergroups/{i}/members"), &u.members))
            .chain(file.value.channels.iter().enumerate().filter_map(|(i, c)| {
                c.members
                    .as_ref()
                    .map(|m| (format!("/channels/{i}/members"), m))
            }));
        for (pointer, spec) in specs {
            for (list, names) in [("groups", &spec.groups), ("exclude", &spec.exclude)] {
                for (index, name) in names.iter().enumerate() {
                    report(
                        &file.file,
                        file.span(&format!("{pointer}/{list}/{index}")),
                        name,
                    );
                }
            }
        }
    }
    for file in &files.policies {
        for (index, name) in file.value.protected.groups.iter().enumerate() {
            report(
                &file.file,
                file.span(&format!("/protected/groups/{index}")),
                name,
            );
        }
    }
    out
}

fn quoted<'a>(items: impl Iterator<Item = &'a (impl AsRef<str> + ?Sized + 'a)>) -> String {
    items
        .map(|item| format!("`{}`", item.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::parse_duration_seconds;

    #[test]
    fn reads_durations() {
        assert_eq!(parse_duration_seconds("15m"), Some(900));
        assert_eq!(parse_duration_seconds("1h30m"), Some(5400));
        assert_eq!(parse_duration_seconds("2d"), Some(172_800));
        assert_eq!(parse_duration_seconds("0s"), Some(0));
        assert_eq!(parse_duration_seconds("15"), None);
        assert_eq!(parse_duration_seconds("m"), None);
        assert_eq!(parse_duration_seconds("fifteen minutes"), None);
        assert_eq!(parse_duration_seconds("99999999999999999999d"), None);
    }
}
