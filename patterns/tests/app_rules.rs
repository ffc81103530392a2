//! Application-layer rules (interface 1.2.0): sticky buffers and legacy
//! content modifiers lower to per-buffer conditions with Suricata's
//! semantics, app-protocol headers become a condition, and the variant split
//! keeps every packet rule in the 1.0.0 variant. Matched natively with
//! hand-made entries; the real ET ruleset's counts per variant are printed.

use std::path::PathBuf;

use sandgate_matcher::app::{self, proto};
use sandgate_matcher::{
    AppView, Direction, Matcher, NoFlowStore, PacketView, Scratch, FLOW_APP_TX, FLOW_ESTABLISHED,
};
use sandgate_patterns::compile::{compile_rules, SkipReason};
use sandgate_patterns::pipeline::without_app_rules;
use sandgate_patterns::rules::{RuleSource, Vars};

fn matcher(rules: &str) -> Matcher {
    let compiled = compile_rules(
        &[RuleSource {
            file: "t.rules",
            text: rules,
        }],
        &Vars::suricata_defaults(),
        "t",
        "1",
    );
    assert!(compiled.skipped.is_empty(), "{:?}", compiled.skipped);
    Matcher::new(compiled.set)
}

fn skip_reason(rule: &str) -> SkipReason {
    let compiled = compile_rules(
        &[RuleSource {
            file: "t.rules",
            text: rule,
        }],
        &Vars::suricata_defaults(),
        "t",
        "1",
    );
    compiled.skipped.first().expect("skipped").reason.clone()
}

fn view(payload: &[u8], app: bool) -> PacketView<'_> {
    PacketView {
        protocol: 6,
        src: 0xffff_0a00_0001,
        dst: 0xffff_0a00_0002,
        src_port: 40000,
        dst_port: 80,
        direction: Direction::ToServer,
        flow_flags: FLOW_ESTABLISHED | if app { FLOW_APP_TX } else { 0 },
        flow_id: 1,
        ip_version: 4,
        l3: &[],
        l4_offset: 0,
        payload,
    }
}

/// sids of the rules matching a transaction entry with `buffers`.
fn on_tx(m: &Matcher, proto: u8, payload: &[u8], buffers: &[(u32, &[u8])]) -> Vec<u32> {
    let app = AppView { proto, buffers };
    let mut out = Vec::new();
    m.matches_entry(
        &view(payload, true),
        Some(&app),
        &mut Scratch::default(),
        &mut NoFlowStore,
        &mut out,
    );
    out.iter()
        .map(|&r| m.rule_set().rules[r as usize].meta.sid)
        .collect()
}

fn on_packet(m: &Matcher, payload: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    m.matches(&view(payload, false), &mut Scratch::default(), &mut out);
    out.iter()
        .map(|&r| m.rule_set().rules[r as usize].meta.sid)
        .collect()
}

const REQUEST: &[u8] = b"GET /admin/a?b HTTP/1.1\r\nHost: Example.com\r\n\r\n";

#[test]
fn sticky_buffers_apply_to_the_keywords_after_them() {
    let m = matcher(
        r#"alert http any any -> any any (msg:"sticky"; http.uri; content:"/admin"; content:"?b"; distance:0; http.host; content:"example.com"; sid:1;)"#,
    );
    let uri: &[u8] = b"/admin/a?b";
    let host: &[u8] = b"example.com";
    assert_eq!(
        on_tx(
            &m,
            proto::HTTP,
            REQUEST,
            &[(app::HTTP_URI, uri), (app::HTTP_HOST, host)]
        ),
        vec![1]
    );
    // `example.com` must be in the host buffer, not the URI.
    assert_eq!(
        on_tx(
            &m,
            proto::HTTP,
            REQUEST,
            &[(app::HTTP_URI, uri), (app::HTTP_HOST, b"other.org")]
        ),
        Vec::<u32>::new()
    );
    // `distance` is relative to the previous match in the same buffer.
    assert_eq!(
        on_tx(
            &m,
            proto::HTTP,
            REQUEST,
            &[(app::HTTP_URI, b"?b/admin"), (app::HTTP_HOST, host)]
        ),
        Vec::<u32>::new()
    );
    // An application-layer rule never runs on a packet, nor on another
    // protocol's transaction.
    assert_eq!(on_packet(&m, REQUEST), Vec::<u32>::new());
    assert_eq!(
        on_tx(
            &m,
            proto::DNS,
            REQUEST,
            &[(app::HTTP_URI, uri), (app::HTTP_HOST, host)]
        ),
        Vec::<u32>::new()
    );
}

#[test]
fn legacy_modifiers_apply_to_their_content_only_and_pkt_data_returns_to_the_payload() {
    let m = matcher(concat!(
        r#"alert tcp any any -> any any (msg:"legacy"; content:"admin"; http_uri; content:"Host|3a|"; sid:2;)"#,
        "\n",
        r#"alert http any any -> any any (msg:"pkt_data"; http.uri; content:"/admin"; pkt_data; content:"GET "; startswith; sid:3;)"#,
        "\n",
        r#"alert http any any -> any any (msg:"pcre U"; pcre:"/^\/admin\//U"; sid:4;)"#,
        "\n",
        r#"alert http any any -> any any (msg:"urilen"; urilen:>20; sid:5;)"#,
    ));
    let uri: &[u8] = b"/admin/a?b";
    assert_eq!(
        on_tx(&m, proto::HTTP, REQUEST, &[(app::HTTP_URI, uri)]),
        vec![2, 3, 4]
    );
    // `Host:` is only in the payload, `admin` only in the URI buffer.
    assert_eq!(
        on_tx(
            &m,
            proto::HTTP,
            b"GET / HTTP/1.1\r\n\r\n",
            &[(app::HTTP_URI, uri)]
        ),
        vec![3, 4]
    );
    assert_eq!(
        on_tx(
            &m,
            proto::HTTP,
            REQUEST,
            &[(app::HTTP_URI, b"/admin/aaaaaaaaaaaaaaaaaaaaaa")]
        ),
        vec![2, 3, 4, 5]
    );
    // Without a URI buffer no URI condition holds.
    assert_eq!(on_tx(&m, proto::HTTP, REQUEST, &[]), Vec::<u32>::new());
}

#[test]
fn a_buffer_with_several_instances_matches_if_any_does() {
    let m = matcher(
        r#"alert dns any any -> any any (msg:"dns"; dns.query; content:"evil"; nocase; endswith; sid:6;)"#,
    );
    let a: &[u8] = b"example.com";
    let b: &[u8] = b"cdn.EVIL";
    assert_eq!(
        on_tx(
            &m,
            proto::DNS,
            b"",
            &[(app::DNS_QUERY, a), (app::DNS_QUERY, b)]
        ),
        vec![6]
    );
    assert_eq!(
        on_tx(&m, proto::DNS, b"", &[(app::DNS_QUERY, a)]),
        Vec::<u32>::new()
    );
}

#[test]
fn packet_rules_run_on_packets_only_in_a_mixed_set() {
    let m = matcher(concat!(
        r#"alert tcp any any -> any any (msg:"packet"; content:"admin"; sid:7;)"#,
        "\n",
        r#"alert http any any -> any any (msg:"app"; content:"admin"; sid:8;)"#,
    ));
    assert_eq!(on_packet(&m, REQUEST), vec![7]);
    assert_eq!(on_tx(&m, proto::HTTP, REQUEST, &[]), vec![8]);
    let (packet_only, left_out) = without_app_rules(m.rule_set());
    assert_eq!(left_out, 1);
    assert_eq!(packet_only.rules.len(), 1);
    assert_eq!(packet_only.rules[0].meta.sid, 7);
}

#[test]
fn unknown_protocols_and_conflicting_pcre_buffers_are_reported() {
    assert_eq!(
        skip_reason(r#"alert smb any any -> any any (msg:"x"; content:"a"; sid:9;)"#),
        SkipReason::UnsupportedProtocol("smb".into())
    );
    assert!(matches!(
        skip_reason(r#"alert http any any -> any any (msg:"x"; pcre:"/a/UH"; sid:10;)"#),
        SkipReason::UnsupportedFeature { .. }
    ));
    assert!(matches!(
        skip_reason(r#"alert http any any -> any any (msg:"x"; http_uri; sid:11;)"#),
        SkipReason::BadValue { .. }
    ));
}

/// Counts per variant on ET Open 2020 (skips when the shared data is absent).
#[test]
fn et_open_2020_rules_per_variant() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/rules/et-open-2020");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("skip: rule directory {} not found", dir.display());
        return;
    };
    let mut texts = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let bytes = std::fs::read(e.path()).expect("read rules");
        texts.push((
            e.file_name().to_string_lossy().into_owned(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    let sources: Vec<RuleSource<'_>> = texts
        .iter()
        .map(|(f, t)| RuleSource { file: f, text: t })
        .collect();
    let compiled = compile_rules(&sources, &Vars::suricata_defaults(), "et", "1");
    let total = compiled.set.rules.len() + compiled.skipped.len();
    let (v10, left_out) = without_app_rules(&compiled.set);
    println!(
        "{total} rules: 1.2.0 variant {}, 1.0.0 variant {} ({left_out} need the application layer), {} skipped",
        compiled.set.rules.len(),
        v10.rules.len(),
        compiled.skipped.len()
    );
    assert!(total > 9000, "{total}");
    // Before #10 only 2,168 rules compiled at all; app rules now do too.
    assert!(v10.rules.len() >= 2000, "{}", v10.rules.len());
    assert!(
        compiled.set.rules.len() >= v10.rules.len() + 5000,
        "{}",
        compiled.set.rules.len()
    );
}
