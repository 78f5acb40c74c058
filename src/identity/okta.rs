//! The `okta` identity source: Okta's management API. Users from `/api/v1/users` (which
//! leaves out `DEPROVISIONED` users unless asked: they are read with
//! `search=status eq "DEPROVISIONED"`, so a person deactivated in Okta is a leaver, not
//! someone who vanished), groups from `/api/v1/groups`, members from
//! `/api/v1/groups/{id}/users`, each at the page size Okta allows (200 users, 10,000
//! groups, 1,000 members), member listings four at a time, and paged by the
//! `Link: <...>; rel="next"` header. Okta reports its rate limit on every answer
//! (`X-Rate-Limit-Remaining`, `X-Rate-Limit-Reset`); when the window is used up the reader
//! waits for the reset instead of running into 429s. Okta groups do not nest. A manager is
//! found by the profile attribute and key `identity.manager` names (`managerId` holding an
//! Okta user id by default).
//!
//! Each listing is turned into typed values page by page ([`OktaUser`], [`OktaGroup`]),
//! kept by id ([`OktaKept`]). With a kept directory, a read follows the System Log from its
//! cursor instead (`/api/v1/logs`, membership and lifecycle events only, 1,000 a page,
//! until an empty page: Okta always sends a next link) and re-reads each person an event
//! names (the user, and their groups: two calls).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{Answer, get_json_if_found, get_json_or, rate_limit_wait, text};
use super::kept::{Followed, not_empty};
use super::{IdentityError, IdentitySource};
use crate::config::types::{ManagerMatch, ManagerSettings};
use crate::model::directory::{Directory, Group, Person, PersonStatus};

/// The System Log keeps 90 days; a cursor older than this is read in full.
const LOG_RETENTION_SECS: f64 = 89.0 * 86_400.0;
/// Events may appear in the System Log a little after the time they carry: each read
/// starts this far before the newest event seen, and skips events it has seen by uuid.
const LOG_OVERLAP_SECS: f64 = 120.0;
/// A full read's cursor starts this far before the read, for the same reason.
const FULL_READ_MARGIN_SECS: f64 = 300.0;

/// The System Log events that change what the directory holds.
const EVENT_TYPES: &[&str] = &[
    "group.user_membership.add",
    "group.user_membership.remove",
    "user.lifecycle.create",
    "user.lifecycle.activate",
    "user.lifecycle.reactivate",
    "user.lifecycle.suspend",
    "user.lifecycle.unsuspend",
    "user.lifecycle.deactivate",
    "user.lifecycle.delete.initiated",
    "user.account.update_profile",
    "group.lifecycle.create",
    "group.lifecycle.delete",
    "group.profile.update",
];

/// A user as kept: what a person and a manager lookup need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OktaUser {
    pub email: String,
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    pub title: String,
    pub department: String,
    pub status: String,
    /// The value of the manager attribute, if any.
    pub manager: Option<String>,
    pub employee_number: Option<String>,
}

/// A group as kept: members (user ids) when the config needs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OktaGroup {
    pub name: String,
    pub description: String,
    pub members: Option<BTreeSet<String>>,
}

/// The directory in Okta's terms, and the System Log cursor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OktaKept {
    /// Unix seconds: the newest event taken into account.
    pub since: f64,
    /// Events already taken within the overlap, by uuid, with their time.
    pub recent: BTreeMap<String, f64>,
    pub users: BTreeMap<String, OktaUser>,
    pub groups: BTreeMap<String, OktaGroup>,
}

pub struct OktaSource {
    base: String,
    authorization: String,
    http: reqwest::Client,
    manager: ManagerSettings,
    /// The groups whose members are read (`None`: all of them).
    members_of: Option<BTreeSet<String>>,
    calls: AtomicU64,
}

impl OktaSource {
    /// `token` is an API token (sent as `SSWS`), or `Bearer ...` for an OAuth access token.
    pub fn new(base: String, token: String) -> OktaSource {
        let authorization = if token.starts_with("Bearer ") {
            token
        } else {
            format!("SSWS {token}")
        };
        OktaSource {
            base: base.trim_end_matches('/').to_string(),
            authorization,
            http: super::http::client(),
            manager: ManagerSettings::default(),
            members_of: None,
            calls: AtomicU64::new(0),
        }
    }

    /// Reads the members of these groups only (the ones the config names): every other
    /// group, Okta's built-in `Everyone` among them, is listed by name with no members,
    /// saving a listing per group.
    pub fn reading_members_of(mut self, groups: BTreeSet<String>) -> OktaSource {
        self.members_of = Some(groups);
        self
    }

    /// Where managers are found (`identity.manager`).
    pub fn with_manager(mut self, manager: ManagerSettings) -> OktaSource {
        self.manager = manager;
        self
    }

    /// What a kept directory depends on besides Okta: the org and the manager lookup.
    pub fn fingerprint(&self) -> String {
        format!(
            "okta {} manager {}:{:?}",
            self.base, self.manager.attribute, self.manager.matches
        )
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// A user from Okta's JSON.
    fn user(&self, user: &Value) -> OktaUser {
        let value = |v: Option<&Value>| match v {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let profile = user.get("profile");
        OktaUser {
            email: text(user, "/profile/email").to_lowercase(),
            login: text(user, "/profile/login"),
            first_name: text(user, "/profile/firstName"),
            last_name: text(user, "/profile/lastName"),
            title: text(user, "/profile/title"),
            department: text(user, "/profile/department"),
            status: text(user, "/status"),
            manager: value(profile.and_then(|p| p.get(&self.manager.attribute))),
            employee_number: value(profile.and_then(|p| p.get("employeeNumber"))),
        }
    }

    /// One GET, counted; `expected` statuses are answered rather than failed.
    async fn get(&self, url: &str, expected: &[u16]) -> Result<Answer, IdentityError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let call = format!("GET {}", url.trim_start_matches(&self.base));
        get_json_or(&self.base, &call, || self.request(url), expected).await
    }

    fn request(&self, url: &str) -> reqwest::RequestBuilder {
        self.http
            .get(url)
            .header("authorization", &self.authorization)
            .header("accept", "application/json")
    }

    /// Every item of a listing, each turned into `T` as its page arrives, following
    /// `rel="next"` links.
    async fn list<T>(
        &self,
        path: &str,
        each: impl Fn(&Value) -> T,
    ) -> Result<Vec<T>, IdentityError> {
        let mut items = Vec::new();
        let mut url = format!("{}{path}", self.base);
        loop {
            let Answer::Body(fetched) = self.get(&url, &[]).await? else {
                unreachable!("no status is expected")
            };
            let page = self.page(&fetched.body, &url)?;
            items.extend(page.iter().map(&each));
            pace(&fetched.headers).await;
            match next_link(&fetched.headers) {
                Some(next) => url = next,
                None => return Ok(items),
            }
        }
    }

    fn page<'a>(&self, body: &'a Value, url: &str) -> Result<&'a Vec<Value>, IdentityError> {
        body.as_array().ok_or_else(|| IdentityError::Call {
            source_name: self.base.clone(),
            call: format!("GET {}", url.trim_start_matches(&self.base)),
            message: "the answer is not a list".into(),
        })
    }

    /// Every user by id, deprovisioned ones included (Okta's listing leaves them out
    /// unless a search asks for them).
    async fn users(&self) -> Result<BTreeMap<String, OktaUser>, IdentityError> {
        let each = |u: &Value| (text(u, "/id"), self.user(u));
        let (users, deprovisioned) = tokio::try_join!(
            self.list("/api/v1/users?limit=200", each),
            self.list(
                "/api/v1/users?limit=200&search=status%20eq%20%22DEPROVISIONED%22",
                each
            ),
        )?;
        let mut by_id: BTreeMap<String, OktaUser> = deprovisioned.into_iter().collect();
        by_id.extend(users);
        Ok(by_id)
    }

    /// Every group by id, with no members yet.
    async fn groups(&self) -> Result<BTreeMap<String, OktaGroup>, IdentityError> {
        let groups = self
            .list("/api/v1/groups?limit=10000", |g| {
                (
                    text(g, "/id"),
                    OktaGroup {
                        name: text(g, "/profile/name"),
                        description: text(g, "/profile/description"),
                        members: None,
                    },
                )
            })
            .await?;
        Ok(groups.into_iter().collect())
    }

    /// One person's view, for an identity event: the user by login (`GET
    /// /api/v1/users/{login}`) and their groups (`GET /api/v1/users/{id}/groups`; Okta
    /// groups do not nest, so these are all of them). A directory holding that person
    /// (none when Okta does not know the login) and each of their groups with them
    /// alone: two calls (plus pages of groups), whatever the size of the org.
    pub async fn read_person(&self, email: &str) -> Result<Directory, IdentityError> {
        let login = serde_urlencoded::to_string([("", email)])
            .map(|s| s.trim_start_matches('=').to_string())
            .unwrap_or_default();
        let path = format!("/api/v1/users/{login}");
        let call = format!("GET {path}");
        let url = format!("{}{path}", self.base);
        self.calls.fetch_add(1, Ordering::Relaxed);
        let found = get_json_if_found(&self.base, &call, || self.request(&url)).await?;
        let Some(found) = found else {
            return Ok(Directory {
                source: self.base.clone(),
                ..Directory::default()
            });
        };
        let user = found.body;
        let id = text(&user, "/id");
        let groups = self
            .list(&format!("/api/v1/users/{id}/groups?limit=200"), |g| {
                (text(g, "/profile/name"), text(g, "/profile/description"))
            })
            .await?;
        Ok(super::one_person(
            self.base.clone(),
            person(&self.user(&user), None),
            groups,
        ))
    }

    /// Each user's email by the key managers are named with.
    fn manager_keys(&self, users: &BTreeMap<String, OktaUser>) -> HashMap<String, String> {
        users
            .iter()
            .filter_map(|(id, u)| {
                let key = match self.manager.matches {
                    ManagerMatch::Id => id.clone(),
                    ManagerMatch::Login => u.login.to_lowercase(),
                    ManagerMatch::Email => u.email.clone(),
                    ManagerMatch::EmployeeNumber => u.employee_number.clone()?,
                };
                Some((key, u.email.clone()))
            })
            .collect()
    }

    /// The email of `user`'s manager, when their profile names one that is a user.
    fn manager_of(&self, user: &OktaUser, keys: &HashMap<String, String>) -> Option<String> {
        let value = user.manager.as_ref()?;
        let value = match self.manager.matches {
            ManagerMatch::Login | ManagerMatch::Email => value.to_lowercase(),
            _ => value.clone(),
        };
        keys.get(&value).cloned()
    }
}

/// Waits for the rate-limit window to reset when Okta says it is used up.
async fn pace(headers: &HeaderMap) {
    let remaining = headers
        .get("x-rate-limit-remaining")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if remaining == Some(0) {
        tokio::time::sleep(rate_limit_wait(headers)).await;
    }
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|value| {
            value.split(',').find_map(|part| {
                let (target, params) = part.split_once(';')?;
                params
                    .split(';')
                    .any(|p| p.trim() == "rel=\"next\"")
                    .then(|| {
                        target
                            .trim()
                            .trim_start_matches('<')
                            .trim_end_matches('>')
                            .to_string()
                    })
            })
        })
}

/// Member listings in flight at once.
const MEMBER_READS_AT_ONCE: usize = 4;

impl OktaSource {
    /// Whether a group's members are read: every group's, or those the config names.
    fn wants_members(&self, name: &str) -> bool {
        self.members_of
            .as_ref()
            .is_none_or(|wanted| wanted.contains(name))
    }

    /// Reads the members of every wanted group whose members are not kept yet, a few at
    /// a time; each member must be a known user.
    async fn read_members(&self, kept: &mut OktaKept) -> Result<(), IdentityError> {
        let missing: Vec<String> = kept
            .groups
            .iter()
            .filter(|(_, g)| g.members.is_none() && self.wants_members(&g.name))
            .map(|(id, _)| id.clone())
            .collect();
        let reads = missing.into_iter().map(|id| async move {
            let members = self
                .list(&format!("/api/v1/groups/{id}/users?limit=1000"), |u| {
                    text(u, "/id")
                })
                .await?;
            Ok::<_, IdentityError>((id, members))
        });
        let mut stream = futures_util::stream::iter(reads).buffered(MEMBER_READS_AT_ONCE);
        while let Some(read) = stream.next().await {
            let (id, members) = read?;
            let group = kept.groups.get_mut(&id).expect("a listed group is kept");
            if let Some(stranger) = members.iter().find(|m| !kept.users.contains_key(*m)) {
                return Err(IdentityError::Read {
                    source_name: self.base.clone(),
                    message: format!(
                        "group `{}` lists user {stranger}, who is not among the users; read again",
                        group.name
                    ),
                });
            }
            group.members = Some(members.into_iter().collect());
        }
        Ok(())
    }

    /// Reads everything the config needs, with a System Log cursor from just before (it
    /// costs no call, so it is taken whether or not it is kept).
    pub async fn read_full_with(&self, _keep: bool) -> Result<OktaKept, IdentityError> {
        let since = now_secs() - FULL_READ_MARGIN_SECS;
        let (users, groups) = tokio::try_join!(self.users(), self.groups())?;
        let mut kept = OktaKept {
            since,
            recent: BTreeMap::new(),
            users,
            groups,
        };
        self.read_members(&mut kept).await?;
        Ok(kept)
    }

    /// The directory a kept read describes.
    pub fn directory(&self, kept: &OktaKept) -> Result<Directory, IdentityError> {
        not_empty(&self.base, kept.users.len())?;
        let keys = self.manager_keys(&kept.users);
        let people = kept
            .users
            .values()
            .map(|u| person(u, self.manager_of(u, &keys)))
            .collect();
        let email = |id: &String| kept.users.get(id).map(|u| u.email.clone());
        let groups = kept
            .groups
            .values()
            .map(|g| Group {
                name: g.name.clone(),
                description: g.description.clone(),
                members: g.members.iter().flatten().filter_map(email).collect(),
                groups: Vec::new(),
            })
            .collect();
        Ok(Directory {
            source: self.base.clone(),
            people,
            groups,
        }
        .normalise())
    }

    /// What a full read would cost in calls, from the kept directory's sizes.
    fn full_read_calls(kept: &OktaKept) -> usize {
        let pages = |n: usize, size: usize| n.div_ceil(size).max(1);
        let members: usize = kept
            .groups
            .values()
            .filter_map(|g| g.members.as_ref())
            .map(|m| pages(m.len(), 1000))
            .sum();
        pages(kept.users.len(), 200) + 1 + pages(kept.groups.len(), 10_000) + members
    }

    /// Brings `kept` up to date from the System Log: each person an event names is read
    /// again (the user and their groups), the group list again when a group was created,
    /// deleted or renamed, and the members of groups the config newly names.
    pub async fn follow(&self, mut kept: OktaKept) -> Result<Followed<OktaKept>, IdentityError> {
        if now_secs() - kept.since > LOG_RETENTION_SECS {
            return Ok(Followed::ReadInFull(
                "the System Log cursor is older than the log's 90-day retention".into(),
            ));
        }
        let events = match self.events(&mut kept).await? {
            Ok(events) => events,
            Err(reason) => return Ok(Followed::ReadInFull(reason)),
        };
        let budget = Self::full_read_calls(&kept);
        if events.users.len() * 2 > budget {
            return Ok(Followed::ReadInFull(format!(
                "{} people changed: reading them again costs more calls than a full read ({budget})",
                events.users.len()
            )));
        }
        if events.groups_changed {
            let mut groups = self.groups().await?;
            for (id, group) in &mut groups {
                if let Some(old) = kept.groups.remove(id) {
                    group.members = old.members;
                }
            }
            kept.groups = groups;
        }
        self.reread_users(&mut kept, &events.users).await?;
        self.read_members(&mut kept).await?;
        Ok(Followed::Updated {
            kept,
            changes: events.count,
        })
    }

    /// The System Log since the cursor: the users and whether groups changed, with the
    /// cursor moved to the newest event; `Err` with a reason when Okta refuses the cursor.
    async fn events(&self, kept: &mut OktaKept) -> Result<Result<Events, String>, IdentityError> {
        let since = timestamp(kept.since - LOG_OVERLAP_SECS);
        let filter = EVENT_TYPES
            .iter()
            .map(|t| format!("eventType eq \"{t}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        let query = serde_urlencoded::to_string([
            ("since", since.as_str()),
            ("filter", filter.as_str()),
            ("limit", "1000"),
            ("sortOrder", "ASCENDING"),
        ])
        .unwrap_or_default()
        .replace('+', "%20");
        let mut url = format!("{}/api/v1/logs?{query}", self.base);
        let mut events = Events::default();
        let mut newest = kept.since;
        loop {
            let fetched = match self.get(&url, &[400]).await? {
                Answer::Body(fetched) => fetched,
                Answer::Status(status, _) => {
                    return Ok(Err(format!(
                        "Okta refused the System Log cursor (HTTP {status}): it may be older than the log keeps"
                    )));
                }
            };
            let page = self.page(&fetched.body, &url)?;
            // Okta's System Log always links a next page; an empty page is the end.
            if page.is_empty() {
                break;
            }
            for event in page {
                let uuid = text(event, "/uuid");
                let at = parse_time(&text(event, "/published")).unwrap_or(kept.since);
                if kept.recent.insert(uuid, at).is_some() {
                    continue;
                }
                newest = newest.max(at);
                events.take(event, kept, |name| self.wants_members(name));
            }
            pace(&fetched.headers).await;
            match next_link(&fetched.headers) {
                Some(next) => url = next,
                None => break,
            }
        }
        kept.since = newest;
        kept.recent.retain(|_, at| *at >= newest - LOG_OVERLAP_SECS);
        Ok(Ok(events))
    }

    /// Reads each user again (four at a time): their profile and status, and the groups
    /// they are in; a user Okta no longer has is dropped.
    async fn reread_users(
        &self,
        kept: &mut OktaKept,
        ids: &BTreeSet<String>,
    ) -> Result<(), IdentityError> {
        // Owned ids: a closure over borrowed ones makes a future no task can be sure is
        // `Send` (rust-lang/rust#102211).
        let reads = ids.iter().cloned().map(|id| async move {
            let url = format!("{}/api/v1/users/{id}", self.base);
            let user = match self.get(&url, &[404]).await? {
                Answer::Body(fetched) => self.user(&fetched.body),
                Answer::Status(..) => return Ok((id, None)),
            };
            let groups: BTreeSet<String> = self
                .list(&format!("/api/v1/users/{id}/groups?limit=200"), |g| {
                    text(g, "/id")
                })
                .await?
                .into_iter()
                .collect();
            Ok::<_, IdentityError>((id, Some((user, groups))))
        });
        let mut stream = futures_util::stream::iter(reads).buffered(MEMBER_READS_AT_ONCE);
        while let Some(read) = stream.next().await {
            let (id, found) = read?;
            let groups = match found {
                Some((user, groups)) => {
                    kept.users.insert(id.clone(), user);
                    groups
                }
                None => {
                    kept.users.remove(&id);
                    BTreeSet::new()
                }
            };
            for (group_id, group) in &mut kept.groups {
                if let Some(members) = &mut group.members {
                    if groups.contains(group_id) {
                        members.insert(id.clone());
                    } else {
                        members.remove(&id);
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a run of System Log events touched.
#[derive(Default)]
struct Events {
    count: usize,
    users: BTreeSet<String>,
    groups_changed: bool,
}

impl Events {
    /// Takes one event: a user's lifecycle or profile change names the user; a membership
    /// change names the user when the group's members are read; a group's lifecycle or
    /// profile change means the group list is read again.
    fn take(&mut self, event: &Value, kept: &OktaKept, wanted: impl Fn(&str) -> bool) {
        self.count += 1;
        let kind = text(event, "/eventType");
        let targets = event.get("target").and_then(Value::as_array);
        let target = |type_: &str| {
            targets
                .into_iter()
                .flatten()
                .find(|t| text(t, "/type") == type_)
                .map(|t| text(t, "/id"))
        };
        if kind.starts_with("group.lifecycle.") || kind == "group.profile.update" {
            self.groups_changed = true;
        } else if kind.starts_with("group.user_membership.") {
            let in_read_group = target("UserGroup").is_some_and(|g| {
                kept.groups
                    .get(&g)
                    .is_none_or(|g| g.members.is_some() || wanted(&g.name))
            });
            if in_read_group {
                self.users.extend(target("User"));
            }
        } else {
            self.users.extend(target("User"));
        }
    }
}

impl IdentitySource for OktaSource {
    async fn read(&self) -> Result<Directory, IdentityError> {
        let kept = self.read_full_with(false).await?;
        self.directory(&kept)
    }
}

/// Now, in unix seconds.
fn now_secs() -> f64 {
    crate::clock::now_millis() as f64 / 1000.0
}

/// Unix seconds as RFC 3339 (UTC, milliseconds), as the System Log's `since` takes it.
fn timestamp(unix: f64) -> String {
    jiff::Timestamp::from_millisecond((unix * 1000.0) as i64)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_default()
}

/// An RFC 3339 time as unix seconds.
fn parse_time(text: &str) -> Option<f64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

/// An Okta user as a person: suspended or deprovisioned users are suspended.
fn person(user: &OktaUser, manager: Option<String>) -> Person {
    Person {
        email: user.email.clone(),
        given_name: user.first_name.clone(),
        family_name: user.last_name.clone(),
        title: user.title.clone(),
        department: user.department.clone(),
        manager,
        status: match user.status.as_str() {
            "SUSPENDED" | "DEPROVISIONED" => PersonStatus::Suspended,
            _ => PersonStatus::Active,
        },
    }
}
