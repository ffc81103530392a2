//! The Suricata rule language: rule files to [`ParsedRule`]s.
//!
//! This layer knows the grammar, not what individual keywords mean: it splits
//! a rule into its header and options, resolves the header's addresses and
//! ports against the [`Vars`] into exact sets, and decodes each option's value
//! following Suricata's quoting and escaping rules. Lowering keywords
//! (`content`, `pcre`, `flow`, ...) into the IR happens elsewhere. Unknown
//! keywords are kept, not refused.
//!
//! Start at [`parse_rules`]. Modules:
//!
//! - `parse`: rule files (comments, `\` continuations) and headers.
//! - `options`: splitting `(...)` into [`RuleOption`]s; the escaping rules.
//! - `addr`: [`AddrSpec`] and [`PortSpec`], the resolved header sets.
//! - `group`: the shared list grammar (`[a,!b,$VAR]`) and its evaluation.
//! - `set`: sorted disjoint `u128` intervals with union/difference.
//! - `vars`: [`Vars`], loaded from suricata.yaml's `vars:` section.
//! - `error`: [`RuleError`], naming file, line, sid and what is wrong.
//!
//! ```
//! use sandgate_patterns::rules::{parse_rules, RuleSource, Vars};
//! let text = "alert tcp $EXTERNAL_NET any -> $HOME_NET 80 (msg:\"hi\"; content:\"a\\;b\"; sid:1;)\n";
//! let rules = parse_rules(&RuleSource { file: "local.rules", text }, &Vars::suricata_defaults());
//! let rule = rules[0].as_ref().unwrap();
//! assert_eq!(rule.options[1].value.as_deref(), Some("a;b"));
//! assert!(rule.dst_ports.contains(80));
//! ```

mod addr;
mod error;
mod group;
mod options;
mod parse;
mod set;
mod vars;

#[cfg(test)]
mod tests;

pub use addr::{ip_key, ipv4_key, AddrSpec, PortSpec, IPV4_END, IPV4_START};
pub use error::{RuleError, RuleErrorKind};
pub use group::{SpecError, VarGroup};
pub use options::RuleOption;
pub use parse::{parse_rule, parse_rules, Action, ParsedRule, Protocol, RuleSource};
pub use vars::{Vars, VarsError};
