//! The lead's timeline: every change people made, with who and when. (The pushes that updated
//! the card are listed beside these from the push log.)

use crate::{Instant, LeadStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadChange {
    Status {
        from: LeadStatus,
        to: LeadStatus,
        reason: Option<String>,
    },
    /// A new owner (`None`: back to the pool). `claimed`: the user took it from the pool.
    Owner {
        from: Option<i64>,
        to: Option<i64>,
        claimed: bool,
    },
    Note {
        text: String,
    },
    /// A push gave this lead a contact other leads have too: possible duplicates. Recorded by
    /// the service (no user), once per newly shared contact.
    Duplicate {
        /// The other leads, and the contacts shared with them as (kind, value).
        leads: Vec<i64>,
        contacts: Vec<(String, String)>,
    },
    /// An admin merged `other` into this lead; `filled`: the fields of this lead that were empty
    /// and took the merged lead's value (emptied again if the merge is undone).
    Merged {
        other: i64,
        filled: Vec<String>,
    },
    /// This lead was merged into `into`: it leaves the inbox, its messages show on `into`.
    MergedInto {
        into: i64,
    },
    /// A merge of `other` with this lead was undone (recorded on both leads).
    Unmerged {
        other: i64,
    },
    /// An admin said this lead and `other` are not the same visitor (recorded on both).
    Dismissed {
        other: i64,
    },
    /// Issue #6: an assignment rule (or the vendor's owner map) gave a new lead its owner.
    AutoAssigned {
        to: i64,
        /// The rule's name, or `owner_map`.
        rule: String,
    },
}

impl LeadChange {
    pub fn kind(&self) -> &'static str {
        match self {
            LeadChange::Status { .. } => "status",
            LeadChange::Owner { .. } => "owner",
            LeadChange::Note { .. } => "note",
            LeadChange::Duplicate { .. } => "duplicate",
            LeadChange::Merged { .. } => "merged",
            LeadChange::MergedInto { .. } => "merged_into",
            LeadChange::Unmerged { .. } => "unmerged",
            LeadChange::Dismissed { .. } => "dismissed",
            LeadChange::AutoAssigned { .. } => "auto_assign",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadEvent {
    pub id: i64,
    pub lead_id: i64,
    pub at: Instant,
    /// Who made the change.
    pub user_id: Option<i64>,
    pub change: LeadChange,
}
