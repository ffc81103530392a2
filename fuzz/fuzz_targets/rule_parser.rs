//! Rule text → parse → lower: never panics, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandgate_patterns::compile::compile_rules;
use sandgate_patterns::rules::{parse_rules, RuleSource, Vars};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars = Vars::suricata_defaults();
    let src = RuleSource {
        file: "fuzz.rules",
        text,
    };
    let _ = parse_rules(&src, &vars);
    let _ = compile_rules(&[src], &vars, "fuzz", "0");
});
