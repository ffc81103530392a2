//! Payload keywords beyond `content`: `pcre`, `isdataat`, `dsize`,
//! `byte_test`, `byte_jump`, `byte_extract` (and its variables in later
//! keywords). Each row: rule options, TCP payload, expected match.

mod common;

use common::run_payload_table;

#[test]
fn pcre_flags_relative_negation_and_backtracking() {
    run_payload_table(&[
        (r#"pcre:"/a[0-9]+z/";"#, b"xxa123zxx", true),
        (r#"pcre:"/a[0-9]+z/";"#, b"xxA123Zxx", false),
        (r#"pcre:"/a[0-9]+z/i";"#, b"xxA123Zxx", true),
        (r#"pcre:"/^GET/";"#, b" GET", false),
        (r#"pcre:"/^Host/m";"#, b"GET /\r\nHost: x", true),
        (r#"pcre:"/^Host/";"#, b"GET /\r\nHost: x", false),
        (r#"pcre:"/a.b/";"#, b"a\nb", false),
        (r#"pcre:"/a.b/s";"#, b"a\nb", true),
        (r#"pcre:"/a b c/x";"#, b"abc", true),
        (r#"pcre:"/\x00\xff/";"#, b"\x00\xff", true),
        (r#"pcre:"/end$/";"#, b"the end\n", true),
        (r#"pcre:"/x/B";"#, b"x", true),
        // negated
        (r#"content:"GET"; pcre:!"/admin/i";"#, b"GET /ADMIN", false),
        (r#"content:"GET"; pcre:!"/admin/i";"#, b"GET /index", true),
        // relative: searched from the end of the previous match; `^` anchors there
        (
            r#"content:"user="; pcre:"/^[a-z]+\;/R";"#,
            b"user=bob;",
            true,
        ),
        (
            r#"content:"user="; pcre:"/^[a-z]+\;/R";"#,
            b"user= bob;",
            false,
        ),
        (r#"content:"abc"; pcre:"/abc/R";"#, b"abc", false),
        (r#"content:"abc"; pcre:"/abc/R";"#, b"abcabc", true),
        // backtracking: the first "id=" has letters after it, the second digits
        (r#"content:"id="; pcre:"/^\d+/R";"#, b"id=x id=42", true),
        // the cursor moves to the end of the pcre match
        (r#"pcre:"/k+/"; content:"v"; within:1;"#, b"kkkv", true),
        (r#"pcre:"/k+/"; content:"v"; within:1;"#, b"kkk-v", false),
        // pcre backtracks for a following relative content
        (r#"pcre:"/k./"; content:"v"; within:1;"#, b"kx-kyv", true),
    ]);
}

#[test]
fn isdataat_and_dsize() {
    run_payload_table(&[
        ("isdataat:3;", b"abcd", true),
        ("isdataat:4;", b"abcd", false),
        ("isdataat:!4;", b"abcd", true),
        // relative: Suricata checks cursor + N <= length
        (r#"content:"ab"; isdataat:2,relative;"#, b"abcd", true),
        (r#"content:"ab"; isdataat:3,relative;"#, b"abcd", false),
        (r#"content:"cd"; isdataat:!1,relative;"#, b"abcd", true),
        (r#"content:"ab"; isdataat:!1,relative;"#, b"abcd", false),
        // backtracks: the second "ab" is the one at the end
        (r#"content:"ab"; isdataat:!1,relative;"#, b"abxxab", true),
        ("dsize:4;", b"abcd", true),
        ("dsize:5;", b"abcd", false),
        ("dsize:>3;", b"abcd", true),
        ("dsize:<4;", b"abcd", false),
        ("dsize:!4;", b"abcd", false),
        ("dsize:3<>5;", b"abcd", true),
        ("dsize:4<>5;", b"abcd", false),
        ("dsize:0;", b"", true),
    ]);
}

#[test]
fn byte_test_operators_endianness_and_strings() {
    let bin: &[u8] = b"\x00\x10\x01\x02";
    run_payload_table(&[
        ("byte_test:2,=,16,0;", bin, true),
        ("byte_test:2,!=,16,0;", bin, false),
        ("byte_test:2,!,16,0;", bin, false),
        ("byte_test:2,<,17,0;", bin, true),
        ("byte_test:2,>,16,0;", bin, false),
        ("byte_test:2,>=,16,0;", bin, true),
        ("byte_test:2,<=,15,0;", bin, false),
        ("byte_test:2,&,0x10,0;", bin, true),
        ("byte_test:2,&,0x01,0;", bin, false),
        ("byte_test:2,^,16,0;", bin, false),
        ("byte_test:2,=,0x0201,2,little;", bin, true),
        ("byte_test:2,=,0x0102,2,big;", bin, true),
        ("byte_test:4,=,0x00100102,0;", bin, true),
        ("byte_test:1,=,1,2,bitmask 0x0f;", bin, true),
        ("byte_test:1,=,1,1,bitmask 0xf0;", bin, true),
        // reading past the end fails, negated or not
        ("byte_test:2,=,0,3;", bin, false),
        ("byte_test:2,!=,0,3;", bin, false),
        // text numbers
        ("byte_test:3,=,123,0,string,dec;", b"123", true),
        ("byte_test:3,>,122,0,string,dec;", b"123", true),
        ("byte_test:2,=,255,0,string,hex;", b"ff", true),
        ("byte_test:2,=,8,0,string,oct;", b"10", true),
        ("byte_test:3,=,1,0,string,dec;", b"abc", false),
        // relative to a content, negative offset
        (
            r#"content:"len:"; byte_test:1,=,7,0,relative;"#,
            b"len:\x07",
            true,
        ),
        (
            r#"content:"len:"; byte_test:1,=,0x3a,-1,relative;"#,
            b"len:\x07",
            true,
        ),
    ]);
}

#[test]
fn byte_jump_options() {
    run_payload_table(&[
        // length 2 at 0, jump over it: lands on "X"
        (r#"byte_jump:1,0; content:"X"; within:1;"#, b"\x02abX", true),
        (
            r#"byte_jump:1,0; content:"X"; within:1;"#,
            b"\x01abX",
            false,
        ),
        // multiplier
        (
            r#"byte_jump:1,0,multiplier 2; content:"X"; within:1;"#,
            b"\x01abX",
            true,
        ),
        // align rounds up to 4: 1 + (2 -> 4) = 5
        (
            r#"byte_jump:1,0,align; content:"X"; within:1;"#,
            b"\x02abcdX",
            true,
        ),
        // post_offset
        (
            r#"byte_jump:1,0,post_offset 1; content:"X"; within:1;"#,
            b"\x01aXX",
            true,
        ),
        (
            r#"byte_jump:1,0,post_offset -1; content:"a"; within:1;"#,
            b"\x01aX",
            true,
        ),
        // from_beginning: jump to absolute offset 3
        (
            r#"content:"Q"; byte_jump:1,0,relative,from_beginning; content:"X"; within:1;"#,
            b"Q\x03?X",
            true,
        ),
        // from_end with a negative post_offset
        (
            r#"byte_jump:1,0,from_end,post_offset -2; content:"yz"; within:2;"#,
            b"\x00wxyz",
            true,
        ),
        // little endian and string lengths
        (
            r#"byte_jump:2,0,little; content:"X"; within:1;"#,
            b"\x01\x00aX",
            true,
        ),
        (
            r#"byte_jump:1,0,string,dec; content:"X"; within:1;"#,
            b"3abcX",
            true,
        ),
        // jumping out of the buffer fails
        (r#"byte_jump:1,0; content:"X";"#, b"\x09X", false),
        // relative to a content
        (
            r#"content:"T"; byte_jump:1,0,relative; content:"X"; within:1;"#,
            b"T\x01aX",
            true,
        ),
    ]);
}

#[test]
fn byte_extract_feeds_later_keywords() {
    run_payload_table(&[
        // length prefix then a content exactly that far on
        (
            r#"byte_extract:1,0,len; content:"X"; distance:len; within:1;"#,
            b"\x02abX",
            true,
        ),
        (
            r#"byte_extract:1,0,len; content:"X"; distance:len; within:1;"#,
            b"\x01abX",
            false,
        ),
        // the cursor moves past the extracted bytes
        (
            r#"byte_extract:1,0,n; content:"a"; within:1;"#,
            b"\x05abc",
            true,
        ),
        // within from a variable
        (
            r#"byte_extract:1,0,w; content:"Z"; within:w;"#,
            b"\x03abZ",
            true,
        ),
        (
            r#"byte_extract:1,0,w; content:"Z"; within:w;"#,
            b"\x02abZ",
            false,
        ),
        // offset / depth from variables
        (
            r#"byte_extract:1,0,o; content:"Z"; offset:o; depth:1;"#,
            b"\x03abZ",
            true,
        ),
        (
            r#"byte_extract:1,0,o; content:"Z"; offset:o; depth:1;"#,
            b"\x02abZ",
            false,
        ),
        // byte_test value and offset from variables
        (
            r#"byte_extract:1,0,v; byte_test:1,=,v,1;"#,
            b"\x07\x07",
            true,
        ),
        (
            r#"byte_extract:1,0,v; byte_test:1,=,v,1;"#,
            b"\x07\x08",
            false,
        ),
        (
            r#"byte_extract:1,0,o; byte_test:1,=,0x41,o;"#,
            b"\x02xA",
            true,
        ),
        // byte_jump offset and isdataat from variables
        (
            r#"byte_extract:1,0,o; byte_jump:1,o; content:"X"; within:1;"#,
            b"\x01\x01aX",
            true,
        ),
        (r#"byte_extract:1,0,n; isdataat:n;"#, b"\x03ab", false),
        (r#"byte_extract:1,0,n; isdataat:n;"#, b"\x01ab", true),
        // multiplier, align, string
        (
            r#"byte_extract:1,0,n,multiplier 2; content:"X"; distance:n; within:1;"#,
            b"\x01abX",
            true,
        ),
        (
            r#"byte_extract:1,0,n,align 4; content:"X"; distance:n; within:1;"#,
            b"\x01abcdX",
            true,
        ),
        (
            r#"byte_extract:2,0,n,string,dec; content:"X"; distance:n; within:1;"#,
            b"03abcX",
            true,
        ),
        // relative extraction with backtracking over the anchor content
        (
            r#"content:"L"; byte_extract:1,0,n,relative; content:"X"; distance:n; within:1;"#,
            b"L\x05L\x01aX",
            true,
        ),
    ]);
}

#[test]
fn bad_payload_values_are_skipped_with_the_keyword() {
    for (opts, keyword) in [
        (r#"pcre:"/(a)\1/";"#, "pcre"),
        (r#"pcre:"/a(?=b)/";"#, "pcre"),
        (r#"pcre:"/a/UH";"#, "pcre"),
        (r#"pcre:"a";"#, "pcre"),
        ("byte_test:2,=,1,0,dce;", "byte_test"),
        ("byte_test:9,=,1,0;", "byte_test"),
        ("byte_test:2,~,1,0;", "byte_test"),
        ("byte_jump:2,0,dce;", "byte_jump"),
        ("byte_extract:1,0,a; byte_extract:1,0,a;", "byte_extract"),
        (r#"content:"a"; distance:nope;"#, "distance"),
        ("isdataat:x;", "isdataat"),
        ("dsize:5<>2;", "dsize"),
    ] {
        let rule = format!("alert tcp any any -> any any ({opts} sid:9;)");
        let c = common::compile(&rule);
        assert_eq!(c.skipped.len(), 1, "{rule} should be skipped");
        let text = c.skipped[0].to_string();
        assert!(text.contains(keyword), "{rule}: {text}");
    }
}
