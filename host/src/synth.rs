//! Deterministic packet builders for tests and the bundled example capture.
//!
//! Frames are Ethernet II with IPv4 or IPv6 and TCP, UDP or ICMP, with correct
//! checksums, built with `pnet_packet`'s `Mutable*` types. [`SynthCapture`]
//! collects frames with timestamps that advance by a fixed step, and
//! [`TcpSession`] keeps sequence and acknowledgement numbers consistent across a
//! handshake, data in both directions and teardown. Nothing is random: the same
//! calls always give the same bytes, so tests can name packet numbers.
//!
//! ```
//! use sandgate_host::synth::SynthCapture;
//! let mut cap = SynthCapture::new(1_700_000_000_000_000);
//! let mut s = cap.tcp_v4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80);
//! s.handshake();
//! let request = s.client_sends(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
//! s.server_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
//! s.close();
//! assert_eq!(request, 4..5); // packet 4 carries the request
//! assert_eq!(cap.len(), 8);
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::Path;

use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherType, MutableEthernetPacket};
use pnet_packet::icmp::{self, MutableIcmpPacket};
use pnet_packet::icmpv6::{self, MutableIcmpv6Packet};
use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv4::{self, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::{self, MutableTcpPacket};
use pnet_packet::udp::{self, MutableUdpPacket};
use pnet_packet::vlan::MutableVlanPacket;

use crate::capture::{CaptureError, CaptureWriter};

/// TCP flag bits, as on the wire.
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgement field is significant.
    pub const ACK: u8 = 0x10;
}
use tcp_flags::{ACK, FIN, PSH, RST, SYN};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const TCP_LEN: usize = 20;
const UDP_LEN: usize = 8;
const ICMP_LEN: usize = 8;

/// Errors from building a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SynthError {
    /// The payload does not fit in one IP packet.
    #[error("{what} payload of {len} bytes does not fit in one packet (max {max})")]
    PayloadTooLarge {
        /// Which builder.
        what: &'static str,
        /// Payload length asked for.
        len: usize,
        /// Largest payload that fits.
        max: usize,
    },
    /// A buffer we sized ourselves was refused by `pnet_packet` (a bug here).
    #[error("internal error building {0} header")]
    Internal(&'static str),
}

/// Source and destination addresses of one packet, of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpPair {
    /// IPv4 source and destination.
    V4(Ipv4Addr, Ipv4Addr),
    /// IPv6 source and destination.
    V6(Ipv6Addr, Ipv6Addr),
}

impl IpPair {
    /// The pair for the opposite direction.
    pub fn reversed(self) -> IpPair {
        match self {
            IpPair::V4(s, d) => IpPair::V4(d, s),
            IpPair::V6(s, d) => IpPair::V6(d, s),
        }
    }

    /// Source address.
    pub fn src(self) -> IpAddr {
        match self {
            IpPair::V4(s, _) => IpAddr::V4(s),
            IpPair::V6(s, _) => IpAddr::V6(s),
        }
    }

    /// Destination address.
    pub fn dst(self) -> IpAddr {
        match self {
            IpPair::V4(_, d) => IpAddr::V4(d),
            IpPair::V6(_, d) => IpAddr::V6(d),
        }
    }

    fn ip_header_len(self) -> usize {
        match self {
            IpPair::V4(..) => IPV4_LEN,
            IpPair::V6(..) => IPV6_LEN,
        }
    }

    /// Largest transport segment (header + payload) one packet can carry.
    fn max_l4(self) -> usize {
        match self {
            IpPair::V4(..) => usize::from(u16::MAX) - IPV4_LEN,
            IpPair::V6(..) => usize::from(u16::MAX),
        }
    }
}

/// The fields of a TCP header the builders set (no options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpHeader {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flag bits, see [`tcp_flags`].
    pub flags: u8,
    /// Receive window.
    pub window: u16,
}

/// A locally administered MAC derived from the address, so each host keeps
/// one MAC across the capture.
fn mac_for(addr: IpAddr) -> [u8; 6] {
    let tail = match addr {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x00, tail[0], tail[1], tail[2], tail[3]]
}

fn too_large(what: &'static str, len: usize, max: usize) -> SynthError {
    SynthError::PayloadTooLarge { what, len, max }
}

/// Wraps a transport segment (checksum already set) in IP and Ethernet headers.
fn ip_frame(ips: IpPair, protocol: u8, l4: &[u8], ip_id: u16) -> Result<Vec<u8>, SynthError> {
    let ip_len = ips.ip_header_len();
    if l4.len() > ips.max_l4() {
        return Err(too_large("ip", l4.len(), ips.max_l4()));
    }
    let mut buf = vec![0u8; ETH_LEN + ip_len + l4.len()];
    let ethertype = match ips {
        IpPair::V4(..) => ETHERTYPE_IPV4,
        IpPair::V6(..) => ETHERTYPE_IPV6,
    };
    {
        let mut eth =
            MutableEthernetPacket::new(&mut buf).ok_or(SynthError::Internal("ethernet"))?;
        eth.set_ethertype(EtherType(ethertype));
    }
    // pnet's MacAddr lives in pnet_base, which we do not depend on.
    buf[..6].copy_from_slice(&mac_for(ips.dst()));
    buf[6..12].copy_from_slice(&mac_for(ips.src()));
    let (ip_buf, l4_buf) = buf[ETH_LEN..].split_at_mut(ip_len);
    l4_buf.copy_from_slice(l4);
    match ips {
        IpPair::V4(src, dst) => {
            // Header plus segment length was checked against u16::MAX above.
            let total =
                u16::try_from(ip_len + l4.len()).map_err(|_| SynthError::Internal("ipv4"))?;
            let mut ip = MutableIpv4Packet::new(ip_buf).ok_or(SynthError::Internal("ipv4"))?;
            ip.set_version(4);
            ip.set_header_length(5);
            ip.set_total_length(total);
            ip.set_identification(ip_id);
            ip.set_flags(ipv4::Ipv4Flags::DontFragment);
            ip.set_ttl(64);
            ip.set_next_level_protocol(IpNextHeaderProtocol(protocol));
            ip.set_source(src);
            ip.set_destination(dst);
            let sum = ipv4::checksum(&ip.to_immutable());
            ip.set_checksum(sum);
        }
        IpPair::V6(src, dst) => {
            let plen = u16::try_from(l4.len()).map_err(|_| SynthError::Internal("ipv6"))?;
            let mut ip = MutableIpv6Packet::new(ip_buf).ok_or(SynthError::Internal("ipv6"))?;
            ip.set_version(6);
            ip.set_payload_length(plen);
            ip.set_next_header(IpNextHeaderProtocol(protocol));
            ip.set_hop_limit(64);
            ip.set_source(src);
            ip.set_destination(dst);
        }
    }
    Ok(buf)
}

/// Builds an Ethernet + IP + TCP frame with correct checksums.
pub fn tcp_frame(ips: IpPair, hdr: &TcpHeader, payload: &[u8]) -> Result<Vec<u8>, SynthError> {
    tcp_frame_with_id(ips, hdr, payload, 1)
}

fn tcp_frame_with_id(
    ips: IpPair,
    hdr: &TcpHeader,
    payload: &[u8],
    ip_id: u16,
) -> Result<Vec<u8>, SynthError> {
    let max = ips.max_l4() - TCP_LEN;
    if payload.len() > max {
        return Err(too_large("tcp", payload.len(), max));
    }
    let mut seg = vec![0u8; TCP_LEN + payload.len()];
    {
        let mut t = MutableTcpPacket::new(&mut seg).ok_or(SynthError::Internal("tcp"))?;
        t.set_source(hdr.src_port);
        t.set_destination(hdr.dst_port);
        t.set_sequence(hdr.seq);
        t.set_acknowledgement(hdr.ack);
        t.set_data_offset(5);
        t.set_flags(hdr.flags);
        t.set_window(hdr.window);
        t.set_payload(payload);
        let sum = match ips {
            IpPair::V4(s, d) => tcp::ipv4_checksum(&t.to_immutable(), &s, &d),
            IpPair::V6(s, d) => tcp::ipv6_checksum(&t.to_immutable(), &s, &d),
        };
        t.set_checksum(sum);
    }
    ip_frame(ips, PROTO_TCP, &seg, ip_id)
}

/// Builds an Ethernet + IP + UDP frame with correct checksums.
pub fn udp_frame(
    ips: IpPair,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Result<Vec<u8>, SynthError> {
    udp_frame_with_id(ips, src_port, dst_port, payload, 1)
}

fn udp_frame_with_id(
    ips: IpPair,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
    ip_id: u16,
) -> Result<Vec<u8>, SynthError> {
    let max = ips.max_l4().min(usize::from(u16::MAX)) - UDP_LEN;
    if payload.len() > max {
        return Err(too_large("udp", payload.len(), max));
    }
    let len = u16::try_from(UDP_LEN + payload.len()).map_err(|_| SynthError::Internal("udp"))?;
    let mut seg = vec![0u8; usize::from(len)];
    {
        let mut u = MutableUdpPacket::new(&mut seg).ok_or(SynthError::Internal("udp"))?;
        u.set_source(src_port);
        u.set_destination(dst_port);
        u.set_length(len);
        u.set_payload(payload);
        let sum = match ips {
            IpPair::V4(s, d) => udp::ipv4_checksum(&u.to_immutable(), &s, &d),
            IpPair::V6(s, d) => udp::ipv6_checksum(&u.to_immutable(), &s, &d),
        };
        u.set_checksum(sum);
    }
    ip_frame(ips, PROTO_UDP, &seg, ip_id)
}

/// Builds an ICMP frame: ICMPv4 for an IPv4 pair, ICMPv6 for an IPv6 pair.
/// `rest` is the second header word (identifier and sequence for echo).
pub fn icmp_frame(
    ips: IpPair,
    icmp_type: u8,
    code: u8,
    rest: [u8; 4],
    payload: &[u8],
) -> Result<Vec<u8>, SynthError> {
    icmp_frame_with_id(ips, icmp_type, code, rest, payload, 1)
}

fn icmp_frame_with_id(
    ips: IpPair,
    icmp_type: u8,
    code: u8,
    rest: [u8; 4],
    payload: &[u8],
    ip_id: u16,
) -> Result<Vec<u8>, SynthError> {
    let max = ips.max_l4() - ICMP_LEN;
    if payload.len() > max {
        return Err(too_large("icmp", payload.len(), max));
    }
    let mut seg = vec![0u8; ICMP_LEN + payload.len()];
    seg[4..8].copy_from_slice(&rest);
    seg[ICMP_LEN..].copy_from_slice(payload);
    let protocol = match ips {
        IpPair::V4(..) => {
            let mut p = MutableIcmpPacket::new(&mut seg).ok_or(SynthError::Internal("icmp"))?;
            p.set_icmp_type(icmp::IcmpType(icmp_type));
            p.set_icmp_code(icmp::IcmpCode(code));
            let sum = icmp::checksum(&p.to_immutable());
            p.set_checksum(sum);
            PROTO_ICMP
        }
        IpPair::V6(s, d) => {
            let mut p = MutableIcmpv6Packet::new(&mut seg).ok_or(SynthError::Internal("icmpv6"))?;
            p.set_icmpv6_type(icmpv6::Icmpv6Type(icmp_type));
            p.set_icmpv6_code(icmpv6::Icmpv6Code(code));
            let sum = icmpv6::checksum(&p.to_immutable(), &s, &d);
            p.set_checksum(sum);
            PROTO_ICMPV6
        }
    };
    ip_frame(ips, protocol, &seg, ip_id)
}

/// Inserts an 802.1Q tag with `vlan_id` after the MAC addresses of an
/// Ethernet frame. A frame shorter than 14 bytes is returned unchanged.
pub fn with_vlan(frame: &[u8], vlan_id: u16) -> Vec<u8> {
    let (Some(macs), Some(ethertype), Some(rest)) =
        (frame.get(..12), frame.get(12..14), frame.get(14..))
    else {
        return frame.to_vec();
    };
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(macs);
    out.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
    let mut tag = [0u8; 4];
    if let Some(mut vlan) = MutableVlanPacket::new(&mut tag) {
        vlan.set_vlan_identifier(vlan_id & 0x0fff);
        vlan.set_ethertype(EtherType(u16::from_be_bytes([ethertype[0], ethertype[1]])));
    }
    out.extend_from_slice(&tag);
    out.extend_from_slice(rest);
    out
}

/// A broadcast ARP request "who has `target`, tell `sender`", padded to the
/// 60-byte Ethernet minimum: a non-IP frame for decoder tests.
pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut buf = vec![0u8; 60];
    let sender_mac = mac_for(IpAddr::V4(sender));
    buf[..6].copy_from_slice(&[0xff; 6]);
    buf[6..12].copy_from_slice(&sender_mac);
    buf[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    if let Some(mut arp) = MutableArpPacket::new(&mut buf[ETH_LEN..]) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherType(ETHERTYPE_IPV4));
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(ArpOperations::Request);
        arp.set_sender_proto_addr(sender);
        arp.set_target_proto_addr(target);
    }
    // Sender hardware address (pnet's MacAddr is in pnet_base); target stays 0.
    buf[ETH_LEN + 8..ETH_LEN + 14].copy_from_slice(&sender_mac);
    buf
}

/// A growing list of timestamped frames; packet numbers are 1-based
/// positions, as in a capture file.
#[derive(Debug, Clone)]
pub struct SynthCapture {
    next_ts_us: u64,
    step_us: u64,
    frames: Vec<(u64, Vec<u8>)>,
    ip_id: u16,
    sessions: u32,
}

/// Time between consecutive frames unless [`SynthCapture::with_step`] says
/// otherwise: 1 ms.
pub const DEFAULT_STEP_US: u64 = 1_000;

impl SynthCapture {
    /// An empty capture whose first frame is stamped `start_ts_us`
    /// (microseconds since the Unix epoch).
    pub fn new(start_ts_us: u64) -> Self {
        Self::with_step(start_ts_us, DEFAULT_STEP_US)
    }

    /// Like [`SynthCapture::new`] with `step_us` between frames.
    pub fn with_step(start_ts_us: u64, step_us: u64) -> Self {
        SynthCapture {
            next_ts_us: start_ts_us,
            step_us,
            frames: Vec::new(),
            ip_id: 1,
            sessions: 0,
        }
    }

    /// Appends a ready-made frame (e.g. ARP) and returns its packet number.
    pub fn push(&mut self, frame: Vec<u8>) -> u64 {
        let ts = self.next_ts_us;
        self.next_ts_us = self.next_ts_us.saturating_add(self.step_us);
        self.ip_id = self.ip_id.wrapping_add(1);
        self.frames.push((ts, frame));
        self.frames.len() as u64
    }

    /// Adds an ARP request (a non-IP frame); returns its packet number.
    pub fn arp_request(&mut self, sender: impl Into<Ipv4Addr>, target: impl Into<Ipv4Addr>) -> u64 {
        self.push(arp_request(sender.into(), target.into()))
    }

    /// Leaves an extra gap of `us` before the next frame.
    pub fn advance(&mut self, us: u64) {
        self.next_ts_us = self.next_ts_us.saturating_add(us);
    }

    /// The number the next frame will get.
    pub fn next_number(&self) -> u64 {
        self.frames.len() as u64 + 1
    }

    /// Number of frames so far.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when no frame was added yet.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frames as (timestamp in µs, Ethernet bytes), in packet-number order.
    pub fn frames(&self) -> &[(u64, Vec<u8>)] {
        &self.frames
    }

    /// The frame with 1-based packet number `number`.
    pub fn frame(&self, number: u64) -> Option<&[u8]> {
        let index = usize::try_from(number.checked_sub(1)?).ok()?;
        self.frames.get(index).map(|(_, f)| f.as_slice())
    }

    /// Consumes the capture, returning its frames.
    pub fn into_frames(self) -> Vec<(u64, Vec<u8>)> {
        self.frames
    }

    /// Writes the frames as a classic pcap file (Ethernet link type).
    pub fn write_pcap(&self, path: impl AsRef<Path>) -> Result<(), CaptureError> {
        let mut w = CaptureWriter::create(path)?;
        for (ts, frame) in &self.frames {
            w.write_frame(*ts, frame)?;
        }
        w.finish()?;
        Ok(())
    }

    /// Starts a TCP session between two IPv4 endpoints; nothing is sent
    /// until a method of the session is called.
    pub fn tcp_v4(
        &mut self,
        client: impl Into<Ipv4Addr>,
        client_port: u16,
        server: impl Into<Ipv4Addr>,
        server_port: u16,
    ) -> TcpSession<'_> {
        let ips = IpPair::V4(client.into(), server.into());
        TcpSession::new(self, ips, client_port, server_port, 1460)
    }

    /// Starts a TCP session between two IPv6 endpoints.
    pub fn tcp_v6(
        &mut self,
        client: impl Into<Ipv6Addr>,
        client_port: u16,
        server: impl Into<Ipv6Addr>,
        server_port: u16,
    ) -> TcpSession<'_> {
        let ips = IpPair::V6(client.into(), server.into());
        TcpSession::new(self, ips, client_port, server_port, 1440)
    }

    /// Adds one UDP datagram over IPv4; returns its packet number.
    pub fn udp_v4(
        &mut self,
        src: impl Into<Ipv4Addr>,
        src_port: u16,
        dst: impl Into<Ipv4Addr>,
        dst_port: u16,
        payload: &[u8],
    ) -> Result<u64, SynthError> {
        let ips = IpPair::V4(src.into(), dst.into());
        self.udp(ips, src_port, dst_port, payload)
    }

    /// Adds one UDP datagram over IPv6; returns its packet number.
    pub fn udp_v6(
        &mut self,
        src: impl Into<Ipv6Addr>,
        src_port: u16,
        dst: impl Into<Ipv6Addr>,
        dst_port: u16,
        payload: &[u8],
    ) -> Result<u64, SynthError> {
        let ips = IpPair::V6(src.into(), dst.into());
        self.udp(ips, src_port, dst_port, payload)
    }

    /// Adds one UDP datagram; returns its packet number.
    pub fn udp(
        &mut self,
        ips: IpPair,
        src_port: u16,
        dst_port: u16,
        payload: &[u8],
    ) -> Result<u64, SynthError> {
        let frame = udp_frame_with_id(ips, src_port, dst_port, payload, self.ip_id)?;
        Ok(self.push(frame))
    }

    /// Adds an ICMP (IPv4) or ICMPv6 (IPv6) echo request; returns its number.
    pub fn icmp_echo_request(
        &mut self,
        ips: IpPair,
        id: u16,
        seq: u16,
        payload: &[u8],
    ) -> Result<u64, SynthError> {
        let icmp_type = match ips {
            IpPair::V4(..) => 8,
            IpPair::V6(..) => 128,
        };
        self.icmp(ips, icmp_type, 0, echo_rest(id, seq), payload)
    }

    /// Adds an ICMP (IPv4) or ICMPv6 (IPv6) echo reply; returns its number.
    pub fn icmp_echo_reply(
        &mut self,
        ips: IpPair,
        id: u16,
        seq: u16,
        payload: &[u8],
    ) -> Result<u64, SynthError> {
        let icmp_type = match ips {
            IpPair::V4(..) => 0,
            IpPair::V6(..) => 129,
        };
        self.icmp(ips, icmp_type, 0, echo_rest(id, seq), payload)
    }

    /// Adds an ICMP echo request over IPv4; returns its packet number.
    pub fn icmp_echo_request_v4(
        &mut self,
        src: impl Into<Ipv4Addr>,
        dst: impl Into<Ipv4Addr>,
        id: u16,
        seq: u16,
        payload: &[u8],
    ) -> Result<u64, SynthError> {
        self.icmp_echo_request(IpPair::V4(src.into(), dst.into()), id, seq, payload)
    }

    /// Adds an ICMP echo reply over IPv4; returns its packet number.
    pub fn icmp_echo_reply_v4(
        &mut self,
        src: impl Into<Ipv4Addr>,
        dst: impl Into<Ipv4Addr>,
        id: u16,
        seq: u16,
        payload: &[u8],
    ) -> Result<u64, SynthError> {
        self.icmp_echo_reply(IpPair::V4(src.into(), dst.into()), id, seq, payload)
    }

    /// Adds any ICMP/ICMPv6 message; returns its packet number.
    pub fn icmp(
        &mut self,
        ips: IpPair,
        icmp_type: u8,
        code: u8,
        rest: [u8; 4],
        payload: &[u8],
    ) -> Result<u64, SynthError> {
        let frame = icmp_frame_with_id(ips, icmp_type, code, rest, payload, self.ip_id)?;
        Ok(self.push(frame))
    }
}

fn echo_rest(id: u16, seq: u16) -> [u8; 4] {
    let [a, b] = id.to_be_bytes();
    let [c, d] = seq.to_be_bytes();
    [a, b, c, d]
}

/// One TCP connection inside a [`SynthCapture`]; every method appends frames
/// and returns the packet numbers it added.
#[derive(Debug)]
pub struct TcpSession<'a> {
    cap: &'a mut SynthCapture,
    /// Client to server.
    ips: IpPair,
    client_port: u16,
    server_port: u16,
    client_seq: u32,
    server_seq: u32,
    mss: usize,
}

impl<'a> TcpSession<'a> {
    fn new(
        cap: &'a mut SynthCapture,
        ips: IpPair,
        client_port: u16,
        server_port: u16,
        mss: usize,
    ) -> Self {
        cap.sessions = cap.sessions.wrapping_add(1);
        let n = cap.sessions;
        TcpSession {
            cap,
            ips,
            client_port,
            server_port,
            client_seq: 0x1000_0000u32.wrapping_add(n.wrapping_mul(0x0001_0101)),
            server_seq: 0x8000_0000u32.wrapping_add(n.wrapping_mul(0x0002_0203)),
            mss,
        }
    }

    /// Sets the largest payload per segment (clamped to 1..=65,000); longer
    /// sends are split.
    pub fn set_mss(&mut self, mss: usize) -> &mut Self {
        self.mss = mss.clamp(1, 65_000);
        self
    }

    /// The next sequence number the client will use.
    pub fn client_seq(&self) -> u32 {
        self.client_seq
    }

    /// The next sequence number the server will use.
    pub fn server_seq(&self) -> u32 {
        self.server_seq
    }

    /// SYN, SYN/ACK, ACK.
    pub fn handshake(&mut self) -> Range<u64> {
        let start = self.cap.next_number();
        self.segment(true, SYN, &[]);
        self.segment(false, SYN | ACK, &[]);
        self.segment(true, ACK, &[]);
        start..self.cap.next_number()
    }

    /// The client sends `data`, split into MSS-sized PSH/ACK segments.
    pub fn client_sends(&mut self, data: &[u8]) -> Range<u64> {
        self.sends(true, &[data])
    }

    /// The server sends `data`, split into MSS-sized PSH/ACK segments.
    pub fn server_sends(&mut self, data: &[u8]) -> Range<u64> {
        self.sends(false, &[data])
    }

    /// The client sends each part as its own segment (parts longer than the
    /// MSS are split further).
    pub fn client_sends_segments(&mut self, parts: &[&[u8]]) -> Range<u64> {
        self.sends(true, parts)
    }

    /// The server sends each part as its own segment.
    pub fn server_sends_segments(&mut self, parts: &[&[u8]]) -> Range<u64> {
        self.sends(false, parts)
    }

    /// A bare ACK from the client.
    pub fn client_ack(&mut self) -> Range<u64> {
        let start = self.cap.next_number();
        self.segment(true, ACK, &[]);
        start..self.cap.next_number()
    }

    /// A bare ACK from the server.
    pub fn server_ack(&mut self) -> Range<u64> {
        let start = self.cap.next_number();
        self.segment(false, ACK, &[]);
        start..self.cap.next_number()
    }

    /// Client FIN/ACK, server FIN/ACK, client ACK.
    pub fn close(&mut self) -> Range<u64> {
        let start = self.cap.next_number();
        self.segment(true, FIN | ACK, &[]);
        self.segment(false, FIN | ACK, &[]);
        self.segment(true, ACK, &[]);
        start..self.cap.next_number()
    }

    /// The client aborts with RST/ACK.
    pub fn client_reset(&mut self) -> Range<u64> {
        let start = self.cap.next_number();
        self.segment(true, RST | ACK, &[]);
        start..self.cap.next_number()
    }

    /// One segment with arbitrary flags, from the client when `from_client`;
    /// sequence numbers advance by the payload length plus one for SYN or FIN.
    pub fn raw_segment(&mut self, from_client: bool, flags: u8, payload: &[u8]) -> u64 {
        self.segment(from_client, flags, payload)
    }

    fn sends(&mut self, from_client: bool, parts: &[&[u8]]) -> Range<u64> {
        let start = self.cap.next_number();
        for part in parts {
            for chunk in part.chunks(self.mss.max(1)) {
                self.segment(from_client, PSH | ACK, chunk);
            }
        }
        start..self.cap.next_number()
    }

    fn segment(&mut self, from_client: bool, flags: u8, payload: &[u8]) -> u64 {
        let (ips, src_port, dst_port, seq, ack) = if from_client {
            let ack = if flags & ACK != 0 { self.server_seq } else { 0 };
            (
                self.ips,
                self.client_port,
                self.server_port,
                self.client_seq,
                ack,
            )
        } else {
            let ack = if flags & ACK != 0 { self.client_seq } else { 0 };
            (
                self.ips.reversed(),
                self.server_port,
                self.client_port,
                self.server_seq,
                ack,
            )
        };
        let hdr = TcpHeader {
            src_port,
            dst_port,
            seq,
            ack,
            flags,
            window: 64_240,
        };
        let advance = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        if from_client {
            self.client_seq = self.client_seq.wrapping_add(advance);
        } else {
            self.server_seq = self.server_seq.wrapping_add(advance);
        }
        // Cannot fail: the MSS is clamped so every segment fits in a packet.
        match tcp_frame_with_id(ips, &hdr, payload, self.cap.ip_id) {
            Ok(frame) => self.cap.push(frame),
            Err(_) => self.cap.next_number(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_packet::ethernet::EthernetPacket;
    use pnet_packet::icmpv6::Icmpv6Packet;
    use pnet_packet::ipv4::Ipv4Packet;
    use pnet_packet::ipv6::Ipv6Packet;
    use pnet_packet::tcp::TcpPacket;
    use pnet_packet::udp::UdpPacket;
    use pnet_packet::Packet;

    fn v4(frame: &[u8]) -> Ipv4Packet<'_> {
        Ipv4Packet::new(&frame[ETH_LEN..]).unwrap()
    }

    #[test]
    fn ipv4_tcp_checksums_verify() {
        let mut cap = SynthCapture::new(0);
        let mut s = cap.tcp_v4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80);
        s.handshake();
        s.client_sends(b"hello");
        for (_, f) in cap.frames() {
            let ip = v4(f);
            assert_eq!(ipv4::checksum(&ip), ip.get_checksum());
            let t = TcpPacket::new(ip.payload()).unwrap();
            let (src, dst) = (ip.get_source(), ip.get_destination());
            assert_eq!(tcp::ipv4_checksum(&t, &src, &dst), t.get_checksum());
        }
    }

    #[test]
    fn ipv6_udp_and_icmpv6_checksums_verify() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut cap = SynthCapture::new(0);
        cap.udp_v6(a, 5353, b, 53, b"query").unwrap();
        cap.icmp_echo_request(IpPair::V6(a, b), 7, 1, b"ping")
            .unwrap();
        let f = cap.frame(1).unwrap();
        let ip = Ipv6Packet::new(&f[ETH_LEN..]).unwrap();
        let u = UdpPacket::new(ip.payload()).unwrap();
        assert_eq!(udp::ipv6_checksum(&u, &a, &b), u.get_checksum());
        let f = cap.frame(2).unwrap();
        let ip = Ipv6Packet::new(&f[ETH_LEN..]).unwrap();
        let i = Icmpv6Packet::new(ip.payload()).unwrap();
        assert_eq!(icmpv6::checksum(&i, &a, &b), i.get_checksum());
        assert_eq!(
            EthernetPacket::new(f).unwrap().get_ethertype().0,
            ETHERTYPE_IPV6
        );
    }

    #[test]
    fn session_sequence_numbers_follow_tcp() {
        let mut cap = SynthCapture::with_step(100, 10);
        let mut s = cap.tcp_v4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80);
        assert_eq!(s.handshake(), 1..4);
        assert_eq!(
            s.client_sends_segments(&[b"MALWARE-SIGN", b"ATURE-SPLIT"]),
            4..6
        );
        assert_eq!(s.server_sends(&[b'x'; 3000]), 6..9); // 1460 + 1460 + 80
        assert_eq!(s.close(), 9..12);
        let seg = |n: u64| {
            let f = cap.frame(n).unwrap().to_vec();
            let ip = v4(&f);
            let t = TcpPacket::new(ip.payload()).unwrap();
            (
                t.get_sequence(),
                t.get_acknowledgement(),
                t.get_flags(),
                t.payload().len(),
            )
        };
        let (syn_seq, _, syn_flags, _) = seg(1);
        let (sa_seq, sa_ack, sa_flags, _) = seg(2);
        assert_eq!((syn_flags, sa_flags), (SYN, SYN | ACK));
        assert_eq!(sa_ack, syn_seq.wrapping_add(1));
        let (a_seq, a_ack, _, _) = seg(3);
        assert_eq!(
            (a_seq, a_ack),
            (syn_seq.wrapping_add(1), sa_seq.wrapping_add(1))
        );
        let (d1, _, _, l1) = seg(4);
        let (d2, _, _, l2) = seg(5);
        assert_eq!((l1, l2), (12, 11));
        assert_eq!(d2, d1.wrapping_add(12));
        let (_, _, _, l) = seg(8);
        assert_eq!(l, 80);
        let (fin_seq, _, fin_flags, _) = seg(9);
        assert_eq!(fin_flags, FIN | ACK);
        assert_eq!(fin_seq, d2.wrapping_add(11));
        let (_, last_ack, _, _) = seg(11);
        let (srv_fin_seq, _, _, _) = seg(10);
        assert_eq!(last_ack, srv_fin_seq.wrapping_add(1));
        let ts: Vec<u64> = cap.frames().iter().map(|(t, _)| *t).collect();
        assert_eq!(ts[..3], [100, 110, 120]);
    }

    #[test]
    fn same_calls_give_same_bytes() {
        let build = || {
            let mut cap = SynthCapture::new(5);
            let mut s = cap.tcp_v4([1, 2, 3, 4], 1, [5, 6, 7, 8], 2);
            s.handshake();
            s.client_sends(b"x");
            cap.udp_v4([1, 1, 1, 1], 3, [2, 2, 2, 2], 53, b"q").unwrap();
            cap.into_frames()
        };
        assert_eq!(build(), build());
    }

    #[test]
    fn oversized_udp_is_an_error() {
        let mut cap = SynthCapture::new(0);
        let big = vec![0u8; 70_000];
        let err = cap
            .udp_v4([1, 1, 1, 1], 1, [2, 2, 2, 2], 2, &big)
            .unwrap_err();
        assert!(matches!(err, SynthError::PayloadTooLarge { .. }));
        assert!(cap.is_empty());
    }

    #[test]
    fn vlan_tag_is_inserted() {
        let f = udp_frame(
            IpPair::V4([1, 1, 1, 1].into(), [2, 2, 2, 2].into()),
            1,
            2,
            b"x",
        )
        .unwrap();
        let tagged = with_vlan(&f, 42);
        assert_eq!(tagged.len(), f.len() + 4);
        assert_eq!(&tagged[12..14], &[0x81, 0x00]);
        assert_eq!(u16::from_be_bytes([tagged[14], tagged[15]]) & 0x0fff, 42);
        assert_eq!(&tagged[16..18], &[0x08, 0x00]);
        assert_eq!(&tagged[18..], &f[14..]);
    }
}
