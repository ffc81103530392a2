//! Headers, rule files, comments and continuation lines.

use super::super::{parse_rules, Action, Protocol, RuleSource, Vars};
use super::rule;

#[test]
fn header_fields_are_parsed() {
    // (rule, action, protocol, bidirectional)
    let table: &[(&str, Action, Protocol, bool)] = &[
        (
            "alert tcp any any -> any any (sid:1;)",
            Action::Alert,
            Protocol::Tcp,
            false,
        ),
        (
            "drop udp any any <> any any (sid:1;)",
            Action::Drop,
            Protocol::Udp,
            true,
        ),
        (
            "reject ip any any -> any any (sid:1;)",
            Action::Reject,
            Protocol::Ip,
            false,
        ),
        (
            "rejectsrc icmp any any -> any any (sid:1;)",
            Action::Reject,
            Protocol::Icmp,
            false,
        ),
        (
            "rejectdst tcp any any -> any any (sid:1;)",
            Action::Reject,
            Protocol::Tcp,
            false,
        ),
        (
            "rejectboth tcp any any -> any any (sid:1;)",
            Action::Reject,
            Protocol::Tcp,
            false,
        ),
        (
            "pass tcp any any -> any any (sid:1;)",
            Action::Pass,
            Protocol::Tcp,
            false,
        ),
        (
            "ALERT TCP any any -> any any (sid:1;)",
            Action::Alert,
            Protocol::Tcp,
            false,
        ),
        (
            "alert pkthdr any any -> any any (sid:1;)",
            Action::Alert,
            Protocol::Ip,
            false,
        ),
        (
            "alert http any any -> any any (sid:1;)",
            Action::Alert,
            Protocol::AppLayer("http".into()),
            false,
        ),
        (
            "alert tcp-pkt any any -> any any (sid:1;)",
            Action::Alert,
            Protocol::AppLayer("tcp-pkt".into()),
            false,
        ),
        (
            "alert tcp-stream any any -> any any (sid:1;)",
            Action::Alert,
            Protocol::AppLayer("tcp-stream".into()),
            false,
        ),
        (
            "alert DNS any any -> any any (sid:1;)",
            Action::Alert,
            Protocol::AppLayer("dns".into()),
            false,
        ),
        (
            "alert tls any any -> any any (sid:1;)",
            Action::Alert,
            Protocol::AppLayer("tls".into()),
            false,
        ),
    ];
    for (text, action, protocol, bidirectional) in table {
        let r = rule(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(&r.action, action, "{text}");
        assert_eq!(&r.protocol, protocol, "{text}");
        assert_eq!(r.bidirectional, *bidirectional, "{text}");
        assert_eq!(r.sid, Some(1), "{text}");
        assert_eq!(r.text, *text);
    }
}

#[test]
fn header_addresses_and_ports_resolve() {
    let r = rule(
        "alert tcp $EXTERNAL_NET [1024:, !8080] -> [$HOME_NET, !10.0.0.1] $HTTP_PORTS (sid:7;)",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ip = |s: &str| s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
    assert!(r.src.contains_ip(ip("8.8.8.8")));
    assert!(!r.src.contains_ip(ip("192.168.1.1")));
    assert!(r.src_ports.contains(1024) && !r.src_ports.contains(8080) && !r.src_ports.contains(80));
    assert!(r.dst.contains_ip(ip("10.0.0.2")) && !r.dst.contains_ip(ip("10.0.0.1")));
    assert!(r.dst_ports.contains(80) && !r.dst_ports.contains(81));
}

#[test]
fn tabs_and_repeated_blanks_separate_fields() {
    let r = rule("alert  http\t$HOME_NET any ->   $EXTERNAL_NET any (sid:3;)")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.protocol, Protocol::AppLayer("http".into()));
}

#[test]
fn option_parenthesis_may_touch_header() {
    let r =
        rule("alert tcp any any -> any 80(msg:\"x\"; sid:4;)").unwrap_or_else(|e| panic!("{e}"));
    assert!(r.dst_ports.contains(80));
}

#[test]
fn file_skips_blanks_and_comments_and_counts_lines() {
    let text = "\u{feff}# a comment\n\n#alert tcp any any -> any any (sid:9;)\n  # indented comment\nalert tcp any any -> any any (sid:1;)\r\n\t\nalert udp any any -> any any (sid:2;)\n   alert udp any any -> any any (sid:3;)";
    let rules = parse_rules(
        &RuleSource {
            file: "f.rules",
            text,
        },
        &Vars::new(),
    );
    let got: Vec<(usize, Option<u32>)> = rules
        .iter()
        .map(|r| {
            r.as_ref()
                .map(|r| (r.line, r.sid))
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    assert_eq!(got, vec![(5, Some(1)), (7, Some(2)), (8, Some(3))]);
    assert!(rules.iter().flatten().all(|r| r.file == "f.rules"));
}

#[test]
fn continuation_lines_join() {
    let text = "alert tcp any any -> any any \\\n  (msg:\"two \\\n lines\"; \\  \n sid:5;)\nalert tcp any any -> any any (sid:6;)\n";
    let rules = parse_rules(
        &RuleSource {
            file: "f.rules",
            text,
        },
        &Vars::new(),
    );
    assert_eq!(rules.len(), 2);
    let first = rules[0].as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.line, 1);
    assert_eq!(first.sid, Some(5));
    assert_eq!(
        first.text,
        "alert tcp any any -> any any   (msg:\"two  lines\";  sid:5;)"
    );
    assert_eq!(first.options[0].value.as_deref(), Some("two  lines"));
    let second = rules[1].as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.line, 5);
}

#[test]
fn continuation_swallows_a_following_hash_line() {
    // Suricata checks for comments only on a rule's first line.
    let text = "alert tcp any any -> any any (content:\"abc\\\n#def\"; sid:1;)\n";
    let rules = parse_rules(
        &RuleSource {
            file: "f.rules",
            text,
        },
        &Vars::new(),
    );
    assert_eq!(rules.len(), 1);
    let r = rules[0].as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.options[0].value.as_deref(), Some("abc#def"));
}

#[test]
fn comment_ending_in_backslash_does_not_continue() {
    let text = "# comment \\\nalert tcp any any -> any any (sid:1;)\n";
    let rules = parse_rules(
        &RuleSource {
            file: "f.rules",
            text,
        },
        &Vars::new(),
    );
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].as_ref().map(|r| r.line).ok(), Some(2));
}

#[test]
fn one_bad_rule_does_not_stop_the_file() {
    let text = "alert tcp any any -> any any (sid:1;)\nalert tcp any any -> any any (sid:2)\nalert tcp any any -> any any (sid:3;)\n";
    let rules = parse_rules(
        &RuleSource {
            file: "f.rules",
            text,
        },
        &Vars::new(),
    );
    assert_eq!(rules.len(), 3);
    assert!(rules[0].is_ok() && rules[1].is_err() && rules[2].is_ok());
}

#[test]
fn parsed_rule_round_trips_through_serde() {
    let r = rule("alert tcp $HOME_NET any -> !$HOME_NET [80,443] (msg:\"m\"; content:!\"x\"; nocase; sid:8;)")
        .unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::to_string(&r).unwrap_or_else(|e| panic!("{e}"));
    let back: super::super::ParsedRule =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, r);
}
