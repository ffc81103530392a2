//! `sandgate-patc explain`: why a rule did or did not fire on a capture.
//!
//! The capture goes through the engine's own replay path — decode, flow
//! tracking, IP defragmentation and TCP reassembly by `sandgate_host`'s
//! [`Inspector`], which builds the batches modules see — and every packet
//! and stream chunk is evaluated by the real matcher with the whole rule
//! set (so flowbits and the prefilter behave as in the module), tracing the
//! rule asked about ([`Matcher::explain`]). The per-packet verdict then
//! applies the engine's packet rules: a rule reported once per packet even
//! when both the packet and the chunk it completed match, and a matching
//! `pass` rule suppressing the packet's alerts.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use anyhow::Context;
use sandgate_host::capture::{CaptureReader, Frame, LinkType};
use sandgate_host::decode::decode;
use sandgate_host::defrag::{DefragConfig, DefragResult, Defragmenter};
use sandgate_host::flow::{FlowConfig, FlowTable};
use sandgate_host::inspect::{BatchLimits, Inspector};
use sandgate_host::stream::StreamConfig;
use sandgate_host::threshold::ThresholdConfig;
use sandgate_matcher::content::find;
use sandgate_matcher::explain::{RuleTrace, Step};
use sandgate_matcher::{
    Action, Direction, Matcher, MemoryFlowStore, Op, PacketView, Rule, RuleSet, Scratch,
};
use sandgate_patterns::compile::compile_rules;
use sandgate_patterns::rules::{parse_rules, ParsedRule, RuleSource, Vars};
use sandgate_runtime::wit;

/// Payload attempts printed per packet before "... N more".
const MAX_STEP_LINES: usize = 12;

/// Arguments of `explain`.
pub struct Args {
    pub pcap: PathBuf,
    pub rules: Vec<PathBuf>,
    pub packet: Option<u64>,
    /// Packets that did not match shown in full besides the nearest miss.
    pub show: usize,
    /// Show every packet the rule's header applies to.
    pub all: bool,
}

/// The rule asked about, compiled, with where it was written.
pub struct Target {
    pub set: RuleSet,
    pub index: u32,
    /// The rule as written; `None` when it was read from a bundle.
    pub parsed: Option<ParsedRule>,
    /// Where the rule set came from, for a rule read from a bundle.
    pub origin: Option<String>,
}

/// Find `gid:sid` in the IPS modules of a bundle: the rule set is read back
/// from each module's data segment, exactly what the engine runs.
pub fn load_target_from_bundle(
    path: &std::path::Path,
    gid: u32,
    sid: u32,
) -> anyhow::Result<Target> {
    let name = path.display().to_string();
    let bundle = sandgate_patterns::bundle::Bundle::read(path)?;
    let mut ips = 0;
    for (entry, bytes) in bundle.manifest.modules.iter().zip(&bundle.modules) {
        if entry.kind != "ips" {
            continue;
        }
        ips += 1;
        let set = embedded_rules(bytes).with_context(|| {
            format!(
                "{name}: module `{}` (interface {})",
                entry.id, entry.interface
            )
        })?;
        let found = set
            .rules
            .iter()
            .position(|r| r.meta.sid == sid && r.meta.gid == gid);
        if let Some(index) = found {
            return Ok(Target {
                set,
                index: u32::try_from(index).context("rule index")?,
                parsed: None,
                origin: Some(format!(
                    "{name}: module `{}` (interface {}), bundle version {}",
                    entry.id, entry.interface, bundle.manifest.version
                )),
            });
        }
    }
    if ips == 0 {
        anyhow::bail!("{name}: the bundle has no IPS module");
    }
    anyhow::bail!(
        "no rule {gid}:{sid} in {name} (a rule that did not compile is not in the bundle; pass its --rules file to see why)"
    )
}

/// The rule set embedded in an IPS module: the guest's descriptor names
/// the address and length of the data segment holding it.
fn embedded_rules(component: &[u8]) -> anyhow::Result<RuleSet> {
    use wasmparser::{DataKind, Operator, Parser, Payload};
    let mut segments: Vec<(u64, &[u8])> = Vec::new();
    for payload in Parser::new(0).parse_all(component) {
        let Payload::DataSection(reader) = payload.context("not a well-formed component")? else {
            continue;
        };
        for data in reader {
            let data = data.context("bad data segment")?;
            let DataKind::Active { offset_expr, .. } = data.kind else {
                continue;
            };
            let mut ops = offset_expr.get_operators_reader();
            if let Ok(Operator::I32Const { value }) = ops.read() {
                segments.push((u64::from(value as u32), data.data));
            }
        }
    }
    let [m0, m1] = sandgate_patterns::emit::RULES_MAGIC;
    let magic: Vec<u8> = [m0.to_le_bytes(), m1.to_le_bytes()].concat();
    let (ptr, len) = segments
        .iter()
        .find_map(|(_, d)| {
            let at = d.windows(magic.len()).position(|w| w == magic.as_slice())?;
            let word = |o: usize| -> Option<u64> {
                let b = d.get(at + magic.len() + o..at + magic.len() + o + 4)?;
                Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            };
            Some((word(0)?, word(4)?))
        })
        .context("no rule-set descriptor: not a rules module built by sandgate-patc")?;
    let blob = segments
        .iter()
        .find(|(addr, d)| *addr == ptr && d.len() as u64 >= len)
        .and_then(|(_, d)| d.get(..usize::try_from(len).ok()?))
        .context("the descriptor points outside the module's data")?;
    RuleSet::from_bytes(blob).map_err(|e| anyhow::anyhow!("the embedded rule set: {e}"))
}

/// Compile `rules` and find `gid:sid` in them. A sid that did not compile
/// is an error carrying its compile error; a sid not present says so.
pub fn load_target(rules: &[PathBuf], vars: &Vars, gid: u32, sid: u32) -> anyhow::Result<Target> {
    if rules.is_empty() {
        anyhow::bail!("no rule files given (--rules FILE)");
    }
    let mut texts = Vec::new();
    for path in rules {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading rule file {}", path.display()))?;
        texts.push((path.display().to_string(), text));
    }
    let sources: Vec<RuleSource<'_>> = texts
        .iter()
        .map(|(file, text)| RuleSource { file, text })
        .collect();
    let compiled = compile_rules(&sources, vars, "explain", "0");
    let index = compiled
        .set
        .rules
        .iter()
        .position(|r| r.meta.sid == sid && r.meta.gid == gid);
    let Some(index) = index else {
        if let Some(s) = compiled.skipped.iter().find(|s| s.sid == Some(sid)) {
            anyhow::bail!("rule {gid}:{sid} did not compile: {s}");
        }
        let files: Vec<&str> = texts.iter().map(|(f, _)| f.as_str()).collect();
        anyhow::bail!("no rule {gid}:{sid} in {}", files.join(", "));
    };
    let parsed = sources
        .iter()
        .flat_map(|src| parse_rules(src, vars))
        .filter_map(Result::ok)
        .find(|p| p.sid == Some(sid) && gid_of(p) == gid)
        .with_context(|| format!("rule {gid}:{sid} compiled but its text was not found"))?;
    Ok(Target {
        set: compiled.set,
        index: u32::try_from(index).context("rule index")?,
        parsed: Some(parsed),
        origin: None,
    })
}

fn gid_of(p: &ParsedRule) -> u32 {
    p.options
        .iter()
        .rev()
        .find(|o| o.keyword == "gid")
        .and_then(|o| o.value.as_deref()?.trim().parse().ok())
        .unwrap_or(1)
}

/// What one packet or stream chunk was.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Packet,
    Chunk,
    /// An IP datagram rebuilt from fragments, inspected after them.
    Datagram,
}

/// The rule on one batch entry.
pub struct Entry {
    pub kind: EntryKind,
    pub what: String,
    pub payload: Vec<u8>,
    /// Bytes of a chunk inspected with earlier packets.
    pub prefix: usize,
    pub trace: RuleTrace,
    /// Every rule that matched this entry (the engine's hits).
    pub hits: Vec<u32>,
}

/// The rule on one captured packet: its entries and the engine's verdict.
pub struct PacketResult {
    pub number: u64,
    pub entries: Vec<Entry>,
    /// The rule matched the packet or a chunk it completed.
    pub matched: bool,
    /// Pass rules (sids) that matched the packet.
    pub passed_by: Vec<u32>,
}

impl PacketResult {
    /// Whether the engine reports the rule on this packet (thresholds
    /// aside): it matched, it is not a `noalert` or `pass` rule, and no
    /// `pass` rule matched the packet.
    pub fn alerts(&self, rule: &Rule) -> bool {
        self.matched
            && !rule.noalert
            && rule.meta.action != Action::Pass
            && self.passed_by.is_empty()
    }
}

/// Replay `pcap` as the engine does and trace `target` on every packet.
pub fn evaluate(target: &Target, pcap: &std::path::Path) -> anyhow::Result<Vec<PacketResult>> {
    if let Some(rule) = target.set.rules.get(target.index as usize) {
        if rule.is_app() {
            anyhow::bail!(
                "rule {}:{} reads application-layer buffers (interface 1.2.0): explain traces \
                 packet and stream rules only so far; `sandgate-patc test` shows where it alerts",
                rule.meta.gid,
                rule.meta.sid
            );
        }
    }
    let matcher = Matcher::new(target.set.clone());
    let mut inspector = Inspector::with_config(
        Vec::new(),
        BatchLimits::default(),
        StreamConfig::default(),
        ThresholdConfig::default(),
    );
    let mut flows = FlowTable::new(FlowConfig::default());
    let mut defrag = Defragmenter::new(DefragConfig::default());
    let mut reader =
        CaptureReader::open(pcap).with_context(|| format!("opening {}", pcap.display()))?;
    let mut ev = Evaluator {
        matcher: &matcher,
        target: target.index,
        scratch: Scratch::default(),
        store: MemoryFlowStore::default(),
        hits: Vec::new(),
    };
    let mut results = Vec::new();
    let mut frame = Frame::default();
    let mut last_expire = 0u64;
    let mut sink = Vec::new();
    while reader
        .read_into(&mut frame)
        .with_context(|| format!("reading {}", pcap.display()))?
    {
        let Ok(d) = decode(frame.linktype, &frame.data) else {
            continue;
        };
        let mut entries = Vec::new();
        let view = flows.track(&d, frame.timestamp_us);
        inspector.push(frame.number, frame.timestamp_us, &frame.data, &d, &view);
        ev.run(inspector.batch(), EntryKind::Packet, &mut entries);
        inspector.flush(&mut sink);
        if d.is_fragment {
            if let DefragResult::Reassembled(ip) = defrag.push(&frame.data, &d, frame.timestamp_us)
            {
                if let Ok(rd) = decode(LinkType::RAW, &ip) {
                    let view = flows.track(&rd, frame.timestamp_us);
                    inspector.push(frame.number, frame.timestamp_us, &ip, &rd, &view);
                    ev.run(inspector.batch(), EntryKind::Datagram, &mut entries);
                    inspector.flush(&mut sink);
                }
            }
        }
        if frame.timestamp_us.saturating_sub(last_expire) > 1_000_000 {
            last_expire = frame.timestamp_us;
            defrag.expire(frame.timestamp_us);
            let gone = flows.expire(frame.timestamp_us);
            inspector.forget_flows(&gone);
            for f in gone {
                ev.store.flows.remove(&f);
            }
        }
        let rules = &target.set.rules;
        let passed_by = entries
            .iter()
            .flat_map(|e| &e.hits)
            .filter_map(|&r| rules.get(r as usize))
            .filter(|r| r.meta.action == Action::Pass)
            .map(|r| r.meta.sid)
            .collect::<std::collections::BTreeSet<u32>>()
            .into_iter()
            .collect();
        results.push(PacketResult {
            number: frame.number,
            matched: entries.iter().any(|e| e.trace.matched),
            entries,
            passed_by,
        });
    }
    Ok(results)
}

struct Evaluator<'a> {
    matcher: &'a Matcher,
    target: u32,
    scratch: Scratch,
    store: MemoryFlowStore,
    hits: Vec<u32>,
}

impl Evaluator<'_> {
    /// Evaluate every entry of `batch` (one packet and the chunk it
    /// completed, if any) as the rules module does.
    fn run(&mut self, batch: &wit::Batch, first: EntryKind, entries: &mut Vec<Entry>) {
        for (i, p) in batch.packets.iter().enumerate() {
            let start = p.payload_offset as usize;
            let end = start.saturating_add(p.payload_len as usize);
            let payload = batch.buffer.get(start..end).unwrap_or(&[]);
            let l3 = {
                let s = p.l3_offset as usize;
                batch
                    .buffer
                    .get(s..s.saturating_add(p.l3_len as usize))
                    .unwrap_or(&[])
            };
            let view = PacketView {
                flow_id: p.flow_id,
                ip_version: p.ip_version,
                l3,
                l4_offset: (p.l4_offset as usize).saturating_sub(p.l3_offset as usize),
                protocol: p.protocol,
                src: addr(p.src_addr),
                dst: addr(p.dst_addr),
                src_port: p.src_port,
                dst_port: p.dst_port,
                direction: match p.direction {
                    wit::Direction::ToServer => Direction::ToServer,
                    wit::Direction::ToClient => Direction::ToClient,
                    wit::Direction::Unknown => Direction::Unknown,
                },
                flow_flags: p.flow_flags,
                payload,
            };
            self.hits.clear();
            let Some(trace) = self.matcher.explain(
                self.target,
                &view,
                &mut self.scratch,
                &mut self.store,
                &mut self.hits,
            ) else {
                continue;
            };
            let kind = if i == 0 { first } else { EntryKind::Chunk };
            let prefix = if kind == EntryKind::Chunk {
                l3.len()
            } else {
                0
            };
            entries.push(Entry {
                kind,
                what: describe_view(&view, kind, prefix),
                payload: payload.to_vec(),
                prefix,
                trace,
                hits: self.hits.clone(),
            });
        }
    }
}

fn addr(a: wit::IpAddress) -> u128 {
    (u128::from(a.hi) << 64) | u128::from(a.lo)
}

fn ip(a: u128) -> IpAddr {
    let v6 = Ipv6Addr::from(a);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        n => format!("ip proto {n}"),
    }
}

fn endpoint(a: u128, port: u16, ports: bool) -> String {
    match (ip(a), ports) {
        (IpAddr::V6(v6), true) => format!("[{v6}]:{port}"),
        (a, true) => format!("{a}:{port}"),
        (a, false) => a.to_string(),
    }
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::ToServer => "to_server",
        Direction::ToClient => "to_client",
        Direction::Unknown => "direction unknown",
    }
}

fn describe_view(v: &PacketView<'_>, kind: EntryKind, prefix: usize) -> String {
    let ports = matches!(v.protocol, 6 | 17 | 132);
    let est = if v.flow_flags & sandgate_matcher::FLOW_ESTABLISHED != 0 {
        ", established"
    } else {
        ""
    };
    let size = match kind {
        EntryKind::Chunk => format!(
            "{} bytes reassembled ({} inspected before)",
            v.payload.len(),
            prefix
        ),
        EntryKind::Datagram => format!("reassembled datagram, payload {} bytes", v.payload.len()),
        EntryKind::Packet => format!("payload {} bytes", v.payload.len()),
    };
    format!(
        "{} {} -> {}, {}{}, {}",
        proto_name(v.protocol),
        endpoint(v.src, v.src_port, ports),
        endpoint(v.dst, v.dst_port, ports),
        direction(v.direction),
        est,
        size
    )
}

/// `"GET "`-style text of a pattern, non-printable bytes as `|hex|`.
fn show_bytes(b: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut in_hex = false;
    for &c in b {
        let plain = (0x20..0x7f).contains(&c) && !matches!(c, b'"' | b';' | b'|' | b'\\');
        if plain {
            if in_hex {
                out.push('|');
                in_hex = false;
            }
            out.push(c as char);
        } else {
            out.push(if in_hex { ' ' } else { '|' });
            in_hex = true;
            let _ = write!(out, "{c:02x}");
        }
    }
    if in_hex {
        out.push('|');
    }
    out.push('"');
    out
}

fn value(v: sandgate_matcher::Value) -> String {
    match v {
        sandgate_matcher::Value::Const(n) => n.to_string(),
        sandgate_matcher::Value::Var(i) => format!("<byte_extract var {i}>"),
    }
}

/// How each payload op is named in the output: `content 2 "CMD:" within
/// 4`; ops other than content by their option text in the rule.
fn op_labels(rule: &Rule, parsed: Option<&ParsedRule>) -> Vec<String> {
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    rule.ops
        .iter()
        .map(|op| {
            let kw = match op {
                Op::Content(_) => "content",
                Op::Pcre(_) => "pcre",
                Op::IsDataAt(_) => "isdataat",
                Op::ByteTest(_) => "byte_test",
                Op::ByteJump(_) => "byte_jump",
                Op::ByteExtract(_) => "byte_extract",
                Op::Bsize(_) => "bsize",
            };
            let n = counts.entry(kw).or_default();
            *n += 1;
            let n = *n;
            match op {
                Op::Content(c) => {
                    let mut s = format!(
                        "content {n} {}{}",
                        if c.negated { "!" } else { "" },
                        show_bytes(&c.pattern)
                    );
                    if c.nocase {
                        s.push_str(" nocase");
                    }
                    for (name, v) in [
                        ("offset", c.offset),
                        ("depth", c.depth),
                        ("distance", c.distance),
                        ("within", c.within),
                    ] {
                        if let Some(v) = v {
                            let _ = write!(s, " {name} {}", value(v));
                        }
                    }
                    if c.endswith {
                        s.push_str(" endswith");
                    }
                    s
                }
                Op::Pcre(p) if parsed.is_none() => format!("pcre {n} {}", p.regex.source()),
                _ => {
                    let text = parsed
                        .and_then(|p| p.options.iter().filter(|o| o.keyword == kw).nth(n - 1))
                        .and_then(|o| o.value.clone())
                        .unwrap_or_default();
                    format!("{kw} {n} {}", text.trim())
                }
            }
        })
        .collect()
}

/// One line per payload attempt.
fn step_line(
    rule: &Rule,
    labels: &[String],
    buf: &[u8],
    op: usize,
    cursor: usize,
    step: &Step,
) -> String {
    let label = labels.get(op).map_or("op", String::as_str);
    let relative = matches!(rule.ops.get(op), Some(o) if o.is_relative());
    let prev = if relative {
        format!(" from the previous match end at {cursor}")
    } else {
        String::new()
    };
    match (rule.ops.get(op), step) {
        (_, Step::StepLimit) => format!(
            "{label}: gave up after {} attempts (the inspection recursion limit)",
            sandgate_matcher::content::MAX_STEPS
        ),
        (Some(Op::Content(c)), Step::NoWindow) => format!(
            "{label}: no room for the {}-byte pattern in the {}-byte payload{prev} (window empty){}",
            c.pattern.len(),
            buf.len(),
            if c.negated { ": `!content` holds" } else { "" }
        ),
        (_, Step::NoWindow) => format!("{label}: starts past the payload end{prev}"),
        (Some(Op::Content(c)), Step::Content { window, from, found }) => {
            let (s, e) = *window;
            let span = |p: usize| format!("{p}..{}", p + c.pattern.len());
            if *from > s {
                // Backtracking: a later relative condition failed after the
                // previous occurrence, so the next one is tried.
                return match found {
                    Some(p) => format!(
                        "{label}: next occurrence at {} (retried: the next condition failed after the previous one)",
                        span(*p)
                    ),
                    None => format!(
                        "{label}: no further occurrence in {from}..{e} (retried: the next condition failed after the previous one)"
                    ),
                };
            }
            let searched = format!("window {s}..{e}{prev}");
            match (found, c.negated) {
                (Some(p), false) => format!("{label}: found at {} ({searched})", span(*p)),
                (Some(p), true) => format!(
                    "{label}: present at {} ({searched}): `!content` fails",
                    span(*p)
                ),
                (None, true) => format!("{label}: absent ({searched}): `!content` holds"),
                (None, false) => match find(c, buf, 0, buf.len()) {
                    Some(p) if p >= *from && p + c.pattern.len() <= e => {
                        format!("{label}: not found ({searched})")
                    }
                    Some(p) => format!(
                        "{label}: not found ({searched}); it occurs at {}, outside the window",
                        span(p)
                    ),
                    None => format!(
                        "{label}: not found ({searched}); absent from the whole {}-byte payload",
                        buf.len()
                    ),
                },
            }
        }
        (_, Step::Pcre { base, found }) => match found {
            Some((s, e)) => format!("{label}: matched at {s}..{e} (searched from {base})"),
            None => format!("{label}: no match (searched from {base})"),
        },
        (_, Step::Holds(h)) => format!(
            "{label}: {}{}",
            if *h { "holds" } else { "fails" },
            if relative { prev } else { String::new() }
        ),
        (_, Step::Moved(to)) => match to {
            Some(to) => format!("{label}: cursor moves from {cursor} to {to}"),
            None => format!("{label}: fails at {cursor} (cannot read, or jumps outside the payload)"),
        },
        (_, Step::Extracted(v)) => match v {
            Some((v, to)) => format!("{label}: value {v}, cursor moves to {to}"),
            None => format!("{label}: fails at {cursor} (cannot read the bytes)"),
        },
        (_, step) => format!("{label}: {step:?}"),
    }
}

/// How far a non-matching entry got, for the nearest miss: stages passed,
/// then payload ops passed.
fn progress(t: &RuleTrace) -> (usize, usize) {
    let stages = [
        !t.on_stream || t.stream_capable,
        t.header.ok,
        t.flow.ok,
        t.checks.iter().all(|&c| c),
        t.flowbits.iter().all(|&b| b),
    ];
    let passed = stages.iter().take_while(|&&s| s).count();
    (passed, furthest_op(t).map_or(0, |(op, _)| op + 1))
}

/// The highest op index that succeeded at least once, and whether any op
/// failed after it.
fn furthest_op(t: &RuleTrace) -> Option<(usize, bool)> {
    t.payload
        .0
        .iter()
        .filter(|(_, _, s)| step_succeeded(s))
        .map(|(op, _, _)| *op)
        .max()
        .map(|op| (op, true))
}

fn step_succeeded(s: &Step) -> bool {
    match s {
        Step::Content { found, .. } => found.is_some(),
        Step::Pcre { found, .. } => found.is_some(),
        Step::Holds(h) => *h,
        Step::Moved(to) => to.is_some(),
        Step::Extracted(v) => v.is_some(),
        Step::NoWindow | Step::StepLimit => false,
    }
}

/// The first condition that failed, in words.
fn first_failure(target: &Target, labels: &[String], e: &Entry) -> String {
    let t = &e.trace;
    let rule = &target.set.rules[target.index as usize];
    if t.on_stream && !t.stream_capable {
        return "not evaluated on stream chunks (packet-level keywords)".into();
    }
    if !t.header.ok {
        return header_failure(t);
    }
    if !t.flow.ok {
        return "flow condition fails".into();
    }
    if let Some(i) = t.checks.iter().position(|&c| !c) {
        return format!("check {:?} fails", rule.checks[i]);
    }
    if t.flowbits.iter().any(|&b| !b) {
        return "flowbits condition fails".into();
    }
    if t.payload_ok {
        if let Some((_, true)) = t.prefix {
            return "matched only within data inspected before (reported earlier)".into();
        }
        return "every condition holds".into();
    }
    // The last attempt of the op after the furthest success.
    let next = furthest_op(t).map_or(0, |(op, _)| op + 1);
    let at = t
        .payload
        .0
        .iter()
        .rev()
        .find(|(op, _, _)| *op == next)
        .or_else(|| t.payload.0.last());
    match at {
        Some((op, cursor, step)) => step_line(rule, labels, &e.payload, *op, *cursor, step),
        None => "no payload condition could be tried".into(),
    }
}

fn header_failure(t: &RuleTrace) -> String {
    let h = &t.header;
    let mut parts = Vec::new();
    if !h.proto {
        parts.push("protocol");
    }
    if !h.src {
        parts.push("source address");
    }
    if !h.src_port {
        parts.push("source port");
    }
    if !h.dst {
        parts.push("destination address");
    }
    if !h.dst_port {
        parts.push("destination port");
    }
    format!("header: {} not the rule's", parts.join(", "))
}

/// Render the explanation.
pub fn render(target: &Target, results: &[PacketResult], args: &Args) -> anyhow::Result<String> {
    let rule = target
        .set
        .rules
        .get(target.index as usize)
        .context("rule index out of range")?;
    let labels = op_labels(rule, target.parsed.as_ref());
    let m = &rule.meta;
    let mut out = String::new();
    let action = format!("{:?}", m.action).to_lowercase();
    let _ = writeln!(
        out,
        "rule {}:{}:{} ({action}) \"{}\"",
        m.gid, m.sid, m.rev, m.msg
    );
    if let Some(p) = &target.parsed {
        let _ = writeln!(out, "  {}:{}", p.file, p.line);
        let _ = writeln!(out, "  {}", p.text);
    }
    if let Some(origin) = &target.origin {
        let _ = writeln!(out, "  from {origin}");
    }
    if !m.thresholds.is_empty() {
        let _ = writeln!(
            out,
            "  note: the rule has a threshold or detection_filter; the engine may withhold alerts counted here"
        );
    }
    let applies = |e: &Entry| e.trace.header.ok;
    let mut shown = 0usize;
    let fired: Vec<u64> = results
        .iter()
        .filter(|r| r.alerts(rule))
        .map(|r| r.number)
        .collect();
    let suppressed: Vec<(u64, &[u32])> = results
        .iter()
        .filter(|r| r.matched && !r.alerts(rule) && !r.passed_by.is_empty())
        .map(|r| (r.number, r.passed_by.as_slice()))
        .collect();
    // The nearest miss: the non-matching entry (with payload) that got furthest.
    let nearest = results
        .iter()
        .filter(|r| !r.matched)
        .flat_map(|r| r.entries.iter().map(move |e| (r.number, e)))
        .filter(|(_, e)| applies(e) && !e.payload.is_empty())
        .fold(None::<(u64, &Entry)>, |best, (n, e)| match best {
            Some((_, b)) if progress(&b.trace) >= progress(&e.trace) => best,
            _ => Some((n, e)),
        });
    let applicable = results
        .iter()
        .flat_map(|r| &r.entries)
        .filter(|e| applies(e))
        .count();
    let mut hidden = 0usize;
    let _ = writeln!(out);
    if let Some(k) = args.packet {
        if !results.iter().any(|r| r.number == k) {
            anyhow::bail!(
                "{}: no IP packet {k} (the capture has {} decodable packets)",
                args.pcap.display(),
                results.len()
            );
        }
    }
    for r in results {
        if let Some(k) = args.packet {
            if r.number != k {
                continue;
            }
        }
        let relevant: Vec<&Entry> = r
            .entries
            .iter()
            .filter(|e| args.packet.is_some() || applies(e))
            .collect();
        if relevant.is_empty() {
            continue;
        }
        let is_nearest = nearest.is_some_and(|(n, _)| n == r.number);
        let always = args.packet.is_some() || args.all || r.alerts(rule) || is_nearest;
        if !always {
            if shown >= args.show || relevant.iter().all(|e| e.payload.is_empty()) {
                hidden += relevant.len();
                continue;
            }
            shown += 1;
        }
        for e in relevant {
            let kind = match e.kind {
                EntryKind::Packet => "",
                EntryKind::Chunk => ", stream chunk",
                EntryKind::Datagram => ", reassembled",
            };
            let _ = writeln!(out, "packet {}{kind}: {}", r.number, e.what);
            entry_lines(&mut out, target, rule, &labels, e);
        }
        let verdict = if r.alerts(rule) {
            format!("ALERT ({action})")
        } else if r.matched && !r.passed_by.is_empty() {
            format!(
                "matched, but pass rule sid {} matched the same packet: no alert",
                list(&r.passed_by)
            )
        } else if r.matched {
            format!("matched ({action} rule: no alert)")
        } else {
            "no alert".into()
        };
        let _ = writeln!(out, "  => packet {}: {verdict}", r.number);
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "summary");
    let _ = writeln!(
        out,
        "  fired on packets [{}]",
        fired
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !suppressed.is_empty() {
        let nums: Vec<String> = suppressed.iter().map(|(n, _)| n.to_string()).collect();
        let mut by: Vec<u32> = suppressed
            .iter()
            .flat_map(|(_, s)| s.iter().copied())
            .collect();
        by.sort_unstable();
        by.dedup();
        let _ = writeln!(
            out,
            "  matched but suppressed by pass rule sid {} on {} packet(s): [{}]",
            list(&by),
            nums.len(),
            nums.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "  the rule's header applies to {applicable} packet(s)/stream chunk(s) of {} decodable packets{}",
        results.len(),
        if hidden > 0 {
            format!("; {hidden} not shown (--all shows them, --packet K one)")
        } else {
            String::new()
        }
    );
    match nearest {
        Some((n, e)) => {
            let _ = writeln!(
                out,
                "  nearest miss: packet {n}{}: {}",
                if e.kind == EntryKind::Chunk {
                    " (stream chunk)"
                } else {
                    ""
                },
                first_failure(target, &labels, e)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  nearest miss: none (no packet with payload that the header applies to failed)"
            );
        }
    }
    Ok(out)
}

fn list(sids: &[u32]) -> String {
    sids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn entry_lines(out: &mut String, target: &Target, rule: &Rule, labels: &[String], e: &Entry) {
    let t = &e.trace;
    let mut line = |tag: &str, s: String| {
        let _ = writeln!(out, "    {tag:<9} {s}");
    };
    if t.on_stream && !t.stream_capable {
        line(
            "stream",
            "not evaluated: rules with packet-level keywords (dsize, header checks) or no_stream only see packets".into(),
        );
    }
    let h = &t.header;
    line(
        "header",
        if h.ok && h.swapped {
            "ok (with source and destination swapped, `<>`)".into()
        } else if h.ok {
            "ok".into()
        } else {
            format!(
                "fails: {}",
                header_failure(t).trim_start_matches("header: ")
            )
        },
    );
    let f = &t.flow;
    let mut parts = Vec::new();
    if let Some(want) = f.wants_direction {
        parts.push(format!(
            "{} (packet: {})",
            direction(want),
            direction(f.direction)
        ));
    }
    if let Some(p) = f.established {
        parts.push(format!(
            "{} (packet: {})",
            if p.want {
                "established"
            } else {
                "not_established"
            },
            if p.have {
                "established"
            } else {
                "not established"
            }
        ));
    }
    if let Some(p) = f.stream {
        parts.push(format!(
            "{} (packet: {})",
            if p.want { "only_stream" } else { "no_stream" },
            if p.have { "stream chunk" } else { "packet" }
        ));
    }
    if !parts.is_empty() {
        line(
            "flow",
            format!(
                "{}: {}",
                if f.ok { "ok" } else { "fails" },
                parts.join(", ")
            ),
        );
    }
    for (c, ok) in rule.checks.iter().zip(&t.checks) {
        line(
            "check",
            format!("{c:?}: {}", if *ok { "holds" } else { "fails" }),
        );
    }
    for (i, ok) in t.flowbits.iter().enumerate() {
        let what = match rule.flowbit_checks.get(i) {
            Some(sandgate_matcher::FlowbitCheck::IsSet(b)) => format!("isset {}", names(target, b)),
            Some(sandgate_matcher::FlowbitCheck::IsNotSet(b)) => {
                format!("isnotset {}", names(target, b))
            }
            None => String::new(),
        };
        line(
            "flowbits",
            format!("{what}: {}", if *ok { "holds" } else { "fails" }),
        );
    }
    let steps = &t.payload.0;
    for (op, cursor, step) in steps.iter().take(MAX_STEP_LINES) {
        line(
            "payload",
            step_line(rule, labels, &e.payload, *op, *cursor, step),
        );
    }
    if steps.len() > MAX_STEP_LINES {
        line(
            "payload",
            format!("... {} more attempts", steps.len() - MAX_STEP_LINES),
        );
    }
    if let Some((_, true)) = t.prefix {
        line(
            "stream",
            format!(
                "also matches within the {} bytes inspected before: reported with an earlier packet, not again",
                e.prefix
            ),
        );
    }
    if !t.candidate && !t.matched {
        if let Some(lit) = &rule.prefilter {
            line(
                "prefilter",
                format!(
                    "fast pattern {} not in the payload: the engine does not evaluate the rule here",
                    show_bytes(lit)
                ),
            );
        }
    }
    line(
        "verdict",
        if t.matched {
            "match".into()
        } else {
            "no match".into()
        },
    );
}

fn names(target: &Target, bits: &[u16]) -> String {
    bits.iter()
        .map(|&b| {
            target
                .set
                .flowbits
                .get(usize::from(b))
                .cloned()
                .unwrap_or_else(|| format!("#{b}"))
        })
        .collect::<Vec<_>>()
        .join("|")
}
