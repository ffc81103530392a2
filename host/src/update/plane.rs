//! The seam between the update side and whatever inspects traffic
//! ([`DataPlane`]: a [`PlaneLink`] of swap/shadow messages in, events and
//! a status snapshot out), and the capture-loop data plane
//! ([`CapturePlane`]): packets from a [`PacketSource`] through the
//! [`Inspector`], with module swaps applied at batch boundaries. The live
//! bridge (`crate::live::driver::LivePlane`) is the other implementation.
//!
//! The update side hands over fully instantiated, warmed-up modules; the
//! plane applies a swap right after a flush and before the next push, so
//! every packet is inspected exactly once, by either the old or the new
//! version of a module — never lost, never twice. The plane never waits on
//! the update side: messages are polled between batches, reports are sent
//! on unbounded channels.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sandgate_runtime::wit::{Action, Batch};
use sandgate_runtime::ModuleInstance;
use serde::{Deserialize, Serialize};

use crate::capture::{CaptureError, CaptureReader, Frame};
use crate::decode::decode;
use crate::eve::AlertRecord;
use crate::flow::{FlowConfig, FlowTable};
use crate::inspect::{ActiveModule, BatchLimits, Inspector, ModuleEvent, Verdict};

use super::events::{log_line, PlaneCounters};
use super::UpdateError;
use serde_json::json;

/// How often fault counts are checked for a burst.
pub const BURST_PERIOD: Duration = Duration::from_millis(500);
/// After a burst report, a slot stays quiet this long (its faults are
/// still counted in the metrics).
pub const BURST_QUIET: Duration = Duration::from_secs(10);

/// What a source yields next.
pub enum Next {
    /// `frame` holds a packet.
    Frame,
    /// The source started over (a replayed capture looped): flows restart.
    Wrapped,
    /// Nothing now; try again shortly.
    Idle,
}

/// Where the capture plane's packets come from (a replayed capture).
pub trait PacketSource: Send {
    fn next_frame(&mut self, frame: &mut Frame) -> Next;
}

/// A source with no traffic.
struct NoTraffic;

impl PacketSource for NoTraffic {
    fn next_frame(&mut self, _: &mut Frame) -> Next {
        Next::Idle
    }
}

/// What the update side hands a data plane when it starts it.
pub struct PlaneLink {
    /// The last good set, instantiated (each with its fallback).
    pub initial: Vec<ActiveModule>,
    /// Swaps and shadow runs; the plane stops when the sender is gone.
    pub msgs: Receiver<PlaneMsg>,
    /// Quarantines, rollbacks and fault bursts, for events and the store.
    pub events: tokio::sync::mpsc::UnboundedSender<PlaneEvent>,
    /// Counters and slot health for `status.json`, refreshed by the plane.
    pub snapshot: Arc<Mutex<PlaneSnapshot>>,
    /// Prometheus counters the plane increments.
    pub counters: PlaneCounters,
}

/// Something the update daemon can drive: it starts with the last good
/// set, applies [`PlaneMsg`]s between batches and reports through the
/// link. The daemon does not know whether packets come from a capture or
/// from interfaces.
pub trait DataPlane: Send {
    /// Start inspecting on the plane's own thread(s); an error (e.g. an
    /// interface that cannot be opened) stops the daemon at startup.
    fn start(self: Box<Self>, link: PlaneLink) -> Result<(), UpdateError>;
}

/// The capture-loop data plane: one thread, a [`PacketSource`] (no
/// traffic when `None`).
pub struct CapturePlane {
    pub source: Option<Box<dyn PacketSource>>,
    pub config: PlaneConfig,
}

impl DataPlane for CapturePlane {
    fn start(self: Box<Self>, link: PlaneLink) -> Result<(), UpdateError> {
        let plane = Plane {
            inspector: Inspector::new(link.initial, self.config.batch),
            source: self.source.unwrap_or_else(|| Box::new(NoTraffic)),
            config: self.config,
            msgs: link.msgs,
            events: link.events,
            snapshot: link.snapshot,
            counters: link.counters,
        };
        std::thread::Builder::new()
            .name("data-plane".into())
            .spawn(move || plane.run())
            .map_err(|e| UpdateError::Refused(format!("starting the data plane: {e}")))?;
        Ok(())
    }
}

/// A capture replayed in a loop, timestamps shifted so time keeps moving.
pub struct PcapLoop {
    frames: Vec<Frame>,
    pos: usize,
    shift_us: u64,
    span_us: u64,
}

impl PcapLoop {
    /// Reads the whole capture into memory.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let mut reader = CaptureReader::open(path)?;
        let mut frames = Vec::new();
        let mut f = Frame::default();
        while reader.read_into(&mut f)? {
            frames.push(f.clone());
        }
        let first = frames.first().map_or(0, |f| f.timestamp_us);
        let last = frames.last().map_or(0, |f| f.timestamp_us);
        Ok(PcapLoop {
            frames,
            pos: 0,
            shift_us: 0,
            // A second past the last packet, so every flow has gone idle.
            span_us: last.saturating_sub(first) + 1_000_000,
        })
    }
}

impl PacketSource for PcapLoop {
    fn next_frame(&mut self, frame: &mut Frame) -> Next {
        if self.frames.is_empty() {
            return Next::Idle;
        }
        if self.pos == self.frames.len() {
            self.pos = 0;
            self.shift_us += self.span_us;
            return Next::Wrapped;
        }
        let src = &self.frames[self.pos];
        self.pos += 1;
        frame.number = src.number;
        frame.timestamp_us = src.timestamp_us + self.shift_us;
        frame.linktype = src.linktype;
        frame.orig_len = src.orig_len;
        frame.data.clear();
        frame.data.extend_from_slice(&src.data);
        Next::Frame
    }
}

/// Result of a swap, for the update side and the benchmark.
#[derive(Debug, Clone)]
pub struct SwapDone {
    /// Time the data plane spent applying the swap (its stall).
    pub pause: Duration,
    /// Module names that replaced an existing slot.
    pub replaced: Vec<String>,
    /// Module names that were added.
    pub added: Vec<String>,
}

/// A shadow run's verdict-rate comparison.
#[derive(Debug, Clone, Default)]
pub struct ShadowReport {
    pub batches: u64,
    pub packets: u64,
    pub faults: u64,
    pub last_fault: Option<String>,
    /// Packets the candidate would have dropped.
    pub candidate_drops: u64,
    /// Packets the active set dropped by rule.
    pub active_drops: u64,
}

/// Messages to the data plane.
pub enum PlaneMsg {
    /// Install these modules, each replacing the slot of the same name.
    Swap {
        modules: Vec<ActiveModule>,
        done: tokio::sync::oneshot::Sender<SwapDone>,
    },
    /// Run `instance` beside the active set on live traffic for `duration`.
    Shadow {
        instance: Box<ModuleInstance>,
        duration: Duration,
        done: tokio::sync::oneshot::Sender<ShadowReport>,
    },
}

/// What the plane reports to the update side.
#[derive(Debug, Clone)]
pub enum PlaneEvent {
    /// A slot was quarantined or rolled back.
    Module(ModuleEvent),
    /// A module faulted `faults` times within one [`BURST_PERIOD`].
    FaultBurst {
        module: String,
        faults: u64,
        last_fault: Option<String>,
    },
}

/// One module slot's health, as the plane sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotHealth {
    pub module: String,
    /// Version the module declared in `describe`.
    pub declared_version: String,
    pub faults: u64,
    pub last_fault: Option<String>,
    pub quarantined: bool,
    pub rolled_back: bool,
    pub has_fallback: bool,
}

/// Counters the plane publishes after every batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaneSnapshot {
    pub packets: u64,
    pub alerts: u64,
    pub dropped_by_rule: u64,
    pub dropped_by_fault: u64,
    pub batches: u64,
    pub swaps: u64,
    pub last_swap_pause_us: u64,
    /// Alerts per sid.
    pub alerts_by_sid: BTreeMap<u32, u64>,
    pub modules: Vec<SlotHealth>,
}

/// Settings of the plane.
#[derive(Debug, Clone)]
pub struct PlaneConfig {
    pub batch: BatchLimits,
    /// Packets per second the source is paced to (0: as fast as possible).
    pub pps: u64,
    /// Faults within one [`BURST_PERIOD`] that make a [`PlaneEvent::FaultBurst`].
    pub burst_faults: u64,
}

impl Default for PlaneConfig {
    fn default() -> Self {
        PlaneConfig {
            batch: BatchLimits::default(),
            pps: 5_000,
            burst_faults: 3,
        }
    }
}

/// Everything the plane thread owns.
pub struct Plane {
    pub inspector: Inspector,
    pub source: Box<dyn PacketSource>,
    pub config: PlaneConfig,
    pub msgs: Receiver<PlaneMsg>,
    pub events: tokio::sync::mpsc::UnboundedSender<PlaneEvent>,
    pub snapshot: Arc<Mutex<PlaneSnapshot>>,
    pub counters: PlaneCounters,
}

/// A candidate module running beside the active set until a deadline.
pub struct ShadowRun {
    instance: Box<ModuleInstance>,
    until: Instant,
    report: ShadowReport,
    done: tokio::sync::oneshot::Sender<ShadowReport>,
}

impl ShadowRun {
    pub fn new(
        instance: Box<ModuleInstance>,
        duration: Duration,
        done: tokio::sync::oneshot::Sender<ShadowReport>,
    ) -> Self {
        ShadowRun {
            instance,
            until: Instant::now() + duration,
            report: ShadowReport::default(),
            done,
        }
    }

    /// The candidate inspects `batch` (`packets` packets) the active set
    /// is about to.
    pub fn observe(&mut self, batch: &Batch, packets: u64) {
        run_shadow(self, batch, packets);
    }

    /// The active set dropped `n` packets of the batch by rule.
    pub fn active_dropped(&mut self, n: u64) {
        self.report.active_drops += n;
    }

    /// Whether the run's time is up.
    pub fn is_over(&self) -> bool {
        Instant::now() >= self.until
    }

    /// Hand the report to the activation waiting for it.
    pub fn finish(self) {
        let _ = self.done.send(self.report);
    }
}

type Shadow = ShadowRun;

impl Plane {
    /// Runs until the update side hangs up.
    pub fn run(mut self) {
        let mut flows = FlowTable::new(FlowConfig::default());
        let mut frame = Frame::default();
        let mut alerts: Vec<AlertRecord> = Vec::new();
        let mut snap = PlaneSnapshot::default();
        let mut seen_events: Vec<usize> = vec![0; self.inspector.modules.len()];
        let mut reported_faults: Vec<u64> = self
            .inspector
            .modules
            .iter()
            .map(ActiveModule::fault_count)
            .collect();
        let mut rolled: Vec<bool> = vec![false; self.inspector.modules.len()];
        // Whether the slot's current module has faulted yet (logged once).
        let mut faulted: Vec<bool> = vec![false; self.inspector.modules.len()];
        let mut last_expire_us = 0u64;
        let mut shadow: Option<Shadow> = None;
        let started = Instant::now();
        let mut paced: u64 = 0;
        let mut last_burst_check = Instant::now();
        // A slot reports at most one burst per BURST_QUIET.
        let mut quiet_until: Vec<Instant> = vec![Instant::now(); self.inspector.modules.len()];
        loop {
            let mut idle = false;
            while !self.inspector.is_full() {
                match self.source.next_frame(&mut frame) {
                    Next::Frame => {}
                    Next::Idle => {
                        idle = true;
                        break;
                    }
                    Next::Wrapped => {
                        // Flush first: forgetting flows drops reassembly state.
                        self.flush(&mut alerts, &mut snap, &mut shadow);
                        let gone = flows.expire(u64::MAX);
                        self.inspector.forget_flows(&gone);
                        continue;
                    }
                }
                snap.packets += 1;
                self.counters.packets.inc();
                paced += 1;
                let Ok(d) = decode(frame.linktype, &frame.data) else {
                    continue;
                };
                let view = flows.track(&d, frame.timestamp_us);
                self.inspector
                    .push(frame.number, frame.timestamp_us, &frame.data, &d, &view);
                // Idle flows go once a second of packet time, as in replay.
                if frame.timestamp_us.saturating_sub(last_expire_us) > 1_000_000 {
                    last_expire_us = frame.timestamp_us;
                    let gone = flows.expire(frame.timestamp_us);
                    if !gone.is_empty() {
                        self.flush(&mut alerts, &mut snap, &mut shadow);
                        self.inspector.forget_flows(&gone);
                    }
                }
            }
            self.flush(&mut alerts, &mut snap, &mut shadow);
            // Reports: first faults, quarantine/rollback events, fault bursts.
            for (i, m) in self.inspector.modules.iter().enumerate() {
                if !faulted[i] && m.fault_count() > 0 {
                    faulted[i] = true;
                    log_line(
                        "first_fault",
                        json!({"module": m.module.name(),
                               "fault": m.last_fault.as_ref().map(ToString::to_string)}),
                    );
                }
                for e in m.events.iter().skip(seen_events[i]) {
                    if matches!(e, ModuleEvent::RolledBack { .. }) {
                        rolled[i] = true;
                    }
                    let _ = self.events.send(PlaneEvent::Module(e.clone()));
                }
                seen_events[i] = m.events.len();
            }
            if last_burst_check.elapsed() >= BURST_PERIOD {
                last_burst_check = Instant::now();
                for (i, m) in self.inspector.modules.iter().enumerate() {
                    let now = m.fault_count();
                    let new = now.saturating_sub(reported_faults[i]);
                    if new > 0 {
                        self.counters
                            .faults
                            .get_or_create(&vec![("module".into(), m.module.name().into())])
                            .inc_by(new);
                    }
                    if new >= self.config.burst_faults && Instant::now() >= quiet_until[i] {
                        quiet_until[i] = Instant::now() + BURST_QUIET;
                        let _ = self.events.send(PlaneEvent::FaultBurst {
                            module: m.module.name().to_string(),
                            faults: new,
                            last_fault: m.last_fault.as_ref().map(ToString::to_string),
                        });
                    }
                    reported_faults[i] = now;
                }
            }
            // Swaps and shadow runs, at the batch boundary.
            loop {
                match self.msgs.try_recv() {
                    Ok(PlaneMsg::Swap { modules, done }) => {
                        let t = Instant::now();
                        let mut replaced = Vec::new();
                        let mut added = Vec::new();
                        let mut old = Vec::new();
                        for m in modules {
                            let name = m.module.name().to_string();
                            let at = self
                                .inspector
                                .modules
                                .iter()
                                .position(|x| x.module.name() == name);
                            match self.inspector.replace_module(m) {
                                Some(prev) => {
                                    replaced.push(name);
                                    old.push(prev);
                                }
                                None => added.push(name),
                            }
                            match at {
                                Some(i) => {
                                    faulted[i] = false;
                                    seen_events[i] = 0;
                                    reported_faults[i] = 0;
                                    quiet_until[i] = Instant::now();
                                    rolled[i] = false;
                                }
                                None => {
                                    faulted.push(false);
                                    seen_events.push(0);
                                    reported_faults.push(0);
                                    quiet_until.push(Instant::now());
                                    rolled.push(false);
                                }
                            }
                        }
                        let pause = t.elapsed();
                        // Old instances are released after the pause is taken.
                        drop(old);
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
                    }) => {
                        shadow = Some(ShadowRun::new(instance, duration, done));
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if shadow.as_ref().is_some_and(ShadowRun::is_over) {
                if let Some(s) = shadow.take() {
                    s.finish();
                }
            }
            snap.modules = self
                .inspector
                .modules
                .iter()
                .enumerate()
                .map(|(i, m)| SlotHealth {
                    module: m.module.name().to_string(),
                    declared_version: m.module.info().version.clone(),
                    faults: m.fault_count(),
                    last_fault: m.last_fault.as_ref().map(ToString::to_string),
                    quarantined: m.is_quarantined(),
                    rolled_back: rolled.get(i).copied().unwrap_or(false),
                    has_fallback: m.fallback.is_some(),
                })
                .collect();
            if let Ok(mut s) = self.snapshot.lock() {
                *s = snap.clone();
            }
            // Pacing: hold the configured packet rate; idle sources nap.
            if idle {
                std::thread::sleep(Duration::from_millis(20));
            } else if self.config.pps > 0 {
                let due = Duration::from_secs_f64(paced as f64 / self.config.pps as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait.min(Duration::from_millis(100)));
                }
            }
        }
    }

    fn flush(
        &mut self,
        alerts: &mut Vec<AlertRecord>,
        snap: &mut PlaneSnapshot,
        shadow: &mut Option<Shadow>,
    ) {
        let n = self.inspector.pending() as u64;
        if n == 0 {
            return;
        }
        if let Some(s) = shadow.as_mut() {
            s.observe(self.inspector.batch(), n);
        }
        let mut drops = 0;
        for v in self.inspector.flush(alerts) {
            match v {
                Verdict::Pass => {}
                Verdict::Drop => {
                    snap.dropped_by_rule += 1;
                    drops += 1;
                }
                Verdict::DropByFault => {
                    snap.dropped_by_fault += 1;
                    self.counters.dropped_by_fault.inc();
                }
            }
        }
        if let Some(s) = shadow.as_mut() {
            s.active_dropped(drops);
        }
        snap.batches += 1;
        snap.alerts += alerts.len() as u64;
        self.counters.alerts.inc_by(alerts.len() as u64);
        for a in alerts.drain(..) {
            *snap.alerts_by_sid.entry(a.signature_id).or_default() += 1;
        }
    }
}

/// The candidate inspects the same batch the active set is about to; its
/// hits only count, they never decide a packet.
fn run_shadow(s: &mut ShadowRun, batch: &Batch, packets: u64) {
    s.report.batches += 1;
    s.report.packets += packets;
    match s.instance.inspect(batch) {
        Ok(hits) => {
            let mut dropped: Vec<u32> = hits
                .iter()
                .filter(|h| matches!(h.action, Action::Drop | Action::Reject))
                .map(|h| h.packet)
                .collect();
            dropped.sort_unstable();
            dropped.dedup();
            s.report.candidate_drops += dropped.len() as u64;
        }
        Err(f) => {
            s.report.faults += 1;
            s.report.last_fault = Some(f.to_string());
        }
    }
}
