//! Option splitting, quoting, negation and escapes.

use super::{rule, with_options};

/// (options as written, expected [(keyword, value, raw_value)])
type Case = (
    &'static str,
    &'static [(&'static str, Option<&'static str>, Option<&'static str>)],
);

const CASES: &[Case] = &[
    ("sid:1;", &[("sid", Some("1"), Some("1"))]),
    (
        "msg:\"hello\"; nocase; sid:1;",
        &[
            ("msg", Some("hello"), Some("\"hello\"")),
            ("nocase", None, None),
            ("sid", Some("1"), Some("1")),
        ],
    ),
    // `;` escaped inside content, quotes stripped, raw kept.
    (
        "content:\"a\\;b\"; sid:1;",
        &[
            ("content", Some("a;b"), Some("\"a\\;b\"")),
            ("sid", Some("1"), Some("1")),
        ],
    ),
    // All four content escapes.
    (
        r#"content:"\"\\\:\;"; sid:1;"#,
        &[
            ("content", Some(r#""\:;"#), Some(r#""\"\\\:\;""#)),
            ("sid", Some("1"), Some("1")),
        ],
    ),
    // Hex blocks stay raw for the content lowering.
    (
        "content:\"|3B|\"; sid:1;",
        &[
            ("content", Some("|3B|"), Some("\"|3B|\"")),
            ("sid", Some("1"), Some("1")),
        ],
    ),
    (
        "content:\"GET |20 2F|x\"; sid:1;",
        &[
            ("content", Some("GET |20 2F|x"), Some("\"GET |20 2F|x\"")),
            ("sid", Some("1"), Some("1")),
        ],
    ),
    // msg drops a backslash before anything.
    (
        r#"msg:"say \"hi\" \(now\)"; sid:1;"#,
        &[
            (
                "msg",
                Some(r#"say "hi" (now)"#),
                Some(r#""say \"hi\" \(now\)""#),
            ),
            ("sid", Some("1"), Some("1")),
        ],
    ),
    // Negation is kept as a leading `!`, blanks after it dropped.
    (
        "content:!\"x\"; content:! \"y\"; isdataat:!1,relative; sid:1;",
        &[
            ("content", Some("!x"), Some("!\"x\"")),
            ("content", Some("!y"), Some("! \"y\"")),
            ("isdataat", Some("!1,relative"), Some("!1,relative")),
            ("sid", Some("1"), Some("1")),
        ],
    ),
    // pcre keeps its escapes for the regex engine.
    (
        r#"pcre:"/a\\b\;c\"d/i"; sid:1;"#,
        &[
            ("pcre", Some(r#"/a\\b\;c\"d/i"#), Some(r#""/a\\b\;c\"d/i""#)),
            ("sid", Some("1"), Some("1")),
        ],
    ),
    // Other keywords: the four escapes resolve, other backslashes stay.
    (
        r#"reference:url,a\:b\d; sid:1;"#,
        &[
            ("reference", Some(r#"url,a:b\d"#), Some(r#"url,a\:b\d"#)),
            ("sid", Some("1"), Some("1")),
        ],
    ),
    // Keywords are lowercased and trimmed; values trimmed; `nocase:;` keeps an empty value.
    (
        "  MSG :  \"x\"  ;NoCase:;sid:  42  ;",
        &[
            ("msg", Some("x"), Some("\"x\"")),
            ("nocase", Some(""), Some("")),
            ("sid", Some("42"), Some("42")),
        ],
    ),
    // Only the first `:` splits keyword from value.
    (
        "metadata:created_at 2020_01_01, key value:x; sid:1;",
        &[
            (
                "metadata",
                Some("created_at 2020_01_01, key value:x"),
                Some("created_at 2020_01_01, key value:x"),
            ),
            ("sid", Some("1"), Some("1")),
        ],
    ),
    // Parentheses and UTF-8 inside values.
    (
        r#"msg:"回复 (sinkhole)"; pcre:"/(a|b)\;?/"; sid:1;"#,
        &[
            ("msg", Some("回复 (sinkhole)"), Some("\"回复 (sinkhole)\"")),
            ("pcre", Some(r"/(a|b)\;?/"), Some(r#""/(a|b)\;?/""#)),
            ("sid", Some("1"), Some("1")),
        ],
    ),
];

#[test]
fn options_table() {
    for (options, expected) in CASES {
        let text = with_options(options);
        let r = rule(&text).unwrap_or_else(|e| panic!("{options}: {e}"));
        let got: Vec<(&str, Option<&str>, Option<&str>)> = r
            .options
            .iter()
            .map(|o| {
                (
                    o.keyword.as_str(),
                    o.value.as_deref(),
                    o.raw_value.as_deref(),
                )
            })
            .collect();
        assert_eq!(&got, expected, "{options}");
    }
}

#[test]
fn negation_helpers_tell_negated_from_literal_bang() {
    let r = rule(&with_options("content:!\"x\"; content:\"!x\"; sid:1;"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (neg, lit) = (&r.options[0], &r.options[1]);
    assert_eq!(neg.value, lit.value);
    assert!(neg.is_negated() && !lit.is_negated());
    assert_eq!(neg.unnegated_value(), Some("x"));
    assert_eq!(lit.unnegated_value(), Some("!x"));
}

#[test]
fn escaped_semicolon_does_not_end_an_option() {
    // Suricata looks at one byte: `\\;` counts as an escaped `;` too.
    let r = rule(&with_options(r#"reference:url,a\\;b; sid:1;"#)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.options[0].raw_value.as_deref(), Some(r#"url,a\\;b"#));
    assert_eq!(r.options[0].value.as_deref(), Some(r#"url,a\;b"#));
}

#[test]
fn trailing_blanks_after_last_option_are_fine() {
    let r = rule("alert tcp any any -> any any ( msg:\"x\"; sid:1;   )  ")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.options.len(), 2);
}
