//! Times loading one component through [`ArtifactCache`]: the cold compile,
//! loads from the warm cache, and instantiation with the warm-up call.
//!
//! ```text
//! cargo run --release -p sandgate-runtime --example cache_load -- FILE [--interface 1.2.0] [--runs N]
//! ```
//!
//! `FILE` is a raw component or a Sandgate bundle (format 1 or 2, read here
//! directly: the runtime does not depend on the patterns crate); from a
//! bundle the first variant built for `--interface` is taken. The cache
//! lives in a fresh temporary directory, removed at the end. Figures for
//! BENCHMARKS.md come from the bench binary; this is the tool for seeing
//! what one change to the load path gives.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sandgate_runtime::{ArtifactCache, CacheOutcome, Engine, EngineConfig};
use sha2::{Digest, Sha256};

const BUNDLE_MAGIC: &[u8; 8] = b"SGBNDL\x00\x01";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut interface = "1.2.0".to_string();
    let mut runs = 5usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--interface" => interface = args.next().context("--interface needs a value")?,
            "--runs" => {
                runs = args
                    .next()
                    .context("--runs needs a value")?
                    .parse()
                    .context("--runs")?
            }
            _ => file = Some(PathBuf::from(a)),
        }
    }
    let file = file.context("usage: cache_load FILE [--interface 1.2.0] [--runs N]")?;
    let raw = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let component = if raw.starts_with(BUNDLE_MAGIC) {
        bundle_variant(&raw, &interface).with_context(|| format!("bundle {}", file.display()))?
    } else {
        raw
    };
    println!(
        "component: {:.1} MiB",
        component.len() as f64 / (1024.0 * 1024.0)
    );

    let dir = std::env::temp_dir().join(format!("sandgate-cache-load-{}", std::process::id()));
    let cache = ArtifactCache::new(&dir);
    let engine = Engine::new(EngineConfig::default())?;

    let t = Instant::now();
    let (_, first) = cache.load(&engine, "bench", &component)?;
    println!(
        "cold load (compile + describe): {:>9.1} ms ({first:?})",
        ms(t.elapsed())
    );
    if first != CacheOutcome::Compiled {
        bail!("the cache in {} was not empty", dir.display());
    }

    let mut loads = Vec::new();
    let mut module = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let (m, outcome) = cache.load(&engine, "bench", &component)?;
        loads.push(t.elapsed());
        if outcome != CacheOutcome::Hit {
            bail!("load {} missed the cache", loads.len());
        }
        module = Some(m);
    }
    let module = module.context("no load ran")?;
    println!(
        "load from cache:                {:>9.1} ms median, {:.1} ms min of {} ({:?} describe, {} rules)",
        ms(median(&mut loads)),
        ms(loads.iter().copied().min().unwrap_or_default()),
        loads.len(),
        module.describe_outcome(),
        module.info().rules.len(),
    );

    let mut instances = Vec::new();
    for i in 0..2 {
        let t = Instant::now();
        let instance = module.instantiate()?;
        println!(
            "instantiate + warm-up #{}:      {:>9.1} ms",
            i + 1,
            ms(t.elapsed())
        );
        instances.push(instance);
    }
    drop(instances);
    let t = Instant::now();
    let again = module.instantiate()?;
    println!(
        "instantiate + warm-up, reused slot: {:>4.1} ms",
        ms(t.elapsed())
    );
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The component bytes of the first variant built for `interface`, checked
/// against the manifest's SHA-256.
fn bundle_variant(raw: &[u8], interface: &str) -> Result<Vec<u8>> {
    let u32_at = |at: usize| -> Result<usize> {
        let b: [u8; 4] = raw
            .get(at..at + 4)
            .context("truncated header")?
            .try_into()?;
        Ok(usize::try_from(u32::from_le_bytes(b))?)
    };
    let manifest_len = u32_at(8)?;
    let manifest_end = 12 + manifest_len;
    let manifest: serde_json::Value =
        serde_json::from_slice(raw.get(12..manifest_end).context("truncated manifest")?)
            .context("manifest JSON")?;
    let body_start = match manifest["format"].as_u64() {
        Some(1) => manifest_end,
        Some(2) => manifest_end + 4 + u32_at(manifest_end)?,
        other => bail!("unknown bundle format {other:?}"),
    };
    let body = raw.get(body_start..).context("truncated body")?;
    let modules = manifest["modules"]
        .as_array()
        .context("manifest has no modules")?;
    let entry = modules
        .iter()
        .find(|m| m["interface"].as_str() == Some(interface))
        .with_context(|| format!("no variant for interface {interface}"))?;
    let offset = usize::try_from(entry["offset"].as_u64().context("offset")?)?;
    let len = usize::try_from(entry["len"].as_u64().context("len")?)?;
    let bytes = body
        .get(offset..offset + len)
        .context("variant lies outside the file")?;
    if hex::encode(Sha256::digest(bytes)) != entry["sha256"].as_str().unwrap_or_default() {
        bail!("variant for {interface}: SHA-256 mismatch");
    }
    Ok(bytes.to_vec())
}
