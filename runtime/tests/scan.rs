//! AV modules (`scanner`, 1.1.0) through the runtime: load-time refusal on a
//! 1.0-only engine, streaming scans with matches across chunk boundaries,
//! the scan-time and per-call fuel limits, and faults that cost only the
//! scan they happen in.

use sandgate_runtime::testkit::{self, AvOptions, FeedBody, FinishBody};
use sandgate_runtime::wit::ModuleKind;
use sandgate_runtime::{
    Engine, EngineConfig, FaultKind, InterfaceVersion, LoadError, LoadedModule, ScanLimit,
    ScanOptions,
};

fn engine() -> Engine {
    Engine::new(EngineConfig::default()).expect("default engine")
}

fn load(opts: &AvOptions) -> LoadedModule {
    let bytes = testkit::av_component(opts).expect("build AV test module");
    engine().load("av", &bytes).expect("AV module loads")
}

/// Feeds `content` in `chunk`-byte pieces; returns the signature names found.
fn scan_chunks(
    module: &LoadedModule,
    content: &[u8],
    chunk: usize,
    opts: &ScanOptions,
) -> Result<(Vec<String>, Option<ScanLimit>), FaultKind> {
    let mut inst = module.instantiate_scanner().expect("instance");
    let report = inst
        .scan_reader(&mut &content[..], opts, chunk)
        .map_err(|e| e.expect_err("no I/O error from a slice").kind)?;
    let names = report
        .detections
        .iter()
        .map(|d| module.info().rules[d.signature as usize].msg.clone())
        .collect();
    Ok((names, report.limit_exceeded))
}

#[test]
fn av_module_loads_as_kind_av_and_describes_its_signatures() {
    let m = load(&AvOptions::default());
    assert_eq!(m.kind(), ModuleKind::Av);
    assert_eq!(m.interface_version(), InterfaceVersion::new(1, 1, 0));
    assert_eq!(m.info().rules[1].msg, "Testkit.Sig-1");
    let fault = m.instantiate().expect_err("an AV module has no inspect");
    assert_eq!(fault.kind, FaultKind::Instantiate);
    assert!(fault.message.contains("AV module"), "{fault}");
}

#[test]
fn a_1_0_only_engine_refuses_an_av_module_naming_the_export() {
    let engine = Engine::new(EngineConfig {
        interfaces: vec![InterfaceVersion::new(1, 0, 0)],
        ..EngineConfig::default()
    })
    .expect("engine");
    let bytes = testkit::av_component(&AvOptions::default()).expect("build");
    let err = engine.load("clamav-sigs", &bytes).expect_err("refused");
    assert!(matches!(err, LoadError::NewerExport { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "module clamav-sigs: export `sandgate:pattern/scanner@1.1.0` is an interface added in \
         1.1.0, which this engine does not implement (engine offers 1.0.0)"
    );
}

#[test]
fn an_ips_module_cannot_scan() {
    let bytes = testkit::older_compatible().expect("build");
    let m = engine().load("ips", &bytes).expect("loads");
    assert_eq!(m.kind(), ModuleKind::Ips);
    let fault = m.instantiate_scanner().expect_err("no scanner");
    assert_eq!(fault.kind, FaultKind::Instantiate);
    assert!(fault.message.contains("IPS module"), "{fault}");
}

#[test]
fn a_match_spanning_two_chunks_is_found() {
    let m = load(&AvOptions::default());
    let mut content = vec![b'.'; 100];
    content[45..55].copy_from_slice(b"EICAR-LIKE");
    // 50-byte chunks split the needle 5/5.
    let (found, limit) = scan_chunks(&m, &content, 50, &ScanOptions::default()).unwrap();
    assert_eq!(found, vec!["Testkit.Sig-0".to_string()]);
    assert_eq!(limit, None);
    let (clean, _) = scan_chunks(&m, &[b'.'; 100], 50, &ScanOptions::default()).unwrap();
    assert!(clean.is_empty());
}

#[test]
fn detection_offsets_count_from_the_start_of_the_content() {
    let m = load(&AvOptions::default());
    let mut content = vec![b'.'; 300];
    content[200..210].copy_from_slice(b"EICAR-LIKE");
    let mut inst = m.instantiate_scanner().unwrap();
    let report = inst
        .scan_reader(&mut &content[..], &ScanOptions::default(), 64)
        .unwrap();
    assert_eq!(report.detections.len(), 1);
    assert_eq!(report.detections[0].offset, 200);
}

#[test]
fn a_looping_feed_costs_its_scan_and_the_next_scan_runs() {
    let m = load(&AvOptions {
        feed: FeedBody::LoopForever,
        ..AvOptions::default()
    });
    let mut inst = m.instantiate_scanner().unwrap();
    let err = inst
        .scan_reader(&mut &b"anything"[..], &ScanOptions::default(), 4)
        .expect_err("fault");
    assert_eq!(err.expect_err("not I/O").kind, FaultKind::FuelExhausted);
    assert!(inst.is_poisoned());
    // The next scan gets a fresh instance (and faults the same way).
    let again = inst.scan_reader(&mut &b"more"[..], &ScanOptions::default(), 4);
    assert!(again.is_err());
    let counts = m.counters().snapshot();
    assert_eq!(counts.fuel_exhausted, 2);
    assert!(counts.reinstantiations >= 1);
}

#[test]
fn a_trap_in_feed_costs_only_that_scan() {
    let m = load(&AvOptions {
        feed: FeedBody::TrapOn {
            trap_on: b"POISON".to_vec(),
            needle: b"EICAR-LIKE".to_vec(),
            signature: 1,
        },
        ..AvOptions::default()
    });
    let mut inst = m.instantiate_scanner().unwrap();
    let err = inst
        .scan_reader(&mut &b"xxPOISONxx"[..], &ScanOptions::default(), 64)
        .expect_err("trap");
    assert_eq!(err.expect_err("not I/O").kind, FaultKind::Trap);
    let report = inst
        .scan_reader(&mut &b"xxEICAR-LIKExx"[..], &ScanOptions::default(), 64)
        .expect("the next file scans");
    assert_eq!(report.detections[0].signature, 1);
}

#[test]
fn a_feed_growing_memory_past_the_cap_is_a_memory_limit_fault() {
    let m = load(&AvOptions {
        feed: FeedBody::GrowMemory,
        ..AvOptions::default()
    });
    let mut inst = m.instantiate_scanner().unwrap();
    let err = inst
        .scan_reader(&mut &b"x"[..], &ScanOptions::default(), 4)
        .expect_err("fault")
        .expect_err("not I/O");
    assert_eq!(err.kind, FaultKind::MemoryLimit);
    assert!(err.message.contains("refused: cap is"), "{err}");
    assert!(inst.is_poisoned());
}

#[test]
fn the_scan_time_limit_is_a_verdict_not_a_fault() {
    let m = load(&AvOptions::default());
    let content = vec![b'.'; 256 * 1024];
    let opts = ScanOptions {
        max_scan_fuel: Some(200_000),
        ..ScanOptions::default()
    };
    let (found, limit) = scan_chunks(&m, &content, 64 * 1024, &opts).expect("a verdict");
    assert!(found.is_empty());
    assert_eq!(limit, Some(ScanLimit::ScanTime));
    assert_eq!(m.counters().snapshot().fuel_exhausted, 0);
    // Plenty of scan time: the same content scans to the end.
    let (_, limit) = scan_chunks(&m, &content, 64 * 1024, &ScanOptions::default()).unwrap();
    assert_eq!(limit, None);
}

#[test]
fn a_detection_naming_an_unknown_signature_is_bad_output() {
    let m = load(&AvOptions {
        finish: FinishBody::Claims(99),
        ..AvOptions::default()
    });
    let err = scan_chunks(&m, b"clean", 4, &ScanOptions::default()).expect_err("refused");
    assert_eq!(err, FaultKind::BadOutput);
}

#[test]
fn a_module_error_from_finish_is_reported() {
    let m = load(&AvOptions {
        finish: FinishBody::Error("cannot decode signature data".into()),
        ..AvOptions::default()
    });
    let mut inst = m.instantiate_scanner().unwrap();
    let err = inst
        .scan_reader(&mut &b"x"[..], &ScanOptions::default(), 4)
        .expect_err("module error")
        .expect_err("not I/O");
    assert_eq!(err.kind, FaultKind::ModuleError);
    assert_eq!(err.message, "cannot decode signature data");
}

#[test]
fn several_scans_can_be_open_at_once() {
    let m = load(&AvOptions::default());
    let mut inst = m.instantiate_scanner().unwrap();
    let opts = ScanOptions::default();
    let a = inst.begin(&opts).unwrap();
    assert!(!inst.feed(a, b"EICAR-").unwrap());
    assert!(inst.feed(a, b"LIKE").unwrap(), "settled once found");
    let r = inst.finish(a).unwrap();
    assert_eq!(r.detections.len(), 1);
    assert_eq!(r.bytes, 10);
    let b = inst.begin(&opts).unwrap();
    inst.feed(b, b"clean").unwrap();
    assert!(inst.finish(b).unwrap().detections.is_empty());
    assert!(inst.finish(b).is_err(), "a finished scan is gone");
}
