//! Packet decoding: link layer, IPv4/IPv6 and TCP/UDP/ICMP into a [`Decoded`]
//! view of one frame.
//!
//! `Decoded` holds addresses, ports, TCP fields and byte ranges into the frame,
//! so decoding never allocates. Every length field is checked against the
//! captured bytes before `pnet_packet` accessors are used, so malformed input
//! gives a [`DecodeError`], never a panic or an out-of-range read. Frames that
//! are not IP (ARP, LLDP, …) give [`DecodeError::NotIp`], which callers count
//! and skip.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

use pnet_packet::ethernet::EthernetPacket;
use pnet_packet::icmp::IcmpPacket;
use pnet_packet::icmpv6::Icmpv6Packet;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;
use pnet_packet::vlan::VlanPacket;

use crate::capture::LinkType;

/// IP protocol numbers the decoder looks into.
pub mod proto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
}

/// TCP header fields a detection engine and flow tracker need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flag bits (FIN 0x01 … CWR 0x80).
    pub flags: u8,
    /// Receive window (unscaled).
    pub window: u16,
}

impl TcpInfo {
    /// FIN flag.
    pub const FIN: u8 = 0x01;
    /// SYN flag.
    pub const SYN: u8 = 0x02;
    /// RST flag.
    pub const RST: u8 = 0x04;
    /// PSH flag.
    pub const PSH: u8 = 0x08;
    /// ACK flag.
    pub const ACK: u8 = 0x10;
    /// URG flag.
    pub const URG: u8 = 0x20;

    /// True when every bit of `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }
}

/// One decoded IP packet; ranges index into the frame bytes given to [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// 4 or 6.
    pub ip_version: u8,
    /// IP protocol number (after IPv6 extension headers).
    pub protocol: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port; the ICMP type for ICMP/ICMPv6; 0 for other protocols.
    pub src_port: u16,
    /// Destination port; the ICMP code for ICMP/ICMPv6; 0 for other protocols.
    pub dst_port: u16,
    /// The IP packet, clipped to the IP length (Ethernet padding excluded).
    pub l3: Range<usize>,
    /// Start of the transport header (after IPv6 extension headers).
    pub l4_offset: usize,
    /// Transport payload: after the TCP/UDP header, after the 8-byte ICMP
    /// header, or the raw fragment data for a non-first fragment.
    pub payload: Range<usize>,
    /// TCP fields, for TCP packets that carry a full header.
    pub tcp: Option<TcpInfo>,
    /// IPv4 MF set or offset non-zero, or an IPv6 fragment header present.
    /// Ports are 0 unless this is the first fragment.
    pub is_fragment: bool,
}

/// Protocol layer named in a [`DecodeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Ethernet header.
    Ethernet,
    /// 802.1Q / 802.1ad tag.
    Vlan,
    /// Linux cooked capture header.
    Sll,
    /// BSD loopback header.
    Loopback,
    /// IPv4 header.
    Ipv4,
    /// IPv6 header.
    Ipv6,
    /// IPv6 extension header.
    Ipv6Extension,
    /// TCP header.
    Tcp,
    /// UDP header.
    Udp,
    /// ICMP header.
    Icmp,
    /// ICMPv6 header.
    Icmpv6,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Ethernet => "ethernet",
            Layer::Vlan => "vlan",
            Layer::Sll => "linux sll",
            Layer::Loopback => "loopback",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Ipv6Extension => "ipv6 extension",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Icmp => "icmp",
            Layer::Icmpv6 => "icmpv6",
        })
    }
}

/// What a non-IP frame carries instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotIp {
    /// Ethernet or SLL protocol type (e.g. 0x0806 for ARP).
    Ethertype(u16),
    /// Loopback address family.
    AddressFamily(u32),
}

impl fmt::Display for NotIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotIp::Ethertype(t) => write!(f, "ethertype {t:#06x}"),
            NotIp::AddressFamily(af) => write!(f, "address family {af}"),
        }
    }
}

/// Why a frame could not be decoded. `Copy` and allocation-free: decode
/// errors are counted per packet on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is valid but not IP; count and skip it.
    #[error("not IP: {0}")]
    NotIp(NotIp),
    /// The link type has no decoder.
    #[error("unsupported link type {0}")]
    UnsupportedLinkType(u32),
    /// Fewer bytes than the header needs.
    #[error("truncated {layer} header: need {needed} bytes, have {have}")]
    Truncated {
        /// Layer being decoded.
        layer: Layer,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// A header length field below the protocol minimum.
    #[error("{layer} header length {len} < {min}")]
    HeaderTooShort {
        /// Layer being decoded.
        layer: Layer,
        /// Length the header claims, in bytes.
        len: usize,
        /// Protocol minimum.
        min: usize,
    },
    /// A length field claims more bytes than were captured.
    #[error("{layer} length {claimed} exceeds the {have} bytes captured")]
    LengthExceedsCapture {
        /// Layer being decoded.
        layer: Layer,
        /// Length the header claims.
        claimed: usize,
        /// Bytes available.
        have: usize,
    },
    /// IPv4 total length smaller than its own header.
    #[error("ipv4 total length {total} < header length {header}")]
    TotalLengthBelowHeader {
        /// Total length field.
        total: usize,
        /// Header length in bytes.
        header: usize,
    },
    /// The IP version nibble differs from what the link layer announced.
    #[error("bad ip version {found} (expected {expected})")]
    BadIpVersion {
        /// Version nibble found.
        found: u8,
        /// 4 or 6, from the ethertype or address family.
        expected: u8,
    },
    /// A raw IP frame whose version nibble is neither 4 nor 6.
    #[error("bad ip version {0} (neither 4 nor 6)")]
    UnknownIpVersion(u8),
    /// More stacked VLAN tags than we follow.
    #[error("more than {0} vlan tags")]
    TooManyVlanTags(usize),
    /// More IPv6 extension headers than we follow.
    #[error("more than {0} ipv6 extension headers")]
    TooManyExtensionHeaders(usize),
}

impl DecodeError {
    /// True for frames that are simply not IP (to be skipped, not reported).
    pub fn is_not_ip(&self) -> bool {
        matches!(self, DecodeError::NotIp(_))
    }
}

const MAX_VLAN_TAGS: usize = 3;
const MAX_EXT_HEADERS: usize = 8;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;

fn truncated(layer: Layer, needed: usize, have: usize) -> DecodeError {
    DecodeError::Truncated {
        layer,
        needed,
        have,
    }
}

/// Decodes one frame of the given link type.
///
/// ```
/// use sandgate_host::{capture::LinkType, decode::decode, synth::SynthCapture};
/// let mut cap = SynthCapture::new(0);
/// cap.udp_v4([10, 0, 0, 1], 5000, [10, 0, 0, 2], 53, b"query")?;
/// let frame = cap.frame(1).unwrap();
/// let d = decode(LinkType::ETHERNET, frame)?;
/// assert_eq!((d.src_port, d.dst_port), (5000, 53));
/// assert_eq!(&frame[d.payload], b"query");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode(linktype: LinkType, data: &[u8]) -> Result<Decoded, DecodeError> {
    let (offset, version) = match linktype {
        LinkType::ETHERNET => ethernet(data)?,
        LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 => (0, None),
        LinkType::LINUX_SLL => {
            // Parsed by hand: pnet 0.35's SLLPacket reads past an 8-byte
            // minimum and panics on short frames.
            let header = data
                .get(..16)
                .ok_or(truncated(Layer::Sll, 16, data.len()))?;
            let ethertype = u16::from_be_bytes([header[14], header[15]]);
            (16, Some(ethertype_version(ethertype)?))
        }
        LinkType::LINUX_SLL2 => {
            let header = data
                .get(..20)
                .ok_or(truncated(Layer::Sll, 20, data.len()))?;
            let ethertype = u16::from_be_bytes([header[0], header[1]]);
            (20, Some(ethertype_version(ethertype)?))
        }
        LinkType::NULL | LinkType::LOOP => {
            let header = data
                .get(..4)
                .ok_or(truncated(Layer::Loopback, 4, data.len()))?;
            let bytes = [header[0], header[1], header[2], header[3]];
            let be = u32::from_be_bytes(bytes);
            // NULL uses the capturing host's byte order: the family is small.
            let family = if linktype == LinkType::LOOP {
                be
            } else {
                be.min(u32::from_le_bytes(bytes))
            };
            let version = match family {
                2 => 4,
                10 | 24 | 28 | 30 => 6,
                other => return Err(DecodeError::NotIp(NotIp::AddressFamily(other))),
            };
            (4, Some(version))
        }
        LinkType(other) => return Err(DecodeError::UnsupportedLinkType(other)),
    };
    ip(data, offset, version)
}

fn ethertype_version(ethertype: u16) -> Result<u8, DecodeError> {
    match ethertype {
        ETHERTYPE_IPV4 => Ok(4),
        ETHERTYPE_IPV6 => Ok(6),
        other => Err(DecodeError::NotIp(NotIp::Ethertype(other))),
    }
}

/// Returns the offset of the IP header and the IP version the link promised.
fn ethernet(data: &[u8]) -> Result<(usize, Option<u8>), DecodeError> {
    let eth = EthernetPacket::new(data).ok_or(truncated(Layer::Ethernet, 14, data.len()))?;
    let mut ethertype = eth.get_ethertype().0;
    let mut offset = 14;
    let mut tags = 0;
    while matches!(ethertype, 0x8100 | 0x88A8 | 0x9100) {
        if tags == MAX_VLAN_TAGS {
            return Err(DecodeError::TooManyVlanTags(MAX_VLAN_TAGS));
        }
        let rest = data.get(offset..).unwrap_or_default();
        let vlan = VlanPacket::new(rest).ok_or(truncated(Layer::Vlan, 4, rest.len()))?;
        ethertype = vlan.get_ethertype().0;
        offset += 4;
        tags += 1;
    }
    Ok((offset, Some(ethertype_version(ethertype)?)))
}

/// Network layer and below, from `offset` in `data`.
fn ip(data: &[u8], offset: usize, expected: Option<u8>) -> Result<Decoded, DecodeError> {
    let bytes = data.get(offset..).unwrap_or_default();
    let first = *bytes.first().ok_or(match expected {
        Some(6) => truncated(Layer::Ipv6, 40, 0),
        _ => truncated(Layer::Ipv4, 20, 0),
    })?;
    let found = first >> 4;
    if let Some(expected) = expected {
        if found != expected {
            return Err(DecodeError::BadIpVersion { found, expected });
        }
    }
    match found {
        4 => ipv4(data, offset, bytes),
        6 => ipv6(data, offset, bytes),
        found => Err(DecodeError::UnknownIpVersion(found)),
    }
}

fn ipv4(data: &[u8], offset: usize, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let ip = Ipv4Packet::new(bytes).ok_or(truncated(Layer::Ipv4, 20, bytes.len()))?;
    let header = usize::from(ip.get_header_length()) * 4;
    if header < 20 {
        return Err(DecodeError::HeaderTooShort {
            layer: Layer::Ipv4,
            len: header,
            min: 20,
        });
    }
    let total = usize::from(ip.get_total_length());
    if total < header {
        return Err(DecodeError::TotalLengthBelowHeader { total, header });
    }
    if total > bytes.len() {
        return Err(DecodeError::LengthExceedsCapture {
            layer: Layer::Ipv4,
            claimed: total,
            have: bytes.len(),
        });
    }
    let more_fragments = ip.get_flags() & 0b001 != 0;
    let frag_offset = ip.get_fragment_offset();
    let mut d = Decoded {
        ip_version: 4,
        protocol: ip.get_next_level_protocol().0,
        src: IpAddr::V4(ip.get_source()),
        dst: IpAddr::V4(ip.get_destination()),
        src_port: 0,
        dst_port: 0,
        l3: offset..offset + total,
        l4_offset: offset + header,
        payload: offset + header..offset + total,
        tcp: None,
        is_fragment: more_fragments || frag_offset != 0,
    };
    transport(data, &mut d, frag_offset == 0)?;
    Ok(d)
}

fn ipv6(data: &[u8], offset: usize, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let ip = Ipv6Packet::new(bytes).ok_or(truncated(Layer::Ipv6, 40, bytes.len()))?;
    let total = 40 + usize::from(ip.get_payload_length());
    if total > bytes.len() {
        return Err(DecodeError::LengthExceedsCapture {
            layer: Layer::Ipv6,
            claimed: total,
            have: bytes.len(),
        });
    }
    let end = offset + total;
    let mut next = ip.get_next_header().0;
    let mut pos = offset + 40;
    let mut is_fragment = false;
    let mut first_fragment = true;
    let mut headers = 0;
    loop {
        let len = match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let [nh, len] = ext_bytes(data, pos, end)?;
                next = nh;
                (usize::from(len) + 1) * 8
            }
            // Authentication header: length in 4-byte units, minus 2.
            51 => {
                let [nh, len] = ext_bytes(data, pos, end)?;
                next = nh;
                (usize::from(len) + 2) * 4
            }
            // Fragment header: fixed 8 bytes.
            44 => {
                let [nh, _] = ext_bytes(data, pos, end)?;
                let field = data
                    .get(pos + 2..pos + 4)
                    .filter(|_| pos + 8 <= end)
                    .ok_or(truncated(Layer::Ipv6Extension, 8, end.saturating_sub(pos)))?;
                let field = u16::from_be_bytes([field[0], field[1]]);
                is_fragment = true;
                first_fragment = field >> 3 == 0;
                next = nh;
                8
            }
            _ => break,
        };
        if pos + len > end {
            return Err(truncated(Layer::Ipv6Extension, len, end - pos));
        }
        pos += len;
        headers += 1;
        if !first_fragment {
            // Later fragments carry no further headers we could parse.
            break;
        }
        if headers == MAX_EXT_HEADERS {
            return Err(DecodeError::TooManyExtensionHeaders(MAX_EXT_HEADERS));
        }
    }
    let mut d = Decoded {
        ip_version: 6,
        protocol: next,
        src: IpAddr::V6(ip.get_source()),
        dst: IpAddr::V6(ip.get_destination()),
        src_port: 0,
        dst_port: 0,
        l3: offset..end,
        l4_offset: pos,
        payload: pos..end,
        tcp: None,
        is_fragment,
    };
    transport(data, &mut d, first_fragment)?;
    Ok(d)
}

/// The next-header and length bytes of an extension header at `pos`.
fn ext_bytes(data: &[u8], pos: usize, end: usize) -> Result<[u8; 2], DecodeError> {
    match data.get(pos..pos + 2) {
        Some(b) if pos + 2 <= end => Ok([b[0], b[1]]),
        _ => Err(truncated(Layer::Ipv6Extension, 2, end.saturating_sub(pos))),
    }
}

/// Fills ports, TCP fields and the payload range. A fragment whose transport
/// header is incomplete keeps ports 0 and its raw data as payload.
fn transport(data: &[u8], d: &mut Decoded, first_fragment: bool) -> Result<(), DecodeError> {
    if d.is_fragment && !first_fragment {
        return Ok(());
    }
    let start = d.l4_offset;
    let end = d.l3.end;
    let seg = data.get(start..end).unwrap_or_default();
    let lenient = d.is_fragment;
    let result = match d.protocol {
        proto::TCP => tcp(seg, d, start),
        proto::UDP => udp(seg, d, start),
        proto::ICMP | proto::ICMPV6 => icmp(seg, d, start),
        _ => Ok(()),
    };
    match result {
        Err(_) if lenient => {
            d.src_port = 0;
            d.dst_port = 0;
            d.tcp = None;
            d.payload = start..end;
            Ok(())
        }
        other => other,
    }
}

fn tcp(seg: &[u8], d: &mut Decoded, start: usize) -> Result<(), DecodeError> {
    let t = TcpPacket::new(seg).ok_or(truncated(Layer::Tcp, 20, seg.len()))?;
    let header = usize::from(t.get_data_offset()) * 4;
    if header < 20 {
        return Err(DecodeError::HeaderTooShort {
            layer: Layer::Tcp,
            len: header,
            min: 20,
        });
    }
    if header > seg.len() {
        return Err(truncated(Layer::Tcp, header, seg.len()));
    }
    d.src_port = t.get_source();
    d.dst_port = t.get_destination();
    d.tcp = Some(TcpInfo {
        seq: t.get_sequence(),
        ack: t.get_acknowledgement(),
        flags: t.get_flags(),
        window: t.get_window(),
    });
    d.payload = start + header..start + seg.len();
    Ok(())
}

fn udp(seg: &[u8], d: &mut Decoded, start: usize) -> Result<(), DecodeError> {
    let u = UdpPacket::new(seg).ok_or(truncated(Layer::Udp, 8, seg.len()))?;
    d.src_port = u.get_source();
    d.dst_port = u.get_destination();
    // In a first fragment the UDP length covers the whole datagram.
    let len = if d.is_fragment {
        seg.len()
    } else {
        let len = usize::from(u.get_length());
        if len < 8 {
            return Err(DecodeError::HeaderTooShort {
                layer: Layer::Udp,
                len,
                min: 8,
            });
        }
        if len > seg.len() {
            return Err(DecodeError::LengthExceedsCapture {
                layer: Layer::Udp,
                claimed: len,
                have: seg.len(),
            });
        }
        len
    };
    d.payload = start + 8..start + len;
    Ok(())
}

fn icmp(seg: &[u8], d: &mut Decoded, start: usize) -> Result<(), DecodeError> {
    // Type, code, checksum and the 4-byte rest-of-header, as Suricata.
    let (layer, icmp_type, code) = if d.protocol == proto::ICMP {
        let p = IcmpPacket::new(seg).ok_or(truncated(Layer::Icmp, 8, seg.len()))?;
        (Layer::Icmp, p.get_icmp_type().0, p.get_icmp_code().0)
    } else {
        let p = Icmpv6Packet::new(seg).ok_or(truncated(Layer::Icmpv6, 8, seg.len()))?;
        (Layer::Icmpv6, p.get_icmpv6_type().0, p.get_icmpv6_code().0)
    };
    if seg.len() < 8 {
        return Err(truncated(layer, 8, seg.len()));
    }
    d.src_port = u16::from(icmp_type);
    d.dst_port = u16::from(code);
    d.payload = start + 8..start + seg.len();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{self, IpPair, SynthCapture, TcpHeader};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A4: [u8; 4] = [10, 0, 0, 1];
    const B4: [u8; 4] = [10, 0, 0, 2];

    fn a6() -> Ipv6Addr {
        "2001:db8::1".parse().unwrap()
    }
    fn b6() -> Ipv6Addr {
        "2001:db8::2".parse().unwrap()
    }

    fn tcp_v4(payload: &[u8]) -> Vec<u8> {
        let hdr = TcpHeader {
            src_port: 40000,
            dst_port: 80,
            seq: 100,
            ack: 200,
            flags: TcpInfo::PSH | TcpInfo::ACK,
            window: 512,
        };
        synth::tcp_frame(IpPair::V4(A4.into(), B4.into()), &hdr, payload).unwrap()
    }

    struct Case {
        name: &'static str,
        frame: Vec<u8>,
        version: u8,
        protocol: u8,
        ports: (u16, u16),
        payload: &'static [u8],
    }

    fn cases() -> Vec<Case> {
        let v4 = IpPair::V4(A4.into(), B4.into());
        let v6 = IpPair::V6(a6(), b6());
        let tcp6 = synth::tcp_frame(
            v6,
            &TcpHeader {
                src_port: 50000,
                dst_port: 8080,
                flags: TcpInfo::ACK,
                ..TcpHeader::default()
            },
            b"X-Sandgate-Test: ipv6",
        )
        .unwrap();
        vec![
            Case {
                name: "tcp over ipv4",
                frame: tcp_v4(b"GET /"),
                version: 4,
                protocol: proto::TCP,
                ports: (40000, 80),
                payload: b"GET /",
            },
            Case {
                name: "udp over ipv4",
                frame: synth::udp_frame(v4, 5353, 53, b"dns").unwrap(),
                version: 4,
                protocol: proto::UDP,
                ports: (5353, 53),
                payload: b"dns",
            },
            Case {
                name: "icmp echo request",
                frame: synth::icmp_frame(v4, 8, 0, [0, 1, 0, 2], b"PING-TUNNEL").unwrap(),
                version: 4,
                protocol: proto::ICMP,
                ports: (8, 0),
                payload: b"PING-TUNNEL",
            },
            Case {
                name: "tcp over ipv6",
                frame: tcp6.clone(),
                version: 6,
                protocol: proto::TCP,
                ports: (50000, 8080),
                payload: b"X-Sandgate-Test: ipv6",
            },
            Case {
                name: "udp over ipv6",
                frame: synth::udp_frame(v6, 1000, 2000, b"six").unwrap(),
                version: 6,
                protocol: proto::UDP,
                ports: (1000, 2000),
                payload: b"six",
            },
            Case {
                name: "icmpv6 echo reply",
                frame: synth::icmp_frame(v6, 129, 0, [0; 4], b"pong").unwrap(),
                version: 6,
                protocol: proto::ICMPV6,
                ports: (129, 0),
                payload: b"pong",
            },
            Case {
                name: "vlan tagged tcp",
                frame: synth::with_vlan(&tcp_v4(b"tagged"), 100),
                version: 4,
                protocol: proto::TCP,
                ports: (40000, 80),
                payload: b"tagged",
            },
            Case {
                name: "q-in-q tagged ipv6",
                frame: synth::with_vlan(&synth::with_vlan(&tcp6, 7), 8),
                version: 6,
                protocol: proto::TCP,
                ports: (50000, 8080),
                payload: b"X-Sandgate-Test: ipv6",
            },
            Case {
                name: "ipv6 with hop-by-hop and destination options",
                frame: insert_ipv6_ext(&insert_ipv6_ext(&tcp6, 60, PADN), 0, PADN),
                version: 6,
                protocol: proto::TCP,
                ports: (50000, 8080),
                payload: b"X-Sandgate-Test: ipv6",
            },
        ]
    }

    /// PadN option filling an 8-byte hop-by-hop or destination options header.
    const PADN: [u8; 7] = [0, 1, 4, 0, 0, 0, 0];
    /// Fragment header body: offset 0, more fragments, id 1.
    const FIRST_FRAGMENT: [u8; 7] = [0, 0, 1, 0, 0, 0, 1];

    /// Inserts an 8-byte extension header of type `ext` (body after the
    /// next-header byte: `rest`) right after the IPv6 header of an Ethernet frame.
    fn insert_ipv6_ext(frame: &[u8], ext: u8, rest: [u8; 7]) -> Vec<u8> {
        let mut out = frame[..54].to_vec();
        let next = out[14 + 6];
        out[14 + 6] = ext;
        let plen = u16::from_be_bytes([out[18], out[19]]) + 8;
        out[18..20].copy_from_slice(&plen.to_be_bytes());
        out.push(next);
        out.extend_from_slice(&rest);
        out.extend_from_slice(&frame[54..]);
        out
    }

    #[test]
    fn decodes_each_protocol() {
        for c in cases() {
            let d =
                decode(LinkType::ETHERNET, &c.frame).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert_eq!(d.ip_version, c.version, "{}", c.name);
            assert_eq!(d.protocol, c.protocol, "{}", c.name);
            assert_eq!((d.src_port, d.dst_port), c.ports, "{}", c.name);
            assert_eq!(&c.frame[d.payload.clone()], c.payload, "{}", c.name);
            assert_eq!(d.l3.end, c.frame.len(), "{}", c.name);
            assert!(!d.is_fragment, "{}", c.name);
            assert_eq!(d.tcp.is_some(), c.protocol == proto::TCP, "{}", c.name);
        }
    }

    #[test]
    fn tcp_fields_and_addresses() {
        let f = tcp_v4(b"x");
        let d = decode(LinkType::ETHERNET, &f).unwrap();
        assert_eq!(d.src, IpAddr::V4(Ipv4Addr::from(A4)));
        assert_eq!(d.dst, IpAddr::V4(Ipv4Addr::from(B4)));
        let t = d.tcp.unwrap();
        assert_eq!((t.seq, t.ack, t.window), (100, 200, 512));
        assert!(t.has(TcpInfo::PSH | TcpInfo::ACK) && !t.has(TcpInfo::SYN));
        assert_eq!(d.l3, 14..f.len());
        assert_eq!(d.l4_offset, 34);
    }

    #[test]
    fn ethernet_padding_is_excluded() {
        let mut f = tcp_v4(b"");
        let ip_end = f.len();
        f.resize(60, 0);
        let d = decode(LinkType::ETHERNET, &f).unwrap();
        assert_eq!(d.l3.end, ip_end);
        assert!(d.payload.is_empty());
    }

    #[test]
    fn other_link_types() {
        let eth = tcp_v4(b"abc");
        let ip = &eth[14..];
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(ip);
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ];
        sll2.extend_from_slice(ip);
        let mut null_le = 2u32.to_le_bytes().to_vec();
        null_le.extend_from_slice(ip);
        let mut null_be = 2u32.to_be_bytes().to_vec();
        null_be.extend_from_slice(ip);
        let mut loop_v4 = 2u32.to_be_bytes().to_vec();
        loop_v4.extend_from_slice(ip);
        for (lt, frame) in [
            (LinkType::RAW, ip.to_vec()),
            (LinkType::RAW_12, ip.to_vec()),
            (LinkType::RAW_14, ip.to_vec()),
            (LinkType::LINUX_SLL, sll),
            (LinkType::LINUX_SLL2, sll2),
            (LinkType::NULL, null_le),
            (LinkType::NULL, null_be),
            (LinkType::LOOP, loop_v4),
        ] {
            let d = decode(lt, &frame).unwrap_or_else(|e| panic!("{lt}: {e}"));
            assert_eq!(&frame[d.payload], b"abc", "linktype {lt}");
        }
        let v6 = synth::udp_frame(IpPair::V6(a6(), b6()), 1, 2, b"q").unwrap();
        for af in [10u32, 24, 28, 30] {
            let mut f = af.to_le_bytes().to_vec();
            f.extend_from_slice(&v6[14..]);
            assert_eq!(decode(LinkType::NULL, &f).unwrap().ip_version, 6, "af {af}");
        }
    }

    #[test]
    fn errors_say_what_was_wrong() {
        let mut arp = tcp_v4(b"");
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let mut short_ihl = tcp_v4(b"");
        short_ihl[14] = 0x41;
        let mut bad_doff = tcp_v4(b"");
        bad_doff[14 + 20 + 12] = 0x30;
        let mut long_total = tcp_v4(b"");
        long_total[16..18].copy_from_slice(&1500u16.to_be_bytes());
        let mut v6_in_v4 = tcp_v4(b"");
        v6_in_v4[14] = 0x65;
        let mut udp_len = synth::udp_frame(IpPair::V4(A4.into(), B4.into()), 1, 2, b"x").unwrap();
        udp_len[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&3u16.to_be_bytes());
        let table: Vec<(LinkType, Vec<u8>, &str)> = vec![
            (LinkType::ETHERNET, arp.clone(), "not IP: ethertype 0x0806"),
            (LinkType::ETHERNET, short_ihl, "ipv4 header length 4 < 20"),
            (LinkType::ETHERNET, bad_doff, "tcp header length 12 < 20"),
            (
                LinkType::ETHERNET,
                long_total,
                "ipv4 length 1500 exceeds the 40 bytes captured",
            ),
            (
                LinkType::ETHERNET,
                v6_in_v4,
                "bad ip version 6 (expected 4)",
            ),
            (LinkType::ETHERNET, udp_len, "udp header length 3 < 8"),
            (
                LinkType::ETHERNET,
                vec![0; 10],
                "truncated ethernet header: need 14 bytes, have 10",
            ),
            (LinkType(147), vec![0; 40], "unsupported link type 147"),
            (
                LinkType::NULL,
                vec![7, 0, 0, 0, 0x45],
                "not IP: address family 7",
            ),
            (
                LinkType::RAW,
                vec![0x15; 30],
                "bad ip version 1 (neither 4 nor 6)",
            ),
        ];
        for (lt, frame, want) in table {
            let err = decode(lt, &frame).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
        assert!(decode(LinkType::ETHERNET, &arp).unwrap_err().is_not_ip());
    }

    #[test]
    fn ipv4_fragments() {
        let frame =
            synth::udp_frame(IpPair::V4(A4.into(), B4.into()), 1234, 53, b"0123456789").unwrap();
        // First fragment: MF set, offset 0 — ports known, payload to IP end.
        let mut first = frame.clone();
        first[20] = 0x20;
        let d = decode(LinkType::ETHERNET, &first).unwrap();
        assert!(d.is_fragment);
        assert_eq!((d.src_port, d.dst_port), (1234, 53));
        // Later fragment: offset 1 (8 bytes) — raw data, no ports.
        let mut later = frame.clone();
        later[20..22].copy_from_slice(&1u16.to_be_bytes());
        let d = decode(LinkType::ETHERNET, &later).unwrap();
        assert!(d.is_fragment);
        assert_eq!((d.src_port, d.dst_port), (0, 0));
        assert_eq!(d.payload, 34..frame.len());
        // A first fragment too short for its TCP header is kept as raw data.
        let mut tiny = tcp_v4(b"");
        tiny.truncate(14 + 20 + 8);
        tiny[16..18].copy_from_slice(&28u16.to_be_bytes());
        tiny[20] = 0x20;
        let d = decode(LinkType::ETHERNET, &tiny).unwrap();
        assert!(d.is_fragment && d.tcp.is_none());
        assert_eq!(d.payload, 34..42);
    }

    #[test]
    fn ipv6_fragment_header() {
        let v6 = synth::udp_frame(IpPair::V6(a6(), b6()), 7, 9, b"payload!").unwrap();
        let first = insert_ipv6_ext(&v6, 44, FIRST_FRAGMENT);
        let d = decode(LinkType::ETHERNET, &first).unwrap();
        assert!(d.is_fragment);
        assert_eq!((d.protocol, d.src_port, d.dst_port), (proto::UDP, 7, 9));
        let mut later = first.clone();
        later[54 + 2..54 + 4].copy_from_slice(&(2u16 << 3).to_be_bytes());
        let d = decode(LinkType::ETHERNET, &later).unwrap();
        assert!(d.is_fragment);
        assert_eq!((d.protocol, d.src_port), (proto::UDP, 0));
        assert_eq!(d.payload, 62..later.len());
    }

    /// A small deterministic generator (xorshift) for byte flips.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn check_ranges(frame: &[u8], d: &Decoded) {
        assert!(d.l3.start <= d.l3.end && d.l3.end <= frame.len());
        assert!(d.l4_offset >= d.l3.start && d.l4_offset <= d.l3.end);
        assert!(d.payload.start >= d.l4_offset && d.payload.start <= d.payload.end);
        assert!(d.payload.end <= d.l3.end);
    }

    #[test]
    fn every_prefix_and_random_flips_never_panic() {
        let link_types = [
            LinkType::ETHERNET,
            LinkType::RAW,
            LinkType::LINUX_SLL,
            LinkType::LINUX_SLL2,
            LinkType::NULL,
        ];
        let mut rng = XorShift(0x5eed_1234_abcd_ef01);
        let mut frames: Vec<Vec<u8>> = cases().into_iter().map(|c| c.frame).collect();
        frames.push(insert_ipv6_ext(&cases()[3].frame, 44, FIRST_FRAGMENT));
        for frame in &frames {
            for lt in link_types {
                for len in 0..=frame.len() {
                    if let Ok(d) = decode(lt, &frame[..len]) {
                        check_ranges(&frame[..len], &d);
                    }
                }
                for _ in 0..2000 {
                    let mut f = frame.clone();
                    for _ in 0..1 + rng.next() % 4 {
                        let at = (rng.next() as usize) % f.len();
                        f[at] = rng.next() as u8;
                    }
                    let cut = (rng.next() as usize) % (f.len() + 1);
                    let f = if rng.next().is_multiple_of(4) {
                        &f[..cut]
                    } else {
                        &f[..]
                    };
                    if let Ok(d) = decode(lt, f) {
                        check_ranges(f, &d);
                    }
                }
            }
        }
    }

    #[test]
    fn synth_session_decodes_with_handshake_flags() {
        let mut cap = SynthCapture::new(0);
        let mut s = cap.tcp_v4(A4, 1, B4, 2);
        s.handshake();
        let flags: Vec<u8> = cap
            .frames()
            .iter()
            .map(|(_, f)| decode(LinkType::ETHERNET, f).unwrap().tcp.unwrap().flags)
            .collect();
        assert_eq!(
            flags,
            [TcpInfo::SYN, TcpInfo::SYN | TcpInfo::ACK, TcpInfo::ACK]
        );
    }
}
