//! Update figures, measured on the real daemon (`sandgate run`, spawned
//! from the bench's own profile) against the loopback update server of
//! `sandgate-tests`, replaying the example capture at 5,000 packets/s:
//!
//! - index change → new set active: from publishing a new signed index to
//!   the daemon's `persisted` step (poll interval included), and the part
//!   of it after the download (verify, load, self-test, swap, commit);
//! - swap pause: how long the data-plane thread stalls applying a swap;
//! - rollback: from a module's first fault on live traffic to its last
//!   good version being active (the `rolled_back` event);
//! - first boot (compile) and restart (precompiled artifacts) times.
//!
//! Times come from the daemon's own log lines (`unix_ms`, `pause_us`).

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use sandgate_tests::example_pcap;
use sandgate_tests::update_server::{
    bundle, faults_later, rules_module, watch, Appliance, UpdateServer,
};

/// Poll interval the daemon runs with here.
const POLL_MS: u64 = 20;
const WAIT: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The first line after `from` satisfying `pred`, parsed.
fn line_after(
    app: &Appliance,
    from: usize,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value> {
    let start = std::time::Instant::now();
    while start.elapsed() < WAIT {
        let found = app
            .log()
            .iter()
            .skip(from)
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| pred(v));
        if let Some(v) = found {
            return Ok(v);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("the daemon did not log the awaited line; log tail: {:?}", {
        let log = app.log();
        log[log.len().saturating_sub(10)..].to_vec()
    })
}

fn ms(v: &serde_json::Value) -> u64 {
    v["unix_ms"]
        .as_u64()
        .or_else(|| v["event"]["unix_ms"].as_u64())
        .unwrap_or(0)
}

fn summary(mut xs: Vec<f64>, unit: &str) -> String {
    if xs.is_empty() {
        return "-".into();
    }
    xs.sort_by(f64::total_cmp);
    let median = xs[xs.len() / 2];
    let max = xs[xs.len() - 1];
    format!(
        "median {median:.1} {unit}, max {max:.1} {unit} ({} runs)",
        xs.len()
    )
}

/// `(measurement, value)` rows.
pub fn rows(updates: usize, rollbacks: usize) -> Result<Vec<(String, String)>> {
    let dir = tempfile::tempdir()?;
    let key = sandgate_patterns::sign::generate_key()?;
    let key_path = dir.path().join("vendor.pub.pem");
    sandgate_patterns::sign::write_public_key(&key.verifying_key(), &key_path)?;
    let server = UpdateServer::start()?;
    let v1 = bundle(
        1,
        vec![rules_module(), watch("watch", "1", b"uid=0")],
        Some(&key),
        &[],
    );
    let initial = dir.path().join("initial.sgb");
    v1.write(&initial)?;
    let args: Vec<String> = [
        "--update-url".to_string(),
        server.url(),
        "--vendor-key".into(),
        key_path.display().to_string(),
        "--appliance-id".into(),
        "bench".into(),
        "--pcap".into(),
        example_pcap().display().to_string(),
        "--pps".into(),
        "5000".into(),
        "--poll-ms".into(),
        POLL_MS.to_string(),
        "--bundle".into(),
        initial.display().to_string(),
    ]
    .into();
    let state = dir.path().join("state");
    let app = Appliance::spawn(&state, &args)?;
    app.wait_for("bundle 1", WAIT, |s| {
        s.bundle_version == 1 && s.traffic.packets > 0
    });
    let verified = ms(&line_after(&app, 0, |v| v["step"] == "verified")?);
    let first_ms = ms(&line_after(&app, 0, |v| v["step"] == "persisted")?).saturating_sub(verified);

    let needles: [&[u8]; 2] = [b"GET ", b"HTTP"];
    let (mut total, mut pipeline, mut pause) = (Vec::new(), Vec::new(), Vec::new());
    let mut version = 1;
    for i in 0..updates {
        version += 1;
        let b = bundle(
            version,
            vec![
                rules_module(),
                watch("watch", &version.to_string(), needles[i % 2]),
            ],
            Some(&key),
            &[],
        );
        let from = app.log().len();
        let t0 = now_ms();
        server.publish(&b, &key, &["1.0.0"]);
        let is = |v: &serde_json::Value, step: &str| {
            v["step"] == step && v["bundle_version"].as_u64() == Some(version)
        };
        let downloaded = line_after(&app, from, |v| is(v, "downloaded"))?;
        let swapped = line_after(&app, from, |v| is(v, "swapped"))?;
        let persisted = line_after(&app, from, |v| is(v, "persisted"))?;
        total.push(ms(&persisted).saturating_sub(t0) as f64);
        pipeline.push(ms(&persisted).saturating_sub(ms(&downloaded)) as f64);
        pause.push(swapped["pause_us"].as_u64().unwrap_or(0) as f64);
    }

    let mut rollback = Vec::new();
    let mut after_fault_calls = 0u32;
    for j in 0..rollbacks {
        version += 1;
        // Distinct thresholds make distinct components (a rolled-back
        // component is never activated again).
        after_fault_calls = 20 + j as u32;
        let b = bundle(
            version,
            vec![
                rules_module(),
                faults_later("watch", &version.to_string(), after_fault_calls),
            ],
            Some(&key),
            &[],
        );
        let from = app.log().len();
        server.publish(&b, &key, &["1.0.0"]);
        line_after(&app, from, |v| {
            v["step"] == "persisted" && v["bundle_version"].as_u64() == Some(version)
        })?;
        let first = line_after(&app, from, |v| {
            v["log"] == "first_fault" && v["module"] == "watch"
        })?;
        let rolled = line_after(&app, from, |v| {
            v["log"] == "event" && v["event"]["kind"] == "rolled_back"
        })?;
        rollback.push(ms(&rolled).saturating_sub(ms(&first)) as f64);
    }
    let status = app
        .status()
        .ok_or_else(|| anyhow!("no status from the daemon"))?;
    // A restart loads the last good set with precompiled artifacts.
    drop(app);
    let t = std::time::Instant::now();
    let app = Appliance::spawn(&state, &args)?;
    app.wait_for("restart", WAIT, |s| {
        s.modules.len() == 2 && s.traffic.batches > 0
    });
    let restart_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(app);
    let q = sandgate_runtime::QuarantineConfig::default();
    Ok(vec![
        (
            format!("update: index change -> new set active (poll every {POLL_MS} ms)"),
            summary(total, "ms"),
        ),
        (
            "update: download done -> new set active (verify, load, self-test, swap, commit)"
                .into(),
            summary(pipeline, "ms"),
        ),
        (
            "update: swap pause (data-plane stall)".into(),
            summary(pause, "µs"),
        ),
        (
            "first boot: verify + activate example rules and one module (compile)".into(),
            format!("{first_ms} ms"),
        ),
        (
            "restart: spawn -> last good set inspecting (cached artifacts)".into(),
            format!("{restart_ms:.0} ms"),
        ),
        (
            format!(
                "rollback: first fault -> last good active ({} faults in {} calls trip it)",
                q.fault_threshold + 1,
                q.window_calls
            ),
            summary(rollback, "ms"),
        ),
        (
            "update: traffic during the run".into(),
            format!(
                "{} packets, {} dropped by fault, {} swaps; faulting modules trap from call {}",
                status.traffic.packets,
                status.traffic.dropped_by_fault,
                status.traffic.swaps,
                after_fault_calls
            ),
        ),
    ])
}
