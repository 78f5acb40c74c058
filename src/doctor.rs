//! `doctor`: checks, before a plan, an apply or the controller need them, the things
//! they need from Slack and the identity provider, and says how to fix each problem.
//!
//! Each check is `Ok`, a `Warning` (a command will work, with less) or `Blocking` (a
//! command will fail). The checks read only: `auth.test` for each token (with the scopes
//! Slack names in `x-oauth-scopes`), SCIM's `ServiceProviderConfig`, the bot's
//! `conversations.list`, and the identity source; with the controller's mirror configured,
//! the scope to join channels, `apps.connections.open` for Socket Mode and one page of
//! the Audit Logs.

use serde::Serialize;

use crate::config::types::SlackPlan;
use crate::pipeline::Connection;
use crate::slack::client::{Credential, Token};
use crate::slack::wire;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Blocking,
}

/// One check: what was checked, how it came out, and the fix when it did not pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &str, detail: String) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail,
            fix: None,
        }
    }

    fn failed(name: &str, status: Status, detail: String, fix: &str) -> Check {
        Check {
            name: name.into(),
            status,
            detail,
            fix: Some(fix.into()),
        }
    }
}

/// Scopes a token needs, each requirement met by any one of its scopes.
type Needs = &'static [&'static [&'static str]];

const ADMIN_NEEDS: Needs = &[
    &["admin"],
    &["users:read"],
    &["users:read.email"],
    &["usergroups:read"],
    &["usergroups:write"],
];
const GRID_ADMIN_NEEDS: Needs = &[&["admin.users:read"], &["admin.users:write"]];
const CHANNEL_NEEDS: Needs = &[
    &["channels:read"],
    &["groups:read"],
    &["channels:manage", "channels:write"],
    &[
        "channels:write.invites",
        "channels:manage",
        "channels:write",
    ],
];

/// What the controller's environment sets for its live mirror, checked when set.
#[derive(Debug, Default)]
pub struct Mirror {
    /// `SLACK_SIGNING_SECRET` or `SLACK_APP_TOKEN` is set: events keep a mirror, and the
    /// bot joins the managed public channels to see their membership events.
    pub events: bool,
    /// `SLACK_APP_TOKEN`: Socket Mode.
    pub app_token: Option<Token>,
    /// `SLACK_AUDIT_TOKEN`: gaps filled from the Audit Logs.
    pub audit_token: Option<Token>,
}

/// Runs every check against what `connection` points at, and the mirror's tokens.
pub async fn check(connection: &Connection, mirror: &Mirror) -> Vec<Check> {
    let mut checks = Vec::new();
    let plan = connection.repository.config.value.slack.plan;
    let admin_ok = token_checks(connection, plan, mirror, &mut checks).await;
    if admin_ok {
        checks.push(clock(connection).await);
        checks.push(scim(connection).await);
        checks.extend(private_channels(connection).await);
    }
    if let Some(token) = &mirror.app_token {
        checks.push(socket_mode(connection, token).await);
    }
    if let Some(token) = &mirror.audit_token {
        checks.push(audit_logs(connection, plan, token).await);
    }
    checks.push(identity(connection).await);
    checks
}

/// Beyond this, the clock is worth a warning: timestamps in the journal, the leaver SLA
/// and Slack's request signatures assume this machine's clock and Slack's agree.
const CLOCK_WARN_SECONDS: f64 = 10.0;
/// Beyond this the controller refuses every signed event from Slack (Slack's own
/// replay window is five minutes).
const CLOCK_BLOCK_SECONDS: f64 = 300.0;

/// This machine's clock against Slack's (the `Date` header of one `auth.test`).
async fn clock(connection: &Connection) -> Check {
    const NAME: &str = "clock";
    const FIX: &str = "keep the clock in sync with NTP (chrony or systemd-timesyncd); in a container, the host's clock is the one to fix";
    match connection.client.clock_offset(Credential::Admin).await {
        Ok(Some(offset)) if offset.abs() <= CLOCK_WARN_SECONDS => Check::ok(
            NAME,
            format!("in sync with Slack's (off by {offset:+.1} s)"),
        ),
        Ok(Some(offset)) if offset.abs() <= CLOCK_BLOCK_SECONDS => Check::failed(
            NAME,
            Status::Warning,
            format!(
                "{:.0} s {} Slack's: timestamps and the leaver SLA are off by as much",
                offset.abs(),
                if offset > 0.0 { "behind" } else { "ahead of" }
            ),
            FIX,
        ),
        Ok(Some(offset)) => Check::failed(
            NAME,
            Status::Blocking,
            format!(
                "{:.0} s {} Slack's: the controller refuses Slack's signed events (a 5-minute window)",
                offset.abs(),
                if offset > 0.0 { "behind" } else { "ahead of" }
            ),
            FIX,
        ),
        Ok(None) => Check::failed(
            NAME,
            Status::Warning,
            "Slack's answer carries no Date header to compare with".into(),
            "nothing to fix here; check the clock by other means",
        ),
        Err(error) => Check::failed(
            NAME,
            Status::Warning,
            format!("auth.test: {error}"),
            "run doctor again",
        ),
    }
}

/// The remote the controller follows: what `controller --repo` and `--branch` name,
/// reached with the same credentials.
#[derive(Debug, Clone)]
pub struct Remote {
    pub repo: String,
    pub branch: String,
    pub access: crate::controller::git::Access,
}

/// The controller's remote answers and has the branch (`git ls-remote`, nothing
/// cloned). Blocking: the controller cannot start without it.
pub fn remote(remote: &Remote) -> Check {
    const NAME: &str = "git remote";
    let shown = crate::store::redact_url(&remote.repo);
    match crate::controller::git::probe(&remote.repo, &remote.branch, &remote.access) {
        Ok(tip) => Check::ok(
            NAME,
            format!(
                "{shown} answers; {} is at {}",
                remote.branch,
                &tip[..tip.len().min(12)]
            ),
        ),
        Err(error) => Check::failed(
            NAME,
            Status::Blocking,
            format!("{shown}: {error}"),
            "check the URL and the branch, and the credentials the controller is given (SLACK_GITOPS_GIT_TOKEN for HTTPS; --ssh-key and --known-hosts for SSH)",
        ),
    }
}

/// The app-level token opens a Socket Mode connection (`apps.connections.open`: the
/// ticket it answers with is left unused and expires).
async fn socket_mode(connection: &Connection, token: &Token) -> Check {
    match connection.client.open_socket(token).await {
        Ok(_) => Check::ok(
            "socket mode",
            "SLACK_APP_TOKEN opens a Socket Mode connection".into(),
        ),
        Err(error) => Check::failed(
            "socket mode",
            Status::Warning,
            format!(
                "apps.connections.open: {error}; the controller falls back to reading Slack in full"
            ),
            "set SLACK_APP_TOKEN to an app-level token (xapp-) with connections:write (the app's Basic Information, App-Level Tokens) and turn on Socket Mode",
        ),
    }
}

/// The audit token reads the Audit Logs (Enterprise Grid only): one page from now on.
async fn audit_logs(connection: &Connection, plan: SlackPlan, token: &Token) -> Check {
    const NAME: &str = "audit logs";
    if plan != SlackPlan::EnterpriseGrid {
        return Check::failed(
            NAME,
            Status::Warning,
            "the Audit Logs API is Enterprise Grid's only: SLACK_AUDIT_TOKEN is not used, and a gap in the event stream is read again instead".into(),
            "unset SLACK_AUDIT_TOKEN",
        );
    }
    let now = crate::clock::now_millis() / 1_000;
    match connection.client.audit_logs(token, now, "").await {
        Ok(_) => Check::ok(NAME, "SLACK_AUDIT_TOKEN reads the Audit Logs".into()),
        Err(error) => Check::failed(
            NAME,
            Status::Warning,
            format!("{error}; gaps in the event stream are read again instead of filled"),
            "set SLACK_AUDIT_TOKEN to an org owner's user token with auditlogs:read, from an app installed on the whole org",
        ),
    }
}

/// The admin token (and the bot token, when given): valid, of the org the config says,
/// with the scopes the commands need. Whether the admin token works.
async fn token_checks(
    connection: &Connection,
    plan: SlackPlan,
    mirror: &Mirror,
    checks: &mut Vec<Check>,
) -> bool {
    let client = &connection.client;
    let (body, scopes) = match client.auth_test(Credential::Admin).await {
        Ok(answer) => answer,
        Err(error) => {
            checks.push(Check::failed(
                "admin token",
                Status::Blocking,
                format!("auth.test: {error}"),
                "set the variable slack.token_env names to a valid admin user token (xoxp-) of this org",
            ));
            return false;
        }
    };
    checks.push(Check::ok(
        "admin token",
        format!("valid, acting as {}", body["user"].as_str().unwrap_or("?")),
    ));
    checks.push(slack_plan(plan, &body));
    let mut needs: Vec<&[&str]> = ADMIN_NEEDS.to_vec();
    if plan == SlackPlan::EnterpriseGrid {
        needs.extend(GRID_ADMIN_NEEDS);
    }
    if !client.has_bot() {
        needs.extend(CHANNEL_NEEDS);
    }
    checks.push(scope_check("admin token scopes", scopes.as_deref(), &needs));
    if !client.has_bot() && mirror.events {
        checks.push(join_check("admin token", scopes.as_deref()));
    }
    if client.has_bot() {
        match client.auth_test(Credential::Bot).await {
            Ok((_, scopes)) => {
                checks.push(scope_check("bot token scopes", scopes.as_deref(), CHANNEL_NEEDS));
                if mirror.events {
                    checks.push(join_check("bot token", scopes.as_deref()));
                }
            }
            Err(error) => checks.push(Check::failed(
                "bot token",
                Status::Blocking,
                format!("auth.test: {error}"),
                "set the variable slack.bot_token_env names to a valid bot token (xoxb-), or unset it to use the admin token for channels",
            )),
        }
    }
    true
}

/// The config's `slack.plan` against the org the token belongs to: an Enterprise Grid
/// org's `auth.test` names its `enterprise_id`.
fn slack_plan(plan: SlackPlan, auth: &serde_json::Value) -> Check {
    let grid = auth
        .get("enterprise_id")
        .and_then(|v| v.as_str())
        .is_some_and(|id| !id.is_empty());
    match (plan, grid) {
        (SlackPlan::EnterpriseGrid, true) | (SlackPlan::BusinessPlus, false) => Check::ok(
            "slack plan",
            format!("the org is {}", if grid { "Enterprise Grid" } else { "not Enterprise Grid (Business+)" }),
        ),
        (SlackPlan::EnterpriseGrid, false) => Check::failed(
            "slack plan",
            Status::Blocking,
            "slack-gitops.yaml says enterprise-grid, but the token's org is not an Enterprise organisation: admin.* methods will be refused".into(),
            "set `slack.plan: business-plus` in slack-gitops.yaml",
        ),
        (SlackPlan::BusinessPlus, true) => Check::failed(
            "slack plan",
            Status::Blocking,
            format!("slack-gitops.yaml says business-plus, but the token belongs to Enterprise Grid org {}", auth["enterprise_id"].as_str().unwrap_or("?")),
            "set `slack.plan: enterprise-grid` in slack-gitops.yaml",
        ),
    }
}

/// Whether `scopes` meet every need. Without the header the scopes cannot be told: a
/// warning, not a failure.
fn scope_check(name: &str, scopes: Option<&[String]>, needs: &[&[&str]]) -> Check {
    let Some(scopes) = scopes else {
        return Check::failed(
            name,
            Status::Warning,
            "Slack named no scopes (no x-oauth-scopes header)".into(),
            "check the app's scopes in its settings at api.slack.com",
        );
    };
    let missing: Vec<String> = needs
        .iter()
        .filter(|any| !any.iter().any(|s| scopes.iter().any(|have| have == s)))
        .map(|any| any.join(" or "))
        .collect();
    if missing.is_empty() {
        return Check::ok(name, format!("{} scopes, every one needed", scopes.len()));
    }
    Check {
        name: name.into(),
        status: Status::Blocking,
        detail: format!("missing: {}", missing.join(", ")),
        fix: Some(format!(
            "add {} to the app's scopes at api.slack.com, reinstall it, and use the new token",
            missing.join(", ")
        )),
    }
}

/// With a live mirror, the token that works channels joins the managed public ones (it
/// sees no membership event of a channel it is not in): a warning without the scope.
fn join_check(token: &str, scopes: Option<&[String]>) -> Check {
    let mut check = scope_check(
        "joins channels",
        scopes,
        &[&["channels:join", "channels:write"]],
    );
    if check.status == Status::Blocking {
        check.status = Status::Warning;
        check.detail = format!(
            "the {token} lacks channels:join: the controller cannot join the managed public channels, so their membership events are not seen until the bot is invited to each"
        );
        check.fix = Some(format!(
            "add channels:join to the {token}'s scopes at api.slack.com and reinstall the app, or invite the bot to every managed public channel"
        ));
    }
    check
}

/// SCIM answers (Business+ and Enterprise Grid only; the token needs `admin`).
async fn scim(connection: &Connection) -> Check {
    match connection.client.scim_get("ServiceProviderConfig").await {
        Ok(_) => Check::ok("scim", "reachable".into()),
        Err(error) => Check::failed(
            "scim",
            Status::Blocking,
            error.to_string(),
            "SCIM needs a Business+ or Enterprise Grid plan and an admin user token with the `admin` scope",
        ),
    }
}

/// The bot sees every managed private channel: Slack lists a private channel only to its
/// members, and the bot must be one to invite people and to read its members.
async fn private_channels(connection: &Connection) -> Vec<Check> {
    let repository = &connection.repository;
    let config = &repository.config.value;
    let mut checks = Vec::new();
    for (key, team) in &config.slack.workspaces {
        let private: Vec<&str> = repository
            .mappings
            .iter()
            .flat_map(|m| m.value.channels.iter())
            .filter(|c| c.private && &c.workspace == key)
            .map(|c| c.name.as_str())
            .collect();
        if private.is_empty() {
            continue;
        }
        let args = [
            ("team_id", team.as_str().to_string()),
            ("types", "private_channel".to_string()),
            ("limit", "999".to_string()),
        ];
        let listed = connection
            .client
            .web_paginate_as::<wire::Channel>(
                Credential::Bot,
                "conversations.list",
                &args,
                "channels",
            )
            .await;
        let seen: Vec<String> = match listed {
            Ok((channels, _)) => channels.into_iter().filter_map(|c| c.name).collect(),
            Err(error) => {
                checks.push(Check::failed(
                    "private channels",
                    Status::Blocking,
                    format!("conversations.list in {key}: {error}"),
                    "give the bot token channels:read and groups:read",
                ));
                continue;
            }
        };
        let unseen: Vec<&str> = private
            .into_iter()
            .filter(|name| !seen.iter().any(|s| s == name))
            .collect();
        if unseen.is_empty() {
            checks.push(Check::ok(
                "private channels",
                format!("the bot is in every managed private channel of {key}"),
            ));
        } else {
            let names: Vec<String> = unseen.iter().map(|n| format!("#{n}")).collect();
            checks.push(Check {
                name: "private channels".into(),
                status: Status::Blocking,
                detail: format!(
                    "the bot is not in {} in {key} (or it does not exist yet)",
                    names.join(", ")
                ),
                fix: Some(format!(
                    "invite the bot to {} (`/invite @your-bot` in each), or let a plan create them",
                    names.join(", ")
                )),
            });
        }
    }
    checks
}

/// The identity source answers with a directory.
async fn identity(connection: &Connection) -> Check {
    match connection.source.read().await {
        Ok(directory) => Check::ok(
            "identity source",
            format!(
                "{} people, {} groups",
                directory.people.len(),
                directory.groups.len()
            ),
        ),
        Err(error) => Check::failed(
            "identity source",
            Status::Blocking,
            error.to_string(),
            "check identity in slack-gitops.yaml and the secret it names",
        ),
    }
}

/// The state store: one that does not exist yet is fine (apply and the controller create
/// it); one that exists, or a PostgreSQL URL, must open.
pub fn store(spec: &str, exists: bool, opened: impl FnOnce() -> Result<(), String>) -> Check {
    if !exists {
        return Check::ok(
            "state store",
            format!("{spec} does not exist yet; apply and the controller create it"),
        );
    }
    match opened() {
        Ok(()) => Check::ok("state store", format!("{spec} opens")),
        Err(error) => Check::failed(
            "state store",
            Status::Blocking,
            error,
            "check --state (or SLACK_GITOPS_STATE), the file's permissions, or the database's URL and SLACK_GITOPS_STATE_PASSWORD",
        ),
    }
}

/// The exit code: 0 when all is ready, 1 when something blocks a command, 2 for
/// warnings only.
pub fn exit_code(checks: &[Check]) -> i32 {
    if checks.iter().any(|c| c.status == Status::Blocking) {
        1
    } else if checks.iter().any(|c| c.status == Status::Warning) {
        2
    } else {
        0
    }
}
