//! `sandgate`: the gateway's command line.
//!
//! Exit codes: 0 success; 2 error (unreadable or incompatible bundle,
//! unreadable capture, output failure); 3 the replay ran but some modules of
//! the bundle were refused (each refusal printed with its reason).
//!
//! `run` is the gateway daemon (data plane + update client, see
//! `sandgate_host::update`); it runs until stopped. `status` prints what a
//! running daemon reported last in its state directory.
//! `sandgate scan` uses clamscan's codes instead: 0 clean, 1 something
//! found, 2 an error (and nothing found).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use sandgate_host::eve::{alert_table, AlertRecord, EveWriter};
use sandgate_host::inspect::BatchLimits;
use sandgate_host::replay::{load_bundle, replay, ReplayOptions};
use sandgate_host::scan::{scan_paths, FileScanner, ScanConfig};
use sandgate_host::update::daemon::{self, DaemonOptions};
use sandgate_host::update::plane::{PacketSource, PcapLoop, PlaneConfig};
use sandgate_host::update::status::Status;
use sandgate_patterns::bundle::Bundle;
use sandgate_runtime::{Engine, EngineConfig, FailPolicy};

#[derive(Parser)]
#[command(name = "sandgate", version, about = "Sandgate inspection engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect a capture file offline and write alerts as EVE JSON.
    Replay {
        /// Bundle built by `sandgate-patc build`.
        #[arg(long)]
        bundle: PathBuf,
        /// Capture file (pcap or pcapng).
        #[arg(long)]
        pcap: PathBuf,
        /// EVE JSON output file (one alert per line).
        #[arg(long)]
        eve: Option<PathBuf>,
        /// Packets per call into a module.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// A module fault drops the batch's packets instead of passing them.
        #[arg(long)]
        fail_closed: bool,
        /// Print at most this many alerts in the table (all go to EVE).
        #[arg(long, default_value_t = 50)]
        show: usize,
    },
    /// Run the gateway: inspect traffic and keep the content up to date.
    Run {
        /// State directory (last good set, status, telemetry spool).
        #[arg(long)]
        state: PathBuf,
        /// Base URL of the update server (serves index.json, bundles, /telemetry).
        #[arg(long)]
        update_url: String,
        /// The vendor's public key (PEM); only content it signed runs.
        #[arg(long)]
        vendor_key: PathBuf,
        /// This appliance's id (staged rollout, telemetry).
        #[arg(long)]
        appliance_id: String,
        /// Traffic: a capture replayed in a loop.
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Packets per second the capture is replayed at (0: unpaced).
        #[arg(long, default_value_t = 5000)]
        pps: u64,
        /// A module fault drops the batch's packets instead of passing them.
        #[arg(long)]
        fail_closed: bool,
        /// Milliseconds between polls of the update server.
        #[arg(long, default_value_t = 60_000)]
        poll_ms: u64,
        /// Seconds a new module runs in shadow beside the active set (0: no shadow run).
        #[arg(long, default_value_t = 0.0)]
        shadow_secs: f64,
        /// Serve Prometheus metrics on this address.
        #[arg(long)]
        metrics_addr: Option<SocketAddr>,
        /// Bundle to start from when the state directory is empty.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Packets per call into a module.
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Show what a running gateway has active: bundle, modules, health, events.
    Status {
        /// The daemon's state directory.
        #[arg(long)]
        state: PathBuf,
        /// Print status.json as it is.
        #[arg(long)]
        json: bool,
    },
    /// Scan files with the bundle's AV modules; output and exit codes as
    /// clamscan's (0 clean, 1 found, 2 error).
    Scan {
        /// Bundle built by `sandgate-patc build` from signature databases.
        #[arg(long = "db", short = 'd', visible_alias = "database")]
        db: PathBuf,
        /// Scan directories recursively.
        #[arg(short = 'r', long = "recursive")]
        recursive: bool,
        /// Report every matching signature, not only the first.
        #[arg(short = 'z', long = "allmatch")]
        allmatch: bool,
        /// Only print infected files.
        #[arg(short = 'i', long = "infected")]
        infected: bool,
        /// Do not print the summary block.
        #[arg(long = "no-summary")]
        no_summary: bool,
        /// Files larger than this are not scanned (bytes; K and M suffixes;
        /// 0 = no limit).
        #[arg(long = "max-filesize", default_value = "100M", value_parser = parse_size)]
        max_filesize: u64,
        /// Scan-time limit per file in milliseconds, counted in wasm fuel
        /// (about 1,000,000 units per ms); 0 = the engine's limit.
        #[arg(long = "max-scantime", default_value_t = sandgate_host::scan::DEFAULT_MAX_SCANTIME_MS)]
        max_scantime: u64,
        /// Report an exceeded limit as Heuristics.Limits.Exceeded.* FOUND.
        #[arg(long = "alert-exceeds-max", num_args = 0..=1, default_missing_value = "yes", value_parser = parse_yes_no, default_value = "no")]
        alert_exceeds_max: bool,
        /// Files and directories to scan.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

/// `100`, `64K`, `100M` (clamscan's size syntax) in bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1024),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .map(|n| n.saturating_mul(mult))
        .map_err(|_| format!("`{s}` is not a size (e.g. 100, 64K, 100M)"))
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("`{s}`: expected yes or no")),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sandgate: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            state,
            update_url,
            vendor_key,
            appliance_id,
            pcap,
            pps,
            fail_closed,
            poll_ms,
            shadow_secs,
            metrics_addr,
            bundle,
            batch,
        } => {
            if batch == 0 {
                bail!("--batch must be at least 1");
            }
            if !shadow_secs.is_finite() || shadow_secs < 0.0 {
                bail!("--shadow-secs must be a non-negative number");
            }
            let vendor_key = sandgate_patterns::sign::read_public_key(&vendor_key)?;
            let source: Option<Box<dyn PacketSource>> = match &pcap {
                Some(p) => Some(Box::new(
                    PcapLoop::open(p).with_context(|| format!("reading {}", p.display()))?,
                )),
                None => None,
            };
            daemon::run(DaemonOptions {
                state,
                update_url,
                vendor_key,
                appliance_id,
                source,
                policy: if fail_closed {
                    FailPolicy::FailClosed
                } else {
                    FailPolicy::FailOpen
                },
                poll: Duration::from_millis(poll_ms.max(10)),
                shadow: Duration::from_secs_f64(shadow_secs),
                metrics_addr,
                initial: bundle,
                plane: PlaneConfig {
                    batch: BatchLimits {
                        packets: batch,
                        ..BatchLimits::default()
                    },
                    pps,
                    ..PlaneConfig::default()
                },
                engine: EngineConfig::default(),
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { state, json } => {
            let status = Status::read(&state)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan {
            db,
            recursive,
            allmatch,
            infected,
            no_summary,
            max_filesize,
            max_scantime,
            alert_exceeds_max,
            paths,
        } => {
            let bundle_file = Bundle::read(&db)?;
            let engine = Engine::new(EngineConfig::default()).context("starting the engine")?;
            let loaded = load_bundle(&engine, &bundle_file);
            for e in &loaded.refused {
                eprintln!("sandgate: refused: {e}");
            }
            let config = ScanConfig {
                recursive,
                all_match: allmatch,
                max_filesize,
                max_scantime_ms: max_scantime,
                alert_exceeds_max,
                infected_only: infected,
                summary: !no_summary,
                ..ScanConfig::default()
            };
            let mut scanner = FileScanner::new(&loaded.modules, config)
                .with_context(|| format!("bundle {}", db.display()))?;
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            let summary = scan_paths(&mut scanner, &paths, &mut stdout.lock(), &mut stderr.lock())
                .context("writing the scan report")?;
            Ok(ExitCode::from(summary.exit_code()))
        }
        Command::Replay {
            bundle,
            pcap,
            eve,
            batch,
            fail_closed,
            show,
        } => {
            if batch == 0 {
                bail!("--batch must be at least 1");
            }
            let bundle_file = Bundle::read(&bundle)?;
            let engine = Engine::new(EngineConfig::default()).context("starting the engine")?;
            let loaded = load_bundle(&engine, &bundle_file);
            for e in &loaded.refused {
                eprintln!("sandgate: refused: {e}");
            }
            if loaded.modules.is_empty() {
                bail!(
                    "bundle {}: no module could be loaded ({} refused)",
                    bundle.display(),
                    loaded.refused.len()
                );
            }
            let mut writer = match &eve {
                Some(path) => Some(EveWriter::create(path)?),
                None => None,
            };
            let mut shown: Vec<AlertRecord> = Vec::new();
            let mut per_sid: BTreeMap<(u32, u32), (String, u64)> = BTreeMap::new();
            let opts = ReplayOptions {
                batch: BatchLimits {
                    packets: batch,
                    ..BatchLimits::default()
                },
                policy: if fail_closed {
                    FailPolicy::FailClosed
                } else {
                    FailPolicy::FailOpen
                },
                ..ReplayOptions::default()
            };
            let result = replay(&loaded.modules, &pcap, &opts, &mut |a| {
                let entry = per_sid
                    .entry((a.gid, a.signature_id))
                    .or_insert_with(|| (a.signature.clone(), 0));
                entry.1 += 1;
                if shown.len() < show {
                    shown.push(a.clone());
                }
                match writer.as_mut() {
                    Some(w) => w.write_alert(a).map_err(|e| e.to_string()),
                    None => Ok(()),
                }
            });
            if let Some(w) = writer.as_mut() {
                w.flush()?;
            }
            let (stats, report, failure) = match result {
                Ok((stats, report)) => (stats, report, None),
                Err((stats, e)) => (stats, Vec::new(), Some(e)),
            };
            print!("{}", alert_table(&shown));
            if stats.alerts as usize > shown.len() {
                println!(
                    "... {} more alerts in the EVE file",
                    stats.alerts as usize - shown.len()
                );
            }
            println!();
            println!("{:>8}  {:>10}  msg", "alerts", "gid:sid");
            for ((gid, sid), (msg, n)) in &per_sid {
                println!("{n:>8}  {:>10}  {msg}", format!("{gid}:{sid}"));
            }
            println!();
            let secs = stats.elapsed.as_secs_f64().max(1e-9);
            println!(
                "packets {} ({} inspected, {} not IP, {} undecodable), {} alerts, {:.0} packets/s, {:.1} MB/s",
                stats.packets,
                stats.inspected,
                stats.not_ip,
                stats.decode_errors,
                stats.alerts,
                stats.packets as f64 / secs,
                stats.bytes as f64 / secs / 1e6
            );
            for s in &stats.decode_error_samples {
                println!("  undecodable: {s}");
            }
            println!(
                "verdicts if inline: {} dropped by rules, {} dropped by fail-closed faults",
                stats.dropped_by_rule, stats.dropped_by_fault
            );
            if stats.suppressed_alerts > 0 {
                println!(
                    "thresholds: {} alerts suppressed, {} drops withheld",
                    stats.suppressed_alerts, stats.actions_withheld
                );
            }
            println!(
                "stream: {} chunks, {} bytes reassembled, {} gaps, {} out of order, {} beyond depth",
                stats.stream.chunks,
                stats.stream.bytes,
                stats.stream.gaps,
                stats.stream.out_of_order,
                stats.stream.depth_reached
            );
            for m in &report {
                if m.faults.is_empty() {
                    println!("module {}: healthy", m.module);
                } else {
                    let kinds: Vec<String> =
                        m.faults.iter().map(|(k, n)| format!("{k} x{n}")).collect();
                    println!(
                        "module {}: faults {} (last: {})",
                        m.module,
                        kinds.join(", "),
                        m.last_fault.as_deref().unwrap_or("-")
                    );
                }
            }
            if let Some(path) = &eve {
                println!("EVE: {} alerts written to {}", stats.alerts, path.display());
            }
            if let Some(e) = failure {
                return Err(anyhow::Error::new(e).context(format!(
                    "replay of {} stopped after {} packets",
                    pcap.display(),
                    stats.packets
                )));
            }
            if !loaded.refused.is_empty() {
                return Ok(ExitCode::from(3));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
