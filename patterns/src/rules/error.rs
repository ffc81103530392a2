//! [`RuleError`]: why one rule was refused, and where it is.

use std::fmt;

use super::group::{SpecError, VarGroup};

/// A rule that could not be parsed, with its file, line and (when a simple
/// scan of the text finds one) its sid.
///
/// Displays as `rules.rules:12 (sid 2001): bad port "80:70": range start above end`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleError {
    /// Display name of the rule file.
    pub file: String,
    /// 1-based line where the rule starts.
    pub line: usize,
    /// The rule's sid, if `sid:N;` could be found in the text.
    pub sid: Option<u32>,
    /// What is wrong.
    pub kind: RuleErrorKind,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if let Some(sid) = self.sid {
            write!(f, " (sid {sid})")?;
        }
        write!(f, ": {}", self.kind)
    }
}

/// What is wrong with a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleErrorKind {
    /// The header (`action proto src sport dir dst dport`) is malformed.
    #[error("bad rule header: {what}")]
    BadHeader { what: String },
    #[error("unknown action \"{action}\" (expected alert, drop, reject, rejectsrc, rejectdst, rejectboth or pass)")]
    UnknownAction { action: String },
    #[error("unknown protocol \"{protocol}\"")]
    UnknownProtocol { protocol: String },
    #[error("bad direction \"{direction}\" (expected -> or <>)")]
    BadDirection { direction: String },
    #[error("bad address \"{value}\": {why}")]
    BadAddress { value: String, why: String },
    #[error("bad port \"{value}\": {why}")]
    BadPort { value: String, why: String },
    #[error("undefined variable ${name} (not in vars.{})", group.yaml_key())]
    UndefinedVariable { group: VarGroup, name: String },
    #[error("{group} variable cycle: {cycle}")]
    VariableCycle { group: VarGroup, cycle: String },
    /// The last option has no terminating `;` (Suricata needs `;` before `)`).
    #[error("option not terminated by ';' near \"{near}\"")]
    UnterminatedOption { near: String },
    /// An option is malformed: bad keyword, bad quoting, missing `)`.
    #[error("bad option syntax near \"{near}\": {why}")]
    BadOptionSyntax { near: String, why: String },
    /// A backslash escape Suricata does not accept in this keyword's value.
    #[error("bad escape in {keyword} value \"{value}\": {why}")]
    BadEscape {
        keyword: String,
        value: String,
        why: String,
    },
    #[error("rule has no sid")]
    MissingSid,
    #[error("bad sid \"{value}\": {why}")]
    BadSid { value: String, why: String },
    /// The file ended while a line ending in `\` waited for its continuation.
    #[error("file ends inside a rule continued with '\\'")]
    UnterminatedContinuation,
}

impl From<SpecError> for RuleErrorKind {
    fn from(err: SpecError) -> Self {
        match err {
            SpecError::Invalid {
                group: VarGroup::Address,
                value,
                why,
            } => RuleErrorKind::BadAddress { value, why },
            SpecError::Invalid {
                group: VarGroup::Port,
                value,
                why,
            } => RuleErrorKind::BadPort { value, why },
            SpecError::UndefinedVariable { group, name } => {
                RuleErrorKind::UndefinedVariable { group, name }
            }
            SpecError::VariableCycle { group, cycle } => {
                RuleErrorKind::VariableCycle { group, cycle }
            }
        }
    }
}

impl RuleErrorKind {
    /// A short stable name for the kind, for counting errors by kind.
    pub fn name(&self) -> &'static str {
        match self {
            RuleErrorKind::BadHeader { .. } => "BadHeader",
            RuleErrorKind::UnknownAction { .. } => "UnknownAction",
            RuleErrorKind::UnknownProtocol { .. } => "UnknownProtocol",
            RuleErrorKind::BadDirection { .. } => "BadDirection",
            RuleErrorKind::BadAddress { .. } => "BadAddress",
            RuleErrorKind::BadPort { .. } => "BadPort",
            RuleErrorKind::UndefinedVariable { .. } => "UndefinedVariable",
            RuleErrorKind::VariableCycle { .. } => "VariableCycle",
            RuleErrorKind::UnterminatedOption { .. } => "UnterminatedOption",
            RuleErrorKind::BadOptionSyntax { .. } => "BadOptionSyntax",
            RuleErrorKind::BadEscape { .. } => "BadEscape",
            RuleErrorKind::MissingSid => "MissingSid",
            RuleErrorKind::BadSid { .. } => "BadSid",
            RuleErrorKind::UnterminatedContinuation => "UnterminatedContinuation",
        }
    }
}
