//! Offline inspection: a capture file through the loaded modules.
//!
//! Used by `sandgate replay` and by the end-to-end tests. IPS modules
//! inspect packet batches; AV modules scan the reassembled TCP streams. Frames that are not
//! IP are counted and skipped; frames that fail to decode are counted with
//! their packet number; a capture that breaks off mid-file stops the replay
//! with an error after inspecting everything before the break.

use std::path::Path;
use std::time::{Duration, Instant};

use sandgate_patterns::bundle::Bundle;
use sandgate_runtime::wit::ModuleKind;
use sandgate_runtime::{Engine, FailPolicy, LoadError, LoadedModule};
use thiserror::Error;

use crate::capture::{CaptureError, CaptureReader, Frame, LinkType};
use crate::decode::decode;
use crate::defrag::{DefragConfig, DefragResult, Defragmenter};
use crate::eve::AlertRecord;
use crate::flow::{FlowConfig, FlowTable};
use crate::inspect::{ActiveModule, BatchLimits, Inspector, Verdict};
use crate::stream::{StreamConfig, StreamStats};
use crate::threshold::ThresholdConfig;

/// Settings of a replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub batch: BatchLimits,
    pub flow: FlowConfig,
    /// Failure policy of every module not named in `module_policy`.
    pub policy: FailPolicy,
    /// Per-module failure policy, by module name.
    pub module_policy: std::collections::BTreeMap<String, FailPolicy>,
    /// TCP reassembly limits.
    pub stream: StreamConfig,
    /// Threshold table size.
    pub thresholds: ThresholdConfig,
    /// IP fragment reassembly limits.
    pub defrag: DefragConfig,
}

/// Counters of one replay, for the summary table.
#[derive(Debug, Clone, Default)]
pub struct ReplayStats {
    pub packets: u64,
    pub bytes: u64,
    pub inspected: u64,
    pub not_ip: u64,
    pub decode_errors: u64,
    /// The first few decode errors, with packet numbers.
    pub decode_error_samples: Vec<String>,
    pub alerts: u64,
    pub dropped_by_rule: u64,
    pub dropped_by_fault: u64,
    /// Alerts a rule threshold or detection filter suppressed.
    pub suppressed_alerts: u64,
    /// Matches of drop/reject rules whose action a threshold withheld.
    pub actions_withheld: u64,
    /// TCP reassembly counters at the end of the replay.
    pub stream: StreamStats,
    /// IP datagrams rebuilt from fragments (each inspected besides its fragments).
    pub reassembled_datagrams: u64,
    pub elapsed: Duration,
}

/// Why a replay could not run or finish.
#[derive(Debug, Error)]
pub enum ReplayError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("alert output: {0}")]
    Output(String),
}

/// Modules of a bundle that loaded, and the ones the engine refused.
pub struct LoadedBundle {
    pub modules: Vec<LoadedModule>,
    pub refused: Vec<LoadError>,
}

/// Load the variant of each module of `bundle` that this engine serves
/// (the newest interface it implements); a refused module is reported, not
/// fatal. A module with no fitting variant is still offered to the engine
/// so the refusal carries the engine's own reason (import, version wanted,
/// versions offered).
pub fn load_bundle(engine: &Engine, bundle: &Bundle) -> LoadedBundle {
    let offered: Vec<String> = engine
        .config()
        .interfaces
        .iter()
        .map(ToString::to_string)
        .collect();
    let selection = bundle.select(&offered);
    let mut modules = Vec::new();
    let mut refused = Vec::new();
    let mut attempt = |id: &str, bytes: &[u8]| match engine.load(id, bytes) {
        Ok(m) => modules.push(m),
        Err(e) => refused.push(e),
    };
    for (entry, bytes) in &selection.chosen {
        attempt(&entry.id, bytes);
    }
    for (id, _) in &selection.unavailable {
        if let Some((_, bytes)) = bundle.variants(id).next() {
            attempt(id, bytes);
        }
    }
    LoadedBundle { modules, refused }
}

/// Replay `pcap` through `modules`, handing each alert to `on_alert`.
/// On a capture error mid-file, returns the stats so far with the error.
/// The modules are instantiated for this one capture; to replay several,
/// use one [`Replayer`] so they are instantiated once.
// The error carries the stats so far on purpose; it is returned once per
// replay, so its size costs nothing.
#[allow(clippy::result_large_err)]
pub fn replay(
    modules: &[LoadedModule],
    pcap: &Path,
    opts: &ReplayOptions,
    on_alert: &mut dyn FnMut(&AlertRecord) -> Result<(), String>,
) -> Result<(ReplayStats, Vec<Inspected>), (ReplayStats, ReplayError)> {
    let started = Instant::now();
    let mut replayer = Replayer::new(modules, opts);
    let mut result = replayer.replay(pcap, on_alert);
    // A one-off replay's time includes instantiating the modules.
    match &mut result {
        Ok((stats, _)) | Err((stats, _)) => stats.elapsed = started.elapsed(),
    }
    result
}

/// Modules instantiated once and kept across captures, like a gateway's
/// long-lived instances: a 9,400-rule module takes ~0.7 s to instantiate
/// and warm up, far more than most test captures take to inspect.
///
/// Each capture gets its own flow table, fragment and stream state; at its
/// end every flow is closed and forgotten by the modules, so nothing of one
/// capture leaks into the next. Fault counters and threshold state carry
/// over, as they would on a gateway.
pub struct Replayer {
    inspector: Inspector,
    opts: ReplayOptions,
    startup: Duration,
}

impl Replayer {
    /// Instantiates every IPS module of `modules` (and the AV modules as
    /// stream scanners). A module that cannot start faults on every batch
    /// under its failure policy, as on a gateway.
    pub fn new(modules: &[LoadedModule], opts: &ReplayOptions) -> Replayer {
        let started = Instant::now();
        let active = modules
            .iter()
            .filter(|m| m.kind() == ModuleKind::Ips)
            .map(|m| {
                let policy = opts
                    .module_policy
                    .get(m.name())
                    .copied()
                    .unwrap_or(opts.policy);
                ActiveModule::new(m.clone(), policy)
            })
            .collect();
        let av: Vec<LoadedModule> = modules
            .iter()
            .filter(|m| m.kind() == ModuleKind::Av)
            .cloned()
            .collect();
        let inspector = Inspector::with_config(
            active,
            opts.batch,
            opts.stream.clone(),
            opts.thresholds.clone(),
        )
        .with_stream_scanners(av);
        Replayer {
            inspector,
            opts: opts.clone(),
            startup: started.elapsed(),
        }
    }

    /// How long instantiating (and warming up) the modules took.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// Replay one capture; `elapsed` in the stats is this capture's time
    /// only. On a capture error mid-file, returns the stats so far with
    /// the error (the replayer stays usable for the next capture).
    #[allow(clippy::result_large_err)]
    pub fn replay(
        &mut self,
        pcap: &Path,
        on_alert: &mut dyn FnMut(&AlertRecord) -> Result<(), String>,
    ) -> Result<(ReplayStats, Vec<Inspected>), (ReplayStats, ReplayError)> {
        let started = Instant::now();
        let mut stats = ReplayStats::default();
        let opts = &self.opts;
        let inspector = &mut self.inspector;
        let mut flows = FlowTable::new(opts.flow.clone());
        let mut defrag = Defragmenter::new(opts.defrag.clone());
        let mut reader = match CaptureReader::open(pcap) {
            Ok(r) => r,
            Err(e) => return Err((stats, e.into())),
        };
        let mut alerts = Vec::new();
        let mut frame = Frame::default();
        let mut failure = None;
        let mut last_expire = 0u64;
        loop {
            match reader.read_into(&mut frame) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    failure = Some(ReplayError::Capture(e));
                    break;
                }
            }
            stats.packets += 1;
            stats.bytes += frame.data.len() as u64;
            let d = match decode(frame.linktype, &frame.data) {
                Ok(d) => d,
                Err(e) if e.is_not_ip() => {
                    stats.not_ip += 1;
                    continue;
                }
                Err(e) => {
                    stats.decode_errors += 1;
                    if stats.decode_error_samples.len() < 5 {
                        stats
                            .decode_error_samples
                            .push(format!("packet {}: {e}", frame.number));
                    }
                    continue;
                }
            };
            let view = flows.track(&d, frame.timestamp_us);
            if inspector.is_full() {
                flush(inspector, &mut alerts, &mut stats);
            }
            inspector.push(frame.number, frame.timestamp_us, &frame.data, &d, &view);
            stats.inspected += 1;
            // Like Suricata, fragments are inspected themselves and, once whole,
            // the datagram they rebuild is inspected as one more packet.
            if d.is_fragment {
                if let DefragResult::Reassembled(ip) =
                    defrag.push(&frame.data, &d, frame.timestamp_us)
                {
                    if let Ok(rd) = decode(LinkType::RAW, &ip) {
                        let view = flows.track(&rd, frame.timestamp_us);
                        if inspector.is_full() {
                            flush(inspector, &mut alerts, &mut stats);
                        }
                        inspector.push(frame.number, frame.timestamp_us, &ip, &rd, &view);
                        stats.reassembled_datagrams += 1;
                    }
                }
            }
            if frame.timestamp_us.saturating_sub(last_expire) > 1_000_000 {
                last_expire = frame.timestamp_us;
                defrag.expire(frame.timestamp_us);
                let gone = flows.expire(frame.timestamp_us);
                if !gone.is_empty() {
                    flush(inspector, &mut alerts, &mut stats);
                    inspector.forget_flows(&gone);
                }
            }
            if !alerts.is_empty() {
                if let Err(e) = emit(&mut alerts, &mut stats, on_alert) {
                    return Err((stats, e));
                }
            }
        }
        flush(inspector, &mut alerts, &mut stats);
        inspector.finish_streams(&mut alerts);
        // The capture is over: every flow ends, in the modules too, so flow
        // ids of the next capture's table start clean.
        let open = flows.expire(u64::MAX);
        inspector.forget_flows(&open);
        if let Err(e) = emit(&mut alerts, &mut stats, on_alert) {
            return Err((stats, e));
        }
        let thresholds = inspector.threshold_stats();
        stats.suppressed_alerts = thresholds.suppressed;
        stats.actions_withheld = thresholds.actions_withheld;
        stats.stream = inspector.stream_stats();
        stats.elapsed = started.elapsed();
        let show = |faults: &std::collections::BTreeMap<sandgate_runtime::FaultKind, u64>| {
            faults.iter().map(|(k, v)| (format!("{k:?}"), *v)).collect()
        };
        let report = inspector
            .modules
            .iter()
            .map(|m| Inspected {
                module: m.module.name().to_string(),
                faults: show(&m.faults),
                last_fault: m.last_fault.as_ref().map(ToString::to_string),
            })
            .chain(inspector.stream_scanners.iter().map(|s| Inspected {
                module: s.module.name().to_string(),
                faults: show(&s.faults),
                last_fault: s.last_fault.as_ref().map(ToString::to_string),
            }))
            .collect();
        match failure {
            Some(e) => Err((stats, e)),
            None => Ok((stats, report)),
        }
    }
}

/// Per-module outcome of a replay.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub module: String,
    /// Fault kind → count.
    pub faults: Vec<(String, u64)>,
    pub last_fault: Option<String>,
}

fn flush(inspector: &mut Inspector, alerts: &mut Vec<AlertRecord>, stats: &mut ReplayStats) {
    for v in inspector.flush(alerts) {
        match v {
            Verdict::Pass => {}
            Verdict::Drop => stats.dropped_by_rule += 1,
            Verdict::DropByFault => stats.dropped_by_fault += 1,
        }
    }
}

fn emit(
    alerts: &mut Vec<AlertRecord>,
    stats: &mut ReplayStats,
    on_alert: &mut dyn FnMut(&AlertRecord) -> Result<(), String>,
) -> Result<(), ReplayError> {
    for a in alerts.drain(..) {
        stats.alerts += 1;
        on_alert(&a).map_err(ReplayError::Output)?;
    }
    Ok(())
}
