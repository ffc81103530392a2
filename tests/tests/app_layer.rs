//! Application-layer transactions end to end (issue #10, host side):
//! captures generated here go through `sandgate replay`'s path, the host
//! parses HTTP/DNS/TLS into 1.2.0 transaction entries, flat modules (the
//! runtime testkit's `MatchBuffer`: one rule matching one buffer) alert on
//! them with the transaction's EVE fields, and a 1.0.0 module on the same
//! capture alerts exactly as it does without them.

use std::path::Path;

use sandgate_host::eve::{AlertRecord, EveWriter};
use sandgate_host::replay::{replay, ReplayOptions};
use sandgate_host::synth::SynthCapture;
use sandgate_matcher::app as ids;
use sandgate_runtime::testkit::{self, InspectBody, IpsOptions};
use sandgate_runtime::{Engine, EngineConfig, LoadedModule};
use serde_json::Value;

const CLIENT: [u8; 4] = [10, 0, 0, 5];
const SERVER: [u8; 4] = [192, 168, 1, 80];

fn engine() -> Engine {
    Engine::new(EngineConfig::default()).expect("engine")
}

/// A flat (1.2.0) module whose rule `rule` (sid 1000 + rule) matches when
/// buffer `id` contains `needle`.
fn buffer_rule(name: &str, id: u32, needle: &[u8], rule: u32) -> LoadedModule {
    let opts = IpsOptions {
        rules: 8,
        ..IpsOptions::inspect(InspectBody::MatchBuffer {
            id,
            needle: needle.to_vec(),
            rule,
        })
    };
    let bytes = testkit::flat_component(&opts).expect("flat component");
    engine().load(name, &bytes).expect("load flat module")
}

/// A 1.0.0 module whose rule `rule` matches payloads containing `needle`.
fn payload_rule(name: &str, needle: &[u8], rule: u32) -> LoadedModule {
    let opts = IpsOptions {
        rules: 8,
        ..IpsOptions::inspect(InspectBody::MatchBytes {
            needle: needle.to_vec(),
            rule,
        })
    };
    let bytes = testkit::ips_component(&opts).expect("1.0 component");
    engine().load(name, &bytes).expect("load 1.0 module")
}

fn run(modules: &[LoadedModule], cap: &SynthCapture) -> Vec<AlertRecord> {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("app.pcap");
    cap.write_pcap(&pcap).expect("write pcap");
    run_file(modules, &pcap)
}

fn run_file(modules: &[LoadedModule], pcap: &Path) -> Vec<AlertRecord> {
    let mut alerts = Vec::new();
    replay(modules, pcap, &ReplayOptions::default(), &mut |a| {
        alerts.push(a.clone());
        Ok(())
    })
    .map_err(|(_, e)| e)
    .expect("replay");
    alerts
}

fn eve(a: &AlertRecord) -> Value {
    let mut w = EveWriter::new(Vec::new());
    w.write_alert(a).expect("eve");
    serde_json::from_slice(&w.into_inner().expect("eve")).expect("json")
}

fn sids(alerts: &[AlertRecord]) -> Vec<u32> {
    let mut s: Vec<u32> = alerts.iter().map(|a| a.signature_id).collect();
    s.sort_unstable();
    s
}

fn by_sid(alerts: &[AlertRecord], sid: u32) -> &AlertRecord {
    alerts
        .iter()
        .find(|a| a.signature_id == sid)
        .unwrap_or_else(|| panic!("no alert for sid {sid}: {:?}", sids(alerts)))
}

#[test]
fn http_request_split_over_segments_alerts_once_per_rule_with_http_fields() {
    let mut cap = SynthCapture::new(1_700_000_000_000_000);
    let mut s = cap.tcp_v4(CLIENT, 40001, SERVER, 8080);
    s.handshake();
    let sent = s.client_sends_segments(&[
        b"GET /static/../ad",
        b"min?x=1 HTTP/1.1\r\nHo",
        b"st: Intranet.EXAMPLE:8080\r\nUser-Agent: probe/1\r\n\r\n",
    ]);
    s.server_ack();
    s.server_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    s.close();
    let modules = [
        buffer_rule("uri", ids::HTTP_URI, b"/admin?x=1", 0),
        buffer_rule("host", ids::HTTP_HOST, b"intranet.example", 1),
        // The raw URI keeps the dot segments the normalised one resolved.
        buffer_rule("raw", ids::HTTP_URI_RAW, b"/static/../", 2),
        buffer_rule("norm", ids::HTTP_URI, b"/static", 3),
    ];
    let alerts = run(&modules, &cap);
    assert_eq!(
        sids(&alerts),
        vec![1000, 1001, 1002],
        "one alert per rule although the response repeats the request's buffers"
    );
    let a = by_sid(&alerts, 1000);
    assert_eq!(a.pcap_cnt, sent.end - 1, "the segment completing the head");
    let v = eve(a);
    assert_eq!(v["app_proto"], "http");
    assert_eq!(v["http"]["hostname"], "intranet.example");
    assert_eq!(v["http"]["url"], "/static/../admin?x=1");
    assert_eq!(v["http"]["http_user_agent"], "probe/1");
    assert_eq!(v["http"]["http_method"], "GET");
    assert_eq!(v["http"]["protocol"], "HTTP/1.1");
    let table = sandgate_host::eve::alert_table(&alerts);
    assert!(
        table.contains("[http host=intranet.example url=/static/../admin?x=1]"),
        "{table}"
    );
}

#[test]
fn chunked_response_body_is_matched_de_chunked_as_file_data() {
    let mut cap = SynthCapture::new(1_700_000_000_000_000);
    let mut s = cap.tcp_v4(CLIENT, 40002, SERVER, 80);
    s.handshake();
    s.client_sends(b"GET /download HTTP/1.1\r\nHost: files.example\r\n\r\n");
    s.server_ack();
    let body = s.server_sends_segments(&[
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\nEVILP\r\n",
        b"6\r\nAYLOAD\r\n0\r\n\r\n",
    ]);
    s.close();
    let modules = [
        buffer_rule("file", ids::FILE_DATA, b"EVILPAYLOAD", 3),
        buffer_rule("body", ids::HTTP_RESPONSE_BODY, b"EVILPAYLOAD", 4),
        buffer_rule("code", ids::HTTP_STAT_CODE, b"200", 5),
        // The same bytes as a payload rule: the chunk framing splits them.
        payload_rule("payload", b"EVILPAYLOAD", 6),
    ];
    let alerts = run(&modules, &cap);
    assert_eq!(sids(&alerts), vec![1003, 1004, 1005]);
    let a = by_sid(&alerts, 1003);
    assert_eq!(a.pcap_cnt, body.end - 1, "the segment ending the body");
    let v = eve(a);
    assert_eq!(v["http"]["status"], 200);
    assert_eq!(v["http"]["url"], "/download");
    assert_eq!(v["http"]["hostname"], "files.example");
    assert_eq!(v["http"]["http_content_type"], "application/octet-stream");
    assert_eq!(v["http"]["length"], 11);
}

#[test]
fn pipelined_requests_each_get_their_own_transaction() {
    let mut cap = SynthCapture::new(1_700_000_000_000_000);
    let mut s = cap.tcp_v4(CLIENT, 40003, SERVER, 80);
    s.handshake();
    s.client_sends(
        b"GET /one HTTP/1.1\r\nHost: a.example\r\n\r\nGET /two HTTP/1.1\r\nHost: b.example\r\n\r\n",
    );
    s.server_ack();
    s.server_sends(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    );
    s.close();
    let modules = [
        buffer_rule("two", ids::HTTP_URI, b"/two", 0),
        buffer_rule("nf", ids::HTTP_STAT_CODE, b"404", 1),
    ];
    let alerts = run(&modules, &cap);
    assert_eq!(sids(&alerts), vec![1000, 1001]);
    assert_eq!(eve(by_sid(&alerts, 1000))["http"]["hostname"], "b.example");
    let nf = eve(by_sid(&alerts, 1001));
    assert_eq!(
        nf["http"]["url"], "/two",
        "the 404 pairs with the 2nd request"
    );
    assert_eq!(nf["http"]["status"], 404);
}

/// A DNS query for `name` (type A).
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

#[test]
fn dns_queries_over_udp_and_tcp() {
    let mut cap = SynthCapture::new(1_700_000_000_000_000);
    let udp = cap
        .udp_v4(
            CLIENT,
            5353,
            SERVER,
            53,
            &dns_query(0x1111, "c2.evil.example"),
        )
        .expect("udp");
    // Not DNS: port 53 on neither side.
    cap.udp_v4(
        CLIENT,
        5354,
        SERVER,
        5300,
        &dns_query(0x2222, "c2.evil.example"),
    )
    .expect("udp");
    let mut s = cap.tcp_v4(CLIENT, 40004, SERVER, 53);
    s.handshake();
    let q = dns_query(0x3333, "tcp.evil.example");
    let mut wire = (q.len() as u16).to_be_bytes().to_vec();
    wire.extend_from_slice(&q);
    let (a, b) = wire.split_at(7);
    let tcp = s.client_sends_segments(&[a, b]);
    s.close();
    let modules = [buffer_rule("dns", ids::DNS_QUERY, b"evil.example", 2)];
    let alerts = run(&modules, &cap);
    assert_eq!(sids(&alerts), vec![1002, 1002]);
    assert_eq!(alerts[0].pcap_cnt, udp);
    assert_eq!(alerts[1].pcap_cnt, tcp.end - 1);
    let v = eve(&alerts[0]);
    assert_eq!(v["app_proto"], "dns");
    assert_eq!(v["dns"]["query"][0]["rrname"], "c2.evil.example");
    assert_eq!(v["dns"]["query"][0]["rrtype"], "A");
    assert_eq!(
        eve(&alerts[1])["dns"]["query"][0]["rrname"],
        "tcp.evil.example"
    );
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 128 {
        out.push(n as u8);
    } else if n < 256 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// A structurally valid X.509 v3 certificate (the signature is not real:
/// nothing here verifies it).
fn certificate_der(subject_cn: &str, issuer_cn: &str) -> Vec<u8> {
    let name = |cn: &str| {
        let atv = [der(0x06, &[0x55, 4, 3]), der(0x0c, cn.as_bytes())].concat();
        der(0x30, &der(0x31, &der(0x30, &atv)))
    };
    let alg = der(
        0x30,
        &[
            der(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 11]),
            vec![5, 0],
        ]
        .concat(),
    );
    let mut point = vec![0u8, 4];
    point.extend_from_slice(&[7u8; 64]);
    let spki = der(
        0x30,
        &[
            der(
                0x30,
                &[
                    der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 2, 1]),
                    der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 3, 1, 7]),
                ]
                .concat(),
            ),
            der(0x03, &point),
        ]
        .concat(),
    );
    let tbs = der(
        0x30,
        &[
            der(0xa0, &der(0x02, &[2])),
            der(0x02, &[0x01, 0x23, 0xab]),
            alg.clone(),
            name(issuer_cn),
            der(
                0x30,
                &[der(0x17, b"240101000000Z"), der(0x17, b"340101000000Z")].concat(),
            ),
            name(subject_cn),
            spki,
        ]
        .concat(),
    );
    der(0x30, &[tbs, alg, der(0x03, &[0, 1, 2, 3, 4])].concat())
}

fn tls_record(payload: &[u8]) -> Vec<u8> {
    let mut r = vec![22, 3, 3];
    r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    r.extend_from_slice(payload);
    r
}

fn handshake(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![t];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    m
}

fn client_hello(sni: &str) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[1u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 4, 0xc0, 0x2f, 0, 0x9c, 1, 0]);
    let name = sni.as_bytes();
    let mut sn = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    sn.push(0);
    sn.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sn.extend_from_slice(name);
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&(sn.len() as u16).to_be_bytes());
    ext.extend_from_slice(&sn);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    tls_record(&handshake(1, &body))
}

fn server_hello_and_certificate(der: &[u8]) -> Vec<u8> {
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[2u8; 32]);
    sh.extend_from_slice(&[0, 0xc0, 0x2f, 0, 0, 0]);
    let mut one = (der.len() as u32).to_be_bytes()[1..].to_vec();
    one.extend_from_slice(der);
    let mut chain = (one.len() as u32).to_be_bytes()[1..].to_vec();
    chain.extend_from_slice(&one);
    // Both handshake messages in one record, as servers send them.
    tls_record(&[handshake(2, &sh), handshake(11, &chain)].concat())
}

#[test]
fn tls_sni_and_certificate_fields() {
    let mut cap = SynthCapture::new(1_700_000_000_000_000);
    let mut s = cap.tcp_v4(CLIENT, 40005, SERVER, 443);
    s.handshake();
    let ch = client_hello("login.bank.example");
    let (a, b) = ch.split_at(20);
    s.client_sends_segments(&[a, b]);
    s.server_ack();
    let flight = server_hello_and_certificate(&certificate_der("login.bank.example", "Evil CA"));
    let (a, b) = flight.split_at(100);
    let sent = s.server_sends_segments(&[a, b]);
    s.close();
    let modules = [
        buffer_rule("sni", ids::TLS_SNI, b"bank.example", 0),
        buffer_rule("issuer", ids::TLS_CERT_ISSUER, b"CN=Evil CA", 1),
        buffer_rule("ja3", ids::JA3_STRING, b"771,49199-156,0,,", 2),
    ];
    let alerts = run(&modules, &cap);
    assert_eq!(sids(&alerts), vec![1000, 1001, 1002]);
    let v = eve(by_sid(&alerts, 1001));
    assert_eq!(by_sid(&alerts, 1001).pcap_cnt, sent.end - 1);
    assert_eq!(v["app_proto"], "tls");
    assert_eq!(v["tls"]["sni"], "login.bank.example");
    assert_eq!(v["tls"]["subject"], "CN=login.bank.example");
    assert_eq!(v["tls"]["issuerdn"], "CN=Evil CA");
    assert_eq!(v["tls"]["serial"], "01:23:AB");
    assert_eq!(v["tls"]["version"], "TLS 1.2");
    let fp = v["tls"]["fingerprint"].as_str().expect("fingerprint");
    assert_eq!(fp.len(), 59, "{fp}");
    assert_eq!(v["tls"]["ja3"]["string"], "771,49199-156,0,,");
    assert_eq!(v["tls"]["ja3"]["hash"].as_str().map(str::len), Some(32));
}

#[test]
fn a_1_0_module_alerts_exactly_as_before_beside_a_1_2_module() {
    let mut cap = SynthCapture::new(1_700_000_000_000_000);
    let mut s = cap.tcp_v4(CLIENT, 40006, SERVER, 80);
    s.handshake();
    s.client_sends_segments(&[b"GET /admin HTTP/1.1\r\nHo", b"st: x\r\n\r\n"]);
    s.server_ack();
    s.server_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n/admin");
    s.close();
    cap.udp_v4(CLIENT, 5353, SERVER, 53, &dns_query(1, "admin.example"))
        .expect("udp");
    let old = payload_rule("old", b"admin", 7);
    let alone = run(std::slice::from_ref(&old), &cap);
    assert!(!alone.is_empty());
    let beside = run(
        &[old, buffer_rule("uri", ids::HTTP_URI, b"/admin", 0)],
        &cap,
    );
    let old_beside: Vec<&AlertRecord> = beside.iter().filter(|a| a.signature_id == 1007).collect();
    assert_eq!(old_beside.len(), alone.len());
    for (a, b) in alone.iter().zip(old_beside) {
        assert_eq!(a, b, "a 1.0 module's alerts do not change");
        assert!(b.app.is_none());
    }
    assert_eq!(
        beside.iter().filter(|a| a.signature_id == 1000).count(),
        1,
        "the 1.2 module alerts once for the transaction"
    );
}

/// The module of `bundle` built for interface `interface`.
fn variant(report: &sandgate_patterns::pipeline::BuildReport, interface: &str) -> LoadedModule {
    let bundle = &report.bundle;
    let (entry, bytes) = bundle
        .manifest
        .modules
        .iter()
        .zip(&bundle.modules)
        .find(|(e, _)| e.kind == "ips" && e.interface == interface)
        .unwrap_or_else(|| panic!("no {interface} variant"));
    engine().load(&entry.id, bytes).expect("load variant")
}

#[test]
fn compiled_app_layer_rules_alert_on_transactions_and_payload_rules_alert_once() {
    let rules = r#"
alert http any any -> any any (msg:"admin uri"; flow:to_server,established; http.uri; content:"/admin"; sid:10; rev:1;)
alert http any any -> any any (msg:"legacy host"; content:"intranet.example"; http_host; sid:11; rev:1;)
alert dns any any -> any any (msg:"evil query"; dns.query; content:"evil.example"; sid:12; rev:1;)
alert tls any any -> any any (msg:"bank sni"; tls.sni; content:"bank.example"; sid:13; rev:1;)
alert tcp any any -> any any (msg:"payload admin"; content:"/admin"; sid:14; rev:1;)
"#;
    let report = sandgate_tests::build_rules_text(rules).expect("build");
    let held: Vec<(String, usize)> = report
        .variants
        .iter()
        .map(|v| (v.interface.clone(), v.rules))
        .collect();
    assert_eq!(held, vec![("1.0.0".into(), 1), ("1.2.0".into(), 5)]);

    let mut cap = SynthCapture::new(1_700_000_000_000_000);
    let mut s = cap.tcp_v4(CLIENT, 40010, SERVER, 80);
    s.handshake();
    let head = s.client_sends_segments(&[
        b"GET /ad",
        b"min HTTP/1.1\r\nHost: Intranet.Example\r\n\r\n",
    ]);
    s.server_ack();
    s.server_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n/admin");
    s.close();
    cap.udp_v4(CLIENT, 5353, SERVER, 53, &dns_query(5, "www.evil.example"))
        .expect("udp");
    let mut t = cap.tcp_v4(CLIENT, 40011, SERVER, 443);
    t.handshake();
    t.client_sends(&client_hello("online.bank.example"));
    t.close();

    let flat = run(&[variant(&report, "1.2.0")], &cap);
    let mut got: Vec<(u32, u64)> = flat.iter().map(|a| (a.signature_id, a.pcap_cnt)).collect();
    got.sort_unstable();
    let old = run(&[variant(&report, "1.0.0")], &cap);
    let old_14: Vec<u64> = old.iter().map(|a| a.pcap_cnt).collect();
    assert!(old.iter().all(|a| a.signature_id == 14), "{:?}", sids(&old));
    let flat_14: Vec<u64> = got.iter().filter(|g| g.0 == 14).map(|g| g.1).collect();
    assert_eq!(
        flat_14, old_14,
        "the payload rule alerts as in the 1.0 variant"
    );
    assert_eq!(sids(&flat).iter().filter(|&&s| s != 14).count(), 4);
    assert_eq!(by_sid(&flat, 10).pcap_cnt, head.end - 1);
    let v = eve(by_sid(&flat, 11));
    assert_eq!(v["app_proto"], "http");
    assert_eq!(v["http"]["hostname"], "intranet.example");
    assert_eq!(
        eve(by_sid(&flat, 12))["dns"]["query"][0]["rrname"],
        "www.evil.example"
    );
    assert_eq!(eve(by_sid(&flat, 13))["tls"]["sni"], "online.bank.example");
}
