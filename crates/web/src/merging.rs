//! Merging, unmerging and dismissing duplicate leads: one path for the console and the API,
//! each change recorded in the audit log.

use serde_json::json;
use xiansuo_domain::{LeadChange, LeadEvent};
use xiansuo_store::{Actor, StoreError};

use crate::AppState;
use crate::audit::{self, Who};

pub enum DuplicateAction {
    /// Merge `other` into the lead.
    Merge { other: i64 },
    /// Undo the lead's merge into another.
    Unmerge,
    /// `other` is not the same visitor.
    Dismiss { other: i64 },
}

/// Applies the change (rights are checked in the store's transaction) and audits it; returns
/// the lead's timeline entry.
pub async fn apply(
    app: &AppState,
    who: Who,
    actor: Actor,
    lead_id: i64,
    action: DuplicateAction,
) -> Result<LeadEvent, StoreError> {
    let at = xiansuo_domain::now();
    let (event, name, detail) = match action {
        DuplicateAction::Merge { other } => {
            (app.store.merge_leads(lead_id, other, actor, at).await?, "lead_merged", json!({ "merged_lead_id": other }))
        }
        DuplicateAction::Unmerge => {
            let event = app.store.unmerge_lead(lead_id, actor, at).await?;
            let detail = match &event.change {
                LeadChange::Unmerged { other } => json!({ "from_lead_id": other }),
                _ => json!({}),
            };
            (event, "lead_unmerged", detail)
        }
        DuplicateAction::Dismiss { other } => (
            app.store.dismiss_duplicate(lead_id, other, actor, at).await?,
            "duplicate_dismissed",
            json!({ "other_lead_id": other }),
        ),
    };
    audit::record(app.store.as_ref(), who, name, Some(format!("lead {lead_id}")), detail, None).await;
    Ok(event)
}
