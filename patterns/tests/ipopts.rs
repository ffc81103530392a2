//! `ipopts` as Suricata (7.0.5+) evaluates it: each name is one bit of the
//! set of options the IPv4 decoder recognised and found valid, `any` is any
//! bit, names compare case-insensitively. The first eight packets are the
//! ones of suricata-verify's `detect-ipopts` (built by scapy there).

mod common;

use common::{matches, tcp_with, Build};

const NAMES: [&str; 10] = [
    "rr", "lsrr", "eol", "nop", "ts", "sec", "esec", "ssrr", "satid", "any",
];

/// (what, IPv4 option bytes (padded with 0 = EOL to 4), names that match).
const CASES: &[(&str, &[u8], &[&str])] = &[
    ("record route", &[7, 3, 4], &["rr", "eol", "any"]),
    (
        "loose source route",
        &[131, 11, 4, 1, 2, 3, 4, 5, 6, 7, 8],
        &["lsrr", "eol", "any"],
    ),
    ("eol only", &[0], &["eol", "any"]),
    ("nop", &[1], &["nop", "eol", "any"]),
    ("timestamp", &[68, 8, 9, 0, 0, 0, 0, 0], &["ts", "any"]),
    (
        "security",
        &[130, 11, 0, 0, 0, 0, 0, 0, b'X', b'Y', b'Z'],
        &["sec", "eol", "any"],
    ),
    (
        "strict source route",
        &[137, 11, 4, 1, 1, 1, 1, 8, 8, 8, 8],
        &["ssrr", "eol", "any"],
    ),
    ("stream id", &[136, 4, 0, 0], &["satid", "any"]),
    ("extended security", &[133, 3, 0], &["esec", "eol", "any"]),
    (
        "nop then record route",
        &[1, 7, 3, 4],
        &["nop", "rr", "any"],
    ),
    (
        "options after eol are not read",
        &[0, 7, 3, 4],
        &["eol", "any"],
    ),
    // Type 99 is unknown to Suricata: no bit, not even for `any`.
    ("unknown option", &[99, 4, 0, 0], &[]),
    ("unknown option then eol", &[99, 2, 0, 0], &["eol", "any"]),
    // Pointer 5 is not a multiple of 4: RR is invalid, EOL still counts.
    ("record route with bad pointer", &[7, 3, 5], &["eol", "any"]),
    (
        "timestamp with pointer below 5",
        &[68, 8, 4, 0, 0, 0, 0, 0],
        &[],
    ),
    ("stream id of wrong length", &[136, 3, 0], &["eol", "any"]),
    (
        "duplicate record route",
        &[7, 3, 4, 7, 3, 4, 0, 0],
        &["rr", "eol", "any"],
    ),
    // Length below 2 or past the header: the packet is invalid.
    ("option length 1", &[7, 1, 0, 0], &[]),
    ("option longer than the header", &[1, 7, 40, 4], &[]),
    // A last byte that cannot hold a length: the walk just stops.
    ("dangling option type", &[1, 1, 1, 7], &["nop", "any"]),
];

#[test]
fn ipopts_names_match_the_options_suricata_recognises() {
    for (what, opts, want) in CASES {
        let packet = tcp_with(
            &Build {
                ip_opts: opts,
                ..Build::default()
            },
            b"",
        );
        for name in NAMES {
            let rule = format!("alert ip any any -> any any (ipopts:{name}; sid:1;)");
            assert_eq!(
                matches(&rule, &packet),
                want.contains(&name),
                "{what}: ipopts:{name}"
            );
        }
    }
}

#[test]
fn ipopts_without_options_and_name_case() {
    let plain = tcp_with(&Build::default(), b"");
    for name in NAMES {
        let rule = format!("alert ip any any -> any any (ipopts:{name}; sid:1;)");
        assert!(!matches(&rule, &plain), "no options: ipopts:{name}");
    }
    let rr = tcp_with(
        &Build {
            ip_opts: &[7, 3, 4],
            ..Build::default()
        },
        b"",
    );
    assert!(matches(
        "alert ip any any -> any any (ipopts:RR; sid:1;)",
        &rr
    ));
    assert!(matches(
        "alert ip any any -> any any (ipopts: Any; sid:1;)",
        &rr
    ));
}
