//! Golden-file tests of what pattern authors read: `sandgate-patc inspect`
//! and `sandgate-patc explain` output, compared line by line with
//! `tests/golden/*.txt`. Run with `UPDATE_GOLDEN=1` to rewrite the goldens
//! after an intended change, then review the diff.
//!
//! Only what varies between correct builds is masked: a component's size
//! and SHA-256 change whenever the prebuilt guest (the matcher) changes, so
//! the test checks them against the file itself and then masks them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn patc_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sandgate-patc"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run sandgate-patc")
}

fn ok(o: &Output) -> String {
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

/// Compare `actual` with `tests/golden/NAME`, or rewrite it under
/// `UPDATE_GOLDEN=1`.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("mkdir golden");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    if want != actual {
        let diff: Vec<String> = want
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (w, a))| w != a)
            .take(10)
            .map(|(i, (w, a))| format!("line {}:\n  golden: {w}\n  actual: {a}", i + 1))
            .collect();
        panic!(
            "{name} differs from the golden ({} vs {} lines; UPDATE_GOLDEN=1 rewrites it):\n{}\n--- actual ---\n{actual}",
            want.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// Check each component's printed size and SHA-256 against the bundle's
/// own bytes, then mask them.
fn mask_component_ids(out: &str, bundle: &Path) -> String {
    let b = sandgate_patterns::bundle::Bundle::read(bundle).expect("read bundle");
    let mut sizes: Vec<String> = b.modules.iter().map(|m| m.len().to_string()).collect();
    let mut shas: Vec<String> = b
        .modules
        .iter()
        .map(|m| sandgate_patterns::bundle::sha256_hex(m))
        .collect();
    let mut lines = Vec::new();
    for line in out.lines() {
        if let Some(v) = line.strip_prefix("  size        ") {
            assert_eq!(
                Some(v.to_string()),
                sizes.first().map(|s| format!("{s} bytes"))
            );
            sizes.remove(0);
            lines.push("  size        <size> bytes".to_string());
        } else if let Some(v) = line.strip_prefix("  sha256      ") {
            assert_eq!(Some(v), shas.first().map(String::as_str));
            shas.remove(0);
            lines.push("  sha256      <sha256>".to_string());
        } else {
            lines.push(line.to_string());
        }
    }
    assert!(sizes.is_empty() && shas.is_empty(), "every module shown");
    lines.join("\n") + "\n"
}

fn build(dir: &Path, inputs: &[&str]) -> PathBuf {
    let out = dir.join("module.sgb");
    let mut args = vec!["build", "-o", "module.sgb", "--bundle-version", "7"];
    args.extend_from_slice(inputs);
    ok(&patc_in(dir, &args));
    out
}

fn inspect(dir: &Path, bundle: &Path) -> String {
    let field = root().join("field-engines.yaml");
    let out = ok(&patc_in(
        dir,
        &["inspect", "module.sgb", "--field", s(&field), "--rules"],
    ));
    mask_component_ids(&out, bundle)
}

#[test]
fn inspect_of_the_example_rules_module() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = root().join("patterns/examples/example.rules");
    let bundle = build(dir.path(), &[s(&rules)]);
    let out = inspect(dir.path(), &bundle);
    assert!(out.contains("1:1000001:2  alert   SANDGATE-EXAMPLE SQL injection"));
    assert!(out.contains("sandgate 0.1.0 [1.0.0]: accepts"), "{out}");
    golden("inspect-example.txt", &out);
}

#[test]
fn inspect_of_an_av_module_names_the_engine_that_refuses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("tiny.ndb"),
        "Sandgate.Test.Marker:0:*:53414e44474154452d54455354\n\
         Sandgate.Test.Wild:0:*:deadbeef??00{2-4}cafe\n",
    )
    .expect("write db");
    std::fs::write(
        dir.path().join("tiny.hdb"),
        "44d88612fea8a8f36de82e1278abb02f:68:Sandgate.Test.Hash\n",
    )
    .expect("write db");
    let bundle = build(dir.path(), &["tiny.ndb", "tiny.hdb"]);
    let out = inspect(dir.path(), &bundle);
    assert!(out.contains("sandgate:pattern/scanner@1.1.0"), "{out}");
    assert!(out.contains("sandgate 0.1.0 [1.0.0]: refuses"), "{out}");
    assert!(
        out.contains("sandgate 0.2.0 [1.0.0,1.1.0]: accepts"),
        "{out}"
    );
    golden("inspect-av-tiny.txt", &out);
}

#[test]
fn inspect_of_the_shared_clamav_examples() {
    let shared = root().join("../shared/data/clamav");
    if !shared.join("example.ndb").exists() {
        eprintln!("skipped: {} is absent", shared.display());
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut inputs = Vec::new();
    for ext in ["hdb", "hsb", "ndb", "ldb"] {
        let from = shared.join(format!("example.{ext}"));
        let to = format!("example.{ext}");
        std::fs::copy(&from, dir.path().join(&to)).expect("copy db");
        inputs.push(to);
    }
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let bundle = build(dir.path(), &inputs);
    let out = inspect(dir.path(), &bundle);
    assert!(out.contains("(av)"), "{out}");
    golden("inspect-av-shared.txt", &out);
}

#[test]
fn inspect_names_a_file_that_is_not_a_module() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.wasm"), "just text").expect("write");
    let o = patc_in(dir.path(), &["inspect", "notes.wasm"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("notes.wasm: not a wasm component or a Sandgate bundle"),
        "{stderr}"
    );
    // A truncated component: the magic is right, the rest is missing.
    std::fs::write(dir.path().join("cut.wasm"), b"\0asm\x0d\x00\x01\x00\x07").expect("write");
    let o = patc_in(dir.path(), &["inspect", "cut.wasm"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cut.wasm"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
