//! The live data plane: passive IDS on one interface or an inline IPS
//! bridge between two, on real interfaces through pnet.
//!
//! - [`config`]: the YAML configuration, validated with errors naming the key.
//! - [`plane`]: ingress, bypass, per-worker bounded queues, the workers
//!   (flow table + [`crate::inspect::Inspector`] each), verdicts, watchdog,
//!   counters. Independent of how frames arrive.
//! - [`port`]: pnet datalink channels feeding [`plane::Plane::ingress`].
//! - [`reject`]: TCP resets and ICMP unreachables for `reject` rules.
//! - [`driver`]: the bridge as the update daemon's data plane (module
//!   swaps into every worker, rollbacks, status) and [`driver::LiveControl`],
//!   the handle `sandgate run` reloads and stops it through.
//!
//! How a frame travels (inline): a receive thread per interface decodes it;
//! non-IP frames, undecodable frames and the bypass/management list are
//! forwarded at once. Any other packet goes to the worker chosen by a
//! symmetric 5-tuple hash (both directions of a flow meet in one worker),
//! through that worker's bounded queue — full: the packet is dropped and
//! counted in `queue_overflow`, whatever the policy, since passing it would
//! overtake its flow's queued packets. A worker inspects what is queued (up
//! to `limits.batch` packets, so an idle bridge adds no batching delay) and
//! acts on the verdicts in arrival order: pass forwards, drop drops the
//! packet and every later packet of its flow, reject also answers with
//! resets / ICMP, a fail-closed fault drops the batch. A worker busy with
//! one batch past `limits.watchdog_ms` is declared stalled: until it
//! finishes, its packets are dropped if the default policy or the policy of
//! any running module is fail-closed (no module can inspect them) and
//! passed otherwise, and the late batch is discarded (counted) rather than
//! sent after packets that overtook it. IP fragments are held at ingress
//! until their datagram is whole; the datagram is inspected as one packet
//! and, when it passes, its fragments are forwarded as received.
//!
//! Entry points: [`Bridge::start`] (pnet, inline or IDS by `mode`),
//! [`Bridge::start_slots`] (the same with a last good version per module),
//! [`Bridge::with_ports`] (any [`Port`]s; frames fed by the caller),
//! [`run_ids`] (blocking), [`driver::LivePlane`] (the update daemon's
//! data plane).

pub mod config;
pub mod driver;
pub mod plane;
pub mod port;
pub mod reject;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use sandgate_runtime::LoadedModule;
use thiserror::Error;

pub use config::{Config, ConfigError, Mode};
pub use plane::{AlertSink, LiveStats, MemoryPort, Port, Side, Slot};

/// Why the data plane could not start or reload.
#[derive(Debug, Error)]
pub enum LiveError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("interface {name} not found (present: {})", available.join(", "))]
    NoInterface {
        name: String,
        available: Vec<String>,
    },
    #[error("interface {interface}: {what}: {source}")]
    Socket {
        interface: String,
        what: String,
        source: std::io::Error,
    },
    #[error("starting a thread: {0}")]
    Thread(std::io::Error),
    #[error("{0}")]
    Setup(String),
    #[error("reload: mode and interfaces cannot change while running ({0})")]
    ReloadChanges(String),
}

/// Starts data planes.
pub struct Bridge;

impl Bridge {
    /// Opens the configured interfaces with pnet and starts the receive
    /// threads, workers and watchdog. Inline mode forwards between
    /// `interfaces[0]` (side A) and `interfaces[1]` (side B); IDS mode only
    /// captures `interfaces[0]`. Each worker instantiates its own copy of
    /// every module in `modules`.
    pub fn start(
        cfg: &Config,
        modules: Vec<LoadedModule>,
        alerts: AlertSink,
    ) -> Result<BridgeHandle, LiveError> {
        Self::start_slots(
            cfg,
            modules.into_iter().map(|m| (m, None)).collect(),
            alerts,
        )
    }

    /// [`Bridge::start`] with a last good version per module to roll back
    /// to (the update daemon's set).
    pub fn start_slots(
        cfg: &Config,
        modules: Vec<Slot>,
        alerts: AlertSink,
    ) -> Result<BridgeHandle, LiveError> {
        cfg.validate()?;
        let mut opened = Vec::new();
        for name in &cfg.interfaces {
            opened.push(port::open(name, cfg.mode == Mode::Inline)?);
        }
        let ports: Option<[Arc<dyn Port>; 2]> = match cfg.mode {
            Mode::Inline => Some([opened[0].port.clone(), opened[1].port.clone()]),
            Mode::Ids => None,
        };
        let (plane, threads) = plane::Plane::start(cfg, modules, ports, alerts)?;
        let mut handle = BridgeHandle {
            plane,
            threads,
            config: cfg.clone(),
        };
        for (o, side) in opened.into_iter().zip([Side::A, Side::B]) {
            match port::spawn_receiver(handle.plane.clone(), o, side) {
                Ok(t) => handle.threads.push(t),
                Err(e) => {
                    handle.stop();
                    return Err(e);
                }
            }
        }
        Ok(handle)
    }

    /// The data plane without interfaces: the caller feeds frames with
    /// [`BridgeHandle::ingress`]; forwarded frames go to `ports` (A, B),
    /// or nowhere when `None` (IDS).
    pub fn with_ports(
        cfg: &Config,
        modules: Vec<LoadedModule>,
        ports: Option<[Arc<dyn Port>; 2]>,
        alerts: AlertSink,
    ) -> Result<BridgeHandle, LiveError> {
        let slots = modules.into_iter().map(|m| (m, None)).collect();
        let (plane, threads) = plane::Plane::start(cfg, slots, ports, alerts)?;
        Ok(BridgeHandle {
            plane,
            threads,
            config: cfg.clone(),
        })
    }
}

/// A running data plane.
pub struct BridgeHandle {
    plane: Arc<plane::Plane>,
    threads: Vec<JoinHandle<()>>,
    config: Config,
}

impl BridgeHandle {
    /// Counters so far.
    pub fn stats(&self) -> LiveStats {
        self.plane.stats()
    }

    /// Feed one frame as received on `side` (for [`Bridge::with_ports`]).
    pub fn ingress(&self, side: Side, frame: &[u8]) {
        self.plane.ingress(side, frame);
    }

    /// Apply a new configuration's policies and bypass list without
    /// stopping traffic (the SIGHUP hook). Mode, interfaces, workers and
    /// limits need a restart; a config changing them is refused and the
    /// running one stays.
    pub fn reload(&mut self, cfg: &Config) -> Result<(), LiveError> {
        cfg.validate()?;
        let old = &self.config;
        let mut changed = Vec::new();
        if old.mode != cfg.mode {
            changed.push("mode");
        }
        if old.interfaces != cfg.interfaces {
            changed.push("interfaces");
        }
        if old.workers != cfg.workers {
            changed.push("workers");
        }
        if old.limits != cfg.limits {
            changed.push("limits");
        }
        if !changed.is_empty() {
            return Err(LiveError::ReloadChanges(changed.join(", ")));
        }
        self.plane.reload(cfg)?;
        self.config = cfg.clone();
        Ok(())
    }

    /// Stop every thread and return the final counters.
    pub fn stop(mut self) -> LiveStats {
        self.plane.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            // A panicked thread has nothing left to report.
            let _ = t.join();
        }
        self.plane.stats()
    }
}

impl Drop for BridgeHandle {
    fn drop(&mut self) {
        self.plane.stop.store(true, Ordering::Relaxed);
    }
}

/// Passive IDS: capture `cfg.interfaces[0]` until `stop` is set, alerting
/// through `alerts`; returns the final counters.
pub fn run_ids(
    cfg: &Config,
    modules: Vec<LoadedModule>,
    alerts: AlertSink,
    stop: &AtomicBool,
) -> Result<LiveStats, LiveError> {
    if cfg.mode != Mode::Ids {
        return Err(LiveError::Setup(format!(
            "run_ids needs mode ids, the config says {:?}",
            cfg.mode
        )));
    }
    let handle = Bridge::start(cfg, modules, alerts)?;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(handle.stop())
}
