//! AV scan throughput: Sandgate's scanner (native, and the AV module in
//! wasm when the runtime can load one) against `clamscan` with the same
//! databases on the same files, in the same run.
//!
//! Corpus: Debian's clamav-testfiles (when installed) plus generated files
//! (pseudo-random bytes with a few signature hits), written to a temporary
//! directory. Databases: the shared examples (`../shared/data/clamav`, the
//! `.hsb` with the FLEVEL field clamscan demands) and a synthetic database of
//! several thousand body and hash signatures. clamscan's figure excludes its
//! start-up and database load, measured separately on a one-file scan of
//! the same database and subtracted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sandgate_matcher::av::{AvDb, ScanLimits, Scanner};
use sandgate_patterns::av::{compile_databases, DbFile, CLAMAV_FLEVEL};

use sandgate_patterns::bundle::sha256_hex;
use sandgate_patterns::emit::{av_component, ModuleManifest};
use sandgate_patterns::pipeline::{AV_INTERFACE_VERSION, AV_MODULE_ID};
use sandgate_runtime::{Engine, ScanInstance, ScanOptions};
use sandgate_tests::clamav::CLAMSCAN_RAW;

use crate::{row, Row};

/// Markers of the AV section in BENCHMARKS.md.
pub const BEGIN: &str = "<!-- sandgate-bench:av:begin -->";
pub const END: &str = "<!-- sandgate-bench:av:end -->";

/// Chunk size the scanner is fed with (the host's read size).
const CHUNK: usize = 64 * 1024;

fn xorshift(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A synthetic database: `n` body signatures of random 12-byte literals
/// with a wildcard, a gap or an alternation, plus `n / 4` MD5 signatures.
fn synthetic(n: usize) -> Vec<(String, String)> {
    let mut ndb = String::new();
    let mut hdb = String::new();
    for i in 0..n {
        let b = xorshift(14, 1000 + i as u64);
        let sig = match i % 4 {
            0 => hex(&b[..12]),
            1 => format!("{}??{}", hex(&b[..6]), hex(&b[6..12])),
            2 => format!("{}{{2-8}}{}", hex(&b[..6]), hex(&b[6..12])),
            _ => format!(
                "{}({}|{}){}",
                hex(&b[..5]),
                hex(&b[5..6]),
                hex(&b[12..13]),
                hex(&b[6..12])
            ),
        };
        ndb.push_str(&format!("Synth.Body.{i}:0:*:{sig}\n"));
        if i % 4 == 0 {
            let digest = xorshift(16, 5000 + i as u64);
            hdb.push_str(&format!("{}:{}:Synth.Hash.{i}\n", hex(&digest), 1000 + i));
        }
    }
    vec![("synth.ndb".into(), ndb), ("synth.hdb".into(), hdb)]
}

fn example_dbs(shared: &Path) -> Result<Vec<(String, String)>> {
    let dir = shared.join("clamav");
    let mut out = Vec::new();
    for name in ["example.hdb", "example.hsb", "example.ndb", "example.ldb"] {
        let text = std::fs::read_to_string(dir.join(name)).with_context(|| name.to_string())?;
        // clamscan refuses `*` sizes without the minimum FLEVEL field.
        let text: String = text
            .lines()
            .map(|l| {
                if l.contains(":*:") && !l.starts_with('#') && l.split(':').count() == 3 {
                    format!("{l}:73\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        out.push((name.to_string(), text));
    }
    Ok(out)
}

struct Corpus {
    dir: PathBuf,
    files: Vec<PathBuf>,
    data: Vec<Vec<u8>>,
    bytes: u64,
}

impl Drop for Corpus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn corpus(total: usize) -> Result<Corpus> {
    let dir = std::env::temp_dir().join(format!("sandgate-bench-scan-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    let mut data = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/usr/share/clamav-testfiles") {
        let mut list: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        list.sort();
        for p in list {
            data.push(std::fs::read(&p)?);
            files.push(p);
        }
    }
    let per_file = 1 << 20;
    let clam_exe = data.first().cloned().unwrap_or_default();
    for i in 0..total.div_ceil(per_file) {
        let mut d = xorshift(per_file, 77 + i as u64);
        // A known file embedded in every fourth file: some hits to verify.
        if i % 4 == 0 && clam_exe.len() < d.len() {
            d[4096..4096 + clam_exe.len()].copy_from_slice(&clam_exe);
        }
        let p = dir.join(format!("gen-{i:03}.bin"));
        std::fs::write(&p, &d)?;
        files.push(p);
        data.push(d);
    }
    let bytes = data.iter().map(|d| d.len() as u64).sum();
    Ok(Corpus {
        dir,
        files,
        data,
        bytes,
    })
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

/// Native scanner over the whole corpus: (detections, time of one pass).
fn native_pass(db: &AvDb, corpus: &Corpus) -> (usize, Duration) {
    let start = Instant::now();
    let mut found = 0;
    for d in &corpus.data {
        let mut s = Scanner::new(
            db,
            ScanLimits {
                max_file_size: u64::MAX,
                all_match: true,
            },
        );
        for c in d.chunks(CHUNK) {
            s.feed(c);
        }
        found += s.finish().detections.len();
    }
    (found, start.elapsed())
}

/// The AV module (wasm, default engine limits) over the whole corpus.
fn wasm_pass(inst: &mut ScanInstance, corpus: &Corpus) -> Result<(usize, Duration)> {
    let opts = ScanOptions {
        max_file_size: 0,
        all_match: true,
        max_scan_fuel: None,
    };
    let start = Instant::now();
    let mut found = 0;
    for d in &corpus.data {
        let id = inst.begin(&opts)?;
        for c in d.chunks(CHUNK) {
            inst.feed(id, c)?;
        }
        let report = inst.finish(id)?;
        if let Some(l) = report.limit_exceeded {
            bail!("the AV module hit its {l} limit");
        }
        found += report.detections.len();
    }
    Ok((found, start.elapsed()))
}

/// One clamscan run over `files`; returns (FOUND lines, wall time).
fn clamscan_run(dbs: &[PathBuf], files: &[PathBuf]) -> Result<(usize, Duration)> {
    let mut cmd = Command::new("clamscan");
    cmd.args(CLAMSCAN_RAW);
    for d in dbs {
        cmd.arg("-d").arg(d);
    }
    cmd.arg("--").args(files);
    let start = Instant::now();
    let out = cmd.output().context("running clamscan")?;
    let took = start.elapsed();
    if !matches!(out.status.code(), Some(0 | 1)) {
        bail!(
            "clamscan failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let found = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(" FOUND"))
        .count();
    Ok((found, took))
}

/// Rows for one database over the corpus.
fn db_rows(
    engine: &Engine,
    label: &str,
    dbs: &[(String, String)],
    corpus: &Corpus,
    secs: f64,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let files: Vec<DbFile> = dbs
        .iter()
        .map(|(n, t)| DbFile { name: n, text: t })
        .collect();
    let start = Instant::now();
    let out = compile_databases(&files, CLAMAV_FLEVEL);
    let compile = start.elapsed();
    if !out.errors.is_empty() {
        bail!("{label}: {}", out.errors[0]);
    }
    let db = out.db;
    rows.push(row(
        format!("AV {label}: compiled"),
        format!(
            "{} signatures in {:.1} ms, {} KiB",
            db.len(),
            compile.as_secs_f64() * 1e3,
            db.to_bytes().len() / 1024
        ),
    ));

    // Native: best of repeated passes for about `secs`.
    let (found, first) = native_pass(&db, corpus);
    let mut best = first;
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        best = best.min(native_pass(&db, corpus).1);
    }
    let native = mbps(corpus.bytes, best);

    // The same database as an AV module, loaded and run by the runtime.
    let content = db.to_bytes();
    let manifest = ModuleManifest {
        name: AV_MODULE_ID.into(),
        version: "1".into(),
        kind: "av".into(),
        interface: AV_INTERFACE_VERSION.into(),
        rules: db.len() as u32,
        content_sha256: sha256_hex(&content),
    };
    let component = av_component(&db, &manifest)?;
    let t = Instant::now();
    let module = engine.load(AV_MODULE_ID, &component)?;
    let mut inst = module.instantiate_scanner()?;
    let load = t.elapsed();
    let (wasm_found, first) = wasm_pass(&mut inst, corpus)?;
    let mut wbest = first;
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        wbest = wbest.min(wasm_pass(&mut inst, corpus)?.1);
    }
    let wasm = mbps(corpus.bytes, wbest);
    rows.push(row(
        format!("AV {label}: module load + instantiate"),
        format!(
            "{:.1} ms, module {} KiB",
            load.as_secs_f64() * 1e3,
            component.len() / 1024
        ),
    ));
    rows.push(Row {
        name: format!("AV {label}: wasm scan (fuel), 64 KiB chunks"),
        value: format!("{wasm:.0} MB/s ({wasm_found} detections)"),
        baseline: format!("native {native:.0} MB/s"),
        ratio: format!("{:.2}x native", wasm / native.max(1e-9)),
    });

    // clamscan: best of three, minus start-up + load measured on one tiny file.
    let dir = corpus.dir.join(format!("db-{}", label.replace(' ', "-")));
    std::fs::create_dir_all(&dir)?;
    let mut paths = Vec::new();
    for (n, t) in dbs {
        let p = dir.join(n);
        std::fs::write(&p, t)?;
        paths.push(p);
    }
    let tiny = dir.join("tiny.bin");
    std::fs::write(&tiny, b"nothing to see here")?;
    let clam = (|| -> Result<(f64, Duration, usize)> {
        let mut load = Duration::MAX;
        let mut full = Duration::MAX;
        let mut found = 0;
        for _ in 0..3 {
            load = load.min(clamscan_run(&paths, std::slice::from_ref(&tiny))?.1);
            let (f, t) = clamscan_run(&paths, &corpus.files)?;
            found = f;
            full = full.min(t);
        }
        let scan = full.saturating_sub(load);
        Ok((mbps(corpus.bytes, scan), load, found))
    })();
    match clam {
        Ok((clam_mbps, load, clam_found)) => {
            rows.push(row(
                format!("AV {label}: clamscan start-up + DB load"),
                format!("{:.0} ms (subtracted below)", load.as_secs_f64() * 1e3),
            ));
            rows.push(Row {
                name: format!("AV {label}: native scan, {} MB", corpus.bytes / 1_000_000),
                value: format!("{native:.0} MB/s ({found} detections)"),
                baseline: format!("clamscan {clam_mbps:.0} MB/s ({clam_found} FOUND lines)"),
                ratio: format!("{:.2}x clamscan", native / clam_mbps.max(1e-9)),
            });
        }
        Err(e) => {
            rows.push(row(
                format!("AV {label}: native scan, {} MB", corpus.bytes / 1_000_000),
                format!("{native:.0} MB/s ({found} detections); clamscan: {e:#}"),
            ));
        }
    }
    Ok(())
}

/// All AV rows.
pub fn scan_rows(
    engine: &Engine,
    secs: f64,
    corpus_bytes: usize,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let corpus = corpus(corpus_bytes)?;
    let shared = crate::repo_root().join("../shared/data");
    if shared.is_dir() {
        db_rows(
            engine,
            "example DBs",
            &example_dbs(&shared)?,
            &corpus,
            secs,
            rows,
        )?;
    } else {
        rows.push(row("AV example DBs", "skipped: ../shared/data not present"));
    }
    db_rows(
        engine,
        "synthetic 4000 body + 1000 MD5",
        &synthetic(4000),
        &corpus,
        secs,
        rows,
    )?;
    Ok(())
}
