//! Answers to a packet a `reject` rule dropped, built with pnet_packet:
//! for TCP a reset to each end (so neither waits for a timeout), for UDP
//! and other protocols an ICMP / ICMPv6 port-unreachable to the sender.
//!
//! Only plain Ethernet + IP frames are answered (no VLAN tag, no tunnel):
//! an answer must carry exactly the addressing the ends expect, and those
//! layers are not rebuilt here. A TCP reset and an ICMP error are never
//! answered (RFC 1122 / RFC 1812), nor is a non-first fragment.

use std::net::IpAddr;

use pnet_packet::icmp::{self, IcmpPacket, IcmpTypes, MutableIcmpPacket};
use pnet_packet::icmpv6::{self, Icmpv6Packet, Icmpv6Types, MutableIcmpv6Packet};
use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv4::{self, Ipv4Packet, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::{self, MutableTcpPacket, TcpPacket};

use crate::decode::{proto, Decoded, TcpInfo};

const ETH_HEADER: usize = 14;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const TCP_HEADER: usize = 20;
const ICMP_HEADER: usize = 8;
/// ICMPv6 errors carry as much of the offending packet as fits in the
/// IPv6 minimum MTU (RFC 4443 §2.4).
const ICMPV6_QUOTE: usize = 1280 - IPV6_HEADER - ICMP_HEADER;

/// A frame answering a rejected packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// True: out the interface the packet came in on, to its sender.
    /// False: out the other interface, to its destination.
    pub back: bool,
    pub frame: Vec<u8>,
}

/// The answers to `frame` (decoded as `d`); empty when it gets none.
pub fn answers(frame: &[u8], d: &Decoded) -> Vec<Answer> {
    let plain = d.tunnels == 0
        && d.l3.start == ETH_HEADER
        && matches!(frame.get(12..14), Some([0x08, 0x00]) | Some([0x86, 0xdd]));
    let first_fragment = d.fragment.is_none_or(|f| f.offset == 0);
    if !plain || !first_fragment {
        return Vec::new();
    }
    let Some(eth) = frame.get(..ETH_HEADER) else {
        return Vec::new();
    };
    match (d.protocol, d.tcp) {
        (proto::TCP, Some(t)) if !t.has(TcpInfo::RST) => tcp_resets(eth, d, &t),
        (proto::TCP, _) | (proto::ICMP, _) | (proto::ICMPV6, _) => Vec::new(),
        _ => frame
            .get(d.l3.clone())
            .and_then(|ip| unreachable(eth, d, ip))
            .map(|frame| vec![Answer { back: true, frame }])
            .unwrap_or_default(),
    }
}

/// Resets to both ends. The sender's reset carries the sequence number the
/// sender acknowledged (RFC 5961: anything else draws a challenge ACK); the
/// receiver's carries the dropped segment's own sequence number, which is
/// exactly what it expects next since that segment never arrived.
fn tcp_resets(eth: &[u8], d: &Decoded, t: &TcpInfo) -> Vec<Answer> {
    let seg_len = (d.payload.end - d.payload.start) as u32
        + u32::from(t.has(TcpInfo::SYN))
        + u32::from(t.has(TcpInfo::FIN));
    let to_sender = {
        let seq = if t.has(TcpInfo::ACK) { t.ack } else { 0 };
        let ack = t.seq.wrapping_add(seg_len);
        tcp_frame(
            &reversed(eth),
            (d.dst, d.dst_port),
            (d.src, d.src_port),
            seq,
            ack,
            TcpInfo::RST | TcpInfo::ACK,
        )
    };
    let mut out: Vec<Answer> = to_sender
        .map(|frame| Answer { back: true, frame })
        .into_iter()
        .collect();
    // A bare SYN has no connection on the far side to reset.
    if t.has(TcpInfo::ACK) {
        if let Some(frame) = tcp_frame(
            eth,
            (d.src, d.src_port),
            (d.dst, d.dst_port),
            t.seq,
            t.ack,
            TcpInfo::RST | TcpInfo::ACK,
        ) {
            out.push(Answer { back: false, frame });
        }
    }
    out
}

/// The Ethernet header with source and destination swapped.
fn reversed(eth: &[u8]) -> [u8; ETH_HEADER] {
    let mut out = [0u8; ETH_HEADER];
    out[..6].copy_from_slice(&eth[6..12]);
    out[6..12].copy_from_slice(&eth[..6]);
    out[12..].copy_from_slice(&eth[12..14]);
    out
}

fn tcp_frame(
    eth: &[u8],
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
) -> Option<Vec<u8>> {
    let mut frame = ip_frame(eth, src.0, dst.0, proto::TCP, TCP_HEADER)?;
    let l4 = frame.len() - TCP_HEADER;
    {
        let mut t = MutableTcpPacket::new(&mut frame[l4..])?;
        t.set_source(src.1);
        t.set_destination(dst.1);
        t.set_sequence(seq);
        t.set_acknowledgement(ack);
        t.set_data_offset(5);
        t.set_flags(flags);
        t.set_window(0);
    }
    let sum = {
        let t = TcpPacket::new(&frame[l4..])?;
        match (src.0, dst.0) {
            (IpAddr::V4(s), IpAddr::V4(d)) => tcp::ipv4_checksum(&t, &s, &d),
            (IpAddr::V6(s), IpAddr::V6(d)) => tcp::ipv6_checksum(&t, &s, &d),
            _ => return None,
        }
    };
    MutableTcpPacket::new(&mut frame[l4..])?.set_checksum(sum);
    Some(frame)
}

/// ICMP (v4: destination unreachable / port; v6: destination unreachable /
/// port unreachable) quoting the offending packet, sent back to its source
/// from its destination's address.
fn unreachable(eth: &[u8], d: &Decoded, ip: &[u8]) -> Option<Vec<u8>> {
    let eth = reversed(eth);
    match (d.dst, d.src) {
        (IpAddr::V4(from), IpAddr::V4(to)) => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let quote = &ip[..ip.len().min(ihl + 8)];
            let mut frame = ip_frame(
                &eth,
                from.into(),
                to.into(),
                proto::ICMP,
                ICMP_HEADER + quote.len(),
            )?;
            let l4 = ETH_HEADER + IPV4_HEADER;
            frame[l4 + ICMP_HEADER..].copy_from_slice(quote);
            let mut m = MutableIcmpPacket::new(&mut frame[l4..])?;
            m.set_icmp_type(IcmpTypes::DestinationUnreachable);
            m.set_icmp_code(icmp::IcmpCode(3));
            let sum = icmp::checksum(&IcmpPacket::new(&frame[l4..])?);
            MutableIcmpPacket::new(&mut frame[l4..])?.set_checksum(sum);
            Some(frame)
        }
        (IpAddr::V6(from), IpAddr::V6(to)) => {
            let quote = &ip[..ip.len().min(ICMPV6_QUOTE)];
            let mut frame = ip_frame(
                &eth,
                from.into(),
                to.into(),
                proto::ICMPV6,
                ICMP_HEADER + quote.len(),
            )?;
            let l4 = ETH_HEADER + IPV6_HEADER;
            frame[l4 + ICMP_HEADER..].copy_from_slice(quote);
            let mut m = MutableIcmpv6Packet::new(&mut frame[l4..])?;
            m.set_icmpv6_type(Icmpv6Types::DestinationUnreachable);
            m.set_icmpv6_code(icmpv6::Icmpv6Code(4));
            let sum = icmpv6::checksum(&Icmpv6Packet::new(&frame[l4..])?, &from, &to);
            MutableIcmpv6Packet::new(&mut frame[l4..])?.set_checksum(sum);
            Some(frame)
        }
        _ => None,
    }
}

/// An Ethernet + IP frame with `l4_len` zeroed bytes after the IP header.
fn ip_frame(eth: &[u8], src: IpAddr, dst: IpAddr, protocol: u8, l4_len: usize) -> Option<Vec<u8>> {
    let mut frame = eth.get(..ETH_HEADER)?.to_vec();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            frame[12..14].copy_from_slice(&[0x08, 0x00]);
            frame.resize(ETH_HEADER + IPV4_HEADER + l4_len, 0);
            let total = u16::try_from(IPV4_HEADER + l4_len).ok()?;
            let mut ip = MutableIpv4Packet::new(&mut frame[ETH_HEADER..])?;
            ip.set_version(4);
            ip.set_header_length(5);
            ip.set_total_length(total);
            ip.set_flags(ipv4::Ipv4Flags::DontFragment);
            ip.set_ttl(64);
            ip.set_next_level_protocol(IpNextHeaderProtocol(protocol));
            ip.set_source(s);
            ip.set_destination(d);
            let sum = ipv4::checksum(&Ipv4Packet::new(&frame[ETH_HEADER..])?);
            MutableIpv4Packet::new(&mut frame[ETH_HEADER..])?.set_checksum(sum);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            frame[12..14].copy_from_slice(&[0x86, 0xdd]);
            frame.resize(ETH_HEADER + IPV6_HEADER + l4_len, 0);
            let mut ip = MutableIpv6Packet::new(&mut frame[ETH_HEADER..])?;
            ip.set_version(6);
            ip.set_payload_length(u16::try_from(l4_len).ok()?);
            ip.set_next_header(IpNextHeaderProtocol(protocol));
            ip.set_hop_limit(64);
            ip.set_source(s);
            ip.set_destination(d);
        }
        _ => return None,
    }
    Some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::LinkType;
    use crate::decode::decode;
    use crate::synth::SynthCapture;

    fn frames(build: impl FnOnce(&mut SynthCapture)) -> Vec<Vec<u8>> {
        let mut cap = SynthCapture::new(0);
        build(&mut cap);
        cap.frames().iter().map(|(_, f)| f.clone()).collect()
    }

    #[test]
    fn tcp_data_segment_gets_a_reset_each_way() {
        let f = frames(|c| {
            let mut s = c.tcp_v4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80);
            s.handshake();
            s.client_sends(b"GET /evil");
        });
        // The first data segment after the handshake.
        let (frame, d) = f
            .iter()
            .map(|f| (f, decode(LinkType::ETHERNET, f).unwrap()))
            .find(|(_, d)| d.payload.end > d.payload.start)
            .unwrap();
        let t = d.tcp.unwrap();
        let out = answers(frame, &d);
        assert_eq!(out.len(), 2);
        let back = decode(LinkType::ETHERNET, &out[0].frame).unwrap();
        assert!(out[0].back);
        assert_eq!((back.src, back.src_port), (d.dst, d.dst_port));
        assert_eq!((back.dst, back.dst_port), (d.src, d.src_port));
        let bt = back.tcp.unwrap();
        assert!(bt.has(TcpInfo::RST));
        assert_eq!(bt.seq, t.ack);
        assert_eq!(bt.ack, t.seq.wrapping_add(9));
        assert_eq!(&out[0].frame[..6], &frame[6..12], "to the sender's MAC");
        let fwd = decode(LinkType::ETHERNET, &out[1].frame).unwrap();
        assert!(!out[1].back);
        assert_eq!(fwd.tcp.unwrap().seq, t.seq);
        // Checksums verify: the kernel drops a reset with a bad one.
        let ip = Ipv4Packet::new(&out[0].frame[ETH_HEADER..]).unwrap();
        assert_eq!(ipv4::checksum(&ip), ip.get_checksum());
        let tp = TcpPacket::new(&out[0].frame[ETH_HEADER + IPV4_HEADER..]).unwrap();
        let (IpAddr::V4(s), IpAddr::V4(dst)) = (back.src, back.dst) else {
            panic!("v4")
        };
        assert_eq!(tcp::ipv4_checksum(&tp, &s, &dst), tp.get_checksum());
    }

    #[test]
    fn udp_gets_port_unreachable_quoting_it() {
        let f = frames(|c| {
            c.udp_v4([10, 0, 0, 1], 5000, [10, 0, 0, 2], 53, b"query")
                .unwrap();
        });
        let d = decode(LinkType::ETHERNET, &f[0]).unwrap();
        let out = answers(&f[0], &d);
        assert_eq!(out.len(), 1);
        assert!(out[0].back);
        let a = decode(LinkType::ETHERNET, &out[0].frame).unwrap();
        assert_eq!(a.protocol, proto::ICMP);
        assert_eq!((a.src_port, a.dst_port), (3, 3), "type 3 code 3");
        assert_eq!(a.src, d.dst);
        let quoted = &out[0].frame[a.payload.clone()];
        assert_eq!(quoted, &f[0][d.l3.start..d.l3.start + 28]);
    }

    #[test]
    fn udp_over_ipv6_gets_icmpv6_port_unreachable() {
        let src = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let dst = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
        let f = frames(|c| {
            c.udp_v6(src, 5000, dst, 53, b"query").unwrap();
        });
        let d = decode(LinkType::ETHERNET, &f[0]).unwrap();
        let out = answers(&f[0], &d);
        assert_eq!(out.len(), 1);
        let a = decode(LinkType::ETHERNET, &out[0].frame).unwrap();
        assert_eq!(a.protocol, proto::ICMPV6);
        assert_eq!((a.src_port, a.dst_port), (1, 4), "type 1 code 4");
        assert_eq!((a.src, a.dst), (IpAddr::V6(dst), IpAddr::V6(src)));
        let icmp = Icmpv6Packet::new(&out[0].frame[a.l4_offset..]).unwrap();
        assert_eq!(icmpv6::checksum(&icmp, &dst, &src), icmp.get_checksum());
    }

    #[test]
    fn resets_are_not_answered() {
        let f = frames(|c| {
            let mut s = c.tcp_v4([10, 0, 0, 1], 1, [10, 0, 0, 2], 2);
            s.handshake();
            s.client_reset();
        });
        let d = decode(LinkType::ETHERNET, &f[3]).unwrap();
        assert!(d.tcp.unwrap().has(TcpInfo::RST));
        assert!(answers(&f[3], &d).is_empty());
    }
}
