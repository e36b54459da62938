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
    /// Issue #11: an event of this lead's visitor that carries no lead data (a chat started or
    /// ended, a rating), recorded by the service in the transaction of the push that carried it.
    VendorEvent {
        /// The source's kind (`tawk`, `qiyu`…).
        vendor: String,
        /// The vendor's name of the event (`chat:start`, `SESSION_END`…).
        event: String,
        /// What happened, in Chinese, for the timeline (`会话开始`, `访客评价 5 星`).
        text: String,
        /// The push that carried it.
        push_id: i64,
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
            LeadChange::VendorEvent { .. } => "vendor_event",
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

/// Issue #11: a vendor's event without lead data, naming its visitor as leads are keyed
/// (`company_id`, `visitor_static_id`; the source is the push's). It becomes a
/// [`LeadChange::VendorEvent`] on that visitor's lead if there is one, and nothing otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorEvent {
    pub company_id: String,
    pub visitor_id: String,
    /// The source's kind (`tawk`, `qiyu`…).
    pub vendor: String,
    /// The vendor's name of the event.
    pub event: String,
    /// What happened, in Chinese.
    pub text: String,
}

/// The name a vendor goes by in the console (`七鱼`, `Tawk.to`).
pub fn vendor_label(vendor: &str) -> &str {
    match vendor {
        "tawk" => "Tawk.to",
        "qiyu" => "七鱼",
        "meiqia" => "美洽",
        "easyliao" => "易聊",
        other => other,
    }
}
