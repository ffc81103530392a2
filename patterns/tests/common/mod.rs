//! Shared helpers for the keyword tests: compile rule text, build packets
//! (IPv4 + TCP/UDP/ICMP header bytes), and run the native matcher.

#![allow(dead_code)]

use sandgate_matcher::{
    Direction, FlowStore, Matcher, NoFlowStore, PacketView, Scratch, FLOW_ESTABLISHED,
};
use sandgate_patterns::compile::{compile_rules, Compiled};
use sandgate_patterns::rules::{ipv4_key, RuleSource, Vars};

/// Compile `text`; panics (in the test) when any rule was skipped.
pub fn compile_ok(text: &str) -> Matcher {
    let compiled = compile(text);
    assert!(
        compiled.skipped.is_empty(),
        "did not compile: {:?}",
        compiled.skipped
    );
    Matcher::new(compiled.set)
}

pub fn compile(text: &str) -> Compiled {
    compile_rules(
        &[RuleSource {
            file: "t.rules",
            text,
        }],
        &Vars::suricata_defaults(),
        "t",
        "1",
    )
}

/// A packet: the whole IP packet plus where its payload starts.
pub struct Packet {
    pub l3: Vec<u8>,
    pub l4_offset: usize,
    pub payload_offset: usize,
    pub protocol: u8,
    pub flow_id: u64,
}

/// IPv4 header (20 bytes + `opts`, padded to 4) with TTL 64, id 0x1234.
fn ipv4(protocol: u8, opts: &[u8], frag: u16, tos: u8, rest_len: usize) -> Vec<u8> {
    let mut o = opts.to_vec();
    while !o.len().is_multiple_of(4) {
        o.push(0);
    }
    let ihl = (20 + o.len()) / 4;
    let total = (20 + o.len() + rest_len) as u16;
    let mut h = vec![0x40 | ihl as u8, tos];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&0x1234u16.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, protocol, 0, 0, 10, 0, 0, 1, 192, 168, 1, 10]);
    h.extend_from_slice(&o);
    h
}

/// Options for building a test packet.
#[derive(Clone)]
pub struct Build<'a> {
    pub tcp_flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub tcp_opts: &'a [u8],
    pub ip_opts: &'a [u8],
    pub frag: u16,
    pub tos: u8,
    pub flow_id: u64,
}

impl Default for Build<'_> {
    fn default() -> Self {
        Build {
            tcp_flags: 0x18,
            seq: 1000,
            ack: 2000,
            window: 512,
            tcp_opts: &[],
            ip_opts: &[],
            frag: 0x4000,
            tos: 0,
            flow_id: 1,
        }
    }
}

pub fn tcp_with(b: &Build<'_>, payload: &[u8]) -> Packet {
    let mut t = Vec::new();
    t.extend_from_slice(&40000u16.to_be_bytes());
    t.extend_from_slice(&80u16.to_be_bytes());
    t.extend_from_slice(&b.seq.to_be_bytes());
    t.extend_from_slice(&b.ack.to_be_bytes());
    let mut opts = b.tcp_opts.to_vec();
    while !opts.len().is_multiple_of(4) {
        opts.push(1);
    }
    t.push((((20 + opts.len()) / 4) as u8) << 4);
    t.push(b.tcp_flags);
    t.extend_from_slice(&b.window.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(&opts);
    let mut l3 = ipv4(6, b.ip_opts, b.frag, b.tos, t.len() + payload.len());
    let l4_offset = l3.len();
    l3.extend_from_slice(&t);
    let payload_offset = l3.len();
    l3.extend_from_slice(payload);
    Packet {
        l3,
        l4_offset,
        payload_offset,
        protocol: 6,
        flow_id: b.flow_id,
    }
}

pub fn tcp(payload: &[u8]) -> Packet {
    tcp_with(&Build::default(), payload)
}

/// ICMP echo request/reply etc.: type, code, id, seq.
pub fn icmp(ty: u8, code: u8, id: u16, seq: u16, payload: &[u8]) -> Packet {
    let mut t = vec![ty, code, 0, 0];
    t.extend_from_slice(&id.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    let mut l3 = ipv4(1, &[], 0, 0, t.len() + payload.len());
    let l4_offset = l3.len();
    l3.extend_from_slice(&t);
    let payload_offset = l3.len();
    l3.extend_from_slice(payload);
    Packet {
        l3,
        l4_offset,
        payload_offset,
        protocol: 1,
        flow_id: 0,
    }
}

impl Packet {
    pub fn view(&self) -> PacketView<'_> {
        let is_tcp_udp = matches!(self.protocol, 6 | 17);
        let port = |at: usize| {
            if is_tcp_udp {
                let b = self
                    .l3
                    .get(self.l4_offset + at..self.l4_offset + at + 2)
                    .unwrap_or(&[0, 0]);
                u16::from_be_bytes([b[0], b[1]])
            } else {
                u16::from(*self.l3.get(self.l4_offset + at / 2).unwrap_or(&0))
            }
        };
        PacketView {
            protocol: self.protocol,
            src: ipv4_key([10, 0, 0, 1].into()),
            dst: ipv4_key([192, 168, 1, 10].into()),
            src_port: port(0),
            dst_port: port(2),
            direction: Direction::ToServer,
            flow_flags: FLOW_ESTABLISHED,
            flow_id: self.flow_id,
            ip_version: 4,
            l3: &self.l3,
            l4_offset: self.l4_offset,
            payload: &self.l3[self.payload_offset..],
        }
    }
}

/// Indices of the rules of `m` that report on `p`, with flowbits in `store`.
pub fn hits_with(m: &Matcher, p: &Packet, store: &mut dyn FlowStore) -> Vec<u32> {
    let mut out = Vec::new();
    m.matches_with(&p.view(), &mut Scratch::default(), store, &mut out);
    out
}

/// Whether the single rule `rule` matches `p`.
pub fn matches(rule: &str, p: &Packet) -> bool {
    !hits_with(&compile_ok(rule), p, &mut NoFlowStore).is_empty()
}

/// Run a table of (rule options, payload, expected) on TCP packets.
pub fn run_payload_table(cases: &[(&str, &[u8], bool)]) {
    for (opts, payload, want) in cases {
        let rule = format!("alert tcp any any -> any any ({opts} sid:1;)");
        assert_eq!(
            matches(&rule, &tcp(payload)),
            *want,
            "{rule} on {:?}",
            String::from_utf8_lossy(payload)
        );
    }
}
