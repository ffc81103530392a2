//! AV modules end to end: ClamAV databases compiled by `sandgate-patc
//! build`, files scanned the way `sandgate scan` does (clamscan's lines,
//! summary and exit codes), limits, hostile AV modules, a 1.0-only engine,
//! and reassembled TCP streams handed to the AV module during replay.

use std::path::{Path, PathBuf};

use sandgate_host::eve::{alert_table, EveWriter};
use sandgate_host::replay::{load_bundle, ReplayOptions};
use sandgate_host::scan::{scan_paths, FileScanner, ScanConfig, Summary};
use sandgate_host::synth::SynthCapture;
use sandgate_patterns::bundle::Bundle;
use sandgate_runtime::testkit::{self, AvOptions, FeedBody};
use sandgate_runtime::wit::ModuleKind;
use sandgate_runtime::{Engine, EngineConfig, InterfaceVersion, LoadError, LoadedModule};
use sandgate_tests::{build_bundle, engine, example_rules, run_replay};

/// The body signature every test file carries somewhere.
const MARKER: &[u8] = b"SANDGATE-AV-TEST-PAYLOAD";
const BODY_SIG: &str = "Sandgate.Test.Body";
const HASH_SIG: &str = "Sandgate.Test.Hash";
/// Content whose MD5 the `.hdb` names.
const HASHED: &[u8] = b"a file identified by its hash alone\n";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn md5_hex(b: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex(&Md5::digest(b))
}

/// Writes the test databases into `dir` and builds a bundle from them (plus
/// `extra` inputs); returns it with the engine's modules loaded.
fn av_bundle(dir: &Path, extra: &[PathBuf]) -> (Bundle, Vec<LoadedModule>) {
    let ndb = dir.join("test.ndb");
    std::fs::write(&ndb, format!("{BODY_SIG}:0:*:{}\n", hex(MARKER))).unwrap();
    let hdb = dir.join("test.hdb");
    std::fs::write(
        &hdb,
        format!("{}:{}:{HASH_SIG}\n", md5_hex(HASHED), HASHED.len()),
    )
    .unwrap();
    let mut inputs = vec![ndb, hdb];
    inputs.extend_from_slice(extra);
    let report = build_bundle(&inputs).expect("databases compile");
    let av = report.av.as_ref().expect("an AV module");
    assert_eq!(av.signatures, 2, "{:?} {:?}", av.skipped, av.errors);
    let loaded = load_bundle(&engine(), &report.bundle);
    assert!(loaded.refused.is_empty(), "{:?}", loaded.refused);
    (report.bundle, loaded.modules)
}

struct Run {
    out: String,
    err: String,
    summary: Summary,
}

fn scan(modules: &[LoadedModule], paths: Vec<PathBuf>, config: ScanConfig) -> Run {
    let mut scanner = FileScanner::new(modules, config).expect("scanner");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let summary = scan_paths(&mut scanner, &paths, &mut out, &mut err).expect("scan");
    Run {
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
        summary,
    }
}

fn lines(out: &str) -> Vec<&str> {
    out.lines()
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
}

/// A temp dir with an infected file (marker in the middle), a clean one and
/// one matched by hash; paths absolute like clamscan prints them.
fn corpus() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::absolute(dir.path()).unwrap();
    let infected = root.join("infected.bin");
    let mut data = vec![b'x'; 1000];
    data.extend_from_slice(MARKER);
    data.extend_from_slice(&[b'y'; 1000]);
    std::fs::write(&infected, data).unwrap();
    let clean = root.join("clean.txt");
    std::fs::write(&clean, b"nothing to see here\n").unwrap();
    let hashed = root.join("hashed.txt");
    std::fs::write(&hashed, HASHED).unwrap();
    (dir, infected, clean, hashed)
}

#[test]
fn output_lines_summary_and_exit_codes_follow_clamscan() {
    let db = tempfile::tempdir().unwrap();
    let (_b, modules) = av_bundle(db.path(), &[]);
    let (_dir, infected, clean, hashed) = corpus();
    let r = scan(
        &modules,
        vec![infected.clone(), clean.clone(), hashed.clone()],
        ScanConfig::default(),
    );
    assert_eq!(
        lines(&r.out),
        vec![
            format!("{}: {BODY_SIG} FOUND", infected.display()),
            format!("{}: OK", clean.display()),
            format!("{}: {HASH_SIG} FOUND", hashed.display()),
        ]
    );
    let summary: Vec<&str> = r.out.lines().skip(4).collect();
    assert_eq!(summary[0], "----------- SCAN SUMMARY -----------");
    assert_eq!(summary[1], "Known viruses: 2");
    assert!(summary[2].starts_with("Engine version: "), "{}", summary[2]);
    assert_eq!(summary[3], "Scanned directories: 0");
    assert_eq!(summary[4], "Scanned files: 3");
    assert_eq!(summary[5], "Infected files: 2");
    assert!(summary[6].starts_with("Data scanned: ") && summary[6].ends_with(" MB"));
    assert!(summary[8].starts_with("Time: ") && summary[8].contains(" sec ("));
    assert_eq!(r.summary.exit_code(), 1);

    let clean_only = scan(&modules, vec![clean.clone()], ScanConfig::default());
    assert_eq!(clean_only.summary.exit_code(), 0);
    assert_eq!(clean_only.summary.infected_files, 0);
}

#[test]
fn a_missing_path_is_an_error_that_does_not_stop_the_others() {
    let db = tempfile::tempdir().unwrap();
    let (_b, modules) = av_bundle(db.path(), &[]);
    let (_dir, infected, clean, _) = corpus();
    let missing = PathBuf::from("/nonexistent/sandgate-av-test");
    let r = scan(
        &modules,
        vec![missing.clone(), clean.clone()],
        ScanConfig::default(),
    );
    assert_eq!(lines(&r.out), vec![format!("{}: OK", clean.display())]);
    assert_eq!(
        r.err,
        format!(
            "{0}: No such file or directory\nWARNING: {0}: Can't access file\n",
            missing.display()
        )
    );
    assert_eq!(r.summary.exit_code(), 2, "an error and nothing found");
    let r = scan(&modules, vec![missing, infected], ScanConfig::default());
    assert_eq!(r.summary.exit_code(), 1, "found wins over an error");
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_is_an_error_line_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let db = tempfile::tempdir().unwrap();
    let (_b, modules) = av_bundle(db.path(), &[]);
    let (_dir, _, clean, _) = corpus();
    // A directory given where a file is read: unreadable as a file even
    // for root, which ignores permission bits.
    let locked = clean.with_file_name("locked.txt");
    std::fs::write(&locked, b"x").unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let readable_by_us = std::fs::File::open(&locked).is_ok();
    let r = scan(
        &modules,
        vec![locked.clone(), clean.clone()],
        ScanConfig::default(),
    );
    if readable_by_us {
        assert_eq!(lines(&r.out)[0], format!("{}: OK", locked.display()));
    } else {
        assert_eq!(
            lines(&r.out)[0],
            format!("{}: Permission denied ERROR", locked.display())
        );
        assert_eq!(r.summary.exit_code(), 2);
    }
    assert_eq!(lines(&r.out)[1], format!("{}: OK", clean.display()));
}

#[test]
fn directories_are_scanned_one_level_or_recursively() {
    let db = tempfile::tempdir().unwrap();
    let (_b, modules) = av_bundle(db.path(), &[]);
    let (dir, infected, clean, _) = corpus();
    let root = infected.parent().unwrap().to_path_buf();
    let sub = root.join("sub").join("deeper");
    std::fs::create_dir_all(&sub).unwrap();
    let nested = sub.join("nested.bin");
    std::fs::copy(&infected, &nested).unwrap();

    let flat = scan(&modules, vec![root.clone()], ScanConfig::default());
    assert!(!flat.out.contains("nested.bin"), "{}", flat.out);
    assert_eq!(flat.summary.scanned_directories, 1);
    assert_eq!(flat.summary.scanned_files, 3);

    let deep = scan(
        &modules,
        vec![root.clone()],
        ScanConfig {
            recursive: true,
            ..ScanConfig::default()
        },
    );
    assert!(
        deep.out
            .contains(&format!("{}: {BODY_SIG} FOUND", nested.display())),
        "{}",
        deep.out
    );
    assert!(deep.out.contains(&format!("{}: OK", clean.display())));
    assert_eq!(deep.summary.scanned_directories, 3);
    assert_eq!(deep.summary.scanned_files, 4);
    assert_eq!(deep.summary.infected_files, 3);
    drop(dir);
}

#[test]
fn a_match_spanning_two_chunks_is_found() {
    let db = tempfile::tempdir().unwrap();
    let (_b, modules) = av_bundle(db.path(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let path = std::path::absolute(dir.path().join("straddle.bin")).unwrap();
    // The marker starts 10 bytes before the first 64 KiB chunk ends.
    let mut data = vec![0u8; 65_536 - 10];
    data.extend_from_slice(MARKER);
    data.extend_from_slice(&[0u8; 70_000]);
    std::fs::write(&path, &data).unwrap();
    let r = scan(&modules, vec![path.clone()], ScanConfig::default());
    assert_eq!(
        lines(&r.out),
        vec![format!("{}: {BODY_SIG} FOUND", path.display())]
    );
    // Tiny chunks: the marker and the hashed file cross many boundaries.
    let hashed = std::path::absolute(dir.path().join("hashed.txt")).unwrap();
    std::fs::write(&hashed, HASHED).unwrap();
    let r = scan(
        &modules,
        vec![path.clone(), hashed.clone()],
        ScanConfig {
            chunk: 7,
            ..ScanConfig::default()
        },
    );
    assert_eq!(
        lines(&r.out),
        vec![
            format!("{}: {BODY_SIG} FOUND", path.display()),
            format!("{}: {HASH_SIG} FOUND", hashed.display()),
        ]
    );
}

#[test]
fn allmatch_reports_every_signature() {
    let db = tempfile::tempdir().unwrap();
    let (_b, modules) = av_bundle(db.path(), &[]);
    let dir = tempfile::tempdir().unwrap();
    // A file whose hash is listed and which also carries the marker.
    let both = std::path::absolute(dir.path().join("both.bin")).unwrap();
    let mut content = HASHED.to_vec();
    content.extend_from_slice(MARKER);
    std::fs::write(&both, &content).unwrap();
    let extra_hdb = db.path().join("both.hdb");
    std::fs::write(
        &extra_hdb,
        format!(
            "{}:{}:Sandgate.Test.Both\n",
            md5_hex(&content),
            content.len()
        ),
    )
    .unwrap();
    let report = build_bundle(&[
        db.path().join("test.ndb"),
        db.path().join("test.hdb"),
        extra_hdb,
    ])
    .unwrap();
    let modules_all = load_bundle(&engine(), &report.bundle).modules;
    let first = scan(&modules_all, vec![both.clone()], ScanConfig::default());
    assert_eq!(lines(&first.out).len(), 1, "{}", first.out);
    let all = scan(
        &modules_all,
        vec![both.clone()],
        ScanConfig {
            all_match: true,
            ..ScanConfig::default()
        },
    );
    let mut got = lines(&all.out);
    got.sort();
    assert_eq!(
        got,
        vec![
            format!("{}: {BODY_SIG} FOUND", both.display()),
            format!("{}: Sandgate.Test.Both FOUND", both.display()),
        ]
    );
    drop(modules);
}

#[test]
fn limits_exceeded_are_reported_as_clamscan_does() {
    let db = tempfile::tempdir().unwrap();
    let (_b, modules) = av_bundle(db.path(), &[]);
    let (_dir, infected, _, _) = corpus();
    // Over --max-filesize: not scanned, OK plus a warning naming the limit.
    let small = ScanConfig {
        max_filesize: 100,
        ..ScanConfig::default()
    };
    let r = scan(&modules, vec![infected.clone()], small.clone());
    assert_eq!(lines(&r.out), vec![format!("{}: OK", infected.display())]);
    assert_eq!(
        r.err,
        format!(
            "WARNING: {}: limit exceeded: max file size\n",
            infected.display()
        )
    );
    assert_eq!(r.summary.exit_code(), 0);
    let r = scan(
        &modules,
        vec![infected.clone()],
        ScanConfig {
            alert_exceeds_max: true,
            ..small
        },
    );
    assert_eq!(
        lines(&r.out),
        vec![format!(
            "{}: Heuristics.Limits.Exceeded.MaxFileSize FOUND",
            infected.display()
        )]
    );
    assert_eq!(r.summary.exit_code(), 1);

    // Scan time: 1 ms of fuel is far too little for 4 MiB.
    let big = infected.with_file_name("big.bin");
    let mut data = vec![0u8; 4 << 20];
    data.extend_from_slice(MARKER);
    std::fs::write(&big, data).unwrap();
    let quick = ScanConfig {
        max_scantime_ms: 1,
        ..ScanConfig::default()
    };
    let r = scan(&modules, vec![big.clone()], quick.clone());
    assert_eq!(lines(&r.out), vec![format!("{}: OK", big.display())]);
    assert_eq!(
        r.err,
        format!("WARNING: {}: limit exceeded: scan time\n", big.display())
    );
    let r = scan(
        &modules,
        vec![big.clone()],
        ScanConfig {
            alert_exceeds_max: true,
            ..quick
        },
    );
    assert_eq!(
        lines(&r.out),
        vec![format!(
            "{}: Heuristics.Limits.Exceeded.MaxScanTime FOUND",
            big.display()
        )]
    );
    // With the default scan time the same file scans to the marker.
    let r = scan(&modules, vec![big.clone()], ScanConfig::default());
    assert_eq!(
        lines(&r.out),
        vec![format!("{}: {BODY_SIG} FOUND", big.display())]
    );
}

#[test]
fn a_hostile_av_module_costs_only_its_own_verdict() {
    let db = tempfile::tempdir().unwrap();
    let (_b, mut modules) = av_bundle(db.path(), &[]);
    let engine = engine();
    let looping = engine
        .load(
            "looping",
            &testkit::av_component(&AvOptions {
                feed: FeedBody::LoopForever,
                ..AvOptions::default()
            })
            .unwrap(),
        )
        .unwrap();
    let trapping = engine
        .load(
            "trapping",
            &testkit::av_component(&AvOptions {
                feed: FeedBody::TrapOn {
                    trap_on: b"POISON".to_vec(),
                    needle: b"EICAR-LIKE".to_vec(),
                    signature: 1,
                },
                ..AvOptions::default()
            })
            .unwrap(),
        )
        .unwrap();
    let (_dir, infected, clean, _) = corpus();
    let poison = clean.with_file_name("poison.txt");
    std::fs::write(&poison, b"...POISON...").unwrap();
    let eicar = clean.with_file_name("eicar-like.txt");
    std::fs::write(&eicar, b"..EICAR-LIKE..").unwrap();

    // The trapping module faults on one file; the next files scan normally.
    modules.push(trapping.clone());
    let r = scan(
        &modules,
        vec![
            poison.clone(),
            infected.clone(),
            eicar.clone(),
            clean.clone(),
        ],
        ScanConfig::default(),
    );
    let out = lines(&r.out);
    assert!(
        out[0].starts_with(&format!(
            "{}: Module fault (module trapping: trap",
            poison.display()
        )) && out[0].ends_with(" ERROR"),
        "{}",
        out[0]
    );
    assert_eq!(out[1], format!("{}: {BODY_SIG} FOUND", infected.display()));
    assert_eq!(out[2], format!("{}: Testkit.Sig-1 FOUND", eicar.display()));
    assert_eq!(out[3], format!("{}: OK", clean.display()));
    assert_eq!(r.summary.exit_code(), 1);

    // A module that loops on every chunk: its fuel runs out per file, the
    // good module still reports what it finds.
    modules.pop();
    modules.push(looping);
    let r = scan(
        &modules,
        vec![infected.clone(), clean.clone()],
        ScanConfig::default(),
    );
    let out = lines(&r.out);
    assert_eq!(out[0], format!("{}: {BODY_SIG} FOUND", infected.display()));
    assert!(
        r.err.contains("module looping: fuel exhausted"),
        "{}",
        r.err
    );
    assert!(
        out[1].starts_with(&format!(
            "{}: Module fault (module looping: fuel exhausted",
            clean.display()
        )),
        "{}",
        out[1]
    );
}

#[test]
fn a_1_0_only_engine_refuses_the_av_module_and_keeps_the_rules() {
    let db = tempfile::tempdir().unwrap();
    let (bundle, _) = av_bundle(db.path(), &[example_rules()]);
    assert_eq!(bundle.module_ids(), vec!["ips-rules", "av-signatures"]);
    let old = Engine::new(EngineConfig {
        interfaces: vec![InterfaceVersion::new(1, 0, 0)],
        ..EngineConfig::default()
    })
    .unwrap();
    let loaded = load_bundle(&old, &bundle);
    assert_eq!(loaded.modules.len(), 1);
    assert_eq!(loaded.modules[0].kind(), ModuleKind::Ips);
    assert_eq!(loaded.refused.len(), 1);
    assert!(
        matches!(loaded.refused[0], LoadError::NewerExport { .. }),
        "{:?}",
        loaded.refused[0]
    );
    assert_eq!(
        loaded.refused[0].to_string(),
        "module av-signatures: export `sandgate:pattern/scanner@1.1.0` is an interface \
         added in 1.1.0, which this engine does not implement (engine offers 1.0.0)"
    );
    let err = FileScanner::new(&loaded.modules, ScanConfig::default())
        .err()
        .expect("nothing to scan with");
    assert!(err.to_string().contains("no AV module"), "{err}");
}

#[test]
fn replay_alerts_on_a_file_in_an_http_response_split_over_segments() {
    let db = tempfile::tempdir().unwrap();
    let (_bundle, modules) = av_bundle(db.path(), &[example_rules()]);
    let mut cap = SynthCapture::new(1_700_000_000_000_000);
    let (segments, completing) = {
        let mut s = cap.tcp_v4([10, 0, 0, 1], 40_000, [10, 0, 0, 2], 80);
        s.handshake();
        s.client_sends(b"GET /download/sample.bin HTTP/1.1\r\nHost: example.test\r\n\r\n");
        s.client_ack();
        let mut body = vec![b'z'; 3000];
        body[2000..2000 + MARKER.len()].copy_from_slice(MARKER);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut response = head.into_bytes();
        response.extend_from_slice(&body);
        // Cut inside the marker: its bytes arrive in two segments.
        let cut = response.len() - 1000 + 10;
        let parts: Vec<&[u8]> = vec![&response[..1000], &response[1000..cut], &response[cut..]];
        let range = s.server_sends_segments(&parts);
        s.close();
        (range.clone(), range.start + 2)
    };
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("http-av.pcap");
    cap.write_pcap(&pcap).unwrap();
    let out = run_replay(&modules, &pcap, &ReplayOptions::default()).expect("replay");
    let av: Vec<_> = out
        .alerts
        .iter()
        .filter(|a| a.signature == BODY_SIG)
        .collect();
    assert_eq!(av.len(), 1, "one alert per stream: {:?}", out.alerts);
    let a = av[0];
    assert!(segments.contains(&a.pcap_cnt));
    assert_eq!(
        a.pcap_cnt, completing,
        "the segment that completed the match"
    );
    assert_eq!(a.src_port, 80);
    assert_eq!(a.dest_port, 40_000);
    let mut eve = EveWriter::new(Vec::new());
    eve.write_alert(a).unwrap();
    let line = String::from_utf8(eve.into_inner().unwrap()).unwrap();
    let json: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(json["alert"]["signature"], BODY_SIG);
    assert!(alert_table(&out.alerts).contains(BODY_SIG));
    assert!(
        out.modules
            .iter()
            .any(|m| m.module == "av-signatures" && m.faults.is_empty()),
        "the AV module is reported healthy"
    );
}

#[test]
fn replay_matches_a_file_hash_in_a_chunked_http_body_on_keep_alive() {
    let db = tempfile::tempdir().unwrap();
    let (_bundle, modules) = av_bundle(db.path(), &[]);
    let mut cap = SynthCapture::new(1_700_000_000_000_000);
    let ending = {
        let mut s = cap.tcp_v4([10, 0, 0, 1], 40_001, [10, 0, 0, 2], 80);
        s.handshake();
        s.client_sends(b"GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n");
        s.client_ack();
        // First response: a clean body by Content-Length.
        s.server_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean");
        s.client_sends(b"GET /b HTTP/1.1\r\nHost: example.test\r\n\r\n");
        // Second response: the hashed file, chunked, the chunks split over
        // segments; only the decoded body has the listed MD5.
        let (a, b) = HASHED.split_at(10);
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let first = format!("{head}{:x}\r\n", a.len());
        let mut second = a.to_vec();
        second.extend_from_slice(format!("\r\n{:x}\r\n", b.len()).as_bytes());
        second.extend_from_slice(&b[..5]);
        let mut third = b[5..].to_vec();
        third.extend_from_slice(b"\r\n0\r\n\r\n");
        let range = s.server_sends_segments(&[first.as_bytes(), &second, &third]);
        s.client_ack();
        s.close();
        range.end - 1
    };
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("chunked.pcap");
    cap.write_pcap(&pcap).unwrap();
    let out = run_replay(&modules, &pcap, &ReplayOptions::default()).expect("replay");
    let names: Vec<(&str, u64)> = out
        .alerts
        .iter()
        .map(|a| (a.signature.as_str(), a.pcap_cnt))
        .collect();
    assert_eq!(
        names,
        vec![(HASH_SIG, ending)],
        "the hash matches the decoded body, decided by the segment that ended it"
    );
}
