//! Finding the contact a visitor typed into the chat (issue 5, "Extraction"): Chinese mobiles,
//! landlines with an area code, WeChat ids, QQ numbers and e-mail addresses, normalized, from
//! the visitor's messages only (staff messages carry the company's own hotline).
//!
//! Pure functions: text in, candidates out. The precision and recall on a labelled corpus are
//! measured by `tests/corpus.rs` and stated in README.md.

mod scan;

use xiansuo_domain::{Message, Sender};

pub use scan::{extract_from_text, normalize_field};

/// What kind of contact a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContactKind {
    Mobile,
    Tel,
    Weixin,
    Qq,
    Email,
}

impl ContactKind {
    pub const ALL: [ContactKind; 5] =
        [ContactKind::Mobile, ContactKind::Tel, ContactKind::Weixin, ContactKind::Qq, ContactKind::Email];

    /// The kind a contact field holds (a canonical key), if it is one.
    pub fn of_field(field: &str) -> Option<ContactKind> {
        ContactKind::ALL.into_iter().find(|k| k.field() == field)
    }

    /// The lead field it fills (a canonical key).
    pub fn field(self) -> &'static str {
        match self {
            ContactKind::Mobile => "mobile",
            ContactKind::Tel => "tel",
            ContactKind::Weixin => "weixin",
            ContactKind::Qq => "qq",
            ContactKind::Email => "email",
        }
    }
}

/// A contact found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub kind: ContactKind,
    /// Normalized: mobiles as 11 digits, landlines as `0AREA-NUMBER`.
    pub value: String,
    /// The message it came from.
    pub recorder_id: String,
}

/// Every contact in the visitor's messages, in message order, each value once per kind. A
/// mobile typed over two consecutive messages ("158 0489" then "2563") is found too.
pub fn extract(messages: &[Message], visitor_static_id: Option<&str>) -> Vec<Candidate> {
    let mut found: Vec<Candidate> = Vec::new();
    let mut push = |kind: ContactKind, value: String, recorder_id: &str| {
        if !found.iter().any(|c| c.kind == kind && c.value == value) {
            found.push(Candidate { kind, value, recorder_id: recorder_id.to_string() });
        }
    };
    let visitor: Vec<&Message> = messages.iter().filter(|m| m.sender == Sender::Visitor).collect();
    for (i, m) in visitor.iter().enumerate() {
        for (kind, value) in extract_from_text(&m.message) {
            // The visitor's own id is no contact, whatever it looks like.
            if visitor_static_id.is_some_and(|v| v == value) {
                continue;
            }
            push(kind, value, &m.recorder_id);
        }
        if let Some(next) = visitor.get(i + 1)
            && let Some(mobile) = scan::split_mobile(&m.message, &next.message)
        {
            push(ContactKind::Mobile, mobile, &next.recorder_id);
        }
    }
    found
}

/// Every normalized contact of a card, each (kind, value) once: its contact fields as entered
/// and everything the visitor typed in the chat. Leads sharing one are possible duplicates.
pub fn contact_keys<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    found: &[Candidate],
) -> Vec<(ContactKind, String)> {
    let mut keys: Vec<(ContactKind, String)> = Vec::new();
    let entered = fields
        .into_iter()
        .filter_map(|(field, value)| ContactKind::of_field(field).map(|kind| normalize_field(kind, value)))
        .flatten();
    for key in entered.chain(found.iter().map(|c| (c.kind, c.value.to_lowercase()))) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, sender: Sender, text: &str) -> Message {
        Message {
            recorder_id: id.into(),
            chat_id: None,
            sender,
            from_id: None,
            message: text.into(),
            kind: None,
            create_time: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn visitor_messages_only_and_split_numbers() {
        let messages = [
            msg("1", Sender::Staff, "您好，我们的电话是 13900001111"),
            msg("2", Sender::Visitor, "我的手机号是"),
            msg("3", Sender::Visitor, "158 0489"),
            msg("4", Sender::Visitor, "2563"),
            msg("5", Sender::Visitor, "微信 abc_12345"),
        ];
        let found = extract(&messages, Some("v"));
        let values: Vec<(ContactKind, &str, &str)> =
            found.iter().map(|c| (c.kind, c.value.as_str(), c.recorder_id.as_str())).collect();
        assert_eq!(values, [(ContactKind::Mobile, "15804892563", "4"), (ContactKind::Weixin, "abc_12345", "5")]);
    }

    #[test]
    fn entered_values_normalize_like_found_ones() {
        let n = |k, v: &str| normalize_field(k, v);
        assert_eq!(n(ContactKind::Mobile, "+86 158-0489-2563"), [(ContactKind::Mobile, "15804892563".to_string())]);
        assert_eq!(
            n(ContactKind::Mobile, "１５８０４８９２５６３"),
            [(ContactKind::Mobile, "15804892563".to_string())]
        );
        assert_eq!(n(ContactKind::Tel, "(0351)7654321"), [(ContactKind::Tel, "0351-7654321".to_string())]);
        assert_eq!(n(ContactKind::Tel, "13812345678"), [(ContactKind::Mobile, "13812345678".to_string())]);
        assert!(n(ContactKind::Mobile, "12345").is_empty());
        assert!(n(ContactKind::Mobile, "请联系我").is_empty());
        assert_eq!(n(ContactKind::Weixin, " ABC_123 "), [(ContactKind::Weixin, "abc_123".to_string())]);
        assert_eq!(
            n(ContactKind::Weixin, "15804892563"),
            [(ContactKind::Mobile, "15804892563".to_string()), (ContactKind::Weixin, "15804892563".to_string())]
        );
        assert_eq!(n(ContactKind::Qq, "123456789"), [(ContactKind::Qq, "123456789".to_string())]);
        assert!(n(ContactKind::Qq, "12ab").is_empty());
        assert_eq!(
            n(ContactKind::Email, "Li.Ming@Example.COM"),
            [(ContactKind::Email, "li.ming@example.com".to_string())]
        );
        assert!(n(ContactKind::Email, "not an email").is_empty());
    }

    #[test]
    fn contact_keys_union_fields_and_chat_once() {
        let found = [Candidate { kind: ContactKind::Mobile, value: "15804892563".into(), recorder_id: "1".into() }];
        let keys = contact_keys([("mobile", "158 0489 2563"), ("name", "王"), ("email", "A@b.cn")], &found);
        assert_eq!(
            keys,
            [(ContactKind::Mobile, "15804892563".to_string()), (ContactKind::Email, "a@b.cn".to_string())]
        );
    }

    #[test]
    fn the_note_example_transcript() {
        let messages = [
            msg("1854094590", Sender::Visitor, "111"),
            msg("1854098812", Sender::Staff, "111"),
            msg("1854098946", Sender::Visitor, "我的手机号是"),
            msg("1854099156", Sender::Visitor, "15804892563"),
        ];
        let found = extract(&messages, None);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].kind, found[0].value.as_str()), (ContactKind::Mobile, "15804892563"));
    }
}
