//! `status.json`: what the daemon runs, written atomically a few times a
//! second, and its rendering for `sandgate status`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::events::Event;
use super::plane::PlaneSnapshot;
use super::store::{State, Store};
use super::UpdateError;

/// File name in the state directory.
pub const STATUS_FILE: &str = "status.json";

/// One module as `sandgate status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleStatus {
    pub id: String,
    pub version: String,
    pub bundle_version: u64,
    pub sha256: String,
    /// `healthy`, `faulting`, `quarantined` or `rolled back`.
    pub health: String,
    pub faults: u64,
    pub last_fault: Option<String>,
    /// Version it rolls back to on a fault burst.
    pub fallback: Option<String>,
}

/// The whole status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub appliance: String,
    pub pid: u32,
    pub updated_unix_ms: u64,
    /// Newest bundle version processed (anti-rollback floor).
    pub bundle_version: u64,
    pub metrics_addr: Option<String>,
    pub traffic: PlaneSnapshot,
    pub modules: Vec<ModuleStatus>,
    /// Events waiting for the telemetry endpoint.
    pub telemetry_spooled: usize,
    pub recent_events: Vec<Event>,
}

impl Status {
    /// Combine the committed state with the data plane's view.
    pub fn compose(
        appliance: &str,
        state: &State,
        plane: &PlaneSnapshot,
        events: Vec<Event>,
        telemetry_spooled: usize,
        metrics_addr: Option<String>,
    ) -> Status {
        let modules = state
            .modules
            .values()
            .map(|slot| {
                let h = plane.modules.iter().find(|h| h.module == slot.current.id);
                let health = match h {
                    Some(h) if h.quarantined => "quarantined",
                    Some(h) if h.rolled_back => "rolled back",
                    Some(h) if h.faults > 0 => "faulting",
                    Some(_) => "healthy",
                    None => "starting",
                };
                ModuleStatus {
                    id: slot.current.id.clone(),
                    version: slot.current.version.clone(),
                    bundle_version: slot.current.bundle_version,
                    sha256: slot.current.sha256.clone(),
                    health: health.to_string(),
                    faults: h.map_or(0, |h| h.faults),
                    last_fault: h.and_then(|h| h.last_fault.clone()),
                    fallback: slot
                        .previous
                        .as_ref()
                        .map(|p| format!("{} (bundle {})", p.version, p.bundle_version)),
                }
            })
            .collect();
        Status {
            appliance: appliance.to_string(),
            pid: std::process::id(),
            updated_unix_ms: super::events::now_ms(),
            bundle_version: state.bundle_version,
            metrics_addr,
            traffic: plane.clone(),
            modules,
            telemetry_spooled,
            recent_events: events,
        }
    }

    /// Write `status.json` in the store's directory.
    pub fn write(&self, store: &Store) -> Result<(), UpdateError> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| UpdateError::Store(format!("serialising status: {e}")))?;
        super::store::write_atomic(&store.dir().join(STATUS_FILE), &bytes)
    }

    /// Read `DIR/status.json`.
    pub fn read(dir: &Path) -> Result<Status, UpdateError> {
        let path = dir.join(STATUS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| UpdateError::io(&path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| UpdateError::Store(format!("{}: {e}", path.display())))
    }

    /// The table `sandgate status` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let age_s = super::events::now_ms().saturating_sub(self.updated_unix_ms) as f64 / 1e3;
        out.push_str(&format!(
            "appliance {} (pid {}), status {age_s:.1} s old\n",
            self.appliance, self.pid
        ));
        out.push_str(&format!("active bundle version {}\n", self.bundle_version));
        let t = &self.traffic;
        out.push_str(&format!(
            "traffic: {} packets, {} alerts, {} dropped by rule, {} dropped by fail-closed faults, {} swaps (last pause {} µs)\n",
            t.packets, t.alerts, t.dropped_by_rule, t.dropped_by_fault, t.swaps, t.last_swap_pause_us
        ));
        out.push_str(&format!(
            "\n{:<20} {:>10} {:>7} {:<12} {:>7}  fallback / last fault\n",
            "module", "version", "bundle", "health", "faults"
        ));
        for m in &self.modules {
            let tail = match (&m.fallback, &m.last_fault) {
                (_, Some(f)) if m.health != "healthy" => f.clone(),
                (Some(fb), _) => format!("-> {fb}"),
                _ => String::new(),
            };
            out.push_str(&format!(
                "{:<20} {:>10} {:>7} {:<12} {:>7}  {tail}\n",
                m.id, m.version, m.bundle_version, m.health, m.faults
            ));
        }
        out.push_str(&format!(
            "\nrecent events ({} waiting for telemetry):\n",
            self.telemetry_spooled
        ));
        for e in &self.recent_events {
            out.push_str(&format!(
                "  {} {:<16} {}{}{}\n",
                crate::eve::EveTimestamp(e.unix_ms.saturating_mul(1000)),
                e.kind.label(),
                e.bundle_version
                    .map(|v| format!("bundle {v} "))
                    .unwrap_or_default(),
                e.module
                    .as_ref()
                    .map(|m| format!("module {m}: "))
                    .unwrap_or_default(),
                e.detail
            ));
        }
        out
    }
}
