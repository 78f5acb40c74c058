//! Fake identity providers, for the identity adapters' tests and benchmarks: Okta's
//! management API ([`okta`]) and Microsoft Graph ([`graph`]), both served from one
//! [`Idp`]: a directory that tests change while it is served (a member added or removed,
//! a person suspended, deactivated or edited), each change kept in a change log that
//! Okta's System Log and Graph's delta queries are answered from.
//!
//! Both answer as the vendors document: their page sizes and paging (`Link` headers;
//! `@odata.nextLink`/`@odata.deltaLink`), their published default rate limits with their
//! headers and 429s, their error bodies. The responses are checked against the vendors'
//! OpenAPI descriptions in the product's tests. Rate-limit windows run `time_scale` times
//! faster than real time, as the Slack emulator's do.

pub mod graph;
pub mod okta;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use slack_gitops_core::model::directory::{Directory, Person, PersonStatus};

/// A person's standing in the identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Active,
    Suspended,
    /// Okta's `DEPROVISIONED` (deactivated); Entra's `accountEnabled: false`.
    Deactivated,
}

/// One change to the directory, as the change log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    MemberAdded { group: usize, person: usize },
    MemberRemoved { group: usize, person: usize },
    Standing { person: usize, standing: Standing },
    Profile { person: usize },
    PersonCreated { person: usize },
}

/// A change with its place in the log and its time (unix seconds, by the fake's clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// 1 for the first change; a delta token or log cursor is the last sequence seen.
    pub seq: u64,
    pub at: f64,
    pub kind: ChangeKind,
}

/// One group: direct members and directly nested groups, by index.
#[derive(Debug, Clone)]
pub struct FakeGroup {
    pub name: String,
    pub description: String,
    pub members: BTreeSet<usize>,
    pub groups: BTreeSet<usize>,
}

/// The directory the fakes serve, and what they saw.
pub struct IdpState {
    pub people: Vec<Person>,
    pub standing: Vec<Standing>,
    pub groups: Vec<FakeGroup>,
    by_email: HashMap<String, usize>,
    by_group_name: HashMap<String, usize>,
    /// Each group's members with nested groups resolved (Graph's `transitiveMemberOf`),
    /// rebuilt after a change.
    flattened: Option<Vec<BTreeSet<usize>>>,
    /// Okta's groups, which do not nest: each group of the directory with its nested
    /// groups' members taken in when served, then changed only by changes to it.
    pub okta_members: Vec<BTreeSet<usize>>,
    pub changes: Vec<Change>,
    /// Every request's path and query, in order.
    pub requests: Vec<String>,
    /// Calls per rate-limit bucket (Okta) and resource units spent (Graph).
    pub spent: HashMap<String, u64>,
    /// Delta tokens from before this sequence are expired (410).
    pub expired_before: u64,
    /// The next System Log read with a `since` is refused as beyond the log's retention.
    pub refuse_next_since: bool,
    /// The next answers' status, for faults (`500`, `429`, `503`), taken one per request.
    pub faults: Vec<u16>,
    windows: HashMap<String, Window>,
    started: Instant,
    /// Unix seconds at start, by the fake's clock.
    epoch: f64,
    time_scale: f64,
}

/// A rate-limit window: Okta's fixed minute, Graph's ten seconds.
#[derive(Debug, Clone, Copy)]
struct Window {
    opened: f64,
    used: u64,
}

/// A shared handle on the fakes' directory.
#[derive(Clone)]
pub struct Idp(Arc<Mutex<IdpState>>);

impl Idp {
    /// Serves `directory`: people with their status (suspended people are `SUSPENDED` in
    /// Okta and disabled in Entra), groups with their members and nested groups. Rate-limit
    /// windows run `time_scale` times faster than real time.
    pub fn new(directory: &Directory, time_scale: f64) -> Idp {
        let by_email: HashMap<String, usize> = directory
            .people
            .iter()
            .enumerate()
            .map(|(i, p)| (p.email.to_lowercase(), i))
            .collect();
        let by_group_name: HashMap<String, usize> = directory
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.clone(), i))
            .collect();
        let groups: Vec<FakeGroup> = directory
            .groups
            .iter()
            .map(|g| FakeGroup {
                name: g.name.clone(),
                description: g.description.clone(),
                members: g
                    .members
                    .iter()
                    .filter_map(|m| by_email.get(&m.to_lowercase()).copied())
                    .collect(),
                groups: g
                    .groups
                    .iter()
                    .filter_map(|n| by_group_name.get(n).copied())
                    .collect(),
            })
            .collect();
        let standing = directory
            .people
            .iter()
            .map(|p| match p.status {
                PersonStatus::Active => Standing::Active,
                PersonStatus::Suspended => Standing::Suspended,
            })
            .collect();
        let mut memo = vec![None; groups.len()];
        let okta_members = (0..groups.len())
            .map(|g| flatten(&groups, g, &mut memo, &mut Vec::new()))
            .collect();
        Idp(Arc::new(Mutex::new(IdpState {
            people: directory.people.clone(),
            standing,
            groups,
            by_email,
            by_group_name,
            flattened: None,
            okta_members,
            changes: Vec::new(),
            requests: Vec::new(),
            spent: HashMap::new(),
            expired_before: 0,
            refuse_next_since: false,
            faults: Vec::new(),
            windows: HashMap::new(),
            started: Instant::now(),
            epoch: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            time_scale: time_scale.max(f64::MIN_POSITIVE),
        })))
    }

    /// The state, for reading what was asked or changing what is served.
    pub fn state(&self) -> MutexGuard<'_, IdpState> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `email` to `group`'s direct members.
    pub fn add_member(&self, group: &str, email: &str) {
        let mut state = self.state();
        let (g, p) = (state.group_index(group), state.person_index(email));
        state.okta_members[g].insert(p);
        if state.groups[g].members.insert(p) {
            state.record(ChangeKind::MemberAdded {
                group: g,
                person: p,
            });
        }
    }

    /// Removes `email` from `group`'s direct members.
    pub fn remove_member(&self, group: &str, email: &str) {
        let mut state = self.state();
        let (g, p) = (state.group_index(group), state.person_index(email));
        state.okta_members[g].remove(&p);
        if state.groups[g].members.remove(&p) {
            state.record(ChangeKind::MemberRemoved {
                group: g,
                person: p,
            });
        }
    }

    /// Suspends, deactivates or reactivates `email`.
    pub fn set_standing(&self, email: &str, standing: Standing) {
        let mut state = self.state();
        let p = state.person_index(email);
        state.standing[p] = standing;
        state.people[p].status = match standing {
            Standing::Active => PersonStatus::Active,
            _ => PersonStatus::Suspended,
        };
        state.record(ChangeKind::Standing {
            person: p,
            standing,
        });
    }

    /// Changes `email`'s job title.
    pub fn set_title(&self, email: &str, title: &str) {
        let mut state = self.state();
        let p = state.person_index(email);
        state.people[p].title = title.to_string();
        state.record(ChangeKind::Profile { person: p });
    }

    /// Adds a person (a joiner), active.
    pub fn add_person(&self, person: Person) {
        let mut state = self.state();
        let p = state.people.len();
        state.by_email.insert(person.email.to_lowercase(), p);
        state.people.push(person);
        state.standing.push(Standing::Active);
        state.record(ChangeKind::PersonCreated { person: p });
    }

    /// Expires every delta token handed out so far (Graph answers 410), and has Okta
    /// refuse the next System Log read's `since` (400), as a cursor past the log's
    /// retention is.
    pub fn expire_cursors(&self) {
        let mut state = self.state();
        state.expired_before = state.changes.last().map_or(1, |c| c.seq + 1);
        state.refuse_next_since = true;
    }

    /// The requests so far, and forgets them.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut self.state().requests)
    }
}

impl IdpState {
    fn person_index(&self, email: &str) -> usize {
        *self
            .by_email
            .get(&email.to_lowercase())
            .unwrap_or_else(|| panic!("the fake has no person {email}"))
    }

    fn group_index(&self, name: &str) -> usize {
        *self
            .by_group_name
            .get(name)
            .unwrap_or_else(|| panic!("the fake has no group {name}"))
    }

    pub fn person_by_email(&self, email: &str) -> Option<usize> {
        self.by_email.get(&email.to_lowercase()).copied()
    }

    fn record(&mut self, kind: ChangeKind) {
        let seq = self.changes.last().map_or(1, |c| c.seq + 1);
        let at = self.now();
        self.changes.push(Change { seq, at, kind });
        self.flattened = None;
    }

    /// The last change's sequence (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.changes.last().map_or(0, |c| c.seq)
    }

    /// Unix seconds now: changes and events carry real time (only rate-limit windows run
    /// at the time scale).
    pub fn now(&self) -> f64 {
        self.epoch + self.started.elapsed().as_secs_f64()
    }

    /// Emulated seconds since start, for rate-limit windows.
    fn scaled(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * self.time_scale
    }

    /// Each group's members with nested groups resolved, as now.
    pub fn flattened(&mut self) -> &[BTreeSet<usize>] {
        if self.flattened.is_none() {
            let mut memo: Vec<Option<BTreeSet<usize>>> = vec![None; self.groups.len()];
            for g in 0..self.groups.len() {
                flatten(&self.groups, g, &mut memo, &mut Vec::new());
            }
            self.flattened = Some(memo.into_iter().map(Option::unwrap_or_default).collect());
        }
        self.flattened.as_deref().unwrap_or_default()
    }

    /// Takes `cost` from a bucket of `limit` per `window` (emulated) seconds: `Ok` with
    /// what remains and when the window resets (real unix seconds), or `Err` with the real
    /// seconds until it does.
    fn take(&mut self, bucket: &str, limit: u64, window: f64, cost: u64) -> Result<Taken, f64> {
        *self.spent.entry(bucket.to_string()).or_default() += cost;
        let now = self.scaled();
        let entry = self.windows.entry(bucket.to_string()).or_insert(Window {
            opened: now,
            used: 0,
        });
        if now - entry.opened >= window {
            *entry = Window {
                opened: now,
                used: 0,
            };
        }
        let left = window - (now - entry.opened);
        let real_left = left / self.time_scale;
        let real_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        if entry.used + cost > limit {
            return Err(real_left);
        }
        entry.used += cost;
        Ok(Taken {
            remaining: limit - entry.used,
            reset_unix: (real_now + real_left).ceil() as u64,
        })
    }

    /// The next injected fault, if any.
    fn fault(&mut self) -> Option<u16> {
        (!self.faults.is_empty()).then(|| self.faults.remove(0))
    }
}

/// What a request took from its bucket.
struct Taken {
    remaining: u64,
    reset_unix: u64,
}

fn flatten(
    groups: &[FakeGroup],
    g: usize,
    memo: &mut Vec<Option<BTreeSet<usize>>>,
    path: &mut Vec<usize>,
) -> BTreeSet<usize> {
    if let Some(done) = &memo[g] {
        return done.clone();
    }
    if path.contains(&g) {
        return groups[g].members.clone();
    }
    path.push(g);
    let mut members = groups[g].members.clone();
    for &child in &groups[g].groups {
        members.extend(flatten(groups, child, memo, path));
    }
    path.pop();
    memo[g] = Some(members.clone());
    members
}

/// An RFC 3339 time with milliseconds, as Okta and Graph write them.
pub fn rfc3339(unix: f64) -> String {
    let millis = (unix * 1000.0).round() as i64;
    let (secs, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an RFC 3339 time (`2026-01-01T00:00:00.000Z` or with an offset) to unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (date.next()??, date.next()??, date.next()??);
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(i) => time.split_at(i),
        None => (time, "Z"),
    };
    let mut clock = clock.split(':');
    let h: i64 = clock.next()?.parse().ok()?;
    let min: i64 = clock.next()?.parse().ok()?;
    let s: f64 = clock.next().unwrap_or("0").parse().ok()?;
    let offset = match offset {
        "Z" | "z" => 0,
        other => {
            let sign = if other.starts_with('-') { -1 } else { 1 };
            let (oh, om) = other[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    Some((days_from_civil(y, m, d) * 86_400 + h * 3600 + min * 60 - offset) as f64 + s)
}

// Howard Hinnant's civil-calendar conversions.
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Binds a local port and serves `app` on it; the base URL.
pub(crate) async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let base = format!(
        "http://{}",
        listener.local_addr().expect("a bound listener's address")
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

/// A query string's parameters, percent-decoded.
pub(crate) fn query(uri: &axum::http::Uri) -> HashMap<String, String> {
    serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default()
}

/// Seconds to a `Retry-After` value (whole seconds, at least one).
pub(crate) fn retry_after(real_seconds: f64) -> String {
    Duration::from_secs_f64(real_seconds.max(0.0))
        .as_secs_f64()
        .ceil()
        .max(1.0)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = 1_767_225_600.5;
        assert_eq!(rfc3339(t), "2026-01-01T00:00:00.500Z");
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00.500Z"), Some(t));
        assert_eq!(parse_rfc3339("2026-01-01T01:00:00.500+01:00"), Some(t));
    }
}
