//! `sandgate-bench`: the benchmark suite. Prints one table; with `--write`
//! also replaces the generated section of BENCHMARKS.md.
//!
//! Every row is measured in the same run as its baseline, and the table
//! shows the ratio, because these machines are shared and noisy: compare
//! ratios, not lone absolute times.
//!
//! Rows:
//! - call overhead of an empty module per packet, by batch size and payload;
//! - the example rules and (when `../shared/data` is present) the compilable
//!   part of ET Open, in wasm under fuel vs the same matcher natively;
//! - compile and load times of those rule sets;
//! - end-to-end replay of the example capture;
//! - AV scan throughput against clamscan ([`scan`]);
//! - updates (`update.rs`): index change to active set, swap pause, rollback;
//! - with `--bridge` (root), instead: the live bridge on veth ([`bridge`]).

mod bridge;
mod scaling;
mod scan;
mod update;
mod variants;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use sandgate_host::capture::{CaptureReader, Frame};
use sandgate_host::decode::decode;
use sandgate_host::flow::{FlowConfig, FlowTable};
use sandgate_host::inspect::append_packet;
use sandgate_matcher::{Direction as MDirection, Matcher, PacketView, RuleSet, Scratch};
use sandgate_patterns::compile::compile_rules;
use sandgate_patterns::emit::{rules_component, ModuleManifest};
use sandgate_patterns::rules::{RuleSource, Vars};
use sandgate_runtime::testkit::{self, InspectBody, IpsOptions};
use sandgate_runtime::wit::{Batch, Direction as WDirection, IpAddress, Packet};
use sandgate_runtime::{
    AddressSpace, ArtifactCache, CacheOutcome, DescribeOutcome, Engine, EngineConfig, LoadedModule,
    Metering,
};

#[derive(Parser)]
#[command(about = "Sandgate benchmark suite")]
struct Args {
    /// Seconds each measurement runs for.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Replace the generated section of this file (usually BENCHMARKS.md).
    #[arg(long)]
    write: Option<PathBuf>,
    /// Bytes of shared captures to use for the real-traffic rows.
    #[arg(long, default_value_t = 20_000_000)]
    corpus_bytes: usize,
    /// Updates to time on the running daemon (0 skips the update rows).
    #[arg(long, default_value_t = 10)]
    updates: usize,
    /// Only the update rows (printed; never written to BENCHMARKS.md's
    /// generated section alone).
    #[arg(long)]
    updates_only: bool,
    /// Measure only the live bridge on veth (needs root) and write its own
    /// section; see src/bridge.rs.
    #[arg(long)]
    bridge: bool,
    /// Bytes of generated files for the AV scan rows.
    #[arg(long, default_value_t = 32 << 20)]
    av_bytes: usize,
    /// Run only the AV scan rows (their own section of the file).
    #[arg(long)]
    av_only: bool,
    /// Run only the ET Open rows, printed (for profiling; never written).
    #[arg(long)]
    et_only: bool,
    /// Run only the end-to-end replay rows of ET Open (printed, never
    /// written; for profiling the host path).
    #[arg(long)]
    replay_only: bool,
}

struct Row {
    name: String,
    value: String,
    baseline: String,
    ratio: String,
}

fn row(name: impl Into<String>, value: impl Into<String>) -> Row {
    Row {
        name: name.into(),
        value: value.into(),
        baseline: String::new(),
        ratio: String::new(),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Seconds per call of each of `fs`, the best of several rounds in which
/// each runs in turn (calls repeated to at least 20 ms per sample), for
/// about `secs` in all: interference on a shared machine slows a sample of
/// one contender, not the comparison.
fn interleaved(secs: f64, fs: &mut [&mut dyn FnMut() -> Result<()>]) -> Result<Vec<f64>> {
    let mut reps = Vec::with_capacity(fs.len());
    let mut round = 0.0;
    for f in fs.iter_mut() {
        f()?; // warm up
        let t = Instant::now();
        f()?;
        let once = t.elapsed().as_secs_f64().max(1e-9);
        let n = (0.02 / once).ceil().max(1.0);
        reps.push(n as u64);
        round += n * once;
    }
    let rounds = ((secs / round.max(1e-9)) as usize).clamp(3, 50);
    let mut best = vec![f64::INFINITY; fs.len()];
    for _ in 0..rounds {
        for (k, f) in fs.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..reps[k] {
                f()?;
            }
            best[k] = best[k].min(t.elapsed().as_secs_f64() / reps[k] as f64);
        }
    }
    Ok(best)
}

/// Run `f` repeatedly for about `secs`; returns (iterations, elapsed).
fn time_loop(secs: f64, mut f: impl FnMut() -> Result<()>) -> Result<(u64, Duration)> {
    f()?; // warm up
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        f()?;
        n += 1;
    }
    Ok((n.max(1), start.elapsed()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let engine = Engine::new(EngineConfig::default()).context("engine")?;
    if args.bridge {
        return bridge::main(&engine, args.seconds, args.write.as_deref());
    }
    if args.updates_only {
        let rows: Vec<Row> = update::rows(args.updates, 3)?
            .into_iter()
            .map(|(name, value)| row(name, value))
            .collect();
        print!("{}", render(&rows));
        return Ok(());
    }
    if args.replay_only {
        let shared = repo_root().join("../shared/data");
        let et = rule_files(&shared.join("rules/et-open-2020"))?;
        let pcaps = pcap_files(&shared.join("pcaps/suricata-verify"))?;
        let mut rows = Vec::new();
        variants::rows(
            "ET Open 2020",
            &et,
            &within_bytes(&pcaps, args.corpus_bytes),
            &mut rows,
        )?;
        print!("{}", render(&rows));
        return Ok(());
    }
    if args.et_only {
        let mut rows = Vec::new();
        et_rows(&engine, &args, &mut rows)?;
        print!("{}", render(&rows));
        return Ok(());
    }
    let mut av_rows = Vec::new();
    scan::scan_rows(&engine, args.seconds, args.av_bytes, &mut av_rows)?;
    let av_table = render(&av_rows);
    print!("{av_table}");
    if let Some(path) = &args.write {
        write_section(path, &av_table, scan::BEGIN, scan::END)?;
    }
    if args.av_only {
        return Ok(());
    }
    let mut rows = Vec::new();

    call_overhead(&engine, args.seconds, &mut rows)?;

    let example = repo_root().join("patterns/examples/example.rules");
    let example_pcap = repo_root().join("patterns/examples/example.pcap");
    let batches = capture_batches(std::slice::from_ref(&example_pcap), usize::MAX, 64)?;
    ruleset_rows(
        &engine,
        "example rules",
        &[example],
        &batches,
        args.seconds,
        &mut rows,
    )?;

    et_rows(&engine, &args, &mut rows)?;

    if args.updates > 0 {
        for (name, value) in update::rows(args.updates, 3)? {
            rows.push(row(name, value));
        }
    }

    let table = render(&rows);
    print!("{table}");
    if let Some(path) = args.write {
        write_section(&path, &table, BEGIN, END)?;
        println!("updated {}", path.display());
    }
    Ok(())
}

/// The ET Open rows (rules compiled, load, wasm vs native, metering modes,
/// workers, cache, memory) and the rule-count scaling plot.
fn et_rows(engine: &Engine, args: &Args, rows: &mut Vec<Row>) -> Result<()> {
    let shared = repo_root().join("../shared/data");
    if shared.is_dir() {
        let et = rule_files(&shared.join("rules/et-open-2020"))?;
        let pcaps = pcap_files(&shared.join("pcaps/suricata-verify"))?;
        let corpus = capture_batches(&pcaps, args.corpus_bytes, 64)?;
        ruleset_rows(engine, "ET Open 2020", &et, &corpus, args.seconds, rows)?;
        variants::rows(
            "ET Open 2020",
            &et,
            &within_bytes(&pcaps, args.corpus_bytes),
            rows,
        )?;
        let texts = read_texts(&et)?;
        let sample = &corpus[..corpus.len().min(200)];
        let points = scaling::measure(engine, &texts, sample, args.seconds / 2.0)?;
        for p in &points {
            rows.push(Row {
                name: format!("ET Open 2020, first {:>4} rules: wasm (fuel)", p.rules),
                value: format!("{:.0} packets/s", p.wasm_pps),
                baseline: format!("native {:.0} packets/s", p.native_pps),
                ratio: format!("{:.2}x native", p.wasm_pps / p.native_pps),
            });
        }
        if let Some(path) = &args.write {
            let svg = path
                .parent()
                .unwrap_or(Path::new("."))
                .join("docs/bench-rules-scaling.svg");
            scaling::plot(
                &points,
                &svg,
                "ET Open 2020 rules over the shared captures: packets/s vs rules",
            )?;
            println!("plotted {}", svg.display());
        }
    } else {
        rows.push(row("ET Open rows", "skipped: ../shared/data not present"));
    }
    Ok(())
}

/// The first captures of `pcaps` whose sizes add up to at most `limit` bytes.
fn within_bytes(pcaps: &[PathBuf], limit: usize) -> Vec<PathBuf> {
    let mut within = Vec::new();
    let mut total = 0u64;
    for p in pcaps {
        total += std::fs::metadata(p).map_or(0, |m| m.len());
        if total > limit as u64 {
            break;
        }
        within.push(p.clone());
    }
    within
}

/// Per-packet cost of calling a module that does nothing.
fn call_overhead(engine: &Engine, secs: f64, rows: &mut Vec<Row>) -> Result<()> {
    let bytes = testkit::ips_component(&IpsOptions::inspect(InspectBody::NoHits))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let module = engine.load("empty", &bytes)?;
    let mut inst = module.instantiate()?;
    let flat = testkit::flat_component(&IpsOptions::inspect(InspectBody::NoHits))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut flat = engine.load("empty-flat", &flat)?.instantiate()?;
    for payload in [64usize, 1500] {
        let mut base_ns = None;
        for n in [1usize, 16, 64, 256] {
            let data = vec![0x41u8; payload];
            let packets: Vec<(u64, &[u8])> =
                (0..n).map(|i| (i as u64 + 1, data.as_slice())).collect();
            let batch = testkit::batch(&packets);
            let (iters, el) = time_loop(secs / 4.0, || {
                inst.inspect(&batch).map_err(|f| anyhow::anyhow!("{f}"))?;
                Ok(())
            })?;
            let ns = el.as_nanos() as f64 / (iters as f64 * n as f64);
            let (fi, fe) = time_loop(secs / 4.0, || {
                flat.inspect(&batch).map_err(|f| anyhow::anyhow!("{f}"))?;
                Ok(())
            })?;
            let flat_ns = fe.as_nanos() as f64 / (fi as f64 * n as f64);
            let flat_row = Row {
                name: format!("empty flat module (1.2.0), batch {n:>3}, payload {payload:>4} B"),
                value: format!("{flat_ns:.0} ns/packet"),
                baseline: format!("{ns:.0} ns (1.0.0 records)"),
                ratio: format!("{:.1}x cheaper", ns / flat_ns),
            };
            let mut r = row(
                format!("empty module, batch {n:>3}, payload {payload:>4} B"),
                format!("{ns:.0} ns/packet"),
            );
            match base_ns {
                None => base_ns = Some(ns),
                Some(b) => {
                    r.baseline = format!("{b:.0} ns (batch 1)");
                    r.ratio = format!("{:.1}x cheaper", b / ns);
                }
            }
            rows.push(r);
            rows.push(flat_row);
        }
    }
    Ok(())
}

/// Compile, load, and measure a rule set in wasm and natively.
fn ruleset_rows(
    engine: &Engine,
    label: &str,
    files: &[PathBuf],
    batches: &[Batch],
    secs: f64,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let texts = read_texts(files)?;
    let sources: Vec<RuleSource<'_>> = texts
        .iter()
        .map(|(file, text)| RuleSource { file, text })
        .collect();
    let t = Instant::now();
    let compiled = compile_rules(&sources, &Vars::suricata_defaults(), "bench", "1");
    let set: RuleSet = compiled.set;
    let manifest = ModuleManifest {
        name: "bench".into(),
        version: "1".into(),
        kind: "ips".into(),
        interface: "1.0.0".into(),
        rules: set.rules.len() as u32,
        content_sha256: String::new(),
    };
    let component = rules_component(&set, &manifest)?;
    let compile_time = t.elapsed();
    rows.push(row(
        format!("{label}: rules compiled"),
        format!(
            "{} of {} in {:.2} s, module {} KiB",
            set.rules.len(),
            set.rules.len() + compiled.skipped.len(),
            compile_time.as_secs_f64(),
            component.len() / 1024
        ),
    ));
    let t = Instant::now();
    let module: LoadedModule = engine.load("bench", &component)?;
    let load = t.elapsed();
    let t = Instant::now();
    let mut inst = module.instantiate()?;
    let inst_time = t.elapsed();
    rows.push(row(
        format!("{label}: load (check + compile + describe)"),
        format!(
            "{:.1} ms; instantiate + warm-up {:.1} ms",
            ms(load),
            ms(inst_time)
        ),
    ));

    let packets: usize = batches.iter().map(|b| b.packets.len()).sum();
    let bytes: usize = batches
        .iter()
        .flat_map(|b| b.packets.iter())
        .map(|p| p.l3_len as usize)
        .sum();
    if packets == 0 {
        bail!("no packets to measure {label} with");
    }
    // One pass to measure fuel and faults before timing.
    let mut fuel = 0u64;
    let mut faults = 0usize;
    for b in batches {
        match inst.inspect(b) {
            Ok(_) => fuel += inst.last_fuel_used(),
            Err(_) => faults += 1,
        }
    }
    let always = set.rules.iter().filter(|r| r.prefilter.is_none()).count();
    rows.push(row(
        format!("{label}: fuel per packet (mean)"),
        format!(
            "{:.0} ({} rules without a prefilter literal; {faults} of {} batches over budget)",
            fuel as f64 / packets as f64,
            always,
            batches.len()
        ),
    ));
    // The native matcher and the module under every metering mode, timed
    // pass for pass in turn (best of several rounds each), so a burst of
    // load on this shared machine hits all of them alike.
    let matcher = Matcher::new(set);
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    let mut hits_native = 0usize;
    let mut hits_wasm = 0usize;
    let modes = [
        (
            "fuel, compact address space: explicit bounds checks",
            Metering::Fuel,
            AddressSpace::Compact,
        ),
        (
            "epoch deadline",
            Metering::Epoch { tick_us: 1000 },
            AddressSpace::Large,
        ),
        ("no limits", Metering::Unmetered, AddressSpace::Large),
    ];
    let mut others = Vec::new();
    for (_, metering, address_space) in &modes {
        let e = Engine::new(EngineConfig {
            metering: *metering,
            address_space: *address_space,
            ..EngineConfig::default()
        })?;
        others.push(e.load("bench", &component)?.instantiate()?);
    }
    // A batch that faults (an epoch deadline hit) restarts the instance:
    // counted, since it costs the warm-up again.
    let mut faulted = [0u64; 3];
    let best = {
        let [c, ep, un] = &mut others[..] else {
            bail!("three metering modes");
        };
        let [fc, fe, fu] = &mut faulted;
        let run = |i: &mut sandgate_runtime::ModuleInstance, f: &mut u64| {
            for b in batches {
                *f += u64::from(i.inspect(b).is_err());
            }
            Ok(())
        };
        interleaved(
            secs * 4.0,
            &mut [
                &mut || {
                    hits_native = 0;
                    for b in batches {
                        for p in &b.packets {
                            out.clear();
                            matcher.matches(&view(b, p), &mut scratch, &mut out);
                            hits_native += out.len();
                        }
                    }
                    Ok(())
                },
                &mut || {
                    hits_wasm = 0;
                    for b in batches {
                        hits_wasm += inst.inspect(b).map_or(0, |h| h.len());
                    }
                    Ok(())
                },
                &mut || run(c, fc),
                &mut || run(ep, fe),
                &mut || run(un, fu),
            ],
        )?
    };
    let pps = |secs: f64| packets as f64 / secs;
    let mbit = |secs: f64| bytes as f64 * 8.0 / secs / 1e6;
    let nat_pps = pps(best[0]);
    let wasm_pps = pps(best[1]);
    rows.push(Row {
        name: format!("{label}: wasm (fuel) over {packets} packets"),
        value: format!("{wasm_pps:.0} packets/s, {:.0} Mbit/s", mbit(best[1])),
        baseline: format!("native {nat_pps:.0} packets/s, {:.0} Mbit/s", mbit(best[0])),
        ratio: format!("{:.2}x native", wasm_pps / nat_pps),
    });
    for (k, (mode, _, _)) in modes.iter().enumerate() {
        let t = best[k + 2];
        let faults = if faulted[k] > 0 {
            format!("; {} batches faulted", faulted[k])
        } else {
            String::new()
        };
        rows.push(Row {
            name: format!("{label}: wasm ({mode})"),
            value: format!("{:.0} packets/s, {:.0} Mbit/s{faults}", pps(t), mbit(t)),
            baseline: format!("native {nat_pps:.0} packets/s"),
            ratio: format!("{:.2}x native", pps(t) / nat_pps),
        });
    }
    let two = workers_pps(&module, batches, secs, 2)?;
    rows.push(Row {
        name: format!("{label}: wasm (fuel), 2 workers"),
        value: format!(
            "{two:.0} packets/s, {:.0} Mbit/s in all",
            two * (bytes as f64 * 8.0 / packets as f64) / 1e6
        ),
        baseline: format!("1 worker {wasm_pps:.0} packets/s"),
        ratio: format!("{:.2}x one worker", two / wasm_pps),
    });
    load_and_memory_rows(label, &component, rows)?;
    if hits_wasm != hits_native {
        rows.push(row(
            format!("{label}: WARNING"),
            format!("wasm found {hits_wasm} hits, native {hits_native}"),
        ));
    }
    Ok(())
}

/// Aggregate packets/s of `n` threads, each with its own instance of
/// `module`, each inspecting all of `batches` for `secs`.
fn workers_pps(module: &LoadedModule, batches: &[Batch], secs: f64, n: usize) -> Result<f64> {
    let packets: usize = batches.iter().map(|b| b.packets.len()).sum();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(|| -> Result<f64> {
                    let mut inst = module.instantiate()?;
                    let (iters, el) = time_loop(secs, || {
                        for b in batches {
                            let _ = inst.inspect(b);
                        }
                        Ok(())
                    })?;
                    Ok(iters as f64 * packets as f64 / el.as_secs_f64())
                })
            })
            .collect();
        let mut total = 0.0;
        for h in handles {
            total += h
                .join()
                .map_err(|_| anyhow::anyhow!("worker thread panicked"))??;
        }
        Ok(total)
    })
}

/// Load from the precompiled-artifact cache against a fresh compile, and
/// resident memory: compiled code, then one and two instances (workers).
fn load_and_memory_rows(label: &str, component: &[u8], rows: &mut Vec<Row>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = ArtifactCache::new(dir.path());
    let engine = Engine::new(EngineConfig::default())?;
    let t = Instant::now();
    let (_, first) = cache.load(&engine, "bench", component)?;
    let compiled = t.elapsed();
    let rss0 = rss_kib();
    let t = Instant::now();
    let (module, second) = cache.load(&engine, "bench", component)?;
    let cached = t.elapsed();
    if first != CacheOutcome::Compiled || second != CacheOutcome::Hit {
        bail!("{label}: artifact cache did not hit ({first:?}, {second:?})");
    }
    if module.describe_outcome() != DescribeOutcome::Cached {
        bail!("{label}: the cached load called describe again");
    }
    rows.push(Row {
        name: format!("{label}: load from precompiled cache"),
        value: format!("{:.1} ms (check + map + cached describe)", ms(cached)),
        baseline: format!("compile {:.1} ms", ms(compiled)),
        ratio: format!("{:.1}x faster", ms(compiled) / ms(cached).max(0.001)),
    });
    let rss1 = rss_kib();
    let w1 = module.instantiate()?;
    let rss2 = rss_kib();
    let w2 = module.instantiate()?;
    let rss3 = rss_kib();
    rows.push(row(
        format!("{label}: resident memory"),
        format!(
            "module {:.1} MiB, worker 1 +{:.1} MiB, worker 2 +{:.1} MiB; bench process {:.0} MiB",
            rss1.saturating_sub(rss0) as f64 / 1024.0,
            rss2.saturating_sub(rss1) as f64 / 1024.0,
            rss3.saturating_sub(rss2) as f64 / 1024.0,
            rss3 as f64 / 1024.0
        ),
    ));
    drop((w1, w2));
    Ok(())
}

/// The process's resident set in KiB (`VmRSS`), 0 if unreadable.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// (path, contents) of each rule file.
fn read_texts(files: &[PathBuf]) -> Result<Vec<(String, String)>> {
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).with_context(|| p.display().to_string())?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn view<'a>(b: &'a Batch, p: &Packet) -> PacketView<'a> {
    let get = |off: u32, len: u32| {
        let s = off as usize;
        b.buffer.get(s..s + len as usize).unwrap_or(&[])
    };
    let addr = |a: IpAddress| (u128::from(a.hi) << 64) | u128::from(a.lo);
    PacketView {
        protocol: p.protocol,
        src: addr(p.src_addr),
        dst: addr(p.dst_addr),
        src_port: p.src_port,
        dst_port: p.dst_port,
        direction: match p.direction {
            WDirection::ToServer => MDirection::ToServer,
            WDirection::ToClient => MDirection::ToClient,
            WDirection::Unknown => MDirection::Unknown,
        },
        flow_flags: p.flow_flags,
        flow_id: p.flow_id,
        ip_version: p.ip_version,
        l3: get(p.l3_offset, p.l3_len),
        l4_offset: (p.l4_offset - p.l3_offset) as usize,
        payload: get(p.payload_offset, p.payload_len),
    }
}

/// Decode captures into WIT batches of `per_batch` packets, up to `max_bytes`.
fn capture_batches(pcaps: &[PathBuf], max_bytes: usize, per_batch: usize) -> Result<Vec<Batch>> {
    let mut batches = Vec::new();
    let mut cur = Batch {
        buffer: Vec::new(),
        packets: Vec::new(),
    };
    let mut total = 0usize;
    'files: for path in pcaps {
        let Ok(mut reader) = CaptureReader::open(path) else {
            continue;
        };
        let mut flows = FlowTable::new(FlowConfig::default());
        let mut frame = Frame::default();
        while let Ok(true) = reader.read_into(&mut frame) {
            let Ok(d) = decode(frame.linktype, &frame.data) else {
                continue;
            };
            let Some(l3_len) = frame.data.get(d.l3.clone()).map(<[u8]>::len) else {
                continue;
            };
            let flow = flows.track(&d, frame.timestamp_us);
            append_packet(&mut cur, frame.timestamp_us, &frame.data, &d, &flow);
            total += l3_len;
            if cur.packets.len() == per_batch {
                batches.push(std::mem::replace(
                    &mut cur,
                    Batch {
                        buffer: Vec::new(),
                        packets: Vec::new(),
                    },
                ));
            }
            if total >= max_bytes {
                break 'files;
            }
        }
    }
    if !cur.packets.is_empty() {
        batches.push(cur);
    }
    Ok(batches)
}

fn files_with_ext(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    Ok(v)
}

fn rule_files(dir: &Path) -> Result<Vec<PathBuf>> {
    files_with_ext(dir, "rules")
}

fn pcap_files(dir: &Path) -> Result<Vec<PathBuf>> {
    files_with_ext(dir, "pcap")
}

fn render(rows: &[Row]) -> String {
    let w0 = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.value.len()).max().unwrap_or(0);
    let w2 = rows
        .iter()
        .map(|r| r.baseline.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let mut s = format!(
        "| {:w0$} | {:w1$} | {:w2$} | ratio |\n|{}|{}|{}|---|\n",
        "measurement",
        "value",
        "baseline",
        "-".repeat(w0 + 2),
        "-".repeat(w1 + 2),
        "-".repeat(w2 + 2),
    );
    for r in rows {
        s.push_str(&format!(
            "| {:w0$} | {:w1$} | {:w2$} | {} |\n",
            r.name, r.value, r.baseline, r.ratio
        ));
    }
    s
}

const BEGIN: &str = "<!-- sandgate-bench:begin -->";
const END: &str = "<!-- sandgate-bench:end -->";

/// Replace the text between the markers `begin`/`end` of `path` with `table`.
fn write_section(path: &Path, table: &str, begin: &str, end: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{begin}\n{table}{end}");
    let new = match (old.find(begin), old.find(end)) {
        (Some(a), Some(b)) if b > a => format!("{}{}{}", &old[..a], section, &old[b + end.len()..]),
        _ => format!("{old}\n{section}\n"),
    };
    std::fs::write(path, new).with_context(|| path.display().to_string())
}
