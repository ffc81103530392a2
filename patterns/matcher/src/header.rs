//! Packet-header conditions (`ttl`, `flags`, `itype`, `dsize`, ...), read
//! from the IP and transport header bytes of [`PacketView`]. Every read is
//! bounds-checked: a truncated or absent header makes the condition false.

use serde::{Deserialize, Serialize};

use crate::matcher::PacketView;
use crate::FLOW_STREAM;

/// A numeric comparison as Suricata's integer keywords write it: `N`, `!N`,
/// `<N`, `<=N`, `>N`, `>=N`, and the exclusive ranges `N<>M` / `N-M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NumCond {
    Eq(u64),
    Ne(u64),
    Lt(u64),
    Le(u64),
    Gt(u64),
    Ge(u64),
    /// `lo < x < hi`.
    Between(u64, u64),
    /// `!(lo < x < hi)`.
    NotBetween(u64, u64),
}

impl NumCond {
    pub fn holds(self, x: u64) -> bool {
        match self {
            NumCond::Eq(v) => x == v,
            NumCond::Ne(v) => x != v,
            NumCond::Lt(v) => x < v,
            NumCond::Le(v) => x <= v,
            NumCond::Gt(v) => x > v,
            NumCond::Ge(v) => x >= v,
            NumCond::Between(lo, hi) => lo < x && x < hi,
            NumCond::NotBetween(lo, hi) => !(lo < x && x < hi),
        }
    }
}

/// How `flags` / `fragbits` compare the listed bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BitsModifier {
    /// No modifier: exactly these bits (after the mask).
    Exact,
    /// `+`: these bits and possibly others.
    All,
    /// `*`: any of these bits.
    Any,
    /// `!`: not all of these bits.
    Not,
}

/// IPv4 options `ipopts` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpOption {
    Rr,
    Eol,
    Nop,
    Ts,
    Sec,
    Esec,
    Lsrr,
    Ssrr,
    Satid,
    /// Any option the decoder recognises and finds valid.
    Any,
}

impl IpOption {
    /// The bit of this option in [`ipv4_option_flags`]' set (all bits for
    /// `Any`), as Suricata's `IPV4_OPT_FLAG_*`.
    fn flag(self) -> u16 {
        match self {
            IpOption::Eol => opt_flag::EOL,
            IpOption::Nop => opt_flag::NOP,
            IpOption::Rr => opt_flag::RR,
            IpOption::Ts => opt_flag::TS,
            IpOption::Sec => opt_flag::SEC,
            IpOption::Lsrr => opt_flag::LSRR,
            IpOption::Esec => opt_flag::ESEC,
            IpOption::Satid => opt_flag::SID,
            IpOption::Ssrr => opt_flag::SSRR,
            IpOption::Any => u16::MAX,
        }
    }
}

/// Bits of the set of IPv4 options a packet carries.
mod opt_flag {
    pub const EOL: u16 = 1 << 1;
    pub const NOP: u16 = 1 << 2;
    pub const RR: u16 = 1 << 3;
    pub const TS: u16 = 1 << 4;
    pub const QS: u16 = 1 << 5;
    pub const SEC: u16 = 1 << 6;
    pub const LSRR: u16 = 1 << 7;
    pub const CIPSO: u16 = 1 << 8;
    pub const SID: u16 = 1 << 9;
    pub const SSRR: u16 = 1 << 10;
    pub const RTRALT: u16 = 1 << 11;
    pub const ESEC: u16 = 1 << 12;
}

/// One packet-level condition of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Check {
    /// Payload size; never holds on reassembled stream data.
    Dsize(NumCond),
    /// IPv4 TTL or IPv6 hop limit.
    Ttl(NumCond),
    IpProto(NumCond),
    /// IPv4 identification.
    IpId(NumCond),
    /// IPv4 type of service byte.
    Tos(NumCond),
    /// TCP flags byte (CWR and ECE included); `mask` keeps the bits compared.
    TcpFlags {
        flags: u8,
        mask: u8,
        modifier: BitsModifier,
    },
    TcpSeq(NumCond),
    TcpAck(NumCond),
    TcpWindow(NumCond),
    TcpMss(NumCond),
    /// IPv4 fragment bits (`R` 0x8000, `D` 0x4000, `M` 0x2000).
    FragBits {
        bits: u16,
        modifier: BitsModifier,
    },
    /// IPv4 fragment offset, in 8-byte units as in the header.
    FragOffset(NumCond),
    IcmpType(NumCond),
    IcmpCode(NumCond),
    IcmpId(NumCond),
    IcmpSeq(NumCond),
    /// Source and destination address are the same.
    SameIp,
    IpOpts(IpOption),
}

impl Check {
    /// Whether the condition holds on `pkt`.
    pub fn holds(&self, pkt: &PacketView<'_>) -> bool {
        let l3 = pkt.l3;
        let v4 = pkt.ip_version == 4;
        let l4 = || l3.get(pkt.l4_offset..).filter(|_| !l3.is_empty());
        let tcp = || l4().filter(|_| pkt.protocol == 6);
        let icmp = || l4().filter(|_| matches!(pkt.protocol, 1 | 58));
        match *self {
            Check::Dsize(c) => {
                pkt.flow_flags & FLOW_STREAM == 0 && c.holds(pkt.payload.len() as u64)
            }
            Check::Ttl(c) => {
                let at = if v4 { 8 } else { 7 };
                byte(l3, at).is_some_and(|t| c.holds(t.into()))
            }
            Check::IpProto(c) => c.holds(pkt.protocol.into()),
            Check::IpId(c) => v4 && be16(l3, 4).is_some_and(|v| c.holds(v.into())),
            Check::Tos(c) => v4 && byte(l3, 1).is_some_and(|v| c.holds(v.into())),
            Check::TcpFlags {
                flags,
                mask,
                modifier,
            } => tcp()
                .and_then(|t| byte(t, 13))
                .is_some_and(|f| bits_match(u16::from(f & mask), flags.into(), modifier, false)),
            Check::TcpSeq(c) => tcp()
                .and_then(|t| be32(t, 4))
                .is_some_and(|v| c.holds(v.into())),
            Check::TcpAck(c) => tcp()
                .and_then(|t| be32(t, 8))
                .is_some_and(|v| c.holds(v.into())),
            Check::TcpWindow(c) => tcp()
                .and_then(|t| be16(t, 14))
                .is_some_and(|v| c.holds(v.into())),
            Check::TcpMss(c) => tcp().and_then(tcp_mss).is_some_and(|v| c.holds(v.into())),
            Check::FragBits { bits, modifier } => {
                v4 && be16(l3, 6).is_some_and(|f| bits_match(f & 0xe000, bits, modifier, true))
            }
            Check::FragOffset(c) => v4 && be16(l3, 6).is_some_and(|f| c.holds((f & 0x1fff).into())),
            Check::IcmpType(c) => icmp_field(pkt, icmp(), 0).is_some_and(|v| c.holds(v.into())),
            Check::IcmpCode(c) => icmp_field(pkt, icmp(), 1).is_some_and(|v| c.holds(v.into())),
            Check::IcmpId(c) => icmp()
                .filter(|h| icmp_has_id(pkt.protocol, h))
                .and_then(|h| be16(h, 4))
                .is_some_and(|v| c.holds(v.into())),
            Check::IcmpSeq(c) => icmp()
                .filter(|h| icmp_has_id(pkt.protocol, h))
                .and_then(|h| be16(h, 6))
                .is_some_and(|v| c.holds(v.into())),
            Check::SameIp => pkt.src == pkt.dst,
            Check::IpOpts(o) => v4 && ipv4_option_flags(l3).is_some_and(|set| set & o.flag() != 0),
        }
    }
}

fn byte(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(s))
}

/// Suricata's `flags`/`fragbits` comparison of `have` against `want`.
fn bits_match(have: u16, want: u16, modifier: BitsModifier, fragbits: bool) -> bool {
    match modifier {
        BitsModifier::Exact => have == want,
        // Suricata's fragbits `+` also wants a bit beyond the listed ones.
        BitsModifier::All if fragbits => have & want == want && have != want,
        BitsModifier::All => have & want == want,
        BitsModifier::Any => have & want != 0,
        BitsModifier::Not => have & want != want,
    }
}

/// ICMP type (`at` 0) or code (1): from the header, or from the packet
/// descriptor's port fields when no header bytes came with the packet.
fn icmp_field(pkt: &PacketView<'_>, hdr: Option<&[u8]>, at: usize) -> Option<u8> {
    if !matches!(pkt.protocol, 1 | 58) {
        return None;
    }
    match hdr {
        Some(h) => byte(h, at),
        None if pkt.l3.is_empty() => {
            let v = if at == 0 { pkt.src_port } else { pkt.dst_port };
            u8::try_from(v).ok()
        }
        None => None,
    }
}

/// ICMP messages that carry an identifier and sequence number.
fn icmp_has_id(protocol: u8, h: &[u8]) -> bool {
    match (protocol, h.first()) {
        (1, Some(t)) => matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18),
        (58, Some(t)) => matches!(t, 128 | 129),
        _ => false,
    }
}

/// The MSS option of a TCP header, if present.
fn tcp_mss(tcp: &[u8]) -> Option<u16> {
    let hlen = usize::from(byte(tcp, 12)? >> 4) * 4;
    let opts = tcp.get(20..hlen.min(tcp.len()))?;
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        match kind {
            0 => return None,
            1 => i += 1,
            _ => {
                let len = usize::from(*opts.get(i + 1)?);
                if kind == 2 && len == 4 {
                    return be16(opts, i + 2);
                }
                if len < 2 {
                    return None;
                }
                i += len;
            }
        }
    }
    None
}

/// The set of IPv4 options (bits of [`opt_flag`]) the header carries, as
/// Suricata's `DecodeIPV4Options` builds it: the walk stops at EOL; an
/// option of unknown type, or one that fails its length/pointer check,
/// sets no bit (a valid repeat changes nothing); an option whose length is below 2 or
/// runs past the header makes the packet invalid (`None`: Suricata drops
/// it from detection).
pub fn ipv4_option_flags(l3: &[u8]) -> Option<u16> {
    let ihl = usize::from(byte(l3, 0)? & 0x0f) * 4;
    let mut opts = l3.get(20..ihl.min(l3.len())).unwrap_or_default();
    let mut set = 0u16;
    while let Some(&kind) = opts.first() {
        match kind {
            0 => return Some(set | opt_flag::EOL),
            1 => {
                set |= opt_flag::NOP;
                opts = opts.get(1..).unwrap_or_default();
                continue;
            }
            _ => {}
        }
        let Some(&len) = opts.get(1) else {
            // One byte left: Suricata notes "EOL required" and stops.
            return Some(set);
        };
        let len = usize::from(len);
        if len < 2 || len > opts.len() {
            return None;
        }
        let opt = opts.get(..len)?;
        let (flag, valid) = match kind {
            68 => (opt_flag::TS, valid_timestamp(opt)),
            7 => (opt_flag::RR, valid_route(opt)),
            131 => (opt_flag::LSRR, valid_route(opt)),
            137 => (opt_flag::SSRR, valid_route(opt)),
            25 => (opt_flag::QS, len >= 8),
            130 => (opt_flag::SEC, len >= 3),
            133 => (opt_flag::ESEC, len >= 3),
            134 => (opt_flag::CIPSO, len >= 10),
            136 => (opt_flag::SID, len == 4),
            148 => (opt_flag::RTRALT, len == 4),
            _ => (0, false),
        };
        if valid {
            set |= flag;
        }
        opts = opts.get(len..).unwrap_or_default();
    }
    Some(set)
}

/// RR/LSRR/SSRR: length at least 3, pointer at least 4, a multiple of 4,
/// at most length + 1 (RFC 791).
fn valid_route(opt: &[u8]) -> bool {
    let len = opt.len();
    let Some(&ptr) = opt.get(2) else {
        return false;
    };
    let ptr = usize::from(ptr);
    len >= 3 && ptr >= 4 && ptr % 4 == 0 && ptr <= len + 1
}

/// Timestamp: length at least 5, pointer at least 5, records of 4 bytes
/// (8 with flag 1 or 3), pointer at most length + 1 (RFC 791).
fn valid_timestamp(opt: &[u8]) -> bool {
    let len = opt.len();
    let (Some(&ptr), Some(&oflw_flag)) = (opt.get(2), opt.get(3)) else {
        return false;
    };
    let ptr = usize::from(ptr);
    let rec = if matches!(oflw_flag & 0x0f, 1 | 3) {
        8
    } else {
        4
    };
    len >= 5 && ptr >= 5 && (ptr - 5) % rec == 0 && ptr <= len + 1
}
