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
