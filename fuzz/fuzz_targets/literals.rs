//! The rules prefilter against the obvious search: every literal that occurs
//! in the haystack (ASCII case folded) is reported, exactly once, and no
//! other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandgate_matcher::literals::LiteralSet;

fuzz_target!(|data: &[u8]| {
    // Up to the first 0xFF: literals separated by 0xFE; after it: the haystack.
    let (lits, hay) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let lits: Vec<Vec<u8>> = lits.split(|&b| b == 0xFE).map(<[u8]>::to_vec).collect();
    let set = LiteralSet::new(&lits);
    let mut seen = vec![0u64; set.len().div_ceil(64)];
    let mut found = Vec::new();
    set.scan(hay, &mut seen, |id| found.push(id));
    let reported = found.len();
    found.sort_unstable();
    found.dedup();
    assert_eq!(reported, found.len(), "a literal reported twice");
    let expected: Vec<u32> = lits
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && hay.windows(l.len()).any(|w| w.eq_ignore_ascii_case(l)))
        .map(|(i, _)| i as u32)
        .collect();
    assert_eq!(found, expected);
});
