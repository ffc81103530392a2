//! Why one rule did or did not match one packet.
//!
//! The explanation comes from the evaluation the engine runs, so it cannot
//! disagree with it: [`Matcher::explain`] runs the whole rule set on the
//! packet exactly as [`Matcher::matches_with`] does (prefilter, flowbits
//! order and state) and, when the rule's turn comes, records each of its
//! conditions with the same functions; the payload ops go through
//! [`eval_ops_traced`], the payload evaluation itself with a [`Trace`]
//! sink. The engine's own path uses [`NoTrace`], which compiles away.

use crate::content::eval_ops_traced;
use crate::flowbits::{Bits, FlowStore};
use crate::ir::{FlowbitCheck, Rule};
use crate::matcher::{
    flow_matches, flowbits_hold, header_matches, payload_matches, rule_matches_bits,
    stream_capable, Direction, Matcher, PacketView, Scratch,
};
use crate::{FLOW_ESTABLISHED, FLOW_STREAM};

/// What one attempt of one payload op found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A content (or a relative pcre) has no room: its window is empty or
    /// shorter than the pattern.
    NoWindow,
    /// A content searched `buf[from..window.1]`, its window being
    /// `window`; `found` is the match start.
    Content {
        window: (usize, usize),
        from: usize,
        found: Option<usize>,
    },
    /// A pcre searched from `base`; `found` is the match range.
    Pcre {
        base: usize,
        found: Option<(usize, usize)>,
    },
    /// `isdataat` or `byte_test`: whether it held.
    Holds(bool),
    /// `byte_jump`: the new cursor, or `None` when it could not read or
    /// jumped out of the buffer.
    Moved(Option<usize>),
    /// `byte_extract`: the value and the new cursor, or `None`.
    Extracted(Option<(u64, usize)>),
    /// The evaluation hit [`crate::content::MAX_STEPS`] and gave up.
    StepLimit,
}

/// A sink for the payload evaluation's attempts.
pub trait Trace {
    /// Op `op` was tried with the cursor at `cursor` (the end of the
    /// previous match) and gave `step`.
    fn step(&mut self, op: usize, cursor: usize, step: Step);
}

/// The engine's sink: records nothing.
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn step(&mut self, _op: usize, _cursor: usize, _step: Step) {}
}

/// Every attempt in evaluation order: (op index, cursor, step).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Steps(pub Vec<(usize, usize, Step)>);

impl Trace for Steps {
    fn step(&mut self, op: usize, cursor: usize, step: Step) {
        self.0.push((op, cursor, step));
    }
}

/// The header conditions, each on its own. When the rule is
/// bidirectional and only the swapped direction matches, the parts are
/// those of the swapped comparison and `swapped` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderTrace {
    pub proto: bool,
    pub src: bool,
    pub src_port: bool,
    pub dst: bool,
    pub dst_port: bool,
    pub swapped: bool,
    /// The engine's header verdict.
    pub ok: bool,
}

/// One `flow` condition: what the rule wants and what the packet has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowPart {
    pub want: bool,
    pub have: bool,
}

/// The `flow` keyword's conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTrace {
    /// The direction `to_server` / `to_client` asks for.
    pub wants_direction: Option<Direction>,
    /// The packet's direction.
    pub direction: Direction,
    pub established: Option<FlowPart>,
    /// `only_stream` / `no_stream`.
    pub stream: Option<FlowPart>,
    /// The engine's flow verdict.
    pub ok: bool,
}

/// One rule on one packet (or stream chunk): every condition and the
/// engine's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    /// Index of the rule in the set.
    pub rule: u32,
    /// The packet is a reassembled stream chunk.
    pub on_stream: bool,
    /// On a stream chunk, rules with packet-level keywords are not
    /// evaluated at all.
    pub stream_capable: bool,
    /// The prefilter selected the rule (a rule without a positive content
    /// always is); the engine evaluates only selected rules.
    pub candidate: bool,
    pub header: HeaderTrace,
    pub flow: FlowTrace,
    /// Per packet-header check (`dsize`, `ttl`, ...), whether it held.
    pub checks: Vec<bool>,
    /// Per `flowbits` check, whether it held with the flow's bits as they
    /// were when the rule ran; all fail on a packet without a flow.
    pub flowbits: Vec<bool>,
    /// The payload ops' attempts over the packet's payload.
    pub payload: Steps,
    pub payload_ok: bool,
    /// On a stream chunk whose payload matched: the attempts over the
    /// already-inspected prefix, and whether they matched there too (then
    /// the match was reported with an earlier packet and not again).
    pub prefix: Option<(Steps, bool)>,
    /// The engine's verdict for this rule on this packet.
    pub matched: bool,
}

impl Matcher {
    /// Evaluate every rule on `pkt` as [`Matcher::matches_with`] does
    /// (flowbits are read from and written to `store` the same way),
    /// appending the matching rules to `out`, and return the trace of rule
    /// `rule`. `None` when `rule` is not in the set.
    pub fn explain(
        &self,
        rule: u32,
        pkt: &PacketView<'_>,
        scratch: &mut Scratch,
        store: &mut dyn FlowStore,
        out: &mut Vec<u32>,
    ) -> Option<RuleTrace> {
        let target = self.rule_set().rules.get(rule as usize)?;
        let mut traced = None;
        self.matches_probed(pkt, scratch, store, out, |r, bits| {
            if r == rule {
                traced = Some(trace_rule(rule, target, pkt, bits, true));
            }
        });
        // Not selected by the prefilter: the engine did not evaluate it, so
        // it did not match; the trace still shows each condition.
        Some(traced.unwrap_or_else(|| trace_rule(rule, target, pkt, &scratch.bits, false)))
    }
}

/// Trace `rule` on `pkt` with flowbits `bits`; `matched` is the engine's
/// own verdict ([`rule_matches_bits`]) for a selected rule.
fn trace_rule(
    index: u32,
    rule: &Rule,
    pkt: &PacketView<'_>,
    bits: &Bits,
    candidate: bool,
) -> RuleTrace {
    let on_stream = pkt.flow_flags & FLOW_STREAM != 0;
    let mut payload = Steps::default();
    let payload_ok = eval_ops_traced(&rule.ops, pkt.payload, &mut payload);
    let prefix = match pkt.payload.get(..pkt.l3.len()) {
        Some(old) if on_stream && payload_ok && !old.is_empty() => {
            let mut steps = Steps::default();
            let again = eval_ops_traced(&rule.ops, old, &mut steps);
            Some((steps, again))
        }
        _ => None,
    };
    let t = RuleTrace {
        rule: index,
        on_stream,
        stream_capable: stream_capable(rule),
        candidate,
        header: trace_header(rule, pkt),
        flow: trace_flow(rule, pkt),
        checks: rule.checks.iter().map(|c| c.holds(pkt)).collect(),
        flowbits: trace_flowbits(rule, pkt, bits),
        payload,
        payload_ok,
        prefix,
        matched: candidate && rule_matches_bits(rule, pkt, bits),
    };
    debug_assert!(
        !candidate || t.parts_hold() == t.matched,
        "trace parts disagree with the evaluation"
    );
    debug_assert_eq!(payload_ok && !matches!(t.prefix, Some((_, true))), {
        payload_matches(rule, pkt, on_stream)
    });
    debug_assert_eq!(
        t.flowbits.iter().all(|&b| b) && (pkt.flow_id != 0 || rule.flowbit_checks.is_empty()),
        flowbits_hold(rule, pkt, bits)
    );
    t
}

impl RuleTrace {
    /// Whether every traced condition holds (equals [`RuleTrace::matched`]
    /// for a rule the prefilter selected).
    pub fn parts_hold(&self) -> bool {
        (!self.on_stream || self.stream_capable)
            && self.header.ok
            && self.flow.ok
            && self.checks.iter().all(|&c| c)
            && self.flowbits.iter().all(|&b| b)
            && self.payload_ok
            && !matches!(self.prefix, Some((_, true)))
    }
}

fn trace_header(rule: &Rule, pkt: &PacketView<'_>) -> HeaderTrace {
    let has_ports = matches!(pkt.protocol, 6 | 17 | 132);
    let proto = rule.proto.covers(pkt.ip_version, pkt.protocol);
    let parts = |src: u128, sp: u16, dst: u128, dp: u16, swapped: bool| {
        let port = |set: &crate::ir::PortSet, p: u16| {
            if has_ports {
                set.contains(p)
            } else {
                set.is_any()
            }
        };
        HeaderTrace {
            proto,
            src: rule.src.contains(src),
            src_port: port(&rule.src_ports, sp),
            dst: rule.dst.contains(dst),
            dst_port: port(&rule.dst_ports, dp),
            swapped,
            ok: header_matches(rule, pkt),
        }
    };
    let fwd = parts(pkt.src, pkt.src_port, pkt.dst, pkt.dst_port, false);
    let all = |h: &HeaderTrace| h.src && h.src_port && h.dst && h.dst_port;
    if rule.bidirectional && !all(&fwd) {
        let rev = parts(pkt.dst, pkt.dst_port, pkt.src, pkt.src_port, true);
        if all(&rev) {
            return rev;
        }
    }
    fwd
}

fn trace_flow(rule: &Rule, pkt: &PacketView<'_>) -> FlowTrace {
    let f = &rule.flow;
    let part = |want: Option<bool>, have: bool| want.map(|want| FlowPart { want, have });
    FlowTrace {
        wants_direction: f.to_server.map(|to_server| {
            if to_server {
                Direction::ToServer
            } else {
                Direction::ToClient
            }
        }),
        direction: pkt.direction,
        established: part(f.established, pkt.flow_flags & FLOW_ESTABLISHED != 0),
        stream: part(f.stream, pkt.flow_flags & FLOW_STREAM != 0),
        ok: flow_matches(rule, pkt),
    }
}

fn trace_flowbits(rule: &Rule, pkt: &PacketView<'_>, bits: &Bits) -> Vec<bool> {
    rule.flowbit_checks
        .iter()
        .map(|c| {
            pkt.flow_id != 0
                && match c {
                    FlowbitCheck::IsSet(list) => list.iter().any(|&b| bits.get(b)),
                    FlowbitCheck::IsNotSet(list) => list.iter().any(|&b| !bits.get(b)),
                }
        })
        .collect()
}

impl FlowPart {
    /// The condition holds.
    pub fn ok(&self) -> bool {
        self.want == self.have
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::eval_ops;
    use crate::ir::{Content, Op, Value};

    fn content(p: &[u8]) -> Content {
        Content {
            pattern: p.to_vec(),
            nocase: false,
            negated: false,
            offset: None,
            depth: None,
            distance: None,
            within: None,
            endswith: false,
        }
    }

    #[test]
    fn the_trace_shows_the_backtracking_the_evaluation_does() {
        // The first "ab" is followed by "zz"; only the second has "cd".
        let buf = b"abzzabcd";
        let mut cd = content(b"cd");
        cd.distance = Some(Value::Const(0));
        cd.within = Some(Value::Const(2));
        let ops = vec![Op::Content(content(b"ab")), Op::Content(cd)];
        let mut t = Steps::default();
        assert!(eval_ops_traced(&ops, buf, &mut t));
        assert!(eval_ops(&ops, buf));
        let c = |window, from, found| Step::Content {
            window,
            from,
            found,
        };
        assert_eq!(
            t.0,
            vec![
                (0, 0, c((0, 8), 0, Some(0))),
                (1, 2, c((2, 4), 2, None)),
                (0, 0, c((0, 8), 1, Some(4))),
                (1, 6, c((6, 8), 6, Some(6))),
            ]
        );
    }

    #[test]
    fn a_failing_within_is_traced_with_its_window() {
        let mut cd = content(b"cd");
        cd.distance = Some(Value::Const(0));
        cd.within = Some(Value::Const(2));
        let ops = vec![Op::Content(content(b"ab")), Op::Content(cd)];
        let mut t = Steps::default();
        assert!(!eval_ops_traced(&ops, b"ab--cd", &mut t));
        assert!(!eval_ops(&ops, b"ab--cd"));
        assert_eq!(
            t.0.get(1),
            Some(&(
                1,
                2,
                Step::Content {
                    window: (2, 4),
                    from: 2,
                    found: None
                }
            ))
        );
    }
}
