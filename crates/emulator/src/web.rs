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

use super::world::{Guest, Token, TokenKind, Usergroup, World};

/// A Web API method's fixed properties.
pub struct MethodSpec {
    pub name: &'static str,
    /// Whether a JSON body is accepted (Slack's `json_input_supported`).
    pub json: bool,
    /// Only user tokens (`xoxp-`) may call it.
    pub user_only: bool,
    /// Scopes of which the token needs at least one (empty: none needed).
    pub scopes: &'static [&'static str],
}

const fn spec(
    name: &'static str,
    json: bool,
    user_only: bool,
    scopes: &'static [&'static str],
) -> MethodSpec {
    MethodSpec {
        name,
        json,
        user_only,
        scopes,
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

/// Every method the emulator serves. Tiers come from `slack::limits::web_tier`.
pub const METHODS: &[MethodSpec] = &[
    spec("auth.test", true, false, &[]),
    spec("users.list", false, false, &["users:read"]),
    spec("users.info", false, false, &["users:read"]),
    spec("users.lookupByEmail", false, false, &["users:read.email"]),
    spec("usergroups.list", false, false, &["usergroups:read"]),
    spec("usergroups.create", true, false, &["usergroups:write"]),
    spec("usergroups.update", true, false, &["usergroups:write"]),
    spec("usergroups.disable", true, false, &["usergroups:write"]),
    spec("usergroups.enable", true, false, &["usergroups:write"]),
    spec("usergroups.users.list", false, false, &["usergroups:read"]),
    spec(
        "usergroups.users.update",
        true,
        false,
        &["usergroups:write"],
    ),
    spec("conversations.list", false, false, CHANNEL_READ),
    spec("conversations.info", false, false, CHANNEL_READ),
    spec("conversations.members", false, false, CHANNEL_READ),
    spec("conversations.create", true, false, CHANNEL_MANAGE),
    spec("conversations.archive", true, false, CHANNEL_MANAGE),
    spec("conversations.unarchive", true, false, CHANNEL_MANAGE),
    spec("conversations.invite", true, false, CHANNEL_INVITE),
    spec("conversations.kick", true, false, CHANNEL_MANAGE),
    spec("admin.users.list", true, true, &["admin.users:read"]),
    spec("admin.users.assign", true, true, &["admin.users:write"]),
    spec("admin.users.remove", true, true, &["admin.users:write"]),
    spec("admin.users.setAdmin", true, true, &["admin.users:write"]),
    spec("admin.users.setOwner", true, true, &["admin.users:write"]),
    spec("admin.users.setRegular", true, true, &["admin.users:write"]),
    spec(
        "admin.users.session.reset",
        true,
        true,
        &["admin.users:write"],
    ),
    spec(
        "admin.users.session.list",
        true,
        true,
        &["admin.users:read"],
    ),
    spec(
        "admin.users.session.resetBulk",
        true,
        true,
        &["admin.users:write"],
    ),
    spec(
        "admin.usergroups.addChannels",
        true,
        true,
        &["admin.usergroups:write"],
    ),
    spec(
        "admin.usergroups.listChannels",
        true,
        true,
        &["admin.usergroups:read"],
    ),
    spec(
        "admin.usergroups.removeChannels",
        true,
        true,
        &["admin.usergroups:write"],
    ),
    spec(
        "admin.usergroups.addTeams",
        true,
        true,
        &["admin.teams:write"],
    ),
    // Slack's method reference allows a JSON body here (json_input_supported).
    spec(
        "admin.conversations.invite",
        true,
        true,
        &["admin.conversations:write"],
    ),
    spec("team.integrationLogs", false, true, &["admin"]),
    spec("chat.postMessage", true, false, &["chat:write"]),
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
    Caller {
        token: token.clone(),
        now: 0,
    }
    .require_any(spec.scopes)
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
    match method {
        "auth.test" => auth_test(world, caller),
        "users.list" => users_list(world, caller, args),
        "users.info" => users_info(world, caller, args),
        "users.lookupByEmail" => users_lookup_by_email(world, caller, args),
        "usergroups.list" => usergroups_list(world, caller, args),
        "usergroups.create" => usergroups_create(world, caller, args),
        "usergroups.update" => usergroups_update(world, caller, args),
        "usergroups.disable" => usergroups_set_enabled(world, caller, args, false),
        "usergroups.enable" => usergroups_set_enabled(world, caller, args, true),
        "usergroups.users.list" => usergroups_users_list(world, caller, args),
        "usergroups.users.update" => usergroups_users_update(world, caller, args),
        "conversations.list" => conversations_list(world, caller, args),
        "conversations.info" => conversations_info(world, caller, args),
        "conversations.members" => conversations_members(world, caller, args),
        "conversations.create" => conversations_create(world, caller, args),
        "conversations.archive" => conversations_set_archived(world, caller, args, true),
        "conversations.unarchive" => conversations_set_archived(world, caller, args, false),
        "conversations.invite" => conversations_invite(world, caller, args),
        "conversations.kick" => conversations_kick(world, caller, args),
        "admin.users.list" => admin_users_list(world, caller, args),
        "admin.users.assign" => admin_users_assign(world, caller, args),
        "admin.users.remove" => admin_users_remove(world, caller, args),
        "admin.users.setAdmin" => admin_users_set_role(world, caller, args, Role::Admin),
        "admin.users.setOwner" => admin_users_set_role(world, caller, args, Role::Owner),
        "admin.users.setRegular" => admin_users_set_role(world, caller, args, Role::Regular),
        "admin.users.session.reset" => admin_session_reset(world, caller, args, false),
        "admin.users.session.list" => admin_session_list(world, caller, args),
        "admin.users.session.resetBulk" => admin_session_reset(world, caller, args, true),
        "admin.usergroups.addChannels" => admin_usergroups_channels(world, caller, args, true),
        "admin.usergroups.removeChannels" => admin_usergroups_channels(world, caller, args, false),
        "admin.usergroups.listChannels" => admin_usergroups_list_channels(world, caller, args),
        "admin.usergroups.addTeams" => admin_usergroups_add_teams(world, caller, args),
        "admin.conversations.invite" => admin_conversations_invite(world, caller, args),
        "team.integrationLogs" => team_integration_logs(world, caller, args),
        "chat.postMessage" => chat_post_message(world, caller, args),
        _ => Err(ApiError::new("unknown_method")),
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
    user: &'a super::world::User,
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

fn channel_object(channel: &super::world::Channel, caller_user: &str, with_count: bool) -> Value {
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

// ---- auth, users ---------------------------------------------------------------------------

fn auth_test(world: &World, caller: &Caller) -> Reply {
    let user = world.user(&caller.token.user);
    let team_id = caller
        .token
        .workspace
        .clone()
        .or_else(|| world.enterprise.as_ref().map(|e| e.id.clone()))
        .unwrap_or_default();
    let workspace = world.workspaces.iter().find(|w| w.id == team_id);
    let mut reply = vec![
        (
            "url",
            json!(format!(
                "https://{}.slack.com/",
                workspace.map_or("org", |w| w.domain.as_str())
            )),
        ),
        ("team", json!(workspace.map_or("", |w| w.name.as_str()))),
        ("user", json!(user.map_or("", |u| u.user_name.as_str()))),
        ("team_id", json!(team_id)),
        ("user_id", json!(caller.token.user)),
        ("is_enterprise_install", json!(caller.token.org_level)),
    ];
    if let Some(enterprise) = &world.enterprise {
        reply.push(("enterprise_id", json!(enterprise.id)));
    }
    if caller.token.kind == TokenKind::Bot {
        reply.push(("bot_id", json!(format!("B{}", &caller.token.user[1..]))));
    }
    ok(reply)
}

fn users_list(world: &World, caller: &Caller, args: &Args) -> Reply {
    let team = workspace(world, caller, args, "missing_argument")?;
    let members: Vec<&super::world::User> = world
        .users
        .iter()
        .filter(|u| u.workspaces.contains(&team))
        .collect();
    if args.get("limit").is_none_or(|l| l == "0") && members.len() > 1000 {
        return Err(ApiError::new("limit_required"));
    }
    let show_email = caller.has_scope("users:read.email");
    let (chosen, next) = page(world, &members, args, members.len().max(1), 1000, |_| true)?;
    let objects: Vec<WireUser> = chosen
        .into_iter()
        .map(|u| user_object(world, u, show_email))
        .collect();
    Ok(vec![
        ("members", raw(&objects)),
        ("cache_ts", raw(&caller.now)),
        ("response_metadata", raw(&metadata(next))),
    ])
}

fn users_info(world: &World, caller: &Caller, args: &Args) -> Reply {
    let id = args.required("user")?;
    let user = world
        .user(id)
        .ok_or_else(|| ApiError::new("user_not_found"))?;
    Ok(vec![(
        "user",
        raw(&user_object(
            world,
            user,
            caller.has_scope("users:read.email"),
        )),
    )])
}

fn users_lookup_by_email(world: &World, _caller: &Caller, args: &Args) -> Reply {
    let email = args.required("email")?;
    let skip_deactivated = world.settings.lookup_by_email_skips_deactivated;
    match world
        .user_by_email(email)
        .filter(|u| u.active || !skip_deactivated)
    {
        Some(user) => Ok(vec![("user", raw(&user_object(world, user, true)))]),
        None => Err(ApiError::new("users_not_found")),
    }
}

// ---- usergroups --------------------------------------------------------------------------

/// What an org-level token's call without `team_id` answers, as the method reference
/// names it per method.
const TARGET_TEAM: &str = "target_team_must_be_specified_in_org_context";
const MISSING_ARGUMENT: &str = "missing_argument";

fn usergroups_list(world: &World, caller: &Caller, args: &Args) -> Reply {
    let team = workspace(world, caller, args, MISSING_ARGUMENT)?;
    let include_disabled = args.flag("include_disabled");
    let include_users = args.flag("include_users");
    let groups: Vec<Value> = world
        .usergroups
        .iter()
        .filter(|g| g.workspace == team && (include_disabled || !g.disabled))
        .map(|g| usergroup_object(world, g, include_users))
        .collect();
    ok(vec![("usergroups", json!(groups))])
}

fn may_edit_usergroups(world: &World, caller: &Caller) -> Result<(), ApiError> {
    if world.settings.bots_may_edit_usergroups {
        return Ok(());
    }
    let admin = world
        .user(&caller.token.user)
        .is_some_and(|u| u.admin || u.owner || u.primary_owner);
    if caller.token.kind == TokenKind::User && admin {
        Ok(())
    } else {
        Err(ApiError::new("permission_denied"))
    }
}

fn valid_handle(handle: &str) -> bool {
    !handle.is_empty()
        && handle.chars().count() <= 21
        && handle
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

/// Checks a name and handle against every group of the workspace, disabled ones included
/// (a disabled group still holds its name and handle).
fn check_usergroup_names(
    world: &World,
    team: &str,
    except: Option<&str>,
    name: Option<&str>,
    handle: Option<&str>,
) -> Result<(), ApiError> {
    let others = || {
        world
            .usergroups
            .iter()
            .filter(move |g| g.workspace == team && Some(g.id.as_str()) != except)
    };
    if let Some(name) = name {
        if name.chars().count() > 255 {
            return Err(ApiError::new("name_too_long"));
        }
        if others().any(|g| g.name.eq_ignore_ascii_case(name)) {
            return Err(ApiError::new("name_already_exists"));
        }
    }
    if let Some(handle) = handle {
        if !valid_handle(handle) {
            return Err(ApiError::new("bad_handle"));
        }
        if others().any(|g| g.handle == handle) {
            return Err(ApiError::new("handle_already_exists"));
        }
    }
    Ok(())
}

fn check_channels(world: &World, team: &str, channels: &[String]) -> Result<(), ApiError> {
    for id in channels {
        match world.channel(id) {
            Some(channel) if channel.workspace == team => {}
            _ => return Err(ApiError::new("invalid_channel_provided")),
        }
    }
    Ok(())
}

fn usergroups_create(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    let team = workspace(world, caller, args, TARGET_TEAM)?;
    may_edit_usergroups(world, caller)?;
    let name = args
        .get("name")
        .ok_or_else(|| ApiError::new("missing_subteam_name"))?;
    let handle = args.get("handle");
    let description = args.get("description").unwrap_or_default();
    if description.chars().count() > 140 {
        return Err(ApiError::new("description_too_long"));
    }
    check_usergroup_names(world, &team, None, Some(name), handle)?;
    let channels = args.list("channels");
    check_channels(world, &team, &channels)?;
    let id = world.mint_id('S');
    let group = Usergroup {
        id: id.clone(),
        workspace: team,
        handle: handle.unwrap_or(name).to_lowercase().replace(' ', "-"),
        name: name.to_string(),
        description: description.to_string(),
        users: Vec::new(),
        channels,
        disabled: false,
        created: caller.now,
        updated: caller.now,
        created_by: caller.token.user.clone(),
        updated_by: caller.token.user.clone(),
    };
    world.usergroups.push(group);
    reply_usergroup(world, &id, args)
}

fn reply_usergroup(world: &World, id: &str, args: &Args) -> Reply {
    let group = world
        .usergroups
        .iter()
        .find(|g| g.id == id)
        .ok_or_else(|| ApiError::new("no_such_subteam"))?;
    let mut object = usergroup_object(world, group, true);
    if !args.flag("include_count")
        && let Some(map) = object.as_object_mut()
    {
        map.remove("user_count");
    }
    ok(vec![("usergroup", object)])
}

/// The usergroup a call names, checked to be in the caller's workspace. An org-level
/// token must name the workspace (`team_id`); without it the call fails with `missing`.
fn own_usergroup<'a>(
    world: &'a World,
    caller: &Caller,
    args: &Args,
    missing: &str,
) -> Result<&'a Usergroup, ApiError> {
    let id = args.required("usergroup")?;
    let group = world
        .usergroups
        .iter()
        .find(|g| g.id == id)
        .ok_or_else(|| ApiError::new("no_such_subteam"))?;
    let team = if caller.token.org_level {
        args.get("team_id")
            .ok_or_else(|| ApiError::new(missing))?
            .to_string()
    } else {
        caller.token.workspace.clone().unwrap_or_default()
    };
    if group.workspace != team {
        return Err(ApiError::new("no_such_subteam"));
    }
    Ok(group)
}

fn usergroups_update(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    may_edit_usergroups(world, caller)?;
    let group = own_usergroup(world, caller, args, MISSING_ARGUMENT)?;
    let (id, team) = (group.id.clone(), group.workspace.clone());
    check_usergroup_names(
        world,
        &team,
        Some(&id),
        args.get("name"),
        args.get("handle"),
    )?;
    if args
        .get("description")
        .is_some_and(|d| d.chars().count() > 140)
    {
        return Err(ApiError::new("description_too_long"));
    }
    let channels = args
        .0
        .contains_key("channels")
        .then(|| args.list("channels"));
    if let Some(channels) = &channels {
        check_channels(world, &team, channels)?;
        if channels.len() > 100 {
            return Err(ApiError::new("too_many_linked_channels"));
        }
    }
    let group = world.usergroup_mut(&id).expect("found above");
    if let Some(name) = args.get("name") {
        group.name = name.to_string();
    }
    if let Some(handle) = args.get("handle") {
        group.handle = handle.to_string();
    }
    if let Some(description) = args.0.get("description") {
        group.description = description.clone();
    }
    if let Some(channels) = channels {
        group.channels = channels;
    }
    group.updated = caller.now;
    group.updated_by = caller.token.user.clone();
    reply_usergroup(world, &id, args)
}

fn usergroups_set_enabled(world: &mut World, caller: &Caller, args: &Args, enable: bool) -> Reply {
    may_edit_usergroups(world, caller)?;
    let missing = if enable {
        MISSING_ARGUMENT
    } else {
        TARGET_TEAM
    };
    let group = own_usergroup(world, caller, args, missing)?;
    if enable && !group.disabled {
        return Err(ApiError::new("already_enabled"));
    }
    let id = group.id.clone();
    let group = world.usergroup_mut(&id).expect("found above");
    group.disabled = !enable;
    group.updated = caller.now;
    group.updated_by = caller.token.user.clone();
    reply_usergroup(world, &id, args)
}

fn usergroups_users_list(world: &World, caller: &Caller, args: &Args) -> Reply {
    let group = own_usergroup(world, caller, args, MISSING_ARGUMENT)?;
    if group.disabled && !args.flag("include_disabled") {
        return Err(ApiError::new("no_such_subteam"));
    }
    ok(vec![("users", json!(group.users))])
}

fn usergroups_users_update(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    may_edit_usergroups(world, caller)?;
    let group = own_usergroup(world, caller, args, MISSING_ARGUMENT)?;
    let (id, team) = (group.id.clone(), group.workspace.clone());
    let users = args.list("users");
    if users.is_empty() {
        // Slack cannot empty a usergroup; disable it instead.
        return Err(ApiError::new("no_users_provided"));
    }
    let mut outside = Vec::new();
    for user_id in &users {
        let Some(user) = world.user(user_id) else {
            return Err(ApiError::new("invalid_users"));
        };
        if !user.active || user.bot || user.guest.is_some() {
            return Err(ApiError::new("invalid_users"));
        }
        if !user.workspaces.contains(&team) {
            outside.push(user_id.clone());
        }
    }
    if !outside.is_empty() {
        return Err(ApiError::new("failed_for_some_users").with("invalid_users", json!(outside)));
    }
    let unique: Vec<String> = {
        let mut seen = BTreeSet::new();
        users
            .into_iter()
            .filter(|u| seen.insert(u.clone()))
            .collect()
    };
    let group = world.usergroup_mut(&id).expect("found above");
    group.users = unique;
    group.updated = caller.now;
    group.updated_by = caller.token.user.clone();
    reply_usergroup(world, &id, args)
}

// ---- conversations ------------------------------------------------------------------------

/// A channel the caller can see: public ones in its workspaces, private ones it is in.
fn visible_channel<'a>(
    world: &'a World,
    caller: &Caller,
    id: &str,
) -> Result<&'a super::world::Channel, ApiError> {
    let channel = world
        .channel(id)
        .ok_or_else(|| ApiError::new("channel_not_found"))?;
    if channel.private && !channel.members.contains(&caller.token.user) {
        return Err(ApiError::new("channel_not_found"));
    }
    let scope = if channel.private {
        "groups:read"
    } else {
        "channels:read"
    };
    if !caller.has_scope(scope)
        && !caller.has_scope(if channel.private {
            "groups:write"
        } else {
            "channels:manage"
        })
    {
        return Err(missing_scope(&[scope], &caller.token));
    }
    Ok(channel)
}

fn conversations_list(world: &World, caller: &Caller, args: &Args) -> Reply {
    let team = workspace(world, caller, args, "missing_argument")?;
    let types = args.list("types");
    let types: BTreeSet<&str> = if types.is_empty() {
        BTreeSet::from(["public_channel"])
    } else {
        types.iter().map(String::as_str).collect()
    };
    if types
        .iter()
        .any(|t| !["public_channel", "private_channel", "mpim", "im"].contains(t))
    {
        return Err(ApiError::new("invalid_types"));
    }
    if types.contains("private_channel") && !caller.has_scope("groups:read") {
        return Err(missing_scope(&["groups:read"], &caller.token));
    }
    if types.contains("public_channel") && !caller.has_scope("channels:read") {
        return Err(missing_scope(&["channels:read"], &caller.token));
    }
    let exclude_archived = args.flag("exclude_archived");
    let in_team: Vec<&super::world::Channel> = world
        .channels
        .iter()
        .filter(|c| c.workspace == team)
        .collect();
    let user = caller.token.user.clone();
    let (chosen, next) = page(world, &in_team, args, 100, 999, |c| {
        let wanted = if c.private {
            types.contains("private_channel") && c.members.contains(&user)
        } else {
            types.contains("public_channel")
        };
        wanted && !(exclude_archived && c.archived)
    })?;
    let objects: Vec<Value> = chosen
        .into_iter()
        .map(|c| channel_object(c, &user, true))
        .collect();
    ok(vec![
        ("channels", json!(objects)),
        ("response_metadata", metadata(next)),
    ])
}

fn conversations_info(world: &World, caller: &Caller, args: &Args) -> Reply {
    let channel = visible_channel(world, caller, args.required("channel")?)?;
    ok(vec![(
        "channel",
        channel_object(
            channel,
            &caller.token.user,
            args.flag("include_num_members"),
        ),
    )])
}

fn conversations_members(world: &World, caller: &Caller, args: &Args) -> Reply {
    let channel = visible_channel(world, caller, args.required("channel")?)?;
    let (chosen, next) = page(world, &channel.members, args, 100, 1000, |_| true)?;
    ok(vec![
        ("members", json!(chosen)),
        ("response_metadata", metadata(next)),
    ])
}

fn check_channel_name(world: &World, team: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::new("invalid_name_required"));
    }
    if name.chars().count() > 80 {
        return Err(ApiError::new("invalid_name_maxlength"));
    }
    // Periods and spaces are punctuation Slack refuses; so is a name of punctuation alone.
    if name.contains(['.', ' ']) || !name.chars().any(char::is_alphanumeric) {
        return Err(ApiError::new("invalid_name_punctuation"));
    }
    if !name.chars().all(|c| {
        c.is_lowercase()
            || c.is_ascii_digit()
            || c == '-'
            || c == '_'
            || (c.is_alphabetic() && !c.is_uppercase())
    }) {
        return Err(ApiError::new("invalid_name_specials"));
    }
    let taken = world
        .channels
        .iter()
        .any(|c| c.workspace == team && c.name == name)
        || world.users.iter().any(|u| u.user_name == name);
    if taken {
        return Err(ApiError::new("name_taken"));
    }
    Ok(())
}

fn conversations_create(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    let team = workspace(world, caller, args, "missing_argument")?;
    let name = args.get("name").unwrap_or_default();
    let private = args.flag("is_private");
    if private && !caller.has_scope("groups:write") {
        return Err(missing_scope(&["groups:write"], &caller.token));
    }
    check_channel_name(world, &team, name)?;
    let id = world.mint_id('C');
    let channel = super::world::Channel {
        id: id.clone(),
        workspace: team,
        name: name.to_string(),
        private,
        archived: false,
        general: false,
        topic: String::new(),
        purpose: String::new(),
        members: vec![caller.token.user.clone()],
        creator: caller.token.user.clone(),
        created: caller.now,
    };
    let object = channel_object(&channel, &caller.token.user, false);
    world.add_channel(channel);
    ok(vec![("channel", object)])
}

/// A channel a write acts on: it must exist, be visible, and for private channels the
/// caller must be in it.
fn writable_channel(
    world: &World,
    caller: &Caller,
    id: &str,
) -> Result<super::world::Channel, ApiError> {
    let channel = world
        .channel(id)
        .ok_or_else(|| ApiError::new("channel_not_found"))?;
    if channel.private {
        if !caller.has_scope("groups:write") && !caller.has_scope("groups:write.invites") {
            return Err(missing_scope(&["groups:write"], &caller.token));
        }
        if !channel.members.contains(&caller.token.user) {
            return Err(ApiError::new("not_in_channel"));
        }
    }
    Ok(channel.clone())
}

fn conversations_set_archived(
    world: &mut World,
    caller: &Caller,
    args: &Args,
    archive: bool,
) -> Reply {
    let channel = writable_channel(world, caller, args.required("channel")?)?;
    match (archive, channel.archived) {
        (true, true) => return Err(ApiError::new("already_archived")),
        (false, false) => return Err(ApiError::new("not_archived")),
        _ => {}
    }
    if archive && channel.general {
        return Err(ApiError::new("cant_archive_general"));
    }
    world
        .channel_mut(&channel.id)
        .expect("found above")
        .archived = archive;
    ok(Vec::new())
}

fn conversations_invite(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    let channel = writable_channel(world, caller, args.required("channel")?)?;
    if channel.archived {
        return Err(ApiError::new("is_archived"));
    }
    let users = args.list("users");
    if users.is_empty() {
        return Err(ApiError::new("no_user"));
    }
    if users.len() > 100 {
        return Err(ApiError::new("too_many_users"));
    }
    let mut errors = Vec::new();
    let mut accepted = Vec::new();
    for id in &users {
        let error = match world.user(id) {
            None => Some("user_not_found"),
            Some(_) if *id == caller.token.user => Some("cant_invite_self"),
            Some(_) if channel.members.contains(id) => Some("already_in_channel"),
            Some(user) if !user.active => Some("cant_invite"),
            Some(user) if !user.workspaces.contains(&channel.workspace) => {
                Some("org_user_not_in_team")
            }
            Some(user)
                if user.guest == Some(Guest::Single)
                    && world.channels.iter().any(|c| c.members.contains(id)) =>
            {
                Some("ura_max_channels")
            }
            Some(_) => None,
        };
        match error {
            Some(error) => errors.push(json!({"user": id, "ok": false, "error": error})),
            None => accepted.push(id.clone()),
        }
    }
    if !errors.is_empty() && !args.flag("force") {
        let first = errors[0]["error"]
            .as_str()
            .unwrap_or("cant_invite")
            .to_string();
        return Err(ApiError::new(&first).with("errors", json!(errors)));
    }
    let target = world.channel_mut(&channel.id).expect("found above");
    target.members.extend(accepted);
    let object = channel_object(target, &caller.token.user, false);
    let mut reply = vec![("channel", object)];
    if !errors.is_empty() {
        reply.push(("errors", json!(errors)));
    }
    ok(reply)
}

fn conversations_kick(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    let channel = writable_channel(world, caller, args.required("channel")?)?;
    let user = args
        .get("user")
        .ok_or_else(|| ApiError::new("user_not_found"))?;
    if user.contains(',') {
        return Err(ApiError::new("invalid_arguments"));
    }
    if world.user(user).is_none() {
        return Err(ApiError::new("user_not_found"));
    }
    if user == caller.token.user {
        return Err(ApiError::new("cant_kick_self"));
    }
    if channel.general {
        return Err(ApiError::new("cant_kick_from_general"));
    }
    if !channel.members.iter().any(|m| m == user) {
        return Err(ApiError::new("not_in_channel"));
    }
    world
        .channel_mut(&channel.id)
        .expect("found above")
        .members
        .retain(|m| m != user);
    ok(vec![("errors", json!({}))])
}

/// `chat.postMessage`: `channel` is an id or a name (`#it-ops`), in `team_id`'s workspace
/// or the caller's; a private channel needs the caller in it, a public one too unless the
/// token has `chat:write.public`. The message is kept for tests to read.
fn chat_post_message(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    let target = args.required("channel")?;
    let team = team_for(world, &caller.token, args);
    let channel = world
        .channel(target)
        .or_else(|| {
            let name = target.trim_start_matches('#');
            world
                .channels
                .iter()
                .find(|c| c.name == name && team.as_deref().is_none_or(|t| c.workspace == t))
        })
        .cloned()
        .ok_or_else(|| ApiError::new("channel_not_found"))?;
    let member = channel.members.contains(&caller.token.user);
    if channel.private && !member {
        return Err(ApiError::new("channel_not_found"));
    }
    if !member && !caller.has_scope("chat:write.public") {
        return Err(ApiError::new("not_in_channel"));
    }
    if channel.archived {
        return Err(ApiError::new("is_archived"));
    }
    let text = args.get("text").unwrap_or_default().to_string();
    let blocks = match args.get("blocks").filter(|b| !b.is_empty()) {
        None => Value::Null,
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Array(items)) if items.len() <= 50 => Value::Array(items),
            _ => return Err(ApiError::new("invalid_blocks")),
        },
    };
    if text.trim().is_empty() && blocks.is_null() {
        return Err(ApiError::new("no_text"));
    }
    if text.chars().count() > 40_000 {
        return Err(ApiError::new("msg_too_long"));
    }
    let ts = format!("{}.{:06}", caller.now, world.messages.len() + 1);
    world.messages.push(super::world::Message {
        channel: channel.id.clone(),
        user: caller.token.user.clone(),
        text: text.clone(),
        blocks: blocks.clone(),
        ts: ts.clone(),
    });
    ok(vec![
        ("channel", json!(channel.id)),
        ("ts", json!(ts)),
        (
            "message",
            json!({"type": "message", "user": caller.token.user, "text": text, "ts": ts, "blocks": blocks}),
        ),
    ])
}

// ---- admin.* ------------------------------------------------------------------------------

fn admin_users_list(world: &World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let team = args.get("team_id");
    let want_active = args
        .get("is_active")
        .is_none_or(|v| v == "true" || v == "1");
    let candidates: Vec<&super::world::User> = world
        .users
        .iter()
        .filter(|u| team.is_none_or(|t| u.workspaces.iter().any(|w| w == t)))
        .collect();
    let (chosen, next) = page(world, &candidates, args, 100, 1000, |u| {
        u.active == want_active
    })?;
    let objects: Vec<Value> = chosen
        .into_iter()
        .map(|u| {
            json!({
                "id": u.id,
                "email": u.email,
                "is_admin": u.admin,
                "is_owner": u.owner,
                "is_primary_owner": u.primary_owner,
                "is_restricted": u.guest.is_some(),
                "is_ultra_restricted": u.guest == Some(Guest::Single),
                "is_bot": u.bot,
                "username": u.user_name,
                "full_name": format!("{} {}", u.given_name, u.family_name).trim(),
                "is_active": u.active,
                "date_created": u.created,
                "deactivated_ts": if u.active { 0 } else { u.updated },
                "expiration_ts": 0,
                "workspaces": u.workspaces,
                "has_2fa": true,
                "has_sso": true,
            })
        })
        .collect();
    ok(vec![
        ("users", json!(objects)),
        ("response_metadata", metadata(next)),
    ])
}

fn admin_target<'a>(
    world: &'a World,
    args: &Args,
) -> Result<(String, &'a super::world::User), ApiError> {
    let team = args.required("team_id")?.to_string();
    if !world.workspaces.iter().any(|w| w.id == team) {
        return Err(ApiError::new("team_not_found"));
    }
    let user = world
        .user(args.required("user_id")?)
        .ok_or_else(|| ApiError::new("user_not_found"))?;
    Ok((team, user))
}

fn admin_users_assign(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let (team, user) = admin_target(world, args)?;
    if user.bot {
        return Err(ApiError::new("user_is_bot"));
    }
    if !user.active {
        return Err(ApiError::new("invited_user_not_reactivated"));
    }
    if user.workspaces.contains(&team) {
        return Err(ApiError::new("user_already_team_member"));
    }
    let id = user.id.clone();
    let user = world.user_mut(&id).expect("found above");
    user.workspaces.push(team);
    user.updated = caller.now;
    ok(Vec::new())
}

/// A workspace role `admin.users.set*` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Regular,
    Admin,
    Owner,
}

/// `admin.users.setAdmin`, `setOwner`, `setRegular`: the primary owner cannot be changed;
/// bots, guests and deactivated people cannot hold a role.
fn admin_users_set_role(world: &mut World, caller: &Caller, args: &Args, role: Role) -> Reply {
    require_enterprise_admin(world, caller)?;
    let (team, user) = admin_target(world, args)?;
    if user.primary_owner {
        return Err(ApiError::new("cannot_modify_primary_owner"));
    }
    if user.bot || user.guest.is_some() || !user.active {
        return Err(ApiError::new("invalid_role_for_user"));
    }
    if !user.workspaces.contains(&team) {
        return Err(ApiError::new("user_not_found"));
    }
    let id = user.id.clone();
    let user = world.user_mut(&id).expect("found above");
    user.admin = role != Role::Regular;
    user.owner = role == Role::Owner;
    user.updated = caller.now;
    ok(Vec::new())
}

fn admin_users_remove(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let (team, user) = admin_target(world, args)?;
    if user.primary_owner {
        return Err(ApiError::new("cannot_modify_primary_owner"));
    }
    if !user.workspaces.contains(&team) {
        return Err(ApiError::new("failed_to_remove_user_from_workspace"));
    }
    let id = user.id.clone();
    let user = world.user_mut(&id).expect("found above");
    user.workspaces.retain(|w| *w != team);
    user.updated = caller.now;
    for group in world.usergroups.iter_mut().filter(|g| g.workspace == team) {
        group.users.retain(|u| *u != id);
    }
    for channel in world.channels.iter_mut().filter(|c| c.workspace == team) {
        channel.members.retain(|u| *u != id);
    }
    ok(Vec::new())
}

fn admin_session_reset(world: &mut World, caller: &Caller, args: &Args, bulk: bool) -> Reply {
    require_enterprise_admin(world, caller)?;
    let ids = if bulk {
        let ids = args.list("user_ids");
        if ids.is_empty() {
            return Err(ApiError::new("invalid_arguments"));
        }
        if ids.len() > 1000 {
            return Err(ApiError::new("invalid_arguments"));
        }
        ids
    } else {
        vec![args.required("user_id")?.to_string()]
    };
    let mut failed = Vec::new();
    for id in &ids {
        match world.user(id) {
            None => failed.push(id.clone()),
            Some(user) if user.bot => {
                if bulk {
                    failed.push(id.clone());
                } else {
                    return Err(ApiError::new("cannot_reset_bot"));
                }
            }
            Some(user) if user.primary_owner => {
                if bulk {
                    failed.push(id.clone());
                } else {
                    return Err(ApiError::new("cannot_reset_primary_owner"));
                }
            }
            Some(_) => {}
        }
    }
    if !bulk && !failed.is_empty() {
        return Err(ApiError::new("user_not_found"));
    }
    if bulk && !failed.is_empty() {
        return Err(ApiError::new("failed_for_some_users").with("invalid_user_ids", json!(failed)));
    }
    let mobile_only = args.flag("mobile_only");
    let web_only = args.flag("web_only");
    for id in ids {
        world.session_resets.push(super::world::SessionReset {
            user: id,
            at: caller.now,
            mobile_only,
            web_only,
        });
    }
    ok(Vec::new())
}

/// `admin.users.session.list`: the sessions still active. Every person has one session
/// per workspace until a full reset (not `mobile_only`, not `web_only`) signs them out;
/// deactivation alone does not (Slack's documentation leaves it open, so the emulator
/// takes the case that needs the reset). `user_id` and `team_id` come together or not at
/// all.
fn admin_session_list(world: &World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let (user, team) = match (args.get("user_id"), args.get("team_id")) {
        (Some(_), None) => return Err(ApiError::new("missing_team")),
        (None, Some(_)) => return Err(ApiError::new("missing_user")),
        (user, team) => (user, team),
    };
    if let Some(id) = user {
        match world.user(id) {
            None => return Err(ApiError::new("user_not_found")),
            Some(u) if u.bot => return Err(ApiError::new("bots_not_allowed")),
            Some(_) => {}
        }
    }
    let signed_out = |id: &str| {
        world
            .session_resets
            .iter()
            .any(|r| r.user == id && !r.mobile_only && !r.web_only)
    };
    let sessions: Vec<Value> = world
        .users
        .iter()
        .filter(|u| !u.bot && user.is_none_or(|id| u.id == id) && !signed_out(&u.id))
        .flat_map(|u| {
            u.workspaces
                .iter()
                .filter(|w| team.is_none_or(|t| t == w.as_str()))
                .map(|w| {
                    json!({
                        "user_id": u.id,
                        "team_id": w,
                        "session_id": format!("S{}{}", u.id, w),
                        "created": {"device_hardware": "computer", "os": "Mac", "slack_client_version": "4.41", "ip": "192.0.2.10"},
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if user.is_some() && sessions.is_empty() {
        return Err(ApiError::new("no_active_sessions"));
    }
    let (on_page, next) = page(world, &sessions, args, 100, 1000, |_| true)?;
    ok(vec![
        ("active_sessions", json!(on_page)),
        ("response_metadata", metadata(next)),
    ])
}

fn idp_group_index(world: &World, args: &Args) -> Result<usize, ApiError> {
    let id = args.required("usergroup_id")?;
    world
        .idp_groups
        .iter()
        .position(|g| g.id == id)
        .ok_or_else(|| ApiError::new("usergroup_not_found"))
}

fn admin_usergroups_channels(world: &mut World, caller: &Caller, args: &Args, add: bool) -> Reply {
    require_enterprise_admin(world, caller)?;
    let index = idp_group_index(world, args)?;
    let channel_ids = args.list("channel_ids");
    if channel_ids.is_empty() {
        return Err(ApiError::new("invalid_arguments"));
    }
    if channel_ids.len() > 100 {
        return Err(ApiError::new("invalid_channels_limit"));
    }
    let mut invalid = Vec::new();
    let mut valid = Vec::new();
    for id in channel_ids {
        match world.channel(&id) {
            Some(channel) if !channel.archived => valid.push((id, channel.workspace.clone())),
            _ => invalid.push(id),
        }
    }
    let group = &mut world.idp_groups[index];
    if add {
        if let Some((_, team)) = valid
            .iter()
            .find(|(_, team)| !group.workspaces.contains(team))
        {
            let _ = team;
            return Err(ApiError::new("usergroup_not_linked_to_team"));
        }
        for (id, _) in &valid {
            if !group.channels.contains(id) {
                group.channels.push(id.clone());
            }
        }
        // Linking a channel adds the group's members to it.
        let members = group.members.clone();
        for (id, _) in &valid {
            if let Some(channel) = world.channel_mut(id) {
                for member in &members {
                    if !channel.members.contains(member) {
                        channel.members.push(member.clone());
                    }
                }
            }
        }
    } else {
        group
            .channels
            .retain(|c| !valid.iter().any(|(id, _)| id == c));
    }
    let mut reply = Vec::new();
    if !invalid.is_empty() {
        reply.push(("invalid_channels", json!(invalid)));
    }
    ok(reply)
}

fn admin_usergroups_list_channels(world: &World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let group = &world.idp_groups[idp_group_index(world, args)?];
    if let Some(team) = args.get("team_id")
        && !world.workspaces.iter().any(|w| w.id == team)
    {
        return Err(ApiError::new("team_not_found"));
    }
    let with_count = args.flag("include_num_members");
    let channels: Vec<Value> = group
        .channels
        .iter()
        .filter_map(|id| world.channel(id))
        .filter(|c| args.get("team_id").is_none_or(|t| t == c.workspace))
        .map(|c| {
            let mut object =
                json!({"id": c.id, "name": c.name, "team_id": c.workspace, "is_redacted": false});
            if with_count {
                object["num_members"] = json!(c.members.len());
            }
            object
        })
        .collect();
    ok(vec![("channels", json!(channels))])
}

fn admin_usergroups_add_teams(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let index = idp_group_index(world, args)?;
    let teams = args.list("team_ids");
    if teams.is_empty() {
        return Err(ApiError::new("no_team_ids_given"));
    }
    if teams
        .iter()
        .any(|t| !world.workspaces.iter().any(|w| w.id == *t))
    {
        return Err(ApiError::new("invalid_team_ids"));
    }
    let auto_provision = args.flag("auto_provision");
    let group = &mut world.idp_groups[index];
    for team in &teams {
        if !group.workspaces.contains(team) {
            group.workspaces.push(team.clone());
        }
    }
    if auto_provision {
        let members = group.members.clone();
        for member in members {
            if let Some(user) = world.user_mut(&member) {
                for team in &teams {
                    if !user.workspaces.contains(team) {
                        user.workspaces.push(team.clone());
                    }
                }
            }
        }
    }
    ok(Vec::new())
}

fn admin_conversations_invite(world: &mut World, caller: &Caller, args: &Args) -> Reply {
    require_enterprise_admin(world, caller)?;
    let channel_id = args.required("channel_id")?.to_string();
    let channel = world
        .channel(&channel_id)
        .ok_or_else(|| ApiError::new("channel_not_found"))?
        .clone();
    if channel.general {
        return Err(ApiError::new("default_org_wide_channel"));
    }
    let users = args.list("user_ids");
    if users.is_empty() {
        return Err(ApiError::new("invalid_arguments"));
    }
    let mut failed = Vec::new();
    let mut accepted = Vec::new();
    for id in users {
        match world.user(&id) {
            Some(user) if user.active && user.workspaces.contains(&channel.workspace) => {
                if !channel.members.contains(&id) {
                    accepted.push(id);
                }
            }
            _ => failed.push(id),
        }
    }
    world
        .channel_mut(&channel_id)
        .expect("found above")
        .members
        .extend(accepted);
    if failed.is_empty() {
        ok(Vec::new())
    } else {
        Err(ApiError::new("failed_for_some_users").with("failed_user_ids", json!(failed)))
    }
}

fn team_integration_logs(world: &World, caller: &Caller, args: &Args) -> Reply {
    let team = if caller.token.org_level {
        Some(
            args.get("team_id")
                .ok_or_else(|| ApiError::new(MISSING_ARGUMENT))?
                .to_string(),
        )
    } else {
        caller.token.workspace.clone()
    };
    let count: usize = args
        .get("count")
        .map_or(Ok(100), str::parse)
        .map_err(|_| ApiError::new("invalid_arguments"))?;
    let page_number: usize = args
        .get("page")
        .map_or(Ok(1), str::parse)
        .map_err(|_| ApiError::new("invalid_arguments"))?;
    let count = count.clamp(1, 1000);
    let page_number = page_number.max(1);
    let installs = world.apps.iter().map(|app| super::world::IntegrationLog {
        app_id: app.id.clone(),
        // Slack's example shows the app's name here ("app_type": "Johnny App").
        app_type: app.name.clone(),
        user_id: app.installed_by.clone(),
        user_name: world
            .user(&app.installed_by)
            .map(|u| u.user_name.clone())
            .unwrap_or_default(),
        date: app.date,
        change_type: "added".into(),
        scope: app.scopes.join(","),
        workspace: app.workspace.clone(),
    });
    let mut logs: Vec<super::world::IntegrationLog> = installs
        .chain(world.integration_logs.iter().cloned())
        .filter(|log| team.as_ref().is_none_or(|t| *t == log.workspace))
        .filter(|log| args.get("user").is_none_or(|u| u == log.user_id))
        .filter(|log| args.get("app_id").is_none_or(|a| a == log.app_id))
        .filter(|log| args.get("change_type").is_none_or(|c| c == log.change_type))
        .collect();
    logs.sort_by_key(|log| std::cmp::Reverse(log.date));
    let total = logs.len();
    let pages = total.div_ceil(count).max(1);
    let chosen: Vec<Value> = logs
        .into_iter()
        .skip((page_number - 1) * count)
        .take(count)
        .map(|log| {
            json!({
                "app_id": log.app_id,
                "app_type": log.app_type,
                "user_id": log.user_id,
                "user_name": log.user_name,
                "date": log.date.to_string(),
                "change_type": log.change_type,
                "scope": log.scope,
            })
        })
        .collect();
    ok(vec![
        ("logs", json!(chosen)),
        (
            "paging",
            json!({"count": count, "total": total, "page": page_number, "pages": pages}),
        ),
    ])
}
