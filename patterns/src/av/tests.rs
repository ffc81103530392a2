//! Parser and engine behaviour on small databases, scanned whole and in
//! odd-sized chunks.

use super::*;
use sandgate_matcher::av::{ScanLimits, Scanner};

fn compile(name: &str, text: &str) -> AvCompileOutput {
    compile_databases(&[DbFile { name, text }], CLAMAV_FLEVEL)
}

/// Names detected in `data` fed in `chunk`-byte pieces (all-match).
fn scan(db: &AvDb, data: &[u8], chunk: usize) -> Vec<String> {
    let mut s = Scanner::new(
        db,
        ScanLimits {
            max_file_size: u64::MAX,
            all_match: true,
        },
    );
    for c in data.chunks(chunk.max(1)) {
        s.feed(c);
    }
    let mut names: Vec<String> = s
        .finish()
        .detections
        .iter()
        .map(|d| db.name(d.signature).to_string())
        .collect();
    names.sort();
    names
}

/// Same detections whole and in 1, 2, 3, 7 and 4096-byte chunks.
fn scan_all(db: &AvDb, data: &[u8]) -> Vec<String> {
    let whole = scan(db, data, data.len().max(1));
    for chunk in [1, 2, 3, 7, 4096] {
        assert_eq!(scan(db, data, chunk), whole, "chunk size {chunk}");
    }
    whole
}

#[test]
fn wildcards_gaps_and_alternations_match_like_clamav() {
    let out = compile(
        "t.ndb",
        "Exact:0:*:414243\n\
         Nibble:0:*:4a?b?c\n\
         Any:0:*:5858??5959\n\
         Star:0:*:6162*6364\n\
         Range:0:*:3132{2-3}3334\n\
         AtLeast:0:*:7172{2-}7374\n\
         AtMost:0:*:7576{-1}7778\n\
         Alt:0:*:4142(43|44)45\n\
         MultiAlt:0:*:5a5a(4142|4344)5a\n\
         NotAlt:0:*:6d6d!(6e|6f)6d\n\
         Anchor:0:*:2b2b2b[1-2]2d\n\
         VarAlt:0:*:5641522d(41|4242)2d454e44\n",
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    let db = &out.db;
    assert_eq!(scan_all(db, b"xxABCxx"), ["Exact"]);
    assert_eq!(scan_all(db, b"J\x1bK\x2cL..."), Vec::<String>::new());
    assert_eq!(scan_all(db, b"\x4a\x1b\x2c..."), ["Nibble"]);
    assert_eq!(scan_all(db, b"XX!YY."), ["Any"]);
    assert_eq!(scan_all(db, b"ab.........cd"), ["Star"]);
    assert_eq!(scan_all(db, b"cdab..."), Vec::<String>::new());
    assert_eq!(scan_all(db, b"12..34 12.34 12....34"), ["Range"]);
    assert_eq!(scan_all(db, b"12.34 12....34"), Vec::<String>::new());
    // Several candidate starts: the farthest one still in range decides.
    assert_eq!(scan_all(db, b"12.12..34"), ["Range"]);
    assert_eq!(scan_all(db, b"12....12.34"), Vec::<String>::new());
    assert_eq!(scan_all(db, b"qr..st"), ["AtLeast"]);
    assert_eq!(scan_all(db, b"qr.st."), Vec::<String>::new());
    assert_eq!(scan_all(db, b"uvwx.."), ["AtMost"]);
    assert_eq!(scan_all(db, b"uv..wx"), Vec::<String>::new());
    assert_eq!(scan_all(db, b"ABDE.."), ["Alt"]);
    assert_eq!(scan_all(db, b"ZZCDZ ZZADZ"), ["MultiAlt"]);
    assert_eq!(scan_all(db, b"mmnm mmom"), Vec::<String>::new());
    assert_eq!(scan_all(db, b"mmpm.."), ["NotAlt"]);
    assert_eq!(scan_all(db, b"+++.-."), ["Anchor"]);
    assert_eq!(scan_all(db, b"+++...-"), Vec::<String>::new());
    assert_eq!(scan_all(db, b"xVAR-A-END"), ["VarAlt"]);
    assert_eq!(scan_all(db, b"xVAR-BB-END"), ["VarAlt"]);
    assert_eq!(scan_all(db, b"xVAR-B-END"), Vec::<String>::new());
}

#[test]
fn offsets_absolute_floating_and_from_eof() {
    let out = compile(
        "t.ndb",
        "At2:0:2:4142\n\
         Float:0:1,2:4344\n\
         Eof:0:EOF-3:454647\n\
         EofStar:0:EOF-6,1:48*49\n",
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let db = &out.db;
    assert_eq!(scan_all(db, b"..AB.."), ["At2"]);
    assert_eq!(scan_all(db, b"...AB."), Vec::<String>::new());
    assert_eq!(scan_all(db, b"...CD."), ["Float"]);
    assert_eq!(scan_all(db, b"....CD"), Vec::<String>::new());
    assert_eq!(scan_all(db, b"xxxxEFG"), ["Eof"]);
    assert_eq!(scan_all(db, b"xxxxEFGx"), Vec::<String>::new());
    assert_eq!(scan_all(db, b"xxH..Ixx"), ["EofStar"]);
    assert_eq!(scan_all(db, b"H....I"), ["EofStar"]);
    assert_eq!(scan_all(db, b"xxxxH.I"), Vec::<String>::new());
}

#[test]
fn hash_signatures_need_the_right_size_and_any_size_needs_flevel_73() {
    // MD5, SHA1 and SHA256 of "abcdef".
    let hdb = "e80b5017098950fc58aad83c8c14978e:6:Md5.Abc\ne80b5017098950fc58aad83c8c14978e:7:Md5.WrongSize\n";
    let hsb = "1f8ac10f23c5b5bc1167bda84b833e5c057a77d2:6:Sha1.Abc\n\
               bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721:*:Sha256.Any:73\n";
    let out = compile_databases(
        &[
            DbFile {
                name: "a.hdb",
                text: hdb,
            },
            DbFile {
                name: "a.hsb",
                text: hsb,
            },
        ],
        CLAMAV_FLEVEL,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        scan_all(&out.db, b"abcdef"),
        ["Md5.Abc", "Sha1.Abc", "Sha256.Any"]
    );
    assert_eq!(scan_all(&out.db, b"abcdefg"), Vec::<String>::new());

    let bad = compile(
        "x.hsb",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad:*:Sha256.Any\n",
    );
    assert_eq!(bad.errors.len(), 1);
    let msg = bad.errors[0].to_string();
    assert!(msg.starts_with("x.hsb:1: signature Sha256.Any:"), "{msg}");
    assert!(msg.contains("at least 73"), "{msg}");
}

#[test]
fn logical_signatures_with_counts() {
    let out = compile(
        "t.ldb",
        "Two;Engine:51-255,Target:0;0&1;4142;4344\n\
         Either;Target:0;0|1;5859;5a5a\n\
         Thrice;Target:0;0=3;2121\n\
         More;Target:0;0>1;2323\n\
         Distinct;Target:0;(0|1|2)>1,2;3031;3233;3435\n\
         Sized;Engine:51-255,Target:0,FileSize:1-7;0;2626\n",
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let db = &out.db;
    assert_eq!(scan_all(db, b"AB..CD"), ["Two"]);
    assert_eq!(scan_all(db, b"AB...."), Vec::<String>::new());
    assert_eq!(scan_all(db, b"ZZ...."), ["Either"]);
    assert_eq!(scan_all(db, b"!!.!!.!!"), ["Thrice"]);
    assert_eq!(scan_all(db, b"!!.!!."), Vec::<String>::new());
    assert_eq!(
        scan_all(db, b"!!!!..."),
        ["Thrice"],
        "overlapping matches count"
    );
    assert_eq!(scan_all(db, b"##.##."), ["More"]);
    assert_eq!(scan_all(db, b"01.23."), ["Distinct"]);
    assert_eq!(scan_all(db, b"01.01."), Vec::<String>::new());
    assert_eq!(scan_all(db, b"&&...."), ["Sized"]);
    assert_eq!(scan_all(db, b"&&......"), Vec::<String>::new());

    // A count comparison that holds for zero matches fires on any file.
    let few = compile("f.ldb", "Few;Target:0;(0|1)<3;2424;2525\n");
    assert_eq!(scan_all(&few.db, b"$$.%%."), ["Few"]);
    assert_eq!(scan_all(&few.db, b"......"), ["Few"]);
    assert_eq!(scan_all(&few.db, b"$$.%%.$$"), Vec::<String>::new());
}

#[test]
fn files_of_five_bytes_or_less_are_not_scanned() {
    let out = compile("t.ndb", "Ab:0:*:4142\n");
    assert_eq!(scan_all(&out.db, b"xAB.."), Vec::<String>::new());
    assert_eq!(scan_all(&out.db, b"xAB..."), ["Ab"]);
}

#[test]
fn unsupported_constructs_and_levels_are_skipped_with_their_place() {
    let out = compile_databases(
        &[
            DbFile {
                name: "a.ndb",
                text: "# comment\nPe:1:*:4142\nEp:0:EP+0:4142\nOld:0:*:4142:1:20\nBound:0:*:41(B)42\nGood:0:*:4142\n",
            },
            DbFile {
                name: "b.ldb",
                text: "Future;Engine:250-255,Target:0;0;4142\nPcre;Target:0;0&1;4142;0/abc/\n",
            },
            DbFile { name: "c.ign2", text: "Good\n" },
        ],
        CLAMAV_FLEVEL,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let skips: Vec<String> = out.skipped.iter().map(|s| s.to_string()).collect();
    assert_eq!(skips.len(), 7, "{skips:#?}");
    assert!(skips[0].starts_with("a.ndb:2: signature Pe skipped: target type 1 (PE)"));
    assert!(skips[1].starts_with("a.ndb:3: signature Ep skipped: offset EP+0"));
    assert!(skips[2].starts_with("a.ndb:4: signature Old skipped: functionality level range 1-20"));
    assert!(skips[3].starts_with("a.ndb:5: signature Bound skipped: character class (B)"));
    assert!(skips[4].starts_with("a.ndb:6: signature Good skipped: disabled by an .ign2"));
    assert!(skips[5]
        .starts_with("b.ldb:1: signature Future skipped: functionality level range 250-255"));
    assert!(skips[6].starts_with("b.ldb:2: signature Pcre skipped: subsignature 1: PCRE"));
    assert!(out.db.is_empty());
}

#[test]
fn malformed_lines_are_errors_naming_the_line_and_the_rest_compiles() {
    let out = compile(
        "m.ndb",
        "Ok:0:*:4142\nOdd:0:*:414\nNoClose:0:*:41(42|43\nFields:0:*\nWild:0:*:*4142\nOk2:0:*:4344\nNegVar:0:*:4142!(43|4444)\n",
    );
    let errs: Vec<String> = out.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(errs[4].starts_with(
        "m.ndb:7: signature NegVar: a negated alternation needs alternatives of one length"
    ));
    assert!(errs[0].starts_with("m.ndb:2: signature Odd: odd number of hex digits"));
    assert!(errs[1].starts_with("m.ndb:3: signature NoClose: `(` at character"));
    assert!(errs[2].starts_with("m.ndb:4: expected NAME:TARGET:OFFSET:HEX"));
    assert!(errs[3].starts_with("m.ndb:5: signature Wild: a hex signature cannot start"));
    assert_eq!(scan_all(&out.db, b"ABCD.."), ["Ok", "Ok2"]);

    let ldb = compile(
        "n.ldb",
        "Ok;Target:0;0;4142\nNew;Target:0,FileSize:1-9;0;4142\n",
    );
    let errs: Vec<String> = ldb.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("n.ldb:2: signature New: keywords other than Target need `Engine:51-")
    );
}

#[test]
fn compiling_arbitrary_text_never_panics() {
    let inputs = [
        "",
        ":",
        "::::",
        ";;;;",
        "a:0:*:(",
        "a:0:*:!(",
        "a:0:*:{",
        "a:0:*:[1-",
        "a:0:*:é4142",
        "a:0:*:41é2",
        "x;Target:0;((((0;41",
        "x;Target:0;0>;4142",
        "x;Target:0;99;4142",
        "x;Target:0;0=1,;4142",
        "a:0:EOF-:4142",
        "a:0:1,:4142",
        "a:0:*:41{99999999999999999999}42",
        "a:0:*:4142{5-1}4344",
        "a:0:*:(|)",
        "a:0:*:!()",
        "h:*:n:99999999999",
    ];
    for ext in ["ndb", "ldb", "hdb", "hsb", "ign2"] {
        for text in inputs {
            let name = format!("f.{ext}");
            let out = compile(&name, text);
            let _ = scan(&out.db, b"AAAABBBB", 3);
        }
    }
}

#[test]
fn database_survives_serialisation() {
    let out = compile("t.ndb", "A:0:*:4142*4344\nB:0:EOF-2:4546\n");
    let db = AvDb::from_bytes(&out.db.to_bytes()).expect("round trip");
    assert_eq!(scan_all(&db, b"AB..CD..EF"), ["A", "B"]);
    assert!(AvDb::from_bytes(b"\x05garbage").is_err());
}

/// Random lines built from signature tokens: compiling and scanning with
/// whatever compiles must never panic (the cargo-fuzz target calls the
/// same entry point).
#[test]
fn random_signature_text_never_panics() {
    const TOKENS: &[&str] = &[
        "41",
        "42",
        "4?",
        "?2",
        "??",
        "*",
        "{2}",
        "{1-3}",
        "{-2}",
        "{3-}",
        "[1-2]",
        "(",
        ")",
        "|",
        "!",
        "(B)",
        ":",
        ";",
        ",",
        "0",
        "1",
        "EOF-",
        "EP+",
        "*",
        "=",
        ">",
        "<",
        "&",
        "Target:0",
        "Engine:51-255",
        "::i",
        "x",
        "é",
        "\n",
        "-",
        "99999999999999999999",
        "Name",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let data: Vec<u8> = (0..300).map(|i| b"ABAB\x41\x42"[i % 6]).collect();
    for round in 0..3000 {
        let n = (next() % 24) as usize;
        let mut line = String::new();
        for _ in 0..n {
            line.push_str(TOKENS[(next() % TOKENS.len() as u64) as usize]);
        }
        let ext = ["ndb", "ldb", "hdb", "hsb", "ign2"][round % 5];
        let prefix = match ext {
            "ndb" => "N:0:*:",
            "ldb" => "L;Target:0;0;",
            _ => "",
        };
        let text = format!("{prefix}{line}\n{line}\n");
        let out = compile(&format!("r.{ext}"), &text);
        let _ = scan(&out.db, &data, 1 + (round % 9));
    }
}

/// A decoded database either fails validation or scans without panicking,
/// whatever byte of it was damaged.
#[test]
fn damaged_database_bytes_never_panic_the_scanner() {
    let out = compile_databases(
        &[
            DbFile {
                name: "d.ndb",
                text: "A:0:*:41(42|43)??{1-3}44*4546\nB:0:EOF-4:4748\nC:0:2,3:49(4a4a|4b4b)\n",
            },
            DbFile {
                name: "d.ldb",
                text: "L;Engine:51-255,Target:0,FileSize:1-999;(0&1)>1,2;4142;EOF-9:4344\n",
            },
            DbFile {
                name: "d.hdb",
                text: "e80b5017098950fc58aad83c8c14978e:6:H\n",
            },
        ],
        CLAMAV_FLEVEL,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let bytes = out.db.to_bytes();
    let data = b"xxABC.DxxEFGHIJJAB..CDGH";
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[i] ^= flip;
            if let Ok(db) = AvDb::from_bytes(&damaged) {
                let _ = scan(&db, data, 5);
            }
        }
    }
}

#[test]
fn first_match_mode_stops_and_size_limit_is_reported() {
    let out = compile("t.ndb", "A:0:*:4142\nC:0:*:4344\n");
    let db = &out.db;
    let mut s = Scanner::new(
        db,
        ScanLimits {
            max_file_size: u64::MAX,
            all_match: false,
        },
    );
    s.feed(b"..AB..");
    assert!(s.done(), "a certain detection lets the caller stop feeding");
    s.feed(b"CD....");
    let o = s.finish();
    assert_eq!(o.detections.len(), 1);
    assert_eq!(db.name(o.detections[0].signature), "A");
    assert_eq!(o.detections[0].offset, 2);
    assert_eq!(o.limit_exceeded, None);

    let mut s = Scanner::new(
        db,
        ScanLimits {
            max_file_size: 8,
            all_match: true,
        },
    );
    s.feed(b"..AB..");
    s.feed(b"..CD..");
    let o = s.finish();
    assert_eq!(
        o.limit_exceeded,
        Some(sandgate_matcher::av::LimitKind::MaxFileSize)
    );
    let names: Vec<&str> = o.detections.iter().map(|d| db.name(d.signature)).collect();
    assert_eq!(names, ["A"], "data past the limit is not scanned");
}
