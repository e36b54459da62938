//! Walks every stored lead: indexes its normalized contacts for the duplicate search and
//! rescores it with the scoring in force. Run once in the background on the first start after
//! the upgrade that introduced the index, and by `xiansuo reindex` (after changing `[score]`).

use std::time::Duration;

use xiansuo_domain::Scoring;
use xiansuo_store::{Store, StoreError};

/// The setting that says the first automatic reindex was started on this database.
pub const STARTED_SETTING: &str = "contacts_index_v1";

/// Indexes and rescores every lead; `progress` is called with the count done after each batch.
/// Returns how many leads were indexed.
pub async fn reindex_all(
    store: &dyn Store,
    scoring: &Scoring,
    mut progress: impl FnMut(u64),
) -> Result<u64, StoreError> {
    let (mut after, mut done) = (0i64, 0u64);
    loop {
        let ids = store.lead_ids(after, 500).await?;
        let Some(last) = ids.last().copied() else { return Ok(done) };
        for id in ids {
            let Some(detail) = store.lead(id).await? else { continue };
            let visitor = detail.lead.fields.get("visitor_static_id").map(String::as_str);
            let found = xiansuo_contacts::extract(&detail.messages, visitor);
            let entered = detail.lead.fields.iter().map(|(k, v)| (*k, v.as_str()));
            let keys: Vec<(&'static str, String)> = xiansuo_contacts::contact_keys(entered, &found)
                .into_iter()
                .map(|(kind, value)| (kind.field(), value))
                .collect();
            let words = scoring.intent_words_in(&detail.messages);
            // Pushes come first: when the writer is busy, wait and try again.
            loop {
                match store.index_lead(id, keys.clone(), words.clone()).await {
                    Err(StoreError::Overloaded) => tokio::time::sleep(Duration::from_millis(200)).await,
                    other => break other?,
                }
            }
            done += 1;
        }
        after = last;
        progress(done);
    }
}
