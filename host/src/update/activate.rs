//! The activation pipeline, per module of a verified bundle:
//!
//! 1. load-time check and compile (or the cached precompiled artifact);
//! 2. instantiate and warm up (the runtime's warm-up call);
//! 3. self-test: the bundle's test vectors replayed through the module
//!    alone must give exactly the recorded alerts, without a fault;
//! 4. optional shadow run beside the active set on live traffic, comparing
//!    fault and drop rates;
//! 5. component bytes made durable in the store;
//!
//! then one swap message carries every ready module to the data plane, and
//! `state.json` is committed. A module that fails any step is not
//! activated and keeps its previous version; the others go ahead. A module
//! the new bundle does not carry keeps running (the manifest has no
//! withdrawal field yet; see DESIGN.md).
//!
//! Each step is logged (`{"log":"step",...}`) before the next begins, so a
//! crash can be placed; `state.json` is the only commit point.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sandgate_patterns::bundle::{Bundle, ModuleEntry};
use sandgate_patterns::vectors::{check, show_counts, AlertCounts};
use sandgate_runtime::{ArtifactCache, CacheOutcome, Engine, FailPolicy, LoadedModule};
use serde_json::json;

use super::events::{log_line, EventKind, Events};
use super::plane::{PlaneMsg, SwapDone};
use super::store::{ModuleRecord, Slot, State, Store, StoredModule};
use super::UpdateError;
use crate::inspect::ActiveModule;
use crate::replay::{replay, ReplayOptions};

/// A shadow run's candidate may drop at most this share of packets more
/// than the active set did.
pub const SHADOW_MAX_EXTRA_DROP: f64 = 0.2;

/// What one activation did.
#[derive(Debug, Clone, Default)]
pub struct ActivationReport {
    pub bundle_version: u64,
    pub activated: Vec<String>,
    pub unchanged: Vec<String>,
    /// Module and reason.
    pub rejected: Vec<(String, String)>,
    /// The data plane's stall while swapping.
    pub swap_pause: Option<Duration>,
    pub elapsed: Duration,
}

/// The update side's view of the active set, and the pipeline.
pub struct Activator {
    pub engine: Engine,
    pub cache: ArtifactCache,
    pub store: Store,
    pub state: State,
    pub events: Arc<Events>,
    pub plane: Sender<PlaneMsg>,
    pub policy: FailPolicy,
    /// Shadow run length; zero skips the step.
    pub shadow: Duration,
    /// The loaded current and previous version of each slot.
    loaded: BTreeMap<String, (LoadedModule, Option<LoadedModule>)>,
    /// The last committed state, for `status.json`.
    pub published: Arc<Mutex<State>>,
}

fn step(module: &str, step: &str, detail: serde_json::Value) {
    log_line(
        "step",
        json!({"module": module, "step": step, "detail": detail}),
    );
}

impl Activator {
    /// Loads the committed set from `store`; returns the activator and the
    /// modules the data plane starts with. Damage is reported, never fatal.
    pub fn start(
        engine: Engine,
        store: Store,
        events: Arc<Events>,
        plane: Sender<PlaneMsg>,
        policy: FailPolicy,
        shadow: Duration,
    ) -> (Activator, Vec<ActiveModule>) {
        let cache = ArtifactCache::new(&store.dir().join("cache"));
        let (mut state, stored, damage) = store.load();
        // Rebuilt from what actually loads.
        state.modules.clear();
        for d in damage {
            events.emit(EventKind::StoreDamaged, None, None, d);
        }
        let mut loaded = BTreeMap::new();
        let mut active = Vec::new();
        for StoredModule { current, previous } in stored {
            let id = current.0.id.clone();
            let load =
                |(r, bytes): &(ModuleRecord, Vec<u8>)| match cache.load(&engine, &r.id, bytes) {
                    Ok((m, _)) => Some(m),
                    Err(e) => {
                        events.emit(
                            EventKind::StoreDamaged,
                            Some(r.bundle_version),
                            Some(&r.id),
                            format!("stored version {} no longer loads: {e}", r.version),
                        );
                        None
                    }
                };
            let prev = previous.as_ref().and_then(load);
            let (cur, prev, slot) = match (load(&current), prev, previous) {
                (Some(c), Some(p), Some((prev_record, _))) => (
                    c,
                    Some(p),
                    Slot {
                        current: current.0,
                        previous: Some(prev_record),
                    },
                ),
                (Some(c), _, _) => (
                    c,
                    None,
                    Slot {
                        current: current.0,
                        previous: None,
                    },
                ),
                (None, Some(p), Some((prev_record, _))) => (
                    p,
                    None,
                    Slot {
                        current: prev_record,
                        previous: None,
                    },
                ),
                _ => continue,
            };
            let mut a = ActiveModule::new(cur.clone(), policy);
            if let Some(p) = &prev {
                a = a.with_fallback(p.clone());
            }
            state.modules.insert(id.clone(), slot);
            loaded.insert(id, (cur, prev));
            active.push(a);
        }
        let published = Arc::new(Mutex::new(state.clone()));
        (
            Activator {
                engine,
                cache,
                store,
                state,
                events,
                plane,
                policy,
                shadow,
                loaded,
                published,
            },
            active,
        )
    }

    /// The engine's interface versions, as index and bundle spell them.
    pub fn offered(&self) -> Vec<String> {
        self.engine
            .config()
            .interfaces
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Run the pipeline over a verified bundle (signature and anti-rollback
    /// already checked by the caller).
    pub fn activate(&mut self, bundle: &Bundle) -> Result<ActivationReport, UpdateError> {
        let started = Instant::now();
        let version = bundle.manifest.version;
        let mut report = ActivationReport {
            bundle_version: version,
            ..ActivationReport::default()
        };
        log_line(
            "step",
            json!({"step": "verified", "bundle_version": version}),
        );
        let offered = self.offered();
        let selection = bundle.select(&offered);
        let mut ready: Vec<(ModuleRecord, ActiveModule, LoadedModule)> = Vec::new();
        for (entry, bytes) in &selection.chosen {
            if self
                .state
                .modules
                .get(&entry.id)
                .is_some_and(|s| s.current.sha256 == entry.sha256)
            {
                report.unchanged.push(entry.id.clone());
                continue;
            }
            match self.prepare(bundle, entry, bytes) {
                Ok((a, m)) => ready.push((record(entry, version), a, m)),
                Err(why) => {
                    self.events.emit(
                        EventKind::ModuleRejected,
                        Some(version),
                        Some(&entry.id),
                        format!("{why}; the previous version keeps running"),
                    );
                    report.rejected.push((entry.id.clone(), why));
                }
            }
        }
        for (id, interfaces) in &selection.unavailable {
            let reason = bundle
                .variants(id)
                .next()
                .and_then(|(_, b)| self.engine.load(id, b).err())
                .map_or_else(
                    || {
                        format!(
                            "no variant for the interfaces this engine offers ({}); variants need {}",
                            offered.join(", "),
                            interfaces.join(", ")
                        )
                    },
                    |e| e.to_string(),
                );
            self.events.emit(
                EventKind::ModuleRejected,
                Some(version),
                Some(id),
                format!(
                    "incompatible with this engine: {reason}; the previous version keeps running"
                ),
            );
            report.rejected.push((id.clone(), reason));
        }
        if !ready.is_empty() {
            let modules = ready.len();
            let (tx, rx) = tokio::sync::oneshot::channel::<SwapDone>();
            let mut actives = Vec::new();
            for (r, a, m) in ready {
                report.activated.push(r.id.clone());
                let prev = self.loaded.remove(&r.id).map(|(cur, _)| cur);
                self.loaded.insert(r.id.clone(), (m, prev));
                let previous = self.state.modules.get(&r.id).map(|s| s.current.clone());
                self.state.modules.insert(
                    r.id.clone(),
                    Slot {
                        current: r,
                        previous,
                    },
                );
                actives.push(a);
            }
            self.plane
                .send(PlaneMsg::Swap {
                    modules: actives,
                    done: tx,
                })
                .map_err(|_| UpdateError::PlaneGone)?;
            let done = rx.blocking_recv().map_err(|_| UpdateError::PlaneGone)?;
            report.swap_pause = Some(done.pause);
            log_line(
                "step",
                json!({"step": "swapped", "bundle_version": version, "modules": modules,
                       "pause_us": done.pause.as_micros() as u64}),
            );
        }
        self.state.bundle_version = self.state.bundle_version.max(version);
        self.commit()?;
        log_line(
            "step",
            json!({"step": "persisted", "bundle_version": version}),
        );
        for id in &report.activated {
            let v = self
                .state
                .modules
                .get(id)
                .map(|s| s.current.version.clone())
                .unwrap_or_default();
            self.events.emit(
                EventKind::ModuleActivated,
                Some(version),
                Some(id),
                format!("version {v} active"),
            );
        }
        report.elapsed = started.elapsed();
        self.events.emit(
            EventKind::BundleActivated,
            Some(version),
            None,
            format!(
                "{} activated, {} unchanged, {} rejected, in {} ms",
                report.activated.len(),
                report.unchanged.len(),
                report.rejected.len(),
                report.elapsed.as_millis()
            ),
        );
        Ok(report)
    }

    /// Steps 1–5 for one module; the reason on refusal.
    fn prepare(
        &self,
        bundle: &Bundle,
        entry: &ModuleEntry,
        bytes: &[u8],
    ) -> Result<(ActiveModule, LoadedModule), String> {
        let id = entry.id.as_str();
        if self.state.rolled_back.contains(&entry.sha256) {
            return Err(format!(
                "variant {} was rolled back after an earlier activation; not activated again",
                short(&entry.sha256)
            ));
        }
        let t = Instant::now();
        let (module, outcome) = self
            .cache
            .load(&self.engine, id, bytes)
            .map_err(|e| format!("load check: {e}"))?;
        step(
            id,
            "loaded",
            json!({"cache": matches!(outcome, CacheOutcome::Hit), "ms": t.elapsed().as_millis() as u64}),
        );
        let Some((vectors, pcap)) = bundle.vectors_for(id) else {
            return Err("self-test: the bundle carries no test vectors for it".into());
        };
        let path = self
            .store
            .dir()
            .join(format!(".vectors-{}.pcap", short(&entry.sha256)));
        std::fs::write(&path, pcap).map_err(|e| format!("self-test: {}: {e}", path.display()))?;
        let mut counts = AlertCounts::new();
        let result = replay(
            std::slice::from_ref(&module),
            &path,
            &ReplayOptions::default(),
            &mut |a| {
                *counts.entry(a.signature_id).or_default() += 1;
                Ok(())
            },
        );
        let _ = std::fs::remove_file(&path);
        let (_, inspected) = result.map_err(|(_, e)| format!("self-test: {e}"))?;
        if let Some(f) = inspected.iter().find(|i| !i.faults.is_empty()) {
            return Err(format!(
                "self-test: faulted on its test vectors ({:?}; last: {})",
                f.faults,
                f.last_fault.as_deref().unwrap_or("-")
            ));
        }
        check(&vectors.expect, &counts).map_err(|m| format!("self-test: {m}"))?;
        step(id, "self-tested", json!({"alerts": show_counts(&counts)}));
        let mut active = ActiveModule::new(module.clone(), self.policy);
        if active.instance.is_none() {
            return Err(format!(
                "instantiate: {}",
                active
                    .last_fault
                    .as_ref()
                    .map_or_else(|| "failed".to_string(), ToString::to_string)
            ));
        }
        if !self.shadow.is_zero() {
            self.shadow_run(id, &module)?;
        }
        self.store
            .put_component(bytes)
            .map_err(|e| format!("store: {e}"))?;
        step(id, "stored", json!({"sha256": entry.sha256}));
        if let Some((cur, _)) = self.loaded.get(id) {
            active = active.with_fallback(cur.clone());
        }
        Ok((active, module))
    }

    fn shadow_run(&self, id: &str, module: &LoadedModule) -> Result<(), String> {
        let instance = module
            .instantiate()
            .map_err(|f| format!("shadow run: {f}"))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.plane
            .send(PlaneMsg::Shadow {
                instance: Box::new(instance),
                duration: self.shadow,
                done: tx,
            })
            .map_err(|_| "shadow run: the data plane has stopped".to_string())?;
        let r = rx
            .blocking_recv()
            .map_err(|_| "shadow run: the data plane has stopped".to_string())?;
        let rate = |n: u64| n as f64 / r.packets.max(1) as f64;
        step(
            id,
            "shadowed",
            json!({"packets": r.packets, "faults": r.faults,
                   "candidate_drop_rate": rate(r.candidate_drops),
                   "active_drop_rate": rate(r.active_drops)}),
        );
        if r.faults > 0 {
            return Err(format!(
                "shadow run: {} faults in {} batches of live traffic (last: {})",
                r.faults,
                r.batches,
                r.last_fault.as_deref().unwrap_or("-")
            ));
        }
        if rate(r.candidate_drops) > rate(r.active_drops) + SHADOW_MAX_EXTRA_DROP {
            return Err(format!(
                "shadow run: would drop {:.1}% of live packets, the active set drops {:.1}%",
                100.0 * rate(r.candidate_drops),
                100.0 * rate(r.active_drops)
            ));
        }
        Ok(())
    }

    /// The data plane rolled `module` back to its previous version: make
    /// that the last good one on disk and never activate the faulting
    /// variant again.
    pub fn rolled_back(&mut self, module: &str) -> Result<(), UpdateError> {
        let Some(slot) = self.state.modules.get_mut(module) else {
            return Ok(());
        };
        if let Some(prev) = slot.previous.take() {
            self.state.rolled_back.insert(slot.current.sha256.clone());
            slot.current = prev;
        }
        if let Some((cur, prev)) = self.loaded.remove(module) {
            self.loaded
                .insert(module.to_string(), (prev.unwrap_or(cur), None));
        }
        self.commit()
    }

    fn commit(&mut self) -> Result<(), UpdateError> {
        self.store.commit(&self.state)?;
        if let Ok(mut p) = self.published.lock() {
            *p = self.state.clone();
        }
        Ok(())
    }
}

fn record(entry: &ModuleEntry, bundle_version: u64) -> ModuleRecord {
    ModuleRecord {
        id: entry.id.clone(),
        version: entry.version.clone(),
        bundle_version,
        interface: entry.interface.clone(),
        sha256: entry.sha256.clone(),
    }
}

/// The first 12 hex digits of a hash, for messages.
pub fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
