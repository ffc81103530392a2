//! Encapsulations the decoder peels off (raw IP link types, PPP, PPPoE, NSH,
//! GRE, IP-in-IP): the `Decoded` ranges point at the innermost IP packet,
//! every truncated prefix is an error, and random corruption never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sandgate_host::capture::LinkType;
use sandgate_host::decode::{decode, proto, DecodeError, Decoded, Layer, NotIp};
use sandgate_host::synth::{self, IpPair};

const INNER_SRC: [u8; 4] = [10, 1, 1, 1];
const INNER_DST: [u8; 4] = [10, 2, 2, 2];

/// The inner packet every case carries: IPv4/UDP 1111 → 2222, "inner".
fn inner_v4() -> Vec<u8> {
    let f = synth::udp_frame(
        IpPair::V4(INNER_SRC.into(), INNER_DST.into()),
        1111,
        2222,
        b"inner",
    )
    .unwrap();
    f[14..].to_vec()
}

fn inner_v6() -> Vec<u8> {
    let a: Ipv6Addr = "2001:db8::a".parse().unwrap();
    let b: Ipv6Addr = "2001:db8::b".parse().unwrap();
    let f = synth::udp_frame(IpPair::V6(a, b), 1111, 2222, b"inner").unwrap();
    f[14..].to_vec()
}

fn inner_eth() -> Vec<u8> {
    let mut f = eth_header(0x0800);
    f.extend_from_slice(&inner_v4());
    f
}

fn eth_header(ethertype: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn eth(ethertype: u16, rest: &[u8]) -> Vec<u8> {
    let mut f = eth_header(ethertype);
    f.extend_from_slice(rest);
    f
}

/// An outer IPv4 header (no options) for `payload`, protocol `protocol`.
fn outer_v4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 7, 0, 0, 64, protocol, 0, 0]);
    h.extend_from_slice(&[7, 7, 7, 7, 9, 9, 9, 9]);
    h.extend_from_slice(payload);
    h
}

fn outer_v6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    let a: Ipv6Addr = "2001:db8::7".parse().unwrap();
    let b: Ipv6Addr = "2001:db8::9".parse().unwrap();
    h.extend_from_slice(&a.octets());
    h.extend_from_slice(&b.octets());
    h.extend_from_slice(payload);
    h
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

struct Case {
    name: &'static str,
    linktype: LinkType,
    frame: Vec<u8>,
    /// 4 or 6: which inner packet.
    inner: u8,
    tunnels: u8,
}

fn cases() -> Vec<Case> {
    let v4 = inner_v4();
    let v6 = inner_v6();
    let gre = |flags: u8, ver: u8, proto: u16, extra: &[u8], inner: &[u8]| {
        let mut g = vec![flags, ver];
        g.extend_from_slice(&proto.to_be_bytes());
        g.extend_from_slice(extra);
        g.extend_from_slice(inner);
        g
    };
    let case = |name, linktype, frame, inner, tunnels| Case {
        name,
        linktype,
        frame,
        inner,
        tunnels,
    };
    let pppoe = |ppp: &[u8], ip: &[u8]| {
        let len = (ppp.len() + ip.len()) as u16;
        let mut p = vec![0x11, 0x00, 0x12, 0x34];
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(ppp);
        p.extend_from_slice(ip);
        p
    };
    vec![
        case("linktype 228 raw ipv4", LinkType::IPV4, v4.clone(), 4, 0),
        case("linktype 229 raw ipv6", LinkType::IPV6, v6.clone(), 6, 0),
        case(
            "ppp, compressed protocol",
            LinkType::PPP,
            cat(&[&[0x21], &v4]),
            4,
            0,
        ),
        case(
            "ppp, two-byte protocol",
            LinkType::PPP,
            cat(&[&[0, 0x21], &v4]),
            4,
            0,
        ),
        case(
            "ppp with address and control",
            LinkType::PPP,
            cat(&[&[0xff, 0x03, 0, 0x21], &v4]),
            4,
            0,
        ),
        case("ppp ipv6", LinkType::PPP, cat(&[&[0x57], &v6]), 6, 0),
        case(
            "ppp in hdlc framing",
            LinkType::PPP_HDLC,
            cat(&[&[0xff, 0x03, 0, 0x57], &v6]),
            6,
            0,
        ),
        case(
            "pppoe session",
            LinkType::ETHERNET,
            eth(0x8864, &pppoe(&[0, 0x21], &v4)),
            4,
            0,
        ),
        case(
            "vlan then pppoe ipv6",
            LinkType::ETHERNET,
            synth::with_vlan(&eth(0x8864, &pppoe(&[0, 0x57], &v6)), 9),
            6,
            0,
        ),
        case(
            "nsh md type 2 → ipv4",
            LinkType::ETHERNET,
            eth(0x894f, &cat(&[&[0x00, 0x02, 0x02, 0x01, 0, 0, 1, 2], &v4])),
            4,
            0,
        ),
        case(
            "nsh md type 2 with metadata → ipv6",
            LinkType::ETHERNET,
            eth(
                0x894f,
                &cat(&[&[0x00, 0x04, 0x02, 0x02, 0, 0, 1, 2], &[0xaa; 8], &v6]),
            ),
            6,
            0,
        ),
        case(
            "nsh md type 1 → ethernet",
            LinkType::ETHERNET,
            eth(
                0x894f,
                &cat(&[
                    &[0x00, 0x06, 0x01, 0x03, 0, 0, 1, 2],
                    &[0; 16],
                    &inner_eth(),
                ]),
            ),
            4,
            0,
        ),
        case(
            "gre → ipv4",
            LinkType::ETHERNET,
            eth(0x0800, &outer_v4(proto::GRE, &gre(0, 0, 0x0800, &[], &v4))),
            4,
            1,
        ),
        case(
            "gre with checksum, key and sequence → ipv6",
            LinkType::ETHERNET,
            eth(
                0x0800,
                &outer_v4(proto::GRE, &gre(0xb0, 0, 0x86dd, &[0; 12], &v6)),
            ),
            6,
            1,
        ),
        case(
            "gre → ppp → ipv4 (suricata bug 6942)",
            LinkType::ETHERNET,
            eth(
                0x0800,
                &outer_v4(proto::GRE, &gre(0, 0, 0x880b, &[0x21], &v4)),
            ),
            4,
            1,
        ),
        case(
            "pptp gre v1 with sequence and ack → ppp → ipv4",
            LinkType::ETHERNET,
            eth(
                0x0800,
                &outer_v4(
                    proto::GRE,
                    &gre(
                        0x30,
                        0x81,
                        0x880b,
                        &[0; 12],
                        &cat(&[&[0xff, 3, 0, 0x21], &v4]),
                    ),
                ),
            ),
            4,
            1,
        ),
        case(
            "gre transparent ethernet bridging",
            LinkType::ETHERNET,
            eth(
                0x0800,
                &outer_v4(proto::GRE, &gre(0, 0, 0x6558, &[], &inner_eth())),
            ),
            4,
            1,
        ),
        case(
            "gre routing (rfc 1701) → ipv4",
            LinkType::ETHERNET,
            eth(
                0x0800,
                &outer_v4(
                    proto::GRE,
                    &gre(
                        0x40,
                        0,
                        0x0800,
                        &[0, 0, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4, 0, 0, 0, 0],
                        &v4,
                    ),
                ),
            ),
            4,
            1,
        ),
        case(
            "gre over ipv6",
            LinkType::ETHERNET,
            eth(0x86dd, &outer_v6(proto::GRE, &gre(0, 0, 0x0800, &[], &v4))),
            4,
            1,
        ),
        case(
            "ipv4 in ipv4",
            LinkType::RAW,
            outer_v4(proto::IPIP, &v4),
            4,
            1,
        ),
        case(
            "ipv6 in ipv4 (6in4)",
            LinkType::ETHERNET,
            eth(0x0800, &outer_v4(proto::IPV6_ENCAP, &v6)),
            6,
            1,
        ),
        case(
            "ipv4 in ipv6 in gre",
            LinkType::ETHERNET,
            eth(
                0x0800,
                &outer_v4(
                    proto::GRE,
                    &gre(0, 0, 0x86dd, &[], &outer_v6(proto::IPIP, &v4)),
                ),
            ),
            4,
            2,
        ),
    ]
}

fn check_inner(c: &Case, d: &Decoded) {
    let inner = if c.inner == 4 { inner_v4() } else { inner_v6() };
    assert_eq!(d.ip_version, c.inner, "{}", c.name);
    assert_eq!(&c.frame[d.l3.clone()], &inner[..], "{}: l3", c.name);
    assert_eq!(d.protocol, proto::UDP, "{}", c.name);
    assert_eq!((d.src_port, d.dst_port), (1111, 2222), "{}", c.name);
    assert_eq!(&c.frame[d.payload.clone()], b"inner", "{}", c.name);
    assert_eq!(d.tunnels, c.tunnels, "{}", c.name);
    if c.inner == 4 {
        assert_eq!(d.src, IpAddr::V4(Ipv4Addr::from(INNER_SRC)), "{}", c.name);
    }
}

#[test]
fn each_encapsulation_decodes_to_the_inner_packet() {
    for c in cases() {
        let d = decode(c.linktype, &c.frame).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        check_inner(&c, &d);
    }
}

#[test]
fn every_truncated_prefix_is_an_error() {
    for c in cases() {
        for len in 0..c.frame.len() {
            assert!(
                decode(c.linktype, &c.frame[..len]).is_err(),
                "{}: prefix of {len} bytes decoded",
                c.name
            );
        }
    }
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

#[test]
fn corrupted_encapsulations_never_panic_and_keep_ranges_in_bounds() {
    let mut rng = XorShift(0x0000_ddc0_ffee_1234);
    for c in cases() {
        for _ in 0..3000 {
            let mut f = c.frame.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % f.len();
                f[at] = rng.next() as u8;
            }
            if let Ok(d) = decode(c.linktype, &f) {
                assert!(d.l3.start <= d.l3.end && d.l3.end <= f.len(), "{}", c.name);
                assert!(d.l4_offset >= d.l3.start && d.l4_offset <= d.l3.end);
                assert!(d.payload.start >= d.l4_offset && d.payload.end <= d.l3.end);
            }
        }
    }
}

#[test]
fn suricata_verify_nsh_type2_frame() {
    // decode-nsh-type2/input.pcap, its one frame.
    let frame: [u8; 56] = [
        0x52, 0x54, 0x00, 0x00, 0x00, 0x01, 0x52, 0x54, 0x00, 0x00, 0x00, 0x02, 0x89, 0x4f, 0x00,
        0x02, 0x02, 0x01, 0x00, 0x00, 0x01, 0x02, 0x45, 0x00, 0x00, 0x22, 0x28, 0x44, 0x40, 0x00,
        0x40, 0x11, 0xe9, 0x6a, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0xcc, 0x99, 0xcc,
        0xf0, 0x00, 0x0e, 0x00, 0x00, 0x64, 0x61, 0x74, 0x61, 0x0a, 0x0a,
    ];
    let d = decode(LinkType::ETHERNET, &frame).unwrap();
    assert_eq!((d.src_port, d.dst_port), (52377, 52464));
    assert_eq!(d.l3, 22..56);
    assert_eq!(&frame[d.payload], b"data\n\n");
}

#[test]
fn tunnels_fall_back_to_the_outer_packet_and_errors_name_the_layer() {
    // GRE carrying ARP: the outer packet is still an IP packet to inspect.
    let arp = synth::arp_request([1, 1, 1, 1].into(), [2, 2, 2, 2].into());
    let mut g = vec![0, 0, 0x08, 0x06];
    g.extend_from_slice(&arp[14..]);
    let f = eth(0x0800, &outer_v4(proto::GRE, &g));
    let d = decode(LinkType::ETHERNET, &f).unwrap();
    assert_eq!((d.protocol, d.tunnels), (proto::GRE, 0));
    assert_eq!(d.src, IpAddr::V4(Ipv4Addr::new(7, 7, 7, 7)));

    // A fragmented outer packet is not decapsulated: defrag first.
    let mut frag = eth(
        0x0800,
        &outer_v4(proto::GRE, &cat(&[&[0, 0, 8, 0], &inner_v4()])),
    );
    frag[20] = 0x20; // MF
    let d = decode(LinkType::ETHERNET, &frag).unwrap();
    assert!(d.is_fragment);
    assert_eq!((d.protocol, d.tunnels), (proto::GRE, 0));

    let v4 = inner_v4();
    let table: Vec<(LinkType, Vec<u8>, DecodeError)> = vec![
        (
            LinkType::PPP,
            vec![0xc0, 0x21, 1, 1, 0, 4],
            DecodeError::NotIp(NotIp::PppProtocol(0xc021)),
        ),
        (
            LinkType::IPV4,
            inner_v6(),
            DecodeError::BadIpVersion {
                found: 6,
                expected: 4,
            },
        ),
        (
            LinkType::ETHERNET,
            eth(0x8864, &cat(&[&[0x12, 0, 0, 1, 0, 2, 0, 0x21], &v4])),
            DecodeError::Malformed {
                layer: Layer::Pppoe,
                what: "version/type is not 1/1",
            },
        ),
        (
            LinkType::ETHERNET,
            eth(0x894f, &cat(&[&[0x40, 0x02, 0x02, 0x01, 0, 0, 1, 2], &v4])),
            DecodeError::Malformed {
                layer: Layer::Nsh,
                what: "version is not 0",
            },
        ),
        (
            LinkType::ETHERNET,
            eth(0x894f, &cat(&[&[0x00, 0x02, 0x01, 0x01, 0, 0, 1, 2], &v4])),
            DecodeError::Malformed {
                layer: Layer::Nsh,
                what: "MD type 1 length is not 6 words",
            },
        ),
        (
            LinkType::ETHERNET,
            eth(0x894f, &cat(&[&[0x00, 0x02, 0x02, 0x05, 0, 0, 1, 2], &v4])),
            DecodeError::NotIp(NotIp::NshProtocol(5)),
        ),
    ];
    for (lt, frame, want) in table {
        assert_eq!(decode(lt, &frame).unwrap_err(), want, "{want}");
    }
}

#[test]
fn nested_headers_are_bounded() {
    // GRE → Ethernet → GRE … nested past MAX_LAYERS: the outermost that
    // decoded is returned, never a stack overflow.
    let mut pkt = inner_v4();
    for _ in 0..20 {
        let g = cat(&[&[0, 0, 0x08, 0x00], &pkt]);
        pkt = outer_v4(proto::GRE, &g);
    }
    let d = decode(LinkType::RAW, &pkt).unwrap();
    assert!(d.tunnels > 0 && d.tunnels < 20, "{}", d.tunnels);
}
