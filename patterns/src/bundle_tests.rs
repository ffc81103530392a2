//! Bundle format tests: round trips, format 1 compatibility, signatures, and
//! hostile bytes.

use super::*;
use crate::sign::PrivateKey;

fn entry(id: &str) -> ModuleEntry {
    variant(id, "1.0.0")
}

fn variant(id: &str, interface: &str) -> ModuleEntry {
    ModuleEntry {
        id: id.into(),
        version: "1".into(),
        kind: "ips".into(),
        interface: interface.into(),
        rules: 1,
        sha256: String::new(),
        offset: 0,
        len: 0,
    }
}

/// A variant and its component bytes.
type Part = (ModuleEntry, Vec<u8>);

fn key(seed: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[seed; 32])
}

/// A signed bundle with two variants of one module and test vectors.
fn signed() -> Bundle {
    let mut b = Bundle::new(
        7,
        1,
        vec![
            (entry("a"), vec![1; 40]),
            (variant("a", "1.1.0"), vec![2; 30]),
        ],
    );
    b.set_vectors(
        "a",
        vec![0xd4; 24],
        vec![ExpectedAlert { sid: 9, count: 2 }],
    );
    b.sign(&key(1));
    b
}

#[test]
fn round_trip() {
    let b = Bundle::new(
        7,
        1,
        vec![(entry("a"), vec![1, 2, 3]), (entry("b"), vec![4])],
    );
    let back = Bundle::from_bytes(&b.to_bytes(), "t").expect("reads");
    assert_eq!(back, b);
    assert_eq!(back.manifest.format, FORMAT);
    assert!(back.signature.is_none());
}

#[test]
fn a_signed_bundle_with_variants_and_vectors_round_trips_and_verifies() {
    let b = signed();
    let back = Bundle::from_bytes(&b.to_bytes(), "t").expect("reads");
    assert_eq!(back, b);
    back.verify(&key(1).verifying_key()).expect("verifies");
    assert_eq!(back.module_ids(), ["a"]);
    assert_eq!(back.variants("a").count(), 2);
    let (v, pcap) = back.vectors_for("a").expect("vectors");
    assert_eq!(pcap, &[0xd4; 24][..]);
    assert_eq!(v.expect, [ExpectedAlert { sid: 9, count: 2 }]);
}

#[test]
fn format_1_bundles_are_still_read() {
    let json = br#"{"format":1,"version":3,"created_unix":1,"modules":[{"id":"a","version":"1","kind":"ips","interface":"1.0.0","rules":1,"sha256":"039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81","offset":0,"len":3}]}"#;
    let mut bytes = BUNDLE_MAGIC.to_vec();
    bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(json);
    bytes.extend_from_slice(&[1, 2, 3]);
    let b = Bundle::from_bytes(&bytes, "old.sgb").expect("format 1 reads");
    assert_eq!(b.manifest.format, FORMAT_V1);
    assert_eq!(b.modules, [vec![1, 2, 3]]);
    assert_eq!(b.to_bytes(), bytes, "and writes back unchanged");
    let e = b.verify(&key(1).verifying_key()).expect_err("unsigned");
    assert!(matches!(e.kind, BundleErrorKind::Unsigned), "{e}");
    assert!(e.to_string().starts_with("bundle old.sgb: unsigned"), "{e}");
}

#[test]
fn unsigned_wrong_key_and_bad_signature_are_distinct_errors() {
    let b = signed();
    let other = key(2).verifying_key();
    let e = b.verify(&other).expect_err("other key");
    assert!(matches!(e.kind, BundleErrorKind::WrongKey { .. }), "{e}");

    let mut unsigned = b.clone();
    unsigned.signature = None;
    let back = Bundle::from_bytes(&unsigned.to_bytes(), "u.sgb").expect("reads");
    let e = back.verify(&key(1).verifying_key()).expect_err("unsigned");
    assert!(matches!(e.kind, BundleErrorKind::Unsigned), "{e}");

    // Re-signed by another key but claiming the first key's id.
    let mut forged = b.clone();
    let mut block = crate::sign::sign(&key(2), Purpose::BundleManifest, &b.manifest_bytes());
    block.key_id = KeyId::of(&key(1).verifying_key());
    forged.signature = Some(block);
    let back = Bundle::from_bytes(&forged.to_bytes(), "f.sgb").expect("reads");
    let e = back.verify(&key(1).verifying_key()).expect_err("forged");
    assert!(
        matches!(e.kind, BundleErrorKind::BadSignature { .. }),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("bundle f.sgb: bad signature"),
        "{e}"
    );
}

#[test]
fn a_changed_manifest_fails_the_signature_even_when_it_parses() {
    let b = signed();
    let bytes = b.to_bytes();
    // Bump the bundle version inside the manifest text: still valid JSON,
    // still canonical, every hash still right — only the signature notices.
    let text = String::from_utf8_lossy(&bytes[12..]).into_owned();
    let at = 12 + text.find("\"version\":7").expect("version") + "\"version\":".len();
    let mut tampered = bytes.clone();
    tampered[at] = b'9';
    let back = Bundle::from_bytes(&tampered, "t").expect("parses");
    assert_eq!(back.manifest.version, 9);
    let e = back.verify(&key(1).verifying_key()).expect_err("tampered");
    assert!(
        matches!(e.kind, BundleErrorKind::BadSignature { .. }),
        "{e}"
    );
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for bytes in [
        Bundle::new(7, 1, vec![(entry("a"), vec![9; 100])]).to_bytes(),
        signed().to_bytes(),
    ] {
        for cut in 0..bytes.len() {
            assert!(
                Bundle::from_bytes(&bytes[..cut], "t").is_err(),
                "cut at {cut}"
            );
        }
    }
}

#[test]
fn every_bit_flip_of_a_signed_bundle_is_refused() {
    let bytes = signed().to_bytes();
    let vk = key(1).verifying_key();
    for at in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[at] ^= 1 << bit;
            let r = Bundle::from_bytes(&b, "t").and_then(|x| x.verify(&vk));
            assert!(r.is_err(), "flip of bit {bit} at {at} was accepted");
        }
    }
}

#[test]
fn non_canonical_manifests_are_refused() {
    let b = signed();
    let json = b.manifest_bytes();
    let spaced = String::from_utf8(json.clone())
        .expect("utf8")
        .replacen(',', ", ", 1);
    let mut bytes = BUNDLE_MAGIC.to_vec();
    bytes.extend_from_slice(&(spaced.len() as u32).to_le_bytes());
    bytes.extend_from_slice(spaced.as_bytes());
    bytes.extend_from_slice(&b.to_bytes()[12 + json.len()..]);
    let e = Bundle::from_bytes(&bytes, "t").expect_err("spaced");
    assert!(e.to_string().contains("canonical"), "{e}");
}

#[test]
fn structural_rules_name_the_module() {
    let cases: Vec<(Vec<Part>, &str)> = vec![
        (
            vec![(entry("a"), vec![1]), (entry("a"), vec![2])],
            "two variants for interface 1.0.0",
        ),
        (vec![(variant("a", "1.0"), vec![1])], "`1.0`"),
        (vec![(entry(""), vec![1])], "empty id"),
        (
            vec![
                (entry("a"), vec![1]),
                (
                    ModuleEntry {
                        kind: "av".into(),
                        ..variant("a", "1.1.0")
                    },
                    vec![2],
                ),
            ],
            "disagree",
        ),
    ];
    for (modules, needle) in cases {
        let e = Bundle::from_bytes(&Bundle::new(1, 1, modules).to_bytes(), "t").expect_err(needle);
        assert!(e.to_string().contains(needle), "{e}");
    }
    let mut b = Bundle::new(1, 1, vec![(entry("a"), vec![1])]);
    b.set_vectors("ghost", vec![1], vec![]);
    let e = Bundle::from_bytes(&b.to_bytes(), "t").expect_err("ghost");
    assert!(e.to_string().contains("unknown module `ghost`"), "{e}");
}

#[test]
fn tampered_module_fails_its_hash() {
    let mut bytes = Bundle::new(7, 1, vec![(entry("a"), vec![9; 100])]).to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let e = Bundle::from_bytes(&bytes, "x.sgb").expect_err("tampered");
    assert!(matches!(e.kind, BundleErrorKind::Hash { .. }), "{e}");
    assert!(e.to_string().starts_with("bundle x.sgb: module `a`"), "{e}");
}

#[test]
fn tampered_vectors_fail_their_hash() {
    let mut bytes = signed().to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let e = Bundle::from_bytes(&bytes, "x.sgb").expect_err("tampered");
    assert!(matches!(e.kind, BundleErrorKind::VectorHash { .. }), "{e}");
}

#[test]
fn select_picks_the_newest_variant_the_engine_serves() {
    let b = Bundle::new(
        1,
        1,
        vec![
            (entry("a"), vec![1]),
            (variant("a", "1.1.0"), vec![2]),
            (variant("b", "2.0.0"), vec![3]),
        ],
    );
    let s = b.select(&["1.0.0".into()]);
    assert_eq!(s.chosen.len(), 1);
    assert_eq!(s.chosen[0].0.interface, "1.0.0");
    assert_eq!(
        s.unavailable,
        [("b".to_string(), vec!["2.0.0".to_string()])]
    );
    let s = b.select(&["1.0.0".into(), "1.1.0".into()]);
    assert_eq!(s.chosen[0].0.interface, "1.1.0");
}
