//! SCIM 2.0 under `/scim/v2/`: Users and Groups (IdP groups on Grid), with Slack's
//! paging, filters, PatchOp forms, error bodies and side effects.
//!
//! `handle` is pure over the [`World`]: routing, locks, rate limits and faults live in the
//! server. Status codes Slack does not document (404 for unknown ids, 409 for
//! conflicts) follow RFC 7644.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::world::{Guest, IdpGroup, User, World};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GUEST: &str = "urn:ietf:params:scim:schemas:extension:slack:guest:2.0:User";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Slack's limit of users in one group write.
const MAX_GROUP_WRITE: usize = 15_000;

/// What a SCIM call answers: a status and, except for 204, a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimReply {
    pub status: u16,
    pub body: Option<Value>,
    /// A body already serialised (large listings).
    pub raw: Option<String>,
}

fn reply(status: u16, body: Value) -> ScimReply {
    ScimReply {
        status,
        body: Some(body),
        raw: None,
    }
}

/// A v2 error body: `{"schemas": [Error], "detail": code, "status": status}`.
pub fn error(status: u16, detail: &str) -> ScimReply {
    reply(
        status,
        json!({"schemas": [ERROR], "detail": detail, "status": status}),
    )
}

/// A SCIM request, already authenticated.
pub struct ScimRequest<'a> {
    pub method: &'a str,
    /// Path segments after `/scim/v2/`.
    pub segments: Vec<&'a str>,
    pub query: BTreeMap<String, String>,
    pub body: Option<Value>,
    /// Emulated unix seconds.
    pub now: f64,
    /// `BASE/scim/v2`, for `meta.location`.
    pub base: String,
    /// Attributes whose absence from an update deactivates the user (the April 2024
    /// regression, injected as a fault).
    pub required_fields: Vec<String>,
}

/// The lock key of a write: one write at a time per user or group.
pub fn lock_key(method: &str, segments: &[&str]) -> Option<String> {
    match (method, segments) {
        ("GET", _) => None,
        (_, [kind @ ("Users" | "Groups"), id]) => Some(format!("{kind}/{id}")),
        _ => None,
    }
}

/// Serves one SCIM request against the world.
pub fn handle(world: &mut World, request: &ScimRequest) -> ScimReply {
    world.run_due_jobs(request.now);
    let method = request.method;
    match (method, request.segments.as_slice()) {
        ("GET", ["ServiceProviderConfig" | "ServiceProviderConfigs"]) => {
            reply(200, service_provider_config())
        }
        ("GET", ["ResourceTypes"]) => reply(200, resource_types(&request.base)),
        ("GET", ["Schemas"]) => {
            let all = schemas(&request.base);
            let count = all.len();
            reply(
                200,
                json!({"schemas": [LIST], "totalResults": count, "itemsPerPage": count, "startIndex": 1, "Resources": all}),
            )
        }
        // By URN, as RFC 7644 has it, or as Slack documents them: /Schemas/Users, /Groups.
        ("GET", ["Schemas", id]) => {
            let wanted = match *id {
                "Users" => USER_SCHEMA,
                "Groups" => GROUP_SCHEMA,
                other => other,
            };
            match schemas(&request.base)
                .into_iter()
                .find(|schema| schema["id"] == wanted)
            {
                Some(schema) => reply(200, schema),
                None => error(404, "no_such_schema"),
            }
        }
        ("GET", ["Users"]) => list_users(world, request),
        ("POST", ["Users"]) => create_user(world, request),
        ("GET", ["Users", id]) => match world.user(id) {
            Some(user) => reply(200, user_resource(world, user, &request.base)),
            None => error(404, "no_such_user"),
        },
        ("PUT", ["Users", id]) => put_user(world, request, id),
        ("PATCH", ["Users", id]) => patch_user(world, request, id),
        ("DELETE", ["Users", id]) => delete_user(world, request, id),
        ("GET", ["Groups"]) => list_groups(world, request),
        ("POST", ["Groups"]) => create_group(world, request),
        ("GET", ["Groups", id]) => match world.idp_groups.iter().find(|g| g.id == *id) {
            Some(group) => reply(200, group_resource(world, group, &request.base)),
            None => error(404, "no_such_group"),
        },
        ("PUT", ["Groups", id]) => put_group(world, request, id),
        ("PATCH", ["Groups", id]) => patch_group(world, request, id),
        ("DELETE", ["Groups", id]) => {
            let before = world.idp_groups.len();
            world.idp_groups.retain(|g| g.id != *id);
            if world.idp_groups.len() == before {
                error(404, "no_such_group")
            } else {
                ScimReply {
                    status: 204,
                    body: None,
                    raw: None,
                }
            }
        }
        (_, ["Users" | "Groups", ..]) => error(405, "method_not_allowed"),
        _ => error(404, "bad_endpoint"),
    }
}

// ---- resources ----------------------------------------------------------------------------

/// ISO 8601 in UTC for unix seconds, as Slack's SCIM API writes `meta.created`.
pub fn iso8601(unix: u64) -> String {
    let seconds = slack_gitops_core::model::iso_time(unix as i64 * 1000);
    format!("{}+00:00", seconds.trim_end_matches('Z'))
}

/// Each user's IdP groups as SCIM `groups` entries, built once per listing (looking them
/// up per user would cost groups x members for every user of a 1,000-user page).
fn memberships<'w>(
    world: &'w World,
    users: &[&User],
) -> std::collections::HashMap<&'w str, Vec<&'w IdpGroup>> {
    let wanted: std::collections::HashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
    let mut groups: std::collections::HashMap<&str, Vec<&IdpGroup>> =
        std::collections::HashMap::new();
    for group in &world.idp_groups {
        for member in &group.members {
            if wanted.contains(member.as_str()) {
                groups.entry(member.as_str()).or_default().push(group);
            }
        }
    }
    groups
}

fn user_resource(world: &World, user: &User, base: &str) -> Value {
    let memberships = memberships(world, &[user]);
    serde_json::to_value(wire_user(user, base, &memberships)).expect("a user serialises")
}

/// Slack's SCIM user. Typed, because listings return a thousand of them a page:
/// serialising borrowed fields straight to text avoids building a `Value` per user.
#[derive(serde::Serialize)]
struct WireScimUser<'a> {
    schemas: Vec<&'static str>,
    id: &'a str,
    #[serde(rename = "externalId")]
    external_id: &'a str,
    meta: WireMeta,
    #[serde(rename = "userName")]
    user_name: &'a str,
    #[serde(rename = "nickName")]
    nick_name: &'a str,
    name: WireName<'a>,
    #[serde(rename = "displayName")]
    display_name: &'a str,
    #[serde(rename = "profileUrl")]
    profile_url: String,
    title: &'a str,
    timezone: &'static str,
    active: bool,
    emails: [WireEmail<'a>; 1],
    photos: [(); 0],
    groups: Vec<WireGroupRef<'a>>,
    #[serde(rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")]
    enterprise: WireEnterprise<'a>,
    #[serde(
        rename = "urn:ietf:params:scim:schemas:extension:slack:guest:2.0:User",
        skip_serializing_if = "Option::is_none"
    )]
    guest: Option<WireGuest>,
}

#[derive(serde::Serialize)]
struct WireMeta {
    created: String,
    location: String,
}

#[derive(serde::Serialize)]
struct WireName<'a> {
    #[serde(rename = "givenName")]
    given_name: &'a str,
    #[serde(rename = "familyName")]
    family_name: &'a str,
    #[serde(rename = "honorificPrefix")]
    honorific_prefix: &'static str,
}

#[derive(serde::Serialize)]
struct WireEmail<'a> {
    value: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    primary: bool,
}

#[derive(serde::Serialize)]
struct WireGroupRef<'a> {
    value: &'a str,
    display: &'a str,
}

#[derive(serde::Serialize)]
struct WireEnterprise<'a> {
    department: &'a str,
    manager: WireManager<'a>,
}

#[derive(serde::Serialize)]
struct WireManager<'a> {
    #[serde(rename = "managerId")]
    manager_id: &'a str,
}

#[derive(serde::Serialize)]
struct WireGuest {
    #[serde(rename = "type")]
    kind: &'static str,
}

fn wire_user<'a>(
    user: &'a User,
    base: &str,
    memberships: &std::collections::HashMap<&str, Vec<&'a IdpGroup>>,
) -> WireScimUser<'a> {
    let groups = memberships
        .get(user.id.as_str())
        .into_iter()
        .flatten()
        .map(|g| WireGroupRef {
            value: &g.id,
            display: &g.name,
        })
        .collect();
    let display_name = if user.display_name.is_empty() {
        &user.user_name
    } else {
        &user.display_name
    };
    let mut schemas = vec![USER_SCHEMA, ENTERPRISE];
    if user.guest.is_some() {
        schemas.push(GUEST);
    }
    WireScimUser {
        schemas,
        id: &user.id,
        external_id: &user.external_id,
        meta: WireMeta {
            created: iso8601(user.created),
            location: format!("{base}/Users/{}", user.id),
        },
        user_name: &user.user_name,
        nick_name: &user.user_name,
        name: WireName {
            given_name: &user.given_name,
            family_name: &user.family_name,
            honorific_prefix: "",
        },
        display_name,
        profile_url: format!("https://slack.com/team/{}", user.id),
        title: &user.title,
        timezone: "Europe/London",
        active: user.active,
        emails: [WireEmail {
            value: &user.email,
            kind: "work",
            primary: true,
        }],
        photos: [],
        groups,
        enterprise: WireEnterprise {
            department: &user.department,
            manager: WireManager {
                manager_id: user.manager.as_deref().unwrap_or_default(),
            },
        },
        guest: user.guest.map(|guest| WireGuest {
            kind: match guest {
                Guest::Multi => "multi",
                Guest::Single => "single",
            },
        }),
    }
}

fn group_resource(world: &World, group: &IdpGroup, base: &str) -> Value {
    let members: Vec<Value> = group
        .members
        .iter()
        .map(|id| {
            let display = world
                .user(id)
                .map(|u| u.user_name.clone())
                .unwrap_or_default();
            json!({"value": id, "display": display})
        })
        .collect();
    json!({
        "schemas": [GROUP_SCHEMA],
        "id": group.id,
        "externalId": group.external_id,
        "displayName": group.name,
        "members": members,
        "meta": {
            "created": iso8601(group.created),
            "location": format!("{base}/Groups/{}", group.id),
        },
    })
}

/// `startIndex` (1-based, default 1) and `count` (default 10; Slack silently treats a
/// count over 1000 as 1000).
fn page_bounds(request: &ScimRequest) -> (usize, usize) {
    let start = request
        .query
        .get("startIndex")
        .and_then(|s| s.parse::<i64>().ok())
        .map_or(1, |s| s.max(1) as usize);
    let count = request
        .query
        .get("count")
        .and_then(|s| s.parse::<i64>().ok())
        .map_or(10, |c| c.clamp(0, 1000) as usize);
    (start, count)
}

/// A list response. Resources are rendered straight to JSON text (`RawValue`), and the
/// envelope around them too, so a 1,000-resource page is serialised once.
fn list_response<T>(
    request: &ScimRequest,
    items: Vec<&T>,
    render: impl Fn(&T) -> Box<serde_json::value::RawValue>,
) -> ScimReply {
    let (start, count) = page_bounds(request);
    let resources: Vec<Box<serde_json::value::RawValue>> = items
        .iter()
        .skip(start - 1)
        .take(count)
        .map(|item| render(item))
        .collect();
    #[derive(serde::Serialize)]
    struct Envelope {
        schemas: [&'static str; 1],
        #[serde(rename = "totalResults")]
        total_results: usize,
        #[serde(rename = "itemsPerPage")]
        items_per_page: usize,
        #[serde(rename = "startIndex")]
        start_index: usize,
        #[serde(rename = "Resources")]
        resources: Vec<Box<serde_json::value::RawValue>>,
    }
    let envelope = Envelope {
        schemas: [LIST],
        total_results: items.len(),
        items_per_page: resources.len(),
        start_index: start,
        resources,
    };
    ScimReply {
        status: 200,
        body: None,
        raw: Some(serde_json::to_string(&envelope).expect("a list serialises")),
    }
}

/// A parsed `attribute eq "value"` filter.
struct Filter {
    attribute: String,
    value: String,
}

fn parse_filter(text: &str) -> Result<Filter, ScimReply> {
    let malformed = || error(400, "no_filters (is_aggregate_call=1)");
    let mut parts = text.trim().splitn(3, char::is_whitespace);
    let attribute = parts.next().ok_or_else(malformed)?.to_lowercase();
    let operator = parts.next().ok_or_else(malformed)?.to_lowercase();
    let raw = parts.next().ok_or_else(malformed)?.trim();
    if operator != "eq" {
        return Err(error(400, "invalid_query"));
    }
    let value = if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).map_err(|_| malformed())?
    } else if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        inner.to_string()
    } else {
        return Err(malformed());
    };
    Ok(Filter { attribute, value })
}

fn list_users(world: &World, request: &ScimRequest) -> ScimReply {
    let filter = match request
        .query
        .get("filter")
        .map(|f| parse_filter(f))
        .transpose()
    {
        Ok(filter) => filter,
        Err(reply) => return reply,
    };
    let users: Vec<&User> = match &filter {
        None => world.users.iter().collect(),
        Some(filter) => match filter.attribute.as_str() {
            "username" => world
                .users
                .iter()
                .filter(|u| u.user_name.eq_ignore_ascii_case(&filter.value))
                .collect(),
            "email" | "emails" | "emails.value" if !world.settings.scim_email_filter => {
                return error(400, "invalid_query");
            }
            "email" | "emails" | "emails.value" => world
                .users
                .iter()
                .filter(|u| u.email.eq_ignore_ascii_case(&filter.value))
                .collect(),
            "externalid" => world
                .users
                .iter()
                .filter(|u| u.external_id == filter.value)
                .collect(),
            _ => return error(400, "invalid_query"),
        },
    };
    let (start, count) = page_bounds(request);
    let on_page: Vec<&User> = users.iter().skip(start - 1).take(count).copied().collect();
    let memberships = memberships(world, &on_page);
    list_response(request, users, |u| {
        serde_json::value::to_raw_value(&wire_user(u, &request.base, &memberships))
            .expect("a user serialises")
    })
}

fn list_groups(world: &World, request: &ScimRequest) -> ScimReply {
    let filter = match request
        .query
        .get("filter")
        .map(|f| parse_filter(f))
        .transpose()
    {
        Ok(filter) => filter,
        Err(reply) => return reply,
    };
    let groups: Vec<&IdpGroup> = match &filter {
        None => world.idp_groups.iter().collect(),
        Some(filter) if filter.attribute == "displayname" => world
            .idp_groups
            .iter()
            .filter(|g| g.name == filter.value)
            .collect(),
        Some(_) => return error(400, "invalid_query"),
    };
    list_response(request, groups, |g| {
        serde_json::value::to_raw_value(&group_resource(world, g, &request.base))
            .expect("a group serialises")
    })
}

// ---- users -----------------------------------------------------------------------------

fn body_object<'r>(request: &'r ScimRequest) -> Result<&'r Map<String, Value>, ScimReply> {
    request
        .body
        .as_ref()
        .and_then(Value::as_object)
        .ok_or_else(|| error(400, "invalid_request_payload"))
}

/// The primary email of a SCIM `emails` array: `primary: true`, else `type: work`, else
/// the first.
fn primary_email(emails: &Value) -> Option<String> {
    let items = emails.as_array()?;
    let pick = items
        .iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| {
            items
                .iter()
                .find(|e| e.get("type").and_then(Value::as_str) == Some("work"))
        })
        .or_else(|| items.first())?;
    pick.get("value")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn valid_email(email: &str) -> bool {
    email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
    })
}

fn create_user(world: &mut World, request: &ScimRequest) -> ScimReply {
    let body = match body_object(request) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Some(raw_name) = body.get("userName").and_then(Value::as_str) else {
        return error(400, "username_required");
    };
    let user_name = World::normalise_user_name(raw_name);
    if user_name.is_empty() {
        return error(400, "username_empty");
    }
    let Some(email) = body.get("emails").and_then(primary_email) else {
        return error(400, "email_empty");
    };
    if !valid_email(&email) {
        return error(400, "email_invalid");
    }
    // An address held by any account, deactivated ones included, cannot be reused.
    if world.user_by_email(&email).is_some() {
        return error(409, "email_taken");
    }
    if world.user_name_taken(&user_name, None) {
        return error(409, "username_taken");
    }
    let prefix = if world.enterprise.is_some() { 'W' } else { 'U' };
    let id = world.mint_id(prefix);
    let single_workspace = if world.enterprise.is_none() {
        world
            .workspaces
            .first()
            .map(|w| vec![w.id.clone()])
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let now = request.now as u64;
    let mut user = User {
        id: id.clone(),
        user_name,
        email,
        given_name: String::new(),
        family_name: String::new(),
        display_name: String::new(),
        title: String::new(),
        department: String::new(),
        manager: None,
        active: true,
        admin: false,
        owner: false,
        primary_owner: false,
        guest: None,
        bot: false,
        workspaces: single_workspace,
        external_id: String::new(),
        created: now,
        updated: now,
    };
    if let Err(reply) = apply_attributes(world, &mut user, body) {
        return reply;
    }
    user.active = body.get("active").and_then(Value::as_bool).unwrap_or(true);
    world.add_user(user);
    let user = world.user(&id).expect("just added");
    reply(201, user_resource(world, user, &request.base))
}

/// Applies the attributes present in a resource body (POST, PUT, path-less PATCH).
fn apply_attributes(
    world: &World,
    user: &mut User,
    body: &Map<String, Value>,
) -> Result<(), ScimReply> {
    for (key, value) in body {
        match key.as_str() {
            "schemas" | "id" | "meta" | "groups" | "active" | "password" => {}
            "userName" | "nickName" => {
                let name = value
                    .as_str()
                    .map(World::normalise_user_name)
                    .unwrap_or_default();
                if name.is_empty() {
                    return Err(error(400, "username_empty"));
                }
                if world.user_name_taken(&name, Some(&user.id)) {
                    return Err(error(409, "username_taken"));
                }
                user.user_name = name;
            }
            "externalId" => user.external_id = value.as_str().unwrap_or_default().to_string(),
            "displayName" => {
                let text = value.as_str().unwrap_or_default();
                if text.starts_with('@') {
                    return Err(error(400, "invalid_starts_with_at"));
                }
                if text.chars().count() > 80 {
                    return Err(error(400, "invalid_display_name"));
                }
                user.display_name = text.to_string();
            }
            "title" => user.title = value.as_str().unwrap_or_default().to_string(),
            "name" => {
                if let Some(given) = value.get("givenName").and_then(Value::as_str) {
                    user.given_name = given.to_string();
                }
                if let Some(family) = value.get("familyName").and_then(Value::as_str) {
                    user.family_name = family.to_string();
                }
            }
            "emails" => {
                let Some(email) = primary_email(value) else {
                    return Err(error(400, "missing_primary_email"));
                };
                if !valid_email(&email) {
                    return Err(error(400, "email_invalid"));
                }
                if world
                    .users
                    .iter()
                    .any(|u| u.id != user.id && u.email.eq_ignore_ascii_case(&email))
                {
                    return Err(error(409, "email_taken"));
                }
                user.email = email;
            }
            ENTERPRISE => {
                if let Some(department) = value.get("department").and_then(Value::as_str) {
                    user.department = department.to_string();
                }
                if let Some(manager) = value.get("manager") {
                    let Some(id) = manager.get("managerId").and_then(Value::as_str) else {
                        return Err(error(400, "improper_enterprise_schema_format"));
                    };
                    user.manager = (!id.is_empty()).then(|| id.to_string());
                }
            }
            GUEST => {
                if value.get("type").and_then(Value::as_str) != Some("multi") {
                    return Err(error(400, "invalid_attribute_format"));
                }
                if user.admin || user.owner {
                    return Err(error(400, "cannot_make_user_guest"));
                }
                user.guest = Some(Guest::Multi);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks that a user may be deactivated through SCIM.
fn may_deactivate(user: &User) -> Result<(), ScimReply> {
    if user.primary_owner {
        return Err(error(403, "cannot_disable_primary_owner"));
    }
    if user.bot {
        return Err(error(403, "cannot_disable_bot_user_with_scim"));
    }
    Ok(())
}

fn set_active(world: &mut World, id: &str, active: bool, now: u64) -> Result<(), ScimReply> {
    let user = world.user(id).expect("checked by the caller");
    if !active {
        may_deactivate(user)?;
        world.deactivate(id, now);
    } else {
        world.reactivate(id, now);
    }
    Ok(())
}

fn put_user(world: &mut World, request: &ScimRequest, id: &str) -> ScimReply {
    let Some(existing) = world.user(id).cloned() else {
        return error(404, "no_such_user");
    };
    let body = match body_object(request) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    if !body.contains_key("userName") {
        return error(400, "username_required");
    }
    if !body.contains_key("emails") {
        return error(400, "missing_primary_email");
    }
    // PUT replaces everything: what the body leaves out becomes blank.
    let mut user = User {
        given_name: String::new(),
        family_name: String::new(),
        display_name: String::new(),
        title: String::new(),
        department: String::new(),
        manager: None,
        ..existing
    };
    if let Err(reply) = apply_attributes(world, &mut user, body) {
        return reply;
    }
    user.updated = request.now as u64;
    let active = match body.get("active").and_then(Value::as_bool) {
        Some(active) => active,
        None => !world.settings.put_without_active_deactivates && user.active,
    };
    *world.user_mut(id).expect("exists") = user;
    if let Err(reply) = set_active(world, id, active, request.now as u64) {
        return reply;
    }
    finish_user_update(world, request, id, |field| has_attribute(body, field))
}

/// After an update: the injected required-field regression deactivates a user whose
/// update lacked a required attribute, exactly as Slack did in April 2024.
fn finish_user_update(
    world: &mut World,
    request: &ScimRequest,
    id: &str,
    sent: impl Fn(&str) -> bool,
) -> ScimReply {
    if request.required_fields.iter().any(|field| !sent(field)) {
        world.deactivate(id, request.now as u64);
    }
    let user = world.user(id).expect("exists");
    reply(200, user_resource(world, user, &request.base))
}

/// Whether a resource body carries an attribute given as a dotted path (`name.givenName`).
fn has_attribute(body: &Map<String, Value>, path: &str) -> bool {
    let mut current: Option<&Value> = None;
    for (index, part) in path.split('.').enumerate() {
        current = if index == 0 {
            body.get(part)
        } else {
            current.and_then(|v| v.get(part))
        };
        if current.is_none() {
            return false;
        }
    }
    current.is_some()
}

/// One PatchOp operation: `op` (lowercase), optional `path`, optional `value`.
type PatchOperation = (String, Option<String>, Option<Value>);

fn patch_operations(request: &ScimRequest) -> Result<Vec<PatchOperation>, ScimReply> {
    let body = body_object(request)?;
    let schemas_ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| v == PATCH_OP));
    if !schemas_ok {
        return Err(error(400, "missing_schema_element"));
    }
    let operations = body
        .get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| error(400, "invalid_request_payload"))?;
    operations
        .iter()
        .map(|operation| {
            let op = operation
                .get("op")
                .and_then(Value::as_str)
                .map(str::to_lowercase)
                .filter(|op| ["add", "replace", "remove"].contains(&op.as_str()))
                .ok_or_else(|| error(400, "invalid_request_payload"))?;
            let path = operation
                .get("path")
                .and_then(Value::as_str)
                .map(str::to_string);
            Ok((op, path, operation.get("value").cloned()))
        })
        .collect()
}

/// Normalises the enterprise extension's two path spellings to `department` and
/// `manager.managerId`.
fn user_patch_path(path: &str) -> String {
    for prefix in [format!("{ENTERPRISE}:"), format!("{ENTERPRISE}.")] {
        if let Some(rest) = path.strip_prefix(prefix.as_str()) {
            return format!("enterprise.{rest}");
        }
    }
    path.to_string()
}

fn patch_user(world: &mut World, request: &ScimRequest, id: &str) -> ScimReply {
    let Some(mut user) = world.user(id).cloned() else {
        return error(404, "no_such_user");
    };
    let operations = match patch_operations(request) {
        Ok(operations) => operations,
        Err(reply) => return reply,
    };
    let mut active: Option<bool> = None;
    let mut sent: Vec<String> = Vec::new();
    for (op, path, value) in &operations {
        let remove = op == "remove";
        match path {
            None => {
                let Some(object) = value.as_ref().and_then(Value::as_object) else {
                    return error(400, "invalid_request_payload");
                };
                if let Some(flag) = object.get("active").and_then(Value::as_bool) {
                    active = Some(flag);
                }
                for key in object.keys() {
                    sent.push(key.clone());
                    if let Some(inner) = object.get(key).and_then(Value::as_object) {
                        sent.extend(inner.keys().map(|k| format!("{key}.{k}")));
                    }
                }
                if let Err(reply) = apply_attributes(world, &mut user, object) {
                    return reply;
                }
            }
            Some(path) => {
                let path = user_patch_path(path);
                sent.push(path.clone());
                let text = || {
                    value
                        .as_ref()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                match path.as_str() {
                    "active" => match value.as_ref().and_then(|v| {
                        v.as_bool()
                            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    }) {
                        Some(flag) if !remove => active = Some(flag),
                        _ => return error(400, "invalid_attribute_format"),
                    },
                    "userName" | "nickName" => {
                        let mut object = Map::new();
                        object.insert("userName".into(), json!(text()));
                        if let Err(reply) = apply_attributes(world, &mut user, &object) {
                            return reply;
                        }
                    }
                    "displayName" => {
                        user.display_name = if remove { String::new() } else { text() }
                    }
                    "title" => user.title = if remove { String::new() } else { text() },
                    "name.givenName" => {
                        user.given_name = if remove { String::new() } else { text() }
                    }
                    "name.familyName" => {
                        user.family_name = if remove { String::new() } else { text() }
                    }
                    "externalId" => user.external_id = if remove { String::new() } else { text() },
                    "enterprise.department" => {
                        user.department = if remove { String::new() } else { text() }
                    }
                    "enterprise.manager.managerId" | "enterprise.manager" => {
                        let id = value
                            .as_ref()
                            .and_then(|v| {
                                v.as_str().map(str::to_string).or_else(|| {
                                    v.get("managerId")
                                        .and_then(Value::as_str)
                                        .map(str::to_string)
                                })
                            })
                            .unwrap_or_default();
                        user.manager = (!remove && !id.is_empty()).then_some(id);
                    }
                    p if p == "emails" || p.starts_with("emails[") => {
                        if remove {
                            return error(400, "missing_primary_email");
                        }
                        let emails = match value {
                            Some(Value::String(email)) => {
                                json!([{"value": email, "primary": true}])
                            }
                            Some(other) => other.clone(),
                            None => return error(400, "invalid_request_payload"),
                        };
                        let mut object = Map::new();
                        object.insert("emails".into(), emails);
                        if let Err(reply) = apply_attributes(world, &mut user, &object) {
                            return reply;
                        }
                    }
                    _ => return error(400, "invalid_attribute_format"),
                }
            }
        }
    }
    user.updated = request.now as u64;
    *world.user_mut(id).expect("exists") = user;
    if let Some(active) = active
        && let Err(reply) = set_active(world, id, active, request.now as u64)
    {
        return reply;
    }
    finish_user_update(world, request, id, |field| {
        sent.iter()
            .any(|s| s == field || s.starts_with(&format!("{field}.")))
    })
}

fn delete_user(world: &mut World, request: &ScimRequest, id: &str) -> ScimReply {
    let Some(user) = world.user(id) else {
        return error(404, "no_such_user");
    };
    if let Err(reply) = may_deactivate(user) {
        return reply;
    }
    // DELETE deactivates, never deletes, and takes effect after a delay; repeating it
    // is harmless.
    if user.active && !world.pending_deactivations.iter().any(|p| p.user == id) {
        let due = request.now + world.settings.scim_delete_delay_secs;
        world
            .pending_deactivations
            .push(super::world::PendingDeactivation {
                user: id.to_string(),
                due,
            });
        world.run_due_jobs(request.now);
    }
    ScimReply {
        status: 204,
        body: None,
        raw: None,
    }
}

// ---- groups --------------------------------------------------------------------------------

/// The user ids of a `members` value, checked: they exist, are active and are not guests.
fn member_ids(world: &World, value: Option<&Value>) -> Result<Vec<String>, ScimReply> {
    let Some(items) = value.and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    if items.len() > MAX_GROUP_WRITE {
        return Err(error(400, "too_many_users"));
    }
    let mut ids = Vec::new();
    for item in items {
        let id = item
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| error(400, "invalid_request_payload"))?;
        let Some(user) = world.user(id) else {
            return Err(error(400, "no_such_user"));
        };
        if !user.active || user.guest == Some(Guest::Single) {
            return Err(error(400, "unable_to_add_deleted_or_guest_to_group"));
        }
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

fn create_group(world: &mut World, request: &ScimRequest) -> ScimReply {
    let body = match body_object(request) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Some(name) = body
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return error(400, "missing_schema_element");
    };
    let members = match member_ids(world, body.get("members")) {
        Ok(members) => members,
        Err(reply) => return reply,
    };
    let id = world.mint_id('S');
    world.idp_groups.push(IdpGroup {
        id: id.clone(),
        name: name.to_string(),
        members,
        workspaces: Vec::new(),
        channels: Vec::new(),
        external_id: body
            .get("externalId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        created: request.now as u64,
    });
    let group = world.idp_groups.last().expect("just added");
    reply(201, group_resource(world, group, &request.base))
}

fn put_group(world: &mut World, request: &ScimRequest, id: &str) -> ScimReply {
    let Some(index) = world.idp_groups.iter().position(|g| g.id == id) else {
        return error(404, "no_such_group");
    };
    let body = match body_object(request) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Some(name) = body.get("displayName").and_then(Value::as_str) else {
        return error(400, "missing_schema_element");
    };
    let members = match member_ids(world, body.get("members")) {
        Ok(members) => members,
        Err(reply) => return reply,
    };
    let group = &mut world.idp_groups[index];
    group.name = name.to_string();
    group.members = members;
    reply_group(world, request, index)
}

fn reply_group(world: &World, request: &ScimRequest, index: usize) -> ScimReply {
    reply(
        200,
        group_resource(world, &world.idp_groups[index], &request.base),
    )
}

/// `members[value eq "U1"]` or `members[value eq U1]`: the member id it names.
fn member_filter(path: &str) -> Option<String> {
    let inner = path.strip_prefix("members[")?.strip_suffix(']')?;
    let mut parts = inner.splitn(3, char::is_whitespace);
    let (attribute, operator, value) = (parts.next()?, parts.next()?, parts.next()?);
    if !attribute.eq_ignore_ascii_case("value") || !operator.eq_ignore_ascii_case("eq") {
        return None;
    }
    Some(value.trim().trim_matches('"').to_string())
}

fn patch_group(world: &mut World, request: &ScimRequest, id: &str) -> ScimReply {
    let Some(index) = world.idp_groups.iter().position(|g| g.id == id) else {
        return error(404, "no_such_group");
    };
    let operations = match patch_operations(request) {
        Ok(operations) => operations,
        Err(reply) => return reply,
    };
    let mut group = world.idp_groups[index].clone();
    for (op, path, value) in &operations {
        match (op.as_str(), path.as_deref()) {
            ("add", Some("members")) | ("add", None)
                if value.as_ref().is_some_and(Value::is_array) || path.is_some() =>
            {
                let ids = match member_ids(world, value.as_ref()) {
                    Ok(ids) => ids,
                    Err(reply) => return reply,
                };
                for id in ids {
                    if !group.members.contains(&id) {
                        group.members.push(id);
                    }
                }
            }
            ("replace", Some("members")) => {
                group.members = match member_ids(world, value.as_ref()) {
                    Ok(ids) => ids,
                    Err(reply) => return reply,
                };
            }
            ("remove", Some("members")) => match value.as_ref().and_then(Value::as_array) {
                // With a value list, only those members go (java-slack-sdk's form).
                Some(items) => {
                    let gone: Vec<&str> = items
                        .iter()
                        .filter_map(|i| i.get("value").and_then(Value::as_str))
                        .collect();
                    group.members.retain(|m| !gone.contains(&m.as_str()));
                }
                None => group.members.clear(),
            },
            ("remove", Some(path)) if path.starts_with("members[") => match member_filter(path) {
                Some(member) => group.members.retain(|m| *m != member),
                None => return error(400, "invalid_filter_group"),
            },
            ("replace" | "add", Some("displayName")) => {
                match value.as_ref().and_then(Value::as_str) {
                    Some(name) if !name.is_empty() => group.name = name.to_string(),
                    _ => return error(400, "invalid_attribute_format"),
                }
            }
            ("replace" | "add", None) => {
                let Some(object) = value.as_ref().and_then(Value::as_object) else {
                    return error(400, "invalid_request_payload");
                };
                if let Some(name) = object.get("displayName").and_then(Value::as_str) {
                    group.name = name.to_string();
                }
                if object.contains_key("members") {
                    let ids = match member_ids(world, object.get("members")) {
                        Ok(ids) => ids,
                        Err(reply) => return reply,
                    };
                    if op == "replace" {
                        group.members = ids;
                    } else {
                        for id in ids {
                            if !group.members.contains(&id) {
                                group.members.push(id);
                            }
                        }
                    }
                }
            }
            _ => return error(400, "invalid_request_payload"),
        }
    }
    if group.members.len() > MAX_GROUP_WRITE {
        return error(400, "group_member_max_exceeded");
    }
    world.idp_groups[index] = group;
    reply_group(world, request, index)
}

// ---- discovery -----------------------------------------------------------------------------

fn service_provider_config() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://docs.slack.dev/reference/scim-api",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": 1000},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication scheme using the OAuth Bearer Token Standard",
            "primary": true,
        }],
    })
}

fn resource_types(base: &str) -> Value {
    let users = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User", "name": "User", "endpoint": "/Users", "schema": USER_SCHEMA,
        "schemaExtensions": [{"schema": ENTERPRISE, "required": false}, {"schema": GUEST, "required": false}],
        "meta": {"location": format!("{base}/ResourceTypes/User"), "resourceType": "ResourceType"},
    });
    let groups = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "Group", "name": "Group", "endpoint": "/Groups", "schema": GROUP_SCHEMA,
        "meta": {"location": format!("{base}/ResourceTypes/Group"), "resourceType": "ResourceType"},
    });
    json!({"schemas": [LIST], "totalResults": 2, "itemsPerPage": 2, "startIndex": 1, "Resources": [users, groups]})
}

/// The schemas `/ResourceTypes` names: the core User and Group, and the User's enterprise
/// and guest extensions, each with its `meta`.
fn schemas(base: &str) -> Vec<Value> {
    let attribute = |name: &str, kind: &str, required: bool| json!({"name": name, "type": kind, "multiValued": false, "required": required, "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none"});
    let complex = |name: &str, multi: bool, required: bool| json!({"name": name, "type": "complex", "multiValued": multi, "required": required, "mutability": "readWrite", "returned": "default", "uniqueness": "none"});
    let schema = |id: &str, name: &str, description: &str, attributes: Vec<Value>| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": id, "name": name, "description": description, "attributes": attributes,
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
        })
    };
    vec![
        schema(
            USER_SCHEMA,
            "User",
            "User Account",
            vec![
                attribute("userName", "string", true),
                attribute("displayName", "string", false),
                attribute("title", "string", false),
                attribute("active", "boolean", false),
                complex("emails", true, true),
                complex("name", false, false),
            ],
        ),
        schema(
            GROUP_SCHEMA,
            "Group",
            "Group",
            vec![
                attribute("displayName", "string", true),
                complex("members", true, false),
            ],
        ),
        schema(
            ENTERPRISE,
            "EnterpriseUser",
            "Enterprise User",
            vec![
                attribute("employeeNumber", "string", false),
                attribute("costCenter", "string", false),
                attribute("organization", "string", false),
                attribute("division", "string", false),
                attribute("department", "string", false),
                complex("manager", false, false),
            ],
        ),
        schema(
            GUEST,
            "SlackGuest",
            "Slack guest",
            vec![
                attribute("type", "string", false),
                attribute("expiration", "dateTime", false),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso8601(1_712_345_678), "2024-04-05T19:34:38+00:00");
    }

    #[test]
    fn parses_member_filters_quoted_or_not() {
        assert_eq!(
            member_filter("members[value eq \"U1\"]").as_deref(),
            Some("U1")
        );
        assert_eq!(member_filter("members[value eq U1]").as_deref(), Some("U1"));
        assert_eq!(member_filter("members[display eq U1]"), None);
    }
}
