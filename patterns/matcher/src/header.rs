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
    /// Any option at all.
    Any,
}

impl IpOption {
    fn code(self) -> Option<u8> {
        Some(match self {
            IpOption::Eol => 0,
            IpOption::Nop => 1,
            IpOption::Rr => 7,
            IpOption::Ts => 68,
            IpOption::Sec => 130,
            IpOption::Lsrr => 131,
            IpOption::Esec => 133,
            IpOption::Satid => 136,
            IpOption::Ssrr => 137,
            IpOption::Any => return None,
        })
    }
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
            Check::IpOpts(o) => v4 && has_ipv4_option(l3, o),
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

/// Whether the IPv4 header carries option `o`.
fn has_ipv4_option(l3: &[u8], o: IpOption) -> bool {
    let Some(ihl) = byte(l3, 0).map(|b| usize::from(b & 0x0f) * 4) else {
        return false;
    };
    let Some(opts) = l3.get(20..ihl.min(l3.len())) else {
        return false;
    };
    if opts.is_empty() {
        return false;
    }
    let Some(want) = o.code() else {
        return true;
    };
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        if kind == want {
            return true;
        }
        match kind {
            0 => return false,
            1 => i += 1,
            _ => {
                let len = opts.get(i + 1).map_or(0, |&l| usize::from(l));
                if len < 2 {
                    return false;
                }
                i += len;
            }
        }
    }
    false
}
