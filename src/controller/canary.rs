//! The event stream's canary (see `mirror::stream`): the leader changes the description
//! of `@slack-gitops-canary`, a usergroup it owns in the first managed workspace, once a
//! period, and records the canary in the store; the drain sees its `subteam_updated`
//! come back and moves the watermark. A canary not back when the next is due freezes
//! the stream: reads do not trust the mirror until one comes back.
//!
//! The usergroup has no members and no mapping names it, so plans never touch it. One
//! `usergroups.update` a period (Tier 2: 20 a minute) is the canary's whole cost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Shared;
use super::mirror::RefreshWith;
use crate::mirror::stream::{CANARY_HANDLE, CANARY_NAME, canary_description};
use crate::plan::action::UsergroupField;
use crate::slack::writer;

/// How often a canary is sent (emulated seconds).
pub const CANARY_EVERY_SECS: f64 = 60.0;

/// The shortest real pause between canaries, whatever the time scale.
const CANARY_MIN_PAUSE: Duration = Duration::from_secs(1);

/// The pause between canaries at `time_scale`.
pub fn pause(time_scale: f64) -> Duration {
    Duration::from_secs_f64(CANARY_EVERY_SECS / time_scale.max(1e-9)).max(CANARY_MIN_PAUSE)
}

/// How long (real ms) a canary has to come back before the next one is sent and it
/// counts as overdue: a period, and never under 5 s (a fast time scale must not make a
/// busy machine look like a frozen stream).
fn grace(time_scale: f64) -> i64 {
    (pause(time_scale).as_millis() as i64).max(5_000)
}

/// How long (real ms) after the newest canary that came back was sent the stream still
/// counts as healthy: two periods and a grace for the event to arrive.
pub fn bound(time_scale: f64) -> i64 {
    pause(time_scale).as_millis() as i64 * 2 + grace(time_scale)
}

/// Sends a canary every period while this replica leads and events are configured.
pub async fn canary_loop(shared: Arc<Shared>) {
    let mut usergroup: Option<(String, String)> = None;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(context) = super::mirror::leading_with(&shared, shared.events_configured()) else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let started = tokio::time::Instant::now();
        if let Err(error) = send(&shared, &context, &mut usergroup).await {
            tracing::warn!(%error, "the event canary could not be sent; the mirror is not trusted until one comes back");
            *shared
                .events
                .canary_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(error);
        }
        let pause = pause(context.time_scale);
        tokio::time::sleep(pause.saturating_sub(started.elapsed())).await;
    }
}

/// One canary: the usergroup found or created, its description changed to carry a new
/// nonce, and the canary recorded.
async fn send(
    shared: &Shared,
    context: &RefreshWith,
    usergroup: &mut Option<(String, String)>,
) -> Result<(), String> {
    let team = match usergroup {
        Some((team, _)) if context.workspaces.contains(team) => team.clone(),
        _ => {
            let team = context
                .workspaces
                .first()
                .ok_or("the config manages no workspace")?
                .clone();
            let id = find_or_create(context, &team).await?;
            *usergroup = Some((team.clone(), id));
            team
        }
    };
    let id = usergroup
        .as_ref()
        .map(|(_, id)| id.clone())
        .unwrap_or_default();
    let nonce = crate::clock::now_millis();
    let description = canary_description(nonce);
    writer::update_usergroup(
        &context.client,
        &team,
        &id,
        &[(UsergroupField::Description, description.as_str())],
    )
    .await
    .map_err(|e| {
        // The usergroup may be gone: found again next time.
        *usergroup = None;
        format!("usergroups.update of @{CANARY_HANDLE}: {e}")
    })?;
    let (store, scope) = (shared.store.clone(), shared.election.lease.clone());
    tokio::task::spawn_blocking(move || store.canary_sent(&scope, nonce, nonce))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    shared.events.canaries_sent.fetch_add(1, Ordering::Relaxed);
    *shared
        .events
        .canary_error
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = None;
    Ok(())
}

/// The canary usergroup's id in `team`, created (with no members) when missing and
/// enabled when disabled.
async fn find_or_create(context: &RefreshWith, team: &str) -> Result<String, String> {
    let client = &context.client;
    let groups = writer::list_usergroups(client, team)
        .await
        .map_err(|e| format!("usergroups.list: {e}"))?;
    match groups.into_iter().find(|g| g.handle == CANARY_HANDLE) {
        Some(group) if group.disabled => {
            writer::set_usergroup_enabled(client, team, &group.id, true)
                .await
                .map_err(|e| format!("usergroups.enable of @{CANARY_HANDLE}: {e}"))?;
            Ok(group.id)
        }
        Some(group) => Ok(group.id),
        None => {
            let description = canary_description(0);
            let group = writer::create_usergroup(
                client,
                team,
                CANARY_HANDLE,
                CANARY_NAME,
                &description,
                &[],
            )
            .await
            .map_err(|e| format!("usergroups.create of @{CANARY_HANDLE}: {e}"))?;
            tracing::info!(team, id = %group.id, "created the event canary's usergroup");
            Ok(group.id)
        }
    }
}
