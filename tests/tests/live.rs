//! The live data plane on real interfaces: network namespaces with veth
//! pairs (client ⇄ gw ⇄ server, gw ⇄ update; `sandgate_tests::netns`), the
//! bridge running in the gw namespace through pnet, real TCP/HTTP/UDP
//! traffic from the client namespace. Clean traffic passes byte for byte,
//! a drop rule blocks its flow and alerts, a reject rule resets the
//! connection, a faulting module under fail-open passes and under
//! fail-closed blocks forwarded traffic while bypass and management
//! traffic still flow. The `cli_*` tests run the `sandgate run` binary
//! itself in the gw namespace (`ip netns exec`), with `curl` as the client
//! and the update server in the update namespace: updates changing the
//! rules of the running bridge, rollback in every worker, SIGHUP reloads,
//! fail-closed while the fix still downloads, errors exiting 2. The last
//! tests drive the data plane in memory to prove what real traffic cannot
//! time reliably: per-flow order, queue overflow accounting, the watchdog
//! and fragment reassembly.
//!
//! These tests need root (CI runs as root) and fail, not skip, without it.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sandgate_host::capture::LinkType;
use sandgate_host::decode::decode;
use sandgate_host::eve::{AlertAction, AlertRecord};
use sandgate_host::live::config::BypassEntry;
use sandgate_host::live::{
    AlertSink, Bridge, BridgeHandle, Config, LiveStats, MemoryPort, Mode, Port, Side,
};
use sandgate_host::synth::{udp_frame, IpPair, SynthCapture};
use sandgate_host::update::status::Status;
use sandgate_patterns::bundle::Bundle;
use sandgate_patterns::sign::{self, PrivateKey};
use sandgate_runtime::testkit::{self, InspectBody, IpsOptions};
use sandgate_runtime::{Engine, EngineConfig, FailPolicy, LoadedModule};
use sandgate_tests::netns::{
    Netns, TcpServer, Topology, UdpEcho, BRIDGE_A, BRIDGE_B, SERVER_IP, UPDATE_IP,
};
use sandgate_tests::update_server::{self, sandgate_binary, UpdateServer};
use sandgate_tests::{build_rules_text, load_all};

const RULES: &str = r#"
drop tcp any any -> any 8080 (msg:"LIVE forbidden path"; flow:to_server,established; content:"GET /forbidden"; sid:9100001; rev:1;)
reject tcp any any -> any 8080 (msg:"LIVE rejected path"; flow:to_server,established; content:"GET /reject-me"; sid:9100002; rev:1;)
reject udp any any -> any 5353 (msg:"LIVE rejected datagram"; content:"REJECTME"; sid:9100003; rev:1;)
alert tcp any any -> any 8080 (msg:"LIVE hello"; flow:to_server,established; content:"GET /hello"; sid:9100004; rev:1;)
"#;

const HTTP_PORT: u16 = 8080;
const BYPASS_PORT: u16 = 2222;
const UDP_PORT: u16 = 5353;
const UPDATE_PORT: u16 = 8443;

struct Shared {
    engine: Engine,
    rules: LoadedModule,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let engine = sandgate_tests::engine();
        let report = build_rules_text(RULES).expect("live rules compile");
        assert_eq!(report.rules_compiled, 4, "{:?}", report.skipped);
        let rules = load_all(&engine, &report.bundle)
            .expect("rules load")
            .remove(0);
        Shared { engine, rules }
    })
}

/// A module that traps on every call.
fn faulting() -> LoadedModule {
    let bytes = testkit::ips_component(&IpsOptions::inspect(InspectBody::Unreachable))
        .expect("testkit component");
    shared()
        .engine
        .load("faulting", &bytes)
        .expect("faulting module loads")
}

/// The body every HTTP response carries: 256 KiB that no rule matches.
fn body() -> Vec<u8> {
    (0..256 * 1024u32)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[(i % 36) as usize])
        .collect()
}

fn http_response() -> Vec<u8> {
    let body = body();
    let mut r = format!(
        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(&body);
    r
}

/// The bridge config of these tests: 2 workers, the update server and
/// the bypass port.
fn inline_config(policy: FailPolicy) -> Config {
    let mut cfg = Config::new(Mode::Inline, &[BRIDGE_A, BRIDGE_B]);
    cfg.workers = Some(2);
    cfg.policy.default = policy;
    cfg.update_server = Some(format!("https://{UPDATE_IP}:{UPDATE_PORT}/"));
    cfg.bypass.push(BypassEntry {
        net: None,
        port: Some(BYPASS_PORT),
    });
    cfg
}

type Alerts = Arc<Mutex<Vec<AlertRecord>>>;

fn sink() -> (AlertSink, Alerts) {
    let alerts: Alerts = Arc::default();
    let a = alerts.clone();
    let sink: AlertSink = Arc::new(move |r: &AlertRecord| {
        a.lock().unwrap_or_else(|e| e.into_inner()).push(r.clone());
    });
    (sink, alerts)
}

/// Starts the bridge inside the gw namespace.
fn start_bridge(
    topo: &Topology,
    cfg: Config,
    modules: Vec<LoadedModule>,
) -> (BridgeHandle, Alerts) {
    let (sink, alerts) = sink();
    let handle = topo
        .gw
        .run(move || Bridge::start(&cfg, modules, sink))
        .expect("enter gw namespace")
        .expect("bridge starts");
    (handle, alerts)
}

/// Servers in the server namespace: HTTP on 8080 and on the bypass port,
/// UDP echo on 5353.
fn servers(topo: &Topology) -> (TcpServer, TcpServer, UdpEcho) {
    let http = TcpServer::start(
        &topo.server,
        SocketAddr::from((SERVER_IP, HTTP_PORT)),
        |_| http_response(),
    )
    .expect("http server");
    let bypass = TcpServer::start(
        &topo.server,
        SocketAddr::from((SERVER_IP, BYPASS_PORT)),
        |_| http_response(),
    )
    .expect("bypass server");
    let udp =
        UdpEcho::start(&topo.server, SocketAddr::from((SERVER_IP, UDP_PORT))).expect("udp echo");
    (http, bypass, udp)
}

/// What a client saw: the bytes received and how the read ended.
#[derive(Debug)]
struct Fetch {
    bytes: Vec<u8>,
    end: Result<(), ErrorKind>,
    elapsed: Duration,
}

/// `GET path` from namespace `ns` to `addr`, reading until EOF, an error
/// or `timeout` without data.
fn http_get(ns: &Netns, addr: SocketAddr, path: &str, timeout: Duration) -> Fetch {
    let request = format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n");
    ns.run(move || {
        let started = Instant::now();
        let mut s = match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => s,
            Err(e) => {
                return Fetch {
                    bytes: Vec::new(),
                    end: Err(e.kind()),
                    elapsed: started.elapsed(),
                }
            }
        };
        let _ = s.set_read_timeout(Some(timeout));
        let mut bytes = Vec::new();
        let end = s
            .write_all(request.as_bytes())
            .map_err(|e| e.kind())
            .and_then(|()| {
                let mut buf = [0u8; 16384];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(n) => bytes.extend_from_slice(&buf[..n]),
                        Err(e) => return Err(e.kind()),
                    }
                }
            });
        Fetch {
            bytes,
            end,
            elapsed: started.elapsed(),
        }
    })
    .expect("enter namespace")
}

fn server(port: u16) -> SocketAddr {
    SocketAddr::from((SERVER_IP, port))
}

fn sids(alerts: &Alerts) -> Vec<(u32, AlertAction)> {
    alerts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|a| (a.signature_id, a.action))
        .collect()
}

/// A UDP exchange from the client namespace: the reply, or the error kind.
fn udp_exchange(ns: &Netns, payload: &'static [u8]) -> Result<Vec<u8>, ErrorKind> {
    ns.run(move || {
        let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.kind())?;
        s.connect(server(UDP_PORT)).map_err(|e| e.kind())?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.kind())?;
        s.send(payload).map_err(|e| e.kind())?;
        let mut buf = [0u8; 2048];
        let n = s.recv(&mut buf).map_err(|e| e.kind())?;
        Ok(buf[..n].to_vec())
    })
    .expect("enter namespace")
}

#[test]
fn clean_traffic_passes_byte_for_byte_and_alerts_pass() {
    let topo = Topology::new("clean").expect("namespaces");
    let _servers = servers(&topo);
    let (bridge, alerts) = start_bridge(
        &topo,
        inline_config(FailPolicy::FailOpen),
        vec![shared().rules.clone()],
    );
    let fetch = http_get(
        &topo.client,
        server(HTTP_PORT),
        "/hello",
        Duration::from_secs(5),
    );
    assert_eq!(fetch.end, Ok(()), "{fetch:?}");
    assert!(
        fetch.bytes == http_response(),
        "response differs: {} bytes, wanted {}",
        fetch.bytes.len(),
        http_response().len()
    );
    let curl = topo
        .client
        .command("curl")
        .args(["-s", "--max-time", "10", "-o", "-"])
        .arg(format!("http://{SERVER_IP}:{HTTP_PORT}/index"))
        .output()
        .expect("curl runs (install curl)");
    assert!(curl.status.success(), "curl: {curl:?}");
    assert!(curl.stdout == body(), "curl body differs");
    for i in 0..20u8 {
        let payload: &'static [u8] = Box::leak(vec![b'u', i, 1, 2, 3].into_boxed_slice());
        assert_eq!(udp_exchange(&topo.client, payload), Ok(payload.to_vec()));
    }
    let stats = bridge.stop();
    assert_eq!(sids(&alerts), vec![(9100004, AlertAction::Allowed)]);
    assert!(stats.inspected > 200, "{stats:?}");
    assert_eq!(
        stats.dropped_by_rule + stats.dropped_by_fault,
        0,
        "{stats:?}"
    );
    assert_eq!(stats.queue_overflow, 0, "{stats:?}");
    assert!(stats.not_ip > 0, "ARP crossed the bridge: {stats:?}");
}

#[test]
fn drop_rule_blocks_the_flow_and_alerts_blocked() {
    let topo = Topology::new("drop").expect("namespaces");
    let (http, _bypass, _udp) = servers(&topo);
    let (bridge, alerts) = start_bridge(
        &topo,
        inline_config(FailPolicy::FailOpen),
        vec![shared().rules.clone()],
    );
    let blocked = http_get(
        &topo.client,
        server(HTTP_PORT),
        "/forbidden",
        Duration::from_secs(2),
    );
    assert!(blocked.bytes.is_empty(), "{blocked:?}");
    assert!(
        matches!(
            blocked.end,
            Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)
        ),
        "the dropped request gets no answer: {blocked:?}"
    );
    let seen = String::from_utf8_lossy(&http.received()).into_owned();
    assert!(
        !seen.contains("/forbidden"),
        "the dropped segment (and its retransmissions) never reach the server: {seen:?}"
    );
    // The bridge keeps forwarding other flows.
    let after = http_get(
        &topo.client,
        server(HTTP_PORT),
        "/index",
        Duration::from_secs(5),
    );
    assert_eq!(after.end, Ok(()));
    assert!(after.bytes == http_response());
    let stats = bridge.stop();
    assert_eq!(sids(&alerts), vec![(9100001, AlertAction::Blocked)]);
    assert_eq!(stats.dropped_by_rule, 1, "{stats:?}");
    assert!(
        stats.dropped_flow >= 1,
        "the client's retransmissions are dropped with the flow: {stats:?}"
    );
}

#[test]
fn reject_rule_resets_tcp_and_answers_udp_with_unreachable() {
    let topo = Topology::new("reject").expect("namespaces");
    let (http, _bypass, _udp) = servers(&topo);
    let (bridge, alerts) = start_bridge(
        &topo,
        inline_config(FailPolicy::FailOpen),
        vec![shared().rules.clone()],
    );
    let rejected = http_get(
        &topo.client,
        server(HTTP_PORT),
        "/reject-me",
        Duration::from_secs(5),
    );
    assert!(rejected.bytes.is_empty(), "{rejected:?}");
    assert_eq!(
        rejected.end,
        Err(ErrorKind::ConnectionReset),
        "{rejected:?}"
    );
    assert!(
        rejected.elapsed < Duration::from_secs(2),
        "reset, not a timeout: {rejected:?}"
    );
    let seen = String::from_utf8_lossy(&http.received()).into_owned();
    assert!(
        !seen.contains("/reject-me"),
        "the rejected segment never reaches the server: {seen:?}"
    );
    assert_eq!(
        udp_exchange(&topo.client, b"REJECTME please"),
        Err(ErrorKind::ConnectionRefused),
        "ICMP port unreachable reaches the client"
    );
    assert_eq!(udp_exchange(&topo.client, b"fine"), Ok(b"fine".to_vec()));
    let stats = bridge.stop();
    let mut got = sids(&alerts);
    got.sort_by_key(|a| a.0);
    assert_eq!(
        got,
        vec![
            (9100002, AlertAction::Blocked),
            (9100003, AlertAction::Blocked)
        ]
    );
    assert_eq!(
        stats.rejects_sent, 3,
        "a reset each way and one unreachable: {stats:?}"
    );
}

#[test]
fn faulting_module_fail_open_passes_traffic() {
    let topo = Topology::new("fopen").expect("namespaces");
    let _servers = servers(&topo);
    let (bridge, _alerts) =
        start_bridge(&topo, inline_config(FailPolicy::FailOpen), vec![faulting()]);
    let fetch = http_get(
        &topo.client,
        server(HTTP_PORT),
        "/index",
        Duration::from_secs(5),
    );
    assert_eq!(fetch.end, Ok(()));
    assert!(fetch.bytes == http_response());
    let stats = bridge.stop();
    assert!(stats.module_faults > 0, "{stats:?}");
    assert_eq!(stats.dropped_by_fault, 0, "{stats:?}");
}

#[test]
fn faulting_module_fail_closed_blocks_forwarded_traffic_not_management_and_reloads() {
    let topo = Topology::new("fclosed").expect("namespaces");
    let _servers = servers(&topo);
    let _update = TcpServer::start(
        &topo.update,
        SocketAddr::from((UPDATE_IP, UPDATE_PORT)),
        |_| b"update index".to_vec(),
    )
    .expect("update server");
    let (mut bridge, _alerts) = start_bridge(
        &topo,
        inline_config(FailPolicy::FailClosed),
        vec![faulting()],
    );
    let blocked = http_get(
        &topo.client,
        server(HTTP_PORT),
        "/index",
        Duration::from_secs(2),
    );
    assert!(blocked.bytes.is_empty(), "{blocked:?}");
    assert!(blocked.end.is_err(), "{blocked:?}");
    // The bypass list is forwarded uninspected.
    let bypassed = http_get(
        &topo.client,
        server(BYPASS_PORT),
        "/index",
        Duration::from_secs(5),
    );
    assert_eq!(bypassed.end, Ok(()));
    assert!(bypassed.bytes == http_response());
    // The gateway still reaches its update server.
    let update = http_get(
        &topo.gw,
        SocketAddr::from((UPDATE_IP, UPDATE_PORT)),
        "/index",
        Duration::from_secs(5),
    );
    assert_eq!(update.end, Ok(()));
    assert_eq!(update.bytes, b"update index");
    let stats = bridge.stats();
    assert!(stats.dropped_by_fault > 0, "{stats:?}");
    assert!(stats.bypassed > 0, "{stats:?}");
    // SIGHUP-style reload to fail-open: traffic flows, nothing restarted.
    bridge
        .reload(&inline_config(FailPolicy::FailOpen))
        .expect("reload");
    let reloaded = http_get(
        &topo.client,
        server(HTTP_PORT),
        "/index",
        Duration::from_secs(5),
    );
    assert_eq!(reloaded.end, Ok(()));
    assert!(reloaded.bytes == http_response());
    let mut changed = inline_config(FailPolicy::FailOpen);
    changed.workers = Some(1);
    let refused = bridge.reload(&changed).unwrap_err().to_string();
    assert!(refused.contains("workers"), "{refused}");
    bridge.stop();
}

#[test]
fn ids_mode_alerts_without_blocking() {
    let topo = Topology::new("ids").expect("namespaces");
    let _servers = servers(&topo);
    // A bridge without modules carries the traffic; the IDS listens on
    // the server's interface.
    let (bridge, _) = start_bridge(&topo, inline_config(FailPolicy::FailOpen), Vec::new());
    let mut cfg = Config::new(Mode::Ids, &["s0"]);
    cfg.workers = Some(1);
    let (sink, alerts) = sink();
    let modules = vec![shared().rules.clone()];
    let ids = topo
        .server
        .run(move || Bridge::start(&cfg, modules, sink))
        .expect("enter server namespace")
        .expect("ids starts");
    let fetch = http_get(
        &topo.client,
        server(HTTP_PORT),
        "/forbidden",
        Duration::from_secs(5),
    );
    assert_eq!(fetch.end, Ok(()), "an IDS never blocks");
    assert!(fetch.bytes == http_response());
    std::thread::sleep(Duration::from_millis(200));
    let stats = ids.stop();
    bridge.stop();
    assert_eq!(sids(&alerts), vec![(9100001, AlertAction::Allowed)]);
    assert_eq!(stats.would_drop, 1, "{stats:?}");
    assert_eq!(stats.forwarded, 0, "{stats:?}");
}

#[test]
fn a_missing_interface_is_named_with_the_ones_present() {
    let cfg = Config::new(Mode::Ids, &["sgt-nosuch0"]);
    let (sink, _) = sink();
    let err = Bridge::start(&cfg, Vec::new(), sink)
        .err()
        .expect("no such interface")
        .to_string();
    assert!(
        err.starts_with("interface sgt-nosuch0 not found (present: ") && err.contains("lo"),
        "{err}"
    );
}

// In-memory tests: the same data plane fed frames directly.

/// Frames of `flows` interleaved TCP sessions, each with `segments` data
/// segments numbered in their payload.
fn interleaved(flows: u16, segments: u32) -> Vec<Vec<u8>> {
    let mut per_flow = Vec::new();
    for f in 0..flows {
        let mut cap = SynthCapture::new(0);
        let mut s = cap.tcp_v4([10, 1, 0, 1], 40000 + f, [10, 2, 0, 1], 80);
        s.handshake();
        for i in 0..segments {
            s.client_sends(format!("flow {f} segment {i:05}").as_bytes());
        }
        per_flow.push(cap.into_frames());
    }
    let mut out = Vec::new();
    for i in 0..per_flow[0].len() {
        for f in &per_flow {
            out.push(f[i].1.clone());
        }
    }
    out
}

fn memory_bridge(
    cfg: &Config,
    modules: Vec<LoadedModule>,
) -> (BridgeHandle, Arc<MemoryPort>, Arc<MemoryPort>) {
    let a = Arc::new(MemoryPort::default());
    let b = Arc::new(MemoryPort::default());
    let ports: [Arc<dyn Port>; 2] = [a.clone(), b.clone()];
    let (sink, _) = sink();
    let h = Bridge::with_ports(cfg, modules, Some(ports), sink).expect("data plane starts");
    (h, a, b)
}

fn wait_for(handle: &BridgeHandle, done: impl Fn(&LiveStats) -> bool) -> LiveStats {
    let started = Instant::now();
    loop {
        let s = handle.stats();
        if done(&s) || started.elapsed() > Duration::from_secs(20) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn packets_of_a_flow_leave_in_order_across_workers() {
    let mut cfg = Config::new(Mode::Inline, &["a", "b"]);
    cfg.workers = Some(2);
    cfg.limits.batch = 8;
    let (h, _a, b) = memory_bridge(&cfg, vec![shared().rules.clone()]);
    let frames = interleaved(16, 40);
    for f in &frames {
        h.ingress(Side::A, f);
    }
    let stats = wait_for(&h, |s| s.forwarded == frames.len() as u64);
    assert_eq!(stats.forwarded, frames.len() as u64, "{stats:?}");
    let out = b.take();
    // Per flow (source port), the output order is the input order.
    let key = |f: &Vec<u8>| {
        decode(LinkType::ETHERNET, f)
            .map(|d| d.src_port)
            .unwrap_or_default()
    };
    for port in 40000..40016u16 {
        let sent: Vec<&Vec<u8>> = frames.iter().filter(|f| key(f) == port).collect();
        let got: Vec<&Vec<u8>> = out.iter().filter(|f| key(f) == port).collect();
        assert!(sent == got, "flow {port} reordered or altered");
    }
    h.stop();
}

/// A module whose every non-empty call loops until its (large) fuel runs
/// out: seconds of one worker.
fn stalling(engine: &Engine) -> LoadedModule {
    let opts = IpsOptions::inspect(InspectBody::Wat(
        "(if (i32.gt_u (local.get $n) (i32.const 0)) (then (loop $forever (br $forever))))".into(),
    ));
    let bytes = testkit::ips_component(&opts).expect("testkit component");
    engine.load("stalling", &bytes).expect("loads")
}

fn stall_engine() -> Engine {
    let mut config = EngineConfig::default();
    config.limits.fuel_per_packet = 3_000_000_000;
    config.limits.fuel_per_packet_max = 3_000_000_000;
    config.limits.fuel_per_call_max = 3_000_000_000;
    Engine::new(config).expect("engine")
}

#[test]
fn stalled_worker_falls_back_to_the_policy_and_overflow_is_counted() {
    let engine = stall_engine();
    let frames = interleaved(1, 30);
    // (default, the stalling module's own policy): a stalled worker's
    // packets are dropped when either is fail-closed.
    for (default, own) in [
        (FailPolicy::FailOpen, None),
        (FailPolicy::FailClosed, None),
        (FailPolicy::FailOpen, Some(FailPolicy::FailClosed)),
    ] {
        let policy = own.unwrap_or(default);
        let mut cfg = Config::new(Mode::Inline, &["a", "b"]);
        cfg.workers = Some(1);
        cfg.policy.default = default;
        if let Some(p) = own {
            cfg.policy.modules.insert("stalling".into(), p);
        }
        cfg.limits.queue = 4;
        cfg.limits.watchdog_ms = 300;
        let (h, _a, b) = memory_bridge(&cfg, vec![stalling(&engine)]);
        // The first packet stalls the worker; the queue fills (4) and
        // overflows before the watchdog's deadline.
        h.ingress(Side::A, &frames[0]);
        std::thread::sleep(Duration::from_millis(100));
        for f in &frames[1..11] {
            h.ingress(Side::A, f);
        }
        let s = h.stats();
        assert_eq!(s.queue_overflow, 6, "{policy:?}: 10 sent, 4 queued: {s:?}");
        let s = wait_for(&h, |s| s.watchdog_trips == 1);
        assert_eq!(s.watchdog_trips, 1, "{policy:?}: {s:?}");
        // Stalled: the 4 queued and every new packet get the policy.
        for f in &frames[11..21] {
            h.ingress(Side::A, f);
        }
        let s = wait_for(&h, |s| s.watchdog_passed + s.watchdog_dropped == 14);
        match policy {
            FailPolicy::FailOpen => {
                assert_eq!(s.watchdog_passed, 14, "{s:?}");
                assert_eq!(b.take().len(), 14);
            }
            FailPolicy::FailClosed => {
                assert_eq!(s.watchdog_dropped, 14, "{s:?}");
                assert!(b.take().is_empty());
            }
        }
        // The stalled batch ends (out of fuel) and is discarded, not sent
        // after the packets that overtook it.
        let s = wait_for(&h, |s| s.late_discarded == 1);
        assert_eq!(s.late_discarded, 1, "{policy:?}: {s:?}");
        assert!(b.take().is_empty(), "{policy:?}: nothing sent late");
        let s = h.stop();
        assert_eq!(
            s.received,
            s.forwarded + s.queue_overflow + s.watchdog_dropped + s.late_discarded,
            "{policy:?}: every packet accounted for: {s:?}"
        );
    }
}

// ---------------------------------------------------------------------
// The `sandgate run` binary in the gw namespace (`ip netns exec`).
// ---------------------------------------------------------------------

/// A `sandgate run` process in a namespace: what it printed on stdout
/// (alerts, final counters) and stderr (log). Killed on drop.
struct Gateway {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

fn collect(r: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            l.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    lines
}

impl Gateway {
    fn spawn(ns: &Netns, args: &[&str]) -> Gateway {
        let mut child = ns
            .command(&sandgate_binary().display().to_string())
            .arg("run")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sandgate starts");
        let out = collect(child.stdout.take().expect("stdout"));
        let err = collect(child.stderr.take().expect("stderr"));
        Gateway { child, out, err }
    }

    fn lines(v: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        v.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn tail(&self) -> String {
        let err = Self::lines(&self.err);
        let out = Self::lines(&self.out);
        format!(
            "stderr tail:\n{}\nstdout tail:\n{}",
            err[err.len().saturating_sub(25)..].join("\n"),
            out[out.len().saturating_sub(10)..].join("\n")
        )
    }

    /// Waits for a line on stdout (`stdout`) or stderr containing every
    /// one of `needles`; panics with the output's tail after `timeout`.
    fn wait(&self, stdout: bool, needles: &[&str], timeout: Duration) -> String {
        let start = Instant::now();
        let src = if stdout { &self.out } else { &self.err };
        loop {
            if let Some(l) = Self::lines(src)
                .into_iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return l;
            }
            assert!(
                start.elapsed() < timeout,
                "no line with {needles:?} on {} within {timeout:?}\n{}",
                if stdout { "stdout" } else { "stderr" },
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn count(&self, stdout: bool, needle: &str) -> usize {
        let src = if stdout { &self.out } else { &self.err };
        Self::lines(src)
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn signal(&self, sig: i32) {
        assert!(
            self.child.id() > 0 && unsafe { libc::kill(self.child.id() as i32, sig) } == 0,
            "signal {sig} to sandgate"
        );
    }

    /// SIGTERM, then the exit status and everything printed on stdout.
    fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sandgate did not stop on SIGTERM\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader threads see EOF right after the exit.
        std::thread::sleep(Duration::from_millis(100));
        (status, Self::lines(&self.out))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl` from the client namespace to the HTTP server through the
/// bridge: the body, or curl's error message.
fn curl(ns: &Netns, path: &str, max_secs: u32) -> (Result<Vec<u8>, String>, Duration) {
    let started = Instant::now();
    let out = ns
        .command("curl")
        .args([
            "-sS",
            "--max-time",
            &max_secs.to_string(),
            &format!("http://{SERVER_IP}:{HTTP_PORT}{path}"),
        ])
        .output()
        .expect("curl runs (the CLI tests need curl installed)");
    let elapsed = started.elapsed();
    if out.status.success() {
        (Ok(out.stdout), elapsed)
    } else {
        (
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            elapsed,
        )
    }
}

fn assert_passes(ns: &Netns, path: &str, what: &str) {
    let (got, _) = curl(ns, path, 5);
    match got {
        Ok(b) => assert!(b == body(), "{what}: body differs ({} bytes)", b.len()),
        Err(e) => panic!("{what}: curl {path} failed: {e}"),
    }
}

fn assert_blocked(ns: &Netns, path: &str, what: &str) {
    let (got, _) = curl(ns, path, 2);
    match got {
        Ok(b) => panic!("{what}: curl {path} got {} bytes through", b.len()),
        Err(e) => assert!(e.contains("(28)"), "{what}: expected a timeout, got {e}"),
    }
}

/// A signed bundle of the rules `text` (one module), with test vectors.
fn rules_bundle(version: u64, text: &str, key: &PrivateKey) -> Bundle {
    let report = build_rules_text(text).expect("rules compile");
    let module = (
        report.bundle.manifest.modules[0].clone(),
        report.bundle.modules[0].clone(),
    );
    update_server::bundle(version, vec![module], Some(key), &[])
}

/// The configuration file of the CLI tests: the bridge between ga and gb,
/// updates from the update namespace over gw's management link.
fn cli_config(
    dir: &Path,
    key: &Path,
    policy: &str,
    workers: usize,
    bypass_ports: &[u16],
) -> String {
    let bypass: Vec<String> = bypass_ports
        .iter()
        .map(|p| format!("  - {{ port: {p} }}\n"))
        .collect();
    format!(
        "mode: inline\ninterfaces: [{BRIDGE_A}, {BRIDGE_B}]\nworkers: {workers}\n\
         update_server: http://{UPDATE_IP}:{UPDATE_PORT}/\nvendor_key: {}\n\
         appliance_id: cli-test\nstate: {}\npolicy: {{ default: {policy} }}\n\
         bypass:\n{}",
        key.display(),
        dir.join("state").display(),
        bypass.concat()
    )
}

struct CliFixture {
    topo: Topology,
    dir: tempfile::TempDir,
    key: PrivateKey,
    key_path: PathBuf,
    updates: UpdateServer,
}

impl CliFixture {
    fn new(tag: &str) -> CliFixture {
        let topo = Topology::new(tag).expect("namespaces");
        let dir = tempfile::tempdir().expect("tempdir");
        let key = sign::generate_key().expect("key");
        let key_path = dir.path().join("vendor.pub.pem");
        sign::write_public_key(&key.verifying_key(), &key_path).expect("write key");
        let updates = topo
            .update
            .run(|| UpdateServer::start_at(SocketAddr::from((UPDATE_IP, UPDATE_PORT))))
            .expect("enter update namespace")
            .expect("update server");
        CliFixture {
            topo,
            dir,
            key,
            key_path,
            updates,
        }
    }

    fn write_config(&self, policy: &str, workers: usize, bypass: &[u16]) -> PathBuf {
        let path = self.dir.path().join("live.yaml");
        std::fs::write(
            &path,
            cli_config(self.dir.path(), &self.key_path, policy, workers, bypass),
        )
        .expect("write config");
        path
    }

    fn activated(&self, gw: &Gateway, version: u64) {
        gw.wait(
            false,
            &[
                "\"bundle_activated\"",
                &format!("\"bundle_version\":{version}"),
            ],
            Duration::from_secs(40),
        );
    }
}

const NEW_RULE: &str = "drop tcp any any -> any 8080 (msg:\"LIVE newly banned\"; flow:to_server,established; content:\"GET /newly-banned\"; sid:9100005; rev:1;)\n";

#[test]
fn cli_bridge_blocks_resets_takes_updates_and_reloads_on_sighup() {
    let f = CliFixture::new("cli");
    let (_http, _bypass, _udp) = servers(&f.topo);
    f.updates
        .publish(&rules_bundle(1, RULES, &f.key), &f.key, &["1.0.0"]);
    let config = f.write_config("fail-open", 2, &[BYPASS_PORT]);
    let config_arg = config.display().to_string();
    let gw = Gateway::spawn(
        &f.topo.gw,
        &[
            "--inline",
            BRIDGE_A,
            BRIDGE_B,
            "--config",
            &config_arg,
            "--poll-ms",
            "200",
        ],
    );
    gw.wait(
        false,
        &["inline bridge on ga <-> gb"],
        Duration::from_secs(30),
    );
    f.activated(&gw, 1);
    let client = &f.topo.client;

    assert_passes(client, "/hello", "clean HTTP");
    gw.wait(
        true,
        &["alert allowed [1:9100004:1]"],
        Duration::from_secs(5),
    );

    assert_blocked(client, "/forbidden", "drop rule");
    gw.wait(
        true,
        &["alert blocked [1:9100001:1]", "LIVE forbidden path"],
        Duration::from_secs(5),
    );

    let (got, elapsed) = curl(client, "/reject-me", 5);
    let err = got.expect_err("reject rule: the request must fail");
    assert!(err.contains("reset"), "reject rule: {err}");
    assert!(elapsed < Duration::from_secs(2), "reset took {elapsed:?}");
    gw.wait(
        true,
        &["alert blocked [1:9100002:1]"],
        Duration::from_secs(5),
    );

    // An update adds a drop rule; the same process starts enforcing it.
    assert_passes(client, "/newly-banned", "before the update");
    let v2 = format!("{RULES}{NEW_RULE}");
    f.updates
        .publish(&rules_bundle(2, &v2, &f.key), &f.key, &["1.0.0"]);
    f.activated(&gw, 2);
    assert_blocked(client, "/newly-banned", "rule added by the update");
    gw.wait(
        true,
        &["alert blocked [1:9100005:1]"],
        Duration::from_secs(5),
    );
    assert_eq!(gw.count(false, "inline bridge on"), 1, "not restarted");

    // SIGHUP: the HTTP port joins the bypass list; dropped paths pass.
    f.write_config("fail-open", 2, &[BYPASS_PORT, HTTP_PORT]);
    gw.signal(libc::SIGHUP);
    gw.wait(false, &["SIGHUP: reloaded"], Duration::from_secs(5));
    assert_passes(client, "/forbidden", "bypassed after SIGHUP");

    // A broken file is refused; the running configuration stays.
    std::fs::write(
        &config,
        format!("mode: inline\ninterfaces: [{BRIDGE_A}, {BRIDGE_B}]\nbogus_key: 1\n"),
    )
    .expect("write config");
    gw.signal(libc::SIGHUP);
    let refused = gw.wait(false, &["configuration refused"], Duration::from_secs(5));
    assert!(refused.contains("bogus_key"), "{refused}");
    assert_passes(
        client,
        "/forbidden",
        "still bypassed after a refused reload",
    );
    assert_passes(client, "/hello", "traffic after a refused reload");

    let (status, out) = gw.stop();
    assert!(status.success(), "exit {status:?}");
    let dropped = out
        .iter()
        .find(|l| l.starts_with("dropped: "))
        .unwrap_or_else(|| panic!("no counters printed: {out:?}"));
    let by_rule: u64 = dropped
        .trim_start_matches("dropped: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(by_rule >= 3, "{dropped}");
    assert!(out.iter().any(|l| l.contains("queue overflow")), "{out:?}");
}

#[test]
fn cli_fail_closed_faulting_module_blocks_traffic_but_the_fix_still_downloads() {
    let f = CliFixture::new("clifc");
    let (_http, _bypass, _udp) = servers(&f.topo);
    let v1 = update_server::bundle(
        1,
        vec![update_server::faults_later("faulty", "1", 20)],
        Some(&f.key),
        &[],
    );
    f.updates.publish(&v1, &f.key, &["1.0.0"]);
    // One worker: one instance of the module, so once it faults every
    // forwarded flow meets the fault.
    let config = f.write_config("fail-closed", 1, &[BYPASS_PORT]);
    let config_arg = config.display().to_string();
    // A shadow run with no traffic on the bridge still ends, so the
    // activation goes on.
    let gw = Gateway::spawn(
        &f.topo.gw,
        &[
            "--config",
            &config_arg,
            "--poll-ms",
            "200",
            "--shadow-secs",
            "0.5",
        ],
    );
    f.activated(&gw, 1);
    gw.wait(
        false,
        &["\"shadowed\"", "\"faulty\""],
        Duration::from_secs(1),
    );
    let client = &f.topo.client;
    // Its first batches are fine; after that every call traps and the
    // fail-closed policy drops what the bridge would forward.
    let start = Instant::now();
    loop {
        if curl(client, "/hello", 2).0.is_err() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the faulting module never blocked traffic\n{}",
            gw.tail()
        );
    }
    assert_blocked(client, "/hello", "fail-closed with a faulting module");
    // The bypass list is not inspected, so it is not blocked either.
    let bypassed = http_get(
        client,
        server(BYPASS_PORT),
        "/hello",
        Duration::from_secs(5),
    );
    assert_eq!(bypassed.bytes, http_response(), "bypass under fail-closed");

    // The gateway's own traffic to the update server is not bridged: the
    // fix downloads and activates, and forwarded traffic flows again.
    let fixed = update_server::bundle(
        2,
        vec![update_server::watch(
            "faulty",
            "2",
            b"never-in-this-traffic",
        )],
        Some(&f.key),
        &[],
    );
    let file = f.updates.publish(&fixed, &f.key, &["1.0.0"]);
    f.activated(&gw, 2);
    assert!(
        f.updates.gets().iter().any(|g| g.contains(&file)),
        "{:?}",
        f.updates.gets()
    );
    assert_passes(client, "/hello", "after the fix");
    let (status, out) = gw.stop();
    assert!(status.success(), "exit {status:?}");
    let dropped = out
        .iter()
        .find(|l| l.starts_with("dropped: "))
        .unwrap_or_else(|| panic!("no counters printed: {out:?}"));
    assert!(
        !dropped.contains(" 0 by fail-closed faults"),
        "fail-closed drops counted: {dropped}"
    );
}

#[test]
fn cli_standalone_bundle_alerts_to_stdout_and_eve_and_errors_name_the_input() {
    let topo = Topology::new("clisa").expect("namespaces");
    let (_http, _bypass, _udp) = servers(&topo);
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("rules.sgb");
    build_rules_text(RULES)
        .expect("rules compile")
        .bundle
        .write(&bundle)
        .expect("write bundle");
    let eve = dir.path().join("eve.json");
    let (b, e) = (bundle.display().to_string(), eve.display().to_string());
    let gw = Gateway::spawn(
        &topo.gw,
        &[
            "--inline",
            BRIDGE_A,
            BRIDGE_B,
            "--bundle",
            &b,
            "--eve",
            &e,
            "--workers",
            "1",
        ],
    );
    gw.wait(
        false,
        &["inline bridge on ga <-> gb"],
        Duration::from_secs(30),
    );
    assert_passes(&topo.client, "/hello", "clean HTTP");
    assert_blocked(&topo.client, "/forbidden", "drop rule");
    gw.wait(
        true,
        &["alert blocked [1:9100001:1]"],
        Duration::from_secs(5),
    );
    let (status, out) = gw.stop();
    assert!(status.success(), "exit {status:?}");
    assert!(out.iter().any(|l| l.starts_with("frames ")), "{out:?}");
    let eve_text = std::fs::read_to_string(&eve).expect("eve written");
    assert!(eve_text.contains("\"signature_id\":9100001"), "{eve_text}");
    assert!(eve_text.contains("\"signature_id\":9100004"), "{eve_text}");

    // Errors exit 2 and name the input.
    let fail = |args: &[&str]| {
        let out = std::process::Command::new(sandgate_binary())
            .arg("run")
            .args(args)
            .output()
            .expect("sandgate runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = fail(&["--ids", "nosuchif0", "--bundle", &b]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("interface nosuchif0 not found"), "{err}");
    let missing = dir.path().join("missing.sgb").display().to_string();
    let (code, err) = fail(&["--ids", "lo", "--bundle", &missing]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("missing.sgb"), "{err}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "mode: ids\ninterfaces: [lo]\nqueue_len: 5\n").expect("write");
    let (code, err) = fail(&["--config", &bad.display().to_string()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("bad.yaml") && err.contains("unknown field `queue_len`"),
        "{err}"
    );
}

/// `frame` (Ethernet + IPv4 without options) split into two IPv4
/// fragments at payload byte `at` (a multiple of 8).
fn fragment_v4(frame: &[u8], at: usize, id: u16) -> [Vec<u8>; 2] {
    let (eth, ip) = frame.split_at(14);
    let (hdr, payload) = ip.split_at(20);
    let piece = |data: &[u8], offset: usize, more: bool| {
        let mut h = hdr.to_vec();
        h[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let flags: u16 = if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&(flags | (offset / 8) as u16).to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let sum = h
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let folded = (sum & 0xffff) + (sum >> 16);
        let folded = (folded & 0xffff) + (folded >> 16);
        h[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
        let mut out = eth.to_vec();
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out
    };
    [
        piece(&payload[..at], 0, true),
        piece(&payload[at..], at, false),
    ]
}

/// `frame` (Ethernet + IPv6 without extension headers) split into two
/// IPv6 fragments at payload byte `at` (a multiple of 8).
fn fragment_v6(frame: &[u8], at: usize, id: u32) -> [Vec<u8>; 2] {
    let (eth, ip) = frame.split_at(14);
    let (hdr, payload) = ip.split_at(40);
    let next = hdr[6];
    let piece = |data: &[u8], offset: usize, more: bool| {
        let mut h = hdr.to_vec();
        h[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        h[6] = 44;
        let mut frag = vec![next, 0];
        frag.extend_from_slice(&((offset as u16) | u16::from(more)).to_be_bytes());
        frag.extend_from_slice(&id.to_be_bytes());
        let mut out = eth.to_vec();
        out.extend_from_slice(&h);
        out.extend_from_slice(&frag);
        out.extend_from_slice(data);
        out
    };
    [
        piece(&payload[..at], 0, true),
        piece(&payload[at..], at, false),
    ]
}

#[test]
fn fragments_are_reassembled_before_inspection_and_forwarded_as_received() {
    let mut cfg = Config::new(Mode::Inline, &["a", "b"]);
    cfg.workers = Some(2);
    let (h, a, b) = memory_bridge(&cfg, vec![shared().rules.clone()]);
    let pair = IpPair::V4([10, 1, 0, 1].into(), [10, 2, 0, 1].into());
    // "REJECTME" straddles the fragment boundary (UDP header 8 + 20 bytes
    // of padding + 4 bytes of the needle = 32): no fragment matches alone.
    let mut payload = vec![b'x'; 20];
    payload.extend_from_slice(b"REJECTME");
    payload.extend_from_slice(&[b'y'; 40]);
    let bad = udp_frame(pair, 40001, UDP_PORT, &payload).expect("frame");
    let clean_payload = vec![b'z'; 68];
    let clean = udp_frame(pair, 40002, UDP_PORT, &clean_payload).expect("frame");
    let clean_frags = fragment_v4(&clean, 32, 7);
    let bad_frags = fragment_v4(&bad, 32, 8);
    for f in clean_frags.iter().chain(&bad_frags) {
        h.ingress(Side::A, f);
    }
    let stats = wait_for(&h, |s| {
        s.reassembled == 2 && s.inspected == 2 && s.forwarded >= 2
    });
    let out = b.take();
    assert_eq!(out, clean_frags.to_vec(), "clean fragments, as received");
    assert_eq!(stats.fragments, 4);
    assert_eq!(stats.dropped_by_rule, 1, "{stats:?}");
    assert_eq!(stats.fragments_dropped, 0);
    // The reject rule answers the sender with an ICMP unreachable.
    let back = a.take();
    assert_eq!(back.len(), 1, "one ICMP unreachable back to the sender");
    let d = decode(LinkType::ETHERNET, &back[0]).expect("answer decodes");
    assert_eq!(d.protocol, 1, "ICMP");

    // The same over IPv6.
    let pair6 = IpPair::V6(
        "2001:db8::1".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
    );
    let clean6 = fragment_v6(
        &udp_frame(pair6, 40003, UDP_PORT, &clean_payload).expect("frame"),
        32,
        9,
    );
    let bad6 = fragment_v6(
        &udp_frame(pair6, 40004, UDP_PORT, &payload).expect("frame"),
        32,
        10,
    );
    for f in clean6.iter().chain(&bad6) {
        h.ingress(Side::A, f);
    }
    let stats = wait_for(&h, |s| {
        s.reassembled == 4 && s.inspected == 4 && s.forwarded >= 4
    });
    assert_eq!(
        b.take(),
        clean6.to_vec(),
        "clean IPv6 fragments, as received"
    );
    assert_eq!(stats.dropped_by_rule, 2, "{stats:?}");
    assert_eq!(stats.fragments_dropped, 0);
    h.stop();
}

#[test]
fn cli_a_module_faulting_after_an_update_is_rolled_back_in_every_worker() {
    let f = CliFixture::new("clirb");
    let (_http, _bypass, _udp) = servers(&f.topo);
    let v1 = update_server::bundle(
        1,
        vec![update_server::watch("watch", "1", b"never-in-this-traffic")],
        Some(&f.key),
        &[],
    );
    f.updates.publish(&v1, &f.key, &["1.0.0"]);
    // Fail-closed: a worker still running the faulting version drops.
    let config = f.write_config("fail-closed", 2, &[BYPASS_PORT]);
    let config_arg = config.display().to_string();
    let gw = Gateway::spawn(&f.topo.gw, &["--config", &config_arg, "--poll-ms", "200"]);
    f.activated(&gw, 1);
    let client = &f.topo.client;
    assert_passes(client, "/hello", "version 1");
    let v2 = update_server::bundle(
        2,
        vec![update_server::faults_later("watch", "2", 20)],
        Some(&f.key),
        &[],
    );
    f.updates.publish(&v2, &f.key, &["1.0.0"]);
    f.activated(&gw, 2);
    // Traffic makes one worker's instance fault past the threshold.
    let start = Instant::now();
    while gw.count(false, "\"rolled_back\"") == 0 {
        let _ = curl(client, "/hello", 1);
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "no rollback\n{}",
            gw.tail()
        );
    }
    // Every worker now runs version 1: flows on either worker pass.
    for i in 0..6 {
        assert_passes(
            client,
            "/hello",
            &format!("after the rollback, request {i}"),
        );
    }
    assert_eq!(
        gw.count(false, "\"rolled_back\""),
        1,
        "one rollback event for all workers\n{}",
        gw.tail()
    );
    let start = Instant::now();
    let status = loop {
        let s = Status::read(&f.dir.path().join("state")).expect("status.json");
        let watch = s.modules.iter().find(|m| m.id == "watch").cloned();
        if watch.as_ref().is_some_and(|m| m.version == "1")
            || start.elapsed() > Duration::from_secs(5)
        {
            break watch;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let watch = status.expect("module watch in status.json");
    assert_eq!(
        (watch.version.as_str(), watch.health.as_str()),
        ("1", "rolled back")
    );
    let (status, _) = gw.stop();
    assert!(status.success(), "exit {status:?}");
}
