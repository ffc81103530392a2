//! [`ArtifactCache`]: precompiled components on disk, and each one's
//! `describe` answer beside it, so activating or restarting on a module
//! already loaded by this engine costs mapping a file instead of a compile,
//! and no module code runs (for the full ET Open rule set a few tens of ms
//! instead of ~0.6 s with `describe` or ~1.5 s with a compile; the
//! `cache_load` example and the bench measure it).
//!
//! An artifact's file name is the SHA-256 of the engine's
//! `precompile_compatibility_hash` (wasmtime version, target, every codegen
//! setting) and the component's own SHA-256, so an engine upgrade or config
//! change simply misses the cache. The `describe` answer lives in
//! `<same name>.describe` (format in the `described` module): its key
//! adds the offered interface versions (which export's `describe` runs) and
//! the limits, metering and address space it ran under, is
//! stored inside the file with a checksum of the answer, and a file with
//! another key, format or checksum is ignored and recomputed (so one file
//! per artifact holds the answer for the configuration that loaded it
//! last). A stored
//! answer passes the same checks as a fresh one (declared kind against the
//! export, size bounds) and the fuel budget is computed from it and the
//! current limits, so a hit yields the module a fresh load would.
//!
//! Trust: `Component::deserialize_file` runs machine code without validating it,
//! so artifacts must come only from this engine. The cache lives in the
//! appliance's state directory (owner-only), is written only by
//! [`ArtifactCache`] from components that passed the load-time check, and is
//! never downloaded. Anyone able to write it could equally replace the
//! `sandgate` binary. wasmtime still refuses an artifact from another
//! version or configuration (header check); such a file, or any unreadable
//! one, is recompiled and overwritten. The load-time check always runs on
//! the original component bytes, never on the artifact.

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::described::{self, Described};
use crate::engine::{Engine, LoadHooks};
use crate::error::LoadError;
use crate::module::LoadedModule;

/// Largest `describe` file read back; anything larger is ignored (the full
/// ET Open rule set's is a few MiB).
const MAX_DESCRIBE_FILE: u64 = 256 << 20;

/// Where a module's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialised from a cached artifact.
    Hit,
    /// Compiled now (and stored for next time, if the directory is writable).
    Compiled,
}

/// A directory of precompiled component artifacts.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

/// Feeds `Hash` output into SHA-256, so the key does not depend on
/// `DefaultHasher`'s algorithm.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// One load through the cache: the files it reads and writes and what it
/// found.
struct CacheLoad<'a> {
    cache: &'a ArtifactCache,
    name: &'a str,
    bytes: &'a [u8],
    /// `<artifact key>.cwasm`.
    artifact: PathBuf,
    /// `<artifact key>.describe`.
    describe: PathBuf,
    /// The artifact key plus the offered interface versions, limits,
    /// metering and address space `describe` ran under: an answer is reused
    /// only where a fresh load would have called the same export under the
    /// same caps.
    describe_key: [u8; 32],
    outcome: Cell<CacheOutcome>,
}

impl ArtifactCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: &Path) -> Self {
        ArtifactCache {
            dir: dir.to_path_buf(),
        }
    }

    /// [`Engine::load`], with compiled code and the `describe` answer taken
    /// from or stored in the cache. Every load-time check runs on `bytes`
    /// as usual, and a stored answer passes the same checks as a fresh one;
    /// [`LoadedModule::describe_outcome`] says whether `describe` ran.
    pub fn load(
        &self,
        engine: &Engine,
        name: &str,
        bytes: &[u8],
    ) -> Result<(LoadedModule, CacheOutcome), LoadError> {
        let load = self.plan(engine, name, bytes);
        let module = engine.load_with(name, bytes, &load)?;
        Ok((module, load.outcome.get()))
    }

    /// The files and keys of one load of `bytes` by `engine`.
    fn plan<'a>(&'a self, engine: &Engine, name: &'a str, bytes: &'a [u8]) -> CacheLoad<'a> {
        let mut h = ShaHasher(Sha256::new());
        engine
            .wasmtime()
            .precompile_compatibility_hash()
            .hash(&mut h);
        h.0.update(Sha256::digest(bytes));
        let artifact_key = h.0.finalize();
        let stem = hex::encode(artifact_key);
        let config = engine.config();
        let mut d = Sha256::new();
        d.update(b"describe");
        d.update(artifact_key);
        for part in [
            // The offered versions decide which export's `describe` runs
            // (a component may export an `inspector` and a `flat-inspector`).
            postcard::to_allocvec(&config.interfaces),
            postcard::to_allocvec(&config.limits),
            postcard::to_allocvec(&config.metering),
            postcard::to_allocvec(&config.address_space),
        ] {
            // Serialising plain config structs into a Vec cannot fail; if it
            // ever did, the key would only change (a miss), never collide.
            let part = part.unwrap_or_default();
            d.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_le_bytes());
            d.update(part);
        }
        CacheLoad {
            cache: self,
            name,
            bytes,
            artifact: self.dir.join(format!("{stem}.cwasm")),
            describe: self.dir.join(format!("{stem}.describe")),
            describe_key: d.finalize().into(),
            outcome: Cell::new(CacheOutcome::Compiled),
        }
    }

    /// Best effort: a cache that cannot be written only costs compile time;
    /// says whether `path` now holds `contents`. Written under a temporary
    /// name and renamed, so a reader sees either the old file or the whole
    /// new one, and a file mapped by a live module is never changed in place.
    fn store(&self, path: &Path, contents: &[u8]) -> bool {
        if std::fs::create_dir_all(&self.dir).is_err() {
            return false;
        }
        // Unique per process and call: parallel loads (the host activates
        // modules on several threads) never share a temporary file.
        static NEXT_TMP: AtomicU64 = AtomicU64::new(0);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(
            ".{}-{}.tmp",
            std::process::id(),
            NEXT_TMP.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = PathBuf::from(tmp);
        let stored = std::fs::write(&tmp, contents).is_ok() && std::fs::rename(&tmp, path).is_ok();
        if !stored {
            let _ = std::fs::remove_file(&tmp);
        }
        stored
    }
}

impl LoadHooks for CacheLoad<'_> {
    fn compile(&self, wt: &wasmtime::Engine) -> Result<Component, LoadError> {
        // SAFETY: see the module doc — artifacts in this directory are
        // written only by `store` from this engine's own
        // `precompile_component`; wasmtime checks the header. The file is
        // mapped, not read, for as long as the module lives; `store`
        // replaces files by rename, never in place, so a mapped artifact
        // never changes under a live module.
        if let Ok(c) = unsafe { Component::deserialize_file(wt, &self.artifact) } {
            self.outcome.set(CacheOutcome::Hit);
            return Ok(c);
        }
        let compile_err = |e: wasmtime::Error| LoadError::Compile {
            module: self.name.to_string(),
            detail: format!("{e:#}"),
        };
        let artifact = wt.precompile_component(self.bytes).map_err(compile_err)?;
        // Mapping the stored file, as a hit would, lets instances take their
        // initial memory from it instead of a private copy of the image.
        if self.cache.store(&self.artifact, &artifact) {
            // SAFETY: as above; the file was written just now from
            // `artifact`, produced by this engine.
            if let Ok(c) = unsafe { Component::deserialize_file(wt, &self.artifact) } {
                return Ok(c);
            }
        }
        // SAFETY: `artifact` was produced just now by this engine.
        unsafe { Component::deserialize(wt, &artifact) }.map_err(compile_err)
    }

    fn cached_describe(&self) -> Option<Described> {
        let len = std::fs::metadata(&self.describe).ok()?.len();
        if len > MAX_DESCRIBE_FILE {
            return None;
        }
        let file = std::fs::read(&self.describe).ok()?;
        described::decode(&self.describe_key, &file)
    }

    fn keep_describe(&self, d: &Described) {
        if let Some(file) = described::encode(&self.describe_key, d) {
            // Best effort, like the artifact: a miss next time costs a
            // `describe` call.
            let _ = self.cache.store(&self.describe, &file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::DescribeOutcome;
    use crate::testkit::{self, InspectBody, IpsOptions};
    use crate::wit;
    use crate::EngineConfig;

    fn temp_dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "sandgate-cache-unit-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ))
    }

    #[test]
    fn a_second_load_is_a_cache_hit_and_a_damaged_artifact_is_recompiled() {
        let dir = temp_dir("artifact");
        let engine = Engine::new(EngineConfig::default()).expect("engine");
        let bytes = testkit::ips_component(&IpsOptions::inspect(InspectBody::Hits(vec![(0, 1)])))
            .expect("testkit");
        let cache = ArtifactCache::new(&dir);
        let (_, first) = cache.load(&engine, "m", &bytes).expect("load");
        assert_eq!(first, CacheOutcome::Compiled);
        let (m, second) = cache.load(&engine, "m", &bytes).expect("load");
        assert_eq!(second, CacheOutcome::Hit);
        let batch = testkit::batch(&[(1, b"x")]);
        let hits = m
            .instantiate()
            .expect("instance")
            .inspect(&batch)
            .expect("inspect");
        assert_eq!(hits.len(), 1, "the cached module runs");
        drop(m);
        // A damaged artifact is not trusted blindly: recompiled.
        for e in std::fs::read_dir(&dir).expect("cache dir").flatten() {
            std::fs::write(e.path(), b"not an artifact").expect("damage");
        }
        let (_, third) = cache.load(&engine, "m", &bytes).expect("load");
        assert_eq!(third, CacheOutcome::Compiled);
        // The load check still runs on the component bytes, cache or not.
        let wrong = testkit::wrong_major().expect("testkit");
        assert!(cache.load(&engine, "bad", &wrong).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A stored answer with the right key but content a fresh `describe`
    /// would be refused for is checked like one, and replaced by the
    /// module's real answer.
    #[test]
    fn a_stored_answer_failing_the_checks_is_replaced_by_a_fresh_one() {
        let dir = temp_dir("forged");
        let engine = Engine::new(EngineConfig::default()).expect("engine");
        let bytes = testkit::ips_component(&IpsOptions::default()).expect("testkit");
        let cache = ArtifactCache::new(&dir);
        let (fresh, _) = cache.load(&engine, "m", &bytes).expect("load");
        let plan = cache.plan(&engine, "m", &bytes);
        let mut wrong_kind = fresh.info().clone();
        wrong_kind.kind = wit::ModuleKind::Av;
        let mut long_msg = fresh.info().clone();
        long_msg.rules[0].msg = "x".repeat(crate::MAX_MSG + 1);
        let mut unnamed = fresh.info().clone();
        unnamed.name.clear();
        for info in [wrong_kind, long_msg, unnamed] {
            let forged = Described { info, logs: vec![] };
            let file = described::encode(&plan.describe_key, &forged).expect("encode");
            std::fs::write(&plan.describe, file).expect("plant");
            let (m, outcome) = cache.load(&engine, "m", &bytes).expect("load");
            assert_eq!(outcome, CacheOutcome::Hit);
            assert_eq!(m.describe_outcome(), DescribeOutcome::Called);
            assert_eq!(m.info(), fresh.info());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
