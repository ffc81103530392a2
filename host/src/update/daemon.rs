//! `sandgate run`: the data plane (any [`DataPlane`]: capture loop or live
//! bridge) on its own threads, the update client, telemetry, metrics and
//! status on a tokio runtime.
//!
//! Startup: the state directory's last good set is loaded (damage is an
//! event, never fatal); with an empty state the `--bundle` given is
//! verified and activated like a download. Then the plane starts
//! inspecting and the client starts polling.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sandgate_patterns::bundle::Bundle;
use sandgate_patterns::index::is_upgrade;
use sandgate_patterns::sign::PublicKey;
use sandgate_runtime::{Engine, EngineConfig, FailPolicy};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::activate::Activator;
use super::client::{http_client, Client, Poll};
use super::events::{log_line, EventKind, Events};
use super::plane::{DataPlane, PlaneEvent, PlaneLink, PlaneSnapshot};
use super::status::Status;
use super::store::{State, Store};
use super::UpdateError;
use crate::inspect::ModuleEvent;

/// Everything `sandgate run` is told.
pub struct DaemonOptions {
    pub state: PathBuf,
    /// Base URL of the update server (index, bundles, `/telemetry`).
    pub update_url: String,
    /// The pinned vendor key.
    pub vendor_key: PublicKey,
    pub appliance_id: String,
    /// What inspects traffic: the capture loop or the live bridge.
    pub data_plane: Box<dyn DataPlane>,
    pub policy: FailPolicy,
    pub poll: Duration,
    pub shadow: Duration,
    pub metrics_addr: Option<SocketAddr>,
    /// Bundle to start from when the state directory is empty.
    pub initial: Option<PathBuf>,
    pub engine: EngineConfig,
}

/// Runs until the process is stopped; returns only on a startup error.
pub fn run(opts: DaemonOptions) -> Result<(), UpdateError> {
    let store = Store::open(&opts.state)?;
    let events = Arc::new(Events::new(&opts.appliance_id, &opts.state));
    let engine = Engine::new(opts.engine.clone())
        .map_err(|e| UpdateError::Refused(format!("starting the engine: {e}")))?;
    let (plane_tx, plane_rx) = std::sync::mpsc::channel();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let state_dir = opts.state.clone();
    let (activator, active) = Activator::start(
        engine,
        store,
        events.clone(),
        plane_tx,
        opts.policy,
        opts.shadow,
    );
    let running: Vec<String> = activator
        .state
        .modules
        .values()
        .map(|s| format!("{} {}", s.current.id, s.current.version))
        .collect();
    events.emit(
        EventKind::Started,
        Some(activator.state.bundle_version),
        None,
        if running.is_empty() {
            "no last good set in the state directory".to_string()
        } else {
            format!("last good set: {}", running.join(", "))
        },
    );
    let published = activator.published.clone();
    let snapshot = Arc::new(Mutex::new(PlaneSnapshot::default()));
    opts.data_plane.start(PlaneLink {
        initial: active,
        msgs: plane_rx,
        events: ev_tx,
        snapshot: snapshot.clone(),
        counters: events.plane.clone(),
    })?;
    let activator = Arc::new(Mutex::new(activator));
    if let Some(path) = &opts.initial {
        activate_initial(&activator, &events, &opts.vendor_key, path);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("update")
        .enable_all()
        .build()
        .map_err(|e| UpdateError::Refused(format!("starting the update runtime: {e}")))?;
    let http = http_client()?;
    let offered: Vec<String> = opts
        .engine
        .interfaces
        .iter()
        .map(ToString::to_string)
        .collect();
    let client = Client::new(
        http.clone(),
        &opts.update_url,
        opts.vendor_key,
        offered,
        &opts.appliance_id,
    );
    let telemetry_url = client.url("telemetry");
    let appliance = opts.appliance_id.clone();
    let poll_every = opts.poll;
    let metrics_addr = opts.metrics_addr;
    runtime.block_on(async move {
        // Plane reports → events, and rollbacks → the store.
        {
            let events = events.clone();
            let activator = activator.clone();
            tokio::spawn(async move {
                while let Some(ev) = ev_rx.recv().await {
                    plane_event(&events, &activator, ev).await;
                }
            });
        }
        {
            let events = events.clone();
            tokio::spawn(async move {
                loop {
                    let _ = events.flush_telemetry(&http, &telemetry_url).await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            });
        }
        let bound = match metrics_addr {
            Some(addr) => serve_metrics(addr, events.clone()).await,
            None => None,
        };
        {
            let events = events.clone();
            let published = published.clone();
            let store = Store::open(&state_dir);
            tokio::spawn(async move {
                let Ok(store) = store else { return };
                loop {
                    let state = lock(&published).clone();
                    let plane = lock(&snapshot).clone();
                    let status = Status::compose(
                        &appliance,
                        &state,
                        &plane,
                        events.recent(),
                        events.spooled(),
                        bound.map(|a| a.to_string()),
                    );
                    if let Err(e) = status.write(&store) {
                        log_line("status_error", json!({"error": e.to_string()}));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
        let mut reported = BTreeSet::new();
        loop {
            let active = lock(&published).bundle_version;
            poll_once(&client, &events, &activator, active, &mut reported).await;
            tokio::time::sleep(poll_every).await;
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Report `detail` as an event once per distinct key.
fn once(
    reported: &mut BTreeSet<String>,
    events: &Events,
    kind: EventKind,
    version: Option<u64>,
    detail: String,
) {
    if reported.insert(format!("{kind:?}:{version:?}:{detail}")) {
        events.emit(kind, version, None, detail);
    }
}

async fn poll_once(
    client: &Client,
    events: &Arc<Events>,
    activator: &Arc<Mutex<Activator>>,
    active: u64,
    reported: &mut BTreeSet<String>,
) {
    match client.poll(active).await {
        Ok(Poll::UpToDate) => {}
        Ok(Poll::Downgrade { offered, active }) => once(
            reported,
            events,
            EventKind::BundleRejected,
            Some(offered),
            format!(
                "downgrade refused: the signed index offers bundle version {offered}, older than the active {active}"
            ),
        ),
        Ok(Poll::NotSelected { version, percent }) => {
            if reported.insert(format!("rollout:{version}")) {
                log_line(
                    "rollout",
                    json!({"bundle_version": version, "percent": percent, "selected": false}),
                );
            }
        }
        Ok(Poll::NoEntry { version, ranges }) => once(
            reported,
            events,
            EventKind::BundleRejected,
            Some(version),
            format!(
                "no entry for this engine's interfaces in the index (it serves {})",
                ranges.join(", ")
            ),
        ),
        Ok(Poll::Bundle { bundle, entry }) => {
            log_line(
                "step",
                json!({"step": "downloaded", "bundle_version": bundle.manifest.version,
                       "file": entry.file, "size": entry.size}),
            );
            let version = bundle.manifest.version;
            let act = activator.clone();
            let result = tokio::task::spawn_blocking(move || lock(&act).activate(&bundle)).await;
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => once(
                    reported,
                    events,
                    EventKind::BundleRejected,
                    Some(version),
                    format!("activation failed: {e}"),
                ),
                Err(e) => once(
                    reported,
                    events,
                    EventKind::BundleRejected,
                    Some(version),
                    format!("activation stopped: {e}"),
                ),
            }
        }
        Err(UpdateError::Http { url, detail })
            if !detail.starts_with("download broke off") && !detail.starts_with("refused") =>
        {
            // The server is unreachable or has nothing: not a rejection.
            if reported.insert(format!("http:{url}:{detail}")) {
                log_line("poll_failed", json!({"url": url, "error": detail}));
            }
        }
        Err(e) => once(
            reported,
            events,
            EventKind::BundleRejected,
            None,
            format!("refused: {e}"),
        ),
    }
}

async fn plane_event(events: &Arc<Events>, activator: &Arc<Mutex<Activator>>, ev: PlaneEvent) {
    match ev {
        PlaneEvent::Module(e @ ModuleEvent::RolledBack { .. }) => {
            let ModuleEvent::RolledBack { module, .. } = &e else {
                return;
            };
            let version = bundle_of(activator, module);
            events.emit(EventKind::RolledBack, version, Some(module), e.to_string());
            let act = activator.clone();
            let name = module.clone();
            let result = tokio::task::spawn_blocking(move || lock(&act).rolled_back(&name)).await;
            if let Ok(Err(err)) = result {
                events.emit(
                    EventKind::StoreDamaged,
                    version,
                    Some(module),
                    format!("recording the rollback: {err}"),
                );
            }
        }
        PlaneEvent::Module(e @ ModuleEvent::Quarantined { .. }) => {
            let ModuleEvent::Quarantined { module, .. } = &e else {
                return;
            };
            let version = bundle_of(activator, module);
            events.emit(EventKind::Quarantined, version, Some(module), e.to_string());
        }
        PlaneEvent::FaultBurst {
            module,
            faults,
            last_fault,
        } => {
            let version = bundle_of(activator, &module);
            events.emit(
                EventKind::FaultBurst,
                version,
                Some(&module),
                format!(
                    "{faults} faults within {} ms (last: {})",
                    super::plane::BURST_PERIOD.as_millis(),
                    last_fault.as_deref().unwrap_or("-")
                ),
            );
        }
    }
}

/// The bundle version of `module`'s current variant, without waiting for
/// an activation in progress.
fn bundle_of(activator: &Arc<Mutex<Activator>>, module: &str) -> Option<u64> {
    let act = activator.try_lock().ok()?;
    let state: &State = &act.state;
    state.modules.get(module).map(|s| s.current.bundle_version)
}

fn activate_initial(
    activator: &Arc<Mutex<Activator>>,
    events: &Events,
    key: &PublicKey,
    path: &std::path::Path,
) {
    let mut act = lock(activator);
    if !act.state.modules.is_empty() {
        return;
    }
    let result = Bundle::read(path)
        .map_err(UpdateError::from)
        .and_then(|b| {
            b.verify(key)?;
            Ok(b)
        })
        .and_then(|b| {
            if is_upgrade(act.state.bundle_version, b.manifest.version) {
                Ok(b)
            } else {
                Err(UpdateError::Refused(format!(
                    "{}: bundle version {} is not newer than the active {}",
                    path.display(),
                    b.manifest.version,
                    act.state.bundle_version
                )))
            }
        })
        .and_then(|b| act.activate(&b));
    if let Err(e) = result {
        events.emit(
            EventKind::BundleRejected,
            None,
            None,
            format!("initial bundle refused: {e}"),
        );
    }
}

/// Serves the Prometheus text on `addr`; returns the bound address.
async fn serve_metrics(addr: SocketAddr, events: Arc<Events>) -> Option<SocketAddr> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            log_line(
                "metrics_error",
                json!({"addr": addr.to_string(), "error": e.to_string()}),
            );
            return None;
        }
    };
    let bound = listener.local_addr().ok();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let events = events.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = conn.read(&mut buf).await;
                let body = events.metrics_text();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(body.as_bytes()).await;
            });
        }
    });
    bound
}
