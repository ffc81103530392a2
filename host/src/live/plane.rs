//! The data plane itself, independent of how frames arrive: ingress
//! (decode, bypass, worker choice, bounded queues), the workers (flow table,
//! one [`Inspector`] each, verdicts, rejects), the watchdog and the counters.
//!
//! Frames enter through [`Plane::ingress`] with the side they arrived on and
//! leave through the [`Port`] of the other side. The pnet front end in
//! [`super::port`] calls `ingress` from one receive thread per interface;
//! tests can call it directly with [`MemoryPort`]s.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use sandgate_runtime::{FailPolicy, LoadedModule};

use super::config::{Bypass, Config, Mode, Policies};
use super::reject;
use super::LiveError;
use crate::capture::LinkType;
use crate::decode::{decode, proto, Decoded};
use crate::defrag::{DefragConfig, DefragResult, Defragmenter};
use crate::eve::AlertRecord;
use crate::flow::{FlowConfig, FlowTable};
use crate::inspect::{ActiveModule, BatchLimits, Inspector, ModuleEvent, Verdict};
use crate::update::plane::{ShadowRun, SlotHealth};

/// A worker's own instance of `m`: same module, fallback and `policy`.
fn fresh_copy(m: &ActiveModule, policy: FailPolicy) -> ActiveModule {
    let copy = ActiveModule::new(m.module.clone(), policy);
    match &m.fallback {
        Some(f) => copy.with_fallback(f.clone()),
        None => copy,
    }
}

/// Where alerts go; called from worker threads.
pub type AlertSink = Arc<dyn Fn(&AlertRecord) + Send + Sync>;

/// One way out of the bridge.
pub trait Port: Send + Sync {
    /// Transmit one Ethernet frame.
    fn send(&self, frame: &[u8]) -> io::Result<()>;
}

/// A [`Port`] that keeps what it is sent, for tests and benchmarks.
#[derive(Default)]
pub struct MemoryPort {
    frames: Mutex<Vec<Vec<u8>>>,
}

impl MemoryPort {
    /// The frames sent so far, taken out.
    pub fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.frames.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Port for MemoryPort {
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(frame.to_vec());
        Ok(())
    }
}

/// Which interface a frame came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A = 0,
    B = 1,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Counters of a running data plane (a snapshot). Every frame received is
/// accounted for in exactly one of the outcome counters, so losses are
/// never silent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Frames handed to ingress.
    pub received: u64,
    /// Frames sent on (passed, bypassed, non-IP, fail-open).
    pub forwarded: u64,
    /// Non-IP frames (ARP, LLDP, ...) forwarded without inspection.
    pub not_ip: u64,
    /// IP frames that did not decode, forwarded without inspection.
    pub decode_errors: u64,
    /// Frames on the bypass or management list, forwarded uninspected.
    pub bypassed: u64,
    /// Packets the modules inspected.
    pub inspected: u64,
    /// Dropped by a `drop`/`reject` rule.
    pub dropped_by_rule: u64,
    /// Later packets of a flow a rule dropped, dropped without inspection.
    pub dropped_flow: u64,
    /// Dropped because a fail-closed module faulted.
    pub dropped_by_fault: u64,
    /// TCP resets and ICMP unreachables sent for `reject` rules.
    pub rejects_sent: u64,
    /// Packets dropped because their worker's queue was full.
    pub queue_overflow: u64,
    /// Times a worker was declared stalled.
    pub watchdog_trips: u64,
    /// Packets of a stalled worker forwarded uninspected (fail-open).
    pub watchdog_passed: u64,
    /// Packets of a stalled worker dropped (fail-closed).
    pub watchdog_dropped: u64,
    /// Packets of a batch that finished after its worker was declared
    /// stalled: discarded, because later packets of the same flows were
    /// already handled by the policy and must not be overtaken.
    pub late_discarded: u64,
    /// Transmit errors (the frame is lost).
    pub send_errors: u64,
    /// Frames the kernel dropped before the bridge read them (socket
    /// buffer full), from `PACKET_STATISTICS`.
    pub kernel_drops: u64,
    /// Receive errors other than timeouts.
    pub receive_errors: u64,
    /// Alerts emitted.
    pub alerts: u64,
    /// Module faults, all workers and modules.
    pub module_faults: u64,
    /// IDS: packets a rule or a fail-closed fault would have dropped inline.
    pub would_drop: u64,
    /// IP fragments received. They are held until their datagram is
    /// whole; the datagram is inspected (and counted above) as one packet,
    /// and when it passes its fragments are forwarded as received.
    pub fragments: u64,
    /// Datagrams reassembled from fragments.
    pub reassembled: u64,
    /// Fragments dropped because their datagram could not be reassembled
    /// (refused overlap, too large, memory cap) or was not completed in
    /// time: it could not be inspected.
    pub fragments_dropped: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    forwarded: AtomicU64,
    not_ip: AtomicU64,
    decode_errors: AtomicU64,
    bypassed: AtomicU64,
    inspected: AtomicU64,
    dropped_by_rule: AtomicU64,
    dropped_flow: AtomicU64,
    dropped_by_fault: AtomicU64,
    rejects_sent: AtomicU64,
    queue_overflow: AtomicU64,
    watchdog_trips: AtomicU64,
    watchdog_passed: AtomicU64,
    watchdog_dropped: AtomicU64,
    late_discarded: AtomicU64,
    send_errors: AtomicU64,
    kernel_drops: AtomicU64,
    receive_errors: AtomicU64,
    alerts: AtomicU64,
    would_drop: AtomicU64,
    fragments: AtomicU64,
    reassembled: AtomicU64,
    fragments_dropped: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A packet on its way to a worker, decoded once at ingress.
struct Job {
    side: Side,
    ts_us: u64,
    /// What is inspected (and answered for `reject`): the frame, or for a
    /// reassembled datagram the first fragment's link header + the whole
    /// IP datagram.
    frame: Vec<u8>,
    decoded: Decoded,
    /// A reassembled datagram's fragments as received: forwarded instead
    /// of `frame` when it passes.
    fragments: Vec<(Side, Vec<u8>)>,
}

/// Source, destination, identification, protocol.
type DatagramKey = (IpAddr, IpAddr, u32, u8);
/// A frame held for forwarding later, with the side it came in on.
type Held = (Side, Vec<u8>);

/// Fragment reassembly at ingress: fragments are held until their
/// datagram is whole, which is then inspected as one packet.
struct Frags {
    defrag: Defragmenter,
    /// The frames of each datagram in reassembly, by (source, destination,
    /// identification, protocol) as the defragmenter keys them, with the
    /// time of the latest one.
    held: HashMap<DatagramKey, (Vec<Held>, u64)>,
    timeout_us: u64,
    last_expire_us: u64,
}

/// Worker state word: idle, busy since (ms after start, +1), or stalled.
const IDLE: u64 = 0;
const STALLED: u64 = u64::MAX;

/// A command for one worker, applied between batches.
pub(super) enum Control {
    /// Put these modules (this worker's own instances) in their slots.
    Install {
        modules: Vec<ActiveModule>,
        ack: Arc<Ack>,
    },
    /// Another worker rolled this module back: do the same now, so every
    /// worker runs the same version.
    RollBack(String),
}

/// Counts the workers that still have to apply an install, and the
/// longest pause one of them took.
pub(super) struct Ack {
    left: AtomicU64,
    pause_us: AtomicU64,
}

impl Ack {
    fn done(&self, pause: Duration) {
        self.pause_us
            .fetch_max(pause.as_micros() as u64, Ordering::Relaxed);
        self.left.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A module slot as the plane starts it: the module and its last good
/// version (rolled back to when it faults too often).
pub type Slot = (LoadedModule, Option<LoadedModule>);

struct WorkerLink {
    tx: Sender<Job>,
    /// A second handle on the queue, for the watchdog to drain a stalled
    /// worker's packets.
    rx: Receiver<Job>,
    state: AtomicU64,
    /// Module faults counted by this worker so far.
    faults: AtomicU64,
    mailbox: Mutex<Vec<Control>>,
    mail: AtomicBool,
    /// This worker's module slots, refreshed between batches.
    health: Mutex<Vec<SlotHealth>>,
    /// Quarantines and rollbacks not yet collected by [`Plane::take_events`].
    events: Mutex<Vec<ModuleEvent>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What can change while running: swapped whole by [`Plane::reload`].
struct Live {
    policies: Arc<Policies>,
    bypass: Arc<Bypass>,
    generation: u64,
}

/// The shared state of a running data plane.
pub struct Plane {
    ports: Option<[Arc<dyn Port>; 2]>,
    live: RwLock<Live>,
    generation: AtomicU64,
    counters: Counters,
    workers: Vec<WorkerLink>,
    hasher: RandomState,
    /// A shadow run waiting for a worker to take it.
    shadow: Mutex<Option<ShadowRun>>,
    frags: Mutex<Frags>,
    /// Names of the modules the workers run (for the stall policy).
    modules: Mutex<BTreeSet<String>>,
    /// What a stalled worker's packets get: dropped when the default or
    /// any running module's policy is fail-closed (none of the modules can
    /// inspect them), passed otherwise.
    stall_closed: AtomicBool,
    pub(super) stop: AtomicBool,
    started: Instant,
    watchdog: Duration,
}

impl Plane {
    /// Starts the workers and the watchdog. `ports` are the A and B
    /// interfaces' transmit sides (inline); `None` makes a passive IDS.
    pub(super) fn start(
        cfg: &Config,
        modules: Vec<Slot>,
        ports: Option<[Arc<dyn Port>; 2]>,
        alerts: AlertSink,
    ) -> Result<(Arc<Plane>, Vec<JoinHandle<()>>), LiveError> {
        cfg.validate()?;
        if cfg.mode == Mode::Inline && ports.is_none() {
            return Err(LiveError::Setup(
                "inline mode needs a port for each interface".into(),
            ));
        }
        let n = cfg.worker_count();
        let workers = (0..n)
            .map(|_| {
                let (tx, rx) = bounded(cfg.limits.queue);
                WorkerLink {
                    tx,
                    rx,
                    state: AtomicU64::new(IDLE),
                    faults: AtomicU64::new(0),
                    mailbox: Mutex::new(Vec::new()),
                    mail: AtomicBool::new(false),
                    health: Mutex::new(Vec::new()),
                    events: Mutex::new(Vec::new()),
                }
            })
            .collect();
        let plane = Arc::new(Plane {
            ports,
            live: RwLock::new(Live {
                policies: Arc::new(cfg.policy.clone()),
                bypass: Arc::new(cfg.effective_bypass()),
                generation: 0,
            }),
            generation: AtomicU64::new(0),
            counters: Counters::default(),
            workers,
            hasher: RandomState::new(),
            shadow: Mutex::new(None),
            frags: Mutex::new(Frags {
                defrag: Defragmenter::new(DefragConfig::default()),
                held: HashMap::new(),
                timeout_us: DefragConfig::default().timeout_us,
                last_expire_us: 0,
            }),
            modules: Mutex::new(modules.iter().map(|(m, _)| m.name().to_string()).collect()),
            stall_closed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            started: Instant::now(),
            watchdog: Duration::from_millis(cfg.limits.watchdog_ms),
        });
        plane.refresh_stall_policy();
        let mut threads = Vec::new();
        for index in 0..n {
            let worker = Worker::new(&plane, index, &modules, cfg, alerts.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("sandgate-worker-{index}"))
                .spawn(move || worker.run());
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    plane.stop.store(true, Ordering::Relaxed);
                    return Err(LiveError::Thread(e));
                }
            }
        }
        let p = plane.clone();
        match std::thread::Builder::new()
            .name("sandgate-watchdog".into())
            .spawn(move || p.watchdog_loop())
        {
            Ok(t) => threads.push(t),
            Err(e) => {
                plane.stop.store(true, Ordering::Relaxed);
                return Err(LiveError::Thread(e));
            }
        }
        Ok((plane, threads))
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64 + 1
    }

    /// Recompute the stall policy from the policies and running modules.
    fn refresh_stall_policy(&self) {
        let policies = self.read_live().policies.clone();
        let closed = policies.default == FailPolicy::FailClosed
            || lock(&self.modules)
                .iter()
                .any(|m| policies.of(m) == FailPolicy::FailClosed);
        self.stall_closed.store(closed, Ordering::Release);
    }

    fn read_live(&self) -> std::sync::RwLockReadGuard<'_, Live> {
        self.live.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Swap policies and the bypass list. Workers pick the new policies up
    /// before their next batch; no packet is dropped or requeued.
    pub(super) fn reload(&self, cfg: &Config) -> Result<(), LiveError> {
        cfg.validate()?;
        let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
        live.policies = Arc::new(cfg.policy.clone());
        live.bypass = Arc::new(cfg.effective_bypass());
        live.generation += 1;
        self.generation.store(live.generation, Ordering::Release);
        drop(live);
        self.refresh_stall_policy();
        Ok(())
    }

    /// Install `modules` in every worker, each worker getting its own
    /// instances (the first worker takes `modules` themselves), between
    /// two of its batches. Waits until every worker has applied it or
    /// `wait` has passed (a stalled worker applies it when it recovers);
    /// returns the longest pause a worker took.
    pub(super) fn install(&self, modules: Vec<ActiveModule>, wait: Duration) -> Duration {
        let policies = self.read_live().policies.clone();
        let mut copies: Vec<Vec<ActiveModule>> = (1..self.workers.len())
            .map(|_| {
                modules
                    .iter()
                    .map(|m| fresh_copy(m, policies.of(m.module.name())))
                    .collect()
            })
            .collect();
        lock(&self.modules).extend(modules.iter().map(|m| m.module.name().to_string()));
        self.refresh_stall_policy();
        copies.insert(0, modules);
        let ack = Arc::new(Ack {
            left: AtomicU64::new(self.workers.len() as u64),
            pause_us: AtomicU64::new(0),
        });
        for (link, modules) in self.workers.iter().zip(copies) {
            lock(&link.mailbox).push(Control::Install {
                modules,
                ack: ack.clone(),
            });
            link.mail.store(true, Ordering::Release);
        }
        let until = Instant::now() + wait;
        while ack.left.load(Ordering::Acquire) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        Duration::from_micros(ack.pause_us.load(Ordering::Relaxed))
    }

    /// Make every worker roll `module` back to its fallback.
    pub(super) fn roll_back(&self, module: &str) {
        for link in &self.workers {
            lock(&link.mailbox).push(Control::RollBack(module.to_string()));
            link.mail.store(true, Ordering::Release);
        }
    }

    /// Run a candidate beside the active set in the first worker with
    /// traffic (it sees that worker's flows).
    pub(super) fn shadow(&self, run: ShadowRun) {
        if let Some(old) = lock(&self.shadow).replace(run) {
            old.finish();
        }
    }

    /// End a shadow run no worker took (no traffic) once its time is up,
    /// so the activation waiting for it goes on.
    pub(super) fn expire_shadow(&self) {
        let mut pending = lock(&self.shadow);
        if pending.as_ref().is_some_and(ShadowRun::is_over) {
            if let Some(run) = pending.take() {
                run.finish();
            }
        }
    }

    /// Module events of every worker since the last call.
    pub(super) fn take_events(&self) -> Vec<ModuleEvent> {
        self.workers
            .iter()
            .flat_map(|l| std::mem::take(&mut *lock(&l.events)))
            .collect()
    }

    /// Slot health of every worker (one list per worker).
    pub(super) fn health(&self) -> Vec<Vec<SlotHealth>> {
        self.workers
            .iter()
            .map(|l| lock(&l.health).clone())
            .collect()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LiveStats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LiveStats {
            received: g(&c.received),
            forwarded: g(&c.forwarded),
            not_ip: g(&c.not_ip),
            decode_errors: g(&c.decode_errors),
            bypassed: g(&c.bypassed),
            inspected: g(&c.inspected),
            dropped_by_rule: g(&c.dropped_by_rule),
            dropped_flow: g(&c.dropped_flow),
            dropped_by_fault: g(&c.dropped_by_fault),
            rejects_sent: g(&c.rejects_sent),
            queue_overflow: g(&c.queue_overflow),
            watchdog_trips: g(&c.watchdog_trips),
            watchdog_passed: g(&c.watchdog_passed),
            watchdog_dropped: g(&c.watchdog_dropped),
            late_discarded: g(&c.late_discarded),
            send_errors: g(&c.send_errors),
            kernel_drops: g(&c.kernel_drops),
            receive_errors: g(&c.receive_errors),
            alerts: g(&c.alerts),
            module_faults: self.workers.iter().map(|w| g(&w.faults)).sum(),
            would_drop: g(&c.would_drop),
            fragments: g(&c.fragments),
            reassembled: g(&c.reassembled),
            fragments_dropped: g(&c.fragments_dropped),
        }
    }

    pub(super) fn counters_kernel_drops(&self, n: u64) {
        add(&self.counters.kernel_drops, n);
    }

    pub(super) fn counters_receive_error(&self) {
        add(&self.counters.receive_errors, 1);
    }

    /// Send `frame` out of `side` (no-op for an IDS).
    fn transmit(&self, side: Side, frame: &[u8]) -> bool {
        let Some(ports) = &self.ports else {
            return false;
        };
        match ports[side as usize].send(frame) {
            Ok(()) => true,
            Err(_) => {
                add(&self.counters.send_errors, 1);
                false
            }
        }
    }

    /// Forward a frame that arrived on `from` to the other side.
    fn forward(&self, from: Side, frame: &[u8]) {
        if self.transmit(from.other(), frame) {
            add(&self.counters.forwarded, 1);
        }
    }

    /// One frame received on `side`, stamped now.
    pub fn ingress(&self, side: Side, frame: &[u8]) {
        let ts_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        self.ingress_at(side, frame, ts_us);
    }

    /// One frame received on `side` at `ts_us` (µs since the epoch).
    pub fn ingress_at(&self, side: Side, frame: &[u8], ts_us: u64) {
        let c = &self.counters;
        add(&c.received, 1);
        let d = match decode(LinkType::ETHERNET, frame) {
            Ok(d) => d,
            Err(e) => {
                add(
                    if e.is_not_ip() {
                        &c.not_ip
                    } else {
                        &c.decode_errors
                    },
                    1,
                );
                self.forward(side, frame);
                return;
            }
        };
        let job = if d.is_fragment {
            match self.reassemble(side, frame, &d, ts_us) {
                Some(job) => job,
                None => return,
            }
        } else {
            Job {
                side,
                ts_us,
                frame: frame.to_vec(),
                decoded: d,
                fragments: Vec::new(),
            }
        };
        let bypass = self.read_live().bypass.clone();
        if bypass.matches(&job.decoded) {
            add(&c.bypassed, 1);
            self.pass(&job);
            return;
        }
        let link = &self.workers[self.worker_of(&job.decoded)];
        if link.state.load(Ordering::Acquire) == STALLED {
            self.apply_stall_policy(&job);
            return;
        }
        match link.tx.try_send(job) {
            Ok(()) => {}
            // Passing it uninspected would overtake its flow's queued
            // packets; a dropped segment is retransmitted, a reordered
            // one is not undone.
            Err(TrySendError::Full(_)) => add(&c.queue_overflow, 1),
            Err(TrySendError::Disconnected(job)) => self.apply_stall_policy(&job),
        }
    }

    /// The worker of a packet: a hash of its 5-tuple that is the same in
    /// both directions, keyed per run so crafted tuples cannot pile onto
    /// one worker on purpose.
    fn worker_of(&self, d: &Decoded) -> usize {
        if self.workers.len() == 1 {
            return 0;
        }
        let (sp, dp) = match d.protocol {
            proto::TCP | proto::UDP => (d.src_port, d.dst_port),
            _ => (0, 0),
        };
        let a: (IpAddr, u16) = (d.src, sp);
        let b: (IpAddr, u16) = (d.dst, dp);
        let key = if a <= b {
            (d.protocol, a, b)
        } else {
            (d.protocol, b, a)
        };
        (self.hasher.hash_one(key) % self.workers.len() as u64) as usize
    }

    /// Forward a job: its fragments as received, or its frame.
    fn pass(&self, job: &Job) {
        if job.fragments.is_empty() {
            self.forward(job.side, &job.frame);
        }
        for (side, frame) in &job.fragments {
            self.forward(*side, frame);
        }
    }

    /// Hold fragment `frame`; when its datagram is complete, the job that
    /// inspects the whole datagram. A datagram that cannot be reassembled
    /// (overlaps the policy refuses, too large, memory cap) cannot be
    /// inspected and is dropped, counted in `fragments_dropped`, as are
    /// the fragments of datagrams never completed within the timeout.
    fn reassemble(&self, side: Side, frame: &[u8], d: &Decoded, ts_us: u64) -> Option<Job> {
        let c = &self.counters;
        add(&c.fragments, 1);
        let Some(f) = d.fragment else {
            // Flagged a fragment without its position: inspected as is.
            return Some(Job {
                side,
                ts_us,
                frame: frame.to_vec(),
                decoded: d.clone(),
                fragments: Vec::new(),
            });
        };
        let key = (d.src, d.dst, f.id, f.protocol);
        let mut frags = lock(&self.frags);
        let frags = &mut *frags;
        if ts_us.saturating_sub(frags.last_expire_us) > 1_000_000 {
            frags.last_expire_us = ts_us;
            frags.defrag.expire(ts_us);
            let timeout = frags.timeout_us;
            frags.held.retain(|_, (frames, last)| {
                let keep = last.saturating_add(timeout) >= ts_us;
                if !keep {
                    add(&c.fragments_dropped, frames.len() as u64);
                }
                keep
            });
        }
        let entry = frags.held.entry(key).or_default();
        entry.0.push((side, frame.to_vec()));
        entry.1 = ts_us;
        match frags.defrag.push(frame, d, ts_us) {
            DefragResult::Held => None,
            DefragResult::Reassembled(ip) => {
                let (fragments, _) = frags.held.remove(&key).unwrap_or_default();
                add(&c.reassembled, 1);
                // The first fragment's link header in front of the whole
                // datagram: what is inspected, and what rejects answer.
                let link_len = d.l3.start.min(frame.len());
                let mut whole = frame[..link_len].to_vec();
                whole.extend_from_slice(&ip);
                match decode(LinkType::ETHERNET, &whole) {
                    Ok(decoded) => Some(Job {
                        side,
                        ts_us,
                        frame: whole,
                        decoded,
                        fragments,
                    }),
                    Err(_) => {
                        add(&c.fragments_dropped, fragments.len() as u64);
                        None
                    }
                }
            }
            DefragResult::Dropped(_) => {
                let (fragments, _) = frags.held.remove(&key).unwrap_or_default();
                add(&c.fragments_dropped, fragments.len() as u64);
                None
            }
            DefragResult::NotFragment => {
                let (fragments, _) = frags.held.remove(&key).unwrap_or_default();
                Some(Job {
                    side,
                    ts_us,
                    frame: frame.to_vec(),
                    decoded: d.clone(),
                    fragments: if fragments.len() > 1 {
                        fragments
                    } else {
                        Vec::new()
                    },
                })
            }
        }
    }

    /// A stalled worker's packet: the stall policy decides, counted.
    fn apply_stall_policy(&self, job: &Job) {
        if self.stall_closed.load(Ordering::Acquire) {
            add(&self.counters.watchdog_dropped, 1);
        } else {
            add(&self.counters.watchdog_passed, 1);
            self.pass(job);
        }
    }

    /// Declares workers stalled when one batch takes longer than the
    /// deadline, and meanwhile empties their queues under the policy.
    fn watchdog_loop(&self) {
        let tick = (self.watchdog / 4).clamp(Duration::from_millis(5), Duration::from_millis(100));
        let deadline = self.watchdog.as_millis() as u64;
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
            let now = self.now_ms();
            for link in &self.workers {
                let s = link.state.load(Ordering::Acquire);
                if s != IDLE
                    && s != STALLED
                    && now.saturating_sub(s) > deadline
                    && link
                        .state
                        .compare_exchange(s, STALLED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    add(&self.counters.watchdog_trips, 1);
                }
                if link.state.load(Ordering::Acquire) == STALLED {
                    while let Ok(job) = link.rx.try_recv() {
                        self.apply_stall_policy(&job);
                    }
                }
            }
        }
    }
}

/// One worker: its own flow table, inspector (module instances) and the
/// set of flows a rule dropped.
struct Worker {
    plane: Arc<Plane>,
    index: usize,
    rx: Receiver<Job>,
    inspector: Inspector,
    flows: FlowTable,
    dropped: HashSet<u64>,
    pending: Vec<(Job, u64)>,
    verdicts: Vec<Verdict>,
    alerts: Vec<AlertRecord>,
    sink: AlertSink,
    batch: usize,
    /// Per module slot: events already published.
    seen_events: Vec<usize>,
    shadow: Option<ShadowRun>,
    generation: u64,
    number: u64,
    last_expire: Instant,
}

impl Worker {
    fn new(
        plane: &Arc<Plane>,
        index: usize,
        modules: &[Slot],
        cfg: &Config,
        sink: AlertSink,
    ) -> Worker {
        let active: Vec<ActiveModule> = modules
            .iter()
            .map(|(m, fallback)| {
                let a = ActiveModule::new(m.clone(), cfg.policy.of(m.name()));
                match fallback {
                    Some(f) => a.with_fallback(f.clone()),
                    None => a,
                }
            })
            .collect();
        let seen_events = vec![0; active.len()];
        let mut inspector = Inspector::new(
            active,
            BatchLimits {
                packets: cfg.limits.batch,
                ..BatchLimits::default()
            },
        );
        inspector.inline = plane.ports.is_some();
        let flows = FlowTable::new(FlowConfig {
            max_flows: cfg.limits.flows,
            worker_id: index as u16,
            ..FlowConfig::default()
        });
        Worker {
            plane: plane.clone(),
            index,
            rx: plane.workers[index].rx.clone(),
            inspector,
            flows,
            dropped: HashSet::new(),
            pending: Vec::with_capacity(cfg.limits.batch),
            verdicts: Vec::with_capacity(cfg.limits.batch),
            alerts: Vec::new(),
            sink,
            batch: cfg.limits.batch,
            seen_events,
            shadow: None,
            generation: 0,
            number: 0,
            last_expire: Instant::now(),
        }
    }

    fn run(mut self) {
        let plane = self.plane.clone();
        let link = &plane.workers[self.index];
        self.publish();
        loop {
            if self.plane.stop.load(Ordering::Relaxed) {
                return;
            }
            let first = match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.read_mail();
                    self.housekeeping();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            self.read_mail();
            link.state.store(self.plane.now_ms(), Ordering::Release);
            self.pick_up_reload();
            self.queue(first);
            while self.pending.len() < self.batch && !self.inspector.is_full() {
                match self.rx.try_recv() {
                    Ok(job) => self.queue(job),
                    Err(_) => break,
                }
            }
            self.inspect();
            let late = link.state.swap(IDLE, Ordering::AcqRel) == STALLED;
            self.emit(late);
            let faults: u64 = self.inspector.modules.iter().map(|m| m.fault_count()).sum();
            if faults != link.faults.swap(faults, Ordering::Relaxed) {
                self.publish();
            }
            if self.last_expire.elapsed() > Duration::from_secs(1) {
                self.housekeeping();
            }
        }
    }

    /// Apply module installs and rollbacks sent by the update side.
    fn read_mail(&mut self) {
        let link = &self.plane.workers[self.index];
        if !link.mail.swap(false, Ordering::AcqRel) {
            return;
        }
        let mail = std::mem::take(&mut *lock(&link.mailbox));
        for control in mail {
            match control {
                Control::Install { modules, ack } => {
                    let t = Instant::now();
                    let policies = self.plane.read_live().policies.clone();
                    let mut old = Vec::new();
                    for mut m in modules {
                        m.policy = policies.of(m.module.name());
                        let name = m.module.name().to_string();
                        match self.inspector.replace_module(m) {
                            Some(prev) => {
                                old.push(prev);
                                if let Some(i) = self.slot(&name) {
                                    self.seen_events[i] = 0;
                                }
                            }
                            None => self.seen_events.push(0),
                        }
                    }
                    ack.done(t.elapsed());
                    // Old instances are released after the pause is taken.
                    drop(old);
                }
                Control::RollBack(name) => {
                    let Some(i) = self.slot(&name) else { continue };
                    let m = &mut self.inspector.modules[i];
                    if let Some(fallback) = m.fallback.take() {
                        let policy = m.policy;
                        self.inspector
                            .replace_module(ActiveModule::new(fallback, policy));
                        self.seen_events[i] = 0;
                    }
                }
            }
        }
        self.publish();
    }

    fn slot(&self, name: &str) -> Option<usize> {
        self.inspector
            .modules
            .iter()
            .position(|m| m.module.name() == name)
    }

    /// Publish slot health and new module events for the update side.
    fn publish(&mut self) {
        let link = &self.plane.workers[self.index];
        let mut fresh = Vec::new();
        for (i, m) in self.inspector.modules.iter().enumerate() {
            let seen = self.seen_events.get(i).copied().unwrap_or(0);
            fresh.extend(m.events.iter().skip(seen).cloned());
            if let Some(s) = self.seen_events.get_mut(i) {
                *s = m.events.len();
            }
        }
        if !fresh.is_empty() {
            lock(&link.events).extend(fresh);
        }
        *lock(&link.health) = self
            .inspector
            .modules
            .iter()
            .map(|m| SlotHealth {
                module: m.module.name().to_string(),
                declared_version: m.module.info().version.clone(),
                faults: m.fault_count(),
                last_fault: m.last_fault.as_ref().map(ToString::to_string),
                quarantined: m.is_quarantined(),
                rolled_back: m
                    .events
                    .iter()
                    .any(|e| matches!(e, ModuleEvent::RolledBack { .. })),
                has_fallback: m.fallback.is_some(),
            })
            .collect();
    }

    /// New policies from a reload, applied between batches.
    fn pick_up_reload(&mut self) {
        let generation = self.plane.generation.load(Ordering::Acquire);
        if generation == self.generation {
            return;
        }
        let policies = self.plane.read_live().policies.clone();
        for m in &mut self.inspector.modules {
            m.policy = policies.of(m.module.name());
        }
        self.generation = generation;
    }

    fn queue(&mut self, job: Job) {
        let view = self.flows.track(&job.decoded, job.ts_us);
        if self.plane.ports.is_some() && self.dropped.contains(&view.flow_id) {
            add(&self.plane.counters.dropped_flow, 1);
            return;
        }
        self.number += 1;
        self.inspector
            .push(self.number, job.ts_us, &job.frame, &job.decoded, &view);
        self.pending.push((job, view.flow_id));
    }

    fn inspect(&mut self) {
        if self.shadow.is_none() {
            self.shadow = lock(&self.plane.shadow).take();
        }
        let n = self.inspector.pending() as u64;
        if let Some(s) = self.shadow.as_mut() {
            if n > 0 {
                s.observe(self.inspector.batch(), n);
            }
        }
        let verdicts = self.inspector.flush(&mut self.alerts);
        self.verdicts.clear();
        self.verdicts.extend_from_slice(verdicts);
        add(&self.plane.counters.inspected, self.pending.len() as u64);
        if let Some(mut s) = self.shadow.take() {
            let drops = self
                .verdicts
                .iter()
                .filter(|v| **v == Verdict::Drop)
                .count();
            s.active_dropped(drops as u64);
            if s.is_over() {
                s.finish();
            } else {
                self.shadow = Some(s);
            }
        }
    }

    /// Act on the verdicts of the batch just inspected, in arrival order.
    fn emit(&mut self, late: bool) {
        let plane = self.plane.clone();
        let c = &plane.counters;
        for a in self.alerts.drain(..) {
            add(&c.alerts, 1);
            (self.sink)(&a);
        }
        if late {
            add(&c.late_discarded, self.pending.len() as u64);
            self.pending.clear();
            return;
        }
        let inline = plane.ports.is_some();
        let rejected = self.inspector.rejected();
        for (i, (job, flow)) in self.pending.drain(..).enumerate() {
            let verdict = self.verdicts.get(i).copied().unwrap_or(Verdict::Pass);
            if !inline {
                if verdict != Verdict::Pass {
                    add(&c.would_drop, 1);
                }
                continue;
            }
            // An earlier packet of this batch got the flow dropped.
            if self.dropped.contains(&flow) {
                add(&c.dropped_flow, 1);
                continue;
            }
            match verdict {
                Verdict::Pass => plane.pass(&job),
                Verdict::DropByFault => add(&c.dropped_by_fault, 1),
                Verdict::Drop => {
                    add(&c.dropped_by_rule, 1);
                    self.dropped.insert(flow);
                    if rejected.get(i).copied().unwrap_or(false) {
                        for answer in reject::answers(&job.frame, &job.decoded) {
                            let out = if answer.back {
                                job.side
                            } else {
                                job.side.other()
                            };
                            if plane.transmit(out, &answer.frame) {
                                add(&c.rejects_sent, 1);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Expire idle flows; forget their module, stream and drop state.
    /// Also ends a shadow run whose time is up while traffic is idle.
    fn housekeeping(&mut self) {
        if self.shadow.as_ref().is_some_and(ShadowRun::is_over) {
            if let Some(s) = self.shadow.take() {
                s.finish();
            }
        }
        self.last_expire = Instant::now();
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let gone = self.flows.expire(now_us);
        if !gone.is_empty() {
            self.inspector.forget_flows(&gone);
            for f in &gone {
                self.dropped.remove(f);
            }
        }
    }
}
