//! Issue #10 on the real ruleset: `sandgate-patc build` writes a 1.0.0 and a
//! 1.2.0 variant of the rules module; every field engine loads the variant
//! it can (0.1.0/0.2.0 refuse 1.2.0 naming `flat-inspector@1.2.0`, 0.3.0
//! loads both), and on packets both variants report the same alerts.
//!
//! A sample of ET Open 2020 (`emerging-dns.rules`, `emerging-scan.rules`)
//! keeps this under a minute in debug builds; skips without shared data.

use sandgate_patterns::field::FieldList;
use sandgate_runtime::testkit;
use sandgate_runtime::{Engine, EngineConfig, InterfaceVersion, LoadError};
use sandgate_tests::{build_bundle, repo_root, shared_data};

#[test]
fn field_engines_load_the_variant_they_can_and_variants_agree_on_packets() {
    let Some(data) = shared_data() else {
        println!("skip: ../shared/data not found");
        return;
    };
    let dir = data.join("rules/et-open-2020");
    let inputs = vec![
        dir.join("emerging-dns.rules"),
        dir.join("emerging-scan.rules"),
    ];
    let report = build_bundle(&inputs).expect("build");
    let v: Vec<(String, usize)> = report
        .variants
        .iter()
        .map(|v| (v.interface.clone(), v.rules))
        .collect();
    println!("variants: {v:?} of {} rules", report.rules_total);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].0, "1.0.0");
    assert_eq!(v[1].0, "1.2.0");
    assert!(v[0].1 < v[1].1, "DNS rules need the 1.2.0 variant: {v:?}");
    assert_eq!(v[1].1, report.rules_compiled);
    let bundle = &report.bundle;
    let field =
        FieldList::from_yaml_file(&repo_root().join("field-engines.yaml")).expect("field list");
    assert!(field.engines.iter().any(|e| e.release == "0.3.0"));
    let mut by_variant = Vec::new();
    for fe in &field.engines {
        let offered: Vec<InterfaceVersion> = fe
            .interfaces
            .iter()
            .map(|s| s.parse().expect("version"))
            .collect();
        let engine = Engine::new(EngineConfig {
            interfaces: offered.clone(),
            ..EngineConfig::default()
        })
        .expect("engine");
        let has_12 = offered.contains(&InterfaceVersion::new(1, 2, 0));
        for (entry, bytes) in bundle.manifest.modules.iter().zip(&bundle.modules) {
            let loaded = engine.load(&entry.id, bytes);
            match (entry.interface.as_str(), has_12) {
                ("1.2.0", false) => {
                    let err = loaded.expect_err("1.2.0 variant on an older engine");
                    assert!(matches!(err, LoadError::NewerExport { .. }), "{err}");
                    assert!(
                        err.to_string()
                            .contains("sandgate:pattern/flat-inspector@1.2.0"),
                        "{} {}: {err}",
                        fe.name,
                        fe.release
                    );
                }
                (iface, _) => {
                    let module = loaded.unwrap_or_else(|e| {
                        panic!("{} {} refused {iface}: {e}", fe.name, fe.release)
                    });
                    assert_eq!(module.wants_app(), iface == "1.2.0");
                    if has_12 {
                        by_variant.push((iface.to_string(), module));
                    }
                }
            }
        }
    }
    assert_eq!(by_variant.len(), 2, "0.3.0 loads both variants");
    // Packets that rules of the sample look for (Grim's Ping FTP login, sid
    // 2007802, and a DNS query payload): both variants agree sid by sid.
    let mut batch = testkit::batch(&[
        (1, b"PASS gpuser@home.com\r\n"),
        (2, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01"),
        (3, b"nothing to see"),
    ]);
    batch.packets[0].dst_port = 21;
    let mut sids = Vec::new();
    for (iface, module) in &by_variant {
        let mut inst = module.instantiate().expect("instance");
        let hits = inst.inspect(&batch).expect("inspect");
        let mut s: Vec<(u32, u32)> = hits
            .iter()
            .map(|h| (h.packet, module.info().rules[h.rule as usize].sid))
            .collect();
        s.sort_unstable();
        println!("{iface}: {s:?}");
        sids.push(s);
    }
    assert!(sids[0].contains(&(0, 2007802)), "{:?}", sids[0]);
    assert_eq!(
        sids[0], sids[1],
        "1.0.0 and 1.2.0 variants disagree on packets"
    );
}
