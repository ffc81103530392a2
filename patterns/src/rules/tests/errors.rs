//! Every error kind, and that its message names file, line, sid and what.

use super::super::{parse_rule, parse_rules, RuleErrorKind, RuleSource, VarGroup, Vars};

/// (rule, expected kind name, expected sid, expected message after "file:12")
const CASES: &[(&str, &str, Option<u32>, &str)] = &[
    (
        "alert tcp any any -> any 80:70 (sid:2001;)",
        "BadPort",
        Some(2001),
        " (sid 2001): bad port \"80:70\": range start above end",
    ),
    (
        "alert tcp any any -> any (sid:2;)",
        "BadHeader",
        Some(2),
        " (sid 2): bad rule header: expected 7 fields (action protocol src sport direction dst dport), found 6",
    ),
    (
        "alert tcp any any -> any any",
        "BadHeader",
        None,
        ": bad rule header: no '(' starting the rule options",
    ),
    (
        "alert tcp [1.1.1.1 any -> any any (sid:3;)",
        "BadHeader",
        Some(3),
        " (sid 3): bad rule header: unclosed '[' in \"alert tcp [1.1.1.1 any -> any any\"",
    ),
    (
        "warn tcp any any -> any any (sid:4;)",
        "UnknownAction",
        Some(4),
        " (sid 4): unknown action \"warn\" (expected alert, drop, reject, rejectsrc, rejectdst, rejectboth or pass)",
    ),
    (
        "alert gopher any any -> any any (sid:5;)",
        "UnknownProtocol",
        Some(5),
        " (sid 5): unknown protocol \"gopher\"",
    ),
    (
        "alert tcp any any <- any any (sid:6;)",
        "BadDirection",
        Some(6),
        " (sid 6): bad direction \"<-\" (expected -> or <>)",
    ),
    (
        "alert tcp 10.0.0.300 any -> any any (sid:7;)",
        "BadAddress",
        Some(7),
        " (sid 7): bad address \"10.0.0.300\": \"10.0.0.300\" is not an IPv4 address",
    ),
    (
        "alert tcp !any any -> any any (sid:8;)",
        "BadAddress",
        Some(8),
        " (sid 8): bad address \"!any\": negation excludes everything (e.g. !any)",
    ),
    (
        "alert tcp $NOPE any -> any any (sid:9;)",
        "UndefinedVariable",
        Some(9),
        " (sid 9): undefined variable $NOPE (not in vars.address-groups)",
    ),
    (
        "alert tcp any $HOME_NET -> any any (sid:10;)",
        "UndefinedVariable",
        Some(10),
        " (sid 10): undefined variable $HOME_NET (not in vars.port-groups)",
    ),
    (
        "alert tcp $LOOP any -> any any (sid:11;)",
        "VariableCycle",
        Some(11),
        " (sid 11): address variable cycle: $LOOP -> $LOOP",
    ),
    (
        "alert tcp any any -> any any (msg:\"x\"; sid:12)",
        "UnterminatedOption",
        Some(12),
        " (sid 12): option not terminated by ';' near \"sid:12\"",
    ),
    (
        "alert tcp any any -> any any (content:\"a;b\"; sid:13;)",
        "BadOptionSyntax",
        Some(13),
        " (sid 13): bad option syntax near \"content:\"a\": quoted value does not end with '\"' (missing ';' or unescaped ';' inside?)",
    ),
    (
        "alert tcp any any -> any any (content:\"a\\\"; sid:14;)",
        "BadOptionSyntax",
        Some(14),
        " (sid 14): bad option syntax near \"content:\"a\\\"\": closing '\"' is escaped (missing ';' or unescaped ';' inside?)",
    ),
    (
        "alert tcp any any -> any any (content:\"\"; sid:15;)",
        "BadOptionSyntax",
        Some(15),
        " (sid 15): bad option syntax near \"content:\"\"\": empty quoted value",
    ),
    (
        "alert tcp any any -> any any (msg:\"x\"; ; sid:16;)",
        "BadOptionSyntax",
        Some(16),
        " (sid 16): bad option syntax near \"\": empty option keyword",
    ),
    (
        "alert tcp any any -> any any (msg \"x\"; sid:17;)",
        "BadOptionSyntax",
        Some(17),
        " (sid 17): bad option syntax near \"msg \"x\"\": ' ' in keyword \"msg \"x\"\"",
    ),
    (
        "alert tcp any any -> any any (sid:18; msg:\"x\";",
        "BadOptionSyntax",
        Some(18),
        " (sid 18): bad option syntax near \"(sid:18; msg:\"x\";\": rule options do not end with ')'",
    ),
    (
        "alert tcp any any -> any any (isdataat:!; sid:19;)",
        "BadOptionSyntax",
        Some(19),
        " (sid 19): bad option syntax near \"isdataat:!\": '!' without a value",
    ),
    (
        "alert tcp any any -> any any (content:\"a\\x\"; sid:20;)",
        "BadEscape",
        Some(20),
        " (sid 20): bad escape in content value \"\"a\\x\"\": '\\x' is not a valid escape (only \\; \\\" \\\\ \\: are)",
    ),
    (
        "alert tcp any any -> any any (content:\"a\"b\"; sid:21;)",
        "BadEscape",
        Some(21),
        " (sid 21): bad escape in content value \"\"a\"b\"\": '\"' must be escaped as \\\" or written |22|",
    ),
    (
        "alert tcp any any -> any any (msg:\"no sid\";)",
        "MissingSid",
        None,
        ": rule has no sid",
    ),
    (
        "alert tcp any any -> any any (sid:abc;)",
        "BadSid",
        None,
        ": bad sid \"abc\": not a number",
    ),
    (
        "alert tcp any any -> any any (sid:0;)",
        "BadSid",
        Some(0),
        " (sid 0): bad sid \"0\": sid 0 is not allowed",
    ),
    (
        "alert tcp any any -> any any (sid:22; sid:23;)",
        "BadSid",
        Some(22),
        " (sid 22): bad sid \"22\": sid given more than once",
    ),
    (
        "alert tcp any any -> any any (sid:99999999999;)",
        "BadSid",
        None,
        ": bad sid \"99999999999\": above 4294967295",
    ),
];

#[test]
fn each_error_kind_names_file_line_sid_and_what() {
    let mut vars = Vars::suricata_defaults();
    vars.set(VarGroup::Address, "LOOP", "$LOOP");
    for (text, kind, sid, message) in CASES {
        let err = match parse_rule(text, "rules.rules", 12, &vars) {
            Ok(rule) => panic!("{text} parsed: {rule:?}"),
            Err(err) => err,
        };
        assert_eq!(err.kind.name(), *kind, "{text}: {err}");
        assert_eq!(err.sid, *sid, "{text}: {err}");
        assert_eq!((err.file.as_str(), err.line), ("rules.rules", 12), "{text}");
        assert_eq!(
            err.to_string(),
            format!("rules.rules:12{message}"),
            "{text}"
        );
    }
}

#[test]
fn sid_scan_finds_sid_next_to_other_options() {
    let err = parse_rule(
        "alert tcp any any -> any 0:x (msg:\"sid:1\"; classtype:x;sid : 77 ; rev:1;)",
        "f",
        1,
        &Vars::new(),
    )
    .err();
    assert_eq!(err.map(|e| e.sid), Some(Some(77)));
}

#[test]
fn unterminated_continuation_at_end_of_file() {
    let text =
        "alert tcp any any -> any any (sid:1;)\nalert tcp any any -> any any \\\n  (sid:31; \\\n";
    let rules = parse_rules(
        &RuleSource {
            file: "tail.rules",
            text,
        },
        &Vars::new(),
    );
    assert_eq!(rules.len(), 2);
    let err = match &rules[1] {
        Ok(rule) => panic!("parsed: {rule:?}"),
        Err(err) => err,
    };
    assert_eq!(err.kind, RuleErrorKind::UnterminatedContinuation);
    assert_eq!(
        err.to_string(),
        "tail.rules:2 (sid 31): file ends inside a rule continued with '\\'"
    );
}
