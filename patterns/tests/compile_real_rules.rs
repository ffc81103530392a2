//! Compiles the ET Open 2020 rule files in `shared/data/rules` with the
//! default Suricata vars, prints how many lower and the top skip reasons,
//! and checks a sane lower bound.

use std::collections::HashMap;
use std::path::PathBuf;

use sandgate_patterns::compile::compile_rules;
use sandgate_patterns::rules::{RuleSource, Vars};

#[test]
fn et_open_2020_rules_compile() {
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
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect();
    let sources: Vec<RuleSource<'_>> = texts
        .iter()
        .map(|(f, t)| RuleSource { file: f, text: t })
        .collect();
    let compiled = compile_rules(&sources, &Vars::suricata_defaults(), "et-open", "2020");
    let ok = compiled.set.rules.len();
    let total = ok + compiled.skipped.len();
    println!(
        "{} files, {total} rules: {ok} compiled, {} skipped",
        files.len(),
        compiled.skipped.len()
    );
    let mut by_label: HashMap<String, usize> = HashMap::new();
    for s in &compiled.skipped {
        *by_label.entry(s.reason.label()).or_default() += 1;
    }
    let mut labels: Vec<_> = by_label.into_iter().collect();
    labels.sort_by_key(|(l, n)| (std::cmp::Reverse(*n), l.clone()));
    for (label, n) in labels.iter().take(25) {
        println!("  {n:6} {label}");
    }
    let pcre = compiled
        .set
        .rules
        .iter()
        .filter(|r| {
            r.ops
                .iter()
                .any(|o| matches!(o, sandgate_matcher::Op::Pcre(_)))
        })
        .count();
    println!(
        "  rules with pcre compiled: {pcre}; flowbit names: {}",
        compiled.set.flowbits.len()
    );
    assert!(total > 0, "no rules found");
    assert!(
        ok * 100 >= total * 15,
        "only {ok} of {total} rules compiled"
    );
    let m = sandgate_matcher::Matcher::new(compiled.set.clone());
    let bytes = compiled.set.to_bytes().expect("serialises");
    println!("  serialised rule set: {} bytes", bytes.len());
    let back = sandgate_matcher::RuleSet::from_bytes(&bytes).expect("loads back");
    assert_eq!(back.rules.len(), m.rule_set().rules.len());
}
