//! The `entra` identity source: Microsoft Graph with an application's client credentials.
//! Users from `/v1.0/users`, groups from `/v1.0/groups`, direct members from
//! `/v1.0/groups/{id}/members` (users and nested groups, told apart by `@odata.type`),
//! each paged by `@odata.nextLink`, member listings four at a time. Graph throttles with
//! 429 and `Retry-After`, which the reader waits out.
//!
//! Each listing is turned into typed values page by page, kept by id ([`EntraKept`]), with
//! the delta links of `/v1.0/users/delta` and `/v1.0/groups/delta` taken before the read
//! (`$deltatoken=latest`). With a kept directory, a read follows both delta links instead:
//! each changed user is read again (one call), and groups' `members@delta` are applied to
//! the groups whose members are kept. A `410 Gone` (the token expired) means a full read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{Answer, get_json, get_json_or};
use super::kept::{Followed, not_empty};
use super::{IdentityError, IdentitySource};
use crate::model::directory::{Directory, Group, Person, PersonStatus};

const USER_FIELDS: &str =
    "id,mail,userPrincipalName,givenName,surname,jobTitle,department,accountEnabled";
/// Member listings in flight at once.
const MEMBER_READS_AT_ONCE: usize = 4;

/// A user as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraUser {
    /// `mail`, else `userPrincipalName`, lowercased.
    pub email: String,
    pub given_name: String,
    pub surname: String,
    pub job_title: String,
    pub department: String,
    pub enabled: bool,
    /// The manager's user id.
    pub manager: Option<String>,
}

/// A group's direct members, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraMembers {
    pub users: BTreeSet<String>,
    pub groups: BTreeSet<String>,
}

/// A group as kept: direct members when the config needs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraGroup {
    pub name: String,
    pub description: String,
    pub members: Option<EntraMembers>,
}

/// The directory in Graph's terms, and the delta links to follow next.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraKept {
    pub users_delta: String,
    pub groups_delta: String,
    pub users: BTreeMap<String, EntraUser>,
    pub groups: BTreeMap<String, EntraGroup>,
}

pub struct EntraSource {
    tenant: String,
    client_id: String,
    client_secret: String,
    login_base: String,
    graph_base: String,
    http: reqwest::Client,
    /// The groups whose members are read, with their nested groups (`None`: all).
    members_of: Option<BTreeSet<String>>,
    calls: AtomicU64,
}

impl EntraSource {
    /// `base` replaces both `https://login.microsoftonline.com` and
    /// `https://graph.microsoft.com` (for a local fake or a national cloud proxy).
    pub fn new(
        tenant: String,
        client_id: String,
        client_secret: String,
        base: Option<String>,
    ) -> EntraSource {
        let base = base.map(|b| b.trim_end_matches('/').to_string());
        EntraSource {
            tenant,
            client_id,
            client_secret,
            login_base: base
                .clone()
                .unwrap_or_else(|| "https://login.microsoftonline.com".into()),
            graph_base: base.unwrap_or_else(|| "https://graph.microsoft.com".into()),
            http: super::http::client(),
            members_of: None,
            calls: AtomicU64::new(0),
        }
    }

    fn name(&self) -> String {
        format!("entra tenant {}", self.tenant)
    }

    /// What a kept directory depends on besides Graph: the tenant and the endpoint.
    pub fn fingerprint(&self) -> String {
        format!("entra {} {}", self.tenant, self.graph_base)
    }

    /// Calls made so far (the token's included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Reads the members of these groups and the groups nested in them only.
    pub fn reading_members_of(mut self, groups: BTreeSet<String>) -> Self {
        self.members_of = Some(groups);
        self
    }

    async fn access_token(&self) -> Result<String, IdentityError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/{}/oauth2/v2.0/token", self.login_base, self.tenant);
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ];
        let fetched = get_json(&self.name(), "POST /oauth2/v2.0/token", || {
            self.http.post(&url).form(&form)
        })
        .await?;
        fetched
            .body
            .get("access_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| IdentityError::Call {
                source_name: self.name(),
                call: "POST /oauth2/v2.0/token".into(),
                message: "no access_token in the answer; check the tenant, client id and secret"
                    .into(),
            })
    }

    /// One GET of a full URL, counted; `expected` statuses are answered, not failed.
    async fn get(&self, token: &str, url: &str, expected: &[u16]) -> Result<Answer, IdentityError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let call = format!("GET {}", url.trim_start_matches(&self.graph_base));
        get_json_or(
            &self.name(),
            &call,
            || self.http.get(url).bearer_auth(token),
            expected,
        )
        .await
    }

    /// Every item of a listing (or a delta round), each turned into `T` as its page
    /// arrives, following `@odata.nextLink`; with the round's `@odata.deltaLink`, if any.
    /// `Err` with the status when Graph answers one of `expected`.
    async fn pages<T>(
        &self,
        token: &str,
        url: String,
        expected: &[u16],
        mut each: impl FnMut(&Value) -> T,
    ) -> Result<Result<(Vec<T>, Option<String>), u16>, IdentityError> {
        let mut items = Vec::new();
        let mut url = url;
        loop {
            let body = match self.get(token, &url, expected).await? {
                Answer::Body(fetched) => fetched.body,
                Answer::Status(status, _) => return Ok(Err(status)),
            };
            let page =
                body.get("value")
                    .and_then(Value::as_array)
                    .ok_or_else(|| IdentityError::Call {
                        source_name: self.name(),
                        call: format!("GET {}", url.trim_start_matches(&self.graph_base)),
                        message: "the answer has no `value` list".into(),
                    })?;
            items.extend(page.iter().map(&mut each));
            if let Some(next) = body.get("@odata.nextLink").and_then(Value::as_str) {
                url = next.to_string();
                continue;
            }
            let delta = body
                .get("@odata.deltaLink")
                .and_then(Value::as_str)
                .map(str::to_string);
            return Ok(Ok((items, delta)));
        }
    }

    /// A listing that must succeed.
    async fn list<T>(
        &self,
        token: &str,
        path: &str,
        each: impl FnMut(&Value) -> T,
    ) -> Result<Vec<T>, IdentityError> {
        let url = format!("{}{path}", self.graph_base);
        match self.pages(token, url, &[], each).await? {
            Ok((items, _)) => Ok(items),
            Err(_) => unreachable!("no status is expected"),
        }
    }

    /// A delta link from now on (`$deltatoken=latest`), taken before a full read.
    async fn delta_link(&self, token: &str, path: &str) -> Result<String, IdentityError> {
        let url = format!("{}{path}&$deltatoken=latest", self.graph_base);
        let delta = match self.pages(token, url, &[], |_| ()).await? {
            Ok((_, delta)) => delta,
            Err(_) => None,
        };
        delta.ok_or_else(|| IdentityError::Call {
            source_name: self.name(),
            call: format!("GET {path}"),
            message: "the delta query gave no @odata.deltaLink".into(),
        })
    }
}

/// A Graph user's id and kept fields.
fn user(value: &Value) -> (String, EntraUser) {
    let mail = Some(text(value, "mail"))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| text(value, "userPrincipalName"));
    (
        text(value, "id"),
        EntraUser {
            email: mail.to_lowercase(),
            given_name: text(value, "givenName"),
            surname: text(value, "surname"),
            job_title: text(value, "jobTitle"),
            department: text(value, "department"),
            enabled: value.get("accountEnabled") != Some(&Value::Bool(false)),
            manager: value
                .get("manager")
                .and_then(|m| m.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string),
        },
    )
}

fn group(value: &Value) -> (String, EntraGroup) {
    (
        text(value, "id"),
        EntraGroup {
            name: text(value, "displayName"),
            description: text(value, "description"),
            members: None,
        },
    )
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl IdentitySource for EntraSource {
    /// Lists users and groups at once, then the members the config needs; refuses an
    /// empty or inconsistent listing.
    async fn read(&self) -> Result<Directory, IdentityError> {
        let kept = self.read_full_with(false).await?;
        self.directory(&kept)
    }
}

impl EntraSource {
    /// Reads everything the config needs, with the delta links to keep (taken just
    /// before) when `keep`.
    pub async fn read_full_with(&self, keep: bool) -> Result<EntraKept, IdentityError> {
        let token = self.access_token().await?;
        let users_path =
            format!("/v1.0/users?$select={USER_FIELDS}&$expand=manager($select=id)&$top=999");
        let users_delta_path = format!("/v1.0/users/delta?$select={USER_FIELDS},manager");
        let delta_links = async {
            if !keep {
                return Ok((String::new(), String::new()));
            }
            tokio::try_join!(
                self.delta_link(&token, &users_delta_path),
                self.delta_link(
                    &token,
                    "/v1.0/groups/delta?$select=displayName,description,members"
                ),
            )
        };
        let ((users_delta, groups_delta), users, groups) = tokio::try_join!(
            delta_links,
            self.list(&token, &users_path, user),
            self.list(
                &token,
                "/v1.0/groups?$select=id,displayName,description&$top=999",
                group
            ),
        )?;
        not_empty(&self.name(), users.len())?;
        let mut kept = EntraKept {
            users_delta,
            groups_delta,
            users: users.into_iter().collect(),
            groups: groups.into_iter().collect(),
        };
        self.read_members(&token, &mut kept).await?;
        Ok(kept)
    }

    /// The groups whose members the config needs and are not kept yet: the groups it
    /// names and every group nested in them, however deep.
    fn unread(&self, kept: &EntraKept) -> Vec<String> {
        let mut queue: Vec<&String> = kept
            .groups
            .iter()
            .filter(|(_, g)| {
                self.members_of
                    .as_ref()
                    .is_none_or(|wanted| wanted.contains(&g.name))
            })
            .map(|(id, _)| id)
            .collect();
        let mut seen = BTreeSet::new();
        let mut unread = Vec::new();
        while let Some(id) = queue.pop() {
            if !seen.insert(id) {
                continue;
            }
            match kept.groups.get(id).and_then(|g| g.members.as_ref()) {
                Some(members) => queue.extend(members.groups.iter()),
                None if kept.groups.contains_key(id) => unread.push(id.clone()),
                None => {}
            }
        }
        unread
    }

    /// Reads the direct members of every group the config needs that is not kept yet,
    /// four at a time, until the nested groups found are read too.
    async fn read_members(&self, token: &str, kept: &mut EntraKept) -> Result<(), IdentityError> {
        loop {
            let unread = self.unread(kept);
            if unread.is_empty() {
                break;
            }
            let reads = unread.into_iter().map(|id| async move {
                let path = format!("/v1.0/groups/{id}/members?$select=id&$top=999");
                let members = self
                    .list(token, &path, |m| (text(m, "@odata.type"), text(m, "id")))
                    .await?;
                Ok::<_, IdentityError>((id, members))
            });
            let mut stream = futures_util::stream::iter(reads).buffered(MEMBER_READS_AT_ONCE);
            while let Some(read) = stream.next().await {
                let (id, members) = read?;
                let members = self.members(kept, &id, members)?;
                if let Some(group) = kept.groups.get_mut(&id) {
                    group.members = Some(members);
                }
            }
        }
        Ok(())
    }

    /// A member listing as ids, each a known user or group.
    fn members(
        &self,
        kept: &EntraKept,
        id: &str,
        listed: Vec<(String, String)>,
    ) -> Result<EntraMembers, IdentityError> {
        let name = &kept.groups[id].name;
        let mut members = EntraMembers::default();
        for (kind, member) in listed {
            match kind.as_str() {
                "#microsoft.graph.group" if kept.groups.contains_key(&member) => {
                    members.groups.insert(member);
                }
                "#microsoft.graph.group" => return Err(self.inconsistent(format!(
                    "group `{name}` nests group {member}, which the listing does not have; read again"
                ))),
                "#microsoft.graph.user" if kept.users.contains_key(&member) => {
                    members.users.insert(member);
                }
                "#microsoft.graph.user" => return Err(self.inconsistent(format!(
                    "group `{name}` lists user {member}, who is not among the users; read again"
                ))),
                // Devices, service principals and contacts have no Slack account.
                _ => {}
            }
        }
        Ok(members)
    }

    /// The directory a kept read describes.
    pub fn directory(&self, kept: &EntraKept) -> Result<Directory, IdentityError> {
        not_empty(&self.name(), kept.users.len())?;
        let email = |id: &String| kept.users.get(id).map(|u| u.email.clone());
        let name = |id: &String| kept.groups.get(id).map(|g| g.name.clone());
        let people = kept
            .users
            .values()
            .map(|u| person(u, u.manager.as_ref().and_then(email)))
            .collect();
        let groups = kept
            .groups
            .values()
            .map(|g| Group {
                name: g.name.clone(),
                description: g.description.clone(),
                members: g
                    .members
                    .iter()
                    .flat_map(|m| &m.users)
                    .filter_map(email)
                    .collect(),
                groups: g
                    .members
                    .iter()
                    .flat_map(|m| &m.groups)
                    .filter_map(name)
                    .collect(),
            })
            .collect();
        Ok(Directory {
            source: self.name(),
            people,
            groups,
        }
        .normalise())
    }

    /// What a full read would cost in calls, from the kept directory's sizes.
    fn full_read_calls(kept: &EntraKept) -> usize {
        let pages = |n: usize| n.div_ceil(999).max(1);
        let members: usize = kept
            .groups
            .values()
            .filter_map(|g| g.members.as_ref())
            .map(|m| pages(m.users.len() + m.groups.len()))
            .sum();
        3 + pages(kept.users.len()) + pages(kept.groups.len()) + members
    }

    /// Brings `kept` up to date by its delta links: users changed are read again, removed
    /// ones dropped; groups' member changes applied where members are kept; then the
    /// members of groups the config newly needs are read.
    pub async fn follow(&self, mut kept: EntraKept) -> Result<Followed<EntraKept>, IdentityError> {
        let token = self.access_token().await?;
        let gone = |status: u16| {
            Followed::ReadInFull(format!(
                "Graph refused the delta link (HTTP {status}): the token expired or a resync is required"
            ))
        };
        let users = match self
            .pages(&token, kept.users_delta.clone(), &[400, 410], |u| {
                (text(u, "id"), u.get("@removed").is_some())
            })
            .await?
        {
            Ok(round) => round,
            Err(status) => return Ok(gone(status)),
        };
        let groups = match self
            .pages(&token, kept.groups_delta.clone(), &[400, 410], Clone::clone)
            .await?
        {
            Ok(round) => round,
            Err(status) => return Ok(gone(status)),
        };
        let (Some(users_delta), Some(groups_delta)) = (users.1, groups.1) else {
            return Ok(Followed::ReadInFull(
                "a delta round ended without a delta link".into(),
            ));
        };
        let mut changes = users.0.len();
        let mut reread: BTreeSet<String> = BTreeSet::new();
        for (id, removed) in users.0 {
            if removed {
                drop_user(&mut kept, &id);
            } else {
                reread.insert(id);
            }
        }
        changes += apply_group_changes(&mut kept, &groups.0, &mut reread);
        let budget = Self::full_read_calls(&kept);
        if reread.len() > budget {
            return Ok(Followed::ReadInFull(format!(
                "{} people changed: reading them again costs more calls than a full read ({budget})",
                reread.len()
            )));
        }
        self.reread_users(&token, &mut kept, &reread).await?;
        kept.users_delta = users_delta;
        kept.groups_delta = groups_delta;
        self.read_members(&token, &mut kept).await?;
        Ok(Followed::Updated { kept, changes })
    }

    /// Reads each user again (four at a time); one Graph no longer has is dropped.
    async fn reread_users(
        &self,
        token: &str,
        kept: &mut EntraKept,
        ids: &BTreeSet<String>,
    ) -> Result<(), IdentityError> {
        // Owned ids: a closure over borrowed ones makes a future no task can be sure is
        // `Send` (rust-lang/rust#102211).
        let reads = ids.iter().cloned().map(|id| async move {
            let url = format!(
                "{}/v1.0/users/{id}?$select={USER_FIELDS}&$expand=manager($select=id)",
                self.graph_base
            );
            Ok::<_, IdentityError>(match self.get(token, &url, &[404]).await? {
                Answer::Body(fetched) => (id, Some(user(&fetched.body).1)),
                Answer::Status(..) => (id, None),
            })
        });
        let mut stream = futures_util::stream::iter(reads).buffered(MEMBER_READS_AT_ONCE);
        while let Some(read) = stream.next().await {
            match read? {
                (id, Some(found)) => {
                    kept.users.insert(id, found);
                }
                (id, None) => drop_user(kept, &id),
            }
        }
        Ok(())
    }

    fn inconsistent(&self, message: String) -> IdentityError {
        IdentityError::Read {
            source_name: self.name(),
            message,
        }
    }

    /// One person's view, for an identity event: the user by mail or user principal name
    /// (`/v1.0/users?$filter=...`) and every group they are in, nested ones resolved by
    /// Graph (`/v1.0/users/{id}/transitiveMemberOf`). A directory of that person (none
    /// when Entra does not know them) and each of their groups with them alone: three
    /// calls (the token included), whatever the size of the tenant.
    pub async fn read_person(&self, email: &str) -> Result<Directory, IdentityError> {
        let token = self.access_token().await?;
        let quoted = email.replace('\'', "''");
        let filter = format!("mail eq '{quoted}' or userPrincipalName eq '{quoted}'");
        let filter = serde_urlencoded::to_string([("$filter", filter.as_str())])
            .unwrap_or_default()
            .replace('+', "%20");
        let users = self
            .list(
                &token,
                &format!("/v1.0/users?{filter}&$select={USER_FIELDS}"),
                user,
            )
            .await?;
        let Some((id, found)) = users.into_iter().next() else {
            return Ok(Directory {
                source: self.name(),
                ..Directory::default()
            });
        };
        let groups = self
            .list(
                &token,
                &format!("/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.group?$select=displayName,description"),
                |g| (text(g, "displayName"), text(g, "description")),
            )
            .await?;
        Ok(super::one_person(self.name(), person(&found, None), groups))
    }
}

/// Drops a user and their memberships.
fn drop_user(kept: &mut EntraKept, id: &str) {
    kept.users.remove(id);
    for group in kept.groups.values_mut() {
        if let Some(members) = &mut group.members {
            members.users.remove(id);
        }
    }
}

/// Applies a groups delta round: removed groups dropped, new ones added (members unread),
/// names and descriptions updated, and `members@delta` applied to groups whose members
/// are kept. A member user not kept yet is read. The number of changes: each member
/// change, and each group created, renamed or removed.
fn apply_group_changes(
    kept: &mut EntraKept,
    round: &[Value],
    reread: &mut BTreeSet<String>,
) -> usize {
    let mut changes = 0;
    for item in round {
        let id = text(item, "id");
        let member_changes = item
            .get("members@delta")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        changes += member_changes.max(1);
        if item.get("@removed").is_some() {
            kept.groups.remove(&id);
            for group in kept.groups.values_mut() {
                if let Some(members) = &mut group.members {
                    members.groups.remove(&id);
                }
            }
            continue;
        }
        let entry = kept.groups.entry(id).or_insert_with(|| EntraGroup {
            name: String::new(),
            description: String::new(),
            members: None,
        });
        if let Some(name) = item.get("displayName").and_then(Value::as_str) {
            entry.name = name.to_string();
        }
        if let Some(description) = item.get("description").and_then(Value::as_str) {
            entry.description = description.to_string();
        }
        let Some(members) = &mut entry.members else {
            continue;
        };
        for member in item
            .get("members@delta")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let member_id = text(member, "id");
            let removed = member.get("@removed").is_some();
            let set = match text(member, "@odata.type").as_str() {
                "#microsoft.graph.group" => &mut members.groups,
                "#microsoft.graph.user" => &mut members.users,
                _ => continue,
            };
            if removed {
                set.remove(&member_id);
            } else {
                set.insert(member_id.clone());
                if text(member, "@odata.type") == "#microsoft.graph.user"
                    && !kept.users.contains_key(&member_id)
                {
                    reread.insert(member_id);
                }
            }
        }
    }
    changes
}

/// A Graph user as a person: suspended when `accountEnabled` is false.
fn person(user: &EntraUser, manager: Option<String>) -> Person {
    Person {
        email: user.email.clone(),
        given_name: user.given_name.clone(),
        family_name: user.surname.clone(),
        title: user.job_title.clone(),
        department: user.department.clone(),
        manager,
        status: if user.enabled {
            PersonStatus::Active
        } else {
            PersonStatus::Suspended
        },
    }
}
