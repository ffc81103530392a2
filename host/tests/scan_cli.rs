//! `sandgate scan` as a process: clamscan's exit codes (0 clean, 1 found,
//! 2 error), its option spellings, and a clear failure for a bundle without
//! an AV module.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sandgate_patterns::pipeline::{build, BuildOptions};
use sandgate_patterns::rules::Vars;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sandgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sandgate"))
        .args(args)
        .output()
        .expect("run sandgate")
}

fn bundle(dir: &Path, inputs: Vec<PathBuf>) -> PathBuf {
    let report = build(&BuildOptions {
        inputs,
        vars: Vars::suricata_defaults(),
        module_id: "ips-rules".into(),
        bundle_version: Some(1),
    })
    .expect("compiles");
    let path = dir.join("db.sgb");
    report.bundle.write(&path).expect("write bundle");
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

#[test]
fn exit_codes_and_lines_are_clamscans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ndb = dir.path().join("t.ndb");
    // "CLI-SCAN-MARKER"
    std::fs::write(&ndb, "Cli.Test.Marker:0:*:434c492d5343414e2d4d41524b4552\n").unwrap();
    let db = bundle(dir.path(), vec![ndb]);
    let bad = dir.path().join("bad.bin");
    std::fs::write(&bad, b"xxCLI-SCAN-MARKERxx").unwrap();
    let good = dir.path().join("good.txt");
    std::fs::write(&good, b"fine").unwrap();
    let missing = dir.path().join("missing.txt");

    let o = sandgate(&["scan", "--no-summary", "--db", s(&db), s(&good)]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.ends_with("good.txt: OK\n"), "{out}");

    let o = sandgate(&["scan", "-d", s(&db), s(&bad), s(&good)]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("bad.bin: Cli.Test.Marker FOUND\n"), "{out}");
    assert!(
        out.contains("----------- SCAN SUMMARY -----------\nKnown viruses: 1\n"),
        "{out}"
    );
    assert!(out.contains("Infected files: 1\n"), "{out}");

    let o = sandgate(&["scan", "--database", s(&db), s(&missing), s(&good)]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "WARNING: {}: Can't access file",
            missing.display()
        )),
        "{err}"
    );

    let o = sandgate(&[
        "scan",
        "--no-summary",
        "--max-filesize",
        "1K",
        "--alert-exceeds-max",
        "--db",
        s(&db),
        s(&bad),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("bad.bin: Cli.Test.Marker FOUND"),
        "19 bytes fit in 1K: scanned"
    );
    let o = sandgate(&[
        "scan",
        "--no-summary",
        "--max-filesize=10",
        "--alert-exceeds-max=yes",
        "--db",
        s(&db),
        s(&bad),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout)
        .contains("bad.bin: Heuristics.Limits.Exceeded.MaxFileSize FOUND"));
}

#[test]
fn a_bundle_without_an_av_module_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = bundle(
        dir.path(),
        vec![root().join("patterns/examples/example.rules")],
    );
    let o = sandgate(&["scan", "--db", s(&db), s(&db)]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no AV module"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
