//! Lowering parsed rules into the matcher's IR, keyword by keyword.
//!
//! A rule that uses anything this compiler cannot lower is skipped with a
//! [`Skipped`] entry naming its file, line, sid and the keyword at fault; the
//! rest of the rule set compiles. Which keywords lower is listed in
//! [`SUPPORTED_KEYWORDS`].

use std::collections::HashSet;
use std::fmt;

use sandgate_matcher::{
    Action as MAction, Content, FlowCond, IpSet, Op, PortSet, Proto, Rule, RuleMeta, RuleSet,
};

use crate::rules::{parse_rules, Action, ParsedRule, Protocol, RuleOption, RuleSource, Vars};

/// Keywords this compiler lowers (interface 1.0.0).
pub const SUPPORTED_KEYWORDS: &[&str] = &[
    "msg",
    "sid",
    "rev",
    "gid",
    "classtype",
    "priority",
    "reference",
    "metadata",
    "content",
    "nocase",
    "offset",
    "depth",
    "distance",
    "within",
    "startswith",
    "endswith",
    "fast_pattern",
    "rawbytes",
    "flow",
];

/// Why a rule was left out of the compiled set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The rule text itself is malformed.
    Parse(String),
    /// A keyword this compiler does not support (yet).
    UnsupportedKeyword(String),
    /// A protocol that needs an application-layer parser.
    UnsupportedProtocol(String),
    /// A supported keyword with a value or placement we cannot honour.
    BadValue { keyword: String, why: String },
    /// Another rule already uses this gid:sid.
    DuplicateSid,
}

impl SkipReason {
    /// A short label for summary tables ("unsupported keyword pcre").
    pub fn label(&self) -> String {
        match self {
            SkipReason::Parse(_) => "malformed rule".into(),
            SkipReason::UnsupportedKeyword(k) => format!("unsupported keyword `{k}`"),
            SkipReason::UnsupportedProtocol(p) => format!("unsupported protocol `{p}`"),
            SkipReason::BadValue { keyword, .. } => format!("bad `{keyword}` value"),
            SkipReason::DuplicateSid => "duplicate sid".into(),
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Parse(e) => write!(f, "{e}"),
            SkipReason::UnsupportedKeyword(k) => write!(f, "unsupported keyword `{k}`"),
            SkipReason::UnsupportedProtocol(p) => write!(
                f,
                "protocol `{p}` needs an application-layer parser (not in interface 1.0)"
            ),
            SkipReason::BadValue { keyword, why } => write!(f, "`{keyword}`: {why}"),
            SkipReason::DuplicateSid => write!(f, "duplicate gid:sid, first one kept"),
        }
    }
}

/// A rule that did not compile, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub file: String,
    pub line: usize,
    pub sid: Option<u32>,
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sid {
            Some(sid) => write!(
                f,
                "{}:{} (sid {}): {}",
                self.file, self.line, sid, self.reason
            ),
            None => write!(f, "{}:{}: {}", self.file, self.line, self.reason),
        }
    }
}

/// The result of compiling rule files: the set plus everything left out.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub set: RuleSet,
    pub skipped: Vec<Skipped>,
}

/// Parse and lower every rule of `sources`.
pub fn compile_rules(
    sources: &[RuleSource<'_>],
    vars: &Vars,
    name: &str,
    version: &str,
) -> Compiled {
    let mut set = RuleSet::new(name, version);
    let mut skipped = Vec::new();
    let mut seen = HashSet::new();
    for src in sources {
        for parsed in parse_rules(src, vars) {
            let parsed = match parsed {
                Ok(p) => p,
                Err(e) => {
                    skipped.push(Skipped {
                        file: e.file.clone(),
                        line: e.line,
                        sid: e.sid,
                        reason: SkipReason::Parse(e.kind.to_string()),
                    });
                    continue;
                }
            };
            let at = |reason| Skipped {
                file: parsed.file.clone(),
                line: parsed.line,
                sid: parsed.sid,
                reason,
            };
            match lower_rule(&parsed) {
                Ok(rule) => {
                    if seen.insert((rule.meta.gid, rule.meta.sid)) {
                        set.rules.push(rule);
                    } else {
                        skipped.push(at(SkipReason::DuplicateSid));
                    }
                }
                Err(reason) => skipped.push(at(reason)),
            }
        }
    }
    Compiled { set, skipped }
}

fn bad(keyword: &str, why: impl Into<String>) -> SkipReason {
    SkipReason::BadValue {
        keyword: keyword.into(),
        why: why.into(),
    }
}

/// Lower one parsed rule.
pub fn lower_rule(p: &ParsedRule) -> Result<Rule, SkipReason> {
    let proto = match &p.protocol {
        Protocol::Ip => Proto::Ip,
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::Icmp => Proto::Icmp,
        Protocol::AppLayer(name) => return Err(SkipReason::UnsupportedProtocol(name.clone())),
    };
    let mut meta = RuleMeta {
        gid: 1,
        sid: 0,
        rev: 0,
        action: match p.action {
            Action::Alert => MAction::Alert,
            Action::Drop => MAction::Drop,
            Action::Reject => MAction::Reject,
            Action::Pass => MAction::Pass,
        },
        msg: String::new(),
        classtype: None,
        priority: None,
        references: Vec::new(),
        metadata: Vec::new(),
        thresholds: Vec::new(),
    };
    let mut sid = None;
    let mut flow = FlowCond::default();
    let mut contents: Vec<Content> = Vec::new();
    let mut fast_pattern: Option<usize> = None;
    for opt in &p.options {
        let kw = opt.keyword.as_str();
        let value = || opt.value.as_deref().unwrap_or("").trim();
        match kw {
            "msg" => meta.msg = value().to_string(),
            "sid" => sid = Some(parse_num::<u32>(kw, value())?),
            "rev" => meta.rev = parse_num(kw, value())?,
            "gid" => meta.gid = parse_num(kw, value())?,
            "classtype" => meta.classtype = Some(value().to_string()),
            "priority" => meta.priority = Some(parse_num(kw, value())?),
            "reference" => meta.references.push(value().to_string()),
            "metadata" => meta.metadata.extend(
                value()
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            ),
            "content" => contents.push(parse_content(opt)?),
            "rawbytes" => {}
            "flow" => parse_flow(value(), &mut flow)?,
            "fast_pattern" => {
                if contents.is_empty() {
                    return Err(bad(kw, "no content before it"));
                }
                fast_pattern = Some(contents.len() - 1);
            }
            "nocase" | "offset" | "depth" | "distance" | "within" | "startswith" | "endswith" => {
                let c = contents
                    .last_mut()
                    .ok_or_else(|| bad(kw, "no content before it"))?;
                apply_modifier(kw, value(), c)?;
            }
            other => return Err(SkipReason::UnsupportedKeyword(other.to_string())),
        }
    }
    meta.sid = sid.ok_or_else(|| bad("sid", "missing"))?;
    for c in &contents {
        check_content(c)?;
    }
    let prefilter = choose_prefilter(&contents, fast_pattern);
    Ok(Rule {
        meta,
        proto,
        src: IpSet {
            ranges: p.src.ranges().to_vec(),
        },
        src_ports: PortSet {
            ranges: p.src_ports.ranges().to_vec(),
        },
        dst: IpSet {
            ranges: p.dst.ranges().to_vec(),
        },
        dst_ports: PortSet {
            ranges: p.dst_ports.ranges().to_vec(),
        },
        bidirectional: p.bidirectional,
        flow,
        ops: contents.into_iter().map(Op::Content).collect(),
        prefilter,
    })
}

fn parse_num<T: std::str::FromStr>(kw: &str, v: &str) -> Result<T, SkipReason> {
    v.parse()
        .map_err(|_| bad(kw, format!("`{v}` is not a valid number")))
}

/// Decode a content value: text with `|41 42|` hex blocks.
pub fn decode_content(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut in_hex = false;
    let mut nibble: Option<u8> = None;
    for ch in text.chars() {
        if ch == '|' {
            if nibble.is_some() {
                return Err("odd number of hex digits".into());
            }
            in_hex = !in_hex;
            continue;
        }
        if in_hex {
            if ch.is_ascii_whitespace() {
                if nibble.is_some() {
                    return Err("hex byte split by a space".into());
                }
                continue;
            }
            let d = ch
                .to_digit(16)
                .ok_or_else(|| format!("`{ch}` is not a hex digit"))? as u8;
            nibble = match nibble {
                None => Some(d),
                Some(hi) => {
                    out.push(hi << 4 | d);
                    None
                }
            };
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
    }
    if in_hex {
        return Err("unterminated hex block (missing `|`)".into());
    }
    if out.is_empty() {
        return Err("empty content".into());
    }
    Ok(out)
}

fn parse_content(opt: &RuleOption) -> Result<Content, SkipReason> {
    let text = opt
        .unnegated_value()
        .ok_or_else(|| bad("content", "missing value"))?;
    let pattern = decode_content(text).map_err(|why| bad("content", why))?;
    Ok(Content {
        pattern,
        nocase: false,
        negated: opt.is_negated(),
        offset: 0,
        depth_end: None,
        distance: None,
        within: None,
        endswith: false,
    })
}

fn apply_modifier(kw: &str, v: &str, c: &mut Content) -> Result<(), SkipReason> {
    match kw {
        "nocase" => {
            c.nocase = true;
            c.pattern.make_ascii_lowercase();
        }
        "offset" => {
            let off: u32 = parse_num(kw, v)?;
            // depth is stored as an absolute end: shift it if it came first.
            if let Some(d) = c.depth_end {
                c.depth_end = Some(d.saturating_add(off));
            }
            c.offset = off;
        }
        "depth" => {
            let d: u32 = parse_num(kw, v)?;
            if (d as usize) < c.pattern.len() {
                return Err(bad(kw, format!("depth {d} is shorter than the content")));
            }
            c.depth_end = Some(c.offset.saturating_add(d));
        }
        "distance" => c.distance = Some(parse_num(kw, v)?),
        "within" => {
            let w: u32 = parse_num(kw, v)?;
            if (w as usize) < c.pattern.len() {
                return Err(bad(kw, format!("within {w} is shorter than the content")));
            }
            c.within = Some(w);
        }
        "startswith" => {
            c.offset = 0;
            c.depth_end = Some(c.pattern.len() as u32);
        }
        "endswith" => c.endswith = true,
        _ => return Err(SkipReason::UnsupportedKeyword(kw.to_string())),
    }
    Ok(())
}

fn check_content(c: &Content) -> Result<(), SkipReason> {
    if c.is_relative() && (c.offset != 0 || c.depth_end.is_some()) {
        return Err(bad(
            "content",
            "mixes relative (distance/within) and absolute (offset/depth) modifiers",
        ));
    }
    Ok(())
}

fn parse_flow(v: &str, flow: &mut FlowCond) -> Result<(), SkipReason> {
    for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match part {
            "to_server" | "from_client" => flow.to_server = Some(true),
            "to_client" | "from_server" => flow.to_server = Some(false),
            "established" => flow.established = Some(true),
            "not_established" => flow.established = Some(false),
            "stateless" => {}
            "only_stream" => flow.stream = Some(true),
            "no_stream" => flow.stream = Some(false),
            other => return Err(bad("flow", format!("unsupported option `{other}`"))),
        }
    }
    Ok(())
}

/// The prefilter literal: the `fast_pattern` content if given, else the
/// longest positive content. Lower-cased: the prefilter ignores case and the
/// rule's own content check restores exactness.
fn choose_prefilter(contents: &[Content], fast_pattern: Option<usize>) -> Option<Vec<u8>> {
    let pick = fast_pattern
        .and_then(|i| contents.get(i))
        .filter(|c| !c.negated)
        .or_else(|| {
            contents
                .iter()
                .filter(|c| !c.negated)
                .max_by_key(|c| c.pattern.len())
        })?;
    Some(pick.pattern.to_ascii_lowercase())
}
