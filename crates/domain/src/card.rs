use std::collections::BTreeMap;

use crate::Instant;

/// One decoded lead card, as a vendor push describes a visitor at one moment.
///
/// Only values that arrived non-empty are present: an absent key means "the push said nothing",
/// which is why storing a card never erases what an earlier card said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Card {
    /// Canonical text fields ([`crate::FieldKind::Text`]), by canonical key.
    pub fields: BTreeMap<&'static str, String>,
    /// Canonical time fields ([`crate::FieldKind::Time`]), by canonical key.
    pub times: BTreeMap<&'static str, Instant>,
    /// Keys that map to no canonical field, under the key as it arrived (trimmed).
    pub extra: BTreeMap<String, String>,
    /// The transcript, each message once (by recorder id), in the order received.
    pub messages: Vec<Message>,
    /// Contacts the visitor typed in the chat for contact fields this card leaves empty
    /// (field → value). They fill a lead's field only while it is empty.
    pub found_in_chat: BTreeMap<&'static str, String>,
    /// Every contact of the card, normalized (kind as the contact field's key → value): the
    /// contact fields as entered and everything the visitor typed in the chat. Leads that share
    /// one are possible duplicates.
    pub contact_keys: Vec<(&'static str, String)>,
    /// The configured intent words (学费, 价格…) the visitor wrote, each once; a reason of the
    /// lead's score. Filled by the service (the words are its configuration), not the decoder.
    pub intent_words: Vec<String>,
}

impl Card {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    pub fn visitor_static_id(&self) -> Option<&str> {
        self.get("visitor_static_id")
    }

    pub fn company_id(&self) -> Option<&str> {
        self.get("company_id")
    }

    pub fn chat_id(&self) -> Option<&str> {
        self.get("chat_id")
    }

    pub fn card_type(&self) -> Option<&str> {
        self.get("card_type")
    }
}

/// Who wrote a transcript message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    Visitor,
    Staff,
}

impl Sender {
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::Visitor => "visitor",
            Sender::Staff => "staff",
        }
    }

    pub fn parse(s: &str) -> Option<Sender> {
        match s {
            "visitor" => Some(Sender::Visitor),
            "staff" => Some(Sender::Staff),
            _ => None,
        }
    }

    /// Classifies a message whose sender the vendor did not state (push-spec.md, "Product
    /// decisions" and "More about keys and values"): the visitor is the card's own visitor id,
    /// a vendor visitor id (digits only, at least 16 long) or a WeChat openid (28 characters of
    /// letters, digits, `_` and `-`, beginning with `o`); anyone else is staff.
    pub fn classify(from_id: Option<&str>, visitor_static_id: Option<&str>) -> Sender {
        let Some(from) = from_id.map(str::trim).filter(|f| !f.is_empty()) else {
            return Sender::Staff;
        };
        let is_card_visitor = visitor_static_id.is_some_and(|v| v.trim() == from);
        let is_vendor_visitor_id = from.len() >= 16 && from.bytes().all(|b| b.is_ascii_digit());
        let is_wechat_openid = from.len() == 28
            && from.starts_with('o')
            && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if is_card_visitor || is_vendor_visitor_id || is_wechat_openid { Sender::Visitor } else { Sender::Staff }
    }
}

/// One transcript message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The vendor's message id; unique per lead. When the vendor sent none, a stable hash of
    /// the message's content prefixed `h-`, so repeats still collapse.
    pub recorder_id: String,
    pub chat_id: Option<String>,
    pub sender: Sender,
    pub from_id: Option<String>,
    /// The text exactly as sent (rich text stays HTML here; people see it reduced to text).
    pub message: String,
    /// `RECORD_RECORD`, `RECORD_RICH_TEXT`, or whatever else the vendor sends.
    pub kind: Option<String>,
    pub create_time: Option<Instant>,
    /// Keys of the message object that map to nothing, kept as they arrived.
    pub extra: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_follows_the_spec() {
        let v = Some("01000000013100635537156211197954");
        assert_eq!(Sender::classify(v, v), Sender::Visitor);
        assert_eq!(Sender::classify(Some("01000000550100676775354346706914"), v), Sender::Visitor);
        assert_eq!(Sender::classify(Some("hkzyzs-kf"), v), Sender::Staff);
        assert_eq!(Sender::classify(Some("123456789012345"), v), Sender::Staff);
        assert_eq!(Sender::classify(Some("oABCDEFGHIJKLMNOPQRSTUVWX_-1"), v), Sender::Visitor);
        assert_eq!(Sender::classify(Some("oABCDEFGHIJKLMNOPQRSTUVWX_-"), v), Sender::Staff);
        assert_eq!(Sender::classify(None, v), Sender::Staff);
        assert_eq!(Sender::classify(Some("abc"), Some("abc")), Sender::Visitor);
    }
}
