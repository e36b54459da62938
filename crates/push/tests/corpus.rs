//! Replays the fuzz corpus (`fuzz/corpus/decode_push`, seeds and the interesting inputs a fuzz
//! run found) through the decoder: each input is a regression test that must not panic, and a
//! refused input must say why.

use std::path::Path;

use xiansuo_push::{decode_push, fuzzing};

#[test]
fn every_corpus_input_decodes_or_is_refused_with_a_reason() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/decode_push");
    let rules = fuzzing::rules();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        let (content_type, body) = fuzzing::split_input(&data);
        if let Err(e) = decode_push(body, content_type, &rules) {
            assert!(!e.to_string().is_empty(), "{}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 8, "the corpus holds at least the seeds: {seen}");
}
