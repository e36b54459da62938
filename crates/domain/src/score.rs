//! The lead score (issue 5): 0–100 with the reasons that made it, so a salesperson sees at a
//! glance which leads to call first and why. The weights are configuration ([`Scoring`]); the
//! store recomputes a lead's score whenever a push changes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Message, Sender};

/// How many points each reason is worth. Every weight may be 0 (the reason then never shows).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scoring {
    /// The lead has a valid mainland mobile (entered on the card or typed in the chat).
    pub valid_mobile: i32,
    /// A landline, WeChat, QQ or e-mail, for a lead without a valid mobile.
    pub other_contact: i32,
    /// A contact field was filled from what the visitor typed (the agent missed it).
    pub found_in_chat: i32,
    /// Points per message the visitor wrote, up to `visitor_messages_max`.
    pub per_visitor_message: i32,
    pub visitor_messages_max: i32,
    /// Points per distinct intent word the visitor used, up to `intent_words_max`.
    pub per_intent_word: i32,
    pub intent_words_max: i32,
    /// The visitor came back: more than one chat.
    pub repeat_visitor: i32,
    /// The lead carries a summary tag (a tag in the dictionary with its own `score` gets that
    /// instead).
    pub tagged: i32,
    /// Words in a visitor's message that show intent to buy.
    pub intent_words: Vec<String>,
    /// Points by tag id, from the tag dictionary (replacing `tagged` for that tag).
    #[serde(skip)]
    pub tag_points: BTreeMap<String, i32>,
}

impl Default for Scoring {
    fn default() -> Self {
        Scoring {
            valid_mobile: 30,
            other_contact: 15,
            found_in_chat: 10,
            per_visitor_message: 2,
            visitor_messages_max: 20,
            per_intent_word: 10,
            intent_words_max: 20,
            repeat_visitor: 10,
            tagged: 10,
            intent_words: ["学费", "价格", "多少钱", "费用", "收费", "地址", "在哪", "报名", "试听", "优惠", "电话"]
                .map(String::from)
                .to_vec(),
            tag_points: BTreeMap::new(),
        }
    }
}

impl Scoring {
    /// The intent words in the visitor's messages, each once, in the configured order.
    pub fn intent_words_in(&self, messages: &[Message]) -> Vec<String> {
        self.intent_words
            .iter()
            .filter(|w| {
                !w.is_empty() && messages.iter().any(|m| m.sender == Sender::Visitor && m.message.contains(w.as_str()))
            })
            .cloned()
            .collect()
    }
}

/// What the score is computed from: a lead as stored, after the push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScoreInputs {
    pub has_valid_mobile: bool,
    pub has_other_contact: bool,
    pub found_in_chat: bool,
    pub visitor_messages: i64,
    pub intent_words: Vec<String>,
    pub chats: i64,
    pub tag_id: Option<String>,
    pub tag_name: Option<String>,
}

/// One reason and its points. `code` is stable (API); `detail` says more (which words, how many).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreReason {
    pub code: String,
    pub points: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl ScoreReason {
    /// The reason in the console's words.
    pub fn label(&self) -> String {
        let base = match self.code.as_str() {
            "valid_mobile" => "有效手机号",
            "other_contact" => "其他联系方式",
            "found_in_chat" => "联系方式来自聊天",
            "visitor_messages" => "访客消息",
            "intent_words" => "意向词",
            "repeat_visitor" => "回访访客",
            "tag" => "总结标签",
            other => other,
        };
        if self.detail.is_empty() { base.to_string() } else { format!("{base}：{}", self.detail) }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Score {
    /// 0–100.
    pub value: i32,
    pub reasons: Vec<ScoreReason>,
}

/// The score of a lead, with every reason that gave points.
pub fn score(inputs: &ScoreInputs, scoring: &Scoring) -> Score {
    let mut reasons = Vec::new();
    let mut add = |code: &str, points: i32, detail: String| {
        if points != 0 {
            reasons.push(ScoreReason { code: code.to_string(), points, detail });
        }
    };
    if inputs.has_valid_mobile {
        add("valid_mobile", scoring.valid_mobile, String::new());
    } else if inputs.has_other_contact {
        add("other_contact", scoring.other_contact, String::new());
    }
    if inputs.found_in_chat {
        add("found_in_chat", scoring.found_in_chat, String::new());
    }
    if inputs.visitor_messages > 0 {
        let points = i64::from(scoring.per_visitor_message).saturating_mul(inputs.visitor_messages);
        let capped = points.min(i64::from(scoring.visitor_messages_max)).max(0);
        add("visitor_messages", i32::try_from(capped).unwrap_or(0), format!("{} 条", inputs.visitor_messages));
    }
    if !inputs.intent_words.is_empty() {
        let n = i32::try_from(inputs.intent_words.len()).unwrap_or(i32::MAX);
        let points = scoring.per_intent_word.saturating_mul(n).min(scoring.intent_words_max);
        add("intent_words", points, inputs.intent_words.join("、"));
    }
    if inputs.chats > 1 {
        add("repeat_visitor", scoring.repeat_visitor, format!("{} 次对话", inputs.chats));
    }
    let tag = inputs.tag_name.clone().or_else(|| inputs.tag_id.clone());
    if let Some(tag) = tag {
        let points =
            inputs.tag_id.as_ref().and_then(|id| scoring.tag_points.get(id)).copied().unwrap_or(scoring.tagged);
        add("tag", points, tag);
    }
    let total: i32 = reasons.iter().map(|r| r.points).sum();
    Score { value: total.clamp(0, 100), reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_add_up_and_cap() {
        let inputs = ScoreInputs {
            has_valid_mobile: true,
            found_in_chat: true,
            visitor_messages: 30,
            intent_words: vec!["学费".into(), "地址".into(), "报名".into()],
            chats: 2,
            tag_id: Some("7".into()),
            ..ScoreInputs::default()
        };
        let s = score(&inputs, &Scoring::default());
        let points: Vec<(&str, i32)> = s.reasons.iter().map(|r| (r.code.as_str(), r.points)).collect();
        assert_eq!(
            points,
            [
                ("valid_mobile", 30),
                ("found_in_chat", 10),
                ("visitor_messages", 20),
                ("intent_words", 20),
                ("repeat_visitor", 10),
                ("tag", 10)
            ]
        );
        assert_eq!(s.value, 100);
        assert_eq!(s.reasons[3].label(), "意向词：学费、地址、报名");
    }

    #[test]
    fn an_empty_lead_scores_nothing_and_tag_points_come_from_the_dictionary() {
        assert_eq!(score(&ScoreInputs::default(), &Scoring::default()), Score::default());
        let mut scoring = Scoring::default();
        scoring.tag_points.insert("9".into(), -20);
        let inputs = ScoreInputs { has_other_contact: true, tag_id: Some("9".into()), ..ScoreInputs::default() };
        let s = score(&inputs, &scoring);
        assert_eq!(s.value, 0, "negative tags pull the score down, never below 0: {s:?}");
        assert_eq!(s.reasons.len(), 2);
    }

    #[test]
    fn intent_words_count_only_the_visitors_messages() {
        let msg = |sender, text: &str| Message {
            recorder_id: text.into(),
            chat_id: None,
            sender,
            from_id: None,
            message: text.into(),
            kind: None,
            create_time: None,
            extra: Default::default(),
        };
        let messages = [msg(Sender::Staff, "学费请咨询"), msg(Sender::Visitor, "地址在哪里？价格多少")];
        assert_eq!(Scoring::default().intent_words_in(&messages), ["价格", "地址", "在哪"]);
    }
}
