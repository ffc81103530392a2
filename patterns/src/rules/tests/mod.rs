//! Unit tests for the rule parser, grouped by subject.

mod addr;
mod errors;
mod fuzz;
mod header;
mod options;
mod vars;

use super::{parse_rule, ParsedRule, RuleError, Vars};

/// Parses `text` as line 1 of `test.rules` with the Suricata default vars.
fn rule(text: &str) -> Result<ParsedRule, RuleError> {
    parse_rule(text, "test.rules", 1, &Vars::suricata_defaults())
}

/// Wraps `options` in a minimal valid header.
fn with_options(options: &str) -> String {
    format!("alert tcp any any -> any any ({options})")
}
