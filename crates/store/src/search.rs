//! The index behind the lead search `q` (issue #8: `LIKE '%…%'` over ten columns read every
//! lead, 1.3 s at a million). Each lead's searched values ([`crate::query::SEARCHED`]) are kept
//! as terms (migration 0015: SQLite FTS5, PostgreSQL a GIN-indexed array, both filled by
//! triggers; migration 0018: SQLite keeps their positions, and a query's terms are a phrase;
//! migration 0020: SQLite's triggers note the changed leads and its writer indexes them together
//! before each batch commits); a search first takes the leads holding every term of the query, then checks
//! the substring on those alone with the same `LIKE` as before, so the index only has to find a
//! superset of the matches and the answers do not change.
//!
//! Terms, of the text lowercased: every character outside ASCII (a Chinese character, a
//! full-width digit…) on its own, and every three consecutive ASCII letters or digits of a run
//! of them (`13800138000` → `138`, `380`, `800`…). Whatever a query finds is a substring of a
//! value, so its terms are terms of that value: a run inside the query has the same trigrams in
//! the value, a run at either end is part of a longer run there, whose trigrams include its own.
//! A query with no term (one or two ASCII characters, punctuation) reads every lead, as before.
//!
//! PostgreSQL computes the same terms in SQL (`search_terms`, its own `lower()`), for the leads
//! and for the query alike; SQLite calls [`sqlite_terms`] through a function registered on the
//! writer's connection.

use std::collections::BTreeSet;

/// The terms of `text` in the order they occur (a run's trigrams in order, then whatever follows
/// the run), repeats kept: SQLite's index keeps their positions, so that a query's terms are
/// found side by side, in its order.
pub fn ordered_terms(text: &str) -> Vec<String> {
    // Character by character: `str::to_lowercase` would give a final Σ another letter than the
    // same Σ inside a word, and a query that ends there would then miss it.
    let lower = text.chars().flat_map(char::to_lowercase);
    let mut out = Vec::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut Vec<String>| {
        let bytes = run.as_bytes();
        for w in bytes.windows(3) {
            // ASCII only: every window is valid UTF-8.
            if let Ok(t) = std::str::from_utf8(w) {
                out.push(t.to_string());
            }
        }
        run.clear();
    };
    for c in lower {
        if c.is_ascii_alphanumeric() {
            run.push(c);
            continue;
        }
        flush(&mut run, &mut out);
        if !c.is_ascii() {
            out.push(c.to_string());
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Adds the terms of `text` to `out`.
pub fn add_terms(text: &str, out: &mut BTreeSet<String>) {
    out.extend(ordered_terms(text));
}

/// The terms of a search query (empty: the index cannot narrow it).
pub fn query_terms(q: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    add_terms(q.trim(), &mut out);
    out.into_iter().collect()
}

/// A lead's terms as SQLite's FTS5 table stores them (migration 18: with their positions), each
/// value's in order, separated by spaces (its `ascii` tokenizer splits on ASCII punctuation and
/// spaces only, so every term is one token). The values follow each other: a phrase may run
/// from one into the next, which only adds a candidate that the `LIKE` then drops.
pub fn sqlite_terms<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> String {
    let mut out: Vec<String> = Vec::new();
    for v in values.into_iter().flatten() {
        out.extend(ordered_terms(v));
    }
    out.join(" ")
}

/// The FTS5 query of a search (SQLite, migration 18): its terms as one phrase, in order — the
/// leads holding them side by side, as a value that contains the query does (`8888` is `888`
/// twice in a row, where the set of terms asked only for `888` somewhere). Terms never hold `"`
/// (ASCII punctuation is never part of one).
pub fn fts5_phrase(q: &str) -> String {
    format!("\"{}\"", ordered_terms(q.trim()).join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn terms_of(s: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        add_terms(s, &mut out);
        out
    }

    #[test]
    fn chinese_characters_and_ascii_trigrams() {
        let t = terms_of("张伟 Tel:13800138000, wx_AB");
        for want in ["张", "伟", "tel", "138", "380", "800", "001", "013", "000"] {
            assert!(t.contains(want), "{want} in {t:?}");
        }
        // Runs shorter than three ("wx", "ab") give no term; nor do spaces and ASCII punctuation.
        assert!(!t.iter().any(|x| x == "wx" || x == "ab" || x == " " || x == ":"), "{t:?}");
        assert_eq!(query_terms("12"), Vec::<String>::new());
        assert_eq!(query_terms(" 培训 "), vec!["培".to_string(), "训".to_string()]);
        assert_eq!(fts5_phrase(" 8888"), "\"888 888\"");
        assert_eq!(fts5_phrase("培训 abcd"), "\"培 训 abc bcd\"");
        assert_eq!(sqlite_terms([Some("Ab1"), None, Some("广州 8888")]), "ab1 广 州 888 888");
    }

    proptest! {
        /// Whatever a value contains (ASCII case aside), the query's terms are among the value's:
        /// the index never hides a lead that `LIKE` would find.
        #[test]
        fn a_substring_has_no_term_its_value_lacks(
            value in "[a-zA-Z0-9 @._\\-张伟培训广州市１２３éΣ]{0,24}",
            start in 0usize..24,
            len in 0usize..24,
            upper in any::<bool>(),
        ) {
            let chars: Vec<char> = value.chars().collect();
            let start = start.min(chars.len());
            let end = (start + len).min(chars.len());
            let mut q: String = chars[start..end].iter().collect();
            if upper {
                q = q.to_ascii_uppercase();
            }
            let have = terms_of(&value);
            for t in query_terms(&q) {
                // `query_terms` trims the query; a trimmed substring is still a substring.
                prop_assert!(have.contains(&t), "{t:?} of {q:?} not in the terms of {value:?}");
            }
            // In order, side by side: the query's phrase is in the value's terms (SQLite).
            let phrase = ordered_terms(q.trim());
            let all = ordered_terms(&value);
            prop_assert!(
                phrase.is_empty() || all.windows(phrase.len()).any(|w| w == phrase.as_slice()),
                "{phrase:?} of {q:?} not side by side in {all:?} of {value:?}"
            );
        }
    }
}
