//! Key matching: one normalization used everywhere a key is compared (the canonical table,
//! aliases, a source's field_map, transcript message keys).

use std::collections::HashMap;
use std::sync::LazyLock;

use xiansuo_domain::{FIELDS, FieldDef, field};

/// Normalizes a key for matching: white space (anywhere), `_` and `-` removed, ASCII letters
/// lowercased. `extColumn 1`, `ext_column_1`, `EXTCOLUMN1` and `"extColumn1 "` are one key.
pub fn normalize_key(key: &str) -> String {
    key.chars().filter(|c| !c.is_whitespace() && *c != '_' && *c != '-').map(|c| c.to_ascii_lowercase()).collect()
}

/// What a card key means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Field(&'static FieldDef),
    /// The transcript (`currentChatJsonDetail`, format four; canonical key `messages`).
    Transcript,
    /// One of the vendor's other transcript formats: read like the transcript when it holds an
    /// array of message objects, otherwise kept verbatim in `extra`.
    OtherTranscript,
}

/// Canonical key a source's field_map may name for the transcript.
pub const TRANSCRIPT_KEY: &str = "messages";

/// Keys the vendor uses that differ from both a field's vendor key and its canonical key.
const ALIASES: &[(&str, &str)] = &[
    ("referPage", "refer"),
    ("bcpBiddingWord", "bidding_word"),
    ("visitorLocationProvince", "province"),
    ("visitorLocationCity", "city"),
    ("msn", "weixin"),
    ("createTimeStamp", "create_time"),
    ("tgAdAccountId", "tg_ad_account"),
];

const OTHER_TRANSCRIPTS: &[&str] = &["chatDetailJsonAll", "chatDetailSL", "currentChatDetail", "chatDetailEC"];

static BUILTIN: LazyLock<HashMap<String, Target>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for f in FIELDS {
        map.insert(normalize_key(f.key), Target::Field(f));
        map.insert(normalize_key(f.vendor_key), Target::Field(f));
    }
    for n in 1..=15 {
        // The pull API spells it `extColum1`.
        if let Some(f) = field(&format!("ext_column_{n}")) {
            map.insert(format!("extcolum{n}"), Target::Field(f));
        }
    }
    for (alias, key) in ALIASES {
        if let Some(f) = field(key) {
            map.insert(normalize_key(alias), Target::Field(f));
        }
    }
    map.insert(normalize_key("currentChatJsonDetail"), Target::Transcript);
    map.insert(normalize_key(TRANSCRIPT_KEY), Target::Transcript);
    for k in OTHER_TRANSCRIPTS {
        map.insert(normalize_key(k), Target::OtherTranscript);
    }
    map
});

/// The built-in meaning of a normalized card key.
pub fn builtin_target(normalized: &str) -> Option<Target> {
    BUILTIN.get(normalized).copied()
}

/// The keys of one transcript message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKey {
    RecorderId,
    ChatId,
    FromId,
    Message,
    Type,
    CreateTime,
    SenderType,
}

/// The meaning of a normalized message key (`recorder_id`, `recordId`, `fromId`, …).
pub fn message_key(normalized: &str) -> Option<MessageKey> {
    Some(match normalized {
        "recorderid" | "recordid" => MessageKey::RecorderId,
        "chatid" => MessageKey::ChatId,
        "fromid" => MessageKey::FromId,
        "message" => MessageKey::Message,
        "type" => MessageKey::Type,
        "createtime" => MessageKey::CreateTime,
        "sendertype" => MessageKey::SenderType,
        _ => return None,
    })
}

/// Keys under which a body may wrap an array of cards.
pub fn is_wrapper_key(normalized: &str) -> bool {
    matches!(normalized, "data" | "records" | "items")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(k: &str) -> Option<&'static str> {
        match builtin_target(&normalize_key(k)) {
            Some(Target::Field(f)) => Some(f.key),
            _ => None,
        }
    }

    #[test]
    fn spellings_of_one_key_match() {
        for k in ["extColumn 1", "extColumn1", "extcolumn1", "EXTCOLUMN1", "extColum1", "ext_column_1", " extColumn1 "]
        {
            assert_eq!(key_of(k), Some("ext_column_1"), "{k}");
        }
        for k in ["chatURL", "chatUrl", "chat_url"] {
            assert_eq!(key_of(k), Some("chat_url"), "{k}");
        }
        for k in ["ipv 6", "ipv6", "IPV6"] {
            assert_eq!(key_of(k), Some("ipv6"), "{k}");
        }
        for k in ["tgPlanName", "tg_plan_name", "TG-PLAN-NAME"] {
            assert_eq!(key_of(k), Some("tg_plan_name"), "{k}");
        }
        assert_eq!(key_of("schoolName "), Some("school_name"));
        assert_eq!(key_of("type"), Some("card_type"));
        assert_eq!(key_of("msn"), Some("weixin"));
        assert_eq!(key_of("referPage"), Some("refer"));
        assert_eq!(key_of("bcpBiddingWord"), Some("bidding_word"));
        assert_eq!(key_of("visitorLocationProvince"), Some("province"));
        assert_eq!(key_of("tgAdAccountId"), Some("tg_ad_account"));
        assert_eq!(key_of("createTimeStamp"), Some("create_time"));
        assert_eq!(key_of("editUserRealNam"), Some("edit_user_display_name"));
        assert_eq!(key_of("editUserRealName"), Some("edit_user_real_name"));
        assert_eq!(key_of("crmzdy_88271217"), None);
    }

    #[test]
    fn transcript_keys() {
        assert_eq!(builtin_target("currentchatjsondetail"), Some(Target::Transcript));
        assert_eq!(builtin_target("messages"), Some(Target::Transcript));
        assert_eq!(builtin_target("chatdetailsl"), Some(Target::OtherTranscript));
        assert_eq!(message_key(&normalize_key("recordId")), Some(MessageKey::RecorderId));
        assert_eq!(message_key(&normalize_key("sender_type")), Some(MessageKey::SenderType));
        assert_eq!(message_key(&normalize_key("senderType")), Some(MessageKey::SenderType));
    }
}
