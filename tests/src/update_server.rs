//! The update side of the end-to-end tests: a static update server on
//! loopback, publishing signed indexes the way `sandgate-patc publish` lays
//! them out, and a harness that runs the `sandgate run` daemon and reads
//! what it reports.
//!
//! The server serves files from memory (so an index and its signature
//! change together), can cut a chosen file short mid-download, can be made
//! unreachable (connections closed unanswered), and records every body
//! POSTed to `/telemetry`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sandgate_host::update::status::Status;
use sandgate_patterns::bundle::{sha256_hex, Bundle, ModuleEntry};
use sandgate_patterns::index::{Index, IndexEntry, IndexVariant, INDEX_FORMAT};
use sandgate_patterns::sign::{KeyId, PrivateKey};
use sandgate_patterns::vectors::{expectation, AlertCounts, ExpectedAlert};
use sandgate_runtime::testkit::{self, InspectBody, IpsOptions};

use crate::{build_bundle, engine, example_pcap, example_rules, run_replay};

/// The example rules as module `ips-rules` (compiled once).
pub fn rules_module() -> (ModuleEntry, Vec<u8>) {
    static RULES: OnceLock<(ModuleEntry, Vec<u8>)> = OnceLock::new();
    RULES
        .get_or_init(|| {
            let report = build_bundle(&[example_rules()]).expect("example rules compile");
            (
                report.bundle.manifest.modules[0].clone(),
                report.bundle.modules[0].clone(),
            )
        })
        .clone()
}

pub fn entry(id: &str, version: &str, interface: &str) -> ModuleEntry {
    ModuleEntry {
        id: id.into(),
        version: version.into(),
        kind: "ips".into(),
        interface: interface.into(),
        rules: 4,
        sha256: String::new(),
        offset: 0,
        len: 0,
    }
}

/// A testkit module reporting rule 0 (sid 1000) on payloads containing
/// `needle`.
pub fn watch(id: &str, version: &str, needle: &[u8]) -> (ModuleEntry, Vec<u8>) {
    let bytes = testkit::ips_component(&IpsOptions::inspect(InspectBody::MatchBytes {
        needle: needle.to_vec(),
        rule: 0,
    }))
    .expect("testkit");
    (entry(id, version, "1.0.0"), bytes)
}

/// A module that behaves for its first `calls` non-empty batches, then
/// traps on every call (the count lives in flow state, which survives
/// restarts of the instance). Passes the self-test, faults on live traffic.
pub fn faults_later(id: &str, version: &str, calls: u32) -> (ModuleEntry, Vec<u8>) {
    let counter = "(i64.const -1)";
    let bytes = testkit::ips_component(&IpsOptions::inspect(InspectBody::Wat(format!(
        "(if (local.get $n) (then
      (local.set $x (call $flow_get_u8 {counter}))
      (if (i32.ge_u (local.get $x) (i32.const {calls})) (then unreachable))
      (drop (call $flow_set_u8 {counter} (i32.add (local.get $x) (i32.const 1))))
      (call $hit (i32.const 0) (i32.const 0))))"
    ))))
    .expect("testkit");
    (entry(id, version, "1.0.0"), bytes)
}

/// A module built for interface 2.0.0, which this engine (1.0.0) lacks.
pub fn newer_interface() -> Vec<u8> {
    testkit::ips_component(&IpsOptions {
        version: "2.0.0".into(),
        ..IpsOptions::default()
    })
    .expect("testkit")
}

/// What a module reports on the example capture: its test-vector
/// expectation, recorded like `sandgate-patc build --vectors`.
pub fn recorded(id: &str, bytes: &[u8]) -> Vec<ExpectedAlert> {
    static CACHE: OnceLock<Mutex<HashMap<String, Vec<ExpectedAlert>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = sha256_hex(bytes);
    if let Some(e) = cache.lock().expect("cache").get(&key) {
        return e.clone();
    }
    let module = engine().load(id, bytes).expect("module loads");
    let out = run_replay(&[module], &example_pcap(), &Default::default()).expect("replay");
    assert!(
        out.modules.iter().all(|m| m.faults.is_empty()),
        "{id} faulted while recording"
    );
    let mut counts = AlertCounts::new();
    for a in &out.alerts {
        *counts.entry(a.signature_id).or_default() += 1;
    }
    let e = expectation(&counts);
    cache.lock().expect("cache").insert(key, e.clone());
    e
}

/// A bundle of `modules`, each with the example capture as its test
/// vectors (expectations recorded; `wrong_vectors` names modules whose
/// expectation is falsified), signed with `key` if given.
pub fn bundle(
    version: u64,
    modules: Vec<(ModuleEntry, Vec<u8>)>,
    key: Option<&PrivateKey>,
    wrong_vectors: &[&str],
) -> Bundle {
    let pcap = std::fs::read(example_pcap()).expect("example capture");
    let mut b = Bundle::new(version, 1_700_000_000 + version, modules.clone());
    for (e, bytes) in &modules {
        if e.interface != "1.0.0" {
            continue;
        }
        let mut expect = recorded(&e.id, bytes);
        if wrong_vectors.contains(&e.id.as_str()) {
            expect.push(ExpectedAlert {
                sid: 4242,
                count: 1,
            });
        }
        b.set_vectors(&e.id, pcap.clone(), expect);
    }
    if let Some(k) = key {
        b.sign(k);
    }
    b
}

#[derive(Default)]
struct Shared {
    files: HashMap<String, Vec<u8>>,
    /// File name → bytes sent before the connection is cut.
    cut: HashMap<String, usize>,
    /// File name → junk bytes appended (and announced).
    pad: HashMap<String, usize>,
    unreachable: bool,
    /// Staged rollout written into the next published index.
    rollout: Option<u8>,
    telemetry: Vec<serde_json::Value>,
    gets: Vec<String>,
}

/// A static update server (on 127.0.0.1 unless started elsewhere).
pub struct UpdateServer {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl UpdateServer {
    /// Listens on an ephemeral loopback port; one thread per connection.
    pub fn start() -> std::io::Result<UpdateServer> {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Listens on `addr` (in the network namespace of the calling thread).
    pub fn start_at(addr: SocketAddr) -> std::io::Result<UpdateServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &s);
                });
            }
        });
        Ok(UpdateServer { addr, shared, stop })
    }

    /// Base URL for `--update-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replace the served files in one step.
    pub fn put_all(&self, files: Vec<(String, Vec<u8>)>) {
        let mut s = lock(&self.shared);
        for (name, bytes) in files {
            s.files.insert(name, bytes);
        }
    }

    /// Serve only the first `at` bytes of `name` (with the full length
    /// announced), then cut the connection.
    pub fn cut_short(&self, name: &str, at: usize) {
        lock(&self.shared).cut.insert(name.to_string(), at);
    }

    /// Serve `name` with `extra` junk bytes after it, announced in the
    /// length: more than the signed index says.
    pub fn pad(&self, name: &str, extra: usize) {
        lock(&self.shared).pad.insert(name.to_string(), extra);
    }

    /// Serve `name` whole again (neither cut nor padded).
    pub fn serve_whole(&self, name: &str) {
        let mut s = lock(&self.shared);
        s.cut.remove(name);
        s.pad.remove(name);
    }

    /// While set, every connection is closed without an answer.
    pub fn set_unreachable(&self, on: bool) {
        lock(&self.shared).unreachable = on;
    }

    /// Indexes published from now on carry this staged rollout percentage.
    pub fn set_rollout(&self, percent: Option<u8>) {
        lock(&self.shared).rollout = percent;
    }

    /// Every event received on `/telemetry`, in arrival order.
    pub fn telemetry(&self) -> Vec<serde_json::Value> {
        lock(&self.shared).telemetry.clone()
    }

    /// Paths requested with GET, in order.
    pub fn gets(&self) -> Vec<String> {
        lock(&self.shared).gets.clone()
    }

    /// Publish `bundle` with an index signed by `key`: one entry, for
    /// engines implementing `interfaces`, naming every module's newest
    /// variant. Returns the bundle's file name.
    pub fn publish(&self, bundle: &Bundle, key: &PrivateKey, interfaces: &[&str]) -> String {
        let version = bundle.manifest.version;
        self.publish_raw(version, bundle.to_bytes(), bundle, key, interfaces)
    }

    /// [`publish`](Self::publish) with the index claiming `version` and the
    /// file holding `raw`.
    pub fn publish_raw(
        &self,
        version: u64,
        raw: Vec<u8>,
        bundle: &Bundle,
        key: &PrivateKey,
        interfaces: &[&str],
    ) -> String {
        let file = format!("bundle-{version}.sgb");
        let variants = bundle
            .module_ids()
            .into_iter()
            .filter_map(|id| bundle.variants(id).last())
            .map(|(e, _)| IndexVariant {
                module: e.id.clone(),
                interface: e.interface.clone(),
                sha256: e.sha256.clone(),
            })
            .collect();
        let index = Index {
            format: INDEX_FORMAT,
            bundle_version: version,
            created_unix: bundle.manifest.created_unix,
            published_unix: bundle.manifest.created_unix,
            key_id: KeyId::of(&key.verifying_key()).to_string(),
            rollout: lock(&self.shared)
                .rollout
                .map(|percent| sandgate_patterns::index::Rollout { percent }),
            entries: vec![IndexEntry {
                interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
                engines: vec![format!("test engine [{}]", interfaces.join(", "))],
                file: file.clone(),
                size: raw.len() as u64,
                sha256: sha256_hex(&raw),
                variants,
            }],
        };
        let bytes = index.to_bytes();
        let sig = Index::sign_bytes(&bytes, key).to_bytes().to_vec();
        self.put_all(vec![
            (file.clone(), raw),
            ("index.json".into(), bytes),
            ("index.json.sig".into(), sig),
        ]);
        file
    }
}

impl Drop for UpdateServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(conn: TcpStream, shared: &Mutex<Shared>) -> std::io::Result<()> {
    if lock(shared).unreachable {
        return Ok(());
    }
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut parts = request.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts
        .next()
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let mut conn = conn;
    if method == "POST" && path == "telemetry" {
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let parsed: Result<Vec<serde_json::Value>, _> = serde_json::from_slice(&body);
        let status = match parsed {
            Ok(events) => {
                lock(shared).telemetry.extend(events);
                "204 No Content"
            }
            Err(_) => "400 Bad Request",
        };
        return write!(
            conn,
            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
    }
    let (body, cut) = {
        let mut s = lock(shared);
        s.gets.push(path.clone());
        let mut body = s.files.get(&path).cloned();
        if let (Some(b), Some(&extra)) = (body.as_mut(), s.pad.get(&path)) {
            b.resize(b.len() + extra, 0x5a);
        }
        (body, s.cut.get(&path).copied())
    };
    let Some(body) = body else {
        return write!(
            conn,
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
    };
    write!(
        conn,
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    let n = cut.unwrap_or(body.len()).min(body.len());
    conn.write_all(&body[..n])?;
    conn.flush()?;
    if cut.is_some() {
        conn.shutdown(std::net::Shutdown::Both)?;
    }
    Ok(())
}

/// The `sandgate` binary of the running test's (or bench's) profile, built
/// once per process: `cargo test -p sandgate-tests` builds only this
/// crate's targets, and cargo releases its build lock before running them.
pub fn sandgate_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // target/<profile>/deps/<test> or target/<profile>/<bench>
            let exe = std::env::current_exe().unwrap_or_default();
            let profile_dir = exe
                .ancestors()
                .skip(1)
                .find(|d| d.file_name().is_some_and(|n| n != "deps"))
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-q", "-p", "sandgate-host", "--bin", "sandgate"]);
            if release {
                cmd.arg("--release");
            }
            let status = cmd.current_dir(crate::repo_root()).status();
            assert!(
                status.as_ref().is_ok_and(|s| s.success()),
                "building the sandgate binary failed: {status:?}"
            );
            profile_dir.join(format!("sandgate{}", std::env::consts::EXE_SUFFIX))
        })
        .clone()
}

/// A running `sandgate run` daemon and what it printed.
pub struct Appliance {
    child: Child,
    pub state: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Appliance {
    /// Start `sandgate run --state STATE ARGS...`.
    pub fn spawn(state: &Path, args: &[String]) -> std::io::Result<Appliance> {
        let mut child = Command::new(sandgate_binary())
            .arg("run")
            .arg("--state")
            .arg(state)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            let l = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    l.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        Ok(Appliance {
            child,
            state: state.to_path_buf(),
            lines,
        })
    }

    /// Everything written to stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The events logged so far (the `event` object of each event line).
    pub fn logged_events(&self) -> Vec<serde_json::Value> {
        self.log()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["log"] == "event")
            .map(|v| v["event"].clone())
            .collect()
    }

    /// The status this process wrote last, if any.
    pub fn status(&self) -> Option<Status> {
        Status::read(&self.state)
            .ok()
            .filter(|s| s.pid == self.child.id())
    }

    /// Wait until the status satisfies `pred`; panics after `timeout` with
    /// the last status and the log's tail.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Status) -> bool,
    ) -> Status {
        let start = Instant::now();
        loop {
            if let Some(s) = self.status() {
                if pred(&s) {
                    return s;
                }
            }
            if start.elapsed() > timeout {
                let log = self.log();
                let tail = log[log.len().saturating_sub(30)..].join("\n");
                panic!(
                    "timed out waiting for {what}\nstatus: {}\nlog tail:\n{tail}",
                    self.status().map(|s| s.render()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until a stderr line satisfies `pred`; returns it.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(l) = self.log().into_iter().find(|l| pred(l)) {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// GET the Prometheus text from the daemon's metrics address.
    pub fn metrics(&self) -> std::io::Result<String> {
        let addr = self
            .status()
            .and_then(|s| s.metrics_addr)
            .ok_or_else(|| std::io::Error::other("no metrics address in status.json"))?;
        let mut conn = TcpStream::connect(addr)?;
        conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
        let mut text = String::new();
        conn.read_to_string(&mut text)?;
        Ok(text)
    }

    /// SIGKILL, no cleanup: a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.kill();
    }
}
