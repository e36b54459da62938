use std::collections::BTreeMap;

use crate::Instant;

/// Where a lead stands in the follow-up pipeline: 新线索 → 已联系 → 有意向 → 已成交, or 无效
/// (with a reason) from any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeadStatus {
    New,
    Contacted,
    Interested,
    Won,
    Invalid,
}

impl LeadStatus {
    pub const ALL: &'static [LeadStatus] =
        &[LeadStatus::New, LeadStatus::Contacted, LeadStatus::Interested, LeadStatus::Won, LeadStatus::Invalid];

    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::New => "new",
            LeadStatus::Contacted => "contacted",
            LeadStatus::Interested => "interested",
            LeadStatus::Won => "won",
            LeadStatus::Invalid => "invalid",
        }
    }

    /// The name sales staff know it by.
    pub fn label(self) -> &'static str {
        match self {
            LeadStatus::New => "新线索",
            LeadStatus::Contacted => "已联系",
            LeadStatus::Interested => "有意向",
            LeadStatus::Won => "已成交",
            LeadStatus::Invalid => "无效",
        }
    }

    pub fn parse(s: &str) -> Option<LeadStatus> {
        Self::ALL.iter().copied().find(|st| st.as_str() == s)
    }

    /// 无效 needs a reason; the other statuses take none.
    pub fn needs_reason(self) -> bool {
        self == LeadStatus::Invalid
    }
}

/// A visitor's lead: everything the pushes for one (source, company_id, visitor_static_id) said,
/// merged so that an empty value never erased a stored one.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    pub id: i64,
    pub source: String,
    pub status: LeadStatus,
    /// Why the lead is 无效 (only with that status).
    pub status_reason: Option<String>,
    /// The user who follows the lead up; `None` while it waits in the unassigned pool.
    pub owner_id: Option<i64>,
    /// Contact fields whose value was found in the chat rather than entered on the card.
    pub found_in_chat: Vec<&'static str>,
    /// Canonical text fields that have a value, by canonical key.
    pub fields: BTreeMap<&'static str, String>,
    /// Canonical time fields that have a value, by canonical key.
    pub times: BTreeMap<&'static str, Instant>,
    pub chat_ids: Vec<String>,
    pub extra: BTreeMap<String, String>,
    /// When the first push for this visitor arrived.
    pub received_at: Instant,
    /// When a push last changed or confirmed it.
    pub updated_at: Instant,
    /// How many distinct pushes carried this visitor's card.
    pub push_count: i64,
    pub message_count: i64,
    pub visitor_message_count: i64,
    /// The lead this one was merged into (then it shows there, not in the lists).
    pub merged_into: Option<i64>,
    /// 0–100, recomputed on every push ([`crate::score`]).
    pub score: i32,
    pub score_reasons: Vec<crate::ScoreReason>,
}

/// What became of one push request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushOutcomeKind {
    /// At least one card was stored.
    Accepted,
    /// Every card was of a type the source does not accept.
    Ignored,
    /// The body could not be decoded into valid cards.
    Rejected,
    /// Stored durably and answered while the writer was behind (issue #8): its cards become
    /// leads a moment later, in arrival order, and the push is then `Accepted`.
    Queued,
}

impl PushOutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PushOutcomeKind::Accepted => "accepted",
            PushOutcomeKind::Ignored => "ignored",
            PushOutcomeKind::Rejected => "rejected",
            PushOutcomeKind::Queued => "queued",
        }
    }

    pub fn parse(s: &str) -> Option<PushOutcomeKind> {
        [PushOutcomeKind::Accepted, PushOutcomeKind::Ignored, PushOutcomeKind::Rejected, PushOutcomeKind::Queued]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}
