//! Packet decoding: link layer, encapsulations, IPv4/IPv6 and TCP/UDP/ICMP
//! into a [`Decoded`] view of one frame.
//!
//! `Decoded` holds addresses, ports, TCP fields and byte ranges into the frame,
//! so decoding never allocates. Every length field is checked against the
//! captured bytes before `pnet_packet` accessors are used, so malformed input
//! gives a [`DecodeError`], never a panic or an out-of-range read. Frames that
//! are not IP (ARP, LLDP, …) give [`DecodeError::NotIp`], which callers count
//! and skip.
//!
//! Encapsulations are peeled off until the innermost IP packet, and the
//! ranges in `Decoded` point at that packet (what rules match):
//!
//! - link types Ethernet (802.1Q/802.1ad tags), raw IP (101, 12, 14, and 228
//!   IPv4 / 229 IPv6), PPP (9, 50), Linux SLL/SLL2, BSD NULL/LOOP;
//! - PPPoE session (ethertype 0x8864) and PPP (address/control optional,
//!   protocol field compressed or not);
//! - NSH (ethertype 0x894F, RFC 8300; MD type 1 and 2; next protocol IPv4,
//!   IPv6 or Ethernet);
//! - GRE (IP protocol 47; version 0 with checksum/key/sequence/routing,
//!   version 1 as PPTP uses it) carrying IPv4, IPv6, PPP (0x880B), VLAN or
//!   transparent Ethernet bridging (0x6558);
//! - IPv4-in-IP / IPv6-in-IP (protocols 4 and 41).
//!
//! A tunnel is not entered when its outer packet is a fragment: the
//! reassembled datagram ([`crate::defrag`]) is decoded again. When a
//! tunnel's inner packet cannot be decoded (not IP, or malformed), the outer
//! packet is returned as it is, so it is still inspected. The walk is
//! bounded by [`MAX_LAYERS`] headers.

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
    /// IPv4 encapsulated in IP.
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulated in IP.
    pub const IPV6_ENCAP: u8 = 41;
    /// IPv6 fragment extension header.
    pub const IPV6_FRAGMENT: u8 = 44;
    /// Generic Routing Encapsulation.
    pub const GRE: u8 = 47;
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

/// Where a fragment sits in its datagram, for [`crate::defrag`]. Offsets
/// are absolute, into the frame given to [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Identification: 16 bits for IPv4, 32 for IPv6.
    pub id: u32,
    /// Offset of this fragment's data in the datagram's payload, in bytes.
    pub offset: u32,
    /// More fragments follow (MF / M flag).
    pub more: bool,
    /// Protocol of the reassembled payload (IPv4 protocol; for IPv6 the
    /// fragment header's next header).
    pub protocol: u8,
    /// End of the header bytes a reassembled packet keeps: the IPv4 header
    /// with options, or the IPv6 header and extension headers before the
    /// fragment header.
    pub header_end: usize,
    /// Start of this fragment's data (after the IPv4 header or the IPv6
    /// fragment header).
    pub data_start: usize,
    /// The byte holding the next-header value 44 that names the IPv6
    /// fragment header (the IPv4 protocol byte for IPv4).
    pub next_header_field: usize,
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
    /// For a tunnelled packet, the innermost IP packet.
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
    /// Fragment position, when `is_fragment`.
    pub fragment: Option<FragmentInfo>,
    /// Tunnel layers (GRE, IP-in-IP) peeled off to reach `l3`.
    pub tunnels: u8,
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
    /// PPP header.
    Ppp,
    /// PPPoE session header.
    Pppoe,
    /// Network Service Header.
    Nsh,
    /// GRE header.
    Gre,
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
            Layer::Ppp => "ppp",
            Layer::Pppoe => "pppoe",
            Layer::Nsh => "nsh",
            Layer::Gre => "gre",
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
    /// Ethernet, SLL, GRE or VLAN protocol type (e.g. 0x0806 for ARP).
    Ethertype(u16),
    /// Loopback address family.
    AddressFamily(u32),
    /// PPP protocol (e.g. 0xc021 for LCP).
    PppProtocol(u16),
    /// NSH next protocol (e.g. 5 for MPLS).
    NshProtocol(u8),
}

impl fmt::Display for NotIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotIp::Ethertype(t) => write!(f, "ethertype {t:#06x}"),
            NotIp::AddressFamily(af) => write!(f, "address family {af}"),
            NotIp::PppProtocol(p) => write!(f, "ppp protocol {p:#06x}"),
            NotIp::NshProtocol(p) => write!(f, "nsh next protocol {p}"),
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
    /// A header field with a value the protocol does not allow (or we do
    /// not decode), e.g. an NSH version other than 0.
    #[error("bad {layer} header: {what}")]
    Malformed {
        /// Layer being decoded.
        layer: Layer,
        /// What is wrong.
        what: &'static str,
    },
    /// More stacked VLAN tags than we follow.
    #[error("more than {0} vlan tags")]
    TooManyVlanTags(usize),
    /// More IPv6 extension headers than we follow.
    #[error("more than {0} ipv6 extension headers")]
    TooManyExtensionHeaders(usize),
    /// More nested headers (link, encapsulation, tunnel) than we follow.
    #[error("more than {0} nested headers")]
    TooManyLayers(usize),
}

impl DecodeError {
    /// True for frames that are simply not IP (to be skipped, not reported).
    pub fn is_not_ip(&self) -> bool {
        matches!(self, DecodeError::NotIp(_))
    }
}

/// Headers (link, VLAN, PPP, NSH, GRE, IP) followed in one frame.
pub const MAX_LAYERS: usize = 16;
const MAX_VLAN_TAGS: usize = 3;
const MAX_EXT_HEADERS: usize = 8;
const MAX_GRE_SRES: usize = 8;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_NSH: u16 = 0x894F;
/// GRE protocol type for transparent Ethernet bridging.
const ETHERTYPE_TEB: u16 = 0x6558;
/// PPP, as GRE (PPTP) and Ethernet name it.
const ETHERTYPE_PPP: u16 = 0x880B;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

fn truncated(layer: Layer, needed: usize, have: usize) -> DecodeError {
    DecodeError::Truncated {
        layer,
        needed,
        have,
    }
}

fn malformed(layer: Layer, what: &'static str) -> DecodeError {
    DecodeError::Malformed { layer, what }
}

/// The next header to decode and where it starts in the frame.
#[derive(Debug, Clone, Copy)]
enum Next {
    Ethernet(usize),
    /// A protocol named by an ethertype (Ethernet, SLL, VLAN, GRE).
    Ethertype(u16, usize),
    Ppp(usize),
    /// An IP header, with the version the layer below announced.
    Ip(usize, Option<u8>),
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
    let first = match linktype {
        LinkType::ETHERNET => Next::Ethernet(0),
        LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 => Next::Ip(0, None),
        LinkType::IPV4 => Next::Ip(0, Some(4)),
        LinkType::IPV6 => Next::Ip(0, Some(6)),
        LinkType::PPP | LinkType::PPP_HDLC => Next::Ppp(0),
        LinkType::LINUX_SLL => {
            // Parsed by hand: pnet 0.35's SLLPacket reads past an 8-byte
            // minimum and panics on short frames.
            let header = data
                .get(..16)
                .ok_or(truncated(Layer::Sll, 16, data.len()))?;
            Next::Ethertype(u16::from_be_bytes([header[14], header[15]]), 16)
        }
        LinkType::LINUX_SLL2 => {
            let header = data
                .get(..20)
                .ok_or(truncated(Layer::Sll, 20, data.len()))?;
            Next::Ethertype(u16::from_be_bytes([header[0], header[1]]), 20)
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
            Next::Ip(4, Some(version))
        }
        LinkType(other) => return Err(DecodeError::UnsupportedLinkType(other)),
    };
    layers(data, first)
}

/// Follows headers from `next` to the innermost IP packet.
fn layers(data: &[u8], mut next: Next) -> Result<Decoded, DecodeError> {
    // Bytes the current layer may use: a tunnel's inner packet ends where
    // its outer IP packet ends, not at the end of the frame.
    let mut frame = data;
    let mut vlan_tags = 0;
    // The innermost IP packet decoded so far, when `next` is in a tunnel.
    let mut outer: Option<Decoded> = None;
    for _ in 0..MAX_LAYERS {
        let step = match next {
            Next::Ethernet(at) => {
                vlan_tags = 0;
                ethernet(frame, at)
            }
            Next::Ethertype(t, at) => ethertype(frame, t, at, &mut vlan_tags),
            Next::Ppp(at) => ppp(frame, at),
            Next::Ip(at, version) => {
                let mut d = match ip(frame, at, version) {
                    Ok(d) => d,
                    Err(e) => return outer.ok_or(e),
                };
                if let Some(o) = &outer {
                    d.tunnels = o.tunnels.saturating_add(1);
                }
                frame = data.get(..d.l3.end).unwrap_or(frame);
                match tunnel(frame, &d) {
                    Some(Ok(n)) => {
                        outer = Some(d);
                        Ok(n)
                    }
                    Some(Err(_)) | None => return Ok(d),
                }
            }
        };
        match step {
            Ok(n) => next = n,
            Err(e) => return outer.ok_or(e),
        }
    }
    outer.ok_or(DecodeError::TooManyLayers(MAX_LAYERS))
}

/// An Ethernet header at `at`; VLAN tags are followed as ethertypes.
fn ethernet(data: &[u8], at: usize) -> Result<Next, DecodeError> {
    let rest = data.get(at..).unwrap_or_default();
    let eth = EthernetPacket::new(rest).ok_or(truncated(Layer::Ethernet, 14, rest.len()))?;
    Ok(Next::Ethertype(eth.get_ethertype().0, at + 14))
}

/// The protocol an ethertype names, starting at `at`.
fn ethertype(data: &[u8], t: u16, at: usize, tags: &mut usize) -> Result<Next, DecodeError> {
    match t {
        ETHERTYPE_IPV4 => Ok(Next::Ip(at, Some(4))),
        ETHERTYPE_IPV6 => Ok(Next::Ip(at, Some(6))),
        0x8100 | 0x88A8 | 0x9100 => {
            if *tags == MAX_VLAN_TAGS {
                return Err(DecodeError::TooManyVlanTags(MAX_VLAN_TAGS));
            }
            let rest = data.get(at..).unwrap_or_default();
            let vlan = VlanPacket::new(rest).ok_or(truncated(Layer::Vlan, 4, rest.len()))?;
            *tags += 1;
            Ok(Next::Ethertype(vlan.get_ethertype().0, at + 4))
        }
        ETHERTYPE_PPPOE_SESSION => pppoe(data, at),
        ETHERTYPE_NSH => nsh(data, at),
        ETHERTYPE_TEB => Ok(Next::Ethernet(at)),
        ETHERTYPE_PPP => Ok(Next::Ppp(at)),
        other => Err(DecodeError::NotIp(NotIp::Ethertype(other))),
    }
}

/// A PPP header: `ff 03` address/control when present, then the protocol,
/// one byte when compressed (odd first byte, RFC 1661 §6.5), else two.
fn ppp(data: &[u8], at: usize) -> Result<Next, DecodeError> {
    let b = data.get(at..).unwrap_or_default();
    let mut i = 0;
    if b.first() == Some(&0xff) && b.get(1) == Some(&0x03) {
        i = 2;
    }
    let first = *b.get(i).ok_or(truncated(Layer::Ppp, i + 1, b.len()))?;
    let (protocol, len) = if first & 1 == 1 {
        (u16::from(first), 1)
    } else {
        let second = *b.get(i + 1).ok_or(truncated(Layer::Ppp, i + 2, b.len()))?;
        (u16::from_be_bytes([first, second]), 2)
    };
    let at = at + i + len;
    match protocol {
        PPP_IPV4 => Ok(Next::Ip(at, Some(4))),
        PPP_IPV6 => Ok(Next::Ip(at, Some(6))),
        other => Err(DecodeError::NotIp(NotIp::PppProtocol(other))),
    }
}

/// A PPPoE session header (RFC 2516): version/type 0x11, code 0, session
/// id, length; then the PPP protocol.
fn pppoe(data: &[u8], at: usize) -> Result<Next, DecodeError> {
    let rest = data.get(at..).unwrap_or_default();
    let h = rest
        .get(..6)
        .ok_or(truncated(Layer::Pppoe, 6, rest.len()))?;
    if h[0] != 0x11 {
        return Err(malformed(Layer::Pppoe, "version/type is not 1/1"));
    }
    if h[1] != 0 {
        return Err(malformed(Layer::Pppoe, "code is not 0 (session data)"));
    }
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if 6 + len > rest.len() {
        return Err(DecodeError::LengthExceedsCapture {
            layer: Layer::Pppoe,
            claimed: 6 + len,
            have: rest.len(),
        });
    }
    ppp(data, at + 6)
}

/// A Network Service Header (RFC 8300): version 0, length in 4-byte words
/// (6 for MD type 1, at least 2 for MD type 2), next protocol.
fn nsh(data: &[u8], at: usize) -> Result<Next, DecodeError> {
    let rest = data.get(at..).unwrap_or_default();
    let h = rest.get(..8).ok_or(truncated(Layer::Nsh, 8, rest.len()))?;
    if h[0] >> 6 != 0 {
        return Err(malformed(Layer::Nsh, "version is not 0"));
    }
    let words = usize::from(h[1] & 0x3f);
    match h[2] & 0x0f {
        1 if words != 6 => return Err(malformed(Layer::Nsh, "MD type 1 length is not 6 words")),
        2 if words < 2 => {
            return Err(DecodeError::HeaderTooShort {
                layer: Layer::Nsh,
                len: words * 4,
                min: 8,
            })
        }
        1 | 2 => {}
        _ => return Err(malformed(Layer::Nsh, "MD type is not 1 or 2")),
    }
    let len = words * 4;
    if len > rest.len() {
        return Err(truncated(Layer::Nsh, len, rest.len()));
    }
    match h[3] {
        1 => Ok(Next::Ip(at + len, Some(4))),
        2 => Ok(Next::Ip(at + len, Some(6))),
        3 => Ok(Next::Ethernet(at + len)),
        other => Err(DecodeError::NotIp(NotIp::NshProtocol(other))),
    }
}

/// The inner packet of a tunnel `d` carries, if it is one: `None` for
/// plain packets and fragments, `Some(Err)` for a bad GRE header.
fn tunnel(frame: &[u8], d: &Decoded) -> Option<Result<Next, DecodeError>> {
    if d.is_fragment {
        return None;
    }
    match d.protocol {
        proto::IPIP => Some(Ok(Next::Ip(d.l4_offset, Some(4)))),
        proto::IPV6_ENCAP => Some(Ok(Next::Ip(d.l4_offset, Some(6)))),
        proto::GRE => Some(gre(frame, d.l4_offset)),
        _ => None,
    }
}

/// A GRE header (RFC 2784/2890, RFC 1701 routing; version 1 as PPTP, RFC
/// 2637): its length from the flag bits, then the protocol type.
fn gre(data: &[u8], at: usize) -> Result<Next, DecodeError> {
    let rest = data.get(at..).unwrap_or_default();
    let h = rest.get(..4).ok_or(truncated(Layer::Gre, 4, rest.len()))?;
    let (flags, version) = (h[0], h[1] & 0x07);
    let protocol = u16::from_be_bytes([h[2], h[3]]);
    let (checksum, routing, key, seq) = (
        flags & 0x80 != 0,
        flags & 0x40 != 0,
        flags & 0x20 != 0,
        flags & 0x10 != 0,
    );
    let mut len = 4;
    match version {
        0 => {
            if checksum || routing {
                len += 4;
            }
            if key {
                len += 4;
            }
            if seq {
                len += 4;
            }
            if routing {
                len = gre_routing(rest, len)?;
            }
        }
        1 => {
            if checksum || routing || !key || protocol != ETHERTYPE_PPP {
                return Err(malformed(Layer::Gre, "version 1 is not PPTP's"));
            }
            len += 4;
            if seq {
                len += 4;
            }
            if h[1] & 0x80 != 0 {
                len += 4;
            }
        }
        _ => return Err(malformed(Layer::Gre, "version is not 0 or 1")),
    }
    if len > rest.len() {
        return Err(truncated(Layer::Gre, len, rest.len()));
    }
    Ok(Next::Ethertype(protocol, at + len))
}

/// Skips RFC 1701 source route entries from `at` up to and including the
/// NULL entry; returns the GRE header length.
fn gre_routing(gre: &[u8], mut at: usize) -> Result<usize, DecodeError> {
    for _ in 0..MAX_GRE_SRES {
        let sre = gre
            .get(at..at + 4)
            .ok_or(truncated(Layer::Gre, at + 4, gre.len()))?;
        let family = u16::from_be_bytes([sre[0], sre[1]]);
        let len = usize::from(sre[3]);
        at += 4 + len;
        if family == 0 && len == 0 {
            return Ok(at);
        }
    }
    Err(malformed(Layer::Gre, "too many source route entries"))
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
    let is_fragment = more_fragments || frag_offset != 0;
    let protocol = ip.get_next_level_protocol().0;
    let mut d = Decoded {
        ip_version: 4,
        protocol,
        src: IpAddr::V4(ip.get_source()),
        dst: IpAddr::V4(ip.get_destination()),
        src_port: 0,
        dst_port: 0,
        l3: offset..offset + total,
        l4_offset: offset + header,
        payload: offset + header..offset + total,
        tcp: None,
        is_fragment,
        fragment: is_fragment.then_some(FragmentInfo {
            id: u32::from(ip.get_identification()),
            offset: u32::from(frag_offset) * 8,
            more: more_fragments,
            protocol,
            header_end: offset + header,
            data_start: offset + header,
            next_header_field: offset + 9,
        }),
        tunnels: 0,
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
    // The byte holding `next`: in the IPv6 header, then in each extension.
    let mut next_field = offset + 6;
    let mut fragment = None;
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
            proto::IPV6_FRAGMENT => {
                let [nh, _] = ext_bytes(data, pos, end)?;
                let field = data
                    .get(pos + 2..pos + 8)
                    .filter(|_| pos + 8 <= end)
                    .ok_or(truncated(Layer::Ipv6Extension, 8, end.saturating_sub(pos)))?;
                let off_flags = u16::from_be_bytes([field[0], field[1]]);
                let id = u32::from_be_bytes([field[2], field[3], field[4], field[5]]);
                if fragment.is_none() {
                    fragment = Some(FragmentInfo {
                        id,
                        offset: u32::from(off_flags >> 3) * 8,
                        more: off_flags & 1 != 0,
                        protocol: nh,
                        header_end: pos,
                        data_start: pos + 8,
                        next_header_field: next_field,
                    });
                }
                first_fragment = off_flags >> 3 == 0;
                next = nh;
                8
            }
            _ => break,
        };
        if pos + len > end {
            return Err(truncated(Layer::Ipv6Extension, len, end - pos));
        }
        next_field = pos;
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
        is_fragment: fragment.is_some(),
        fragment,
        tunnels: 0,
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
