//! The Web API under `/api/{method}`: Slack's envelope, tokens and scopes, tiers,
//! cursor pagination and the methods slack-gitops uses.
//!
//! Every method runs in three steps: the request is turned into [`Args`] (query string,
//! form body, or a JSON body where Slack accepts one); the token is checked (present,
//! known, not revoked, the right kind, the scopes the method needs); then the method runs
//! against the [`World`] under its lock and returns `{"ok": true, ...}` or an [`ApiError`].
//! Application errors are HTTP 200 with `ok: false`, as on Slack; only rate limiting
//! changes the status (429).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::changes::Change;
use crate::world::{Guest, Token, TokenKind, Usergroup, World};

mod admin;
mod conversations;
mod usergroups;
mod users;

use admin::*;
use conversations::*;
use usergroups::*;
use users::*;

/// What runs a method: the world under its lock, the caller, the arguments.
pub type Handler = fn(&mut World, &Caller, &Args) -> Reply;

/// A Web API method: its fixed properties and what runs it (one table, no second list).
pub struct MethodSpec {
    pub name: &'static str,
    /// Whether a JSON body is accepted (Slack's `json_input_supported`).
    pub json: bool,
    /// Only user tokens (`xoxp-`) may call it.
    pub user_only: bool,
    /// Only app-level tokens (`xapp-`) may call it; they may call nothing else.
    pub app_only: bool,
    /// Scopes of which the token needs at least one (empty: none needed).
    pub scopes: &'static [&'static str],
    pub run: Handler,
}

const fn spec(
    name: &'static str,
    json: bool,
    user_only: bool,
    scopes: &'static [&'static str],
    run: Handler,
) -> MethodSpec {
    MethodSpec {
        name,
        json,
        user_only,
        app_only: false,
        scopes,
        run,
    }
}

/// A method only app-level tokens call.
const fn app_spec(
    name: &'static str,
    json: bool,
    scopes: &'static [&'static str],
    run: Handler,
) -> MethodSpec {
    MethodSpec {
        app_only: true,
        ..spec(name, json, false, scopes, run)
    }
}

const CHANNEL_READ: &[&str] = &["channels:read", "groups:read"];
const CHANNEL_MANAGE: &[&str] = &["channels:manage", "channels:write", "groups:write"];
const CHANNEL_INVITE: &[&str] = &[
    "channels:write.invites",
    "groups:write.invites",
    "channels:manage",
    "channels:write",
    "groups:write",
];

/// Every method the emulator serves, and what runs it. Tiers come from the core's
/// `model::limits::web_tier`.
pub const METHODS: &[MethodSpec] = &[
    spec("auth.test", true, false, &[], |w, c, _| auth_test(w, c)),
    app_spec(
        "apps.connections.open",
        true,
        &["connections:write"],
        |w, c, _| apps_connections_open(w, c),
    ),
    spec("users.list", false, false, &["users:read"], |w, c, a| {
        users_list(w, c, a)
    }),
    spec("users.info", false, false, &["users:read"], |w, c, a| {
        users_info(w, c, a)
    }),
    spec(
        "users.lookupByEmail",
        false,
        false,
        &["users:read.email"],
        |w, c, a| users_lookup_by_email(w, c, a),
    ),
    spec(
        "usergroups.list",
        false,
        false,
        &["usergroups:read"],
        |w, c, a| usergroups_list(w, c, a),
    ),
    spec(
        "usergroups.create",
        true,
        false,
        &["usergroups:write"],
        usergroups_create,
    ),
    spec(
        "usergroups.update",
        true,
        false,
        &["usergroups:write"],
        usergroups_update,
    ),
    spec(
        "usergroups.disable",
        true,
        false,
        &["usergroups:write"],
        |w, c, a| usergroups_set_enabled(w, c, a, false),
    ),
    spec(
        "usergroups.enable",
        true,
        false,
        &["usergroups:write"],
        |w, c, a| usergroups_set_enabled(w, c, a, true),
    ),
    spec(
        "usergroups.users.list",
        false,
        false,
        &["usergroups:read"],
        |w, c, a| usergroups_users_list(w, c, a),
    ),
    spec(
        "usergroups.users.update",
        true,
        false,
        &["usergroups:write"],
        usergroups_users_update,
    ),
    spec(
        "conversations.list",
        false,
        false,
        CHANNEL_READ,
        |w, c, a| conversations_list(w, c, a),
    ),
    spec(
        "conversations.info",
        false,
        false,
        CHANNEL_READ,
        |w, c, a| conversations_info(w, c, a),
    ),
    spec(
        "conversations.members",
        false,
        false,
        CHANNEL_READ,
        |w, c, a| conversations_members(w, c, a),
    ),
    spec(
        "conversations.create",
        true,
        false,
        CHANNEL_MANAGE,
        conversations_create,
    ),
    spec(
        "conversations.archive",
        true,
        false,
        CHANNEL_MANAGE,
        |w, c, a| conversations_set_archived(w, c, a, true),
    ),
    spec(
        "conversations.unarchive",
        true,
        false,
        CHANNEL_MANAGE,
        |w, c, a| conversations_set_archived(w, c, a, false),
    ),
    spec(
        "conversations.rename",
        true,
        false,
        CHANNEL_MANAGE,
        conversations_rename,
    ),
    spec(
        "conversations.invite",
        true,
        false,
        CHANNEL_INVITE,
        conversations_invite,
    ),
    spec(
        "conversations.kick",
        true,
        false,
        CHANNEL_MANAGE,
        conversations_kick,
    ),
    spec(
        "conversations.join",
        true,
        false,
        &["channels:join", "channels:write"],
        conversations_join,
    ),
    spec(
        "admin.users.list",
        true,
        true,
        &["admin.users:read"],
        |w, c, a| admin_users_list(w, c, a),
    ),
    spec(
        "admin.users.assign",
        true,
        true,
        &["admin.users:write"],
        admin_users_assign,
    ),
    spec(
        "admin.users.remove",
        true,
        true,
        &["admin.users:write"],
        admin_users_remove,
    ),
    spec(
        "admin.users.setAdmin",
        true,
        true,
        &["admin.users:write"],
        |w, c, a| admin_users_set_role(w, c, a, Role::Admin),
    ),
    spec(
        "admin.users.setOwner",
        true,
        true,
        &["admin.users:write"],
        |w, c, a| admin_users_set_role(w, c, a, Role::Owner),
    ),
    spec(
        "admin.users.setRegular",
        true,
        true,
        &["admin.users:write"],
        |w, c, a| admin_users_set_role(w, c, a, Role::Regular),
    ),
    spec(
        "admin.users.session.reset",
        true,
        true,
        &["admin.users:write"],
        |w, c, a| admin_session_reset(w, c, a, false),
    ),
    spec(
        "admin.users.session.list",
        true,
        true,
        &["admin.users:read"],
        |w, c, a| admin_session_list(w, c, a),
    ),
    spec(
        "admin.users.session.resetBulk",
        true,
        true,
        &["admin.users:write"],
        |w, c, a| admin_session_reset(w, c, a, true),
    ),
    spec(
        "admin.usergroups.addChannels",
        true,
        true,
        &["admin.usergroups:write"],
        |w, c, a| admin_usergroups_channels(w, c, a, true),
    ),
    spec(
        "admin.usergroups.listChannels",
        true,
        true,
        &["admin.usergroups:read"],
        |w, c, a| admin_usergroups_list_channels(w, c, a),
    ),
    spec(
        "admin.usergroups.removeChannels",
        true,
        true,
        &["admin.usergroups:write"],
        |w, c, a| admin_usergroups_channels(w, c, a, false),
    ),
    spec(
        "admin.usergroups.addTeams",
        true,
        true,
        &["admin.teams:write"],
        admin_usergroups_add_teams,
    ),
    // Slack's method reference allows a JSON body here (json_input_supported).
    spec(
        "admin.conversations.invite",
        true,
        true,
        &["admin.conversations:write"],
        admin_conversations_invite,
    ),
    spec(
        "team.integrationLogs",
        false,
        true,
        &["admin"],
        |w, c, a| team_integration_logs(w, c, a),
    ),
    spec(
        "chat.postMessage",
        true,
        false,
        &["chat:write"],
        chat_post_message,
    ),
];

/// Looks a method up by name.
pub fn method_spec(name: &str) -> Option<&'static MethodSpec> {
    METHODS.iter().find(|m| m.name == name)
}

/// `{"ok": false, "error": ..., ...extra}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub error: String,
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(error: &str) -> ApiError {
        ApiError {
            error: error.to_string(),
            extra: Map::new(),
        }
    }

    fn with(mut self, key: &str, value: Value) -> ApiError {
        self.extra.insert(key.to_string(), value);
        self
    }

    /// The response body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("ok".into(), Value::Bool(false));
        body.insert("error".into(), Value::String(self.error.clone()));
        body.extend(self.extra.clone());
        Value::Object(body)
    }
}

/// A successful reply's fields after `ok: true`, each already serialised.
pub type Fields = Vec<(&'static str, Box<RawValue>)>;
type Reply = Result<Fields, ApiError>;

/// A method's arguments as Slack reads them: strings, lists as comma-separated values.
#[derive(Debug, Clone, Default)]
pub struct Args(pub BTreeMap<String, String>);

impl Args {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::new("invalid_arguments").with("argument", json!(name)))
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Turns a JSON body into arguments: arrays become comma-separated lists.
    pub fn from_json(body: &Value) -> Option<Args> {
        let object = body.as_object()?;
        let mut args = BTreeMap::new();
        for (key, value) in object {
            // Block Kit arguments are JSON themselves: kept as JSON text.
            if matches!(key.as_str(), "blocks" | "attachments") && !value.is_string() {
                args.insert(key.clone(), value.to_string());
                continue;
            }
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(","),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            args.insert(key.clone(), text);
        }
        Some(Args(args))
    }
}

/// Who is calling, and when.
pub struct Caller {
    pub token: Token,
    /// Emulated unix seconds.
    pub now: u64,
}

impl Caller {
    fn has_scope(&self, scope: &str) -> bool {
        self.token.scopes.iter().any(|s| s == scope)
    }

    fn require_any(&self, scopes: &[&str]) -> Result<(), ApiError> {
        if scopes.is_empty() || scopes.iter().any(|s| self.has_scope(s)) {
            return Ok(());
        }
        Err(missing_scope(scopes, &self.token))
    }
}

fn missing_scope(needed: &[&str], token: &Token) -> ApiError {
    ApiError::new("missing_scope")
        .with("needed", json!(needed.join(",")))
        .with("provided", json!(token.scopes.join(",")))
}

/// `apps.connections.open`: a single-use ticket for a Socket Mode WebSocket. The URL is
/// a path here (`/link/?ticket=...&app_id=...`); the server prefixes it with the
/// `ws://` address the caller reached, as Slack answers a `wss://` URL.
fn apps_connections_open(world: &mut World, caller: &Caller) -> Reply {
    use crate::world::SocketTicket;
    let now = caller.now as f64;
    world
        .socket_tickets
        .retain(|_, ticket| ticket.expires > now);
    world.socket_tickets_issued += 1;
    let ticket = format!(
        "{:08x}-{:016x}",
        world.socket_tickets_issued,
        crate::events::socket::ticket_noise(world.socket_tickets_issued)
    );
    let app = caller.token.app.clone();
    let url = format!("/link/?ticket={ticket}&app_id={app}");
    world.socket_tickets.insert(
        ticket,
        SocketTicket {
            app,
            expires: now + SocketTicket::LIFETIME,
        },
    );
    ok(vec![("url", json!(url))])
}

/// Checks the token against the method: kind, scopes, and that its person is active.
pub fn authorize(world: &World, token: &Token, spec: &MethodSpec) -> Result<(), ApiError> {
    if token.revoked {
        return Err(ApiError::new("token_revoked"));
    }
    if world.user(&token.user).is_some_and(|u| !u.active) {
        return Err(ApiError::new("account_inactive"));
    }
    if spec.user_only && token.kind != TokenKind::User {
        return Err(ApiError::new("not_allowed_token_type"));
    }
    if spec.app_only != (token.kind == TokenKind::App) {
        return Err(ApiError::new("not_allowed_token_type"));
    }
    Caller {
        token: token.clone(),
        now: 0,
    }
    .require_any(spec.scopes)?;
    if world.enterprise.is_none()
        && let Some(error) = not_enterprise_error(spec.name)
    {
        return Err(ApiError::new(error));
    }
    Ok(())
}

/// What an Enterprise-only method answers on a workspace that is not part of an
/// Enterprise organisation (Business+), by Slack's method reference: `not_an_enterprise`
/// where it lists that error, otherwise `feature_not_enabled` ("The Admin APIs feature
/// is not enabled for this team"). `admin.usergroups.addTeams` lists neither; it gets
/// `not_an_enterprise`, as the other `admin.usergroups.*` methods do. `None` for a
/// method every plan has.
pub fn not_enterprise_error(method: &str) -> Option<&'static str> {
    match method {
        "admin.usergroups.addChannels"
        | "admin.usergroups.listChannels"
        | "admin.usergroups.removeChannels"
        | "admin.usergroups.addTeams" => Some("not_an_enterprise"),
        admin if admin.starts_with("admin.") => Some("feature_not_enabled"),
        _ => None,
    }
}

/// The workspace a call acts on, and the rate-limit scope of the token.
pub fn team_for(world: &World, token: &Token, args: &Args) -> Option<String> {
    if token.org_level {
        args.get("team_id")
            .map(str::to_string)
            .or_else(|| world.enterprise.as_ref().map(|e| e.id.clone()))
    } else {
        token.workspace.clone()
    }
}

/// Runs one method. The caller has been authorised and rate-limited already.
pub fn call(world: &mut World, caller: &Caller, method: &str, args: &Args) -> Reply {
    match method_spec(method) {
        Some(spec) => (spec.run)(world, caller, args),
        None => Err(ApiError::new("unknown_method")),
    }
}

fn ok(pairs: Vec<(&'static str, Value)>) -> Reply {
    Ok(pairs.into_iter().map(|(k, v)| (k, raw(&v))).collect())
}

/// Serialises a reply field once, straight to text.
fn raw<T: Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("reply fields serialise")
}

/// The body of a successful reply: `{"ok":true, ...fields}`.
pub fn success_body(fields: &Fields) -> String {
    let mut body = String::from("{\"ok\":true");
    for (key, value) in fields {
        body.push_str(",\"");
        body.push_str(key);
        body.push_str("\":");
        body.push_str(value.get());
    }
    body.push('}');
    body
}

/// The workspace a workspace-scoped method acts on. Org-level tokens must name it.
fn workspace(
    world: &World,
    caller: &Caller,
    args: &Args,
    missing: &str,
) -> Result<String, ApiError> {
    let team = if caller.token.org_level {
        args.get("team_id")
            .map(str::to_string)
            .ok_or_else(|| ApiError::new(missing))?
    } else {
        caller
            .token
            .workspace
            .clone()
            .ok_or_else(|| ApiError::new("invalid_auth"))?
    };
    if world.workspaces.iter().any(|w| w.id == team) {
        Ok(team)
    } else {
        Err(ApiError::new("team_not_found"))
    }
}

fn require_enterprise_admin(world: &World, caller: &Caller) -> Result<(), ApiError> {
    if world.enterprise.is_none() {
        return Err(ApiError::new("not_an_enterprise"));
    }
    match world.user(&caller.token.user) {
        Some(user) if user.admin || user.owner || user.primary_owner => Ok(()),
        _ => Err(ApiError::new("not_an_admin")),
    }
}

// ---- pagination ------------------------------------------------------------------------

const CURSOR_PREFIX: &str = "dXNlcjpV";

/// A position in a listing. `replayed` marks a position whose page was already served
/// empty once, so the next request there gets the items and the walk makes progress.
fn encode_cursor(offset: usize, replayed: bool) -> String {
    let mark = if replayed { "-" } else { "" };
    format!("{CURSOR_PREFIX}{offset:x}{mark}")
}

fn decode_cursor(cursor: &str) -> Result<(usize, bool), ApiError> {
    let invalid = || ApiError::new("invalid_cursor");
    let rest = cursor.strip_prefix(CURSOR_PREFIX).ok_or_else(invalid)?;
    let (hex, replayed) = match rest.strip_suffix('-') {
        Some(hex) => (hex, true),
        None => (rest, false),
    };
    let offset = usize::from_str_radix(hex, 16).map_err(|_| invalid())?;
    Ok((offset, replayed))
}

/// One page of `items`. Slack cuts a virtual page of `limit` items first and filters it
/// afterwards, so pages can be short or empty before the end; with `short_pages` every
/// third page is first served empty as well (with a cursor back to the same place). The
/// end is an empty `next_cursor`, nothing else.
fn page<'a, T>(
    world: &World,
    items: &'a [T],
    args: &Args,
    default_limit: usize,
    max_limit: usize,
    keep: impl Fn(&T) -> bool,
) -> Result<(Vec<&'a T>, String), ApiError> {
    let limit = match args.get("limit") {
        None => default_limit,
        Some(text) => match text.parse::<usize>() {
            Ok(0) => default_limit,
            Ok(n) if n <= max_limit => n,
            _ => return Err(ApiError::new("invalid_limit")),
        },
    };
    let (offset, replayed) = match args.get("cursor") {
        Some(cursor) => decode_cursor(cursor)?,
        None => (0, false),
    };
    if offset > items.len() {
        return Err(ApiError::new("invalid_cursor"));
    }
    let end = (offset + limit).min(items.len());
    let page_number = offset / limit.max(1);
    if world.settings.short_pages && !replayed && page_number % 3 == 1 && offset < items.len() {
        return Ok((Vec::new(), encode_cursor(offset, true)));
    }
    let chosen = items[offset..end].iter().filter(|i| keep(i)).collect();
    let next = if end < items.len() {
        encode_cursor(end, false)
    } else {
        String::new()
    };
    Ok((chosen, next))
}

fn metadata(next_cursor: String) -> Value {
    json!({ "next_cursor": next_cursor })
}

// ---- wire objects ------------------------------------------------------------------------

/// Slack's user object. Typed rather than built as a `Value`, because user listings are
/// the emulator's largest and most frequent replies: serialising borrowed fields straight
/// to text costs a few allocations instead of hundreds.
#[derive(Serialize)]
struct WireUser<'a> {
    id: &'a str,
    team_id: &'a str,
    name: &'a str,
    deleted: bool,
    color: &'static str,
    real_name: String,
    tz: &'static str,
    tz_label: &'static str,
    tz_offset: i32,
    profile: WireProfile<'a>,
    is_admin: bool,
    is_owner: bool,
    is_primary_owner: bool,
    is_restricted: bool,
    is_ultra_restricted: bool,
    is_bot: bool,
    is_app_user: bool,
    updated: u64,
    is_email_confirmed: bool,
    who_can_share_contact_card: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    enterprise_user: Option<WireEnterpriseUser<'a>>,
}

#[derive(Serialize)]
struct WireProfile<'a> {
    title: &'a str,
    phone: &'static str,
    skype: &'static str,
    real_name: String,
    real_name_normalized: String,
    display_name: &'a str,
    display_name_normalized: &'a str,
    fields: BTreeMap<String, String>,
    status_text: &'static str,
    status_emoji: &'static str,
    status_expiration: u64,
    avatar_hash: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    first_name: &'a str,
    last_name: &'a str,
    team: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_app_id: Option<&'static str>,
}

#[derive(Serialize)]
struct WireEnterpriseUser<'a> {
    id: &'a str,
    enterprise_id: &'a str,
    enterprise_name: &'a str,
    is_admin: bool,
    is_owner: bool,
    is_primary_owner: bool,
    teams: &'a [String],
}

fn user_object<'a>(
    world: &'a World,
    user: &'a crate::world::User,
    show_email: bool,
) -> WireUser<'a> {
    let real_name = format!("{} {}", user.given_name, user.family_name)
        .trim()
        .to_string();
    let display_name = if user.display_name.is_empty() {
        &user.user_name
    } else {
        &user.display_name
    };
    let team = user.workspaces.first().map_or("", String::as_str);
    WireUser {
        id: &user.id,
        team_id: team,
        name: &user.user_name,
        deleted: !user.active,
        color: "9f69e7",
        real_name: real_name.clone(),
        tz: "Europe/London",
        tz_label: "Greenwich Mean Time",
        tz_offset: 0,
        profile: WireProfile {
            title: &user.title,
            phone: "",
            skype: "",
            real_name: real_name.clone(),
            real_name_normalized: real_name,
            display_name,
            display_name_normalized: display_name,
            fields: BTreeMap::new(),
            status_text: "",
            status_emoji: "",
            status_expiration: 0,
            avatar_hash: "",
            email: show_email.then_some(user.email.as_str()),
            first_name: &user.given_name,
            last_name: &user.family_name,
            team,
            bot_id: user.bot.then(|| format!("B{}", &user.id[1..])),
            api_app_id: user.bot.then_some("A0000BOT"),
        },
        is_admin: user.admin,
        is_owner: user.owner,
        is_primary_owner: user.primary_owner,
        is_restricted: user.guest.is_some(),
        is_ultra_restricted: user.guest == Some(Guest::Single),
        is_bot: user.bot,
        is_app_user: false,
        updated: user.updated,
        is_email_confirmed: true,
        who_can_share_contact_card: "EVERYONE",
        enterprise_user: world
            .enterprise
            .as_ref()
            .map(|enterprise| WireEnterpriseUser {
                id: &user.id,
                enterprise_id: &enterprise.id,
                enterprise_name: &enterprise.name,
                is_admin: user.admin,
                is_owner: user.owner,
                is_primary_owner: user.primary_owner,
                teams: &user.workspaces,
            }),
    }
}

/// A person as `users.info` renders them (without email), for events.
pub(crate) fn user_json(world: &World, user: &crate::world::User) -> Value {
    serde_json::to_value(user_object(world, user, false)).expect("a user serialises")
}

/// A usergroup as `usergroups.list` renders it, with its users, for events.
pub(crate) fn usergroup_json(world: &World, group: &Usergroup) -> Value {
    usergroup_object(world, group, true)
}

fn usergroup_object(world: &World, group: &Usergroup, include_users: bool) -> Value {
    let (private, public): (Vec<&String>, Vec<&String>) = group
        .channels
        .iter()
        .partition(|c| world.channel(c).is_some_and(|c| c.private));
    let mut object = json!({
        "id": group.id,
        "team_id": group.workspace,
        "is_usergroup": true,
        "is_subteam": true,
        "name": group.name,
        "description": group.description,
        "handle": group.handle,
        "is_external": false,
        "date_create": group.created,
        "date_update": group.updated,
        "date_delete": if group.disabled { group.updated } else { 0 },
        "auto_type": null,
        "created_by": group.created_by,
        "updated_by": group.updated_by,
        "deleted_by": if group.disabled { json!(group.updated_by) } else { Value::Null },
        "prefs": { "channels": public, "groups": private },
        "user_count": group.users.len(),
        "channel_count": group.channels.len(),
        "is_idp_group": false,
        "enterprise_subteam_id": "",
    });
    if include_users {
        object["users"] = json!(group.users);
    }
    object
}

fn channel_object(channel: &crate::world::Channel, caller_user: &str, with_count: bool) -> Value {
    let mut object = json!({
        "id": channel.id,
        "name": channel.name,
        "name_normalized": channel.name,
        "is_channel": !channel.private,
        "is_group": channel.private,
        "is_im": false,
        "is_mpim": false,
        "is_private": channel.private,
        "is_archived": channel.archived,
        "is_general": channel.general,
        "is_shared": false,
        "is_ext_shared": false,
        "is_org_shared": false,
        "is_pending_ext_shared": false,
        "is_member": channel.members.iter().any(|m| m == caller_user),
        "created": channel.created,
        "creator": channel.creator,
        "unlinked": 0,
        "context_team_id": channel.workspace,
        "shared_team_ids": [channel.workspace],
        "topic": { "value": channel.topic, "creator": channel.creator, "last_set": channel.created },
        "purpose": { "value": channel.purpose, "creator": channel.creator, "last_set": channel.created },
        "previous_names": [],
    });
    if with_count {
        object["num_members"] = json!(channel.members.len());
    }
    object
}
