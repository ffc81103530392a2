//! The live data plane on real interfaces: network namespaces with veth
//! pairs (client ⇄ gw ⇄ server, gw ⇄ update; `sandgate_tests::netns`), the
//! bridge running in the gw namespace through pnet, real TCP/HTTP/UDP
//! traffic from the client namespace. Clean traffic passes byte for byte,
//! a drop rule blocks its flow and alerts, a reject rule resets the
//! connection, a faulting module under fail-open passes and under
//! fail-closed blocks forwarded traffic while bypass and management
//! traffic still flow. The last tests drive the data plane in memory to
//! prove what real traffic cannot time reliably: per-flow order, queue
//! overflow accounting and the watchdog.
//!
//! These tests need root (CI runs as root) and fail, not skip, without it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sandgate_host::capture::LinkType;
use sandgate_host::decode::decode;
use sandgate_host::eve::{AlertAction, AlertRecord};
use sandgate_host::live::config::BypassEntry;
use sandgate_host::live::{
    AlertSink, Bridge, BridgeHandle, Config, LiveStats, MemoryPort, Mode, Port, Side,
};
use sandgate_host::synth::SynthCapture;
use sandgate_runtime::testkit::{self, InspectBody, IpsOptions};
use sandgate_runtime::{Engine, EngineConfig, FailPolicy, LoadedModule};
use sandgate_tests::netns::{
    Netns, TcpServer, Topology, UdpEcho, BRIDGE_A, BRIDGE_B, SERVER_IP, UPDATE_IP,
};
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
    for policy in [FailPolicy::FailOpen, FailPolicy::FailClosed] {
        let mut cfg = Config::new(Mode::Inline, &["a", "b"]);
        cfg.workers = Some(1);
        cfg.policy.default = policy;
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
