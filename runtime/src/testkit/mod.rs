//! Test components without a Rust guest (feature `testkit`).
//!
//! A core module is written in WAT against the canonical ABI (layouts in
//! `testkit/abi.rs`), the world is embedded with
//! `wit_component::embed_component_metadata`, and `ComponentEncoder` turns it
//! into a validated component. [`ips_component`] builds a configurable IPS
//! module, [`flat_component`] the same on the 1.2.0 `flat-inspector` (with
//! application buffers), [`av_component`] a configurable AV module (1.1.0
//! `scanner`); the other builders produce one refusal case each for the
//! load-check tests; [`batch`] builds a [`Batch`] from payloads.
//!
//! For tests only: these modules are deliberately naive (bump allocator, byte
//! loop matcher, at most 4,096 hits per call).

mod abi;
mod av;

pub use av::{av_component, AvOptions, FeedBody, FinishBody, WIT_1_1_0};

use std::path::Path;

use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

use crate::wit::{Batch, Direction, IpAddress, Packet};
use abi::{CoreSpec, Data, InspectorAbi, RuleData};

/// The released 1.0.0 WIT, byte for byte.
pub const WIT_1_0_0: &str = include_str!("../../../wit/v1.0.0/pattern.wit");

/// A test component could not be built (bad WAT or WIT; a testkit bug).
#[derive(Debug, thiserror::Error)]
#[error("testkit: {0}")]
pub struct TestkitError(pub String);

fn terr(what: &str, e: impl std::fmt::Display) -> TestkitError {
    TestkitError(format!("{what}: {e:#}"))
}

/// What the generated `inspect` does with a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InspectBody {
    /// Returns no hits.
    NoHits,
    /// Reports `rule` for every packet whose payload contains `needle`.
    MatchBytes {
        /// Bytes to look for.
        needle: Vec<u8>,
        /// Rule index to report.
        rule: u32,
    },
    /// Flat modules only ([`flat_component`]): reports `rule` for every
    /// entry with an application buffer `id` containing `needle`.
    MatchBuffer {
        /// Buffer id (1 = `http.uri`, ...).
        id: u32,
        /// Bytes to look for.
        needle: Vec<u8>,
        /// Rule index to report.
        rule: u32,
    },
    /// Returns these `(packet, rule)` hits whatever the batch.
    Hits(Vec<(u32, u32)>),
    /// Returns `err(message)`.
    Error(String),
    /// Logs `message` at level info `times` times, returns no hits.
    Log {
        /// The line.
        message: String,
        /// How often per call.
        times: u32,
    },
    /// `loop br 0 end`: burns fuel until it runs out.
    LoopForever,
    /// Traps with `unreachable`.
    Unreachable,
    /// Grows memory 1 MiB at a time until growth fails, then traps.
    GrowMemory,
    /// Recurses without end: a stack overflow.
    Recurse,
    /// Per packet: traps if the payload contains `trap_on`; otherwise reads
    /// a counter from the flow's state, stores counter + 1 and reports rule
    /// `counter` (so the first packet of a flow hits rule 0, the next rule 1).
    FlowCounter {
        /// Payload bytes that make the call trap.
        trap_on: Vec<u8>,
    },
    /// Raw WAT for the body of `$run`: params `$buf $buf_len $pkts $n`,
    /// locals `$i $p $x` (i32); helpers `$hit (packet rule)`, `$fail (ptr
    /// len)`, `$contains`, `$flow_get_u8`, `$flow_set_u8`, `$recurse`,
    /// imports `$log`, `$flow_get`, `$flow_set`.
    Wat(String),
}

/// What the generated `describe` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DescribeBody {
    /// Returns the static module-info built from [`IpsOptions`].
    Static,
    /// Returns it with an out-of-range `kind` enum byte (garbage).
    BadKind,
    /// Traps.
    Unreachable,
    /// Never returns.
    LoopForever,
    /// Returns the static module-info with a `name` that is not UTF-8 (the
    /// canonical ABI refuses to lift it).
    InvalidUtf8Name,
}

/// Options for [`ips_component`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpsOptions {
    /// Version of `sandgate:pattern` in every import/export name. Default
    /// `1.0.0`; other versions use the 1.0.0 WIT with the package renamed.
    pub version: String,
    /// Rules declared by `describe` (sid 1000 + index, action alert).
    /// Default 4.
    pub rules: u32,
    /// `module-info.fuel-per-packet`. Default 0 (the engine's rate applies).
    pub fuel_per_packet: u64,
    /// `module-info.fuel-per-byte`. Default 0.
    pub fuel_per_byte: u64,
    /// `describe`'s behaviour. Default [`DescribeBody::Static`].
    pub describe: DescribeBody,
    /// `inspect`'s behaviour. Default [`InspectBody::NoHits`].
    pub inspect: InspectBody,
    /// Bytes for a `sandgate-manifest` custom section. Default none.
    pub manifest: Option<Vec<u8>>,
    /// Extra core-module fields (globals, tables, ...) spliced into the
    /// module, for bodies in [`InspectBody::Wat`]. Default empty.
    pub core_items: String,
}

impl Default for IpsOptions {
    fn default() -> Self {
        Self {
            version: "1.0.0".into(),
            rules: 4,
            fuel_per_packet: 0,
            fuel_per_byte: 0,
            describe: DescribeBody::Static,
            inspect: InspectBody::NoHits,
            manifest: None,
            core_items: String::new(),
        }
    }
}

impl IpsOptions {
    /// Default options with `inspect` set.
    pub fn inspect(body: InspectBody) -> Self {
        Self {
            inspect: body,
            ..Self::default()
        }
    }
}

/// The 1.0.0 WIT with the package version replaced.
pub fn wit_with_version(version: &str) -> String {
    WIT_1_0_0.replace(
        "package sandgate:pattern@1.0.0;",
        &format!("package sandgate:pattern@{version};"),
    )
}

/// Embeds world `world` of the last package in `wit_sources` (earlier ones
/// are its dependencies) into the core module `wat`, and encodes a validated
/// component.
pub fn component_from_wat(
    wit_sources: &[&str],
    world: &str,
    wat: &str,
) -> Result<Vec<u8>, TestkitError> {
    let mut resolve = Resolve::default();
    let mut main = None;
    for (i, src) in wit_sources.iter().enumerate() {
        main = Some(
            resolve
                .push_str(format!("source{i}.wit"), src)
                .map_err(|e| terr("parsing WIT", e))?,
        );
    }
    let main = main.ok_or_else(|| TestkitError("no WIT source".into()))?;
    encode(&resolve, main, world, wat)
}

/// Like [`component_from_wat`], with the WIT read from a directory
/// (e.g. `wit/v1.0.0`).
pub fn component_from_wat_dir(dir: &Path, world: &str, wat: &str) -> Result<Vec<u8>, TestkitError> {
    let mut resolve = Resolve::default();
    let (main, _) = resolve
        .push_dir(dir)
        .map_err(|e| terr("reading WIT dir", e))?;
    encode(&resolve, main, world, wat)
}

fn encode(
    resolve: &Resolve,
    pkg: wit_parser::PackageId,
    world: &str,
    wat: &str,
) -> Result<Vec<u8>, TestkitError> {
    let world = resolve
        .select_world(&[pkg], Some(world))
        .map_err(|e| terr("selecting world", e))?;
    let mut core = wat::parse_str(wat).map_err(|e| terr("parsing WAT", e))?;
    wit_component::embed_component_metadata(&mut core, resolve, world, StringEncoding::UTF8)
        .map_err(|e| terr("embedding world", e))?;
    ComponentEncoder::default()
        .module(&core)
        .and_then(|enc| enc.validate(true).encode())
        .map_err(|e| terr("encoding component", e))
}

/// Appends a `sandgate-manifest` custom section to a component.
pub fn with_manifest(component: Vec<u8>, manifest: &[u8]) -> Vec<u8> {
    with_custom_section(component, crate::MANIFEST_SECTION, manifest)
}

/// Appends a custom section `name` holding `data` to a component (e.g.
/// padding that makes a module too large to load).
pub fn with_custom_section(mut component: Vec<u8>, name: &str, data: &[u8]) -> Vec<u8> {
    let name = name.as_bytes();
    let mut body = Vec::new();
    leb(&mut body, name.len() as u64);
    body.extend_from_slice(name);
    body.extend_from_slice(data);
    component.push(0);
    leb(&mut component, body.len() as u64);
    component.extend_from_slice(&body);
    component
}

fn leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Builds the core module spec for `opts` (shared by every builder).
fn spec(
    opts: &IpsOptions,
    inspector: InspectorAbi,
    extra_imports: &str,
    extra_body: &str,
) -> CoreSpec {
    let mut data = Data::new();
    let rules: Vec<RuleData> = (0..opts.rules)
        .map(|i| RuleData {
            sid: 1000 + i,
            action: 0,
            msg: format!("testkit rule {i}"),
            classtype: (i % 2 == 0).then(|| "misc-activity".to_string()),
            priority: Some(3),
            references: vec![format!("url,example.invalid/{i}")],
            metadata: vec!["created_at 2024_01_01".to_string()],
        })
        .collect();
    let kind = if opts.describe == DescribeBody::BadKind {
        9
    } else {
        0
    };
    let info = abi::module_info(
        &mut data,
        "testkit",
        &opts.version,
        kind,
        &rules,
        opts.fuel_per_packet,
        opts.fuel_per_byte,
    );
    if opts.describe == DescribeBody::InvalidUtf8Name {
        let bad = data.bytes(&[0xc3, 0x28, 0xff, 0xfe]);
        data.pair(info, bad);
    }
    let describe_body = match opts.describe {
        DescribeBody::Static | DescribeBody::BadKind | DescribeBody::InvalidUtf8Name => {
            format!("(i32.const {info})")
        }
        DescribeBody::Unreachable => "unreachable".to_string(),
        DescribeBody::LoopForever => "(loop $l (br $l)) (i32.const 0)".to_string(),
    };
    let layout = inspector.layout();
    let inspect = match &opts.inspect {
        InspectBody::NoHits => String::new(),
        InspectBody::MatchBytes { needle, rule } => {
            let (ptr, len) = data.bytes(needle);
            abi::for_each_packet(
                layout,
                &format!(
                    "(if {} (then (call $hit (local.get $i) (i32.const {rule}))))",
                    abi::payload_contains(layout, ptr, len)
                ),
            )
        }
        InspectBody::MatchBuffer { id, needle, rule } => {
            let (ptr, len) = data.bytes(needle);
            abi::for_each_packet(
                layout,
                &abi::for_each_buffer(
                    *id,
                    &format!(
                        "(if {} (then (call $hit (local.get $i) (i32.const {rule}))))",
                        abi::buffer_contains(ptr, len)
                    ),
                ),
            )
        }
        InspectBody::Hits(hits) => hits
            .iter()
            .map(|(p, r)| format!("(call $hit (i32.const {p}) (i32.const {r}))"))
            .collect::<Vec<_>>()
            .join("\n    "),
        InspectBody::Error(msg) => {
            let (ptr, len) = data.bytes(msg.as_bytes());
            format!("(call $fail (i32.const {ptr}) (i32.const {len}))")
        }
        InspectBody::Log { message, times } => {
            let (ptr, len) = data.bytes(message.as_bytes());
            format!(
                "(local.set $x (i32.const 0))
    (block $done (loop $again
      (br_if $done (i32.ge_u (local.get $x) (i32.const {times})))
      (call $log (i32.const 2) (i32.const {ptr}) (i32.const {len}))
      (local.set $x (i32.add (local.get $x) (i32.const 1)))
      (br $again)))"
            )
        }
        InspectBody::LoopForever => "(loop $forever (br $forever))".to_string(),
        InspectBody::Unreachable => "unreachable".to_string(),
        InspectBody::GrowMemory => "(loop $grow
      (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable"
            .to_string(),
        InspectBody::Recurse => "(drop (call $recurse (i32.const 0)))".to_string(),
        InspectBody::FlowCounter { trap_on } => {
            let (ptr, len) = data.bytes(trap_on);
            abi::for_each_packet(
                layout,
                &format!(
                    "(if {} (then unreachable))
        (local.set $x (call $flow_get_u8 (i64.load (local.get $p))))
        (drop (call $flow_set_u8 (i64.load (local.get $p)) (i32.add (local.get $x) (i32.const 1))))
        (call $hit (local.get $i) (local.get $x))",
                    abi::payload_contains(layout, ptr, len)
                ),
            )
        }
        InspectBody::Wat(wat) => wat.clone(),
    };
    CoreSpec {
        version: opts.version.clone(),
        data,
        describe_body,
        inspect_body: format!("{extra_body}\n    {inspect}"),
        inspector,
        extra_imports: format!("{extra_imports}\n  {}", opts.core_items),
    }
}

fn build(opts: &IpsOptions, wit: &[&str], spec: CoreSpec) -> Result<Vec<u8>, TestkitError> {
    let component = component_from_wat(wit, "ips-module", &abi::core_wat(&spec))?;
    Ok(match &opts.manifest {
        Some(m) => with_manifest(component, m),
        None => component,
    })
}

/// An IPS component implementing `ips-module` at `opts.version`.
pub fn ips_component(opts: &IpsOptions) -> Result<Vec<u8>, TestkitError> {
    let wit = wit_with_version(&opts.version);
    build(opts, &[&wit], spec(opts, InspectorAbi::Standard, "", ""))
}

/// The released 1.2.0 WIT (draft until frozen), byte for byte.
pub const WIT_1_2_0: &str = include_str!("../../../wit/v1.2.0/pattern.wit");

/// A flat IPS component (world `flat-ips-module`, exporting
/// `flat-inspector@1.2.0`). `opts.version` is ignored: always 1.2.0.
/// Entries are walked with the flat layout, so [`InspectBody::MatchBytes`]
/// and [`InspectBody::FlowCounter`] work as for [`ips_component`], and
/// [`InspectBody::MatchBuffer`] reads application buffers.
pub fn flat_component(opts: &IpsOptions) -> Result<Vec<u8>, TestkitError> {
    let opts = IpsOptions {
        version: "1.2.0".into(),
        ..opts.clone()
    };
    let component = component_from_wat(
        &[WIT_1_2_0],
        "flat-ips-module",
        &abi::core_wat(&spec(&opts, InspectorAbi::Flat, "", "")),
    )?;
    Ok(match &opts.manifest {
        Some(m) => with_manifest(component, m),
        None => component,
    })
}

/// The well-behaved 1.0.0 module: accepted by an engine offering 1.0.0, and
/// by one offering `[1.0.0, 1.1.0]` (an older compatible module).
pub fn older_compatible() -> Result<Vec<u8>, TestkitError> {
    ips_component(&IpsOptions::default())
}

/// A plain core wasm module (the IPS module before componentization).
pub fn core_module_only() -> Result<Vec<u8>, TestkitError> {
    let wat = abi::core_wat(&spec(
        &IpsOptions::default(),
        InspectorAbi::Standard,
        "",
        "",
    ));
    wat::parse_str(wat).map_err(|e| terr("parsing WAT", e))
}

/// Built against `sandgate:pattern@2.0.0`: refused by the major gate.
pub fn wrong_major() -> Result<Vec<u8>, TestkitError> {
    ips_component(&IpsOptions {
        version: "2.0.0".into(),
        ..IpsOptions::default()
    })
}

/// Built against `sandgate:pattern@VERSION` with the 1.0.0 functions only
/// (e.g. `1.3.0`): refused by the minor gate on an engine without it.
pub fn newer_minor(version: &str) -> Result<Vec<u8>, TestkitError> {
    ips_component(&IpsOptions {
        version: version.into(),
        ..IpsOptions::default()
    })
}

/// Built against a hypothetical 1.3.0 that adds `log.flush: func()`, and
/// calls it: loads only on an engine that really provides `flush` (none does
/// yet; 1.1.0 and 1.2.0 added only exported interfaces).
pub fn lacks_host_function() -> Result<Vec<u8>, TestkitError> {
    let opts = IpsOptions {
        version: "1.3.0".into(),
        ..IpsOptions::default()
    };
    let wit = wit_with_version("1.3.0").replace(
        "    log: func(level: level, message: string);",
        "    log: func(level: level, message: string);\n    flush: func();",
    );
    let spec = spec(
        &opts,
        InspectorAbi::Standard,
        r#"(import "sandgate:pattern/log@1.3.0" "flush" (func $flush))"#,
        "(call $flush)",
    );
    build(&opts, &[&wit], spec)
}

/// Imports `wasi:cli/environment@0.2.0`: refused by the allow-list.
pub fn imports_wasi() -> Result<Vec<u8>, TestkitError> {
    let opts = IpsOptions::default();
    let wasi = "package wasi:cli@0.2.0;\ninterface environment {\n  get-arguments: func() -> list<string>;\n}\n";
    let wit = WIT_1_0_0.replace(
        "world ips-module {",
        "world ips-module {\n    import wasi:cli/environment@0.2.0;",
    );
    let spec = spec(
        &opts,
        InspectorAbi::Standard,
        r#"(import "wasi:cli/environment@0.2.0" "get-arguments" (func $args (param i32)))"#,
        "(call $args (i32.const 32))",
    );
    build(&opts, &[wasi, &wit], spec)
}

/// Imports `acme:net/socket@1.0.0`, an interface no engine grants:
/// refused by the allow-list.
pub fn imports_foreign() -> Result<Vec<u8>, TestkitError> {
    let opts = IpsOptions::default();
    let net =
        "package acme:net@1.0.0;\ninterface socket {\n  connect: func(port: u16) -> bool;\n}\n";
    let wit = WIT_1_0_0.replace(
        "world ips-module {",
        "world ips-module {\n    import acme:net/socket@1.0.0;",
    );
    let spec = spec(
        &opts,
        InspectorAbi::Standard,
        r#"(import "acme:net/socket@1.0.0" "connect" (func $connect (param i32) (result i32)))"#,
        "(drop (call $connect (i32.const 443)))",
    );
    build(&opts, &[net, &wit], spec)
}

/// Imports the host interfaces but exports no inspector.
pub fn missing_inspector() -> Result<Vec<u8>, TestkitError> {
    let opts = IpsOptions::default();
    let wit = WIT_1_0_0.replace("    export inspector;\n", "");
    build(&opts, &[&wit], spec(&opts, InspectorAbi::None, "", ""))
}

/// Exports an inspector whose `inspect` takes `list<u8>` instead of a batch.
pub fn inspector_wrong_type() -> Result<Vec<u8>, TestkitError> {
    let opts = IpsOptions::default();
    let wit = WIT_1_0_0.replace(
        "inspect: func(batch: batch) -> result<list<hit>, string>;",
        "inspect: func(batch: list<u8>) -> result<list<hit>, string>;",
    );
    build(&opts, &[&wit], spec(&opts, InspectorAbi::ListU8, "", ""))
}

/// A batch of TCP packets to-server, one per `(flow_id, payload)`, payloads
/// laid end to end in one buffer.
pub fn batch(packets: &[(u64, &[u8])]) -> Batch {
    let mut buffer = Vec::new();
    let mut descs = Vec::new();
    for (i, (flow_id, payload)) in packets.iter().enumerate() {
        let offset = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
        buffer.extend_from_slice(payload);
        descs.push(Packet {
            flow_id: *flow_id,
            direction: Direction::ToServer,
            flow_flags: 1,
            ip_version: 4,
            protocol: 6,
            src_addr: IpAddress {
                hi: 0,
                lo: 0xffff_0a00_0001,
            },
            dst_addr: IpAddress {
                hi: 0,
                lo: 0xffff_0a00_0002,
            },
            src_port: 40000 + (i as u16),
            dst_port: 80,
            l3_offset: offset,
            l3_len: 0,
            l4_offset: offset,
            payload_offset: offset,
            payload_len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            timestamp_us: 1_700_000_000_000_000 + i as u64,
        });
    }
    Batch {
        buffer,
        packets: descs,
    }
}
