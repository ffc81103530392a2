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
    let o = patc_in(dir, &args);
    ok(&o);
    // Off a terminal no progress is drawn: logs get the summary only.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\r'),
        "{stderr:?}"
    );
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

    let field = root().join("field-engines.yaml");
    let json = ok(&patc_in(
        dir.path(),
        &["inspect", "module.sgb", "--field", s(&field), "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&json).expect("inspect --json is JSON");
    assert_eq!(v["bundle"]["version"], 7);
    let m = &v["modules"][0];
    assert_eq!(m["exports"][0], "sandgate:pattern/inspector@1.0.0");
    assert_eq!(m["describe"]["rules"][0]["sid"], 1000001);
    assert_eq!(m["describe"]["rules"].as_array().map(Vec::len), Some(10));
    assert_eq!(m["field_engines"][0]["accepts"], true);
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

/// `explain` run in the examples folder, so the output names files as an
/// author would type them.
fn explain(args: &[&str]) -> Output {
    let mut all = vec![
        "explain",
        "--pcap",
        "example.pcap",
        "--rules",
        "example.rules",
    ];
    all.extend_from_slice(args);
    patc_in(&root().join("patterns/examples"), &all)
}

#[test]
fn explain_a_rule_that_fires_on_a_split_signature() {
    let out = ok(&explain(&["--sid", "1000011"]));
    assert!(out.contains("fired on packets [43]"), "{out}");
    golden("explain-1000011.txt", &out);
}

#[test]
fn explain_a_rule_that_nearly_matches() {
    let out = ok(&explain(&["--sid", "1000001", "--show", "0"]));
    assert!(out.contains("fired on packets [5]"), "{out}");
    assert!(
        out.contains(
            "nearest miss: packet 13: content 2 \"' or 1=1\" nocase distance 0: not found"
        ),
        "{out}"
    );
    golden("explain-1000001.txt", &out);
}

#[test]
fn explain_distance_and_within_on_one_packet() {
    let out = ok(&explain(&["--sid", "1000003", "--packet", "23"]));
    assert!(
        out.contains("content 2 \"CMD:\" within 4: found at 4..8 (window 4..8 from the previous match end at 4)"),
        "{out}"
    );
    golden("explain-1000003-packet-23.txt", &out);
}

#[test]
fn explain_names_a_missing_sid_and_a_rule_that_did_not_compile() {
    let o = explain(&["--sid", "4242"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no rule 1:4242 in example.rules"),
        "{stderr}"
    );
    let o = explain(&["--sid", "1000010"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("rule 1:1000010 reads application-layer buffers (interface 1.2.0)"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("smb.rules");
    std::fs::write(
        &rules,
        "alert smb any any -> any any (msg:\"smb\"; content:\"x\"; sid:77; rev:1;)\n",
    )
    .expect("write rules");
    let o = patc_in(
        &root().join("patterns/examples"),
        &[
            "explain",
            "--pcap",
            "example.pcap",
            "--rules",
            s(&rules),
            "--sid",
            "77",
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("rule 1:77 did not compile: ") && stderr.contains("smb"),
        "{stderr}"
    );
}

/// The packets `explain --all` says the rule fired on.
fn explained_alerts(sid: u32) -> Vec<u64> {
    let out = ok(&explain(&["--sid", &sid.to_string(), "--all"]));
    let line = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("fired on packets ["))
        .unwrap_or_else(|| panic!("no summary for sid {sid}:\n{out}"));
    line.trim_end_matches(']')
        .split(", ")
        .filter(|s| !s.is_empty())
        .map(|n| n.parse().expect("packet number"))
        .collect()
}

#[test]
fn explain_agrees_with_the_engine_on_every_packet_for_every_example_sid() {
    use sandgate_host::replay::{load_bundle, replay, ReplayOptions};
    use std::collections::BTreeMap;

    let dir = tempfile::tempdir().expect("tempdir");
    let rules = root().join("patterns/examples/example.rules");
    let bundle = build(dir.path(), &[s(&rules)]);
    // An engine offering 1.0/1.1 runs the 1.0.0 variant: the packet rules,
    // which are what explain traces.
    let engine = sandgate_runtime::Engine::new(sandgate_runtime::EngineConfig {
        interfaces: vec![
            sandgate_runtime::version::InterfaceVersion::new(1, 0, 0),
            sandgate_runtime::version::InterfaceVersion::new(1, 1, 0),
        ],
        ..sandgate_runtime::EngineConfig::default()
    })
    .expect("engine");
    let b = sandgate_patterns::bundle::Bundle::read(&bundle).expect("bundle");
    let loaded = load_bundle(&engine, &b);
    assert!(loaded.refused.is_empty());
    let mut engine_alerts: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let pcap = root().join("patterns/examples/example.pcap");
    replay(
        &loaded.modules,
        &pcap,
        &ReplayOptions::default(),
        &mut |a| {
            engine_alerts
                .entry(a.signature_id)
                .or_default()
                .push(a.pcap_cnt);
            Ok(())
        },
    )
    .map_err(|(_, e)| e)
    .expect("replay");
    let sids: Vec<u32> = loaded.modules[0]
        .info()
        .rules
        .iter()
        .map(|r| r.sid)
        .collect();
    assert_eq!(sids.len(), 10, "every compiled example rule is checked");
    for sid in sids {
        let engine = engine_alerts.remove(&sid).unwrap_or_default();
        assert_eq!(
            explained_alerts(sid),
            engine,
            "sid {sid}: explain and the engine disagree"
        );
    }
    assert!(engine_alerts.is_empty(), "{engine_alerts:?}");
}

#[test]
fn explain_reads_the_rule_set_out_of_a_bundle_and_agrees_with_the_rule_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = root().join("patterns/examples/example.rules");
    assert!(build(dir.path(), &[s(&rules)]).exists());
    let pcap = root().join("patterns/examples/example.pcap");
    let from_bundle = ok(&patc_in(
        dir.path(),
        &[
            "explain",
            "--sid",
            "1000001",
            "--pcap",
            s(&pcap),
            "module.sgb",
        ],
    ));
    assert!(
        from_bundle
            .contains("from module.sgb: module `ips-rules` (interface 1.0.0), bundle version 7"),
        "{from_bundle}"
    );
    let from_rules = ok(&explain(&["--sid", "1000001"]));
    let packets = |t: &str| t[t.find("\npacket ").expect("a packet shown")..].to_string();
    assert_eq!(packets(&from_bundle), packets(&from_rules));
    let o = patc_in(
        dir.path(),
        &[
            "explain",
            "--sid",
            "1000010",
            "--pcap",
            s(&pcap),
            "module.sgb",
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    // The http rule ships in the 1.2.0 variant only; explain says what it
    // cannot trace instead of pretending.
    assert!(
        stderr.contains("rule 1:1000010 reads application-layer buffers"),
        "{stderr}"
    );
}

#[test]
fn explain_shows_a_content_found_outside_its_within_window() {
    // Packet 21 carries |de ad be ef| "CMD:whoami": "whoami" is at 8..14,
    // but `within:8` after the magic allows only 4..12, and it ends at 14.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("within.rules"),
        "alert tcp any any -> any 4444 (msg:\"whoami right after the magic\"; \
         content:\"|de ad be ef|\"; depth:4; content:\"whoami\"; distance:0; within:8; sid:77;)\n",
    )
    .expect("write rules");
    let pcap = root().join("patterns/examples/example.pcap");
    let out = ok(&patc_in(
        dir.path(),
        &[
            "explain",
            "--sid",
            "77",
            "--pcap",
            s(&pcap),
            "--rules",
            "within.rules",
            "--packet",
            "21",
        ],
    ));
    assert!(
        out.contains(
            "content 2 \"whoami\" distance 0 within 8: not found (window 4..12 from the previous match end at 4); it occurs at 8..14, outside the window"
        ),
        "{out}"
    );
    assert!(out.contains("fired on packets []"), "{out}");
    golden("explain-within-miss.txt", &out);
}
