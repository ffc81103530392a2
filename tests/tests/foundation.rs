//! The foundation's promises, end to end: rule text compiles to a
//! component, the engine loads it, a capture replays through it, and the
//! alerts are exactly the ones written down by hand from the capture.

use std::collections::BTreeMap;

use sandgate_host::eve::EveWriter;
use sandgate_host::replay::ReplayOptions;
use sandgate_tests::{build_bundle, engine, example_pcap, example_rules, load_all, run_replay};

#[allow(dead_code)]
#[path = "../../host/examples/make_capture.rs"]
mod make_capture;

/// sid → packet numbers, read off the listing in host/examples/make_capture.rs.
fn expected_example_alerts() -> BTreeMap<u32, Vec<u64>> {
    BTreeMap::from([
        (1000001, vec![5]),      // SQL injection in the request line
        (1000002, vec![14]),     // uid=0(root) in the response
        (1000003, vec![21, 23]), // backdoor magic + command, twice
        (1000004, vec![27]),     // DNS query, not the answer
        (1000005, vec![28]),     // DNS answer carrying the C2 address
        (1000006, vec![29, 30]), // ICMP echo request and reply
        (1000007, vec![34]),     // IPv6 session
        (1000008, vec![5, 13]),  // every GET except the 40 passed index fetches
        (1000011, vec![43]),     // split across two segments: stream reassembly
    ])
}

#[test]
fn example_rules_raise_exactly_the_expected_alerts() {
    let report = build_bundle(&[example_rules()]).expect("example rules compile");
    assert_eq!(report.rules_compiled, 11);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    // The http.uri rule (sid 1000010) needs interface 1.2.0: only that
    // variant carries it.
    let per_variant: Vec<(&str, usize)> = report
        .variants
        .iter()
        .map(|v| (v.interface.as_str(), v.rules))
        .collect();
    assert_eq!(per_variant, vec![("1.0.0", 10), ("1.2.0", 11)]);
    let engine = engine();
    let modules = load_all(&engine, &report.bundle).expect("bundle loads");
    for batch in [1, 16, 64, 256] {
        let mut opts = ReplayOptions::default();
        opts.batch.packets = batch;
        let out = run_replay(&modules, &example_pcap(), &opts).expect("replay");
        assert_eq!(
            out.by_sid(),
            expected_example_alerts(),
            "batch size {batch}"
        );
        assert_eq!(out.stats.packets, 387);
        assert_eq!(out.stats.not_ip, 1, "the ARP frame");
        assert_eq!(out.stats.dropped_by_rule, 2, "the two backdoor packets");
        assert!(out.modules.iter().all(|m| m.faults.is_empty()));
    }
}

#[test]
fn alerts_carry_suricata_eve_fields() {
    let report = build_bundle(&[example_rules()]).expect("compile");
    let engine = engine();
    let modules = load_all(&engine, &report.bundle).expect("load");
    let out = run_replay(&modules, &example_pcap(), &ReplayOptions::default()).expect("replay");
    let sqli = out
        .alerts
        .iter()
        .find(|a| a.signature_id == 1000001)
        .expect("sqli alert");
    let mut w = EveWriter::new(Vec::new());
    w.write_alert(sqli).expect("write");
    let line = String::from_utf8(w.into_inner().expect("flush")).expect("utf8");
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
    assert_eq!(v["event_type"], "alert");
    assert_eq!(v["src_ip"], "10.0.0.10");
    assert_eq!(v["src_port"], 49152);
    assert_eq!(v["dest_ip"], "192.168.1.80");
    assert_eq!(v["dest_port"], 80);
    assert_eq!(v["proto"], "TCP");
    assert_eq!(v["pcap_cnt"], 5);
    assert_eq!(v["alert"]["signature_id"], 1000001);
    assert_eq!(v["alert"]["rev"], 2);
    assert_eq!(v["alert"]["gid"], 1);
    assert_eq!(v["alert"]["severity"], 1);
    assert_eq!(v["alert"]["action"], "allowed");
    assert_eq!(
        v["alert"]["signature"],
        "SANDGATE-EXAMPLE SQL injection attempt in request"
    );
    assert_eq!(v["alert"]["metadata"]["confidence"][0], "High");
    assert!(v["timestamp"]
        .as_str()
        .is_some_and(|t| t.starts_with("2024-01-02T03:04:05.004") && t.ends_with("+0000")));
}

#[test]
fn committed_example_capture_is_what_the_generator_writes() {
    let mut listing = make_capture::Listing(Vec::new());
    let cap = make_capture::build(&mut listing).expect("generator runs");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("example.pcap");
    cap.write_pcap(&path).expect("write");
    let fresh = std::fs::read(&path).expect("read back");
    let committed = std::fs::read(example_pcap()).expect("committed capture");
    assert!(
        fresh == committed,
        "patterns/examples/example.pcap is stale: rerun \
         `cargo run -p sandgate-host --example make_capture -- patterns/examples/example.pcap`"
    );
}

mod containment {
    use sandgate_host::replay::{load_bundle, ReplayOptions};
    use sandgate_patterns::bundle::{Bundle, ModuleEntry};
    use sandgate_runtime::testkit::{self, InspectBody, IpsOptions};
    use sandgate_runtime::{FailPolicy, LoadError};
    use sandgate_tests::{build_bundle, engine, example_pcap, example_rules, run_replay};

    use super::expected_example_alerts;

    /// The example module plus one extra component, as one bundle.
    fn bundle_with(extra_id: &str, extra: Vec<u8>) -> Bundle {
        let report = build_bundle(&[example_rules()]).expect("compile");
        let mut modules: Vec<(ModuleEntry, Vec<u8>)> = report
            .bundle
            .manifest
            .modules
            .iter()
            .cloned()
            .zip(report.bundle.modules.iter().cloned())
            .collect();
        let mut entry = modules[0].0.clone();
        entry.id = extra_id.to_string();
        modules.push((entry, extra));
        Bundle::new(2, 0, modules)
    }

    #[test]
    fn incompatible_modules_are_refused_at_load_and_the_rest_runs() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "wrong-major",
                testkit::wrong_major().expect("build"),
                "2.0.0",
            ),
            (
                "needs-newer-host",
                testkit::lacks_host_function().expect("build"),
                "1.1.0",
            ),
            (
                "no-inspector",
                testkit::missing_inspector().expect("build"),
                "inspector",
            ),
            (
                "wrong-export-type",
                testkit::inspector_wrong_type().expect("build"),
                "wrong type",
            ),
            ("wasi", testkit::imports_wasi().expect("build"), "wasi:"),
            ("core", testkit::core_module_only().expect("build"), "core"),
        ];
        let engine = engine();
        for (id, bytes, needle) in cases {
            let loaded = load_bundle(&engine, &bundle_with(id, bytes));
            assert_eq!(loaded.modules.len(), 1, "{id}: the example module loads");
            assert_eq!(loaded.refused.len(), 1, "{id}: refused");
            let msg = loaded.refused[0].to_string();
            assert!(msg.starts_with(&format!("module {id}: ")), "{msg}");
            assert!(msg.contains(needle), "{id}: {msg}");
            assert!(
                msg.contains("1.0.0") || matches!(loaded.refused[0], LoadError::CoreModule { .. }),
                "names what the engine offers: {msg}"
            );
            let out = run_replay(&loaded.modules, &example_pcap(), &ReplayOptions::default())
                .expect("replay");
            assert_eq!(out.by_sid(), expected_example_alerts(), "{id}");
        }
    }

    #[test]
    fn faulting_modules_cost_only_their_own_verdict() {
        let cases = [
            ("loops", InspectBody::LoopForever, "FuelExhausted"),
            ("traps", InspectBody::Unreachable, "Trap"),
            ("hogs-memory", InspectBody::GrowMemory, "MemoryLimit"),
            ("recurses", InspectBody::Recurse, "StackOverflow"),
        ];
        let engine = engine();
        for (id, body, kind) in cases {
            let bytes = testkit::ips_component(&IpsOptions::inspect(body)).expect("build");
            let loaded = load_bundle(&engine, &bundle_with(id, bytes));
            assert!(
                loaded.refused.is_empty(),
                "{id} loads: {:?}",
                loaded.refused
            );
            for policy in [FailPolicy::FailOpen, FailPolicy::FailClosed] {
                let mut opts = ReplayOptions::default();
                opts.module_policy.insert(id.to_string(), policy);
                let out =
                    run_replay(&loaded.modules, &example_pcap(), &opts).expect("replay finishes");
                assert_eq!(
                    out.by_sid(),
                    expected_example_alerts(),
                    "{id}: other alerts intact"
                );
                let bad = out
                    .modules
                    .iter()
                    .find(|m| m.module == id)
                    .expect("reported");
                let batches = out.stats.inspected.div_ceil(64);
                assert_eq!(bad.faults, vec![(kind.to_string(), batches)], "{id}");
                let good = out
                    .modules
                    .iter()
                    .find(|m| m.module == "ips-rules")
                    .expect("reported");
                assert!(good.faults.is_empty());
                match policy {
                    FailPolicy::FailOpen => assert_eq!(out.stats.dropped_by_fault, 0),
                    FailPolicy::FailClosed => {
                        assert_eq!(out.stats.dropped_by_fault, out.stats.inspected, "{id}")
                    }
                }
            }
        }
    }
}
