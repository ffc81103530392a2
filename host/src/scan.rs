//! `sandgate scan`: files through the bundle's AV modules, reported the way
//! `clamscan` reports them, so scripts written for clamscan keep working.
//!
//! Each file is read in [`CHUNK`]-byte pieces and every piece is fed to every
//! AV module's open scan ([`ScanInstance`]); reading stops early once every
//! module's outcome is settled. A file is never held whole in memory.
//!
//! Output, as clamscan 1.4 prints it:
//!
//! ```text
//! /abs/path/file: Eicar-Test-Signature FOUND
//! /abs/path/other: OK
//! /abs/path/unreadable: Permission denied ERROR
//!
//! ----------- SCAN SUMMARY -----------
//! Known viruses: 3
//! Engine version: 0.1.0
//! Scanned directories: 1
//! Scanned files: 2
//! Infected files: 1
//! Data scanned: 0.01 MB
//! Data read: 0.01 MB (ratio 1.00:1)
//! Time: 0.004 sec (0 m 0 s)
//! Start Date: 2026:11:25 19:24:56
//! End Date:   2026:11:25 19:24:56
//! ```
//!
//! Exit codes as clamscan's: 1 when anything was found, else 2 when any
//! error occurred (a path that does not exist, an unreadable file, a module
//! fault), else 0. An error on one file never stops the others. Limits follow
//! clamscan too: a file over `max_filesize` is not scanned, and a file whose
//! scan exceeds a limit is `OK` with a warning on stderr — or, with
//! `alert_exceeds_max`, the heuristic `Heuristics.Limits.Exceeded.*` FOUND.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sandgate_runtime::wit::ModuleKind;
use sandgate_runtime::{LoadedModule, ScanId, ScanInstance, ScanLimit, ScanOptions, FUEL_PER_MS};

/// Bytes per `feed` call.
pub const CHUNK: usize = 64 * 1024;

/// clamscan's default `--max-filesize` (100 MiB).
pub const DEFAULT_MAX_FILESIZE: u64 = 100 * 1024 * 1024;

/// clamscan's default `--max-scantime` (120 s).
pub const DEFAULT_MAX_SCANTIME_MS: u64 = 120_000;

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// Descend into directories (`-r`); without it, a directory given on
    /// the command line has only its own files scanned, as clamscan does.
    pub recursive: bool,
    /// Report every matching signature (`--allmatch`).
    pub all_match: bool,
    /// Files larger than this are not scanned; 0 = no limit.
    pub max_filesize: u64,
    /// Scan-time limit per file, in milliseconds of wasm fuel
    /// ([`FUEL_PER_MS`] units per ms); 0 = the engine's default.
    pub max_scantime_ms: u64,
    /// Report an exceeded limit as a `Heuristics.Limits.Exceeded.*` detection.
    pub alert_exceeds_max: bool,
    /// Print only infected files (`-i`).
    pub infected_only: bool,
    /// Print the summary block.
    pub summary: bool,
    /// Bytes per `feed`.
    pub chunk: usize,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            recursive: false,
            all_match: false,
            max_filesize: DEFAULT_MAX_FILESIZE,
            max_scantime_ms: DEFAULT_MAX_SCANTIME_MS,
            alert_exceeds_max: false,
            infected_only: false,
            summary: true,
            chunk: CHUNK,
        }
    }
}

/// The counters of the summary block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Signatures across the AV modules.
    pub known_viruses: u64,
    pub scanned_directories: u64,
    pub scanned_files: u64,
    pub infected_files: u64,
    /// Paths or files that ended in an error.
    pub errors: u64,
    /// Bytes fed to the modules.
    pub data_scanned: u64,
    /// Bytes read from files.
    pub data_read: u64,
    pub elapsed: Duration,
    /// Seconds since the Unix epoch at start and end.
    pub start_unix: u64,
    pub end_unix: u64,
}

impl Summary {
    /// clamscan's exit code: 1 found, else 2 error, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.infected_files > 0 {
            1
        } else if self.errors > 0 {
            2
        } else {
            0
        }
    }

    /// The `----------- SCAN SUMMARY -----------` block.
    pub fn text(&self) -> String {
        let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
        let ratio = if self.data_read == 0 {
            0.0
        } else {
            self.data_scanned as f64 / self.data_read as f64
        };
        let secs = self.elapsed.as_secs();
        format!(
            "\n----------- SCAN SUMMARY -----------\n\
             Known viruses: {}\n\
             Engine version: {}\n\
             Scanned directories: {}\n\
             Scanned files: {}\n\
             Infected files: {}\n\
             Data scanned: {:.2} MB\n\
             Data read: {:.2} MB (ratio {ratio:.2}:1)\n\
             Time: {:.3} sec ({} m {} s)\n\
             Start Date: {}\n\
             End Date:   {}\n",
            self.known_viruses,
            env!("CARGO_PKG_VERSION"),
            self.scanned_directories,
            self.scanned_files,
            self.infected_files,
            mb(self.data_scanned),
            mb(self.data_read),
            self.elapsed.as_secs_f64(),
            secs / 60,
            secs % 60,
            clam_date(self.start_unix),
            clam_date(self.end_unix),
        )
    }
}

/// `YYYY:MM:DD HH:MM:SS` in UTC, clamscan's date format.
fn clam_date(unix: u64) -> String {
    let days = unix / 86_400;
    let rem = unix % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}:{m:02}:{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What one file (or stream payload) came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Signature names found, in module then detection order.
    pub found: Vec<String>,
    /// A limit that cut the scan short (the first one met).
    pub limit: Option<ScanLimit>,
    /// Module faults, as `module: kind: message`.
    pub faults: Vec<String>,
    /// Bytes read (and fed).
    pub bytes: u64,
}

/// Why a scan could not start.
#[derive(Debug, thiserror::Error)]
pub enum ScanSetupError {
    /// The bundle holds no AV module this engine loaded.
    #[error("no AV module to scan with (the bundle has {0} module(s), none of kind av)")]
    NoAvModule(usize),
    /// A module could not be instantiated.
    #[error("{0}")]
    Instantiate(String),
}

/// One instance per AV module, scanning file after file.
pub struct FileScanner {
    instances: Vec<ScanInstance>,
    config: ScanConfig,
}

impl FileScanner {
    /// Instances of every AV module in `modules` (IPS modules are ignored).
    pub fn new(modules: &[LoadedModule], config: ScanConfig) -> Result<Self, ScanSetupError> {
        let mut instances = Vec::new();
        for m in modules.iter().filter(|m| m.kind() == ModuleKind::Av) {
            instances.push(
                m.instantiate_scanner()
                    .map_err(|f| ScanSetupError::Instantiate(f.to_string()))?,
            );
        }
        if instances.is_empty() {
            return Err(ScanSetupError::NoAvModule(modules.len()));
        }
        Ok(FileScanner { instances, config })
    }

    /// Signatures across the modules (`Known viruses`).
    pub fn known_viruses(&self) -> u64 {
        self.instances
            .iter()
            .map(|i| i.module().info().rules.len() as u64)
            .sum()
    }

    fn options(&self) -> ScanOptions {
        ScanOptions {
            max_file_size: self.config.max_filesize,
            all_match: self.config.all_match,
            max_scan_fuel: (self.config.max_scantime_ms > 0)
                .then(|| self.config.max_scantime_ms.saturating_mul(FUEL_PER_MS)),
        }
    }

    /// Scans everything `reader` yields through every module, `chunk` bytes
    /// at a time. An I/O error is returned; module faults are in the
    /// verdict (the other modules' results stand).
    pub fn scan_reader(&mut self, reader: &mut dyn Read) -> io::Result<Verdict> {
        let opts = self.options();
        let mut verdict = Verdict::default();
        let mut open: Vec<Option<ScanId>> = Vec::with_capacity(self.instances.len());
        for inst in &mut self.instances {
            match inst.begin(&opts) {
                Ok(id) => open.push(Some(id)),
                Err(f) => {
                    verdict.faults.push(f.to_string());
                    open.push(None);
                }
            }
        }
        let mut settled: Vec<bool> = open.iter().map(Option::is_none).collect();
        let mut buf = vec![0u8; self.config.chunk.max(1)];
        let read_result = loop {
            if settled.iter().all(|&s| s) {
                break Ok(());
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            verdict.bytes += n as u64;
            for (i, inst) in self.instances.iter_mut().enumerate() {
                let (Some(id), false) = (open[i], settled[i]) else {
                    continue;
                };
                match inst.feed(id, &buf[..n]) {
                    Ok(done) => settled[i] = done,
                    Err(f) => {
                        verdict.faults.push(f.to_string());
                        open[i] = None;
                        settled[i] = true;
                    }
                }
            }
        };
        for (i, inst) in self.instances.iter_mut().enumerate() {
            let Some(id) = open[i] else { continue };
            if read_result.is_err() {
                inst.abandon(id);
                continue;
            }
            match inst.finish(id) {
                Ok(report) => {
                    let rules = &inst.module().info().rules;
                    for d in &report.detections {
                        if let Some(r) = rules.get(d.signature as usize) {
                            verdict.found.push(r.msg.clone());
                        }
                    }
                    if verdict.limit.is_none() {
                        verdict.limit = report.limit_exceeded;
                    }
                }
                Err(f) => verdict.faults.push(f.to_string()),
            }
        }
        read_result.map(|()| verdict)
    }
}

/// The heuristic name clamscan reports for an exceeded limit.
pub fn limit_heuristic(limit: ScanLimit) -> &'static str {
    match limit {
        ScanLimit::FileSize => "Heuristics.Limits.Exceeded.MaxFileSize",
        ScanLimit::ScanTime => "Heuristics.Limits.Exceeded.MaxScanTime",
    }
}

/// Scans `paths` and writes clamscan-style lines to `out`, warnings to
/// `err`, and the summary when configured. Returns the summary; its
/// [`exit_code`](Summary::exit_code) is the command's.
pub fn scan_paths(
    scanner: &mut FileScanner,
    paths: &[PathBuf],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<Summary> {
    let started = Instant::now();
    let mut s = Summary {
        known_viruses: scanner.known_viruses(),
        start_unix: now_unix(),
        ..Summary::default()
    };
    for path in paths {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                writeln!(err, "{}: {}", path.display(), io_reason(&e))?;
                writeln!(err, "WARNING: {}: Can't access file", path.display())?;
                s.errors += 1;
                continue;
            }
        };
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        if meta.is_dir() {
            scan_dir(scanner, &shown, true, &mut s, out, err)?;
        } else {
            scan_file(scanner, &shown, &mut s, out, err)?;
        }
    }
    s.elapsed = started.elapsed();
    s.end_unix = now_unix();
    if scanner.config.summary {
        write!(out, "{}", s.text())?;
    }
    Ok(s)
}

/// A directory: its files, and with `-r` its subdirectories (symlinked
/// directories inside are not followed). Entries in name order.
fn scan_dir(
    scanner: &mut FileScanner,
    dir: &Path,
    top: bool,
    s: &mut Summary,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            writeln!(out, "{}: {} ERROR", dir.display(), io_reason(&e))?;
            s.errors += 1;
            return Ok(());
        }
    };
    s.scanned_directories += 1;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if scanner.config.recursive {
                scan_dir(scanner, &p, false, s, out, err)?;
            }
        } else if meta.is_file() || (top && meta.file_type().is_symlink() && p.is_file()) {
            scan_file(scanner, &p, s, out, err)?;
        }
    }
    Ok(())
}

fn scan_file(
    scanner: &mut FileScanner,
    path: &Path,
    s: &mut Summary,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    let show = path.display();
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            writeln!(out, "{show}: {} ERROR", io_reason(&e))?;
            s.errors += 1;
            return Ok(());
        }
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    s.scanned_files += 1;
    let max = scanner.config.max_filesize;
    if max > 0 && size > max {
        // clamscan does not scan a file over the limit at all.
        return report_limit(scanner, path, ScanLimit::FileSize, s, out, err);
    }
    let verdict = match scanner.scan_reader(&mut file) {
        Ok(v) => v,
        Err(e) => {
            writeln!(out, "{show}: {} ERROR", io_reason(&e))?;
            s.errors += 1;
            return Ok(());
        }
    };
    s.data_read += verdict.bytes;
    s.data_scanned += verdict.bytes;
    if !verdict.found.is_empty() {
        s.infected_files += 1;
        let names = if scanner.config.all_match {
            &verdict.found[..]
        } else {
            &verdict.found[..1]
        };
        for name in names {
            writeln!(out, "{show}: {name} FOUND")?;
        }
        for f in &verdict.faults {
            writeln!(err, "WARNING: {show}: module fault: {f}")?;
        }
        return Ok(());
    }
    if let Some(f) = verdict.faults.first() {
        writeln!(out, "{show}: Module fault ({f}) ERROR")?;
        s.errors += 1;
        return Ok(());
    }
    if let Some(limit) = verdict.limit {
        return report_limit(scanner, path, limit, s, out, err);
    }
    if !scanner.config.infected_only {
        writeln!(out, "{show}: OK")?;
    }
    Ok(())
}

/// An exceeded limit: `OK` plus a warning naming it, or the heuristic
/// detection with `alert_exceeds_max`.
fn report_limit(
    scanner: &FileScanner,
    path: &Path,
    limit: ScanLimit,
    s: &mut Summary,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    let show = path.display();
    if scanner.config.alert_exceeds_max {
        s.infected_files += 1;
        writeln!(out, "{show}: {} FOUND", limit_heuristic(limit))?;
        return Ok(());
    }
    writeln!(err, "WARNING: {show}: limit exceeded: {limit}")?;
    if !scanner.config.infected_only {
        writeln!(out, "{show}: OK")?;
    }
    Ok(())
}

/// An I/O error as clamscan words it.
fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "No such file or directory".into(),
        io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_in_clamscans_format() {
        assert_eq!(clam_date(0), "1970:01:01 00:00:00");
        assert_eq!(clam_date(1_795_634_696), "2026:11:25 19:24:56");
    }

    #[test]
    fn exit_codes_follow_clamscan() {
        let mut s = Summary::default();
        assert_eq!(s.exit_code(), 0);
        s.errors = 1;
        assert_eq!(s.exit_code(), 2);
        s.infected_files = 1;
        assert_eq!(s.exit_code(), 1, "a detection wins over an error");
    }
}
