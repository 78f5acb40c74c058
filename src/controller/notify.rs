//! Digests posted to the channel `notify:` names: after each apply that changed
//! something or stopped (halted, refused, failed, incomplete), and after each drift report
//! that found something new (the same drift is not posted every tick). Block Kit with a
//! plain-text fallback; no links, so nothing in it leads outside Slack.

use serde_json::{Value, json};

use super::{SyncOutcome, SyncRecord};
use crate::pipeline::Connection;

/// Lines of changes shown before "and N more".
const TOP: usize = 10;

/// The message: the fallback text and the blocks.
pub fn message(record: &SyncRecord, changes: &[String]) -> (String, Value) {
    let commit = record
        .commit
        .as_deref()
        .map_or("", |c| &c[..c.len().min(12)]);
    let headline = match record.outcome {
        SyncOutcome::Converged => format!("Converged at {commit}: {} action(s)", record.actions),
        SyncOutcome::DriftReported => format!(
            "Drift found at {commit}: {} change(s) pending",
            record.actions
        ),
        SyncOutcome::Halted => format!("HALTED at {commit}"),
        SyncOutcome::Refused => format!("Refused {commit}: nothing was written"),
        SyncOutcome::Failed => format!("Sync failed at {commit}"),
        SyncOutcome::Incomplete | SyncOutcome::DryRun | SyncOutcome::NoChange => format!(
            "{} at {commit}: {} action(s)",
            record.outcome.as_str(),
            record.actions
        ),
    };
    let text = format!("slack-gitops: {headline}. {}", record.detail);
    let mut list: Vec<String> = changes
        .iter()
        .take(TOP)
        .map(|c| format!("• `{c}`"))
        .collect();
    if changes.len() > TOP {
        list.push(format!("… and {} more", changes.len() - TOP));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": format!("slack-gitops: {headline}")}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&record.detail, 2900)}}),
    ];
    if !list.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&list.join("\n"), 2900)}}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("{} · trigger {} · {}", record.at, record.trigger.as_str(), commit)}]}));
    (text, Value::Array(blocks))
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return if text.is_empty() {
            " ".into()
        } else {
            text.to_string()
        };
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

/// Posts the digest when the config names a channel; a failure to post is logged, never
/// fatal to the sync.
pub async fn post(connection: &Connection, record: &SyncRecord, changes: &[String]) {
    let config = &connection.repository.config.value;
    let Some(notify) = &config.notify else {
        return;
    };
    let workspace = notify
        .workspace
        .as_deref()
        .and_then(|w| config.team_id(w))
        .or_else(|| {
            config
                .slack
                .workspaces
                .values()
                .next()
                .map(|t| t.to_string())
        })
        .unwrap_or_default();
    let (text, blocks) = message(record, changes);
    if let Err(error) = crate::slack::writer::post_message(
        &connection.client,
        &workspace,
        &notify.channel,
        &text,
        &blocks,
    )
    .await
    {
        tracing::warn!(%error, channel = %notify.channel, "could not post the digest");
    }
}
