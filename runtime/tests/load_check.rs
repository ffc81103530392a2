//! The load-time check refuses every incompatible module with an error that
//! names the module, the import/export, the version wanted and the versions
//! offered; compatible modules load; corrupted bytes never panic.

use sandgate_runtime::testkit::{self, DescribeBody, IpsOptions};
use sandgate_runtime::{
    Engine, EngineConfig, FaultKind, InterfaceVersion, ItemKind, Limits, LoadError,
};

fn engine() -> Engine {
    Engine::new(EngineConfig::default()).expect("default engine")
}

fn engine_offering(versions: &[(u32, u32, u32)]) -> Engine {
    Engine::new(EngineConfig {
        interfaces: versions
            .iter()
            .map(|&(a, b, c)| InterfaceVersion::new(a, b, c))
            .collect(),
        ..EngineConfig::default()
    })
    .expect("engine")
}

fn refuse(engine: &Engine, name: &str, bytes: &[u8]) -> LoadError {
    let err = engine
        .load(name, bytes)
        .expect_err("module must be refused");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("module {name}: ")), "{msg}");
    assert_eq!(err.module(), name);
    err
}

#[test]
fn compatible_module_is_accepted_and_described() {
    let bytes = testkit::ips_component(&IpsOptions {
        rules: 7,
        manifest: Some(br#"{"bundle":"t"}"#.to_vec()),
        ..IpsOptions::default()
    })
    .unwrap();
    let module = engine().load("good", &bytes).unwrap();
    assert_eq!(module.name(), "good");
    assert_eq!(module.interface_version(), InterfaceVersion::new(1, 0, 0));
    let info = module.info();
    assert_eq!(info.name, "testkit");
    assert_eq!(info.version, "1.0.0");
    assert_eq!(info.rules.len(), 7);
    assert_eq!(info.rules[3].sid, 1003);
    assert_eq!(info.rules[3].msg, "testkit rule 3");
    assert_eq!(info.rules[2].classtype.as_deref(), Some("misc-activity"));
    assert_eq!(info.rules[3].classtype, None);
    assert_eq!(info.rules[1].priority, Some(3));
    assert_eq!(
        info.rules[1].references,
        vec!["url,example.invalid/1".to_string()]
    );
    assert_eq!(module.manifest(), Some(&br#"{"bundle":"t"}"#[..]));
    assert!(module
        .imports()
        .iter()
        .any(|i| i == "sandgate:pattern/log@1.0.0"));
    assert!(module
        .exports()
        .iter()
        .any(|e| e == "sandgate:pattern/inspector@1.0.0"));
}

#[test]
fn older_compatible_module_loads_on_a_newer_engine() {
    let engine = engine_offering(&[(1, 0, 0), (1, 1, 0)]);
    let module = engine
        .load("old", &testkit::older_compatible().unwrap())
        .unwrap();
    assert_eq!(module.interface_version(), InterfaceVersion::new(1, 0, 0));
}

#[test]
fn oversized_module_is_refused_before_parsing() {
    let engine = Engine::new(EngineConfig {
        limits: Limits {
            max_module_bytes: 100,
            ..Limits::default()
        },
        ..EngineConfig::default()
    })
    .unwrap();
    let bytes = testkit::older_compatible().unwrap();
    let err = refuse(&engine, "big", &bytes);
    assert!(matches!(err, LoadError::TooLarge { max: 100, .. }), "{err}");
}

#[test]
fn core_module_is_refused_as_not_a_component() {
    let err = refuse(&engine(), "core", &testkit::core_module_only().unwrap());
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err}");
    assert!(err
        .to_string()
        .contains("is a core wasm module, not a component"));
}

#[test]
fn wrong_major_is_refused_naming_import_and_versions() {
    let err = refuse(&engine(), "v2", &testkit::wrong_major().unwrap());
    let LoadError::MajorVersion {
        direction,
        name,
        wanted,
        offered,
        ..
    } = &err
    else {
        panic!("wrong variant: {err:?}");
    };
    assert_eq!(*direction, ItemKind::Import);
    assert!(name.starts_with("sandgate:pattern/") && name.ends_with("@2.0.0"));
    assert_eq!(*wanted, InterfaceVersion::new(2, 0, 0));
    assert_eq!(
        offered,
        &vec![
            InterfaceVersion::new(1, 0, 0),
            InterfaceVersion::new(1, 1, 0),
            InterfaceVersion::new(1, 2, 0),
        ]
    );
    let msg = err.to_string();
    assert!(
        msg.contains(name.as_str()) && msg.contains("2.0.0"),
        "{msg}"
    );
    assert!(msg.contains("engine offers 1.0.0"), "{msg}");
}

#[test]
fn newer_minor_import_is_refused_naming_import_and_versions() {
    let err = refuse(&engine(), "v12", &testkit::newer_minor("1.3.0").unwrap());
    let LoadError::MinorVersion { import, wanted, .. } = &err else {
        panic!("wrong variant: {err:?}");
    };
    assert!(import.ends_with("@1.3.0"), "{import}");
    assert_eq!(*wanted, InterfaceVersion::new(1, 3, 0));
    let msg = err.to_string();
    assert!(
        msg.contains(import.as_str()) && msg.contains("engine offers 1.0.0"),
        "{msg}"
    );
}

#[test]
fn newer_minor_with_only_known_functions_loads_when_offered() {
    let engine = engine_offering(&[(1, 0, 0), (1, 3, 0)]);
    let module = engine
        .load("v12", &testkit::newer_minor("1.3.0").unwrap())
        .unwrap();
    assert_eq!(module.interface_version(), InterfaceVersion::new(1, 3, 0));
}

#[test]
fn missing_host_function_is_refused_by_the_minor_gate() {
    let err = refuse(&engine(), "flush", &testkit::lacks_host_function().unwrap());
    assert!(matches!(err, LoadError::MinorVersion { .. }), "{err}");
}

#[test]
fn missing_host_function_is_refused_by_the_linker_naming_it() {
    // An engine that claims 1.3.0 but has no `flush`: the linker catches it.
    let engine = engine_offering(&[(1, 0, 0), (1, 1, 0), (1, 2, 0), (1, 3, 0)]);
    let err = refuse(&engine, "flush", &testkit::lacks_host_function().unwrap());
    let LoadError::Link {
        import,
        wanted,
        detail,
        ..
    } = &err
    else {
        panic!("wrong variant: {err:?}");
    };
    assert_eq!(import, "sandgate:pattern/log@1.3.0");
    assert_eq!(*wanted, Some(InterfaceVersion::new(1, 3, 0)));
    assert!(detail.contains("`flush`"), "{detail}");
    let msg = err.to_string();
    assert!(
        msg.contains("engine offers 1.0.0, 1.1.0, 1.2.0, 1.3.0"),
        "{msg}"
    );
}

#[test]
fn wasi_import_is_refused_naming_it() {
    let err = refuse(&engine(), "wasi", &testkit::imports_wasi().unwrap());
    let LoadError::ForbiddenImport { import, .. } = &err else {
        panic!("wrong variant: {err:?}");
    };
    assert_eq!(import, "wasi:cli/environment@0.2.0");
    assert!(err.to_string().contains("wasi:cli/environment@0.2.0"));
}

#[test]
fn missing_inspector_is_refused() {
    let err = refuse(&engine(), "noexp", &testkit::missing_inspector().unwrap());
    assert!(matches!(err, LoadError::MissingExport { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(
            "does not export `sandgate:pattern/inspector` (engine offers 1.0.0, 1.1.0, 1.2.0)"
        ),
        "{msg}"
    );
}

#[test]
fn inspector_with_wrong_type_is_refused_before_it_runs() {
    let err = refuse(
        &engine(),
        "wrongty",
        &testkit::inspector_wrong_type().unwrap(),
    );
    let LoadError::ExportType { export, detail, .. } = &err else {
        panic!("wrong variant: {err:?}");
    };
    assert_eq!(export, "sandgate:pattern/inspector@1.0.0");
    assert!(
        detail.contains("inspect") && detail.contains("list<u8>"),
        "{detail}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("export `sandgate:pattern/inspector@1.0.0` has the wrong type"),
        "{msg}"
    );
}

#[test]
fn describe_faults_refuse_the_module() {
    for (describe, kind) in [
        (DescribeBody::Unreachable, FaultKind::Trap),
        (DescribeBody::LoopForever, FaultKind::FuelExhausted),
        (DescribeBody::BadKind, FaultKind::BadOutput),
    ] {
        let bytes = testkit::ips_component(&IpsOptions {
            describe: describe.clone(),
            ..IpsOptions::default()
        })
        .unwrap();
        let engine = Engine::new(EngineConfig {
            limits: Limits {
                fuel_describe: 1_000_000,
                ..Limits::default()
            },
            ..EngineConfig::default()
        })
        .unwrap();
        let err = refuse(&engine, "desc", &bytes);
        match &err {
            LoadError::Describe { kind: k, .. } => assert_eq!(*k, kind, "{describe:?}: {err}"),
            other => panic!("{describe:?}: wrong variant {other:?}"),
        }
    }
}

#[test]
fn truncated_components_are_refused_without_panic() {
    let bytes = testkit::older_compatible().unwrap();
    let engine = engine();
    let step = (bytes.len() / 150).max(1);
    let mut refused = 0;
    for len in (0..bytes.len()).step_by(step) {
        // Cutting exactly before a trailing custom section can leave a valid
        // component; that is fine, so only refusals are checked.
        if let Err(err) = engine.load("cut", &bytes[..len]) {
            assert!(err.to_string().starts_with("module cut: "), "{err}");
            refused += 1;
        }
    }
    assert!(refused >= 140, "only {refused} truncations refused");
}

#[test]
fn bit_flipped_components_never_panic() {
    let bytes = testkit::older_compatible().unwrap();
    let engine = engine();
    let step = (bytes.len() / 200).max(1);
    for pos in (0..bytes.len()).step_by(step) {
        for bit in [0u8, 3, 7] {
            let mut flipped = bytes.clone();
            flipped[pos] ^= 1 << bit;
            if let Err(err) = engine.load("flip", &flipped) {
                assert!(err.to_string().starts_with("module flip: "), "{err}");
            }
        }
    }
}

#[test]
fn unreservable_pool_falls_back_to_on_demand_and_says_so() {
    // 100,000 slots of 4 GiB cannot be reserved on any 64-bit box.
    let engine = Engine::new(EngineConfig {
        limits: Limits {
            memory_max_bytes: 4 * 1024 * 1024 * 1024,
            ..Limits::default()
        },
        pool: sandgate_runtime::PoolConfig {
            enabled: true,
            max_instances: 100_000,
        },
        ..EngineConfig::default()
    })
    .unwrap();
    let sandgate_runtime::Allocator::OnDemand { reason } = engine.allocator() else {
        panic!("pool unexpectedly reserved: {:?}", engine.allocator());
    };
    assert!(reason.contains("pool"), "{reason}");
    let module = engine
        .load("ok", &testkit::older_compatible().unwrap())
        .unwrap();
    module.instantiate().unwrap();
}

#[test]
fn disabled_pool_uses_on_demand() {
    let engine = Engine::new(EngineConfig {
        pool: sandgate_runtime::PoolConfig {
            enabled: false,
            ..Default::default()
        },
        ..EngineConfig::default()
    })
    .unwrap();
    assert!(matches!(
        engine.allocator(),
        sandgate_runtime::Allocator::OnDemand { .. }
    ));
}

#[test]
fn two_manifests_are_refused_as_ambiguous() {
    let bytes = testkit::with_manifest(
        testkit::with_manifest(testkit::older_compatible().unwrap(), b"{}"),
        b"{\"other\":1}",
    );
    let err = refuse(&engine(), "twice", &bytes);
    assert!(matches!(err, LoadError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("sandgate-manifest"), "{err}");
}
