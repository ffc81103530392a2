//! Lowering parsed rules into the matcher's IR, keyword by keyword.
//!
//! A rule that uses anything this compiler cannot lower is skipped with a
//! [`Skipped`] entry naming its file, line, sid and the keyword at fault; the
//! rest of the rule set compiles. Which keywords lower is listed in
//! [`SUPPORTED_KEYWORDS`].
//!
//! Modules: this one holds the API, rule metadata and `content`;
//! `payload` the other payload keywords (`pcre`, `isdataat`, `byte_*`);
//! `header` the packet-header keywords, `flowbits` and thresholds;
//! `batch` lowering a whole set on every core, each distinct `pcre`
//! compiled once.

mod batch;
mod header;
mod payload;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::num::NonZeroUsize;

use sandgate_matcher::flowbits::MAX_FLOWBITS;
use sandgate_matcher::{
    app, Action as MAction, Bsize, BufferOps, Content, FlowCond, FlowbitAction, FlowbitCheck,
    IpSet, Op, PortSet, Proto, Rule, RuleMeta, RuleSet, Value,
};

use crate::rules::{parse_rules, Action, ParsedRule, Protocol, RuleOption, RuleSource, Vars};

use header::PendingFlowbits;

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
    "pcre",
    "isdataat",
    "dsize",
    "byte_test",
    "byte_jump",
    "byte_extract",
    "flags",
    "itype",
    "icode",
    "icmp_id",
    "icmp_seq",
    "ttl",
    "ip_proto",
    "id",
    "seq",
    "ack",
    "window",
    "fragbits",
    "fragoffset",
    "tos",
    "sameip",
    "ipopts",
    "tcp.mss",
    "flowbits",
    "noalert",
    "threshold",
    "detection_filter",
    "target",
    "pkt_data",
    "urilen",
    "bsize",
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
    /// A supported keyword using a feature this engine lacks (a PCRE
    /// backreference, `byte_test` with `dce`, ...).
    UnsupportedFeature { keyword: String, what: String },
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
            SkipReason::UnsupportedFeature { keyword, what } => {
                format!("unsupported `{keyword}` feature: {what}")
            }
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
            SkipReason::UnsupportedFeature { keyword, what } => {
                write!(f, "`{keyword}`: {what} is not supported")
            }
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

/// Progress of [`compile_rules_with`], for a progress bar on large sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileProgress {
    /// A file was parsed; it holds this many rules.
    Parsed { rules: usize },
    /// One more rule was lowered (or skipped).
    Rule,
}

/// Parse and lower every rule of `sources`.
pub fn compile_rules(
    sources: &[RuleSource<'_>],
    vars: &Vars,
    name: &str,
    version: &str,
) -> Compiled {
    compile_rules_with(sources, vars, name, version, &mut |_| {})
}

/// [`compile_rules`], reporting progress to `progress`. Rules are lowered
/// on every core; the result is the same as on one.
pub fn compile_rules_with(
    sources: &[RuleSource<'_>],
    vars: &Vars,
    name: &str,
    version: &str,
    progress: &mut dyn FnMut(CompileProgress),
) -> Compiled {
    compile_rules_on(
        sources,
        vars,
        name,
        version,
        batch::default_threads(),
        progress,
    )
}

/// [`compile_rules_with`] on `threads` threads. Parsing and lowering are
/// per rule; duplicate sids and flowbit numbers are then settled in rule
/// order, so the set is identical for any thread count.
pub fn compile_rules_on(
    sources: &[RuleSource<'_>],
    vars: &Vars,
    name: &str,
    version: &str,
    threads: NonZeroUsize,
    progress: &mut dyn FnMut(CompileProgress),
) -> Compiled {
    let mut parsed = Vec::new();
    for src in sources {
        let rules = parse_rules(src, vars);
        progress(CompileProgress::Parsed { rules: rules.len() });
        parsed.extend(rules);
    }
    let pcres = batch::PcreCache::default();
    let lowered = batch::map_in_order(
        &parsed,
        threads,
        |p| p.as_ref().ok().map(|p| lower_unnumbered(p, &pcres)),
        &mut || progress(CompileProgress::Rule),
    );
    drop(pcres);
    let mut set = RuleSet::new(name, version);
    let mut skipped = Vec::new();
    let mut seen = HashSet::new();
    let mut flowbits = FlowbitNames::default();
    for (parsed, lowered) in parsed.into_iter().zip(lowered) {
        let (parsed, lowered) = match (parsed, lowered) {
            (Ok(p), Some(l)) => (p, l),
            (Err(e), _) => {
                skipped.push(Skipped {
                    file: e.file,
                    line: e.line,
                    sid: e.sid,
                    reason: SkipReason::Parse(e.kind.to_string()),
                });
                continue;
            }
            // Lowering yields a result for every rule that parsed.
            (Ok(_), None) => continue,
        };
        let at = |reason| Skipped {
            file: parsed.file.clone(),
            line: parsed.line,
            sid: parsed.sid,
            reason,
        };
        let key = (gid_of(&parsed), parsed.sid);
        if seen.contains(&key) {
            skipped.push(at(SkipReason::DuplicateSid));
            continue;
        }
        match lowered.and_then(|(rule, pending)| flowbits.number(rule, pending)) {
            Ok(rule) => {
                seen.insert(key);
                set.rules.push(rule);
            }
            Err(reason) => skipped.push(at(reason)),
        }
    }
    set.flowbits = flowbits.names;
    Compiled { set, skipped }
}

/// The rule's `gid` (1 unless given), for duplicate detection.
fn gid_of(p: &ParsedRule) -> u32 {
    p.options
        .iter()
        .rev()
        .find(|o| o.keyword == "gid")
        .and_then(|o| o.value.as_deref()?.trim().parse().ok())
        .unwrap_or(1)
}

/// Flowbit names of one rule set, numbered in order of first use.
#[derive(Debug, Default)]
struct FlowbitNames {
    names: Vec<String>,
    index: HashMap<String, u16>,
}

impl FlowbitNames {
    /// `rule` with its flowbit conditions and actions, `pending` numbered.
    fn number(&mut self, mut rule: Rule, pending: PendingFlowbits) -> Result<Rule, SkipReason> {
        (rule.flowbit_checks, rule.flowbit_actions) = self.intern(pending)?;
        Ok(rule)
    }

    /// Number every name of `pending` (all or none, so a skipped rule
    /// leaves no trace) and build the rule's flowbit conditions and actions.
    fn intern(
        &mut self,
        pending: PendingFlowbits,
    ) -> Result<(Vec<FlowbitCheck>, Vec<FlowbitAction>), SkipReason> {
        let new: HashSet<&String> = pending
            .names()
            .filter(|n| !self.index.contains_key(*n))
            .collect();
        if self.names.len() + new.len() > MAX_FLOWBITS {
            return Err(bad(
                "flowbits",
                format!("more than {MAX_FLOWBITS} flowbit names in one rule set"),
            ));
        }
        let mut id = |n: &str| -> u16 {
            if let Some(&i) = self.index.get(n) {
                return i;
            }
            let i = self.names.len() as u16;
            self.names.push(n.to_string());
            self.index.insert(n.to_string(), i);
            i
        };
        let checks = pending
            .checks
            .iter()
            .map(|(set, names)| {
                let ids = names.iter().map(|n| id(n)).collect();
                if *set {
                    FlowbitCheck::IsSet(ids)
                } else {
                    FlowbitCheck::IsNotSet(ids)
                }
            })
            .collect();
        let actions = pending
            .actions
            .iter()
            .map(|(kind, name)| kind.with(id(name)))
            .collect();
        Ok((checks, actions))
    }
}

fn bad(keyword: &str, why: impl Into<String>) -> SkipReason {
    SkipReason::BadValue {
        keyword: keyword.into(),
        why: why.into(),
    }
}

/// Lower one parsed rule. Flowbit names are numbered for this rule alone;
/// [`compile_rules`] numbers them across the whole set.
pub fn lower_rule(p: &ParsedRule) -> Result<Rule, SkipReason> {
    let (rule, pending) = lower_unnumbered(p, &batch::PcreCache::default())?;
    FlowbitNames::default().number(rule, pending)
}

/// What lowering has built so far for one rule; keyword lowerings add to it.
#[derive(Debug, Default)]
struct RuleBuilder {
    ops: Vec<Op>,
    /// Per op in `ops`: the buffer it applies to (0 = the payload).
    bufs: Vec<u32>,
    /// The sticky buffer in effect (0 = the payload, after `pkt_data`).
    sticky: u32,
    /// `byte_extract` variable names, by slot.
    vars: Vec<String>,
    checks: Vec<sandgate_matcher::Check>,
    flowbits: PendingFlowbits,
    noalert: bool,
    fast_pattern: Option<usize>,
}

impl RuleBuilder {
    /// Tags ops pushed since the last call with the sticky buffer.
    fn sync_buffers(&mut self) {
        while self.bufs.len() < self.ops.len() {
            self.bufs.push(self.sticky);
        }
    }

    /// Moves the last content (a legacy modifier such as `http_uri`) into
    /// buffer `id`.
    fn retag_last_content(&mut self, kw: &str, id: u32) -> Result<(), SkipReason> {
        self.sync_buffers();
        let i = self
            .ops
            .iter()
            .rposition(|op| matches!(op, Op::Content(_)))
            .ok_or_else(|| bad(kw, "no content before it"))?;
        self.bufs[i] = id;
        Ok(())
    }

    /// The most recent `content`, which modifiers apply to.
    fn last_content(&mut self, kw: &str) -> Result<&mut Content, SkipReason> {
        self.ops
            .iter_mut()
            .rev()
            .find_map(|op| match op {
                Op::Content(c) => Some(c),
                _ => None,
            })
            .ok_or_else(|| bad(kw, "no content before it"))
    }

    /// A number or a `byte_extract` variable defined earlier in the rule.
    fn value(&self, kw: &str, v: &str) -> Result<Value, SkipReason> {
        let v = v.trim();
        if let Ok(n) = v.parse::<i64>() {
            return Ok(Value::Const(n));
        }
        match self.vars.iter().position(|name| name == v) {
            Some(slot) => Ok(Value::Var(slot as u8)),
            None => Err(bad(
                kw,
                format!("`{v}` is neither a number nor a byte_extract variable"),
            )),
        }
    }
}

/// Lower one rule, leaving its flowbits as names (the rule's flowbit
/// checks and actions stay empty until [`FlowbitNames::number`]).
fn lower_unnumbered(
    p: &ParsedRule,
    pcres: &batch::PcreCache,
) -> Result<(Rule, PendingFlowbits), SkipReason> {
    let proto = match &p.protocol {
        Protocol::Ip => Proto::Ip,
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::Icmp => Proto::Icmp,
        Protocol::AppLayer(name) => match name.as_str() {
            // Application protocols with a parser in interface 1.2.0.
            "http" | "http1" | "tls" => Proto::Tcp,
            "dns" => Proto::Ip,
            // Packet-level variants Suricata accepts in the protocol field.
            "tcp-pkt" | "tcp-stream" => Proto::Tcp,
            "icmpv4" => Proto::Icmp4,
            "icmpv6" => Proto::Icmp6,
            "ipv4" | "ip4" => Proto::Ip4,
            "ipv6" | "ip6" => Proto::Ip6,
            _ => return Err(SkipReason::UnsupportedProtocol(name.clone())),
        },
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
    // `tcp-pkt` rules match packets only, `tcp-stream` rules the stream only.
    if let Protocol::AppLayer(name) = &p.protocol {
        match name.as_str() {
            "tcp-pkt" => flow.stream = Some(false),
            "tcp-stream" => flow.stream = Some(true),
            _ => {}
        }
    }
    let app_proto = match &p.protocol {
        Protocol::AppLayer(name) => match name.as_str() {
            "http" | "http1" => app::proto::HTTP,
            "dns" => app::proto::DNS,
            "tls" => app::proto::TLS,
            _ => app::proto::NONE,
        },
        _ => app::proto::NONE,
    };
    let mut b = RuleBuilder::default();
    let mut threshold_kw: Option<&str> = None;
    for opt in &p.options {
        let kw = opt.keyword.as_str();
        let value = || opt.value.as_deref().unwrap_or("").trim();
        b.sync_buffers();
        match kw {
            "pkt_data" => b.sticky = 0,
            _ if app::is_legacy_modifier(kw) => {
                let id = app::by_keyword(kw).unwrap_or(0);
                b.retag_last_content(kw, id)?;
            }
            _ if app::by_keyword(kw).is_some() => {
                b.sticky = app::by_keyword(kw).unwrap_or(0);
            }
            "urilen" => {
                let raw = value().split(',').nth(1).map(str::trim);
                let id = match raw {
                    Some("raw") => app::HTTP_URI_RAW,
                    Some("norm") | None => app::HTTP_URI,
                    Some(other) => return Err(bad(kw, format!("unknown option `{other}`"))),
                };
                let range = size_range(kw, value().split(',').next().unwrap_or(""))?;
                b.ops.push(Op::Bsize(range));
                b.bufs.push(id);
            }
            "bsize" => {
                if b.sticky == 0 {
                    return Err(bad(kw, "needs a sticky buffer before it"));
                }
                b.ops.push(Op::Bsize(size_range(kw, value())?));
            }
            "pcre" => {
                let (opt, id) = pcre_buffer(opt)?;
                payload::lower(kw, &opt, &mut b, pcres)?;
                if let Some(id) = id {
                    b.sync_buffers();
                    if let Some(last) = b.bufs.last_mut() {
                        *last = id;
                    }
                }
            }
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
            "content" => b.ops.push(Op::Content(parse_content(opt)?)),
            "rawbytes" => {}
            "flow" => parse_flow(value(), &mut flow)?,
            "fast_pattern" => {
                let last = b
                    .ops
                    .iter()
                    .rposition(|op| matches!(op, Op::Content(_)))
                    .ok_or_else(|| bad(kw, "no content before it"))?;
                b.fast_pattern = Some(last);
            }
            "nocase" | "offset" | "depth" | "distance" | "within" | "startswith" | "endswith" => {
                let v = if matches!(kw, "offset" | "depth" | "distance" | "within") {
                    Some(b.value(kw, value())?)
                } else {
                    None
                };
                apply_modifier(kw, v, b.last_content(kw)?)?;
            }
            "isdataat" | "byte_test" | "byte_jump" | "byte_extract" => {
                payload::lower(kw, opt, &mut b, pcres)?
            }
            "threshold" | "detection_filter" => {
                if let Some(prev) = threshold_kw {
                    return Err(bad(
                        kw,
                        format!(
                            "a rule takes one threshold or detection_filter (already has `{prev}`)"
                        ),
                    ));
                }
                threshold_kw = Some(kw);
                meta.thresholds.push(header::threshold(kw, value())?);
            }
            "flowbits" => header::flowbits(value(), &mut b)?,
            "noalert" => b.noalert = true,
            "target" => match value() {
                "src_ip" | "dest_ip" => {}
                other => return Err(bad(kw, format!("`{other}` is not src_ip or dest_ip"))),
            },
            _ if header::is_header_keyword(kw) => b.checks.push(header::check(kw, value())?),
            other => return Err(SkipReason::UnsupportedKeyword(other.to_string())),
        }
    }
    meta.sid = sid.ok_or_else(|| bad("sid", "missing"))?;
    b.sync_buffers();
    for op in &b.ops {
        if let Op::Content(c) = op {
            check_content(c)?;
        }
    }
    let prefilter = choose_prefilter(&b.ops, b.fast_pattern);
    let (ops, buffers) = split_buffers(std::mem::take(&mut b.ops), &b.bufs);
    let rule = Rule {
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
        checks: b.checks,
        flowbit_checks: Vec::new(),
        flowbit_actions: Vec::new(),
        noalert: b.noalert,
        ops,
        prefilter,
        app_proto,
        buffers,
    };
    Ok((rule, std::mem::take(&mut b.flowbits)))
}

/// Splits the ops by buffer: the payload's ops, then one [`BufferOps`] per
/// buffer in order of first use, each keeping the rule's order.
fn split_buffers(ops: Vec<Op>, bufs: &[u32]) -> (Vec<Op>, Vec<BufferOps>) {
    let mut payload = Vec::new();
    let mut buffers: Vec<BufferOps> = Vec::new();
    for (op, &id) in ops
        .into_iter()
        .zip(bufs.iter().chain(std::iter::repeat(&0)))
    {
        if id == 0 {
            payload.push(op);
            continue;
        }
        match buffers.iter_mut().find(|b| b.id == id) {
            Some(b) => b.ops.push(op),
            None => buffers.push(BufferOps { id, ops: vec![op] }),
        }
    }
    (payload, buffers)
}

/// `N`, `<N`, `>N`, `N<>M` (exclusive bounds as Suricata reads them) as an
/// inclusive range.
fn size_range(kw: &str, v: &str) -> Result<Bsize, SkipReason> {
    let v = v.trim();
    let num = |s: &str| parse_num::<u64>(kw, s.trim());
    let (min, max) = if let Some((lo, hi)) = v.split_once("<>") {
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo >= hi {
            return Err(bad(kw, format!("empty range `{v}`")));
        }
        (lo.saturating_add(1), hi.saturating_sub(1))
    } else if let Some(n) = v.strip_prefix('<') {
        let n = num(n.trim_start_matches('='))?;
        if v.starts_with("<=") {
            (0, n)
        } else {
            (
                0,
                n.checked_sub(1)
                    .ok_or_else(|| bad(kw, "`<0` never holds"))?,
            )
        }
    } else if let Some(n) = v.strip_prefix('>') {
        let n = num(n.trim_start_matches('='))?;
        if v.starts_with(">=") {
            (n, u64::MAX)
        } else {
            (n.saturating_add(1), u64::MAX)
        }
    } else {
        let n = num(v)?;
        (n, n)
    };
    Ok(Bsize { min, max })
}

/// Takes the HTTP buffer flags (`U`, `H`, ...) off a `pcre` value: the
/// option without them, and the buffer they select. Two different buffer
/// flags in one pcre are refused.
fn pcre_buffer(opt: &RuleOption) -> Result<(RuleOption, Option<u32>), SkipReason> {
    let Some(value) = opt.value.as_deref() else {
        return Ok((opt.clone(), None));
    };
    let Some(slash) = value.rfind('/') else {
        return Ok((opt.clone(), None));
    };
    let (head, flags) = value.split_at(slash + 1);
    let mut id = None;
    let mut kept = String::new();
    for f in flags.chars() {
        match app::by_pcre_flag(f) {
            Some(b) if id.is_some_and(|prev| prev != b) => {
                return Err(SkipReason::UnsupportedFeature {
                    keyword: "pcre".into(),
                    what: "two different HTTP buffer flags".into(),
                })
            }
            Some(b) => id = Some(b),
            None => kept.push(f),
        }
    }
    if id.is_none() {
        return Ok((opt.clone(), None));
    }
    let mut out = opt.clone();
    out.value = Some(format!("{head}{kept}"));
    Ok((out, id))
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
        offset: None,
        depth: None,
        distance: None,
        within: None,
        endswith: false,
    })
}

/// Apply a content modifier; `v` is the parsed value of the numeric ones.
fn apply_modifier(kw: &str, v: Option<Value>, c: &mut Content) -> Result<(), SkipReason> {
    let plen = c.pattern.len() as i64;
    let v = || v.ok_or_else(|| bad(kw, "missing value"));
    match kw {
        "nocase" => {
            c.nocase = true;
            c.pattern.make_ascii_lowercase();
        }
        "offset" => {
            let v = v()?;
            if matches!(v, Value::Const(n) if !(0..=i64::from(u32::MAX)).contains(&n)) {
                return Err(bad(kw, "must be between 0 and 2^32-1"));
            }
            c.offset = Some(v);
        }
        "depth" => {
            let v = v()?;
            if let Value::Const(d) = v {
                if d < plen || d > i64::from(u32::MAX) {
                    return Err(bad(kw, format!("depth {d} is shorter than the content")));
                }
            }
            c.depth = Some(v);
        }
        "distance" => {
            let v = v()?;
            if matches!(v, Value::Const(n) if i32::try_from(n).is_err()) {
                return Err(bad(kw, "out of range"));
            }
            c.distance = Some(v);
        }
        "within" => {
            let v = v()?;
            if let Value::Const(w) = v {
                if w < plen || w > i64::from(u32::MAX) {
                    return Err(bad(kw, format!("within {w} is shorter than the content")));
                }
            }
            c.within = Some(v);
        }
        "startswith" => {
            c.offset = Some(Value::Const(0));
            c.depth = Some(Value::Const(plen));
        }
        "endswith" => c.endswith = true,
        _ => return Err(SkipReason::UnsupportedKeyword(kw.to_string())),
    }
    Ok(())
}

fn check_content(c: &Content) -> Result<(), SkipReason> {
    if c.is_relative() && (c.offset.is_some() || c.depth.is_some()) {
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
fn choose_prefilter(ops: &[Op], fast_pattern: Option<usize>) -> Option<Vec<u8>> {
    fn positive(op: &Op) -> Option<&Content> {
        match op {
            Op::Content(c) if !c.negated => Some(c),
            _ => None,
        }
    }
    let pick = fast_pattern
        .and_then(|i| ops.get(i))
        .and_then(positive)
        .or_else(|| {
            ops.iter()
                .filter_map(positive)
                .max_by_key(|c| c.pattern.len())
        })?;
    Some(pick.pattern.to_ascii_lowercase())
}
