//! The inspection core shared by replay and the live data plane: decoded
//! packets are queued into a batch, each module inspects the batch in its
//! own fuel-limited instance, and the hits become alerts and verdicts.
//!
//! A module fault costs only that module's verdict for the batch: its
//! failure policy says whether the batch's packets pass (fail-open) or drop
//! (fail-closed), the fault is counted, and every other module's hits stand.
//!
//! A module that keeps faulting is quarantined ([`QuarantineConfig`]: more
//! than `fault_threshold` faults in its last `window_calls` calls): it is no
//! longer called and its policy decides its verdict — or, when the host gave
//! it a `fallback` (its last good version), that version takes its place:
//! rolled back. Either is a [`ModuleEvent`].
//!
//! TCP packets also go through [`stream::Reassembler`]: when a packet makes
//! new in-order data available, a stream-chunk entry (flow-flags bit 2) is
//! queued right after the packet's own entry, and the packet entry gets bit
//! 4 when its payload is carried by the stream. A hit on a chunk counts for
//! the packet that completed it; each (packet, module, rule) alerts at most
//! once. Rule thresholds ([`threshold`]) then decide which alerts are
//! emitted and whether a `drop` applies.
//!
//! AV modules ([`StreamScanner`]) scan the payloads of every reassembled TCP
//! direction ([`payload`](crate::payload): each HTTP/1.x message body, or
//! the whole stream when it is not HTTP), fed with each chunk's new bytes:
//! a signature matching a payload (e.g. a file in an HTTP response, split
//! over many segments) raises one alert naming it, attributed to the packet
//! that completed the match — or, for signatures decided at the end
//! (hashes, logical signatures), to the packet that ended the body, the
//! direction's FIN/RST, or its last packet when the flow expires or the
//! capture ends. An AV fault costs that payload's scan; it never changes a
//! packet's verdict.
//!
//! When a module reads application-layer buffers (interface 1.2.0), the
//! reassembled TCP directions and UDP datagrams also go through
//! [`app::AppLayer`]: each transaction it completes becomes an entry flagged
//! [`FLOW_APP_TX`] (l3 length 0, payload = the raw bytes of that side of the
//! transaction) right after the packet that completed it, with its parsed
//! buffers in the batch's [`AppData`]. Every module is called with both; the
//! runtime hides transaction entries from 1.0.0 modules. A hit on a
//! transaction entry alerts for the packet that completed it, carries the
//! transaction's `app_proto` and fields, and — since a transaction is seen
//! more than once (HTTP head, then body) — at most once per (flow,
//! transaction, module, rule).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;

use sandgate_runtime::wit::sandgate::pattern::types as wt;
use sandgate_runtime::{
    AppBuffer, AppData, AppProto, FailPolicy, Fault, FaultKind, LoadedModule, ModuleInstance,
    QuarantineConfig, ScanId, ScanInstance, ScanOptions, FLOW_APP_TX,
};

use crate::app::{self, AppLayer, Transaction};

use crate::decode::{proto, Decoded};
use crate::eve::{AlertAction, AlertRecord, DEFAULT_SEVERITY};
use crate::flow::{Direction, FlowView};
use crate::payload::{Piece, Splitter};
use crate::stream::{self, Reassembler, StreamConfig};
use crate::threshold::{self, Subject, ThresholdConfig, ThresholdTable};

/// WIT flow-flags bit 4 (defined with the other bits in the matcher).
pub use sandgate_matcher::FLOW_PAYLOAD_IN_STREAM;

/// Batch limits: a batch is flushed when either is reached.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Packets per call into a module (default 64: the call overhead is
    /// then a few ns per packet, see BENCHMARKS.md). Stream chunks ride
    /// along with the packet that completed them and are not counted, so a
    /// call carries at most twice as many entries.
    pub packets: usize,
    /// Buffer bytes per call (default 1 MiB).
    pub bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            packets: 64,
            bytes: 1 << 20,
        }
    }
}

/// What the engine decided for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Dropped by a `drop`/`reject` rule.
    Drop,
    /// Dropped because a fail-closed module faulted.
    DropByFault,
}

/// The per-packet facts alerts need, kept beside the batch.
#[derive(Debug, Clone, Copy)]
struct PacketMeta {
    number: u64,
    timestamp_us: u64,
    flow_id: u64,
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    proto: u8,
    direction: Direction,
}

/// One module as the host runs it: its instance, policy and counters.
pub struct ActiveModule {
    pub module: LoadedModule,
    /// `None` while the module cannot be instantiated; every batch then
    /// retries, and counts a fault when that fails.
    pub instance: Option<ModuleInstance>,
    pub policy: FailPolicy,
    /// Faults seen by kind (of every version this slot ran).
    pub faults: BTreeMap<FaultKind, u64>,
    /// The most recent fault, for reports.
    pub last_fault: Option<Fault>,
    /// The last good version: swapped in when this one is quarantined.
    pub fallback: Option<LoadedModule>,
    /// Quarantine and rollback events, oldest first.
    pub events: Vec<ModuleEvent>,
    /// Batches whose verdict the policy decided because the module is
    /// quarantined (the module was not called).
    pub quarantined_batches: u64,
    quarantined: bool,
    quarantine: QuarantineConfig,
    /// Calls made (the window's clock), and the call numbers of the faults
    /// inside the window.
    calls: u64,
    window: VecDeque<u64>,
    /// Metadata of each declared rule, pre-rendered for EVE.
    metadata: Vec<Option<serde_json::Value>>,
}

/// Something the host did to a module slot; logged, counted and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleEvent {
    /// Over the fault threshold with no fallback: no longer called; its
    /// failure policy decides its verdict.
    Quarantined {
        module: String,
        version: String,
        /// Faults in the window when it tripped.
        faults: u32,
        window_calls: u32,
        last_fault: Option<Fault>,
    },
    /// Over the fault threshold: replaced by its last good version.
    RolledBack {
        module: String,
        from_version: String,
        to_version: String,
        faults: u32,
        window_calls: u32,
        last_fault: Option<Fault>,
    },
}

impl fmt::Display for ModuleEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = |l: &Option<Fault>| {
            l.as_ref()
                .map(|x| format!(" (last: {x})"))
                .unwrap_or_default()
        };
        match self {
            ModuleEvent::Quarantined {
                module,
                version,
                faults,
                window_calls,
                last_fault,
            } => write!(
                f,
                "module {module} {version} quarantined: {faults} faults in {window_calls} calls{}",
                last(last_fault)
            ),
            ModuleEvent::RolledBack {
                module,
                from_version,
                to_version,
                faults,
                window_calls,
                last_fault,
            } => write!(
                f,
                "module {module} rolled back from {from_version} to {to_version}: \
                 {faults} faults in {window_calls} calls{}",
                last(last_fault)
            ),
        }
    }
}

impl ActiveModule {
    /// Never fails: a module that cannot start faults on every batch instead,
    /// so its failure policy applies and nothing else is affected. The
    /// quarantine settings come from the module's engine configuration.
    pub fn new(module: LoadedModule, policy: FailPolicy) -> Self {
        let quarantine = module.engine().config().quarantine.clone();
        let metadata = rule_metadata(&module);
        let mut this = ActiveModule {
            module,
            instance: None,
            policy,
            faults: BTreeMap::new(),
            last_fault: None,
            fallback: None,
            events: Vec::new(),
            quarantined_batches: 0,
            quarantined: false,
            quarantine,
            calls: 0,
            window: VecDeque::new(),
            metadata,
        };
        match this.module.instantiate() {
            Ok(i) => this.instance = Some(i),
            Err(f) => this.record_fault(f),
        }
        this
    }

    /// Keeps `fallback` (the last good version) to roll back to when this
    /// module is quarantined.
    pub fn with_fallback(mut self, fallback: LoadedModule) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Whether the module is quarantined (no longer called).
    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    /// Inspect a batch with this module's instance, creating it if needed;
    /// counts the call and, on a fault, the fault (which may quarantine or
    /// roll back the module).
    fn inspect(&mut self, batch: &wt::Batch, app: &AppData) -> Result<Vec<wt::Hit>, ()> {
        self.calls += 1;
        let result = match &mut self.instance {
            Some(i) => i.inspect_app(batch, app),
            None => match self.module.instantiate() {
                Ok(i) => self.instance.insert(i).inspect_app(batch, app),
                Err(f) => Err(f),
            },
        };
        result.map_err(|fault| self.record_fault(fault))
    }

    /// Counts a fault, slides the window and quarantines or rolls back the
    /// module when the window holds more than the threshold.
    fn record_fault(&mut self, fault: Fault) {
        *self.faults.entry(fault.kind).or_default() += 1;
        self.last_fault = Some(fault);
        let window = u64::from(self.quarantine.window_calls);
        while self
            .window
            .front()
            .is_some_and(|&call| call + window <= self.calls)
        {
            self.window.pop_front();
        }
        self.window.push_back(self.calls);
        let in_window = u32::try_from(self.window.len()).unwrap_or(u32::MAX);
        if in_window > self.quarantine.fault_threshold {
            self.trip(in_window);
        }
    }

    /// Over the threshold: swap in the fallback if there is one, otherwise
    /// stop calling the module.
    fn trip(&mut self, faults: u32) {
        let window_calls = self.quarantine.window_calls;
        let last_fault = self.last_fault.clone();
        let from_version = self.module.info().version.clone();
        if let Some(fallback) = self.fallback.take() {
            self.events.push(ModuleEvent::RolledBack {
                module: self.module.name().to_string(),
                from_version,
                to_version: fallback.info().version.clone(),
                faults,
                window_calls,
                last_fault,
            });
            self.metadata = rule_metadata(&fallback);
            self.module = fallback;
            self.window.clear();
            self.instance = None;
            if let Ok(i) = self.module.instantiate() {
                self.instance = Some(i);
            }
            return;
        }
        self.events.push(ModuleEvent::Quarantined {
            module: self.module.name().to_string(),
            version: from_version,
            faults,
            window_calls,
            last_fault,
        });
        self.quarantined = true;
        // Its instance (memory, flow state) is released now.
        self.instance = None;
    }

    pub fn fault_count(&self) -> u64 {
        self.faults.values().sum()
    }
}

fn rule_metadata(module: &LoadedModule) -> Vec<Option<serde_json::Value>> {
    module
        .info()
        .rules
        .iter()
        .map(|r| metadata_json(&r.metadata))
        .collect()
}

/// Suricata's EVE `metadata`: `{"key": ["value", ...]}` from `key value` entries.
fn metadata_json(entries: &[String]) -> Option<serde_json::Value> {
    if entries.is_empty() {
        return None;
    }
    let mut map = serde_json::Map::new();
    for e in entries {
        let (k, v) = e.split_once(' ').unwrap_or((e.as_str(), ""));
        let list = map
            .entry(k.trim().to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(a) = list {
            a.push(serde_json::Value::String(v.trim().to_string()));
        }
    }
    Some(serde_json::Value::Object(map))
}

/// Append one decoded packet to a WIT batch: its IP bytes to the buffer
/// and its descriptor (offsets into that buffer) to the packet list.
/// Returns the descriptor's index. Shared by [`Inspector`] and the
/// benchmarks, so both hand modules exactly the same batches.
pub fn append_packet(
    batch: &mut wt::Batch,
    timestamp_us: u64,
    data: &[u8],
    d: &Decoded,
    flow: &FlowView,
) -> usize {
    let base = batch.buffer.len();
    let l3 = data.get(d.l3.clone()).unwrap_or(&[]);
    batch.buffer.extend_from_slice(l3);
    let rel = |abs: usize| (base + abs.saturating_sub(d.l3.start)) as u32;
    let mut flags = 0;
    if flow.established {
        flags |= sandgate_matcher::FLOW_ESTABLISHED;
    }
    batch.packets.push(wt::Packet {
        flow_id: flow.flow_id,
        direction: wire_direction(flow.direction),
        flow_flags: flags,
        ip_version: d.ip_version,
        protocol: d.protocol,
        src_addr: ip_address(d.src),
        dst_addr: ip_address(d.dst),
        src_port: d.src_port,
        dst_port: d.dst_port,
        l3_offset: base as u32,
        l3_len: l3.len() as u32,
        l4_offset: rel(d.l4_offset),
        payload_offset: rel(d.payload.start),
        payload_len: d.payload.end.saturating_sub(d.payload.start) as u32,
        timestamp_us,
    });
    batch.packets.len() - 1
}

fn wire_direction(d: Direction) -> wt::Direction {
    match d {
        Direction::ToServer => wt::Direction::ToServer,
        Direction::ToClient => wt::Direction::ToClient,
        Direction::Unknown => wt::Direction::Unknown,
    }
}

fn ip_address(ip: IpAddr) -> wt::IpAddress {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let bits = u128::from(v6);
    wt::IpAddress {
        hi: (bits >> 64) as u64,
        lo: bits as u64,
    }
}

/// Queues packets into batches and runs every module over them.
pub struct Inspector {
    pub modules: Vec<ActiveModule>,
    limits: BatchLimits,
    batch: wt::Batch,
    /// Per queued packet (not per entry).
    meta: Vec<PacketMeta>,
    /// Per batch entry: the index into `meta` of the packet it belongs to.
    entry_packet: Vec<u32>,
    verdicts: Vec<Verdict>,
    /// Per packet of the last flush: a `reject` rule decided its drop.
    rejected: Vec<bool>,
    /// Per packet of the batch: (module, rule, action, transaction) of
    /// every hit, once; the transaction (an index into `txs`) when the hit
    /// was on a transaction entry.
    hits: Vec<Vec<PacketHit>>,
    /// Application-layer parsing, while some module reads its buffers.
    app: AppLayer,
    app_enabled: bool,
    /// Buffers of the batch's transaction entries.
    app_data: AppData,
    /// The batch's transactions: (entry, flow, transaction key, fields).
    txs: Vec<TxEntry>,
    /// Per flow: (app proto, tx id, module, rule) already alerted.
    tx_alerted: HashMap<u64, Vec<(u8, u64, usize, u32)>>,
    stream: Reassembler,
    thresholds: ThresholdTable,
    /// Inline mode reports drop/reject alerts as `blocked`.
    pub inline: bool,
    /// AV modules scanning the reassembled streams.
    pub stream_scanners: Vec<StreamScanner>,
    /// Per packet of the batch: (scanner, signature) the stream scans found.
    av_hits: Vec<(u32, usize, u32)>,
    /// AV alerts decided outside a batch (flow expiry), emitted by the next
    /// flush.
    av_pending: Vec<AlertRecord>,
}

/// Alerted (app proto, tx id, module, rule) remembered per flow; the
/// oldest half is forgotten past this.
const MAX_TX_ALERTED: usize = 1024;

/// A hit of one packet: (module, rule, action, transaction index).
type PacketHit = (usize, u32, wt::Action, Option<usize>);

/// One transaction entry of the batch.
struct TxEntry {
    entry: u32,
    flow_id: u64,
    proto: app::Proto,
    tx_id: u64,
    fields: app::Fields,
}

/// One AV module scanning reassembled TCP streams, one scan per flow
/// direction.
pub struct StreamScanner {
    pub module: LoadedModule,
    /// `None` while it cannot be instantiated (retried per new stream).
    instance: Option<ScanInstance>,
    /// Open scans by (flow, direction), with the last packet that fed them.
    open: HashMap<(u64, u8), StreamScan>,
    /// Faults seen by kind.
    pub faults: BTreeMap<FaultKind, u64>,
    /// The most recent fault, for reports.
    pub last_fault: Option<Fault>,
    options: ScanOptions,
}

struct StreamScan {
    /// Which bytes of the direction are payload (HTTP bodies, or all).
    splitter: Splitter,
    /// The scan of the current payload, once it has bytes.
    id: Option<ScanId>,
    /// The current payload's outcome is settled (reported, or faulted):
    /// the rest of it is not scanned.
    settled: bool,
    last: PacketMeta,
}

impl StreamScanner {
    /// Scans each direction up to `max_bytes` (the reassembly depth; 0 =
    /// no limit).
    pub fn new(module: LoadedModule, max_bytes: u64) -> Self {
        let instance = module.instantiate_scanner().ok();
        StreamScanner {
            module,
            instance,
            open: HashMap::new(),
            faults: BTreeMap::new(),
            last_fault: None,
            options: ScanOptions {
                max_file_size: max_bytes,
                all_match: false,
                max_scan_fuel: None,
            },
        }
    }

    fn record(&mut self, fault: Fault) {
        *self.faults.entry(fault.kind).or_default() += 1;
        self.last_fault = Some(fault);
    }

    /// Feeds new stream bytes of (flow, direction) through its payload
    /// splitter; returns the signatures the payload scans settled on.
    fn feed(&mut self, key: (u64, u8), meta: PacketMeta, bytes: &[u8]) -> Vec<u32> {
        if self.instance.is_none() {
            match self.module.instantiate_scanner() {
                Ok(i) => self.instance = Some(i),
                Err(f) => {
                    self.record(f);
                    return Vec::new();
                }
            }
        }
        let scan = self.open.entry(key).or_insert_with(|| StreamScan {
            splitter: Splitter::default(),
            id: None,
            settled: false,
            last: meta,
        });
        scan.last = meta;
        let pieces = scan.splitter.push(bytes);
        let mut found = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Input(r) => self.payload(key, bytes.get(r).unwrap_or(&[]), &mut found),
                Piece::Held(held) => self.payload(key, &held, &mut found),
                Piece::Head(_) => {}
                Piece::End => {
                    let id = self.open.get_mut(&key).and_then(|s| {
                        s.settled = false;
                        s.id.take()
                    });
                    if let Some(id) = id {
                        found.extend(self.finish(id));
                    }
                }
            }
        }
        found
    }

    /// Scans payload bytes of (flow, direction), starting its scan first.
    fn payload(&mut self, key: (u64, u8), data: &[u8], found: &mut Vec<u32>) {
        let (Some(scan), Some(inst)) = (self.open.get_mut(&key), self.instance.as_mut()) else {
            return;
        };
        if data.is_empty() || scan.settled {
            return;
        }
        let id = match scan.id {
            Some(id) => id,
            None => match inst.begin(&self.options) {
                Ok(id) => *scan.id.insert(id),
                Err(f) => {
                    scan.settled = true;
                    self.record(f);
                    return;
                }
            },
        };
        match inst.feed(id, data) {
            Ok(false) => {}
            Ok(true) => {
                scan.id = None;
                scan.settled = true;
                found.extend(self.finish(id));
            }
            Err(f) => {
                scan.id = None;
                scan.settled = true;
                self.record(f);
            }
        }
    }

    /// Ends scan `id`; its detections.
    fn finish(&mut self, id: ScanId) -> Vec<u32> {
        let Some(inst) = self.instance.as_mut() else {
            return Vec::new();
        };
        match inst.finish(id) {
            Ok(report) => report.detections.iter().map(|d| d.signature).collect(),
            Err(f) => {
                self.record(f);
                Vec::new()
            }
        }
    }

    /// Ends the scan of (flow, direction) if open: its detections and the
    /// last packet that fed it.
    fn close(&mut self, key: (u64, u8)) -> Option<(Vec<u32>, PacketMeta)> {
        let scan = self.open.remove(&key)?;
        let found = match scan.id {
            Some(id) => self.finish(id),
            None => Vec::new(),
        };
        Some((found, scan.last))
    }

    /// Open (flow, direction) keys of `flows`, or of every flow.
    fn keys(&self, flows: Option<&[u64]>) -> Vec<(u64, u8)> {
        let mut keys: Vec<(u64, u8)> = self
            .open
            .keys()
            .filter(|(f, _)| flows.is_none_or(|fl| fl.contains(f)))
            .copied()
            .collect();
        keys.sort_unstable();
        keys
    }
}

/// The alert for AV signature `sig` of `module` on the packet `meta`.
fn av_alert(module: &LoadedModule, sig: u32, meta: &PacketMeta) -> Option<AlertRecord> {
    let info = module.info().rules.get(sig as usize)?;
    Some(alert_record(meta, info, AlertAction::Allowed, None))
}

/// The alert for rule `info` on the packet `meta`: one place that maps a
/// rule's metadata and a packet's addressing to an EVE record.
fn alert_record(
    meta: &PacketMeta,
    info: &wt::RuleInfo,
    action: AlertAction,
    metadata: Option<serde_json::Value>,
) -> AlertRecord {
    AlertRecord {
        app: None,
        timestamp_us: meta.timestamp_us,
        flow_id: meta.flow_id,
        pcap_cnt: meta.number,
        src_ip: meta.src,
        src_port: meta.src_port,
        dest_ip: meta.dst,
        dest_port: meta.dst_port,
        proto: meta.proto,
        direction: meta.direction,
        action,
        gid: info.gid,
        signature_id: info.sid,
        rev: info.rev,
        signature: info.msg.clone(),
        category: info.classtype.clone().unwrap_or_default(),
        severity: info.priority.map_or(DEFAULT_SEVERITY, |p| p.min(255) as u8),
        metadata,
    }
}

fn dir_index(d: Direction) -> u8 {
    match d {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
        Direction::Unknown => 2,
    }
}

impl Inspector {
    /// An inspector with default stream and threshold settings.
    pub fn new(modules: Vec<ActiveModule>, limits: BatchLimits) -> Self {
        Self::with_config(
            modules,
            limits,
            StreamConfig::default(),
            ThresholdConfig::default(),
        )
    }

    /// An inspector with the given reassembly and threshold settings.
    pub fn with_config(
        modules: Vec<ActiveModule>,
        limits: BatchLimits,
        stream: StreamConfig,
        thresholds: ThresholdConfig,
    ) -> Self {
        let app_enabled = modules.iter().any(|m| m.module.wants_app());
        Inspector {
            modules,
            limits,
            batch: wt::Batch {
                buffer: Vec::with_capacity(limits.bytes.min(1 << 20)),
                packets: Vec::with_capacity(limits.packets.saturating_mul(2)),
            },
            meta: Vec::with_capacity(limits.packets),
            entry_packet: Vec::with_capacity(limits.packets.saturating_mul(2)),
            verdicts: Vec::with_capacity(limits.packets),
            rejected: Vec::with_capacity(limits.packets),
            hits: Vec::new(),
            app_enabled,
            app: AppLayer::default(),
            app_data: AppData::default(),
            txs: Vec::new(),
            tx_alerted: HashMap::new(),
            stream: Reassembler::new(stream),
            thresholds: ThresholdTable::new(thresholds),
            inline: false,
            stream_scanners: Vec::new(),
            av_hits: Vec::new(),
            av_pending: Vec::new(),
        }
    }

    /// Scan the reassembled TCP streams with these AV modules (see the
    /// module doc); each direction up to the reassembly depth.
    pub fn with_stream_scanners(mut self, modules: Vec<LoadedModule>) -> Self {
        let depth = self.stream.config().depth;
        self.stream_scanners = modules
            .into_iter()
            .map(|m| StreamScanner::new(m, depth))
            .collect();
        self
    }

    /// Ends every open stream scan (end of capture); alerts for what the
    /// scans found at the end go to `alerts`, attributed to each stream's
    /// last packet.
    pub fn finish_streams(&mut self, alerts: &mut Vec<AlertRecord>) {
        alerts.append(&mut self.av_pending);
        self.close_streams(None, alerts);
    }

    fn close_streams(&mut self, flows: Option<&[u64]>, alerts: &mut Vec<AlertRecord>) {
        for sc in &mut self.stream_scanners {
            for key in sc.keys(flows) {
                if let Some((found, last)) = sc.close(key) {
                    alerts.extend(found.iter().filter_map(|&s| av_alert(&sc.module, s, &last)));
                }
            }
        }
    }

    /// Packets queued and not yet inspected (stream chunks not counted).
    pub fn pending(&self) -> usize {
        self.meta.len()
    }

    /// The batch as modules will see it: packet entries and stream chunks.
    pub fn batch(&self) -> &wt::Batch {
        &self.batch
    }

    /// Reassembly counters.
    pub fn stream_stats(&self) -> stream::StreamStats {
        self.stream.stats()
    }

    /// Threshold counters (suppressed alerts, withheld actions, evictions).
    pub fn threshold_stats(&self) -> threshold::ThresholdStats {
        self.thresholds.stats()
    }

    /// Whether the next push should be preceded by a flush.
    pub fn is_full(&self) -> bool {
        self.meta.len() >= self.limits.packets || self.batch.buffer.len() >= self.limits.bytes
    }

    /// Queue one decoded packet; `data` is the frame `d` was decoded from.
    pub fn push(
        &mut self,
        number: u64,
        timestamp_us: u64,
        data: &[u8],
        d: &Decoded,
        flow: &FlowView,
    ) {
        let packet_index = self.meta.len() as u32;
        let entry = append_packet(&mut self.batch, timestamp_us, data, d, flow);
        self.meta.push(PacketMeta {
            number,
            timestamp_us,
            flow_id: flow.flow_id,
            src: d.src,
            dst: d.dst,
            src_port: d.src_port,
            dst_port: d.dst_port,
            proto: d.protocol,
            direction: flow.direction,
        });
        self.entry_packet.push(packet_index);
        if let (Some(tcp), proto::TCP) = (d.tcp, d.protocol) {
            let payload = data.get(d.payload.clone()).unwrap_or(&[]);
            self.push_stream(entry, packet_index, flow, &tcp, payload);
        } else if self.app_enabled && d.protocol == proto::UDP {
            let payload = data.get(d.payload.clone()).unwrap_or(&[]);
            let txs = self
                .app
                .datagram(flow.direction, (d.src_port, d.dst_port), payload);
            self.push_transactions(entry, packet_index, txs);
        }
    }

    /// Queues transaction entries after packet `entry` (whose addressing
    /// they share), their raw bytes and buffers in the batch buffer.
    fn push_transactions(&mut self, entry: usize, packet_index: u32, txs: Vec<Transaction>) {
        let Some(&base) = self.batch.packets.get(entry) else {
            return;
        };
        for tx in txs {
            let e = self.batch.packets.len() as u32;
            let at = self.batch.buffer.len() as u32;
            self.batch.buffer.extend_from_slice(&tx.raw);
            self.batch.packets.push(wt::Packet {
                direction: wire_direction(tx.direction),
                flow_flags: (base.flow_flags & sandgate_matcher::FLOW_ESTABLISHED) | FLOW_APP_TX,
                l3_offset: at,
                l3_len: 0,
                l4_offset: at,
                payload_offset: at,
                payload_len: tx.raw.len() as u32,
                ..base
            });
            self.entry_packet.push(packet_index);
            let proto = match tx.proto {
                app::Proto::Http => AppProto::Http,
                app::Proto::Dns => AppProto::Dns,
                app::Proto::Tls => AppProto::Tls,
            };
            self.app_data.protos.push((e, proto));
            for (id, bytes) in &tx.buffers {
                let offset = self.batch.buffer.len() as u32;
                self.batch.buffer.extend_from_slice(bytes);
                self.app_data.buffers.push(AppBuffer {
                    entry: e,
                    id: *id,
                    offset,
                    len: bytes.len() as u32,
                });
            }
            self.txs.push(TxEntry {
                entry: e,
                flow_id: base.flow_id,
                proto: tx.proto,
                tx_id: tx.tx_id,
                fields: tx.fields,
            });
        }
    }

    /// Feeds a TCP segment to the reassembler and queues the chunk it
    /// completes, described like packet `entry` (addresses, ports, flow,
    /// direction, time). Chunks are queued only for established flows;
    /// data before that still feeds the next chunk's overlap prefix.
    fn push_stream(
        &mut self,
        entry: usize,
        packet_index: u32,
        flow: &FlowView,
        tcp: &crate::decode::TcpInfo,
        payload: &[u8],
    ) {
        let start = self.batch.buffer.len();
        let delivery = self.stream.segment(
            flow.flow_id,
            flow.direction,
            flow.established,
            tcp,
            payload,
            &mut self.batch.buffer,
        );
        if !flow.established {
            self.batch.buffer.truncate(start);
            return;
        }
        let Some(packet) = self.batch.packets.get_mut(entry) else {
            return;
        };
        if delivery.in_stream && !payload.is_empty() {
            packet.flow_flags |= FLOW_PAYLOAD_IN_STREAM;
        }
        if !self.stream_scanners.is_empty() {
            self.scan_stream(packet_index, flow, tcp, start, &delivery);
        }
        self.queue_chunk(entry, packet_index, start, &delivery);
        if self.app_enabled {
            let Some(packet) = self.batch.packets.get(entry) else {
                return;
            };
            let ports = (packet.src_port, packet.dst_port);
            let from = start + delivery.prefix;
            let new = self
                .batch
                .buffer
                .get(from..from + delivery.new)
                .unwrap_or(&[]);
            let mut txs = self.app.stream(flow.flow_id, flow.direction, ports, new);
            let rst = tcp.has(crate::decode::TcpInfo::RST);
            if rst || tcp.has(crate::decode::TcpInfo::FIN) {
                txs.extend(self.app.close(flow.flow_id, flow.direction));
            }
            if rst {
                let other = match flow.direction {
                    Direction::ToServer => Direction::ToClient,
                    Direction::ToClient => Direction::ToServer,
                    Direction::Unknown => Direction::Unknown,
                };
                txs.extend(self.app.close(flow.flow_id, other));
            }
            self.push_transactions(entry, packet_index, txs);
        }
    }

    /// Queues the stream chunk of `delivery` (its bytes at `start` of the
    /// batch buffer), described like packet `entry`.
    fn queue_chunk(
        &mut self,
        entry: usize,
        packet_index: u32,
        start: usize,
        delivery: &stream::Delivery,
    ) {
        let Some(packet) = self.batch.packets.get_mut(entry) else {
            return;
        };
        if delivery.is_empty() {
            return;
        }
        let at = start as u32;
        let chunk = wt::Packet {
            flow_flags: sandgate_matcher::FLOW_ESTABLISHED | sandgate_matcher::FLOW_STREAM,
            l3_offset: at,
            l3_len: delivery.prefix as u32,
            l4_offset: at,
            payload_offset: at,
            payload_len: (delivery.prefix + delivery.new) as u32,
            ..*packet
        };
        self.batch.packets.push(chunk);
        self.entry_packet.push(packet_index);
    }

    /// Hands the chunk's new bytes to every AV module's scan of this flow
    /// direction; a FIN or RST ends the scan(s) it closes.
    fn scan_stream(
        &mut self,
        packet_index: u32,
        flow: &FlowView,
        tcp: &crate::decode::TcpInfo,
        start: usize,
        delivery: &stream::Delivery,
    ) {
        let Some(&meta) = self.meta.get(packet_index as usize) else {
            return;
        };
        let key = (flow.flow_id, dir_index(flow.direction));
        let from = start + delivery.prefix;
        let new = self
            .batch
            .buffer
            .get(from..from + delivery.new)
            .unwrap_or(&[]);
        let rst = tcp.has(crate::decode::TcpInfo::RST);
        let fin = tcp.has(crate::decode::TcpInfo::FIN);
        for (si, sc) in self.stream_scanners.iter_mut().enumerate() {
            if !new.is_empty() {
                for sig in sc.feed(key, meta, new) {
                    self.av_hits.push((packet_index, si, sig));
                }
            }
            let mut closing = Vec::new();
            if fin || rst {
                closing.push(key);
            }
            if rst {
                closing.push((flow.flow_id, 1 - key.1.min(1)));
            }
            for k in closing {
                if let Some((found, _)) = sc.close(k) {
                    for sig in found {
                        self.av_hits.push((packet_index, si, sig));
                    }
                }
            }
        }
    }

    /// Inspect the queued packets with every module; append the alerts and
    /// return one verdict per packet, in queue order.
    pub fn flush(&mut self, alerts: &mut Vec<AlertRecord>) -> &[Verdict] {
        alerts.append(&mut self.av_pending);
        for (pi, si, sig) in self.av_hits.drain(..) {
            let (Some(meta), Some(sc)) = (self.meta.get(pi as usize), self.stream_scanners.get(si))
            else {
                continue;
            };
            alerts.extend(av_alert(&sc.module, sig, meta));
        }
        let n = self.meta.len();
        self.verdicts.clear();
        self.verdicts.resize(n, Verdict::Pass);
        self.rejected.clear();
        self.rejected.resize(n, false);
        if self.hits.len() < n {
            self.hits.resize_with(n, Vec::new);
        }
        for h in self.hits.iter_mut().take(n) {
            h.clear();
        }
        if n == 0 {
            return &self.verdicts;
        }
        for (mi, m) in self.modules.iter_mut().enumerate() {
            if m.quarantined {
                m.quarantined_batches += 1;
                if m.policy == FailPolicy::FailClosed {
                    self.verdicts.fill(Verdict::DropByFault);
                }
                continue;
            }
            match m.inspect(&self.batch, &self.app_data) {
                Ok(hits) => {
                    for h in hits {
                        let Some(&pi) = self.entry_packet.get(h.packet as usize) else {
                            continue;
                        };
                        let tx = self.txs.iter().position(|t| t.entry == h.packet);
                        if let Some(t) = tx.and_then(|i| self.txs.get(i)) {
                            let key = (t.proto.code(), t.tx_id, mi, h.rule);
                            let seen = self.tx_alerted.entry(t.flow_id).or_default();
                            if seen.contains(&key) {
                                continue;
                            }
                            if seen.len() >= MAX_TX_ALERTED {
                                seen.drain(..MAX_TX_ALERTED / 2);
                            }
                            seen.push(key);
                        }
                        if let Some(slot) = self.hits.get_mut(pi as usize) {
                            // A chunk, its packet and a transaction may all
                            // hit a rule: one alert, with the transaction's
                            // fields when there is one.
                            match slot.iter_mut().find(|h2| h2.0 == mi && h2.1 == h.rule) {
                                Some(existing) => {
                                    existing.3 = existing.3.or(tx);
                                }
                                None => slot.push((mi, h.rule, h.action, tx)),
                            }
                        }
                    }
                }
                Err(()) => {
                    if m.policy == FailPolicy::FailClosed {
                        self.verdicts.fill(Verdict::DropByFault);
                    }
                }
            }
        }
        for (pi, hits) in self.hits.iter().take(n).enumerate() {
            if hits.is_empty() {
                continue;
            }
            // Suricata's action order: a matching `pass` rule suppresses the
            // packet's other alerts and its drop.
            if hits.iter().any(|h| h.2 == wt::Action::Pass) {
                if self.verdicts[pi] == Verdict::Drop {
                    self.verdicts[pi] = Verdict::Pass;
                }
                continue;
            }
            let meta = self.meta[pi];
            let subject = Subject {
                timestamp_us: meta.timestamp_us,
                src: meta.src,
                dst: meta.dst,
                flow_id: meta.flow_id,
            };
            let mut drops = false;
            for &(mi, rule, action, tx) in hits {
                let m = &self.modules[mi];
                let info = m.module.info().rules.get(rule as usize);
                let decision = match info {
                    Some(info) => self.thresholds.check(mi, rule, &info.thresholds, &subject),
                    None => threshold::Decision::ALWAYS,
                };
                if decision.act && matches!(action, wt::Action::Drop | wt::Action::Reject) {
                    drops = true;
                    self.rejected[pi] |= action == wt::Action::Reject;
                }
                let Some(info) = info else { continue };
                if !decision.alert {
                    continue;
                }
                let blocked =
                    self.inline && matches!(action, wt::Action::Drop | wt::Action::Reject);
                let action = if blocked {
                    AlertAction::Blocked
                } else {
                    AlertAction::Allowed
                };
                let metadata = m.metadata.get(rule as usize).cloned().flatten();
                let mut alert = alert_record(&meta, info, action, metadata);
                alert.app = tx.and_then(|t| self.txs.get(t)).map(|t| t.fields.eve());
                alerts.push(alert);
            }
            if drops && self.verdicts[pi] == Verdict::Pass {
                self.verdicts[pi] = Verdict::Drop;
            }
        }
        self.batch.buffer.clear();
        self.batch.packets.clear();
        self.meta.clear();
        self.entry_packet.clear();
        self.app_data.clear();
        self.txs.clear();
        &self.verdicts
    }

    /// Put `module` in the slot of the module with the same name (returning
    /// the one it replaces), or append it. Call between batches, after a
    /// flush: the next batch is the first the new module sees, so no packet
    /// is skipped or inspected twice by that slot.
    pub fn replace_module(&mut self, module: ActiveModule) -> Option<ActiveModule> {
        let name = module.module.name();
        let replaced = match self.modules.iter().position(|m| m.module.name() == name) {
            Some(i) => Some(std::mem::replace(&mut self.modules[i], module)),
            None => {
                self.modules.push(module);
                None
            }
        };
        self.app_enabled = self.modules.iter().any(|m| m.module.wants_app());
        replaced
    }

    /// Per packet of the last [`flush`](Self::flush), in queue order:
    /// whether a `reject` rule took part in its drop, so an inline bridge
    /// answers it with a TCP reset or ICMP unreachable. Meaningful only
    /// where that flush's verdict is [`Verdict::Drop`].
    pub fn rejected(&self) -> &[bool] {
        &self.rejected
    }

    /// Drop per-flow module and reassembly state for flows the flow table
    /// evicted.
    pub fn forget_flows(&mut self, flows: &[u64]) {
        let mut pending = std::mem::take(&mut self.av_pending);
        self.close_streams(Some(flows), &mut pending);
        self.av_pending = pending;
        self.stream.forget(flows);
        self.app.forget(flows);
        for f in flows {
            self.tx_alerted.remove(f);
        }
        for m in &mut self.modules {
            if let Some(instance) = &mut m.instance {
                for &f in flows {
                    instance.forget_flow(f);
                }
            }
        }
    }
}
