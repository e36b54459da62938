//! Arbitrary bytes through the push decoder: it must never panic, whatever the body and its
//! Content-Type. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run decode_push` (see RELIABILITY.md).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use xiansuo_push::{SourceRules, decode_push, fuzzing};

static RULES: LazyLock<SourceRules> = LazyLock::new(fuzzing::rules);

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = fuzzing::split_input(data);
    let _ = decode_push(body, content_type, &RULES);
});
