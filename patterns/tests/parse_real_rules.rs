//! Parses the ET Open 2020 rule files shipped in `shared/data/rules` with the
//! default Suricata vars and checks that at least 99% of rules get through
//! the header and option grammar (keywords are not interpreted here).

use std::collections::BTreeMap;
use std::path::PathBuf;

use sandgate_patterns::rules::{parse_rules, RuleSource, Vars};

#[test]
fn et_open_2020_rules_parse() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/rules/et-open-2020");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("skip: rule directory {} not found", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rule files in {}", dir.display());

    let vars = Vars::suricata_defaults();
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut by_kind: BTreeMap<&'static str, (usize, String)> = BTreeMap::new();
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text = String::from_utf8_lossy(&bytes);
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        for result in parse_rules(
            &RuleSource {
                file: &name,
                text: &text,
            },
            &vars,
        ) {
            match result {
                Ok(_) => ok += 1,
                Err(err) => {
                    failed += 1;
                    let entry = by_kind
                        .entry(err.kind.name())
                        .or_insert((0, err.to_string()));
                    entry.0 += 1;
                }
            }
        }
    }
    let total = ok + failed;
    println!(
        "{} files, {total} rules: {ok} parsed, {failed} failed",
        files.len()
    );
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by_key(|(_, (count, _))| std::cmp::Reverse(*count));
    for (kind, (count, example)) in &kinds {
        println!("  {count:6} {kind}  e.g. {example}");
    }
    assert!(total > 0, "no rules found");
    assert!(
        ok * 100 >= total * 99,
        "only {ok} of {total} rules parsed (need 99%)"
    );
}
