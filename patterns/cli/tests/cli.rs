//! The `sandgate-patc` command line: summaries, warnings that name the rule,
//! and nonzero exits only when nothing usable could be written.

use std::process::{Command, Output};

fn patc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sandgate-patc"))
        .args(args)
        .output()
        .expect("run sandgate-patc")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn broken_rules_are_listed_and_the_rest_compiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("mixed.rules");
    std::fs::write(
        &rules,
        "alert tcp any any -> any any (msg:\"good\"; content:\"abc\"; sid:10;)\n\
         alert tcp any any -> any any (msg:\"unknown kw\"; frobnicate:1; sid:11;)\n\
         alert tcp any any -> any (msg:\"bad header\"; sid:12;)\n",
    )
    .expect("write");
    let out = dir.path().join("b.sgb");
    let o = patc(&[
        "build",
        "-o",
        out.to_str().expect("utf8"),
        rules.to_str().expect("utf8"),
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("compiled 1 of 3 rules"), "{stdout}");
    assert!(
        stderr.contains("mixed.rules:2 (sid 11): unsupported keyword `frobnicate`"),
        "{stderr}"
    );
    assert!(stderr.contains("mixed.rules:3 (sid 12)"), "{stderr}");
    assert!(out.exists());
}

#[test]
fn nothing_usable_is_a_clear_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("bad.rules");
    std::fs::write(
        &rules,
        "alert tcp any any -> any any (msg:\"x\"; pcre_x:1; sid:1;)\nnot a rule\n",
    )
    .expect("write");
    let out = dir.path().join("b.sgb");
    let o = patc(&[
        "build",
        "-o",
        out.to_str().expect("utf8"),
        rules.to_str().expect("utf8"),
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nothing usable"), "{stderr}");
    assert!(!stderr.contains("panicked"));
    assert!(!out.exists(), "no bundle is written when nothing compiled");

    let o = patc(&[
        "build",
        "-o",
        out.to_str().expect("utf8"),
        "/nonexistent.rules",
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr.contains("/nonexistent.rules"), "{stderr}");
}
