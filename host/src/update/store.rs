//! The state directory: the last good set, kept so that a crash at any
//! point leaves either the old or the new set, never a broken one.
//!
//! Layout:
//!
//! ```text
//! state.json            State: active bundle version, per module its current
//!                       and previous (last good) variant, rolled-back hashes
//! modules/<sha256>.wasm component bytes, content-addressed
//! cache/                precompiled artifacts (runtime::ArtifactCache)
//! telemetry.spool       events not yet acknowledged by the update server
//! status.json           what `sandgate status` prints
//! ```
//!
//! Every write is temp file + fsync + rename + fsync of the directory.
//! Components are written before `state.json` names them and removed only
//! after a `state.json` that no longer names them is durable, so
//! `state.json` is the single commit point. On startup a component whose
//! bytes do not match its hash is ignored with an event, never fatal.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sandgate_patterns::bundle::sha256_hex;
use serde::{Deserialize, Serialize};

use super::UpdateError;

/// Format of `state.json`.
pub const STATE_FORMAT: u32 = 1;

/// One variant of a module as the appliance keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    pub id: String,
    /// The module version from the bundle manifest.
    pub version: String,
    /// The bundle it came from.
    pub bundle_version: u64,
    pub interface: String,
    /// SHA-256 of the component, hex (its file name under `modules/`).
    pub sha256: String,
}

/// A module slot: what runs, and what to roll back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub current: ModuleRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<ModuleRecord>,
}

/// The committed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    /// Newest bundle version processed; anti-rollback compares against it.
    pub bundle_version: u64,
    /// Module slots by id.
    pub modules: BTreeMap<String, Slot>,
    /// Component hashes rolled back after activation: never activated again.
    #[serde(default)]
    pub rolled_back: BTreeSet<String>,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: STATE_FORMAT,
            bundle_version: 0,
            modules: BTreeMap::new(),
            rolled_back: BTreeSet::new(),
        }
    }
}

/// A module read back from the store, ready to load.
pub struct StoredModule {
    pub current: (ModuleRecord, Vec<u8>),
    pub previous: Option<(ModuleRecord, Vec<u8>)>,
}

/// The state directory.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating) the state directory, owner-only on Unix.
    pub fn open(dir: &Path) -> Result<Store, UpdateError> {
        for d in [dir.to_path_buf(), dir.join("modules"), dir.join("cache")] {
            std::fs::create_dir_all(&d).map_err(|e| UpdateError::io(&d, e))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode(0o700);
            std::fs::set_permissions(dir, perms).map_err(|e| UpdateError::io(dir, e))?;
        }
        // Leftovers of a crash: temporary files and self-test captures.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with(".vectors-")
                    || (name.starts_with('.') && name.ends_with(".tmp"))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn module_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("modules").join(format!("{sha256}.wasm"))
    }

    /// The committed state and the bytes of each slot's variants. Damage
    /// (unparsable state, a missing or altered component) is returned as
    /// text for an event; the affected part is left out.
    pub fn load(&self) -> (State, Vec<StoredModule>, Vec<String>) {
        let mut damage = Vec::new();
        let path = self.state_path();
        let state = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(s) if s.format == STATE_FORMAT => s,
                Ok(s) => {
                    damage.push(format!(
                        "{}: format {} is not {STATE_FORMAT}; starting empty",
                        path.display(),
                        s.format
                    ));
                    State::default()
                }
                Err(e) => {
                    damage.push(format!("{}: {e}; starting empty", path.display()));
                    State::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => {
                damage.push(format!("{}: {e}; starting empty", path.display()));
                State::default()
            }
        };
        let mut modules = Vec::new();
        for slot in state.modules.values() {
            let mut read = |r: &ModuleRecord| match self.read_component(&r.sha256) {
                Ok(bytes) => Some((r.clone(), bytes)),
                Err(e) => {
                    damage.push(format!("module {} {}: {e}", r.id, r.version));
                    None
                }
            };
            let current = read(&slot.current);
            let previous = slot.previous.as_ref().and_then(&mut read);
            match (current, previous) {
                (Some(current), previous) => modules.push(StoredModule { current, previous }),
                (None, Some(previous)) => modules.push(StoredModule {
                    current: previous,
                    previous: None,
                }),
                (None, None) => {}
            }
        }
        (state, modules, damage)
    }

    /// The bytes of component `sha256`, checked against the hash.
    pub fn read_component(&self, sha256: &str) -> Result<Vec<u8>, UpdateError> {
        let path = self.module_path(sha256);
        let bytes = std::fs::read(&path).map_err(|e| UpdateError::io(&path, e))?;
        let got = sha256_hex(&bytes);
        if got != sha256 {
            return Err(UpdateError::Store(format!(
                "{}: content hash {got} does not match its name",
                path.display()
            )));
        }
        Ok(bytes)
    }

    /// Make component bytes durable under their hash (before any state
    /// names them).
    pub fn put_component(&self, bytes: &[u8]) -> Result<String, UpdateError> {
        let sha = sha256_hex(bytes);
        let path = self.module_path(&sha);
        if self.read_component(&sha).is_err() {
            write_atomic(&path, bytes)?;
        }
        Ok(sha)
    }

    /// Commit `state` (the single commit point), then remove components no
    /// slot names any more.
    pub fn commit(&self, state: &State) -> Result<(), UpdateError> {
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| UpdateError::Store(format!("serialising state: {e}")))?;
        write_atomic(&self.state_path(), &bytes)?;
        let keep: BTreeSet<String> = state
            .modules
            .values()
            .flat_map(|s| std::iter::once(&s.current).chain(s.previous.as_ref()))
            .map(|r| format!("{}.wasm", r.sha256))
            .collect();
        let dir = self.dir.join("modules");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if !keep.contains(&name) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }
}

/// Write `bytes` to `path` so that a crash leaves the old or the new
/// content: temp file in the same directory, fsync, rename, fsync the
/// directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| UpdateError::io(&p, e)
    };
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = File::open(dir) {
        d.sync_all().map_err(io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, bytes: &[u8], bv: u64) -> ModuleRecord {
        ModuleRecord {
            id: id.into(),
            version: bv.to_string(),
            bundle_version: bv,
            interface: "1.0.0".into(),
            sha256: sha256_hex(bytes),
        }
    }

    #[test]
    fn a_committed_set_comes_back_and_damage_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.put_component(b"old").expect("put");
        store.put_component(b"new").expect("put");
        store.put_component(b"orphan").expect("put");
        let mut state = State {
            bundle_version: 2,
            ..State::default()
        };
        state.modules.insert(
            "a".into(),
            Slot {
                current: record("a", b"new", 2),
                previous: Some(record("a", b"old", 1)),
            },
        );
        store.commit(&state).expect("commit");
        assert!(store.read_component(&sha256_hex(b"orphan")).is_err());
        let (back, modules, damage) = store.load();
        assert_eq!(back, state);
        assert!(damage.is_empty(), "{damage:?}");
        assert_eq!(modules[0].current.1, b"new");
        // The current component is altered on disk: the previous one runs.
        std::fs::write(store.module_path(&sha256_hex(b"new")), b"evil").expect("write");
        let (_, modules, damage) = store.load();
        assert_eq!(modules[0].current.1, b"old");
        assert!(modules[0].previous.is_none());
        assert!(damage[0].contains("does not match"), "{damage:?}");
        std::fs::write(dir.path().join("state.json"), b"{garbage").expect("write");
        let (back, modules, damage) = store.load();
        assert_eq!(back, State::default());
        assert!(modules.is_empty());
        assert!(damage[0].contains("state.json"), "{damage:?}");
    }
}
