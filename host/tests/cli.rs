//! The `sandgate` command line on good and bad input: a clear one-line
//! error and a nonzero exit for every bad input, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sandgate_patterns::bundle::{Bundle, ModuleEntry};
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

fn example_bundle(dir: &Path) -> PathBuf {
    let report = build(&BuildOptions {
        inputs: vec![root().join("patterns/examples/example.rules")],
        vars: Vars::suricata_defaults(),
        module_id: "ips-rules".into(),
        bundle_version: Some(1),
    })
    .expect("example rules compile");
    let path = dir.join("example.sgb");
    report.bundle.write(&path).expect("write bundle");
    path
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_clean_failure(o: &Output, needle: &str) {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}:\n{err}"
    );
}

#[test]
fn replay_writes_eve_and_a_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = example_bundle(dir.path());
    let eve = dir.path().join("eve.json");
    let pcap = root().join("patterns/examples/example.pcap");
    let o = sandgate(&[
        "replay",
        "--bundle",
        bundle.to_str().expect("utf8"),
        "--pcap",
        pcap.to_str().expect("utf8"),
        "--eve",
        eve.to_str().expect("utf8"),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("SANDGATE-EXAMPLE SQL injection attempt in request"),
        "{out}"
    );
    assert!(out.contains("12 alerts"), "{out}");
    let lines = std::fs::read_to_string(&eve).expect("eve written");
    assert_eq!(lines.lines().count(), 12);
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert_eq!(v["event_type"], "alert");
    }
}

#[test]
fn truncated_capture_is_an_error_naming_the_packet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = example_bundle(dir.path());
    let full = std::fs::read(root().join("patterns/examples/example.pcap")).expect("pcap");
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &full[..full.len() - 10]).expect("write");
    let o = sandgate(&[
        "replay",
        "--bundle",
        bundle.to_str().expect("utf8"),
        "--pcap",
        cut.to_str().expect("utf8"),
    ]);
    assert_clean_failure(&o, "packet 387");
    let (out, _) = text(&o);
    // Everything before the break was still inspected.
    assert!(out.contains("packets 386"), "{out}");
}

#[test]
fn missing_and_garbage_captures_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = example_bundle(dir.path());
    let b = bundle.to_str().expect("utf8");
    let o = sandgate(&["replay", "--bundle", b, "--pcap", "/nonexistent/x.pcap"]);
    assert_clean_failure(&o, "/nonexistent/x.pcap");
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file at all").expect("write");
    let o = sandgate(&[
        "replay",
        "--bundle",
        b,
        "--pcap",
        junk.to_str().expect("utf8"),
    ]);
    assert_clean_failure(&o, "junk.pcap");
}

#[test]
fn corrupt_bundles_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read(example_bundle(dir.path())).expect("bundle");
    let pcap = root().join("patterns/examples/example.pcap");
    let p = pcap.to_str().expect("utf8");

    // A flipped byte inside the module: the manifest hash catches it.
    let mut flipped = good.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x40;
    let path = dir.path().join("flipped.sgb");
    std::fs::write(&path, &flipped).expect("write");
    let o = sandgate(&[
        "replay",
        "--bundle",
        path.to_str().expect("utf8"),
        "--pcap",
        p,
    ]);
    assert_clean_failure(&o, "SHA-256 mismatch");

    // Not a bundle at all.
    let path = dir.path().join("text.sgb");
    std::fs::write(&path, b"hello").expect("write");
    let o = sandgate(&[
        "replay",
        "--bundle",
        path.to_str().expect("utf8"),
        "--pcap",
        p,
    ]);
    assert_clean_failure(&o, "not a Sandgate bundle");

    // A correctly hashed bundle whose component is garbage: the engine's
    // load check refuses it.
    let entry = ModuleEntry {
        id: "garbage".into(),
        version: "1".into(),
        kind: "ips".into(),
        interface: "1.0.0".into(),
        rules: 1,
        sha256: String::new(),
        offset: 0,
        len: 0,
    };
    let bundle = Bundle::new(1, 1, vec![(entry, b"\0asm\x0d\0\x01\0garbage".to_vec())]);
    let path = dir.path().join("garbage.sgb");
    bundle.write(&path).expect("write");
    let o = sandgate(&[
        "replay",
        "--bundle",
        path.to_str().expect("utf8"),
        "--pcap",
        p,
    ]);
    assert_clean_failure(&o, "garbage");
}
