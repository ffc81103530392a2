//! [`ArtifactCache`]: precompiled components on disk, so activating or
//! restarting on a module already compiled by this engine costs a
//! deserialisation (≈ 0.4 ms) instead of a compile (≈ 100 ms).
//!
//! An artifact's file name is the SHA-256 of the engine's
//! `precompile_compatibility_hash` (wasmtime version, target, every codegen
//! setting) and the component's own SHA-256, so an engine upgrade or config
//! change simply misses the cache.
//!
//! Trust: `Component::deserialize` runs machine code without validating it,
//! so artifacts must come only from this engine. The cache lives in the
//! appliance's state directory (owner-only), is written only by
//! [`ArtifactCache`] from components that passed the load-time check, and is
//! never downloaded. Anyone able to write it could equally replace the
//! `sandgate` binary. wasmtime still refuses an artifact from another
//! version or configuration (header check); such a file, or any unreadable
//! one, is recompiled and overwritten. The load-time check always runs on
//! the original component bytes, never on the artifact.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::engine::Engine;
use crate::error::LoadError;
use crate::module::LoadedModule;

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

impl ArtifactCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: &Path) -> Self {
        ArtifactCache {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, engine: &wasmtime::Engine, bytes: &[u8]) -> PathBuf {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        h.0.update(Sha256::digest(bytes));
        self.dir
            .join(format!("{}.cwasm", hex::encode(h.0.finalize())))
    }

    /// [`Engine::load`], with compiled code taken from or stored in the
    /// cache. Every load-time check runs on `bytes` as usual.
    pub fn load(
        &self,
        engine: &Engine,
        name: &str,
        bytes: &[u8],
    ) -> Result<(LoadedModule, CacheOutcome), LoadError> {
        let outcome = std::cell::Cell::new(CacheOutcome::Compiled);
        let module = engine.load_with(name, bytes, &|wt| {
            let path = self.path(wt, bytes);
            if let Ok(artifact) = std::fs::read(&path) {
                // SAFETY: see the module doc — artifacts in this directory
                // are written only by `store` below from this engine's own
                // `precompile_component`; wasmtime checks the header.
                if let Ok(c) = unsafe { Component::deserialize(wt, &artifact) } {
                    outcome.set(CacheOutcome::Hit);
                    return Ok(c);
                }
            }
            let compile_err = |e: wasmtime::Error| LoadError::Compile {
                module: name.to_string(),
                detail: format!("{e:#}"),
            };
            let artifact = wt.precompile_component(bytes).map_err(compile_err)?;
            self.store(&path, &artifact);
            // SAFETY: `artifact` was produced just now by this engine.
            unsafe { Component::deserialize(wt, &artifact) }.map_err(compile_err)
        })?;
        Ok((module, outcome.get()))
    }

    /// Best effort: a cache that cannot be written only costs compile time.
    fn store(&self, path: &Path, artifact: &[u8]) {
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, artifact).is_ok() && std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{self, InspectBody, IpsOptions};
    use crate::EngineConfig;

    #[test]
    fn a_second_load_is_a_cache_hit_and_a_damaged_artifact_is_recompiled() {
        let dir = std::env::temp_dir().join(format!(
            "sandgate-cache-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
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
}
