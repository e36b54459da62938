//! The words of the product: the canonical fields of a lead card, a decoded [`Card`] with its
//! transcript [`Message`]s, and the [`Lead`] that cards for one visitor accumulate into.
//!
//! Nothing here does I/O or knows about HTTP, SQL or a vendor's wire format.

mod card;
mod event;
mod fields;
mod lead;
pub mod routing;
mod score;
mod tags;
mod text;
mod user;

pub use card::{Card, Message, Sender};
pub use event::{LeadChange, LeadEvent, VisitorEvent, vendor_label};
pub use fields::{CONTACT_FIELDS, FIELDS, FieldDef, FieldKind, field, field_index};
pub use lead::{Lead, LeadStatus, PushOutcomeKind};
pub use score::{Score, ScoreInputs, ScoreReason, Scoring, score};
pub use tags::{Tag, TagDef, TagDictionary};
pub use text::plain_text;
pub use user::{Role, User, valid_user_name};

/// An instant. Every time Xiansuo stores is an instant; the vendor's zone-less local times are
/// converted when decoded.
pub type Instant = chrono::DateTime<chrono::Utc>;

/// A contact value held by more than this many leads is a placeholder, not evidence that they
/// are one visitor: a test number (13800138000), the company's own hotline, an e-mail a form
/// fills in by default. Such a value is still indexed, but no longer makes leads duplicates.
pub const COMMON_CONTACT_LEADS: usize = 10;

/// China Standard Time, the zone the vendor's zone-less times are in and the zone the API
/// prints times in.
pub const CHINA_TIME: chrono::FixedOffset = match chrono::FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

/// The current instant, to the millisecond: the precision every backend stores, so a time reads
/// back the same from SQLite and PostgreSQL.
pub fn now() -> Instant {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}
