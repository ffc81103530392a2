//! The hostile-module corpus: misbehaving components, each with the outcome
//! the engine must produce, and a replay driver that keeps the host's module
//! slots (quarantine state, events) for the assertions.
//!
//! Used by `tests/tests/hostile.rs`. Every entry is built from the runtime's
//! testkit (WAT, no Rust guest), so the corpus builds in well under a second.

use std::path::Path;

use sandgate_host::capture::{CaptureError, CaptureReader, Frame};
use sandgate_host::decode::decode;
use sandgate_host::eve::AlertRecord;
use sandgate_host::flow::{FlowConfig, FlowTable};
use sandgate_host::inspect::{ActiveModule, BatchLimits, Inspector, Verdict};
use sandgate_runtime::testkit::{self, DescribeBody, InspectBody, IpsOptions, TestkitError};
use sandgate_runtime::FaultKind;

/// What the engine must do with an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Refused at load: the `LoadError` variant (its `Debug` name) and a
    /// piece of its message.
    Refused {
        variant: &'static str,
        needle: &'static str,
    },
    /// Loads, and faults with `kind` exactly `count` times; `quarantined`
    /// when that is over the default threshold (10 in 100 calls).
    Faults {
        kind: FaultKind,
        count: u64,
        quarantined: bool,
    },
    /// Loads and never faults (the engine does not judge verdicts).
    Clean,
}

/// Which capture an entry is replayed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capture {
    /// `patterns/examples/example.pcap` (387 packets).
    Example,
    /// [`many_packets`]: 1,200 UDP datagrams.
    ManyPackets,
}

/// One misbehaving component and what must happen to it.
pub struct Entry {
    pub id: &'static str,
    pub what: &'static str,
    pub bytes: Vec<u8>,
    pub capture: Capture,
    pub expect: Expect,
}

/// Batch size the corpus replays with: small, so an always-faulting module
/// reaches the quarantine threshold on the example capture (≈ 50 calls).
pub const CORPUS_BATCH: usize = 8;

fn ips(inspect: InspectBody) -> Result<Vec<u8>, TestkitError> {
    testkit::ips_component(&IpsOptions::inspect(inspect))
}

fn ips_with(inspect: InspectBody, core_items: &str) -> Result<Vec<u8>, TestkitError> {
    testkit::ips_component(&IpsOptions {
        inspect,
        core_items: core_items.to_string(),
        ..IpsOptions::default()
    })
}

fn describe(body: DescribeBody) -> Result<Vec<u8>, TestkitError> {
    testkit::ips_component(&IpsOptions {
        describe: body,
        ..IpsOptions::default()
    })
}

/// WAT that runs `body` for every batch entry (`$i` index, `$p` its
/// descriptor's address).
fn per_packet(body: &str) -> String {
    format!(
        "(local.set $i (i32.const 0))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $p (i32.add (local.get $pkts) (i32.mul (local.get $i) (i32.const 88))))
      {body}
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))"
    )
}

/// A module that loops `iterations` times per packet (a few fuel units per
/// iteration), then returns no hits: slow but finite work.
pub fn slow_module(iterations: u32) -> Result<Vec<u8>, TestkitError> {
    ips(InspectBody::Wat(per_packet(&format!(
        "(local.set $x (i32.const 0))
      (block $d (loop $l
        (br_if $d (i32.ge_u (local.get $x) (i32.const {iterations})))
        (local.set $x (i32.add (local.get $x) (i32.const 1)))
        (br $l)))"
    ))))
}

/// Pseudo flow id a module uses to keep a counter in `flow-state`, which
/// survives instance restarts.
const COUNTER_FLOW: &str = "(i64.const -1)";

/// Every entry except the fuel-budget pair (those are calibrated against the
/// measured budget in the test).
pub fn corpus() -> Result<Vec<Entry>, TestkitError> {
    use Capture::{Example, ManyPackets};
    let quarantined = |kind| Expect::Faults {
        kind,
        count: 11,
        quarantined: true,
    };
    let refused = |variant, needle| Expect::Refused { variant, needle };
    let good = testkit::ips_component(&IpsOptions::default())?;
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let mut header_flip = good.clone();
    header_flip[4] ^= 0x40; // the version field
    let mut body_flip = good.clone();
    let mid = body_flip.len() / 3;
    for b in &mut body_flip[mid..mid + 16] {
        *b ^= 0xa5;
    }
    let oversized = testkit::with_custom_section(
        good.clone(),
        "padding",
        &vec![0u8; (64 << 20) + 1 - good.len().min(64 << 20)],
    );
    let e = |id, what, bytes, capture, expect| Entry {
        id,
        what,
        bytes,
        capture,
        expect,
    };
    Ok(vec![
        // Refused at load time, before any of their code runs.
        e(
            "wrong-major",
            "built against sandgate:pattern@2.0.0",
            testkit::wrong_major()?,
            Example,
            refused("MajorVersion", "2.0.0"),
        ),
        e(
            "newer-minor-host-fn",
            "1.1.0 module calling a host function the engine lacks",
            testkit::lacks_host_function()?,
            Example,
            refused("MinorVersion", "1.1.0"),
        ),
        e(
            "missing-inspector",
            "exports no inspector",
            testkit::missing_inspector()?,
            Example,
            refused("MissingExport", "inspector"),
        ),
        e(
            "wrong-export-type",
            "inspect takes list<u8> instead of a batch",
            testkit::inspector_wrong_type()?,
            Example,
            refused("ExportType", "wrong type"),
        ),
        e(
            "core-module",
            "a core wasm module, not a component",
            testkit::core_module_only()?,
            Example,
            refused("CoreModule", "core wasm"),
        ),
        e(
            "truncated",
            "a good component cut in half",
            truncated,
            Example,
            refused("Malformed", "well-formed"),
        ),
        e(
            "bit-flip-header",
            "a flipped bit in the version field",
            header_flip,
            Example,
            refused("Malformed", "well-formed"),
        ),
        e(
            "bit-flip-body",
            "16 flipped bytes a third of the way in",
            body_flip,
            Example,
            refused("Describe", "bad output"),
        ),
        e(
            "oversized",
            "one byte over max_module_bytes (64 MiB)",
            oversized,
            Example,
            refused("TooLarge", "over the 67108864-byte limit"),
        ),
        e(
            "imports-wasi",
            "imports wasi:cli/environment",
            testkit::imports_wasi()?,
            Example,
            refused("ForbiddenImport", "wasi:cli"),
        ),
        e(
            "imports-foreign",
            "imports acme:net/socket (network)",
            testkit::imports_foreign()?,
            Example,
            refused("ForbiddenImport", "acme:net"),
        ),
        e(
            "describe-traps",
            "`unreachable` in describe",
            describe(DescribeBody::Unreachable)?,
            Example,
            refused("Describe", "(trap)"),
        ),
        e(
            "describe-bad-enum",
            "describe returns an out-of-range enum",
            describe(DescribeBody::BadKind)?,
            Example,
            refused("Describe", "(bad output)"),
        ),
        e(
            "describe-bad-utf8",
            "describe returns a name that is not UTF-8",
            describe(DescribeBody::InvalidUtf8Name)?,
            Example,
            refused("Describe", "(bad output)"),
        ),
        e(
            "huge-declared-table",
            "declares a 1,000,000-element table",
            ips_with(InspectBody::NoHits, "(table 1000000 funcref)")?,
            Example,
            refused("Compile", "table"),
        ),
        // Load, then fault: each costs only its own verdict.
        e(
            "infinite-loop",
            "`loop br 0` in inspect",
            ips(InspectBody::LoopForever)?,
            Example,
            quarantined(FaultKind::FuelExhausted),
        ),
        e(
            "deep-recursion",
            "recurses until the stack overflows",
            ips(InspectBody::Recurse)?,
            Example,
            quarantined(FaultKind::StackOverflow),
        ),
        e(
            "unreachable-always",
            "`unreachable` from the first packet on",
            ips(InspectBody::Unreachable)?,
            Example,
            quarantined(FaultKind::Trap),
        ),
        e(
            "unreachable-1000th",
            "traps on the call that brings it to its 1000th packet",
            ips_with(
                InspectBody::Wat(
                    "(global.set $seen (i32.add (global.get $seen) (local.get $n)))
    (if (i32.and (i32.ge_u (global.get $seen) (i32.const 1000))
                 (i32.lt_u (i32.sub (global.get $seen) (local.get $n)) (i32.const 1000)))
      (then unreachable))"
                        .into(),
                ),
                "(global $seen (mut i32) (i32.const 0))",
            )?,
            ManyPackets,
            Expect::Faults {
                kind: FaultKind::Trap,
                count: 1,
                quarantined: false,
            },
        ),
        e(
            "unreachable-on-bytes",
            "traps only on packets containing `uid=0(root)`",
            ips(InspectBody::Wat(format!(
                "(i64.store (i32.const 0) (i64.const 0x6f7228303d646975))
    {}",
                per_packet(
                    "(if (call $contains
          (i32.add (local.get $buf) (i32.load offset=72 (local.get $p)))
          (i32.load offset=76 (local.get $p)) (i32.const 0) (i32.const 8))
        (then unreachable))"
                )
            )))?,
            Example,
            Expect::Faults {
                kind: FaultKind::Trap,
                count: 1,
                quarantined: false,
            },
        ),
        e(
            "memory-to-cap",
            "grows linear memory to exactly the 128 MiB cap",
            ips(InspectBody::Wat(
                "(drop (memory.grow (i32.sub (i32.const 2048) (memory.size))))".into(),
            ))?,
            Example,
            Expect::Clean,
        ),
        e(
            "memory-past-cap",
            "grows linear memory until refused",
            ips(InspectBody::GrowMemory)?,
            Example,
            quarantined(FaultKind::MemoryLimit),
        ),
        e(
            "table-past-cap",
            "grows a table past table_max_elements",
            ips_with(
                InspectBody::Wat("(drop (table.grow $t (ref.null func) (i32.const 20000)))".into()),
                "(table $t 1 funcref)",
            )?,
            Example,
            quarantined(FaultKind::MemoryLimit),
        ),
        e(
            "undeclared-rule",
            "reports rule 999 of 4",
            ips(InspectBody::Hits(vec![(0, 999)]))?,
            Example,
            quarantined(FaultKind::BadOutput),
        ),
        e(
            "millions-of-hits",
            "returns 5,000,000 hits (60 MB of guest memory)",
            ips(InspectBody::Wat(
                "(if (i32.lt_u (memory.size) (i32.const 922))
      (then (drop (memory.grow (i32.sub (i32.const 922) (memory.size))))))
    (global.set $nhits (i32.const 5000000))"
                    .into(),
            ))?,
            Example,
            quarantined(FaultKind::BadOutput),
        ),
        e(
            "hit-list-out-of-bounds",
            "returns a hit list pointing past its memory",
            ips(InspectBody::Wat(
                "(global.set $nhits (i32.const 0x10000000))".into(),
            ))?,
            Example,
            quarantined(FaultKind::BadOutput),
        ),
        e(
            "error-bad-utf8",
            "returns err(string) that is not UTF-8",
            ips(InspectBody::Wat(
                "(i32.store (i32.const 0) (i32.const 0xfffe28c3))
    (call $fail (i32.const 0) (i32.const 4))"
                    .into(),
            ))?,
            Example,
            quarantined(FaultKind::BadOutput),
        ),
        e(
            "error-huge",
            "returns err(16 MiB string)",
            ips(InspectBody::Wat(
                "(if (i32.lt_u (memory.size) (i32.const 300))
      (then (drop (memory.grow (i32.sub (i32.const 300) (memory.size))))))
    (call $fail (i32.const 65536) (i32.const 16777216))"
                    .into(),
            ))?,
            Example,
            quarantined(FaultKind::ModuleError),
        ),
        e(
            "selftest-then-faults",
            "behaves for its first 3 batches, then traps on every call",
            ips(InspectBody::Wat(format!(
                "(if (local.get $n) (then
      (local.set $x (call $flow_get_u8 {COUNTER_FLOW}))
      (if (i32.ge_u (local.get $x) (i32.const 3)) (then unreachable))
      (drop (call $flow_set_u8 {COUNTER_FLOW} (i32.add (local.get $x) (i32.const 1))))
      (call $hit (i32.const 0) (i32.const 0))))"
            )))?,
            Example,
            quarantined(FaultKind::Trap),
        ),
        e(
            "flaky",
            "returns err on every other call",
            ips_with(
                InspectBody::Wat(
                    "(global.set $flip (i32.xor (global.get $flip) (i32.const 1)))
    (if (i32.and (global.get $flip) (i32.ne (local.get $n) (i32.const 0)))
      (then
        (i32.store (i32.const 0) (i32.const 0x796b6c66))
        (call $fail (i32.const 0) (i32.const 4))))"
                        .into(),
                ),
                "(global $flip (mut i32) (i32.const 0))",
            )?,
            Example,
            quarantined(FaultKind::ModuleError),
        ),
        e(
            "flip-flop",
            "reports rule 0 on every packet on odd calls, nothing on even",
            ips_with(
                InspectBody::Wat(
                    "(global.set $flip (i32.xor (global.get $flip) (i32.const 1)))
    (if (global.get $flip) (then
      (local.set $i (i32.const 0))
      (block $d (loop $l
        (br_if $d (i32.ge_u (local.get $i) (local.get $n)))
        (call $hit (local.get $i) (i32.const 0))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))))"
                        .into(),
                ),
                "(global $flip (mut i32) (i32.const 0))",
            )?,
            Example,
            Expect::Clean,
        ),
        e(
            "log-flood",
            "logs 1,000 lines per call",
            ips(InspectBody::Log {
                message: "spam".into(),
                times: 1_000,
            })?,
            Example,
            Expect::Clean,
        ),
    ])
}

/// 1,200 UDP datagrams, 10.0.0.1 → 10.0.0.2:9999, 100-byte payloads.
pub fn many_packets(path: &Path) -> anyhow::Result<()> {
    let mut cap = sandgate_host::synth::SynthCapture::new(1_700_000_000_000_000);
    for i in 0..1200u32 {
        let mut payload = vec![b'x'; 100];
        payload[..4].copy_from_slice(&i.to_be_bytes());
        cap.udp_v4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 9999, &payload)?;
    }
    cap.write_pcap(path)?;
    Ok(())
}

/// What [`run`] produced.
pub struct Run {
    pub alerts: Vec<AlertRecord>,
    pub inspected: u64,
    pub dropped_by_fault: u64,
    pub dropped_by_rule: u64,
    /// The module slots as the run left them (faults, quarantine, events).
    pub modules: Vec<ActiveModule>,
}

impl Run {
    /// sid → packet numbers, as `Outcome::by_sid`.
    pub fn by_sid(&self) -> std::collections::BTreeMap<u32, Vec<u64>> {
        let mut map: std::collections::BTreeMap<u32, Vec<u64>> = Default::default();
        for a in &self.alerts {
            map.entry(a.signature_id).or_default().push(a.pcap_cnt);
        }
        map
    }
}

/// Replays `pcap` through `modules` the way `sandgate_host::replay` does
/// (decode, flows, batches, expiry), returning the module slots too.
pub fn run(modules: Vec<ActiveModule>, pcap: &Path, batch: usize) -> Result<Run, CaptureError> {
    let limits = BatchLimits {
        packets: batch,
        ..BatchLimits::default()
    };
    let mut inspector = Inspector::new(modules, limits);
    let mut flows = FlowTable::new(FlowConfig::default());
    let mut reader = CaptureReader::open(pcap)?;
    let mut frame = Frame::default();
    let mut out = Run {
        alerts: Vec::new(),
        inspected: 0,
        dropped_by_fault: 0,
        dropped_by_rule: 0,
        modules: Vec::new(),
    };
    let mut last_expire = 0u64;
    while reader.read_into(&mut frame)? {
        let Ok(d) = decode(frame.linktype, &frame.data) else {
            continue;
        };
        let view = flows.track(&d, frame.timestamp_us);
        if inspector.is_full() {
            flush(&mut inspector, &mut out);
        }
        inspector.push(frame.number, frame.timestamp_us, &frame.data, &d, &view);
        out.inspected += 1;
        if frame.timestamp_us.saturating_sub(last_expire) > 1_000_000 {
            last_expire = frame.timestamp_us;
            let gone = flows.expire(frame.timestamp_us);
            if !gone.is_empty() {
                flush(&mut inspector, &mut out);
                inspector.forget_flows(&gone);
            }
        }
    }
    flush(&mut inspector, &mut out);
    out.modules = std::mem::take(&mut inspector.modules);
    Ok(out)
}

fn flush(inspector: &mut Inspector, out: &mut Run) {
    for v in inspector.flush(&mut out.alerts) {
        match v {
            Verdict::Pass => {}
            Verdict::Drop => out.dropped_by_rule += 1,
            Verdict::DropByFault => out.dropped_by_fault += 1,
        }
    }
}
