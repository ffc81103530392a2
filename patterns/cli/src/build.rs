//! `sandgate-patc build`: compile, record test vectors, sign, write.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use sandgate_patterns::bundle::Bundle;
use sandgate_patterns::pipeline::{build, BuildOptions};
use sandgate_patterns::rules::Vars;
use sandgate_patterns::sign::{read_private_key, KeyId};
use sandgate_patterns::vectors::{expectation, pack_files, show_counts};
use sandgate_runtime::{Engine, EngineConfig};

use crate::vectors;

/// Arguments of `build`.
pub struct Args {
    pub output: PathBuf,
    pub vars: Option<PathBuf>,
    pub module_id: String,
    pub bundle_version: Option<u64>,
    pub sign: Option<PathBuf>,
    pub vectors: Option<PathBuf>,
    /// Files to embed as the AV module's test vectors.
    pub scan_vectors: Vec<PathBuf>,
    pub inputs: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // Inputs that cannot be used fail before any compiling.
    let key = match &args.sign {
        Some(path) => Some(read_private_key(path)?),
        None => None,
    };
    let pcap = match &args.vectors {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("reading test vectors {}", path.display()))?,
        ),
        None => None,
    };
    let mut files = Vec::new();
    for path in &args.scan_vectors {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading scan test vector {}", path.display()))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        files.push((name, bytes));
    }
    let vars = match &args.vars {
        Some(path) => Vars::from_yaml_file(path)
            .with_context(|| format!("reading vars file {}", path.display()))?,
        None => Vars::suricata_defaults(),
    };
    let started = std::time::Instant::now();
    let mut report = build(&BuildOptions {
        inputs: args.inputs,
        vars,
        module_id: args.module_id,
        bundle_version: args.bundle_version,
    })?;
    for s in &report.skipped {
        eprintln!("warning: skipped {s}");
    }
    if let Some(av) = &report.av {
        for s in &av.skipped {
            eprintln!("warning: skipped {s}");
        }
        for e in &av.errors {
            eprintln!("warning: invalid line skipped: {e}");
        }
    }
    if let Some(pcap) = pcap {
        record_vectors(&mut report.bundle, pcap, "ips")?;
    }
    if !files.is_empty() {
        if report.av.is_none() {
            anyhow::bail!("--scan-vectors given, but no signature database was compiled");
        }
        record_vectors(&mut report.bundle, pack_files(&files), "av")?;
    }
    if let Some(key) = &key {
        report.bundle.sign(key);
    }
    report
        .bundle
        .write(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let size: usize = report.bundle.modules.iter().map(Vec::len).sum();
    let mut parts = Vec::new();
    if report.rules_total > 0 {
        parts.push(format!(
            "{} of {} rules",
            report.rules_compiled, report.rules_total
        ));
    }
    if let Some(av) = &report.av {
        parts.push(format!(
            "{} of {} signatures",
            av.signatures,
            av.signatures + av.skipped.len() + av.errors.len()
        ));
    }
    println!(
        "compiled {} into {} module(s), {} KiB, in {:.2} s",
        parts.join(" and "),
        report.bundle.modules.len(),
        size / 1024,
        started.elapsed().as_secs_f64()
    );
    if let Some(av) = &report.av {
        println!(
            "AV module {}: {} signatures ({} skipped, {} invalid lines), interface {}",
            av.module_id,
            av.signatures,
            av.skipped.len(),
            av.errors.len(),
            sandgate_patterns::pipeline::AV_INTERFACE_VERSION
        );
    }
    for v in &report.variants {
        println!(
            "rules variant for interface {}: {} of {} compiled rules",
            v.interface, v.rules, report.rules_compiled
        );
        for (why, n) in &v.left_out {
            println!("  {n:>6}  left out: {why}");
        }
    }
    if !report.skipped.is_empty() {
        let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
        for s in &report.skipped {
            *by_reason.entry(s.reason.label()).or_default() += 1;
        }
        let mut rows: Vec<_> = by_reason.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        println!("skipped {} rules:", report.skipped.len());
        println!("  {:>6}  reason", "rules");
        for (reason, n) in rows {
            println!("  {n:>6}  {reason}");
        }
    }
    for v in &report.bundle.manifest.vectors {
        let counts = v.expect.iter().map(|e| (e.sid, e.count)).collect();
        println!(
            "test vectors for module {}: expects {}",
            v.module,
            show_counts(&counts)
        );
    }
    if let Some(key) = &key {
        println!("signed with key {}", KeyId::of(&key.verifying_key()));
    }
    println!(
        "wrote {} (bundle version {})",
        args.output.display(),
        report.bundle.manifest.version
    );
    Ok(())
}

/// Run `vectors` (a capture for `ips` modules, packed files for `av`
/// modules) through each freshly built module of that kind on a default
/// engine and record what it reports as the module's expectation.
fn record_vectors(bundle: &mut Bundle, vectors: Vec<u8>, kind: &str) -> anyhow::Result<()> {
    let engine =
        Engine::new(EngineConfig::default()).context("starting a runtime for the test vectors")?;
    let interfaces: Vec<String> = EngineConfig::default()
        .interfaces
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut recorded = Vec::new();
    for (entry, bytes) in bundle.select(&interfaces).chosen {
        if entry.kind != kind {
            continue;
        }
        let module = engine
            .load(&entry.id, bytes)
            .with_context(|| format!("loading module {} to record its test vectors", entry.id))?;
        let run = vectors::run(&module, &vectors)?;
        if !run.faults.is_empty() {
            anyhow::bail!(
                "module {} faulted on the test vectors ({:?}); not recording them",
                entry.id,
                run.faults
            );
        }
        if run.counts.is_empty() {
            eprintln!(
                "warning: module {}: the test vectors raise no alert; they only prove it runs",
                entry.id
            );
        }
        recorded.push((entry.id.clone(), expectation(&run.counts)));
    }
    for (id, expect) in recorded {
        bundle.set_vectors(&id, vectors.clone(), expect);
    }
    Ok(())
}
