//! Helpers for the ClamAV parity test (`tests/tests/clamav_parity.rs`):
//! running Debian's `clamscan` on raw files, scanning the same files with
//! Sandgate's AV engine (whole and in chunks), and the generated corpus.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use sandgate_matcher::av::{AvDb, ScanLimits, Scanner};
use sandgate_patterns::av::{compile_databases, AvCompileOutput, DbFile, CLAMAV_FLEVEL};

/// Per file: the signature names detected (without `.UNOFFICIAL`).
pub type Detections = BTreeMap<PathBuf, BTreeSet<String>>;

/// clamscan options that make it scan each file's raw bytes only: no
/// container unpacking, no PE unpackers, no text normalisation (HTML), no
/// bytecode, no heuristics, no cache. Only databases given with `-d` load.
pub const CLAMSCAN_RAW: &[&str] = &[
    "--no-summary",
    "--allmatch",
    "--bytecode=no",
    "--heuristic-alerts=no",
    "--disable-cache",
    "--scan-archive=no",
    "--scan-pdf=no",
    "--scan-ole2=no",
    "--scan-html=no",
    "--scan-mail=no",
    "--scan-pe=no",
    "--scan-elf=no",
    "--scan-swf=no",
    "--scan-xmldocs=no",
    "--scan-hwp3=no",
    "--scan-onenote=no",
    "--scan-image=no",
];

/// Path of `clamscan`, or an error telling how to get it.
pub fn clamscan() -> anyhow::Result<PathBuf> {
    find_tool("clamscan")
}

/// Path of `sigtool` (writes hash signatures of files).
pub fn sigtool() -> anyhow::Result<PathBuf> {
    find_tool("sigtool")
}

fn find_tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "`{name}` is not installed: the ClamAV parity test needs Debian's clamav and \
         clamav-testfiles packages; run scripts/test.sh (it installs them)"
    )
}

/// Debian's `clamav-testfiles` directory, or an error telling how to get it.
pub fn testfiles() -> anyhow::Result<Vec<PathBuf>> {
    let dir = Path::new("/usr/share/clamav-testfiles");
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "{}: missing; run scripts/test.sh (it installs clamav-testfiles)",
            dir.display()
        )
    })?;
    for e in entries {
        let p = e?.path();
        if p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Run clamscan with databases `dbs` over `files`; exit code 2 (error,
/// e.g. a database clamscan refuses) is an error carrying its stderr.
pub fn clamscan_detections(dbs: &[PathBuf], files: &[PathBuf]) -> anyhow::Result<Detections> {
    let mut cmd = Command::new(clamscan()?);
    cmd.args(CLAMSCAN_RAW);
    for db in dbs {
        cmd.arg("-d").arg(db);
    }
    cmd.arg("--").args(files);
    let out = cmd.output().context("running clamscan")?;
    let code = out.status.code().unwrap_or(-1);
    if code != 0 && code != 1 {
        bail!(
            "clamscan exited with {code}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut map: Detections = files.iter().map(|f| (f.clone(), BTreeSet::new())).collect();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = line.strip_suffix(" FOUND") else {
            continue;
        };
        let Some((path, name)) = rest.rsplit_once(": ") else {
            continue;
        };
        let name = name.strip_suffix(".UNOFFICIAL").unwrap_or(name);
        map.entry(PathBuf::from(path))
            .or_default()
            .insert(name.to_string());
    }
    Ok(map)
}

/// Compile database files (read from disk) with Sandgate.
pub fn compile_files(dbs: &[PathBuf]) -> anyhow::Result<AvCompileOutput> {
    let mut texts = Vec::new();
    for db in dbs {
        let name = db
            .file_name()
            .and_then(|n| n.to_str())
            .context("database name")?
            .to_string();
        let text = std::fs::read_to_string(db).with_context(|| db.display().to_string())?;
        texts.push((name, text));
    }
    let files: Vec<DbFile> = texts
        .iter()
        .map(|(name, text)| DbFile { name, text })
        .collect();
    Ok(compile_databases(&files, CLAMAV_FLEVEL))
}

/// Names Sandgate detects in `data` fed in `chunk`-byte pieces.
pub fn sandgate_scan(db: &AvDb, data: &[u8], chunk: usize) -> BTreeSet<String> {
    let mut s = Scanner::new(
        db,
        ScanLimits {
            max_file_size: u64::MAX,
            all_match: true,
        },
    );
    for c in data.chunks(chunk.max(1)) {
        s.feed(c);
    }
    s.finish()
        .detections
        .iter()
        .map(|d| db.name(d.signature).to_string())
        .collect()
}

/// Sandgate's detections for `files`, read whole and fed in one chunk.
pub fn sandgate_detections(db: &AvDb, files: &[PathBuf]) -> anyhow::Result<Detections> {
    let mut map = Detections::new();
    for f in files {
        let data = std::fs::read(f).with_context(|| f.display().to_string())?;
        map.insert(f.clone(), sandgate_scan(db, &data, data.len()));
    }
    Ok(map)
}

/// Differences between two detection maps, one line per file; empty when
/// identical.
pub fn diff(clamscan: &Detections, sandgate: &Detections) -> Vec<String> {
    let mut out = Vec::new();
    let files: BTreeSet<&PathBuf> = clamscan.keys().chain(sandgate.keys()).collect();
    let empty = BTreeSet::new();
    for f in files {
        let c = clamscan.get(f).unwrap_or(&empty);
        let s = sandgate.get(f).unwrap_or(&empty);
        if c != s {
            out.push(format!(
                "{}: clamscan {:?}, sandgate {:?}",
                f.display(),
                c,
                s
            ));
        }
    }
    out
}

/// Deterministic filler bytes (xorshift), free of the marker literals the
/// generated databases use (all markers contain upper-case ASCII; filler
/// bytes are masked out of that range).
pub fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = (x >> 24) as u8;
            if b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'!' {
                b | 0x80
            } else {
                b
            }
        })
        .collect()
}

/// A file of `len` filler bytes with `marks` written at their offsets
/// (negative offsets count from the end).
pub fn with_marks(len: usize, seed: u64, marks: &[(i64, &[u8])]) -> Vec<u8> {
    let mut data = filler(len, seed);
    for (at, bytes) in marks {
        let at = if *at < 0 { len as i64 + *at } else { *at };
        let Ok(at) = usize::try_from(at) else {
            continue;
        };
        if at + bytes.len() <= data.len() {
            data[at..at + bytes.len()].copy_from_slice(bytes);
        }
    }
    data
}

/// A workspace binary (`sandgate`, `sandgate-patc`) from the target
/// directory this test was built into; scripts/test.sh builds every target
/// before the tests run.
pub fn workspace_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("test executable path")?;
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target directory")?;
    let p = dir.join(name);
    if !p.is_file() {
        bail!(
            "{} is not built: run scripts/test.sh (or `cargo build -p sandgate-host -p sandgate-patc`) first",
            p.display()
        );
    }
    Ok(p)
}

/// The wasm path end to end: `sandgate-patc build -o BUNDLE DBS…` then
/// `sandgate scan --allmatch --no-summary --db BUNDLE FILES…` (the AV module
/// in the runtime, fed 64 KiB chunks), parsed like clamscan's output.
pub fn sandgate_cli_detections(
    dbs: &[PathBuf],
    files: &[PathBuf],
    work: &Path,
) -> anyhow::Result<Detections> {
    let bundle = work.join("av.bundle");
    let out = Command::new(workspace_bin("sandgate-patc")?)
        .arg("build")
        .arg("-o")
        .arg(&bundle)
        .args(dbs)
        .output()
        .context("running sandgate-patc build")?;
    if !out.status.success() {
        bail!(
            "sandgate-patc build failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let out = Command::new(workspace_bin("sandgate")?)
        .args(["scan", "--allmatch", "--no-summary", "--db"])
        .arg(&bundle)
        .arg("--")
        .args(files)
        .output()
        .context("running sandgate scan")?;
    let code = out.status.code().unwrap_or(-1);
    if code != 0 && code != 1 {
        bail!(
            "sandgate scan exited with {code}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut map: Detections = files.iter().map(|f| (f.clone(), BTreeSet::new())).collect();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = line.strip_suffix(" FOUND") else {
            continue;
        };
        let Some((path, name)) = rest.rsplit_once(": ") else {
            continue;
        };
        map.entry(PathBuf::from(path))
            .or_default()
            .insert(name.to_string());
    }
    Ok(map)
}

/// The AV modules of `bundle` loaded into the runtime directly and fed
/// `chunk` bytes per `feed` call (the wasm guest's own chunk handling,
/// without the CLI's 64 KiB reads).
pub fn wasm_chunked(bundle: &Path, files: &[PathBuf], chunk: usize) -> anyhow::Result<Detections> {
    let bundle = sandgate_patterns::bundle::Bundle::read(bundle)?;
    let engine = crate::engine();
    let mut instances = Vec::new();
    for (entry, bytes) in bundle.manifest.modules.iter().zip(&bundle.modules) {
        let module = engine.load(&entry.id, bytes)?;
        instances.push(module.instantiate_scanner()?);
    }
    let opts = sandgate_runtime::ScanOptions {
        max_file_size: 0,
        all_match: true,
        max_scan_fuel: None,
    };
    let mut map = Detections::new();
    for f in files {
        let data = std::fs::read(f).with_context(|| f.display().to_string())?;
        let mut names = BTreeSet::new();
        for inst in &mut instances {
            let id = inst.begin(&opts)?;
            for c in data.chunks(chunk.max(1)) {
                inst.feed(id, c)?;
            }
            let report = inst.finish(id)?;
            if let Some(l) = report.limit_exceeded {
                bail!("{}: the AV module hit its {l} limit", f.display());
            }
            let rules = &inst.module().info().rules;
            for d in &report.detections {
                if let Some(r) = rules.get(d.signature as usize) {
                    names.insert(r.msg.clone());
                }
            }
        }
        map.insert(f.clone(), names);
    }
    Ok(map)
}
