//! `sandgate-patc publish`: a bundle that passed the matrix, plus a signed
//! index, into a directory any static HTTP server can serve.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sandgate_patterns::bundle::{sha256_hex, Bundle};
use sandgate_patterns::field::FieldList;
use sandgate_patterns::index::{
    is_upgrade, Index, IndexEntry, IndexVariant, Rollout, INDEX_FILE, INDEX_FORMAT, INDEX_SIG_FILE,
};
use sandgate_patterns::sign::{read_private_key, KeyId};

use crate::{matrix, Refused};

/// Arguments of `publish`.
pub struct Args {
    pub bundle: PathBuf,
    pub key: PathBuf,
    pub out: PathBuf,
    pub field: PathBuf,
    pub rollout: Option<u8>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let key = read_private_key(&args.key)?;
    let public = key.verifying_key();
    let raw = std::fs::read(&args.bundle)
        .with_context(|| format!("reading {}", args.bundle.display()))?;
    let bundle = Bundle::from_bytes(&raw, &args.bundle.display().to_string())
        .map_err(|e| Refused(format!("refusing to publish: {e}")))?;
    bundle
        .verify(&public)
        .map_err(|e| Refused(format!("refusing to publish: {e}")))?;
    let version = bundle.manifest.version;
    for id in bundle.module_ids() {
        if bundle.vectors_for(id).is_none() {
            return Err(Refused(format!(
                "refusing to publish: module `{id}` has no test vectors (build with --vectors PCAP)"
            ))
            .into());
        }
    }
    let field = FieldList::from_yaml_file(&args.field)?;
    // `matrix::run` draws its own progress bar (variant × engine steps).
    let m = matrix::run(&bundle, &field)?;
    print!("{}", m.table());
    let gaps = m.gaps();
    if !gaps.is_empty() {
        let list: Vec<String> = gaps
            .iter()
            .map(|(e, id)| format!("{e} has no working variant of module `{id}`"))
            .collect();
        return Err(Refused(format!(
            "refusing to publish: the compatibility matrix failed: {}",
            list.join("; ")
        ))
        .into());
    }
    let index_path = args.out.join(INDEX_FILE);
    if let Ok(old) = std::fs::read(&index_path) {
        let old: Index = serde_json_index(&old)
            .with_context(|| format!("reading the published {}", index_path.display()))?;
        if !is_upgrade(old.bundle_version, version) {
            return Err(Refused(format!(
                "refusing to publish: bundle version {version} is not newer than the published {} in {}",
                old.bundle_version,
                index_path.display()
            ))
            .into());
        }
    }

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let file = format!("bundle-{version}.sgb");
    write_atomic(&args.out.join(&file), &raw)?;
    let sha256 = sha256_hex(&raw);

    // Group field engines by the interface versions they implement.
    let mut ranges: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
    for (i, e) in field.engines.iter().enumerate() {
        let mut key = e.interfaces.clone();
        key.sort();
        key.dedup();
        ranges.entry(key).or_default().push(i);
    }
    let mut entries = Vec::new();
    for (interfaces, engines) in ranges {
        let first = engines[0];
        let mut variants = Vec::new();
        for id in &m.modules {
            // Engines lacking the module's interface get no variant of it:
            // their appliances load the bundle without that module.
            if !m.shipped(first, id) {
                continue;
            }
            let row = m
                .working(first, id)
                .ok_or_else(|| anyhow::anyhow!("module `{id}` lost its working variant"))?;
            let sha = bundle
                .variants(id)
                .find(|(e, _)| e.interface == row.interface)
                .map(|(e, _)| e.sha256.clone())
                .unwrap_or_default();
            variants.push(IndexVariant {
                module: id.clone(),
                interface: row.interface.clone(),
                sha256: sha,
            });
        }
        entries.push(IndexEntry {
            interfaces,
            engines: engines.iter().map(|&i| field.engines[i].label()).collect(),
            file: file.clone(),
            size: raw.len() as u64,
            sha256: sha256.clone(),
            variants,
        });
    }
    let index = Index {
        format: INDEX_FORMAT,
        bundle_version: version,
        created_unix: bundle.manifest.created_unix,
        published_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        key_id: KeyId::of(&public).to_string(),
        rollout: args.rollout.map(|percent| Rollout { percent }),
        entries,
    };
    let bytes = index.to_bytes();
    let sig = Index::sign_bytes(&bytes, &key);
    write_atomic(&args.out.join(INDEX_SIG_FILE), &sig.to_bytes())?;
    write_atomic(&index_path, &bytes)?;
    println!(
        "published bundle version {version} to {}: {file} ({} bytes, sha256 {sha256}), {INDEX_FILE} signed by key {}{}",
        args.out.display(),
        raw.len(),
        index.key_id,
        match args.rollout {
            Some(p) => format!(", rollout {p}%"),
            None => String::new(),
        }
    );
    Ok(())
}

fn serde_json_index(bytes: &[u8]) -> anyhow::Result<Index> {
    Ok(serde_json::from_slice(bytes)?)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
