//! Packet-header keywords read from real IPv4/TCP/ICMP header bytes, and
//! `threshold` / `detection_filter` lowering.

mod common;

use common::{compile, icmp, matches, tcp, tcp_with, Build};
use sandgate_matcher::{ThresholdKind, TrackBy};

fn rule(opts: &str) -> String {
    format!("alert ip any any -> any any ({opts} sid:1;)")
}

#[test]
fn tcp_flags_with_modifiers_and_mask() {
    let syn = tcp_with(
        &Build {
            tcp_flags: 0x02,
            ..Build::default()
        },
        b"",
    );
    let synack_ece = tcp_with(
        &Build {
            tcp_flags: 0x52,
            ..Build::default()
        },
        b"",
    );
    let pa = tcp(b"x"); // PSH+ACK
    for (opts, p, want) in [
        ("flags:S;", &syn, true),
        ("flags:S;", &pa, false),
        ("flags:PA;", &pa, true),
        ("flags:A;", &pa, false),
        ("flags:+A;", &pa, true),
        ("flags:*SA;", &pa, true),
        ("flags:*SF;", &pa, false),
        ("flags:!S;", &pa, true),
        ("flags:!S;", &syn, false),
        ("flags:S;", &synack_ece, false),
        ("flags:SE;", &synack_ece, false),
        ("flags:SA,E;", &synack_ece, true),
        (
            "flags:S,12;",
            &tcp_with(
                &Build {
                    tcp_flags: 0xc2,
                    ..Build::default()
                },
                b"",
            ),
            true,
        ),
        (
            "flags:S,CE;",
            &tcp_with(
                &Build {
                    tcp_flags: 0xc2,
                    ..Build::default()
                },
                b"",
            ),
            true,
        ),
        (
            "flags:S;",
            &tcp_with(
                &Build {
                    tcp_flags: 0xc2,
                    ..Build::default()
                },
                b"",
            ),
            false,
        ),
        (
            "flags:0;",
            &tcp_with(
                &Build {
                    tcp_flags: 0,
                    ..Build::default()
                },
                b"",
            ),
            true,
        ),
    ] {
        assert_eq!(matches(&rule(opts), p), want, "{opts}");
    }
}

#[test]
fn ip_and_tcp_fields() {
    let p = tcp_with(
        &Build {
            seq: 7,
            ack: 9,
            window: 0,
            tos: 0x10,
            frag: 0x2000 | 5,
            tcp_opts: &[2, 4, 0x05, 0xb4],
            ip_opts: &[7, 3, 4],
            ..Build::default()
        },
        b"hi",
    );
    for (opts, want) in [
        ("ttl:64;", true),
        ("ttl:<64;", false),
        ("ttl:>=64;", true),
        ("ttl:60-70;", true),
        ("ip_proto:6;", true),
        ("ip_proto:tcp;", true),
        ("ip_proto:!tcp;", false),
        ("ip_proto:udp;", false),
        ("id:4660;", true),
        ("id:1;", false),
        ("tos:16;", true),
        ("tos:0x10;", true),
        ("tos:!16;", false),
        ("seq:7;", true),
        ("seq:8;", false),
        ("ack:9;", true),
        ("window:0;", true),
        ("window:!0;", false),
        ("tcp.mss:1460;", true),
        ("tcp.mss:<1000;", false),
        ("fragbits:M;", true),
        ("fragbits:D;", false),
        ("fragbits:*MD;", true),
        ("fragbits:!D;", true),
        ("fragoffset:5;", true),
        ("fragoffset:>5;", false),
        ("ipopts:rr;", true),
        ("ipopts:any;", true),
        ("ipopts:ts;", false),
        ("sameip;", false),
        ("dsize:2;", true),
    ] {
        assert_eq!(matches(&rule(opts), &p), want, "{opts}");
    }
    assert!(!matches(&rule("ipopts:any;"), &tcp(b"")), "no options");
    assert!(matches(&rule("fragbits:D;"), &tcp(b"")));
}

#[test]
fn icmp_type_code_id_seq() {
    let echo = icmp(8, 0, 0x42, 7, b"ping");
    let unreach = icmp(3, 13, 0, 0, b"");
    for (opts, p, want) in [
        ("itype:8;", &echo, true),
        ("itype:0;", &echo, false),
        ("itype:>5;", &echo, true),
        ("itype:5<>9;", &echo, true),
        ("itype:8<>9;", &echo, false),
        ("icode:0;", &echo, true),
        ("icode:>12;", &unreach, true),
        ("icode:<13;", &unreach, false),
        ("icmp_id:66;", &echo, true),
        ("icmp_id:67;", &echo, false),
        ("icmp_seq:7;", &echo, true),
        ("icmp_id:0;", &unreach, false),
        ("flags:S;", &echo, false),
    ] {
        assert_eq!(matches(&rule(opts), p), want, "{opts}");
    }
}

#[test]
fn thresholds_are_lowered_and_validated() {
    let c = compile("alert tcp any any -> any any (threshold: type limit, track by_src, count 1, seconds 60; sid:1;)\n\
                     alert tcp any any -> any any (detection_filter: track by_dst, count 5, seconds 10; sid:2;)\n\
                     alert tcp any any -> any any (threshold: type both, track by_flow, count 2, seconds 3; sid:3;)\n\
                     alert tcp any any -> any any (threshold: type limit, track by_src, count 1; sid:4;)\n\
                     alert tcp any any -> any any (threshold: type nope, track by_src, count 1, seconds 1; sid:5;)\n\
                     alert tcp any any -> any any (threshold: type limit, track by_src, count 0, seconds 1; sid:6;)\n\
                     alert tcp any any -> any any (threshold: type limit, track by_src, count 1, seconds 1; detection_filter: track by_src, count 1, seconds 1; sid:7;)\n");
    let t: Vec<_> = c.set.rules.iter().map(|r| r.meta.thresholds[0]).collect();
    assert_eq!(t.len(), 3, "{:?}", c.skipped);
    assert_eq!(
        (t[0].kind, t[0].track, t[0].count, t[0].seconds),
        (ThresholdKind::Limit, TrackBy::BySrc, 1, 60)
    );
    assert_eq!(
        (t[1].kind, t[1].track, t[1].count, t[1].seconds),
        (ThresholdKind::DetectionFilter, TrackBy::ByDst, 5, 10)
    );
    assert_eq!(
        (t[2].kind, t[2].track),
        (ThresholdKind::Both, TrackBy::ByFlow)
    );
    assert_eq!(c.skipped.len(), 4);
    for s in &c.skipped {
        let text = s.to_string();
        assert!(
            text.contains("threshold") || text.contains("detection_filter"),
            "{text}"
        );
    }
}

#[test]
fn metadata_only_keywords_and_unsupported_ones() {
    let c = compile(
        "alert tcp any any -> any any (target:dest_ip; noalert; sid:1;)\n\
                     alert tcp any any -> any any (tag:session,10,packets; sid:2;)\n",
    );
    assert_eq!(c.set.rules.len(), 1);
    assert!(c.set.rules[0].noalert);
    assert!(c.skipped[0].to_string().contains("tag"));
}
