//! Safe updates end to end: the `sandgate run` daemon replaying the example
//! capture in a loop, against a static update server on loopback.
//!
//! For every kind of update — good, unsigned, wrongly signed, downgraded,
//! truncated mid-download, incompatible with this engine, failing the
//! appliance's self-test, faulting after activation — each test checks
//! what the appliance ends up running (`status.json`, `sandgate status`),
//! that traffic kept flowing (packet and alert counters advance through
//! the update), and which events were logged, counted and reported.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use sandgate_host::update::status::Status;
use sandgate_patterns::bundle::{sha256_hex, Bundle};
use sandgate_patterns::sign::{self, PrivateKey};
use sandgate_tests::example_pcap;
use sandgate_tests::update_server::{
    bundle, entry, faults_later, newer_interface, rules_module, sandgate_binary, watch, Appliance,
    UpdateServer,
};

const WAIT: Duration = Duration::from_secs(30);

struct Fixture {
    dir: tempfile::TempDir,
    server: UpdateServer,
    key: PrivateKey,
    key_path: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = sign::generate_key().expect("key");
        let key_path = dir.path().join("vendor.pub.pem");
        sign::write_public_key(&key.verifying_key(), &key_path).expect("write key");
        Fixture {
            server: UpdateServer::start().expect("server"),
            dir,
            key,
            key_path,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Write `b` as the initial bundle file.
    fn initial(&self, b: &Bundle) -> PathBuf {
        let path = self.dir.path().join("initial.sgb");
        b.write(&path).expect("write bundle");
        path
    }

    fn start(&self, extra: &[&str]) -> Appliance {
        let mut args: Vec<String> = [
            "--update-url",
            &self.server.url(),
            "--vendor-key",
            &self.key_path.display().to_string(),
            "--appliance-id",
            "test-appliance",
            "--pcap",
            &example_pcap().display().to_string(),
            "--pps",
            "2000",
            "--poll-ms",
            "100",
            "--metrics-addr",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Appliance::spawn(&self.state(), &args).expect("daemon starts")
    }
}

fn module<'a>(s: &'a Status, id: &str) -> Option<&'a sandgate_host::update::status::ModuleStatus> {
    s.modules.iter().find(|m| m.id == id)
}

/// Module id → (version, bundle version) of the active set.
fn running(s: &Status) -> BTreeMap<String, (String, u64)> {
    s.modules
        .iter()
        .map(|m| (m.id.clone(), (m.version.clone(), m.bundle_version)))
        .collect()
}

fn has_event(s: &Status, kind: &str, needle: &str) -> bool {
    s.recent_events
        .iter()
        .any(|e| e.kind.label() == kind && e.detail.contains(needle))
}

/// Alerts of the example rules' sid 1000002 (the `uid=0` response).
fn rules_alerts(s: &Status) -> u64 {
    s.traffic.alerts_by_sid.get(&1000002).copied().unwrap_or(0)
}

/// Packets in the example capture, replayed in a loop.
const EXAMPLE_PACKETS: u64 = 387;

/// How often packet 14 (the one sid 1000002 alerts on) went by in the
/// first `packets` packets of the loop.
fn passes_over_packet_14(packets: u64) -> u64 {
    packets / EXAMPLE_PACKETS + u64::from(packets % EXAMPLE_PACKETS >= 14)
}

/// Traffic keeps flowing: packets and the example rules' alerts advance,
/// and the rules alerted exactly once per pass over their packet — so
/// across swaps no packet was lost or inspected twice.
fn assert_traffic_flows(app: &Appliance, what: &str) {
    let before = app.status().expect("status");
    let after = app.wait_for(what, WAIT, |s| {
        s.traffic.packets > before.traffic.packets + 200 && rules_alerts(s) > rules_alerts(&before)
    });
    assert_each_packet_once(&before, &after, what);
}

/// Between two statuses the unchanged example rules alerted exactly once
/// per pass over packet 14.
fn assert_each_packet_once(before: &Status, after: &Status, what: &str) {
    assert_eq!(
        rules_alerts(after) - rules_alerts(before),
        passes_over_packet_14(after.traffic.packets)
            - passes_over_packet_14(before.traffic.packets),
        "{what}: sid 1000002 alerts once per pass ({} -> {} packets)",
        before.traffic.packets,
        after.traffic.packets
    );
}

fn sandgate_status(state: &std::path::Path) -> String {
    let out = std::process::Command::new(sandgate_binary())
        .args(["status", "--state"])
        .arg(state)
        .output()
        .expect("sandgate status runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// How the test server serves a bundle file.
enum Served {
    Whole,
    Padded,
    CutShort,
}

#[test]
fn refused_bundles_leave_the_running_set_and_the_traffic_untouched() {
    let f = Fixture::new();
    // Unreachable at first: the startup events wait in the spool.
    f.server.set_unreachable(true);
    let v1 = bundle(
        1,
        vec![rules_module(), watch("watch", "1", b"uid=0")],
        Some(&f.key),
        &[],
    );
    let app = f.start(&["--bundle", &f.initial(&v1).display().to_string()]);
    let s = app.wait_for("bundle 1 active and traffic", WAIT, |s| {
        s.bundle_version == 1 && s.modules.len() == 2 && rules_alerts(s) > 0
    });
    assert!(s.telemetry_spooled >= 3, "spooled: {}", s.telemetry_spooled);
    let v1_running = running(&s);
    f.server.set_unreachable(false);

    let watch4 = watch("watch", "4", b"GET ");
    let other = sign::generate_key().expect("key");
    let v4 = bundle(4, vec![rules_module(), watch4.clone()], Some(&f.key), &[]);
    // (what the refusal says, bundle, bytes served: whole, padded past the
    // announced size, or cut short)
    let cases = [
        (
            "unsigned",
            bundle(2, vec![rules_module(), watch4.clone()], None, &[]),
            Served::Whole,
        ),
        (
            "not by the expected key",
            bundle(3, vec![rules_module(), watch4.clone()], Some(&other), &[]),
            Served::Whole,
        ),
        ("larger than", v4.clone(), Served::Padded),
        ("download broke off", v4.clone(), Served::CutShort),
    ];
    for (needle, b, served) in &cases {
        let file = format!("bundle-{}.sgb", b.manifest.version);
        f.server.serve_whole(&file);
        match served {
            Served::Whole => {}
            Served::Padded => f.server.pad(&file, 4096),
            Served::CutShort => f.server.cut_short(&file, 1000),
        }
        f.server.publish(b, &f.key, &["1.0.0"]);
        let s = app.wait_for(needle, WAIT, |s| has_event(s, "bundle_rejected", needle));
        assert_eq!(
            running(&s),
            v1_running,
            "after `{needle}` the set is unchanged"
        );
        assert_eq!(s.bundle_version, 1);
        assert_traffic_flows(&app, needle);
    }

    // The same bundle, whole: activated; only the changed module swaps.
    let before = app.status().expect("status");
    f.server.serve_whole("bundle-4.sgb");
    let s = app.wait_for("bundle 4 active", WAIT, |s| {
        s.bundle_version == 4 && s.traffic.packets > before.traffic.packets + 2 * EXAMPLE_PACKETS
    });
    assert_each_packet_once(&before, &s, "across the swap to bundle 4");
    assert_eq!(module(&s, "watch").map(|m| m.version.as_str()), Some("4"));
    assert_eq!(
        module(&s, "ips-rules").map(|m| m.bundle_version),
        Some(1),
        "the unchanged module is not reactivated"
    );
    assert_eq!(s.traffic.swaps, before.traffic.swaps + 1);
    assert!(has_event(&s, "module_activated", "version 4 active"));
    assert_traffic_flows(&app, "after bundle 4");

    // A correctly signed older bundle: a downgrade.
    let v2 = bundle(
        2,
        vec![rules_module(), watch("watch", "2", b"HTTP")],
        Some(&f.key),
        &[],
    );
    f.server.publish(&v2, &f.key, &["1.0.0"]);
    let s = app.wait_for("downgrade refused", WAIT, |s| {
        has_event(s, "bundle_rejected", "downgrade refused")
    });
    assert_eq!(s.bundle_version, 4);
    // A bundle only for engines implementing 2.0.0: nothing for this one.
    let v5 = bundle(
        5,
        vec![
            (entry("ips-rules", "5", "2.0.0"), newer_interface()),
            (entry("watch", "5", "2.0.0"), newer_interface()),
        ],
        Some(&f.key),
        &[],
    );
    f.server.publish(&v5, &f.key, &["2.0.0"]);
    let s = app.wait_for("no entry for this engine", WAIT, |s| {
        has_event(s, "bundle_rejected", "no entry for this engine")
    });
    assert_eq!(s.bundle_version, 4);
    assert_eq!(module(&s, "watch").map(|m| m.version.as_str()), Some("4"));
    assert_traffic_flows(&app, "after the refusals");

    // Every event reached the telemetry endpoint, the spooled ones too.
    let s = app.wait_for("telemetry flushed", WAIT, |s| s.telemetry_spooled == 0);
    let logged: Vec<String> = app
        .logged_events()
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let reported: Vec<String> = f
        .server
        .telemetry()
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
        .collect();
    for id in &logged {
        assert!(
            reported.contains(id),
            "event {id} not reported: {reported:?}"
        );
    }
    assert_eq!(
        reported.first().map(String::as_str),
        logged.first().map(String::as_str),
        "in order"
    );
    let metrics = app.metrics().expect("metrics");
    let rejected = s
        .recent_events
        .iter()
        .filter(|e| e.kind.label() == "bundle_rejected")
        .count();
    assert!(rejected >= 6, "{rejected} rejections");
    assert!(
        metrics.contains(&format!(
            "sandgate_update_events_total{{kind=\"bundle_rejected\"}} {rejected}"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("sandgate_packets_total"), "{metrics}");
    let text = sandgate_status(&f.state());
    assert!(text.contains("active bundle version 4"), "{text}");
    assert!(
        text.contains("watch") && text.contains("ips-rules"),
        "{text}"
    );
    assert!(
        text.contains("bundle_rejected") && text.contains("unsigned"),
        "{text}"
    );
}

#[test]
fn a_failing_module_keeps_its_previous_version_while_the_rest_activate() {
    let f = Fixture::new();
    let v1 = bundle(
        1,
        vec![rules_module(), watch("watch", "1", b"uid=0")],
        Some(&f.key),
        &[],
    );
    let app = f.start(&["--bundle", &f.initial(&v1).display().to_string()]);
    app.wait_for("bundle 1 active", WAIT, |s| {
        s.bundle_version == 1 && s.modules.len() == 2
    });
    // ips-rules: a variant only for interface 2.0.0 (fine for newer
    // engines); watch: passes the matrix but not this appliance's
    // self-test; extra: new and good.
    let newer = newer_interface();
    let v2 = bundle(
        2,
        vec![
            (entry("ips-rules", "2", "2.0.0"), newer),
            watch("watch", "2", b"HTTP"),
            watch("extra", "2", b"GET "),
        ],
        Some(&f.key),
        &["watch"],
    );
    f.server.publish(&v2, &f.key, &["1.0.0"]);
    let s = app.wait_for("bundle 2 processed", WAIT, |s| s.bundle_version == 2);
    assert_eq!(
        running(&s),
        BTreeMap::from([
            ("extra".to_string(), ("2".to_string(), 2)),
            ("ips-rules".to_string(), (rules_module().0.version, 1)),
            ("watch".to_string(), ("1".to_string(), 1)),
        ])
    );
    assert!(
        has_event(&s, "module_rejected", "incompatible with this engine"),
        "{}",
        s.render()
    );
    assert!(
        has_event(&s, "module_rejected", "self-test: expected"),
        "{}",
        s.render()
    );
    assert!(has_event(&s, "module_activated", "version 2 active"));
    assert!(has_event(
        &s,
        "bundle_activated",
        "1 activated, 0 unchanged, 2 rejected"
    ));
    // The old rules keep alerting, and the new module alerts beside them.
    let extra_alerts = |s: &Status| s.traffic.alerts_by_sid.get(&1000).copied().unwrap_or(0);
    let before = app.status().expect("status");
    app.wait_for("rules and new module alert", WAIT, |s| {
        rules_alerts(s) > rules_alerts(&before) && extra_alerts(s) > extra_alerts(&before)
    });
}

#[test]
fn a_module_faulting_after_activation_is_rolled_back_and_never_reactivated() {
    let f = Fixture::new();
    let v1 = bundle(
        1,
        vec![rules_module(), watch("watch", "1", b"uid=0")],
        Some(&f.key),
        &[],
    );
    let mut app = f.start(&["--bundle", &f.initial(&v1).display().to_string()]);
    app.wait_for("bundle 1 active", WAIT, |s| {
        s.bundle_version == 1 && s.modules.len() == 2
    });
    let bad = faults_later("watch", "2", 40);
    let bad_sha = sha256_hex(&bad.1);
    let v2 = bundle(2, vec![rules_module(), bad], Some(&f.key), &[]);
    f.server.publish(&v2, &f.key, &["1.0.0"]);
    app.wait_for("watch 2 activated", WAIT, |s| {
        has_event(s, "module_activated", "version 2 active")
    });
    // The rollback and the fault burst report, in either order.
    let s = app.wait_for("rolled back and the burst reported", WAIT, |s| {
        has_event(s, "rolled_back", "rolled back") && has_event(s, "fault_burst", "faults within")
    });
    let w = module(&s, "watch").expect("watch");
    assert_eq!(
        (w.version.as_str(), w.bundle_version),
        ("1", 1),
        "{}",
        s.render()
    );
    assert_eq!(w.health, "rolled back");
    assert!(w.faults > 10, "{w:?}");
    assert_traffic_flows(&app, "after the rollback");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.state().join("state.json")).expect("state"))
            .expect("json");
    assert_eq!(state["rolled_back"][0], bad_sha.as_str());
    assert_eq!(state["modules"]["watch"]["current"]["version"], "1");
    app.wait_for("reported", WAIT, |s| s.telemetry_spooled == 0);
    let reported = f.server.telemetry();
    assert!(
        reported.iter().any(|e| e["kind"] == "rolled_back"),
        "{reported:?}"
    );
    let metrics = app.metrics().expect("metrics");
    assert!(
        metrics.contains("sandgate_update_events_total{kind=\"rolled_back\"} 1"),
        "{metrics}"
    );

    // Restarted, it runs the last good version and does not take bundle 2 again.
    app.kill();
    let app = f.start(&[]);
    let s = app.wait_for("restarted", WAIT, |s| s.traffic.packets > 500);
    assert_eq!(module(&s, "watch").map(|m| m.version.as_str()), Some("1"));
    assert_eq!(s.bundle_version, 2);
    std::thread::sleep(Duration::from_millis(500));
    let s = app.status().expect("status");
    assert_eq!(module(&s, "watch").map(|m| m.version.as_str()), Some("1"));
    assert_eq!(s.traffic.swaps, 0, "{}", s.render());
}

#[test]
fn with_every_module_faulting_fail_closed_an_update_still_arrives_and_heals() {
    let f = Fixture::new();
    let v1 = bundle(
        1,
        vec![faults_later("a", "1", 20), faults_later("b", "1", 20)],
        Some(&f.key),
        &[],
    );
    let app = f.start(&[
        "--fail-closed",
        "--bundle",
        &f.initial(&v1).display().to_string(),
    ]);
    let s = app.wait_for("every module quarantined", WAIT, |s| {
        s.modules.len() == 2 && s.modules.iter().all(|m| m.health == "quarantined")
    });
    // Every packet is dropped now.
    let dropped = s.traffic.dropped_by_fault;
    app.wait_for("traffic dropped", WAIT, |s| {
        s.traffic.dropped_by_fault > dropped + 200
    });
    let v2 = bundle(
        2,
        vec![watch("a", "2", b"uid=0"), watch("b", "2", b"GET ")],
        Some(&f.key),
        &[],
    );
    f.server.publish(&v2, &f.key, &["1.0.0"]);
    let s = app.wait_for("healed", WAIT, |s| {
        s.bundle_version == 2 && s.modules.iter().all(|m| m.health == "healthy")
    });
    assert_eq!(
        running(&s),
        BTreeMap::from([
            ("a".to_string(), ("2".to_string(), 2)),
            ("b".to_string(), ("2".to_string(), 2)),
        ])
    );
    let healed = s.traffic.dropped_by_fault;
    let packets = s.traffic.packets;
    let s = app.wait_for("traffic passes", WAIT, |s| {
        s.traffic.packets > packets + 500
    });
    assert_eq!(
        s.traffic.dropped_by_fault, healed,
        "nothing dropped after the update"
    );
    let kinds: Vec<&str> = s.recent_events.iter().map(|e| e.kind.label()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "quarantined").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"module_activated"), "{kinds:?}");
    // The update server heard about the quarantines.
    app.wait_for("reported", WAIT, |s| s.telemetry_spooled == 0);
    assert_eq!(
        f.server
            .telemetry()
            .iter()
            .filter(|e| e["kind"] == "quarantined")
            .count(),
        2
    );
}

#[test]
fn killed_mid_activation_the_host_restarts_on_a_complete_set() {
    let f = Fixture::new();
    let v1 = bundle(
        1,
        vec![rules_module(), watch("watch", "1", b"uid=0")],
        Some(&f.key),
        &[],
    );
    // The first start activates bundle 1 from the file and commits it.
    f.server.set_unreachable(true);
    let app = f.start(&["--bundle", &f.initial(&v1).display().to_string()]);
    app.wait_for("bundle 1 committed", WAIT, |s| {
        s.bundle_version == 1 && s.modules.len() == 2
    });
    drop(app);
    let needles: [&[u8]; 5] = [b"GET ", b"HTTP", b"Host", b"root", b"POST"];
    let steps = [
        "verified",
        "loaded",
        "self-tested",
        "stored",
        "swapped",
        "persisted",
    ];
    let mut expected_old = BTreeMap::from([
        ("ips-rules".to_string(), sha256_hex(&rules_module().1)),
        (
            "watch".to_string(),
            sha256_hex(&watch("watch", "1", b"uid=0").1),
        ),
    ]);
    for (i, step) in steps.iter().enumerate() {
        let version = i as u64 + 2;
        let w = watch("watch", &version.to_string(), needles[i % needles.len()]);
        let mut expected_new = expected_old.clone();
        expected_new.insert("watch".into(), sha256_hex(&w.1));
        let b = bundle(version, vec![rules_module(), w], Some(&f.key), &[]);
        f.server.set_unreachable(false);
        f.server.publish(&b, &f.key, &["1.0.0"]);
        let mut app = f.start(&[]);
        let pattern = format!("\"step\":\"{step}\"");
        let line = app.wait_line(WAIT, |l| l.contains(&pattern));
        assert!(line.is_some(), "no `{step}` line: {:?}", app.log());
        app.kill();

        // Back up with the server unreachable: only what is on disk counts.
        f.server.set_unreachable(true);
        let app = f.start(&[]);
        let s = app.wait_for("restarted with traffic", WAIT, |s| {
            s.traffic.packets > 300 && s.modules.len() == 2
        });
        let shas: BTreeMap<String, String> = s
            .modules
            .iter()
            .map(|m| (m.id.clone(), m.sha256.clone()))
            .collect();
        assert!(
            shas == expected_old || shas == expected_new,
            "killed after `{step}`: {shas:?}"
        );
        assert!(
            s.modules.iter().all(|m| m.health == "healthy"),
            "{}",
            s.render()
        );
        assert!(
            !app.logged_events()
                .iter()
                .any(|e| e["kind"] == "store_damaged"),
            "{:?}",
            app.logged_events()
        );
        assert_eq!(
            s.bundle_version == version,
            shas == expected_new,
            "the bundle version matches the set"
        );
        drop(app);
        // Let the new set land before the next round.
        f.server.set_unreachable(false);
        let app = f.start(&[]);
        app.wait_for("new set", WAIT, |s| s.bundle_version == version);
        drop(app);
        expected_old = expected_new;
    }
}

#[test]
fn a_shadow_run_on_live_traffic_stops_a_module_that_would_fault() {
    let f = Fixture::new();
    let v1 = bundle(
        1,
        vec![rules_module(), watch("watch", "1", b"uid=0")],
        Some(&f.key),
        &[],
    );
    let app = f.start(&[
        "--shadow-secs",
        "1",
        "--bundle",
        &f.initial(&v1).display().to_string(),
    ]);
    app.wait_for("bundle 1 active", WAIT, |s| {
        s.bundle_version == 1 && s.modules.len() == 2
    });
    // Bundle 2 carries only `watch`, in a version that passes its
    // self-test but faults from its 21st call: the shadow run sees it.
    // `ips-rules`, absent from the bundle, is not withdrawn: it keeps running.
    let v2 = bundle(2, vec![faults_later("watch", "2", 20)], Some(&f.key), &[]);
    f.server.publish(&v2, &f.key, &["1.0.0"]);
    let s = app.wait_for("bundle 2 processed", WAIT, |s| s.bundle_version == 2);
    assert!(
        has_event(&s, "module_rejected", "shadow run:"),
        "{}",
        s.render()
    );
    assert_eq!(
        running(&s),
        BTreeMap::from([
            ("ips-rules".to_string(), (rules_module().0.version, 1)),
            ("watch".to_string(), ("1".to_string(), 1)),
        ])
    );
    assert!(s.modules.iter().all(|m| m.health == "healthy"));
    assert_traffic_flows(&app, "after the shadow run");
    // A sound module passes its shadow run and is activated.
    let v3 = bundle(3, vec![watch("watch", "3", b"GET ")], Some(&f.key), &[]);
    f.server.publish(&v3, &f.key, &["1.0.0"]);
    let s = app.wait_for("bundle 3 active", WAIT, |s| s.bundle_version == 3);
    assert_eq!(module(&s, "watch").map(|m| m.version.as_str()), Some("3"));
    assert!(app
        .log()
        .iter()
        .any(|l| l.contains("\"step\":\"shadowed\"") && l.contains("\"faults\":0")));
}

#[test]
fn bad_arguments_are_errors_naming_the_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-key.pem");
    let out = std::process::Command::new(sandgate_binary())
        .args([
            "run",
            "--update-url",
            "http://127.0.0.1:9",
            "--appliance-id",
            "a",
        ])
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg("--vendor-key")
        .arg(&missing)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-key.pem"), "{err}");
    let out = std::process::Command::new(sandgate_binary())
        .args(["status", "--state"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("status.json"), "{err}");
}

#[test]
fn a_staged_rollout_that_leaves_this_appliance_out_is_not_taken() {
    let f = Fixture::new();
    let v1 = bundle(1, vec![watch("watch", "1", b"uid=0")], Some(&f.key), &[]);
    let app = f.start(&["--bundle", &f.initial(&v1).display().to_string()]);
    app.wait_for("bundle 1 active", WAIT, |s| s.bundle_version == 1);
    let v2 = bundle(2, vec![watch("watch", "2", b"GET ")], Some(&f.key), &[]);
    f.server.set_rollout(Some(0));
    f.server.publish(&v2, &f.key, &["1.0.0"]);
    let line = app.wait_line(WAIT, |l| l.contains("\"log\":\"rollout\""));
    let line = line.expect("the rollout decision is logged");
    assert!(line.contains("\"selected\":false"), "{line}");
    // Polls go on (every 100 ms); the bundle stays out.
    std::thread::sleep(Duration::from_millis(500));
    let s = app.status().expect("status");
    assert_eq!(s.bundle_version, 1);
    assert_eq!(module(&s, "watch").map(|m| m.version.as_str()), Some("1"));
    // The vendor widens the rollout to everyone: taken.
    f.server.set_rollout(Some(100));
    f.server.publish(&v2, &f.key, &["1.0.0"]);
    let s = app.wait_for("bundle 2 active", WAIT, |s| s.bundle_version == 2);
    assert_eq!(module(&s, "watch").map(|m| m.version.as_str()), Some("2"));
}
