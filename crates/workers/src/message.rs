//! What is sent: the JSON event of a webhook, and the short Markdown message of a chat robot.

use serde_json::{Value, json};
use xiansuo_domain::LeadStatus;
use xiansuo_domain::routing::{EventKind, mask_mobile};
use xiansuo_store::outbox::{ClaimedDelivery, china_time};

/// The id a receiver deduplicates by: the same for every attempt (and every sink) of an event.
pub fn event_id(event_id: i64) -> String {
    format!("evt_{event_id}")
}

/// The link to the lead's console page.
pub fn lead_url(public_url: Option<&str>, lead_id: i64) -> Option<String> {
    public_url.map(|base| format!("{base}/leads/{lead_id}"))
}

/// The webhook body: `{"id", "type", "timestamp", "data": {"lead": {…, "url"}, "change": {…}}}`.
pub fn envelope(d: &ClaimedDelivery, public_url: Option<&str>) -> Value {
    let mut data = d.payload.clone();
    if let (Some(url), Some(lead)) = (lead_url(public_url, d.lead_id), data.get_mut("lead"))
        && let Some(lead) = lead.as_object_mut()
    {
        lead.insert("url".into(), json!(url));
    }
    json!({
        "id": event_id(d.event_id),
        "type": d.kind.as_str(),
        "timestamp": china_time(d.created_at),
        "data": data,
    })
}

/// Longest value a chat message shows (robots limit a message's size).
const MAX_VALUE_CHARS: usize = 80;

/// Text from a visitor or the vendor made inert in Markdown: no links, emphasis, headings or
/// line breaks of its own; at most [`MAX_VALUE_CHARS`] characters.
pub fn inert(text: &str) -> String {
    let text: String = if text.chars().count() > MAX_VALUE_CHARS {
        text.chars().take(MAX_VALUE_CHARS).chain(['…']).collect()
    } else {
        text.to_string()
    };
    text.chars()
        .map(|c| match c {
            '[' => '［',
            ']' => '］',
            '(' => '（',
            ')' => '）',
            '<' => '＜',
            '>' => '＞',
            '*' => '＊',
            '_' => '＿',
            '`' => '｀',
            '#' => '＃',
            '!' => '！',
            '|' => '｜',
            '\\' => '＼',
            '~' => '～',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_string()
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

fn status_label(s: &str) -> String {
    LeadStatus::parse(s).map_or_else(|| s.to_string(), |st| st.label().to_string())
}

/// A chat robot's message: a title, and Markdown text (name, masked mobile, city, keyword,
/// owner, what changed, and the link to the lead when `public_url` is set).
pub fn markdown(d: &ClaimedDelivery, public_url: Option<&str>) -> (String, String) {
    let lead = d.payload.get("lead").cloned().unwrap_or(Value::Null);
    let change = d.payload.get("change").cloned().unwrap_or(Value::Null);
    let name = text(&lead, "name").map(inert).unwrap_or_else(|| format!("线索 #{}", d.lead_id));
    let title = format!("{}：{name}", d.kind.label());
    let mut lines = vec![format!("### {title}")];
    if let Some(m) = text(&lead, "mobile").or_else(|| text(&lead, "tel")) {
        lines.push(format!("- 手机：{}", mask_mobile(&inert(m))));
    }
    let place: Vec<&str> = ["province", "city"].iter().filter_map(|k| text(&lead, k)).collect();
    if !place.is_empty() {
        lines.push(format!("- 城市：{}", inert(&place.join(" "))));
    }
    if let Some(k) = text(&lead, "keyword").or_else(|| text(&lead, "bidding_word")) {
        lines.push(format!("- 关键词：{}", inert(k)));
    }
    let owner = lead.get("owner").and_then(|o| text(o, "name")).map(inert).unwrap_or_else(|| "待分配".to_string());
    lines.push(format!("- 负责人：{owner}"));
    match d.kind {
        EventKind::Assigned => {
            if let Some(rule) = text(&change, "rule") {
                lines.push(format!("- 分配规则：{}", inert(rule)));
            }
        }
        EventKind::StatusChanged => {
            let (from, to) = (text(&change, "from").unwrap_or(""), text(&change, "to").unwrap_or(""));
            lines.push(format!("- 状态：{} → {}", status_label(from), status_label(to)));
            if let Some(reason) = text(&change, "reason") {
                lines.push(format!("- 原因：{}", inert(reason)));
            }
        }
        _ => {}
    }
    if let Some(url) = lead_url(public_url, d.lead_id) {
        lines.push(String::new());
        lines.push(format!("[查看线索]({url})"));
    }
    (title, lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(kind: EventKind, payload: Value) -> ClaimedDelivery {
        ClaimedDelivery {
            id: 1,
            event_id: 7,
            sink: "s".into(),
            lead_id: 42,
            kind,
            attempts: 0,
            created_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            payload,
        }
    }

    #[test]
    fn robot_messages_are_short_masked_and_inert() {
        let d = delivery(
            EventKind::Assigned,
            json!({
                "lead": {"id": 42, "name": "张三[x](http://evil)", "mobile": "15812342563", "province": "山西省",
                         "city": "太原市", "keyword": "雅思*培训*", "owner": {"id": 3, "name": "li"}},
                "change": {"rule": "山西"}
            }),
        );
        let (title, text) = markdown(&d, Some("https://leads.example.com"));
        assert_eq!(title, "线索已分配：张三［x］（http://evil）");
        assert!(text.contains("- 手机：158****2563"), "{text}");
        assert!(!text.contains("15812342563"));
        assert!(text.contains("- 城市：山西省 太原市"), "{text}");
        assert!(text.contains("- 关键词：雅思＊培训＊"), "{text}");
        assert!(text.contains("- 负责人：li"), "{text}");
        assert!(text.contains("- 分配规则：山西"), "{text}");
        assert!(text.ends_with("[查看线索](https://leads.example.com/leads/42)"), "{text}");
        let long = "长".repeat(500);
        let (_, text) = markdown(&delivery(EventKind::Created, json!({"lead": {"id": 42, "keyword": long}})), None);
        assert!(text.contains(&format!("- 关键词：{}…", "长".repeat(80))), "{text}");
        let (_, pool) = markdown(&delivery(EventKind::Created, json!({"lead": {"id": 42}})), None);
        assert!(pool.contains("线索 #42") && pool.contains("待分配") && !pool.contains("查看线索"), "{pool}");
    }

    #[test]
    fn the_envelope_carries_a_stable_id_and_the_link() {
        let d = delivery(EventKind::Created, json!({"lead": {"id": 42}, "change": {"push_id": 5}}));
        let e = envelope(&d, Some("https://x.example"));
        assert_eq!(e["id"], "evt_7");
        assert_eq!(e["type"], "lead.created");
        assert_eq!(e["timestamp"], "2023-11-15T06:13:20+08:00");
        assert_eq!(e["data"]["lead"]["url"], "https://x.example/leads/42");
        assert_eq!(e["data"]["change"]["push_id"], 5);
    }
}
