//! Live Slack from the mirror: every stale or unread object the plan needs is read from
//! Slack first (and written through), the rest is taken from the mirror, and IdP groups
//! are read live (they are not mirrored). The read says how many objects it read live
//! and how old the oldest mirrored copy it used is, so a plan can say so.
//!
//! It declines (answers `None`, and the caller reads Slack in full) when the mirror was
//! never filled, or when more objects would have to be read live than `max_live`.

use std::collections::{BTreeMap, BTreeSet};

use super::{ObjectKind, Row, Sink, Wanted};
use crate::model::live::{Live, LiveChannel, LiveUser, LiveUsergroup};
use crate::slack::client::{SlackClient, SlackError};
use crate::slack::reader::{self, ReadReport, ReadScope};
use crate::store::MirrorRow;

/// What a read from the mirror did.
#[derive(Debug, Clone, PartialEq)]
pub struct FromMirror {
    /// Objects read from Slack because the mirror's copy was stale, missing or lacked
    /// members the config needs.
    pub read_live: usize,
    /// Objects taken from the mirror.
    pub mirrored: usize,
    /// The oldest verification (unix ms) among the copies taken from the mirror.
    pub oldest_verified_at: Option<i64>,
}

/// Why the mirror cannot serve a read.
#[derive(Debug, thiserror::Error)]
pub enum Declined {
    #[error("the mirror is empty")]
    Empty,
    #[error("{0} objects would have to be read live")]
    TooStale(usize),
    #[error("the mirror cannot be read: {0}")]
    Store(String),
    #[error(transparent)]
    Slack(#[from] SlackError),
}

/// Live Slack for `scope` from the mirror, reading live at most `max_live` objects;
/// copies verified before `unverified_before` (unix ms: the event stream's last gap)
/// count as unverified.
pub async fn read(
    client: &SlackClient,
    sink: &Sink,
    scope: &ReadScope,
    max_live: usize,
    unverified_before: i64,
) -> Result<(Live, ReadReport, FromMirror), Declined> {
    let before = client.counts();
    let started = crate::clock::now_millis();
    let rows = {
        let sink = sink.clone();
        tokio::task::spawn_blocking(move || sink.store.mirror_rows(&sink.scope))
            .await
            .map_err(|e| Declined::Store(e.to_string()))?
            .map_err(|e| Declined::Store(e.to_string()))?
    };
    if !rows
        .iter()
        .any(|r| r.kind == ObjectKind::Channel && r.document.is_some())
    {
        return Err(Declined::Empty);
    }
    let due = due_live(&rows, scope, unverified_before);
    if due.len() > max_live {
        return Err(Declined::TooStale(due.len()));
    }
    let wanted: Vec<Wanted> = due.iter().map(|row| wanted(row)).collect();
    let (fresh, gone, _) = read_wanted(client, &wanted, scope).await?;
    write_through(sink, &fresh, &gone, started).await;
    let idp_groups = if scope.grid {
        reader::read_idp_groups(client).await?
    } else {
        Vec::new()
    };
    let (live, updates, taken) = assemble(&rows, &fresh, &gone, idp_groups);
    let after = client.counts();
    let report = ReadReport {
        usergroup_updates: updates,
        minimum_calls: after.calls - before.calls,
        calls: after.calls - before.calls,
        rate_limited: after.rate_limited - before.rate_limited,
        retries: after.retries - before.retries,
    };
    let from = FromMirror {
        read_live: due.len(),
        mirrored: taken.len(),
        oldest_verified_at: taken.iter().filter_map(|r| r.verified_at).min(),
    };
    tracing::info!(
        read_live = from.read_live,
        mirrored = from.mirrored,
        calls = report.calls,
        "read live Slack from the mirror"
    );
    Ok((live, report, from))
}

/// The objects to read live: stale, never read or verified before `unverified_before`,
/// and managed channels whose members the mirror does not hold.
fn due_live<'r>(
    rows: &'r [MirrorRow],
    scope: &ReadScope,
    unverified_before: i64,
) -> Vec<&'r MirrorRow> {
    rows.iter()
        .filter(|row| {
            if row.stale_since.is_some()
                || row.document.is_none()
                || row.verified_at.is_none_or(|at| at < unverified_before)
            {
                return true;
            }
            row.kind == ObjectKind::Channel
                && row
                    .document
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<LiveChannel>(d).ok())
                    .is_some_and(|c| {
                        c.members.is_none()
                            && scope.managed_channels.contains(&(c.workspace, c.name))
                    })
        })
        .collect()
}

/// What a due row asks to be read: a usergroup by the workspace its copy names (every
/// workspace when the copy is missing).
fn wanted(row: &MirrorRow) -> Wanted {
    let workspace = match row.kind {
        ObjectKind::Usergroup => row
            .document
            .as_deref()
            .and_then(|d| serde_json::from_str::<LiveUsergroup>(d).ok())
            .map(|g| g.workspace),
        _ => None,
    };
    Wanted {
        kind: row.kind,
        id: row.id.clone(),
        workspace,
    }
}

/// Reads the wanted objects: each channel and person, and the usergroups of each
/// workspace that has a wanted one. Gives the rows read, the objects Slack no longer
/// has, and the workspaces whose usergroups were read.
async fn read_wanted(
    client: &SlackClient,
    wanted: &[Wanted],
    scope: &ReadScope,
) -> Result<(Vec<Row>, Vec<(ObjectKind, String)>, BTreeSet<String>), SlackError> {
    let mut rows = Vec::new();
    let mut gone = Vec::new();
    let mut workspaces = BTreeSet::new();
    for object in wanted {
        match object.kind {
            ObjectKind::Channel => match reader::read_channel(client, &object.id, true).await? {
                Some(channel) => {
                    let managed = scope
                        .managed_channels
                        .contains(&(channel.workspace.clone(), channel.name.clone()));
                    let channel = LiveChannel {
                        members: channel.members.filter(|_| managed),
                        ..channel
                    };
                    rows.push(Row::channel(&channel));
                }
                None => gone.push((ObjectKind::Channel, object.id.clone())),
            },
            ObjectKind::User => match reader::read_user(client, &object.id).await? {
                Some(user) => rows.push(Row::user(&user)),
                None => gone.push((ObjectKind::User, object.id.clone())),
            },
            ObjectKind::Usergroup => match &object.workspace {
                Some(team) => {
                    workspaces.insert(team.clone());
                }
                None => workspaces.extend(scope.workspaces.iter().cloned()),
            },
        }
    }
    for team in &workspaces {
        let (groups, updates) = reader::read_usergroups_in(client, team).await?;
        rows.extend(
            groups
                .iter()
                .map(|g| Row::usergroup(g, updates.get(&g.id).copied())),
        );
    }
    Ok((rows, gone, workspaces))
}

/// Writes objects read live through to the mirror; a store that fails costs a warning.
async fn write_through(sink: &Sink, fresh: &[Row], gone: &[(ObjectKind, String)], started: i64) {
    let written = {
        let (sink, fresh, gone) = (sink.clone(), fresh.to_vec(), gone.to_vec());
        tokio::task::spawn_blocking(move || {
            sink.store
                .mirror_partial_read(&sink.scope, &fresh, &gone, started)
        })
        .await
    };
    if !matches!(written, Ok(Ok(()))) {
        tracing::warn!("objects read live were not written through to the mirror");
    }
}

/// Reads `wanted` from Slack now and puts what it finds into `live` in place of the
/// copies there (a usergroup read replaces its whole workspace's usergroups), writing it
/// through to the mirror. Gives how many objects were read.
pub async fn reread(
    client: &SlackClient,
    sink: &Sink,
    scope: &ReadScope,
    wanted: &[Wanted],
    live: &mut Live,
    updates: &mut BTreeMap<String, i64>,
) -> Result<usize, SlackError> {
    let started = crate::clock::now_millis();
    let (fresh, gone, workspaces) = read_wanted(client, wanted, scope).await?;
    write_through(sink, &fresh, &gone, started).await;
    let replaced: BTreeSet<(ObjectKind, &str)> = fresh
        .iter()
        .map(|r| (r.kind, r.id.as_str()))
        .chain(gone.iter().map(|(kind, id)| (*kind, id.as_str())))
        .collect();
    live.channels
        .retain(|c| !replaced.contains(&(ObjectKind::Channel, c.id.as_str())));
    live.users
        .retain(|u| !replaced.contains(&(ObjectKind::User, u.id.as_str())));
    live.usergroups
        .retain(|g| !workspaces.contains(&g.workspace));
    for row in &fresh {
        match row.kind {
            ObjectKind::Channel => live.channels.extend(parse::<LiveChannel>(&row.document)),
            ObjectKind::User => live.users.extend(parse::<LiveUser>(&row.document)),
            ObjectKind::Usergroup => {
                if let Some(group) = parse::<LiveUsergroup>(&row.document) {
                    if let Some(date) = row.date_update {
                        updates.insert(group.id.clone(), date);
                    }
                    live.usergroups.push(group);
                }
            }
        }
    }
    sort(live);
    Ok(wanted.len())
}

/// Live from the fresh rows, else the mirror's copies, sorted as a full read sorts; with
/// usergroups' `date_update`s and the mirror rows taken.
fn assemble<'r>(
    rows: &'r [MirrorRow],
    fresh: &[Row],
    gone: &[(ObjectKind, String)],
    idp_groups: Vec<crate::model::live::LiveIdpGroup>,
) -> (Live, BTreeMap<String, i64>, Vec<&'r MirrorRow>) {
    let fresh_by: BTreeMap<(ObjectKind, &str), &Row> =
        fresh.iter().map(|r| ((r.kind, r.id.as_str()), r)).collect();
    let gone: std::collections::BTreeSet<(ObjectKind, &str)> =
        gone.iter().map(|(kind, id)| (*kind, id.as_str())).collect();
    let mirrored: std::collections::HashSet<(ObjectKind, &str)> =
        rows.iter().map(|r| (r.kind, r.id.as_str())).collect();
    let mut live = Live {
        idp_groups,
        ..Live::default()
    };
    let mut updates = BTreeMap::new();
    let mut taken = Vec::new();
    let mut documents: Vec<(ObjectKind, &str, Option<i64>)> = Vec::new();
    for row in rows {
        if gone.contains(&(row.kind, row.id.as_str())) {
            continue;
        }
        match fresh_by.get(&(row.kind, row.id.as_str())) {
            Some(read) => documents.push((read.kind, &read.document, read.date_update)),
            None => match &row.document {
                Some(document) => {
                    taken.push(row);
                    documents.push((row.kind, document, row.date_update));
                }
                None => continue,
            },
        }
    }
    // Objects the live reads found that the mirror had no row for (a usergroup created
    // since): they are Slack's too.
    for read in fresh {
        if !mirrored.contains(&(read.kind, read.id.as_str())) {
            documents.push((read.kind, &read.document, read.date_update));
        }
    }
    for (kind, document, date_update) in documents {
        match kind {
            ObjectKind::Channel => live.channels.extend(parse::<LiveChannel>(document)),
            ObjectKind::User => live.users.extend(parse::<LiveUser>(document)),
            ObjectKind::Usergroup => {
                if let Some(group) = parse::<LiveUsergroup>(document) {
                    if let Some(date) = date_update {
                        updates.insert(group.id.clone(), date);
                    }
                    live.usergroups.push(group);
                }
            }
        }
    }
    sort(&mut live);
    (live, updates, taken)
}

/// Sorts live Slack as a full read does.
fn sort(live: &mut Live) {
    live.users.sort_by(|a, b| a.id.cmp(&b.id));
    live.usergroups
        .sort_by(|a, b| (&a.workspace, &a.handle).cmp(&(&b.workspace, &b.handle)));
    live.channels
        .sort_by(|a, b| (&a.workspace, &a.name).cmp(&(&b.workspace, &b.name)));
}

fn parse<T: serde::de::DeserializeOwned>(document: &str) -> Option<T> {
    serde_json::from_str(document).ok()
}
