//! Precision and recall of the extraction on a labelled corpus of realistic chat lines
//! (`corpus.tsv`: sender, text, then the expected mobile, tel, weixin, qq and email values,
//! `|`-separated). Staff lines are run through `extract` as staff messages: nothing may come out
//! of them. The figures are printed (`cargo test -p xiansuo-contacts --test corpus -- --nocapture`)
//! and stated in README.md; the test holds mobiles at ≥ 0.98 precision and ≥ 0.95 recall.

use std::collections::{BTreeMap, BTreeSet};

use xiansuo_contacts::{ContactKind, extract};
use xiansuo_domain::{Message, Sender};

#[derive(Default, Debug)]
struct Score {
    true_positives: usize,
    false_positives: usize,
    false_negatives: usize,
}

impl Score {
    fn precision(&self) -> f64 {
        let found = self.true_positives + self.false_positives;
        if found == 0 { 1.0 } else { self.true_positives as f64 / found as f64 }
    }

    fn recall(&self) -> f64 {
        let expected = self.true_positives + self.false_negatives;
        if expected == 0 { 1.0 } else { self.true_positives as f64 / expected as f64 }
    }
}

fn message(sender: Sender, text: &str) -> Message {
    Message {
        recorder_id: "1".into(),
        chat_id: None,
        sender,
        from_id: None,
        message: text.into(),
        kind: Some("RECORD_RECORD".into()),
        create_time: None,
        extra: Default::default(),
    }
}

#[test]
fn extraction_meets_its_precision_and_recall() {
    let corpus = include_str!("corpus.tsv");
    let mut scores: BTreeMap<ContactKind, Score> = ContactKind::ALL.iter().map(|k| (*k, Score::default())).collect();
    let mut misses = Vec::new();
    let mut lines = 0;
    for (n, line) in corpus.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 7, "corpus line {}: expected 7 tab-separated columns", n + 1);
        let sender = match cols[0] {
            "visitor" => Sender::Visitor,
            "staff" => Sender::Staff,
            other => panic!("corpus line {}: sender {other}", n + 1),
        };
        lines += 1;
        let found = extract(&[message(sender, cols[1])], Some("01000000550100676775354346706914"));
        for (i, kind) in ContactKind::ALL.iter().enumerate() {
            let expected: BTreeSet<&str> = cols[2 + i].split('|').filter(|v| !v.is_empty()).collect();
            let got: BTreeSet<&str> = found.iter().filter(|c| c.kind == *kind).map(|c| c.value.as_str()).collect();
            let score = scores.get_mut(kind).expect("every kind scored");
            score.true_positives += expected.intersection(&got).count();
            score.false_positives += got.difference(&expected).count();
            score.false_negatives += expected.difference(&got).count();
            if expected != got {
                misses.push(format!("line {}: {:?} expected {expected:?}, found {got:?}: {}", n + 1, kind, cols[1]));
            }
        }
    }
    println!("{lines} corpus lines");
    for (kind, s) in &scores {
        println!(
            "{kind:?}: precision {:.3}, recall {:.3} (tp {}, fp {}, fn {})",
            s.precision(),
            s.recall(),
            s.true_positives,
            s.false_positives,
            s.false_negatives
        );
    }
    for m in &misses {
        println!("{m}");
    }
    assert!(lines >= 200, "the corpus has at least 200 lines: {lines}");
    let mobile = &scores[&ContactKind::Mobile];
    assert!(mobile.precision() >= 0.98, "mobile precision {:.3}", mobile.precision());
    assert!(mobile.recall() >= 0.95, "mobile recall {:.3}", mobile.recall());
}
