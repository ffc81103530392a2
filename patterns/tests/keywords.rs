//! Table-driven keyword tests: rule text → compiled rule → does it match
//! this packet? Runs the matcher natively; the wasm build runs the same code
//! (the end-to-end tests check that path).

use sandgate_matcher::{Direction, Matcher, PacketView, Scratch, FLOW_ESTABLISHED};
use sandgate_patterns::compile::{compile_rules, SkipReason};
use sandgate_patterns::rules::{ipv4_key, RuleSource, Vars};

struct Pkt<'a> {
    proto: u8,
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    dir: Direction,
    flags: u32,
    payload: &'a [u8],
}

fn tcp(payload: &[u8]) -> Pkt<'_> {
    Pkt {
        proto: 6,
        src: [10, 0, 0, 1],
        sport: 40000,
        dst: [192, 168, 1, 10],
        dport: 80,
        dir: Direction::ToServer,
        flags: FLOW_ESTABLISHED,
        payload,
    }
}

fn matches(rule: &str, pkt: &Pkt<'_>) -> bool {
    let compiled = compile_rules(
        &[RuleSource {
            file: "t.rules",
            text: rule,
        }],
        &Vars::suricata_defaults(),
        "t",
        "1",
    );
    assert!(
        compiled.skipped.is_empty(),
        "rule did not compile: {:?}",
        compiled.skipped
    );
    let m = Matcher::new(compiled.set);
    let view = PacketView {
        protocol: pkt.proto,
        src: ipv4_key(pkt.src.into()),
        dst: ipv4_key(pkt.dst.into()),
        src_port: pkt.sport,
        dst_port: pkt.dport,
        direction: pkt.dir,
        flow_flags: pkt.flags,
        flow_id: 1,
        ip_version: 4,
        l3: &[],
        l4_offset: 0,
        payload: pkt.payload,
    };
    let mut out = Vec::new();
    m.matches(&view, &mut Scratch::default(), &mut out);
    !out.is_empty()
}

#[test]
fn content_and_modifiers_table() {
    let cases: &[(&str, &[u8], bool)] = &[
        (
            r#"alert tcp any any -> any any (content:"abc"; sid:1;)"#,
            b"xxabcxx",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"abc"; sid:1;)"#,
            b"xxABCxx",
            false,
        ),
        (
            r#"alert tcp any any -> any any (content:"abc"; nocase; sid:1;)"#,
            b"xxABCxx",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"|41 42|C"; sid:1;)"#,
            b"ABC",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"|3b|"; sid:1;)"#,
            b"a;b",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"a\;b"; sid:1;)"#,
            b"a;b",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"abc"; offset:2; sid:1;)"#,
            b"xxabc",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"abc"; offset:3; sid:1;)"#,
            b"xxabc",
            false,
        ),
        (
            r#"alert tcp any any -> any any (content:"abc"; depth:4; sid:1;)"#,
            b"xabc",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"abc"; depth:4; sid:1;)"#,
            b"xxabc",
            false,
        ),
        (
            r#"alert tcp any any -> any any (content:"abc"; offset:1; depth:3; sid:1;)"#,
            b"xabc",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"abc"; depth:3; offset:1; sid:1;)"#,
            b"xabc",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"a"; content:"b"; distance:1; sid:1;)"#,
            b"ab",
            false,
        ),
        (
            r#"alert tcp any any -> any any (content:"a"; content:"b"; distance:1; sid:1;)"#,
            b"a-b",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"a"; content:"b"; within:1; sid:1;)"#,
            b"ab",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"a"; content:"b"; within:1; sid:1;)"#,
            b"a-b",
            false,
        ),
        // backtracking: the second "GET" is the one followed by "/x"
        (
            r#"alert tcp any any -> any any (content:"GET"; content:"/x"; within:3; sid:1;)"#,
            b"GET /y GET /x",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"GET"; startswith; sid:1;)"#,
            b"GET /",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"GET"; startswith; sid:1;)"#,
            b" GET /",
            false,
        ),
        (
            r#"alert tcp any any -> any any (content:".exe"; endswith; sid:1;)"#,
            b"a.exe",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:".exe"; endswith; sid:1;)"#,
            b"a.exe?",
            false,
        ),
        (
            r#"alert tcp any any -> any any (content:"GET"; content:!"admin"; sid:1;)"#,
            b"GET /",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"GET"; content:!"admin"; sid:1;)"#,
            b"GET /admin",
            false,
        ),
        (
            r#"alert tcp any any -> any any (content:!"admin"; sid:1;)"#,
            b"",
            true,
        ),
        // content at the very end of the payload, offset at the end
        (
            r#"alert tcp any any -> any any (content:"z"; offset:4; sid:1;)"#,
            b"abcdz",
            true,
        ),
        (
            r#"alert tcp any any -> any any (content:"z"; offset:5; sid:1;)"#,
            b"abcdz",
            false,
        ),
        // nocase only folds ASCII
        (
            "alert tcp any any -> any any (content:\"\u{e9}t\u{e9}\"; nocase; sid:1;)",
            "\u{c9}T\u{c9}".as_bytes(),
            false,
        ),
        (
            "alert tcp any any -> any any (content:\"\u{e9}t\u{e9}\"; nocase; sid:1;)",
            "\u{e9}T\u{e9}".as_bytes(),
            true,
        ),
        // fast_pattern changes the prefilter, not the result
        (
            r#"alert tcp any any -> any any (content:"ab"; content:"longer"; fast_pattern; sid:1;)"#,
            b"ab longer",
            true,
        ),
    ];
    for (rule, payload, want) in cases {
        assert_eq!(
            matches(rule, &tcp(payload)),
            *want,
            "{rule} on {:?}",
            String::from_utf8_lossy(payload)
        );
    }
}

#[test]
fn header_table() {
    let p = tcp(b"x");
    let cases: &[(&str, bool)] = &[
        ("alert tcp any any -> any any (sid:1;)", true),
        ("alert udp any any -> any any (sid:1;)", false),
        ("alert ip any any -> any any (sid:1;)", true),
        (
            "alert tcp 10.0.0.0/8 any -> 192.168.1.0/24 80 (sid:1;)",
            true,
        ),
        (
            "alert tcp 10.0.0.0/8 any -> 192.168.1.0/24 81 (sid:1;)",
            false,
        ),
        ("alert tcp any any -> any 1:100 (sid:1;)", true),
        ("alert tcp any any -> any [!80,443] (sid:1;)", false),
        ("alert tcp $HOME_NET any -> any any (sid:1;)", true),
        ("alert tcp $EXTERNAL_NET any -> any any (sid:1;)", false),
        ("alert tcp 192.168.1.10 80 -> 10.0.0.1 any (sid:1;)", false),
        ("alert tcp 192.168.1.10 80 <> 10.0.0.1 any (sid:1;)", true),
        (
            "alert tcp any any -> any any (flow:to_server,established; sid:1;)",
            true,
        ),
        (
            "alert tcp any any -> any any (flow:to_client; sid:1;)",
            false,
        ),
        (
            "alert tcp any any -> any any (flow:not_established; sid:1;)",
            false,
        ),
    ];
    for (rule, want) in cases {
        assert_eq!(matches(rule, &p), *want, "{rule}");
    }
}

#[test]
fn unsupported_rules_are_skipped_with_sid_line_and_keyword() {
    let text = "alert tcp any any -> any any (msg:\"ok\"; content:\"a\"; sid:1;)\n\
                alert tcp any any -> any any (msg:\"tag\"; tag:session,5,packets; sid:2;)\n\
                alert smb any any -> any any (msg:\"app\"; sid:3;)\n\
                alert tcp any any -> any any (msg:\"dup\"; sid:1;)\n\
                alert tcp any any -> any any (msg:\"bad\"; content:\"|4|\"; sid:5;)\n\
                alert tcp any any -> any any (msg:\"orphan\"; nocase; sid:6;)\n\
                alert tcp any any -> any any (msg:\"broken\" sid:7;\n";
    let compiled = compile_rules(
        &[RuleSource {
            file: "mixed.rules",
            text,
        }],
        &Vars::suricata_defaults(),
        "t",
        "1",
    );
    assert_eq!(compiled.set.rules.len(), 1);
    let skipped: Vec<(usize, Option<u32>, String)> = compiled
        .skipped
        .iter()
        .map(|s| (s.line, s.sid, s.to_string()))
        .collect();
    assert_eq!(skipped.len(), 6, "{skipped:#?}");
    assert!(matches!(
        &compiled.skipped[0].reason,
        SkipReason::UnsupportedKeyword(k) if k == "tag"
    ));
    assert_eq!(skipped[0].0, 2);
    assert_eq!(skipped[0].1, Some(2));
    assert!(skipped[0]
        .2
        .starts_with("mixed.rules:2 (sid 2): unsupported keyword `tag`"));
    assert!(matches!(
        compiled.skipped[1].reason,
        SkipReason::UnsupportedProtocol(_)
    ));
    assert!(matches!(
        compiled.skipped[2].reason,
        SkipReason::DuplicateSid
    ));
    assert!(skipped[3].2.contains("content"), "{}", skipped[3].2);
    assert!(skipped[4].2.contains("nocase"), "{}", skipped[4].2);
    assert_eq!(skipped[5].0, 7);
}
