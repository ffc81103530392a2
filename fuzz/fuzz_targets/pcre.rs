//! `pcre:` values → the DFA translator: a typed error or a regex that
//! searches without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandgate_matcher::pcre::compile_pcre;

fuzz_target!(|data: &[u8]| {
    // First line: the pcre value; the rest: a haystack to search.
    let (value, hay) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(value) = std::str::from_utf8(value) else {
        return;
    };
    if let Ok(spec) = compile_pcre(value) {
        let mut at = 0;
        while let Some((start, end)) = spec.regex.find_at(hay, at) {
            assert!(start <= end && end <= hay.len());
            if end <= at {
                break;
            }
            at = end;
        }
    }
});
