//! SCIM 2.0 under `/scim/v2/`: Users and Groups (IdP groups on Grid), with Slack's
//! paging, filters, PatchOp forms, error bodies and side effects.
//!
//! `handle` is pure over the [`World`]: routing, locks, rate limits and faults live in the
//! server. Status codes Slack does not document (404 for unknown ids, 409 for
//! conflicts) follow RFC 7644.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::changes::Change;
use crate::world::{Guest, IdpGroup, User, World};

mod discovery;
mod groups;
mod users;

use discovery::*;
use groups::*;
use users::*;

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

/// Serves one SCIM request against the world. On Business+ (no `enterprise`) Slack's
/// SCIM groups are the workspace's usergroups: the request runs against them, seen as
/// groups, and what it changed (names, members, groups created or deleted) is written
/// back to them.
pub fn handle(world: &mut World, request: &ScimRequest) -> ScimReply {
    world.run_due_jobs(request.now);
    if world.enterprise.is_some() {
        return route(world, request);
    }
    // Users' `groups` list them too. Only a request to Groups changes them: after any
    // other (a deactivation takes people out of usergroups) the view is dropped.
    let views = usergroups_as_groups(world);
    let grid_groups = std::mem::replace(&mut world.idp_groups, views);
    let reply = route(world, request);
    let seen = std::mem::replace(&mut world.idp_groups, grid_groups);
    if request.segments.first() == Some(&"Groups") && request.method != "GET" {
        groups_to_usergroups(world, seen, request.now as u64);
    }
    reply
}

/// A Business+ workspace's usergroups as SCIM groups.
fn usergroups_as_groups(world: &World) -> Vec<IdpGroup> {
    world
        .usergroups
        .iter()
        .map(|group| IdpGroup {
            id: group.id.clone(),
            name: group.name.clone(),
            members: group.users.clone(),
            workspaces: vec![group.workspace.clone()],
            channels: group.channels.clone(),
            external_id: String::new(),
            created: group.created,
        })
        .collect()
}

/// Writes SCIM groups back to the usergroups they are on Business+: a changed name or
/// member list, a group SCIM created (a usergroup whose handle comes from its name), a
/// group SCIM deleted.
fn groups_to_usergroups(world: &mut World, groups: Vec<IdpGroup>, now: u64) {
    let kept: BTreeSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    world.usergroups.retain(|u| kept.contains(u.id.as_str()));
    let workspace = world
        .workspaces
        .first()
        .map(|w| w.id.clone())
        .unwrap_or_default();
    for group in groups {
        match world.usergroups.iter_mut().find(|u| u.id == group.id) {
            Some(usergroup) => {
                if usergroup.name != group.name {
                    usergroup.name = group.name;
                    usergroup.updated = now;
                    world.note(Change::SubteamUpdated {
                        id: group.id.clone(),
                    });
                }
                world.set_usergroup_users(&group.id, group.members, now, "");
            }
            None => {
                let handle: String = group
                    .name
                    .to_lowercase()
                    .chars()
                    .map(|c| if c.is_alphanumeric() { c } else { '-' })
                    .collect();
                world.note(Change::SubteamCreated {
                    id: group.id.clone(),
                });
                world.usergroups.push(crate::world::Usergroup {
                    id: group.id,
                    workspace: workspace.clone(),
                    handle,
                    name: group.name,
                    description: String::new(),
                    users: group.members,
                    channels: Vec::new(),
                    disabled: false,
                    created: now,
                    updated: now,
                    created_by: String::new(),
                    updated_by: String::new(),
                });
            }
        }
    }
}

/// Serves one SCIM request by its method and path.
fn route(world: &mut World, request: &ScimRequest) -> ScimReply {
    let method = request.method;
    match (method, request.segments.as_slice()) {
        ("GET", ["ServiceProviderConfig" | "ServiceProviderConfigs"]) => {
            reply(200, service_provider_config())
        }
        ("GET", ["ResourceTypes"]) => reply(200, resource_types(&request.base)),
        ("GET", ["ResourceTypes", id]) => {
            let all = resource_types(&request.base);
            let found = all["Resources"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|kind| kind["id"] == *id || kind["name"] == *id);
            match found {
                Some(kind) => reply(200, kind.clone()),
                None => error(404, "bad_endpoint"),
            }
        }
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
        // Discovery is read-only, and the resources take only what Slack lists.
        (
            _,
            [
                "Users"
                | "Groups"
                | "Schemas"
                | "ResourceTypes"
                | "ServiceProviderConfig"
                | "ServiceProviderConfigs",
                ..,
            ],
        ) => error(405, "method_not_allowed"),
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

/// The request's `filter`, parsed, if it has one.
fn request_filter(request: &ScimRequest) -> Result<Option<Filter>, ScimReply> {
    request
        .query
        .get("filter")
        .map(|f| parse_filter(f))
        .transpose()
}

fn list_users(world: &World, request: &ScimRequest) -> ScimReply {
    let filter = match request_filter(request) {
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
    let filter = match request_filter(request) {
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
