//! The vendor side of safe updates, through the `sandgate-patc` binary:
//! keys, signed bundles with test vectors, the field matrix as a gate, and
//! a signed publish index. Each test names the guarantee it proves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sandgate_patterns::bundle::Bundle;
use sandgate_patterns::index::{Index, INDEX_FILE, INDEX_SIG_FILE};
use sandgate_patterns::sign::{read_private_key, read_public_key};
use sandgate_patterns::vectors::ExpectedAlert;
use sandgate_runtime::testkit;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn patc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sandgate-patc"))
        .args(args)
        .output()
        .expect("run sandgate-patc")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A vendor workspace: a key pair and a signed bundle with vectors.
struct Vendor {
    dir: tempfile::TempDir,
}

impl Vendor {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        let o = patc(&["keygen", "-o", s(&keys)]);
        assert!(o.status.success(), "{}", text(&o));
        Vendor { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn key(&self) -> PathBuf {
        self.path("keys/sandgate-signing.key")
    }
    fn public(&self) -> PathBuf {
        self.path("keys/sandgate-signing.pub")
    }
    fn field(&self) -> PathBuf {
        root().join("field-engines.yaml")
    }
    /// `build --sign --vectors` of the example rules.
    fn build(&self, version: u64) -> PathBuf {
        let out = self.path(&format!("b{version}.sgb"));
        let o = patc(&[
            "build",
            "-o",
            s(&out),
            "--sign",
            s(&self.key()),
            "--vectors",
            s(&root().join("patterns/examples/example.pcap")),
            "--bundle-version",
            &version.to_string(),
            s(&root().join("patterns/examples/example.rules")),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        out
    }
    fn matrix(&self, bundle: &Path) -> Output {
        patc(&["matrix", s(bundle), "--field", s(&self.field())])
    }
    fn publish(&self, bundle: &Path, out: &Path) -> Output {
        patc(&[
            "publish",
            s(bundle),
            "--key",
            s(&self.key()),
            "--out",
            s(out),
            "--field",
            s(&self.field()),
            "--rollout",
            "25",
        ])
    }
    /// Rewrite `bundle` through `edit`, re-signed with the vendor key.
    fn resign(&self, bundle: &Path, name: &str, edit: impl FnOnce(&mut Bundle)) -> PathBuf {
        let mut b = Bundle::read(bundle).expect("read");
        edit(&mut b);
        b.sign(&read_private_key(&self.key()).expect("key"));
        let out = self.path(name);
        b.write(&out).expect("write");
        out
    }
}

fn assert_refused(o: &Output, needle: &str) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains(needle), "wanted `{needle}` in:\n{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn a_signed_bundle_passes_the_matrix_and_publishes_an_index_that_verifies() {
    let v = Vendor::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(v.key())
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "private key is owner-only");
    }
    let o = patc(&["keygen", "-o", s(&v.path("keys"))]);
    assert_eq!(o.status.code(), Some(2), "keygen never overwrites a key");

    let bundle = v.build(5);
    let public = read_public_key(&v.public()).expect("public key");
    let b = Bundle::read(&bundle).expect("reads");
    b.verify(&public).expect("signed by the vendor key");
    let (vectors, _) = b.vectors_for("ips-rules").expect("vectors recorded");
    assert!(vectors.expect.contains(&ExpectedAlert {
        sid: 1000001,
        count: 1
    }));

    let o = v.matrix(&bundle);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("sandgate 0.1.0") && t.contains("ok ("), "{t}");

    let out = v.path("www");
    let o = v.publish(&bundle, &out);
    assert!(o.status.success(), "{}", text(&o));
    let index_bytes = std::fs::read(out.join(INDEX_FILE)).expect("index");
    let sig = std::fs::read(out.join(INDEX_SIG_FILE)).expect("sig");
    let index = Index::from_signed(&index_bytes, &sig, &public).expect("index verifies");
    assert_eq!(index.bundle_version, 5);
    assert_eq!(index.rollout.map(|r| r.percent), Some(25));
    let entry = index.entry_for(&["1.0.0".into()]).expect("entry for 1.0.0");
    let file = std::fs::read(out.join(&entry.file)).expect("bundle file");
    entry.check_download(&file).expect("size and hash match");
    Bundle::from_bytes(&file, "downloaded")
        .expect("reads")
        .verify(&public)
        .expect("verifies");

    // Publishing the same or an older version again is refused.
    let o = v.publish(&bundle, &out);
    assert_refused(&o, "not newer than the published 5");
}

#[test]
fn tampered_bundles_are_refused_with_the_specific_error() {
    let v = Vendor::new();
    let good = std::fs::read(v.build(3)).expect("bundle");
    let out = v.path("www");

    // A byte in the manifest (the bundle version digit): parses, hashes hold,
    // the signature does not.
    let mut manifest_flip = good.clone();
    let at = good
        .windows(11)
        .position(|w| w == b"\"version\":3")
        .expect("version in manifest")
        + 10;
    manifest_flip[at] = b'4';
    // A byte inside the module component.
    let mut module_flip = good.clone();
    let b = Bundle::from_bytes(&good, "good").expect("reads");
    let module_at = good.len() - b.vectors[0].len() - 100;
    module_flip[module_at] ^= 0x20;
    for (name, bytes, needle) in [
        ("manifest.sgb", manifest_flip, "bad signature"),
        ("module.sgb", module_flip, "SHA-256 mismatch"),
    ] {
        let path = v.path(name);
        std::fs::write(&path, bytes).expect("write");
        assert_refused(&v.publish(&path, &out), needle);
    }

    let unsigned = v.path("unsigned.sgb");
    let mut b = Bundle::read(&v.path("b3.sgb")).expect("read");
    b.signature = None;
    b.write(&unsigned).expect("write");
    assert_refused(&v.publish(&unsigned, &out), "unsigned");

    let other = Vendor::new();
    let foreign = other.build(3);
    assert_refused(&v.publish(&foreign, &out), "signed by key");
    assert!(!out.join(INDEX_FILE).exists(), "nothing was published");
}

#[test]
fn vectors_that_do_not_match_give_a_wrong_verdict_and_block_publish() {
    let v = Vendor::new();
    let bundle = v.build(4);
    let wrong = v.resign(&bundle, "wrong.sgb", |b| {
        let (_, pcap) = b.vectors_for("ips-rules").expect("vectors");
        let pcap = pcap.to_vec();
        b.set_vectors(
            "ips-rules",
            pcap,
            vec![ExpectedAlert {
                sid: 1000001,
                count: 7,
            }],
        );
    });
    let o = v.matrix(&wrong);
    assert_refused(
        &o,
        "wrong verdict (expected {sid 1000001×7}, got {sid 1000001×1",
    );
    assert_refused(
        &o,
        "sandgate 0.1.0 has no working variant of module `ips-rules`",
    );
    let o = v.publish(&wrong, &v.path("www"));
    assert_refused(&o, "refusing to publish: the compatibility matrix failed");
}

#[test]
fn a_module_only_for_interface_2_is_rejected_on_the_1_0_engine_and_blocks_publish() {
    let v = Vendor::new();
    let bundle = v.build(6);
    let next = testkit::wrong_major().expect("2.0.0 component");
    let pcap = std::fs::read(root().join("patterns/examples/example.pcap")).expect("pcap");

    // As an extra variant of a module that also has a 1.0.0 variant: the
    // 1.0 engine rejects that variant and runs the other, so it still ships.
    let extra_variant = v.resign(&bundle, "variant.sgb", |b| {
        let mut modules: Vec<_> = b
            .manifest
            .modules
            .iter()
            .cloned()
            .zip(b.modules.iter().cloned())
            .collect();
        let mut entry = modules[0].0.clone();
        entry.interface = "2.0.0".into();
        modules.push((entry, next.clone()));
        let vectors = b
            .vectors_for("ips-rules")
            .map(|(e, p)| (e.expect.clone(), p.to_vec()));
        *b = Bundle::new(b.manifest.version, b.manifest.created_unix, modules);
        if let Some((expect, pcap)) = vectors {
            b.set_vectors("ips-rules", pcap, expect);
        }
    });
    let o = v.matrix(&extra_variant);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("2.0.0    rejected ("), "{t}");

    // As the only variant of a module: no working variant, publish refuses.
    let only_2 = v.resign(&bundle, "only2.sgb", |b| {
        let mut modules: Vec<_> = b
            .manifest
            .modules
            .iter()
            .cloned()
            .zip(b.modules.iter().cloned())
            .collect();
        let mut entry = modules[0].0.clone();
        entry.id = "next-gen".into();
        entry.interface = "2.0.0".into();
        modules.push((entry, next.clone()));
        let vectors = b
            .vectors_for("ips-rules")
            .map(|(e, p)| (e.expect.clone(), p.to_vec()));
        *b = Bundle::new(b.manifest.version, b.manifest.created_unix, modules);
        if let Some((expect, p)) = vectors {
            b.set_vectors("ips-rules", p, expect);
        }
        b.set_vectors("next-gen", pcap.clone(), vec![]);
    });
    let o = v.matrix(&only_2);
    assert_refused(&o, "rejected (module next-gen");
    assert_refused(&o, "2.0.0");
    assert_refused(&o, "no working variant of module `next-gen`");
    let o = v.publish(&only_2, &v.path("www"));
    assert_refused(
        &o,
        "sandgate 0.1.0 has no working variant of module `next-gen`",
    );
}

#[test]
fn build_keeps_its_contract_without_the_new_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("plain.sgb");
    let o = patc(&[
        "build",
        "-o",
        s(&out),
        s(&root().join("patterns/examples/example.rules")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let b = Bundle::read(&out).expect("reads");
    assert!(b.signature.is_none() && b.manifest.vectors.is_empty());
    let o = patc(&[
        "build",
        "-o",
        s(&out),
        "--sign",
        "/nonexistent/key",
        s(&root().join("patterns/examples/example.rules")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("/nonexistent/key"), "{}", text(&o));
}

#[test]
fn an_av_module_ships_only_to_engines_with_the_scanner_and_publish_maps_them() {
    let v = Vendor::new();
    let ndb = v.path("vendor.ndb");
    std::fs::write(
        &ndb,
        "Vendor.Test.Body:0:*:53414e44474154452d41562d54455354\n",
    )
    .expect("ndb");
    let sample = v.path("sample.bin");
    std::fs::write(&sample, b"....SANDGATE-AV-TEST....").expect("sample");
    let clean = v.path("clean.txt");
    std::fs::write(&clean, b"nothing here").expect("clean");
    let bundle = v.path("mixed.sgb");
    let o = patc(&[
        "build",
        "-o",
        s(&bundle),
        "--sign",
        s(&v.key()),
        "--vectors",
        s(&root().join("patterns/examples/example.pcap")),
        "--scan-vectors",
        s(&sample),
        "--scan-vectors",
        s(&clean),
        "--bundle-version",
        "7",
        s(&root().join("patterns/examples/example.rules")),
        s(&ndb),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("1 of 1 signatures"), "{t}");
    assert!(
        t.contains("test vectors for module av-signatures: expects {sid 1×1}"),
        "{t}"
    );

    let o = v.matrix(&bundle);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(
            "rejected (module av-signatures: export `sandgate:pattern/scanner@1.1.0` is an \
             interface added in 1.1.0, which this engine does not implement (engine offers \
             1.0.0)); not shipped to this engine"
        ),
        "{t}"
    );
    assert!(
        t.contains("module `av-signatures` is not shipped to sandgate 0.1.0"),
        "{t}"
    );
    let av_on_new = t
        .lines()
        .find(|l| l.starts_with("sandgate 0.2.0") && l.contains("av-signatures"))
        .expect("a row for the AV module on 0.2.0");
    assert!(
        av_on_new.contains("ok (1 alerts as expected)"),
        "{av_on_new}"
    );

    let out = v.path("www");
    let o = v.publish(&bundle, &out);
    assert!(o.status.success(), "{}", text(&o));
    let public = read_public_key(&v.public()).expect("public key");
    let index = Index::from_signed(
        &std::fs::read(out.join(INDEX_FILE)).expect("index"),
        &std::fs::read(out.join(INDEX_SIG_FILE)).expect("sig"),
        &public,
    )
    .expect("verifies");
    let old = index.entry_for(&["1.0.0".into()]).expect("1.0 entry");
    let modules: Vec<&str> = old.variants.iter().map(|v| v.module.as_str()).collect();
    assert_eq!(modules, vec!["ips-rules"], "no AV module for 1.0 engines");
    let new = index
        .entry_for(&["1.0.0".into(), "1.1.0".into()])
        .expect("1.1 entry");
    let variants: Vec<(&str, &str)> = new
        .variants
        .iter()
        .map(|v| (v.module.as_str(), v.interface.as_str()))
        .collect();
    assert_eq!(
        variants,
        vec![("ips-rules", "1.0.0"), ("av-signatures", "1.1.0")]
    );
}

#[test]
fn an_av_module_without_a_working_variant_on_a_scanner_engine_blocks_publish() {
    let v = Vendor::new();
    let ndb = v.path("vendor.ndb");
    std::fs::write(
        &ndb,
        "Vendor.Test.Body:0:*:53414e44474154452d41562d54455354\n",
    )
    .expect("ndb");
    let sample = v.path("sample.bin");
    std::fs::write(&sample, b"....SANDGATE-AV-TEST....").expect("sample");
    let bundle = v.path("av.sgb");
    let o = patc(&[
        "build",
        "-o",
        s(&bundle),
        "--sign",
        s(&v.key()),
        "--scan-vectors",
        s(&sample),
        s(&ndb),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // Vectors claiming a detection the module does not make.
    let lying = v.resign(&bundle, "lying.sgb", |b| {
        let (entry, blob) = b.vectors_for("av-signatures").expect("vectors");
        let mut expect = entry.expect.clone();
        expect[0].count = 2;
        let blob = blob.to_vec();
        b.set_vectors("av-signatures", blob, expect);
    });
    let o = v.matrix(&lying);
    assert_refused(
        &o,
        "sandgate 0.2.0 has no working variant of module `av-signatures`",
    );
    assert!(
        !text(&o).contains("sandgate 0.1.0 has no working variant"),
        "{}",
        text(&o)
    );
}
