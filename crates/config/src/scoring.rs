//! `[tags.ID]` and `[score]`: the summary-tag dictionary and the lead score's weights.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use xiansuo_domain::{Scoring, TagDef, TagDictionary};

use crate::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTag {
    name: String,
    colour: Option<String>,
    score: Option<i32>,
}

/// Weights outside this range would let one reason swamp the 0–100 scale.
const WEIGHT_RANGE: std::ops::RangeInclusive<i32> = -100..=100;

pub(crate) fn tags(
    file: &BTreeMap<String, Spanned<FileTag>>,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<TagDictionary, ConfigError> {
    let mut defs = Vec::new();
    for (id, spanned) in file {
        let where_ = at(spanned.span());
        let tag = spanned.get_ref();
        if tag.name.trim().is_empty() {
            return Err(ConfigError::new(format!("tags.{id}.name ({where_}): a tag needs a name")));
        }
        if let Some(colour) = &tag.colour
            && !valid_colour(colour)
        {
            return Err(ConfigError::new(format!(
                "tags.{id}.colour ({where_}): \"{colour}\" is not a colour; write it as #rgb or #rrggbb, e.g. \"#d4380d\""
            )));
        }
        if let Some(score) = tag.score
            && !WEIGHT_RANGE.contains(&score)
        {
            return Err(ConfigError::new(format!("tags.{id}.score ({where_}): {score} is outside -100..100")));
        }
        defs.push(TagDef {
            id: id.clone(),
            name: tag.name.trim().to_string(),
            colour: tag.colour.clone(),
            score: tag.score,
        });
    }
    Ok(TagDictionary::new(defs))
}

fn valid_colour(c: &str) -> bool {
    c.strip_prefix('#').is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.chars().all(|h| h.is_ascii_hexdigit()))
}

pub(crate) fn scoring(
    file: Option<&Spanned<Scoring>>,
    tags: &TagDictionary,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<Scoring, ConfigError> {
    let mut scoring = file.map(|s| s.get_ref().clone()).unwrap_or_default();
    if let Some(spanned) = file {
        let where_ = at(spanned.span());
        let weights = [
            ("valid_mobile", scoring.valid_mobile),
            ("other_contact", scoring.other_contact),
            ("found_in_chat", scoring.found_in_chat),
            ("per_visitor_message", scoring.per_visitor_message),
            ("visitor_messages_max", scoring.visitor_messages_max),
            ("per_intent_word", scoring.per_intent_word),
            ("intent_words_max", scoring.intent_words_max),
            ("repeat_visitor", scoring.repeat_visitor),
            ("tagged", scoring.tagged),
        ];
        for (key, weight) in weights {
            if !WEIGHT_RANGE.contains(&weight) {
                return Err(ConfigError::new(format!("score.{key} ({where_}): {weight} is outside -100..100")));
            }
        }
        scoring.intent_words =
            scoring.intent_words.iter().map(|w| w.trim().to_string()).filter(|w| !w.is_empty()).collect();
    }
    scoring.tag_points = tags.score_points();
    Ok(scoring)
}
