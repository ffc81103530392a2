//! Escalation: every rejection, fault burst, quarantine, rollback and
//! activation becomes an [`Event`] — one JSON line on stderr, a Prometheus
//! counter, and a report for the update server's `/telemetry` endpoint.
//!
//! Reports go through an on-disk spool (`telemetry.spool` in the state
//! directory, one JSON event per line, appended and fsynced before anything
//! else happens). [`Events::flush_telemetry`] posts the spool's lines in
//! order and removes only what the server acknowledged, so an unreachable
//! server or a restart loses nothing.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::UpdateError;

/// Events kept in memory for `sandgate status`.
pub const RECENT_EVENTS: usize = 50;
/// Events posted per telemetry request.
const TELEMETRY_BATCH: usize = 100;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The daemon started on the set it found in the state directory.
    Started,
    /// A whole bundle was refused (signature, download, downgrade, no entry
    /// for this engine).
    BundleRejected,
    /// One module of a bundle was refused (load check, self-test, shadow
    /// run); its previous version keeps running.
    ModuleRejected,
    /// A module's new version is active.
    ModuleActivated,
    /// A bundle was processed: how many modules changed, stayed, failed.
    BundleActivated,
    /// A module faulted repeatedly on live traffic.
    FaultBurst,
    /// A module over its fault threshold with no fallback: no longer called.
    Quarantined,
    /// A module over its fault threshold was replaced by its last good version.
    RolledBack,
    /// Something in the state directory was unreadable or damaged and ignored.
    StoreDamaged,
}

impl EventKind {
    /// The label used in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::BundleRejected => "bundle_rejected",
            EventKind::ModuleRejected => "module_rejected",
            EventKind::ModuleActivated => "module_activated",
            EventKind::BundleActivated => "bundle_activated",
            EventKind::FaultBurst => "fault_burst",
            EventKind::Quarantined => "quarantined",
            EventKind::RolledBack => "rolled_back",
            EventKind::StoreDamaged => "store_damaged",
        }
    }
}

/// One event, as logged, spooled and reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per appliance: boot time in ms and a sequence number.
    pub id: String,
    pub unix_ms: u64,
    pub appliance: String,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    pub detail: String,
}

/// Data-plane counters exported as metrics.
#[derive(Clone, Default)]
pub struct PlaneCounters {
    pub packets: Counter,
    pub alerts: Counter,
    pub dropped_by_fault: Counter,
    pub faults: Family<Vec<(String, String)>, Counter>,
}

/// The event sink shared by the update client, the activation pipeline and
/// the data-plane watcher.
pub struct Events {
    appliance: String,
    boot_ms: u64,
    seq: AtomicU64,
    spool: PathBuf,
    /// Guards the spool file and the recent list, so lines keep their order.
    inner: Mutex<VecDeque<Event>>,
    registry: Registry,
    by_kind: Family<Vec<(String, String)>, Counter>,
    telemetry_sent: Counter,
    pub plane: PlaneCounters,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One structured log line on stderr (for steps that are not events).
pub fn log_line(what: &str, fields: serde_json::Value) {
    let mut obj = serde_json::Map::new();
    obj.insert("unix_ms".into(), now_ms().into());
    obj.insert("log".into(), what.into());
    if let serde_json::Value::Object(f) = fields {
        obj.extend(f);
    }
    eprintln!("{}", serde_json::Value::Object(obj));
}

impl Events {
    /// Events of `appliance`, spooled in `state_dir/telemetry.spool`.
    pub fn new(appliance: &str, state_dir: &Path) -> Self {
        let mut registry = Registry::default();
        let by_kind = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "sandgate_update_events",
            "Update and health events by kind",
            by_kind.clone(),
        );
        let telemetry_sent = Counter::default();
        registry.register(
            "sandgate_telemetry_reports",
            "Events acknowledged by the telemetry endpoint",
            telemetry_sent.clone(),
        );
        let plane = PlaneCounters::default();
        registry.register(
            "sandgate_packets",
            "Packets inspected",
            plane.packets.clone(),
        );
        registry.register("sandgate_alerts", "Alerts raised", plane.alerts.clone());
        registry.register(
            "sandgate_dropped_by_fault",
            "Packets dropped because a fail-closed module faulted",
            plane.dropped_by_fault.clone(),
        );
        registry.register(
            "sandgate_module_faults",
            "Module faults by module",
            plane.faults.clone(),
        );
        Events {
            appliance: appliance.to_string(),
            boot_ms: now_ms(),
            seq: AtomicU64::new(0),
            spool: state_dir.join("telemetry.spool"),
            inner: Mutex::new(VecDeque::new()),
            registry,
            by_kind,
            telemetry_sent,
            plane,
        }
    }

    /// Record an event: log line, counter, spool (fsynced), recent list.
    pub fn emit(
        &self,
        kind: EventKind,
        bundle_version: Option<u64>,
        module: Option<&str>,
        detail: impl Into<String>,
    ) -> Event {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let event = Event {
            id: format!("{}-{n}", self.boot_ms),
            unix_ms: now_ms(),
            appliance: self.appliance.clone(),
            kind,
            bundle_version,
            module: module.map(str::to_string),
            detail: detail.into(),
        };
        let line = serde_json::to_string(&event).unwrap_or_default();
        eprintln!("{{\"log\":\"event\",\"event\":{line}}}");
        self.by_kind
            .get_or_create(&vec![("kind".to_string(), kind.label().to_string())])
            .inc();
        let mut recent = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = append_line(&self.spool, &line) {
            log_line(
                "spool_error",
                serde_json::json!({"path": self.spool.display().to_string(), "error": e.to_string()}),
            );
        }
        recent.push_back(event.clone());
        while recent.len() > RECENT_EVENTS {
            recent.pop_front();
        }
        event
    }

    /// The most recent events, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        let recent = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }

    /// Prometheus text exposition of every counter.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Post spooled events, oldest first, to `url`; drop from the spool
    /// exactly those the server acknowledged (2xx). Returns how many were
    /// sent; stops at the first failure.
    pub async fn flush_telemetry(
        &self,
        http: &reqwest::Client,
        url: &str,
    ) -> Result<usize, UpdateError> {
        let lines = {
            let _guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            read_lines(&self.spool)?
        };
        let mut sent = 0;
        for chunk in lines.chunks(TELEMETRY_BATCH) {
            let body = format!("[{}]", chunk.join(","));
            let ok = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !ok {
                break;
            }
            sent += chunk.len();
        }
        if sent > 0 {
            let _guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            // Events appended since the read stay after the sent ones.
            let now = read_lines(&self.spool)?;
            let rest = now.get(sent..).unwrap_or(&[]);
            let mut text = rest.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            super::store::write_atomic(&self.spool, text.as_bytes())?;
            self.telemetry_sent.inc_by(sent as u64);
        }
        Ok(sent)
    }

    /// Events waiting in the spool.
    pub fn spooled(&self) -> usize {
        let _guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        read_lines(&self.spool).map_or(0, |l| l.len())
    }
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(line.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_data()
}

/// The spool's complete lines; a torn last line (crash mid-append) is
/// ignored, and so is any line that is not an event.
fn read_lines(path: &Path) -> Result<Vec<String>, UpdateError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(UpdateError::io(path, e)),
    };
    let text = String::from_utf8_lossy(&text);
    Ok(text
        .split_terminator('\n')
        .filter(|l| serde_json::from_str::<Event>(l).is_ok())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_spooled_in_order_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ev = Events::new("a1", dir.path());
        ev.emit(EventKind::BundleRejected, Some(3), None, "unsigned");
        ev.emit(EventKind::RolledBack, Some(4), Some("ips"), "faults");
        let lines = read_lines(&dir.path().join("telemetry.spool")).expect("spool");
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("\"bundle_rejected\""), "{}", lines[0]);
        assert!(lines[1].contains("\"rolled_back\""), "{}", lines[1]);
        let text = ev.metrics_text();
        assert!(
            text.contains("sandgate_update_events_total{kind=\"rolled_back\"} 1"),
            "{text}"
        );
        assert_eq!(ev.recent().len(), 2);
    }
}
