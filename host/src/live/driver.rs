//! The live bridge as the update daemon's data plane, and the handle the
//! command line reloads and stops it through.
//!
//! [`LivePlane`] implements [`DataPlane`]: it opens the interfaces with the
//! daemon's last good set, then a driver thread turns the daemon's
//! messages into per-worker commands. A swap gives every worker its own
//! instances of the new modules, applied between two of its batches (like
//! `Inspector::replace_module` in the capture plane); a rollback in one
//! worker (a module faulting past its threshold) is reported once and
//! applied in every worker, so all run the same version; a shadow run
//! goes to the first worker with traffic. The driver also keeps
//! `status.json`'s snapshot and the Prometheus counters current.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::plane::{AlertSink, LiveStats, Plane};
use super::{Bridge, BridgeHandle, Config, LiveError};
use crate::eve::AlertRecord;
use crate::inspect::ModuleEvent;
use crate::update::plane::{
    DataPlane, PlaneEvent, PlaneLink, PlaneMsg, PlaneSnapshot, ShadowRun, SlotHealth, SwapDone,
    BURST_PERIOD, BURST_QUIET,
};
use crate::update::UpdateError;

/// Faults of one module within one [`BURST_PERIOD`] that make a burst event.
const BURST_FAULTS: u64 = 3;

/// The running bridge, shared by the daemon's driver and the command line
/// (SIGHUP reloads, SIGINT/SIGTERM stop). Empty until the bridge started
/// and after it stopped.
#[derive(Clone, Default)]
pub struct LiveControl {
    handle: Arc<Mutex<Option<BridgeHandle>>>,
}

impl LiveControl {
    /// Control of an already started bridge.
    pub fn new(handle: BridgeHandle) -> Self {
        LiveControl {
            handle: Arc::new(Mutex::new(Some(handle))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<BridgeHandle>> {
        self.handle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the bridge is running.
    pub fn is_running(&self) -> bool {
        self.lock().is_some()
    }

    /// Counters so far (`None` when not running).
    pub fn stats(&self) -> Option<LiveStats> {
        self.lock().as_ref().map(BridgeHandle::stats)
    }

    /// Apply a new configuration's policies and bypass list (see
    /// [`BridgeHandle::reload`]); a refused one leaves the running one.
    pub fn reload(&self, cfg: &Config) -> Result<(), LiveError> {
        match self.lock().as_mut() {
            Some(h) => h.reload(cfg),
            None => Err(LiveError::Setup("the data plane is not running".into())),
        }
    }

    /// Stop the bridge; its final counters.
    pub fn stop(&self) -> Option<LiveStats> {
        let handle = self.lock().take();
        handle.map(BridgeHandle::stop)
    }

    fn plane(&self) -> Option<Arc<Plane>> {
        self.lock().as_ref().map(|h| h.plane.clone())
    }
}

/// The live bridge as a [`DataPlane`] for the update daemon.
pub struct LivePlane {
    cfg: Config,
    alerts: AlertSink,
    control: LiveControl,
}

impl LivePlane {
    /// A plane on `cfg`'s interfaces sending alerts to `alerts`; the
    /// returned control reaches it once the daemon has started it.
    pub fn new(cfg: Config, alerts: AlertSink) -> (LivePlane, LiveControl) {
        let control = LiveControl::default();
        (
            LivePlane {
                cfg,
                alerts,
                control: control.clone(),
            },
            control,
        )
    }
}

impl DataPlane for LivePlane {
    fn start(self: Box<Self>, link: PlaneLink) -> Result<(), UpdateError> {
        let by_sid: Arc<Mutex<BTreeMap<u32, u64>>> = Arc::default();
        let counted = by_sid.clone();
        let sink = self.alerts.clone();
        let alerts: AlertSink = Arc::new(move |a: &AlertRecord| {
            *counted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(a.signature_id)
                .or_default() += 1;
            sink(a);
        });
        let slots = link
            .initial
            .into_iter()
            .map(|a| (a.module, a.fallback))
            .collect();
        let handle = Bridge::start_slots(&self.cfg, slots, alerts)
            .map_err(|e| UpdateError::Refused(format!("starting the live data plane: {e}")))?;
        let plane = handle.plane.clone();
        *self.control.lock() = Some(handle);
        let driver = Driver {
            plane,
            control: self.control.clone(),
            link_msgs: link.msgs,
            events: link.events,
            snapshot: link.snapshot,
            counters: link.counters,
            by_sid,
            swap_wait: Duration::from_millis(self.cfg.limits.watchdog_ms * 2 + 1000),
        };
        std::thread::Builder::new()
            .name("live-driver".into())
            .spawn(move || driver.run())
            .map_err(|e| UpdateError::Refused(format!("starting the live data plane: {e}")))?;
        Ok(())
    }
}

struct Driver {
    plane: Arc<Plane>,
    control: LiveControl,
    link_msgs: std::sync::mpsc::Receiver<PlaneMsg>,
    events: tokio::sync::mpsc::UnboundedSender<PlaneEvent>,
    snapshot: Arc<Mutex<PlaneSnapshot>>,
    counters: crate::update::events::PlaneCounters,
    by_sid: Arc<Mutex<BTreeMap<u32, u64>>>,
    swap_wait: Duration,
}

impl Driver {
    fn run(self) {
        let mut snap = PlaneSnapshot::default();
        // Modules already reported rolled back / quarantined since their
        // last swap (every worker reports its own).
        let mut reported: BTreeSet<(bool, String)> = BTreeSet::new();
        let mut last = LiveStats::default();
        let mut burst_base: BTreeMap<String, u64> = BTreeMap::new();
        let mut quiet_until: BTreeMap<String, Instant> = BTreeMap::new();
        let mut last_burst_check = Instant::now();
        loop {
            match self.link_msgs.recv_timeout(Duration::from_millis(50)) {
                Ok(PlaneMsg::Swap { modules, done }) => {
                    let names: Vec<String> = modules
                        .iter()
                        .map(|m| m.module.name().to_string())
                        .collect();
                    let known: BTreeSet<String> = self
                        .plane
                        .health()
                        .first()
                        .map(|w| w.iter().map(|s| s.module.clone()).collect())
                        .unwrap_or_default();
                    let pause = self.plane.install(modules, self.swap_wait);
                    let (replaced, added): (Vec<String>, Vec<String>) =
                        names.into_iter().partition(|n| known.contains(n));
                    for n in &replaced {
                        reported.remove(&(true, n.clone()));
                        reported.remove(&(false, n.clone()));
                        burst_base.remove(n);
                    }
                    snap.swaps += 1;
                    snap.last_swap_pause_us = pause.as_micros() as u64;
                    let _ = done.send(SwapDone {
                        pause,
                        replaced,
                        added,
                    });
                }
                Ok(PlaneMsg::Shadow {
                    instance,
                    duration,
                    done,
                }) => self.plane.shadow(ShadowRun::new(instance, duration, done)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.control.stop();
                    return;
                }
            }
            if self.control.plane().is_none() {
                // Stopped from the command line.
                return;
            }
            self.plane.expire_shadow();
            for e in self.plane.take_events() {
                let (rolled, module) = match &e {
                    ModuleEvent::RolledBack { module, .. } => (true, module.clone()),
                    ModuleEvent::Quarantined { module, .. } => (false, module.clone()),
                };
                if reported.insert((rolled, module.clone())) {
                    if rolled {
                        self.plane.roll_back(&module);
                    }
                    let _ = self.events.send(PlaneEvent::Module(e));
                }
            }
            let health = merge(self.plane.health());
            if last_burst_check.elapsed() >= BURST_PERIOD {
                last_burst_check = Instant::now();
                for h in &health {
                    let base = burst_base.entry(h.module.clone()).or_insert(0);
                    let new = h.faults.saturating_sub(*base);
                    *base = h.faults;
                    if new == 0 {
                        continue;
                    }
                    self.counters
                        .faults
                        .get_or_create(&vec![("module".into(), h.module.clone())])
                        .inc_by(new);
                    let quiet = quiet_until.get(&h.module).copied();
                    if new >= BURST_FAULTS && quiet.is_none_or(|q| Instant::now() >= q) {
                        quiet_until.insert(h.module.clone(), Instant::now() + BURST_QUIET);
                        let _ = self.events.send(PlaneEvent::FaultBurst {
                            module: h.module.clone(),
                            faults: new,
                            last_fault: h.last_fault.clone(),
                        });
                    }
                }
            }
            let stats = self.plane.stats();
            self.counters
                .packets
                .inc_by(stats.received.saturating_sub(last.received));
            self.counters
                .alerts
                .inc_by(stats.alerts.saturating_sub(last.alerts));
            self.counters.dropped_by_fault.inc_by(
                (stats.dropped_by_fault + stats.watchdog_dropped)
                    .saturating_sub(last.dropped_by_fault + last.watchdog_dropped),
            );
            snap.packets = stats.received;
            snap.alerts = stats.alerts;
            snap.dropped_by_rule = stats.dropped_by_rule + stats.dropped_flow;
            snap.dropped_by_fault = stats.dropped_by_fault + stats.watchdog_dropped;
            snap.alerts_by_sid = self
                .by_sid
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            snap.modules = health;
            last = stats;
            if let Ok(mut s) = self.snapshot.lock() {
                *s = snap.clone();
            }
        }
    }
}

/// One health line per module over all workers: faults added up, a slot
/// is quarantined / rolled back when any worker's is, has a fallback only
/// when every worker's has.
fn merge(workers: Vec<Vec<SlotHealth>>) -> Vec<SlotHealth> {
    let mut out: Vec<SlotHealth> = Vec::new();
    for w in workers {
        for s in w {
            match out.iter_mut().find(|o| o.module == s.module) {
                Some(o) => {
                    o.faults += s.faults;
                    o.quarantined |= s.quarantined;
                    o.rolled_back |= s.rolled_back;
                    o.has_fallback &= s.has_fallback;
                    if s.last_fault.is_some() {
                        o.last_fault = s.last_fault;
                    }
                }
                None => out.push(s),
            }
        }
    }
    out
}
