//! IP fragment reassembly: in order, out of order, overlaps under each
//! policy, duplicates, timeout, memory and tracker limits, IPv6 fragment
//! headers, and the suricata-verify defrag captures when they are present.

use std::path::Path;

use sandgate_host::capture::{CaptureReader, LinkType};
use sandgate_host::decode::{decode, proto};
use sandgate_host::defrag::{DefragConfig, DefragDrop, DefragResult, Defragmenter, OverlapPolicy};
use sandgate_host::synth::{self, IpPair};

/// A whole raw IPv4/UDP packet with `data` (8-byte UDP header first).
fn udp_v4(data: &[u8]) -> Vec<u8> {
    let f = synth::udp_frame(
        IpPair::V4([10, 0, 0, 1].into(), [10, 0, 0, 2].into()),
        7,
        9,
        data,
    )
    .unwrap();
    f[14..].to_vec()
}

/// An IPv4 fragment of `whole` (raw, 20-byte header): `payload[start..end]`
/// of the IP payload, with `more` set, optionally with replaced bytes.
fn frag_v4(whole: &[u8], start: usize, data: &[u8], more: bool) -> Vec<u8> {
    let mut f = whole[..20].to_vec();
    f.extend_from_slice(data);
    let total = f.len() as u16;
    f[2..4].copy_from_slice(&total.to_be_bytes());
    let field = (start / 8) as u16 | if more { 0x2000 } else { 0 };
    f[6..8].copy_from_slice(&field.to_be_bytes());
    f
}

/// Cuts the IP payload of `whole` into fragments of `size` bytes.
fn split_v4(whole: &[u8], size: usize) -> Vec<Vec<u8>> {
    let payload = &whole[20..];
    payload
        .chunks(size)
        .enumerate()
        .map(|(i, c)| frag_v4(whole, i * size, c, (i + 1) * size < payload.len()))
        .collect()
}

fn push(d: &mut Defragmenter, frame: &[u8], ts: u64) -> DefragResult {
    let decoded = decode(LinkType::RAW, frame).unwrap();
    d.push(frame, &decoded, ts)
}

fn reassembled(r: DefragResult) -> Vec<u8> {
    match r {
        DefragResult::Reassembled(p) => p,
        other => panic!("expected a datagram, got {other:?}"),
    }
}

/// The IPv4 header checksum folds to 0xffff when correct.
fn checksum_ok(header: &[u8]) -> bool {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn not_a_fragment_passes_through() {
    let mut d = Defragmenter::new(DefragConfig::default());
    assert_eq!(
        push(&mut d, &udp_v4(b"whole"), 0),
        DefragResult::NotFragment
    );
    assert_eq!(d.stats().fragments, 0);
}

#[test]
fn in_order_and_out_of_order_give_the_original_packet() {
    let whole = udp_v4(&data(100));
    let frags = split_v4(&whole, 32);
    assert_eq!(frags.len(), 4);
    for order in [[0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]] {
        let mut d = Defragmenter::new(DefragConfig::default());
        let mut out = None;
        for (n, &i) in order.iter().enumerate() {
            let r = push(&mut d, &frags[i], n as u64);
            if n < 3 {
                assert_eq!(r, DefragResult::Held, "{order:?} step {n}");
            } else {
                out = Some(reassembled(r));
            }
        }
        let out = out.unwrap();
        assert_eq!(&out[20..], &whole[20..], "{order:?}");
        assert_eq!(out[6..8], [0, 0], "fragment field cleared");
        assert!(checksum_ok(&out[..20]));
        let p = decode(LinkType::RAW, &out).unwrap();
        assert!(!p.is_fragment);
        assert_eq!((p.protocol, p.src_port, p.dst_port), (proto::UDP, 7, 9));
        assert_eq!(&out[p.payload], &data(100)[..]);
        let s = d.stats();
        assert_eq!((s.reassembled, s.trackers, s.memuse), (1, 0, 0));
    }
}

#[test]
fn overlaps_follow_the_policy() {
    // Payload: 8-byte UDP header + 24 bytes. A holds 8..16; B (offset 0,
    // before A) covers 0..16; C (offset 8, same as A) covers 8..32, last.
    let whole = udp_v4(&[b'.'; 24]);
    let p = &whole[20..];
    let a = frag_v4(&whole, 8, &[b'A'; 8], true);
    let b = frag_v4(&whole, 0, &cat(&p[..8], &[b'B'; 8]), true);
    let c = frag_v4(&whole, 8, &[b'C'; 24], false);
    for (policy, want) in [
        // BSD: B starts before A and wins; C starts with A, A wins.
        (OverlapPolicy::Bsd, [b'B'; 8]),
        (OverlapPolicy::First, [b'A'; 8]),
        (OverlapPolicy::Last, [b'C'; 8]),
    ] {
        let mut d = Defragmenter::new(DefragConfig {
            policy,
            ..DefragConfig::default()
        });
        assert_eq!(push(&mut d, &a, 0), DefragResult::Held);
        assert_eq!(push(&mut d, &b, 1), DefragResult::Held);
        let out = reassembled(push(&mut d, &c, 2));
        assert_eq!(out.len(), 20 + 32, "{policy:?}");
        assert_eq!(&out[20..28], &p[..8], "{policy:?}: udp header");
        assert_eq!(out[28..36], want, "{policy:?}");
        assert_eq!(out[36..52], [b'C'; 16], "{policy:?}: tail only in C");
        assert_eq!(d.stats().overlaps, 2, "{policy:?}");
    }
    assert_eq!(DefragConfig::default().policy, OverlapPolicy::Bsd);
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

#[test]
fn duplicates_change_nothing() {
    let whole = udp_v4(&data(40));
    let frags = split_v4(&whole, 16);
    let mut d = Defragmenter::new(DefragConfig::default());
    assert_eq!(push(&mut d, &frags[0], 0), DefragResult::Held);
    assert_eq!(push(&mut d, &frags[0], 1), DefragResult::Held);
    assert_eq!(push(&mut d, &frags[1], 2), DefragResult::Held);
    let out = reassembled(push(&mut d, &frags[2], 3));
    assert_eq!(&out[20..], &whole[20..]);
    assert_eq!(d.stats().overlaps, 1);
}

#[test]
fn datagrams_time_out() {
    let whole = udp_v4(&data(40));
    let frags = split_v4(&whole, 16);
    let cfg = DefragConfig {
        timeout_us: 1_000,
        ..DefragConfig::default()
    };
    // Late fragment: the old ones are dropped, it starts a new datagram.
    let mut d = Defragmenter::new(cfg.clone());
    push(&mut d, &frags[0], 0);
    push(&mut d, &frags[1], 500);
    assert_eq!(push(&mut d, &frags[2], 1_501), DefragResult::Held);
    assert_eq!(d.stats().timeouts, 1);
    assert_eq!(d.stats().trackers, 1);
    // The deadline slides with each fragment.
    let mut d = Defragmenter::new(cfg.clone());
    push(&mut d, &frags[0], 0);
    push(&mut d, &frags[1], 900);
    assert!(matches!(
        push(&mut d, &frags[2], 1_800),
        DefragResult::Reassembled(_)
    ));
    // `expire` frees what waited too long.
    let mut d = Defragmenter::new(cfg);
    push(&mut d, &frags[0], 0);
    assert!(d.stats().memuse > 0);
    assert_eq!(d.expire(1_000), 0);
    assert_eq!(d.expire(1_001), 1);
    let s = d.stats();
    assert_eq!((s.trackers, s.memuse, s.timeouts), (0, 0, 1));
}

#[test]
fn memcap_and_tracker_limits_refuse_fragments() {
    let whole = udp_v4(&data(200));
    let frags = split_v4(&whole, 64);
    let mut d = Defragmenter::new(DefragConfig {
        memcap: 300,
        ..DefragConfig::default()
    });
    assert_eq!(push(&mut d, &frags[0], 0), DefragResult::Held);
    assert_eq!(push(&mut d, &frags[1], 0), DefragResult::Held);
    assert_eq!(
        push(&mut d, &frags[2], 0),
        DefragResult::Dropped(DefragDrop::Memcap)
    );
    assert!(d.stats().memuse <= 300);
    assert_eq!(d.stats().dropped, 1);

    let mut d = Defragmenter::new(DefragConfig {
        max_trackers: 1,
        ..DefragConfig::default()
    });
    let other = udp_v4(&data(20));
    let mut other_frag = split_v4(&other, 8).remove(0);
    other_frag[4] = 0x99; // another IP id
    assert_eq!(push(&mut d, &frags[0], 0), DefragResult::Held);
    assert_eq!(
        push(&mut d, &other_frag, 0),
        DefragResult::Dropped(DefragDrop::TooManyTrackers)
    );
}

#[test]
fn oversized_datagram_is_dropped() {
    let whole = udp_v4(&data(16));
    // Offset 65528 + 16 bytes runs past 65535.
    let late = frag_v4(&whole, 65_528, &data(16), false);
    let mut d = Defragmenter::new(DefragConfig::default());
    assert_eq!(push(&mut d, &split_v4(&whole, 8)[0], 0), DefragResult::Held);
    assert_eq!(
        push(&mut d, &late, 1),
        DefragResult::Dropped(DefragDrop::TooLarge)
    );
    assert_eq!(d.stats().trackers, 0);
}

/// IPv6/TCP over Ethernet + VLAN, fragmented with a fragment header after a
/// destination options header (part of the unfragmentable part here).
#[test]
fn ipv6_fragment_header_is_removed_on_reassembly() {
    let a = "2001:db8::1".parse().unwrap();
    let b = "2001:db8::2".parse().unwrap();
    let payload = data(1000);
    let hdr = synth::TcpHeader {
        src_port: 12345,
        dst_port: 8080,
        flags: 0x10,
        ..synth::TcpHeader::default()
    };
    let whole = synth::tcp_frame(IpPair::V6(a, b), &hdr, &payload).unwrap();
    let ip = &whole[14..];
    let upper = &ip[40..]; // TCP header + data
                           // IPv6 header with next header 60, a PadN dest-options header naming 44.
    let mut base = ip[..40].to_vec();
    base[6] = 60;
    let dest_opts = [44u8, 0, 1, 4, 0, 0, 0, 0];
    let frames: Vec<Vec<u8>> = upper
        .chunks(400)
        .enumerate()
        .map(|(i, c)| {
            let more = (i + 1) * 400 < upper.len();
            let field = ((i * 400 / 8) as u16) << 3 | u16::from(more);
            let mut fh = vec![proto::TCP, 0];
            fh.extend_from_slice(&field.to_be_bytes());
            fh.extend_from_slice(&0xa5d3_3a2du32.to_be_bytes());
            let mut p = base.clone();
            let plen = (dest_opts.len() + fh.len() + c.len()) as u16;
            p[4..6].copy_from_slice(&plen.to_be_bytes());
            p.extend_from_slice(&dest_opts);
            p.extend_from_slice(&fh);
            p.extend_from_slice(c);
            let mut eth = whole[..12].to_vec();
            eth.extend_from_slice(&[0x81, 0x00, 0x00, 0x06, 0x86, 0xdd]);
            eth.extend_from_slice(&p);
            eth
        })
        .collect();
    assert_eq!(frames.len(), 3);
    let mut d = Defragmenter::new(DefragConfig::default());
    let mut out = None;
    for f in frames.iter().rev() {
        let dec = decode(LinkType::ETHERNET, f).unwrap();
        assert!(dec.is_fragment);
        if let DefragResult::Reassembled(p) = d.push(f, &dec, 0) {
            out = Some(p);
        }
    }
    let out = out.expect("reassembled");
    assert_eq!(out.len(), 40 + 8 + upper.len());
    assert_eq!(out[6], 60, "ipv6 header still names the options header");
    assert_eq!(out[40], proto::TCP, "options header now names TCP");
    let p = decode(LinkType::RAW, &out).unwrap();
    assert!(!p.is_fragment);
    assert_eq!(
        (p.protocol, p.src_port, p.dst_port),
        (proto::TCP, 12345, 8080)
    );
    assert_eq!(&out[p.payload], &payload[..]);
}

/// Runs a suricata-verify defrag capture through decode + defrag and
/// returns the reassembled datagrams, decoded; `None` without the data.
fn replay_capture(test: &str) -> Option<Vec<(u8, usize)>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/suricata-verify/tests/defrag")
        .join(test);
    let pcap = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "pcap"))?;
    let mut d = Defragmenter::new(DefragConfig::default());
    let mut out = Vec::new();
    for frame in CaptureReader::open(&pcap).unwrap() {
        let frame = frame.unwrap();
        let dec = decode(frame.linktype, &frame.data).unwrap();
        if let DefragResult::Reassembled(ip) = d.push(&frame.data, &dec, frame.timestamp_us) {
            let p = decode(LinkType::RAW, &ip).unwrap();
            out.push((p.protocol, p.payload.len()));
        }
    }
    Some(out)
}

#[test]
fn suricata_verify_defrag_captures_reassemble() {
    for (test, want) in [
        ("bug-6887-defrag-eth-vlan-ipv6-tcp", (proto::TCP, 1000)),
        ("bug-6887-defrag-ppp-ipv6-tcp", (proto::TCP, 1000)),
        (
            "bug-6942-6887-defrag-eth-ip-gre-ppp-ip-udp-data",
            (proto::UDP, 65_535 - 20 - 8),
        ),
    ] {
        let Some(got) = replay_capture(test) else {
            eprintln!("{test}: capture not present, skipped");
            continue;
        };
        assert_eq!(got, [want], "{test}");
    }
}
