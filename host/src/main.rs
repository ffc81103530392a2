//! `sandgate`: the gateway's command line.
//!
//! Exit codes: 0 success; 2 error (unreadable or incompatible bundle,
//! unreadable capture, output failure); 3 the replay ran but some modules of
//! the bundle were refused (each refusal printed with its reason).
//!
//! `run` is the gateway: the live data plane on interfaces (`--ids`,
//! `--inline`, `--config`; see `sandgate_host::live`) and/or the update
//! daemon (`--update-url`; see `sandgate_host::update`), which then drives
//! the live bridge (or a replayed capture with `--pcap`). It runs until
//! SIGINT/SIGTERM and prints the data plane's counters; SIGHUP re-reads
//! the configuration file. `status` prints what a
//! running daemon reported last in its state directory.
//! `sandgate scan` uses clamscan's codes instead: 0 clean, 1 something
//! found, 2 an error (and nothing found).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use sandgate_host::eve::{alert_table, proto_name, AlertRecord, EveWriter};
use sandgate_host::inspect::BatchLimits;
use sandgate_host::live::driver::{LiveControl, LivePlane};
use sandgate_host::live::{AlertSink, Bridge, Config as LiveConfig, LiveStats, Mode};
use sandgate_host::replay::{load_bundle, replay, LoadedBundle, ReplayOptions};
use sandgate_host::scan::{scan_paths, FileScanner, ScanConfig};
use sandgate_host::update::daemon::{self, DaemonOptions};
use sandgate_host::update::plane::{CapturePlane, PacketSource, PcapLoop, PlaneConfig};
use sandgate_host::update::status::Status;
use sandgate_patterns::bundle::Bundle;
use sandgate_runtime::{Engine, EngineConfig, FailPolicy};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

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
    /// Run the gateway: inspect live traffic (`--ids`, `--inline`,
    /// `--config`) and/or keep the content up to date (`--update-url`).
    Run(Box<RunArgs>),
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

/// The arguments of `sandgate run`.
#[derive(clap::Args)]
struct RunArgs {
    /// YAML configuration of the live data plane (README "Live
    /// traffic"); flags override its keys. Re-read on SIGHUP.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Passive IDS: capture this interface and alert.
    #[arg(long, value_name = "IFACE", conflicts_with = "inline")]
    ids: Option<String>,
    /// Inline IPS: bridge these two interfaces through inspection.
    #[arg(long, num_args = 2, value_names = ["IFACE_A", "IFACE_B"])]
    inline: Option<Vec<String>>,
    /// Worker threads of the live data plane (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// EVE JSON output file for alerts (live data plane).
    #[arg(long)]
    eve: Option<PathBuf>,
    /// State directory (last good set, status, telemetry spool).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Base URL of the update server (serves index.json, bundles, /telemetry).
    #[arg(long)]
    update_url: Option<String>,
    /// The vendor's public key (PEM); only content it signed runs.
    #[arg(long)]
    vendor_key: Option<PathBuf>,
    /// This appliance's id (staged rollout, telemetry).
    #[arg(long)]
    appliance_id: Option<String>,
    /// Traffic without interfaces: a capture replayed in a loop.
    #[arg(long, conflicts_with_all = ["ids", "inline", "config"])]
    pcap: Option<PathBuf>,
    /// Packets per second the capture is replayed at (0: unpaced).
    #[arg(long, default_value_t = 5000)]
    pps: u64,
    /// A module fault drops the packets instead of passing them
    /// (the default policy; the config can set it per module).
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
    /// Bundle to inspect with (without an update server), or to start
    /// from when the state directory is empty.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Packets per call into a module (default 64).
    #[arg(long)]
    batch: Option<usize>,
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
        Command::Run(args) => {
            let RunArgs {
                config,
                ids,
                inline,
                workers,
                eve,
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
            } = *args;
            if batch == Some(0) {
                bail!("--batch must be at least 1");
            }
            if !shadow_secs.is_finite() || shadow_secs < 0.0 {
                bail!("--shadow-secs must be a non-negative number");
            }
            let flags = LiveFlags {
                ids,
                inline,
                workers,
                eve,
                state,
                update_url,
                vendor_key,
                appliance_id,
                bundle,
                batch,
                fail_closed,
            };
            if config.is_some() || flags.ids.is_some() || flags.inline.is_some() {
                let cfg = live_config(config.as_deref(), &flags)?;
                let updates = UpdateFlags {
                    poll: Duration::from_millis(poll_ms.max(10)),
                    shadow: Duration::from_secs_f64(shadow_secs),
                    metrics_addr,
                };
                return run_live(cfg, config, flags, updates);
            }
            fn need<T>(v: Option<T>, flag: &str) -> anyhow::Result<T> {
                v.with_context(|| {
                    format!(
                        "{flag} is required (or run the live data plane with --ids, --inline or --config)"
                    )
                })
            }
            let state = need(flags.state, "--state")?;
            let update_url = need(flags.update_url, "--update-url")?;
            let vendor_key = need(flags.vendor_key, "--vendor-key")?;
            let appliance_id = need(flags.appliance_id, "--appliance-id")?;
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
                data_plane: Box::new(CapturePlane {
                    source,
                    config: PlaneConfig {
                        batch: BatchLimits {
                            packets: batch.unwrap_or(64),
                            ..BatchLimits::default()
                        },
                        pps,
                        ..PlaneConfig::default()
                    },
                }),
                policy: if fail_closed {
                    FailPolicy::FailClosed
                } else {
                    FailPolicy::FailOpen
                },
                poll: Duration::from_millis(poll_ms.max(10)),
                shadow: Duration::from_secs_f64(shadow_secs),
                metrics_addr,
                initial: flags.bundle,
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
            let loaded = load_bundle_file(&bundle)?;
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

/// `run` flags that can also come from the live configuration file.
struct LiveFlags {
    ids: Option<String>,
    inline: Option<Vec<String>>,
    workers: Option<usize>,
    eve: Option<PathBuf>,
    state: Option<PathBuf>,
    update_url: Option<String>,
    vendor_key: Option<PathBuf>,
    appliance_id: Option<String>,
    bundle: Option<PathBuf>,
    batch: Option<usize>,
    fail_closed: bool,
}

/// Update-daemon settings that only come from flags.
struct UpdateFlags {
    poll: Duration,
    shadow: Duration,
    metrics_addr: Option<SocketAddr>,
}

/// The live configuration: the file (when given) with the flags on top.
fn live_config(path: Option<&Path>, flags: &LiveFlags) -> anyhow::Result<LiveConfig> {
    let mut cfg = match path {
        Some(p) => LiveConfig::load(p)?,
        None => match (&flags.ids, &flags.inline) {
            (Some(i), _) => LiveConfig::new(Mode::Ids, &[i.as_str()]),
            (None, Some(pair)) => {
                let names: Vec<&str> = pair.iter().map(String::as_str).collect();
                LiveConfig::new(Mode::Inline, &names)
            }
            (None, None) => bail!("give --ids IFACE, --inline IFACE_A IFACE_B or --config FILE"),
        },
    };
    if let Some(i) = &flags.ids {
        cfg.mode = Mode::Ids;
        cfg.interfaces = vec![i.clone()];
    }
    if let Some(pair) = &flags.inline {
        cfg.mode = Mode::Inline;
        cfg.interfaces = pair.clone();
    }
    if flags.workers.is_some() {
        cfg.workers = flags.workers;
    }
    if let Some(b) = flags.batch {
        cfg.limits.batch = b;
    }
    if flags.fail_closed {
        cfg.policy.default = FailPolicy::FailClosed;
    }
    let set = |slot: &mut Option<PathBuf>, flag: &Option<PathBuf>| {
        if flag.is_some() {
            slot.clone_from(flag);
        }
    };
    set(&mut cfg.eve, &flags.eve);
    set(&mut cfg.state, &flags.state);
    set(&mut cfg.vendor_key, &flags.vendor_key);
    set(&mut cfg.bundle, &flags.bundle);
    if flags.update_url.is_some() {
        cfg.update_server.clone_from(&flags.update_url);
    }
    if flags.appliance_id.is_some() {
        cfg.appliance_id.clone_from(&flags.appliance_id);
    }
    let origin = path.map_or_else(|| "command line".to_string(), |p| p.display().to_string());
    cfg.validate()
        .with_context(|| format!("live configuration ({origin} with flags applied)"))?;
    Ok(cfg)
}

/// One line per alert on stdout (and the EVE file when configured).
fn alert_sink(eve: Option<Arc<Mutex<EveWriter>>>) -> AlertSink {
    Arc::new(move |a: &AlertRecord| {
        println!(
            "alert {} [{}:{}:{}] {} {{{}}} {} -> {}",
            a.action.as_str(),
            a.gid,
            a.signature_id,
            a.rev,
            a.signature,
            proto_name(a.proto),
            endpoint(a.src_ip, a.src_port),
            endpoint(a.dest_ip, a.dest_port)
        );
        if let Some(w) = &eve {
            let mut w = w.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(e) = w.write_alert(a).and_then(|()| w.flush()) {
                eprintln!("sandgate: {e}");
            }
        }
    })
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// `sandgate run` on interfaces: on the configured bundle, or driven by
/// the update daemon when an update server is configured. Runs until
/// SIGINT/SIGTERM; SIGHUP re-reads the configuration file.
fn run_live(
    cfg: LiveConfig,
    path: Option<PathBuf>,
    flags: LiveFlags,
    updates: UpdateFlags,
) -> anyhow::Result<ExitCode> {
    // Installed first, so a SIGHUP during startup is not fatal.
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    if let Some(vars) = &cfg.vars {
        eprintln!(
            "sandgate: vars {}: rule variables are applied when rules are compiled (sandgate-patc build), not by the running data plane",
            vars.display()
        );
    }
    let eve = match &cfg.eve {
        Some(p) => Some(Arc::new(Mutex::new(EveWriter::create(p)?))),
        None => None,
    };
    let sink = alert_sink(eve.clone());
    let (control, daemon_done) = match &cfg.update_server {
        None => {
            let bundle = cfg.bundle.as_ref().context(
                "no bundle: give --bundle or `bundle:` in the configuration (or an update server)",
            )?;
            let loaded = load_bundle_file(bundle)?;
            let names: Vec<String> = loaded
                .modules
                .iter()
                .map(|m| m.name().to_string())
                .collect();
            let handle = Bridge::start(&cfg, loaded.modules, sink)?;
            eprintln!(
                "sandgate: {} modules from {}: {}",
                names.len(),
                bundle.display(),
                names.join(", ")
            );
            (LiveControl::new(handle), None)
        }
        Some(url) => {
            fn need<T: Clone>(v: &Option<T>, flag: &str, key: &str) -> anyhow::Result<T> {
                v.clone().with_context(|| {
                    format!("with an update server, {flag} (or `{key}:` in the configuration) is required")
                })
            }
            let state = need(&cfg.state, "--state", "state")?;
            let key_path: PathBuf = need(&cfg.vendor_key, "--vendor-key", "vendor_key")?;
            let appliance_id = need(&cfg.appliance_id, "--appliance-id", "appliance_id")?;
            let vendor_key = sandgate_patterns::sign::read_public_key(&key_path)?;
            let (plane, control) = LivePlane::new(cfg.clone(), sink);
            let opts = DaemonOptions {
                state,
                update_url: url.clone(),
                vendor_key,
                appliance_id,
                data_plane: Box::new(plane),
                policy: cfg.policy.default,
                poll: updates.poll,
                shadow: updates.shadow,
                metrics_addr: updates.metrics_addr,
                initial: cfg.bundle.clone(),
                engine: EngineConfig::default(),
            };
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("update-daemon".into())
                .spawn(move || {
                    let _ = tx.send(daemon::run(opts));
                })
                .context("starting the update daemon")?;
            while !control.is_running() {
                if let Ok(r) = rx.try_recv() {
                    r?;
                    bail!("the update daemon stopped during startup");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (control, Some(rx))
        }
    };
    eprintln!(
        "sandgate: {} on {} ({} workers){}",
        match cfg.mode {
            Mode::Inline => "inline bridge",
            Mode::Ids => "passive IDS",
        },
        cfg.interfaces.join(" <-> "),
        cfg.worker_count(),
        cfg.update_server
            .as_deref()
            .map(|u| format!(", updates from {u}"))
            .unwrap_or_default()
    );
    let mut running = cfg;
    'run: loop {
        for sig in signals.pending() {
            if sig != SIGHUP {
                break 'run;
            }
            let Some(p) = &path else {
                eprintln!("sandgate: SIGHUP: no --config file to re-read; nothing changed");
                continue;
            };
            let fresh = live_config(Some(p), &flags).and_then(|new| {
                control.reload(&new)?;
                Ok(new)
            });
            match fresh {
                Ok(new) => {
                    let later = running.restart_only_changes(&new);
                    eprintln!(
                        "sandgate: SIGHUP: reloaded {}: policies and bypass list applied{}",
                        p.display(),
                        if later.is_empty() {
                            String::new()
                        } else {
                            format!("; {} take effect at the next start", later.join(", "))
                        }
                    );
                    if later.contains(&"vars") {
                        eprintln!(
                            "sandgate: SIGHUP: vars changed: rule variables are applied when rules are compiled; rebuild the bundle with sandgate-patc build"
                        );
                    }
                    running = new;
                }
                Err(e) => eprintln!(
                    "sandgate: SIGHUP: configuration refused, the running one stays: {e:#}"
                ),
            }
        }
        if let Some(rx) = &daemon_done {
            if let Ok(r) = rx.try_recv() {
                control.stop();
                r?;
                bail!("the update daemon stopped");
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = control.stop().unwrap_or_default();
    if let Some(w) = &eve {
        w.lock().unwrap_or_else(PoisonError::into_inner).flush()?;
    }
    print_live_stats(&stats);
    Ok(ExitCode::SUCCESS)
}

fn print_live_stats(s: &LiveStats) {
    println!(
        "frames {} received, {} forwarded ({} bypassed, {} not IP, {} undecodable), {} inspected",
        s.received, s.forwarded, s.bypassed, s.not_ip, s.decode_errors, s.inspected
    );
    println!(
        "dropped: {} by rule, {} later packets of dropped flows, {} by fail-closed faults, {} rejects sent",
        s.dropped_by_rule, s.dropped_flow, s.dropped_by_fault, s.rejects_sent
    );
    println!(
        "overload: {} queue overflow, {} kernel drops, {} watchdog trips ({} passed, {} dropped, {} late discarded), {} send errors",
        s.queue_overflow,
        s.kernel_drops,
        s.watchdog_trips,
        s.watchdog_passed,
        s.watchdog_dropped,
        s.late_discarded,
        s.send_errors
    );
    println!(
        "fragments {} ({} datagrams reassembled and inspected whole, {} dropped unreassembled)",
        s.fragments, s.reassembled, s.fragments_dropped
    );
    println!(
        "alerts {}, module faults {}, would drop (IDS) {}",
        s.alerts, s.module_faults, s.would_drop
    );
}

/// Reads a bundle and loads the variant of each module this engine serves;
/// refusals are printed, and a bundle with nothing loadable is an error.
fn load_bundle_file(bundle: &Path) -> anyhow::Result<LoadedBundle> {
    let bundle_file = Bundle::read(bundle)?;
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
    Ok(loaded)
}
