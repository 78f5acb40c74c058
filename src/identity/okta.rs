//! The `okta` identity source: Okta's management API. Users from `/api/v1/users` (which
//! leaves out `DEPROVISIONED` users unless asked: they are read with
//! `search=status eq "DEPROVISIONED"`, so a person deactivated in Okta is a leaver, not
//! someone who vanished), groups from `/api/v1/groups`, members from
//! `/api/v1/groups/{id}/users`, each at the page size Okta allows (200 users, 10,000
//! groups, 1,000 members), member listings four at a time, and paged by the
//! `Link: <...>; rel="next"` header. Okta
//! reports its rate limit on every answer (`X-Rate-Limit-Remaining`,
//! `X-Rate-Limit-Reset`); when the window is used up the reader waits for the reset
//! instead of running into 429s. Okta groups do not nest. A manager is found by the
//! profile attribute and key `identity.manager` names (`managerId` holding an Okta user
//! id by default).

use std::collections::BTreeSet;

use futures_util::StreamExt;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::http::{get_json, get_json_if_found, rate_limit_wait, text};
use super::{IdentityError, IdentitySource};
use crate::config::types::{ManagerMatch, ManagerSettings};
use crate::model::directory::{Directory, Group, Person, PersonStatus};

pub struct OktaSource {
    base: String,
    authorization: String,
    http: reqwest::Client,
    manager: ManagerSettings,
    /// The groups whose members are read (`None`: all of them).
    members_of: Option<BTreeSet<String>>,
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

    /// Every user, deprovisioned ones included (Okta's listing leaves them out unless a
    /// search asks for them).
    async fn users(&self) -> Result<Vec<Value>, IdentityError> {
        let (mut users, deprovisioned) = tokio::try_join!(
            self.list("/api/v1/users?limit=200"),
            self.list("/api/v1/users?limit=200&search=status%20eq%20%22DEPROVISIONED%22"),
        )?;
        let listed: BTreeSet<String> = users.iter().map(|u| text(u, "/id")).collect();
        users.extend(
            deprovisioned
                .into_iter()
                .filter(|u| !listed.contains(&text(u, "/id"))),
        );
        Ok(users)
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
        let found = get_json_if_found(&self.base, &call, || {
            self.http
                .get(&url)
                .header("authorization", &self.authorization)
                .header("accept", "application/json")
        })
        .await?;
        let Some(found) = found else {
            return Ok(Directory {
                source: self.base.clone(),
                ..Directory::default()
            });
        };
        let user = found.body;
        let id = text(&user, "/id");
        let groups = self
            .list(&format!("/api/v1/users/{id}/groups?limit=200"))
            .await?;
        let groups = groups
            .iter()
            .map(|g| (text(g, "/profile/name"), text(g, "/profile/description")))
            .collect();
        Ok(super::one_person(
            self.base.clone(),
            person(&user, None),
            groups,
        ))
    }

    /// Each user's email by the key managers are named with.
    fn manager_keys(&self, users: &[Value]) -> std::collections::HashMap<String, String> {
        let pointer = match self.manager.matches {
            ManagerMatch::Id => "/id",
            ManagerMatch::Login => "/profile/login",
            ManagerMatch::Email => "/profile/email",
            ManagerMatch::EmployeeNumber => "/profile/employeeNumber",
        };
        users
            .iter()
            .filter_map(|u| {
                let key = match u.pointer(pointer)? {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                let key = match self.manager.matches {
                    ManagerMatch::Login | ManagerMatch::Email => key.to_lowercase(),
                    _ => key,
                };
                Some((key, text(u, "/profile/email").to_lowercase()))
            })
            .collect()
    }

    /// The email of `user`'s manager, when their profile names one that is a user.
    fn manager_of(
        &self,
        user: &Value,
        keys: &std::collections::HashMap<String, String>,
    ) -> Option<String> {
        let value = match user.get("profile")?.get(&self.manager.attribute)? {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let value = match self.manager.matches {
            ManagerMatch::Login | ManagerMatch::Email => value.to_lowercase(),
            _ => value,
        };
        keys.get(&value).cloned()
    }

    /// Every item of a listing, following `rel="next"` links.
    async fn list(&self, path: &str) -> Result<Vec<Value>, IdentityError> {
        let mut items = Vec::new();
        let mut url = format!("{}{path}", self.base);
        loop {
            let call = format!("GET {}", url.trim_start_matches(&self.base));
            let fetched = get_json(&self.base, &call, || {
                self.http
                    .get(&url)
                    .header("authorization", &self.authorization)
                    .header("accept", "application/json")
            })
            .await?;
            let page = fetched
                .body
                .as_array()
                .cloned()
                .ok_or_else(|| IdentityError::Call {
                    source_name: self.base.clone(),
                    call: call.clone(),
                    message: "the answer is not a list".into(),
                })?;
            items.extend(page);
            pace(&fetched.headers).await;
            match next_link(&fetched.headers) {
                Some(next) => url = next,
                None => return Ok(items),
            }
        }
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

    /// One group, with its members' emails when they are read (each must be a user).
    async fn group(&self, group: &Value, known: &BTreeSet<String>) -> Result<Group, IdentityError> {
        let id = text(group, "/id");
        let name = text(group, "/profile/name");
        let description = text(group, "/profile/description");
        let mut emails = Vec::new();
        if self.wants_members(&name) {
            let members = self
                .list(&format!("/api/v1/groups/{id}/users?limit=1000"))
                .await?;
            for member in members {
                let email = text(&member, "/profile/email").to_lowercase();
                if !known.contains(&email) {
                    return Err(IdentityError::Read {
                        source_name: self.base.clone(),
                        message: format!(
                            "group `{name}` lists {email}, who is not among the users; read again"
                        ),
                    });
                }
                emails.push(email);
            }
        }
        Ok(Group {
            name,
            description,
            members: emails,
            groups: Vec::new(),
        })
    }
}

impl IdentitySource for OktaSource {
    async fn read(&self) -> Result<Directory, IdentityError> {
        let (users, groups) =
            tokio::try_join!(self.users(), self.list("/api/v1/groups?limit=10000"))?;
        let keys = self.manager_keys(&users);
        let people: Vec<Person> = users
            .iter()
            .map(|user| person(user, self.manager_of(user, &keys)))
            .collect();
        let known: BTreeSet<String> = people.iter().map(|p| p.email.to_lowercase()).collect();
        let skipped = groups
            .iter()
            .filter(|g| !self.wants_members(&text(g, "/profile/name")))
            .count();
        // Member listings run a few at a time, in order; Okta's rate-limit headers pace
        // them (`pace`).
        let reads: Vec<_> = groups.iter().map(|g| self.group(g, &known)).collect();
        let mut directory_groups = Vec::with_capacity(reads.len());
        let mut stream = futures_util::stream::iter(reads).buffered(MEMBER_READS_AT_ONCE);
        while let Some(group) = stream.next().await {
            directory_groups.push(group?);
        }
        tracing::info!(
            groups = groups.len(),
            members_read = groups.len() - skipped,
            skipped,
            "read Okta: members of the groups the config names"
        );
        if people.is_empty() {
            return Err(IdentityError::Read {
                source_name: self.base.clone(),
                message: "Okta lists nobody; an empty directory is refused rather than read as \"everyone left\"".into(),
            });
        }
        Ok(Directory {
            source: self.base.clone(),
            people,
            groups: directory_groups,
        }
        .normalise())
    }
}

/// An Okta user as a person: suspended or deprovisioned users are suspended.
fn person(user: &Value, manager: Option<String>) -> Person {
    Person {
        email: text(user, "/profile/email"),
        given_name: text(user, "/profile/firstName"),
        family_name: text(user, "/profile/lastName"),
        title: text(user, "/profile/title"),
        department: text(user, "/profile/department"),
        manager,
        status: match text(user, "/status").as_str() {
            "SUSPENDED" | "DEPROVISIONED" => PersonStatus::Suspended,
            _ => PersonStatus::Active,
        },
    }
}
