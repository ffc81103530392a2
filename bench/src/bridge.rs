//! `sandgate-bench --bridge`: the live inline bridge on veth pairs in
//! network namespaces (needs root), the topology of `tests/tests/live.rs`
//! (`sandgate_tests::netns`): client ⇄ gw (bridge) ⇄ server, gw ⇄ update.
//!
//! For 1 and 2 workers, without inspection (no modules: decode, flow
//! pinning, queues, forwarding) and with the example rules:
//! - forwarding throughput: one client thread sends UDP datagrams (64 B and
//!   1400 B payloads) to the server as fast as it can for `--seconds`; the
//!   server counts what arrives. This is also the overload figure: the
//!   sender offers more than the bridge forwards, and the rows say where
//!   the difference was counted (worker queue overflow, kernel socket
//!   drops on the bridge's ingress, or before the bridge);
//! - latency: sequential UDP echo round trips of 64 B through the bridge
//!   (p50/p99), against the same echo over one veth link without the bridge
//!   (gw ⇄ update), so the difference is what the bridge adds per round
//!   trip (two crossings).
//!
//! Writes its own section of BENCHMARKS.md (markers `sandgate-bench-bridge`).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use sandgate_host::live::{AlertSink, Bridge, Config, LiveStats, Mode};
use sandgate_runtime::{Engine, LoadedModule};
use sandgate_tests::netns::{Netns, Topology, UdpEcho, BRIDGE_A, BRIDGE_B, SERVER_IP, UPDATE_IP};

use super::{render, row, Row};

const BLAST_PORT: u16 = 9;
const ECHO_PORT: u16 = 7;
/// Ethernet + IPv4 + UDP headers, for Mbit/s of whole frames.
const HEADERS: usize = 14 + 20 + 8;
const ROUND_TRIPS: usize = 3000;
/// Source ports of the throughput sender.
const FLOWS: usize = 8;

const BEGIN: &str = "<!-- sandgate-bench-bridge:begin -->";
const END: &str = "<!-- sandgate-bench-bridge:end -->";

/// Runs the bridge rows, prints them and, with `write`, replaces the
/// bridge section of that file.
pub fn main(engine: &Engine, seconds: f64, write: Option<&Path>) -> Result<()> {
    if libc_geteuid() != 0 {
        return Err(anyhow!("--bridge builds network namespaces and needs root"));
    }
    let rules = example_rules(engine)?;
    let topo = Topology::new("bench").context("namespaces")?;
    let _echo = UdpEcho::start(&topo.server, SocketAddr::from((SERVER_IP, ECHO_PORT)))?;
    let _direct_echo = UdpEcho::start(&topo.update, SocketAddr::from((UPDATE_IP, ECHO_PORT)))?;
    let mut rows = Vec::new();

    let direct = round_trips(&topo.gw, SocketAddr::from((UPDATE_IP, ECHO_PORT)))?;
    rows.push(row(
        "UDP echo 64 B, one veth link, no bridge",
        format!("p50 {:.1} µs, p99 {:.1} µs", direct.0, direct.1),
    ));

    for workers in [1, 2] {
        for (label, modules) in [
            ("no inspection", Vec::new()),
            ("example rules", vec![rules.clone()]),
        ] {
            let name = format!("bridge, {workers} worker(s), {label}");
            let mut cfg = Config::new(Mode::Inline, &[BRIDGE_A, BRIDGE_B]);
            cfg.workers = Some(workers);
            let sink: AlertSink = Arc::new(|_| {});
            let handle = topo.gw.run(move || Bridge::start(&cfg, modules, sink))??;
            let (p50, p99) = round_trips(&topo.client, SocketAddr::from((SERVER_IP, ECHO_PORT)))?;
            rows.push(Row {
                name: format!("{name}: UDP echo 64 B"),
                value: format!("p50 {p50:.1} µs, p99 {p99:.1} µs"),
                baseline: format!("no bridge p50 {:.1} µs", direct.0),
                ratio: format!("+{:.1} µs p50", p50 - direct.0),
            });
            for payload in [64usize, 1400] {
                let before = handle.stats();
                let blast = blast(&topo, payload, seconds)?;
                let after = handle.stats();
                let forwarded = after.forwarded - before.forwarded;
                let bits = (forwarded * ((payload + HEADERS) as u64) * 8) as f64;
                rows.push(row(
                    format!("{name}: UDP {payload} B forwarded"),
                    format!(
                        "{:.0} packets/s, {:.0} Mbit/s (offered {:.0} packets/s)",
                        forwarded as f64 / blast.secs,
                        bits / blast.secs / 1e6,
                        blast.sent as f64 / blast.secs
                    ),
                ));
                rows.push(row(
                    format!("{name}: UDP {payload} B lost"),
                    losses(&blast, &before, &after),
                ));
            }
            handle.stop();
        }
    }
    let table = render(&rows);
    print!("{table}");
    if let Some(path) = write {
        crate::write_section(path, &table, BEGIN, END)?;
        println!("updated {}", path.display());
    }
    Ok(())
}

fn libc_geteuid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() }
}

fn example_rules(engine: &Engine) -> Result<LoadedModule> {
    let path = super::repo_root().join("patterns/examples/example.rules");
    let report = sandgate_tests::build_bundle(&[path])?;
    Ok(sandgate_tests::load_all(engine, &report.bundle)?.remove(0))
}

/// p50 and p99 of `ROUND_TRIPS` sequential UDP echoes from `ns`, in µs.
fn round_trips(ns: &Netns, to: SocketAddr) -> Result<(f64, f64)> {
    let mut rtts = ns.run(move || -> Result<Vec<f64>> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(to)?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        let mut buf = [0u8; 64];
        let mut out = Vec::with_capacity(ROUND_TRIPS);
        for i in 0..ROUND_TRIPS + 100 {
            let t = Instant::now();
            s.send(&[i as u8; 64])?;
            s.recv(&mut buf)?;
            // The first 100 warm up ARP caches, flows and instances.
            if i >= 100 {
                out.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        Ok(out)
    })??;
    rtts.sort_by(f64::total_cmp);
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q) as usize];
    Ok((at(0.50), at(0.99)))
}

struct Blast {
    sent: u64,
    received: u64,
    secs: f64,
}

/// One client thread sends `payload`-byte datagrams for `seconds` from
/// `FLOWS` source ports (so 2 workers share the load); the server counts
/// arrivals (and keeps counting for 300 ms after).
fn blast(topo: &Topology, payload: usize, seconds: f64) -> Result<Blast> {
    let receiver = topo
        .server
        .run(|| UdpSocket::bind(SocketAddr::from((SERVER_IP, BLAST_PORT))))??;
    receiver.set_read_timeout(Some(Duration::from_millis(50)))?;
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let counter = {
        let (received, done) = (received.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                if receiver.recv(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let (sent, secs) = topo.client.run(move || -> Result<(u64, f64)> {
        let mut sockets = Vec::new();
        for _ in 0..FLOWS {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.connect(SocketAddr::from((SERVER_IP, BLAST_PORT)))?;
            sockets.push(s);
        }
        let data = vec![0x5a; payload];
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed().as_secs_f64() < seconds {
            for s in &sockets {
                for _ in 0..8 {
                    if s.send(&data).is_ok() {
                        sent += 1;
                    }
                }
            }
        }
        Ok((sent, start.elapsed().as_secs_f64()))
    })??;
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    let _ = counter.join();
    Ok(Blast {
        sent,
        received: received.load(Ordering::Relaxed),
        secs,
    })
}

/// Offered minus forwarded, and where the bridge counted it.
fn losses(b: &Blast, before: &LiveStats, after: &LiveStats) -> String {
    let lost = b.sent.saturating_sub(b.received);
    let overflow = after.queue_overflow - before.queue_overflow;
    let kernel = after.kernel_drops - before.kernel_drops;
    let received = after.received - before.received;
    let before_bridge = b.sent.saturating_sub(received + kernel);
    let after_bridge = lost.saturating_sub(overflow + kernel + before_bridge);
    format!(
        "{lost} of {} sent ({:.1}%): queue overflow {overflow}, kernel (bridge socket) {kernel}, \
         before the bridge {before_bridge}, after it (receiver) {after_bridge}",
        b.sent,
        lost as f64 * 100.0 / b.sent.max(1) as f64
    )
}
