//! The summary tag (总结标签) the vendor's agent picks (`ntagId`/`ntagName`/`ntagMessage`), and
//! the dictionary in the configuration that keeps tag names and colours consistent when cards
//! arrive with only the id.

use std::collections::BTreeMap;

/// One tag of the dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDef {
    pub id: String,
    pub name: String,
    /// `#rgb` or `#rrggbb`, checked when the configuration is loaded.
    pub colour: Option<String>,
    /// Score points for a lead with this tag, instead of the `tagged` weight.
    pub score: Option<i32>,
}

/// A lead's tag as shown: the dictionary's name and colour for a known id, else what the card
/// carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// What the inbox filters on: the id, or the name for a card that carried only a name.
    pub key: String,
    pub id: Option<String>,
    pub name: String,
    pub colour: Option<String>,
    /// The card's `ntagMessage`, if any.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagDictionary {
    by_id: BTreeMap<String, TagDef>,
}

impl TagDictionary {
    pub fn new(tags: impl IntoIterator<Item = TagDef>) -> TagDictionary {
        TagDictionary { by_id: tags.into_iter().map(|t| (t.id.clone(), t)).collect() }
    }

    pub fn get(&self, id: &str) -> Option<&TagDef> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &TagDef> {
        self.by_id.values()
    }

    /// The tag of a lead whose card carried this id, name and message (any may be missing).
    pub fn resolve(&self, id: Option<&str>, name: Option<&str>, message: Option<&str>) -> Option<Tag> {
        let known = id.and_then(|id| self.by_id.get(id));
        let name =
            known.map(|t| t.name.clone()).or_else(|| name.map(str::to_string)).or_else(|| id.map(str::to_string))?;
        Some(Tag {
            key: id.map(str::to_string).unwrap_or_else(|| name.clone()),
            id: id.map(str::to_string),
            name,
            colour: known.and_then(|t| t.colour.clone()),
            message: message.map(str::to_string),
        })
    }

    /// Score points by tag id, for [`crate::Scoring::tag_points`].
    pub fn score_points(&self) -> BTreeMap<String, i32> {
        self.by_id.values().filter_map(|t| t.score.map(|s| (t.id.clone(), s))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_names_a_bare_id_and_keeps_names_consistent() {
        let tags = TagDictionary::new([TagDef {
            id: "101".into(),
            name: "高意向".into(),
            colour: Some("#d4380d".into()),
            score: Some(20),
        }]);
        let t = tags.resolve(Some("101"), None, None).expect("a tag");
        assert_eq!((t.key.as_str(), t.name.as_str(), t.colour.as_deref()), ("101", "高意向", Some("#d4380d")));
        let t = tags.resolve(Some("101"), Some("意向高"), None).expect("a tag");
        assert_eq!(t.name, "高意向", "the dictionary's name wins over the card's spelling");
        let t = tags.resolve(Some("7"), Some("无效咨询"), Some("打错了")).expect("a tag");
        assert_eq!((t.name.as_str(), t.colour, t.message.as_deref()), ("无效咨询", None, Some("打错了")));
        let t = tags.resolve(None, Some("回访"), None).expect("a tag");
        assert_eq!(t.key, "回访");
        assert_eq!(tags.resolve(None, None, Some("x")), None);
        assert_eq!(tags.score_points().get("101"), Some(&20));
    }
}
