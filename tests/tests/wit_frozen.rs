//! Released interface versions are frozen: every file listed in
//! `wit/RELEASED` still has the hash recorded when it was released, and
//! every version folder in `wit/` is listed there.

use sandgate_tests::repo_root;

fn sha256_hex(bytes: &[u8]) -> String {
    sandgate_patterns::bundle::sha256_hex(bytes)
}

#[test]
fn released_wit_files_are_unchanged() {
    let wit = repo_root().join("wit");
    let listed = std::fs::read_to_string(wit.join("RELEASED")).expect("wit/RELEASED");
    let mut folders = Vec::new();
    for line in listed.lines().filter(|l| !l.trim().is_empty()) {
        let (hash, file) = line.split_once("  ").expect("`<sha256>  <path>` lines");
        let bytes = std::fs::read(wit.join(file)).unwrap_or_else(|e| panic!("wit/{file}: {e}"));
        assert_eq!(
            sha256_hex(&bytes),
            hash,
            "wit/{file} changed after release: add a new version instead"
        );
        folders.push(file.split('/').next().unwrap_or_default().to_string());
    }
    for entry in std::fs::read_dir(&wit).expect("wit/") {
        let entry = entry.expect("dir entry");
        if entry.path().is_dir() {
            let name = entry.file_name().to_string_lossy().to_string();
            assert!(
                folders.contains(&name),
                "wit/{name} is not recorded in wit/RELEASED"
            );
        }
    }
}

/// Released versions in order, as `(folder, version)`, from `wit/RELEASED`.
fn released_versions() -> Vec<(String, (u32, u32, u32))> {
    let listed = std::fs::read_to_string(repo_root().join("wit/RELEASED")).expect("wit/RELEASED");
    let mut out: Vec<(String, (u32, u32, u32))> = listed
        .lines()
        .filter_map(|l| l.split_once("  "))
        .filter_map(|(_, file)| file.split('/').next())
        .map(|folder| {
            let v: Vec<u32> = folder
                .trim_start_matches('v')
                .split('.')
                .map(|p| p.parse().expect("vMAJOR.MINOR.PATCH folder"))
                .collect();
            (folder.to_string(), (v[0], v[1], v[2]))
        })
        .collect();
    out.sort_by_key(|(_, v)| *v);
    out.dedup();
    out
}

/// Every world of a released minor is still offered, semver-compatibly, by
/// the next minor of the same major: a module built against the older
/// version keeps working on an engine built from the newer one.
#[test]
fn each_minor_only_adds_to_the_previous_one() {
    let versions = released_versions();
    assert!(
        versions.iter().any(|(f, _)| f == "v1.1.0"),
        "1.1.0 is released"
    );
    assert!(
        versions.iter().any(|(f, _)| f == "v1.2.0"),
        "1.2.0 is released"
    );
    let mut checked = 0;
    for pair in versions.windows(2) {
        let ((old_dir, old), (new_dir, new)) = (&pair[0], &pair[1]);
        if old.0 != new.0 {
            continue;
        }
        let mut resolve = wit_parser::Resolve::default();
        let wit = repo_root().join("wit");
        let (old_pkg, _) = resolve.push_dir(wit.join(old_dir)).expect("old WIT parses");
        let (new_pkg, _) = resolve.push_dir(wit.join(new_dir)).expect("new WIT parses");
        let old_worlds: Vec<(String, wit_parser::WorldId)> = resolve.packages[old_pkg]
            .worlds
            .iter()
            .map(|(n, id)| (n.clone(), *id))
            .collect();
        for (name, old_world) in old_worlds {
            let new_world = resolve
                .select_world(&[new_pkg], Some(&name))
                .unwrap_or_else(|e| panic!("{new_dir} dropped world `{name}` of {old_dir}: {e}"));
            wit_component::semver_check(resolve.clone(), old_world, new_world).unwrap_or_else(
                |e| {
                    panic!(
                        "world `{name}`: {new_dir} is not a compatible upgrade of {old_dir}: {e:#}"
                    )
                },
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no consecutive minors were compared");
}

/// The check above can fail: a 1.1.0 that changed a 1.0.0 record is refused.
#[test]
fn a_changed_record_is_not_a_compatible_minor() {
    let old = std::fs::read_to_string(repo_root().join("wit/v1.0.0/pattern.wit")).expect("1.0.0");
    let changed = old
        .replace(
            "package sandgate:pattern@1.0.0;",
            "package sandgate:pattern@1.1.0;",
        )
        .replace(
            "hi: u64,\n        lo: u64,",
            "hi: u64,\n        lo: u64,\n        zone: u32,",
        );
    assert_ne!(old, changed.replace("@1.1.0", "@1.0.0"), "the edit applied");
    let mut resolve = wit_parser::Resolve::default();
    let a = resolve.push_str("old.wit", &old).expect("old parses");
    let b = resolve.push_str("new.wit", &changed).expect("new parses");
    let wa = resolve
        .select_world(&[a], Some("ips-module"))
        .expect("world");
    let wb = resolve
        .select_world(&[b], Some("ips-module"))
        .expect("world");
    assert!(wit_component::semver_check(resolve, wa, wb).is_err());
}
