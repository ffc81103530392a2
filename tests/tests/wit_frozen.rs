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
