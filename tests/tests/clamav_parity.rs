//! Detection parity with ClamAV's own `clamscan` (Debian's clamav 1.4.x):
//! the same databases compiled by Sandgate and loaded by `clamscan -d`, the
//! same files (Debian's clamav-testfiles plus generated files with markers at
//! offsets, near EOF and across 64 KiB chunk boundaries, and files with
//! hash signatures), identical per-file detection sets. Sandgate's side is
//! also fed in 1, 7 and 4096-byte chunks and must not change its answer.
//!
//! Sandgate's side runs twice: the native scanner (`sandgate-matcher`), and
//! the real path — `sandgate-patc build` into a bundle, `sandgate scan` with
//! the AV module in wasm. clamscan runs on raw bytes (containers, PE
//! unpackers and HTML normalisation off, see `CLAMSCAN_RAW`); a missing
//! clamscan fails the test with a message pointing at scripts/test.sh.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use sandgate_tests::clamav::{
    clamscan_detections, compile_files, diff, sandgate_cli_detections, sandgate_detections,
    sandgate_scan, sigtool, testfiles, wasm_chunked, with_marks, Detections,
};
use sandgate_tests::shared_data;

/// Body signatures exercising every construct Sandgate claims for `.ndb`.
const GEN_NDB: &str = "\
# Generated parity database: one signature per construct.
Gen.Exact:0:*:53474e4c2d4558414354
Gen.Nibble:0:*:4e49424c3a4??35a
Gen.AnyByte:0:*:414e59??42595445
Gen.Star:0:*:535441522d31*535441522d32
Gen.Range:0:*:52414e47452d41{2-5}52414e47452d42
Gen.AtLeast:0:*:4d494e2d41{4-}4d494e2d42
Gen.AtMost:0:*:4d41582d41{-3}4d41582d42
Gen.Exactly:0:*:46495845442d41{100}46495845442d42
Gen.Alt:0:*:414c542d(54574f|4f4e45)2d454e44
Gen.AltByte:0:*:424954(31|32|33)2d454e44
Gen.NotAlt:0:*:4e4f542d!(58|59)2d454e44
Gen.NotAltMulti:0:*:4e4f54322d!(5858|5959)2d454e44
Gen.VarAlt:0:*:5641522d(41|4242|4?43)2d454e44
Gen.Anchor:0:*:414e43484f52[2-4]21
Gen.Offset0:0:0:5354415254
Gen.Offset100:0:100:4f464631303021
Gen.Float:0:200,50:464c4f415421
Gen.Eof:0:EOF-8:454e442d4d41524b
Gen.EofFloat:0:EOF-20,10:454f462d464c54
Gen.Boundary:0:*:424f554e444152592d4143524f53532d3634
Gen.StarBoundary:0:*:5354415242313a*5354415242323a
Gen.Levels:0:*:4c4556454c532d4f4b:51:255
Gen.TooOld:0:*:4c4556454c532d4f4b:1:50
Gen.TooNew:0:*:4c4556454c532d4f4b:250
Gen.Ignored:0:*:49474e4f5245442d4d45
";

/// Logical signatures: operators, counts, offsets, FileSize, `::i`.
const GEN_LDB: &str = "\
Gen.Ldb.And;Engine:51-255,Target:0;0&1;4c44422d4f4e45;4c44422d54574f
Gen.Ldb.Or;Target:0;0|1;4c44422d4f5231;4c44422d4f5232
Gen.Ldb.Eq;Target:0;0=3;434e542d45512d
Gen.Ldb.Gt;Target:0;0>3;434e542d47542d
Gen.Ldb.Lt;Target:0;0&(1<3);4c544f4e21;434e542d4c542d
Gen.Ldb.Distinct;Target:0;(0|1|2)>1,2;444953542d41;444953542d42;444953542d43
Gen.Ldb.Nested;Target:0;((0|1)&2)=2;4e45532d41;4e45532d42;4e45532d43
Gen.Ldb.Offsets;Target:0;0&1;EOF-10:4c4f46462d454f46;100:4c4f46462d313030
Gen.Ldb.FileSize;Engine:51-255,Target:0,FileSize:1000-2000;0;53495a45442d
Gen.Ldb.Nocase;Target:0;0;6e6f636173652d6d61726b6572::i
Gen.Ldb.Wild;Target:0;0&1;574c442d??2d(41|42);574c442d2a*2d454e44
Gen.Ldb.GapCount;Target:0;0=2;4d432d41{1-4}4d432d42
Gen.Ldb.Wide;Target:0;0;574944452d4d41524b::w
Gen.Ldb.WideAscii;Target:0;0=2;57412d4d4b::wa
Gen.Ldb.WideNocase;Target:0;0;77692d??2d6d6b::wi
Gen.Ldb.WideGap;Target:0;0;57472d41{1-3}57472d42::w
Gen.Ldb.OldEngine;Engine:1-50,Target:0;0;4c44422d4f4e45
";

const GEN_IGN2: &str = "Gen.Ignored\n";

/// The generated corpus: (file name, bytes).
fn generated_files() -> Vec<(String, Vec<u8>)> {
    let f = |name: &str, len: usize, marks: &[(i64, &[u8])]| {
        let seed = name
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31) ^ b as u64);
        (name.to_string(), with_marks(len, seed, marks))
    };
    let gap = |a: &[u8], n: usize, b: &[u8]| {
        let mut v = a.to_vec();
        v.extend(std::iter::repeat_n(b'.', n));
        v.extend_from_slice(b);
        v
    };
    let wide = |s: &[u8]| -> Vec<u8> { s.iter().flat_map(|b| [*b, 0]).collect() };
    let wide_mark = wide(b"WIDE-MARK");
    let wa_wide = wide(b"WA-MK");
    let wi_wide = wide(b"WI-X-MK");
    let mut wide_gap = wide(b"WG-A");
    wide_gap.push(b'z');
    wide_gap.extend(wide(b"WG-B"));
    let range3 = gap(b"RANGE-A", 3, b"RANGE-B");
    let range6 = gap(b"RANGE-A", 6, b"RANGE-B");
    let min4 = gap(b"MIN-A", 4, b"MIN-B");
    let min3 = gap(b"MIN-A", 3, b"MIN-B");
    let max3 = gap(b"MAX-A", 3, b"MAX-B");
    let max4 = gap(b"MAX-A", 4, b"MAX-B");
    let fixed100 = gap(b"FIXED-A", 100, b"FIXED-B");
    let fixed99 = gap(b"FIXED-A", 99, b"FIXED-B");
    let anchor3 = gap(b"ANCHOR", 3, b"!");
    let anchor5 = gap(b"ANCHOR", 5, b"!");
    vec![
        f("exact.bin", 4000, &[(1000, b"SGNL-EXACT")]),
        f("exact-edge.bin", 4000, &[(-10, b"SGNL-EXACT")]),
        f("exact-miss.bin", 4000, &[(1000, b"SGNL-EXACt")]),
        f("nibble.bin", 3000, &[(10, b"NIBL:\x4a\x73Z")]),
        f(
            "nibble-miss.bin",
            3000,
            &[(10, b"NIBL:\x5a\x73Z"), (50, b"NIBL:\x4a\x74Z")],
        ),
        f("anybyte.bin", 3000, &[(500, b"ANY\x00BYTE")]),
        f("star.bin", 20000, &[(100, b"STAR-1"), (15000, b"STAR-2")]),
        f(
            "star-miss.bin",
            20000,
            &[(100, b"STAR-2"), (15000, b"STAR-1")],
        ),
        f("range.bin", 3000, &[(300, &range3)]),
        f("range-miss.bin", 3000, &[(300, &range6)]),
        f(
            "range-multi.bin",
            3000,
            &[(300, b"RANGE-A"), (309, b"RANGE-A..RANGE-B")],
        ),
        f(
            "range-multi-miss.bin",
            3000,
            &[(300, b"RANGE-A"), (310, b"RANGE-A.RANGE-B")],
        ),
        f("atleast.bin", 3000, &[(300, &min4)]),
        f("atleast-miss.bin", 3000, &[(300, &min3)]),
        f("atmost.bin", 3000, &[(300, &max3)]),
        f("atmost-miss.bin", 3000, &[(300, &max4)]),
        f("exactly.bin", 3000, &[(300, &fixed100)]),
        f("exactly-miss.bin", 3000, &[(300, &fixed99)]),
        f("alt.bin", 3000, &[(7, b"ALT-ONE-END")]),
        f("alt-miss.bin", 3000, &[(7, b"ALT-SIX-END")]),
        f("altbyte.bin", 3000, &[(7, b"BIT2-END")]),
        f("altbyte-miss.bin", 3000, &[(7, b"BIT4-END")]),
        f(
            "varalt.bin",
            3000,
            &[(7, b"VAR-BB-END"), (90, b"VAR-A-END")],
        ),
        f("varalt-nibble.bin", 3000, &[(7, b"VAR-OC-END")]),
        f(
            "varalt-miss.bin",
            3000,
            &[(7, b"VAR-B-END"), (90, b"VAR-AA-END")],
        ),
        f(
            "notalt.bin",
            3000,
            &[(7, b"NOT-Z-END"), (70, b"NOT2-XY-END")],
        ),
        f(
            "notalt-miss.bin",
            3000,
            &[(7, b"NOT-X-END"), (70, b"NOT2-XX-END")],
        ),
        f("anchor.bin", 3000, &[(900, &anchor3)]),
        f("anchor-miss.bin", 3000, &[(900, &anchor5)]),
        f(
            "offset0.bin",
            3000,
            &[(0, b"START"), (100, b"OFF100!"), (230, b"FLOAT!")],
        ),
        f(
            "offset-miss.bin",
            3000,
            &[(1, b"START"), (101, b"OFF100!"), (251, b"FLOAT!")],
        ),
        f(
            "float-edge.bin",
            3000,
            &[(200, b"FLOAT!"), (2000, b"FLOAT!")],
        ),
        f("eof.bin", 5000, &[(-8, b"END-MARK"), (-15, b"EOF-FLT")]),
        f(
            "eof-miss.bin",
            5000,
            &[(-9, b"END-MARK"), (-25, b"EOF-FLT")],
        ),
        f("eof-far.bin", 5000, &[(-20, b"EOF-FLT"), (-10, b"EOF-FLT")]),
        f(
            "boundary.bin",
            200_000,
            &[
                (65536 - 9, b"BOUNDARY-ACROSS-64"),
                (131_072 - 3, b"STARB1:"),
                (196_608 - 2, b"STARB2:"),
            ],
        ),
        f(
            "boundary-tail.bin",
            131_072,
            &[(131_072 - 18, b"BOUNDARY-ACROSS-64")],
        ),
        f(
            "levels.bin",
            3000,
            &[(40, b"LEVELS-OK"), (90, b"IGNORED-ME")],
        ),
        f("ldb-gapcount.bin", 3000, &[(10, b"MC-A.MC-BMC-A.MC-B")]),
        f(
            "ldb-gapcount-miss.bin",
            3000,
            &[(10, b"MC-A.MC-B.....MC-B.")],
        ),
        f("ldb-wide.bin", 3000, &[(10, &wide_mark)]),
        f("ldb-wide-miss.bin", 3000, &[(10, b"WIDE-MARK")]),
        f(
            "ldb-wideascii.bin",
            3000,
            &[(10, b"WA-MK"), (100, &wa_wide)],
        ),
        f("ldb-wideascii-miss.bin", 3000, &[(10, b"WA-MK")]),
        f("ldb-widenocase.bin", 3000, &[(10, &wi_wide)]),
        f("ldb-widegap.bin", 3000, &[(10, &wide_gap)]),
        f("ldb-and.bin", 3000, &[(10, b"LDB-TWO"), (2000, b"LDB-ONE")]),
        f("ldb-or.bin", 3000, &[(10, b"LDB-OR2")]),
        f(
            "ldb-count3.bin",
            3000,
            &[(10, b"CNT-EQ-"), (100, b"CNT-EQ-"), (200, b"CNT-EQ-")],
        ),
        f(
            "ldb-count4.bin",
            3000,
            &[
                (10, b"CNT-EQ-CNT-EQ-CNT-EQ-CNT-EQ-"),
                (300, b"CNT-GT-CNT-GT-CNT-GT-CNT-GT-"),
            ],
        ),
        f("ldb-gt3.bin", 3000, &[(10, b"CNT-GT-CNT-GT-CNT-GT-")]),
        f(
            "ldb-lt.bin",
            3000,
            &[(10, b"LTON!"), (50, b"CNT-LT-CNT-LT-")],
        ),
        f(
            "ldb-lt-many.bin",
            3000,
            &[(10, b"LTON!"), (50, b"CNT-LT-CNT-LT-CNT-LT-")],
        ),
        f(
            "ldb-distinct.bin",
            3000,
            &[(10, b"DIST-A"), (40, b"DIST-C")],
        ),
        f(
            "ldb-distinct-miss.bin",
            3000,
            &[(10, b"DIST-A"), (40, b"DIST-A")],
        ),
        f("ldb-nested.bin", 3000, &[(10, b"NES-A"), (40, b"NES-C")]),
        f(
            "ldb-nested-miss.bin",
            3000,
            &[(10, b"NES-A"), (40, b"NES-B"), (80, b"NES-C")],
        ),
        f(
            "ldb-offsets.bin",
            3000,
            &[(-10, b"LOFF-EOF"), (100, b"LOFF-100")],
        ),
        f(
            "ldb-offsets-miss.bin",
            3000,
            &[(-11, b"LOFF-EOF"), (100, b"LOFF-100")],
        ),
        f("ldb-size.bin", 1500, &[(10, b"SIZED-")]),
        f("ldb-size-miss.bin", 2001, &[(10, b"SIZED-")]),
        f("ldb-nocase.bin", 3000, &[(10, b"NoCase-MARKER")]),
        f(
            "ldb-wild.bin",
            3000,
            &[(10, b"WLD-x-B"), (600, b"WLD-*....-END")],
        ),
        f(
            "ldb-wild-miss.bin",
            3000,
            &[(10, b"WLD-x-C"), (600, b"WLD-*....-END")],
        ),
        f("hash-a.bin", 6, &[]),
        f("hash-b.bin", 1000, &[]),
        f("hash-c.bin", 65_536, &[]),
        f("tiny.bin", 5, &[(0, b"START")]),
        f("empty.bin", 0, &[]),
    ]
}

/// Hash databases written by `sigtool` for some generated files: exact
/// sizes, a wrong size (must not fire) and `*` sizes (with the FLEVEL field
/// ClamAV demands).
fn hash_dbs(dir: &Path) -> anyhow::Result<(String, String)> {
    let sig = |opt: &str, file: &str| -> anyhow::Result<(String, u64)> {
        let out = Command::new(sigtool()?)
            .arg(opt)
            .arg(dir.join(file))
            .output()
            .context("running sigtool")?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut f = text.trim().split(':');
        let hash = f.next().context("sigtool output")?.to_string();
        let size = f.next().context("sigtool size")?.parse()?;
        Ok((hash, size))
    };
    let (md5a, sa) = sig("--md5", "hash-a.bin")?;
    let (md5b, sb) = sig("--md5", "hash-b.bin")?;
    let (sha1b, _) = sig("--sha1", "hash-b.bin")?;
    let (sha256c, sc) = sig("--sha256", "hash-c.bin")?;
    let (sha1c, _) = sig("--sha1", "hash-c.bin")?;
    let hdb = format!(
        "{md5a}:{sa}:Gen.Hash.Md5.A\n{md5b}:{}:Gen.Hash.Md5.WrongSize\n{md5b}:*:Gen.Hash.Md5.AnySize:73\n",
        sb + 1
    );
    let hsb = format!(
        "{sha1b}:{sb}:Gen.Hash.Sha1.B\n{sha256c}:{sc}:Gen.Hash.Sha256.C\n{sha1c}:*:Gen.Hash.Sha1.AnySize:73\n{sha256c}:*:Gen.Hash.Sha256.Future:250\n"
    );
    Ok((hdb, hsb))
}

struct Corpus {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    generated: Vec<PathBuf>,
    all: Vec<PathBuf>,
}

fn corpus() -> anyhow::Result<Corpus> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_path_buf();
    let mut generated = Vec::new();
    for (name, data) in generated_files() {
        let p = path.join(&name);
        std::fs::write(&p, data)?;
        generated.push(p);
    }
    let mut all = testfiles()?;
    all.extend(generated.iter().cloned());
    Ok(Corpus {
        _dir: dir,
        dir: path,
        generated,
        all,
    })
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p)
}

/// Compile `dbs` with Sandgate (no errors allowed; skips only for
/// functionality levels and `.ign2`), compare with clamscan on `files`, and
/// re-scan every file in odd chunk sizes. Returns clamscan's detections.
fn assert_parity(dbs: &[PathBuf], files: &[PathBuf]) -> anyhow::Result<Detections> {
    let out = compile_files(dbs)?;
    assert!(out.errors.is_empty(), "compile errors: {:#?}", out.errors);
    for s in &out.skipped {
        assert!(
            s.construct.contains("functionality level") || s.construct.contains(".ign2"),
            "unexpected skip (parity DBs use supported constructs only): {s}"
        );
    }
    let clam = clamscan_detections(dbs, files)?;
    let ours = sandgate_detections(&out.db, files)?;
    let d = diff(&clam, &ours);
    assert!(
        d.is_empty(),
        "native scanner differs from clamscan:\n{}",
        d.join("\n")
    );
    // The real path: the databases built into a bundle by sandgate-patc and
    // scanned by the AV module (wasm) through `sandgate scan`.
    let work = tempfile::tempdir()?;
    let wasm = sandgate_cli_detections(dbs, files, work.path())?;
    let d = diff(&clam, &wasm);
    assert!(
        d.is_empty(),
        "sandgate scan (wasm) differs from clamscan:\n{}",
        d.join("\n")
    );
    // The same module fed odd-sized chunks directly through the runtime.
    let bundle = work.path().join("av.bundle");
    let small: Vec<PathBuf> = files
        .iter()
        .filter(|f| std::fs::metadata(f).is_ok_and(|m| m.len() <= 256 * 1024))
        .cloned()
        .collect();
    for (chunk, set) in [(4093, files), (7, &small[..])] {
        let got = wasm_chunked(&bundle, set, chunk)?;
        let want: Detections = set.iter().map(|f| (f.clone(), clam[f].clone())).collect();
        let d = diff(&want, &got);
        assert!(
            d.is_empty(),
            "AV module fed {chunk}-byte chunks differs from clamscan:\n{}",
            d.join("\n")
        );
    }
    for f in files {
        let data = std::fs::read(f)?;
        let whole = &ours[f];
        for chunk in [1usize, 7, 4096] {
            if chunk == 1 && data.len() > 256 * 1024 {
                continue;
            }
            assert_eq!(
                &sandgate_scan(&out.db, &data, chunk),
                whole,
                "{} fed in {chunk}-byte chunks",
                f.display()
            );
        }
    }
    Ok(clam)
}

/// The shared example databases, when `../shared/data` sits beside the clone
/// (as in CI; the other parity test needs no shared data).
fn example_dbs() -> Option<PathBuf> {
    shared_data().map(|d| d.join("clamav"))
}

#[test]
fn example_databases_detect_like_clamscan_on_the_testfiles() -> anyhow::Result<()> {
    let Some(ex) = example_dbs() else {
        println!("skip: ../shared/data not present");
        return Ok(());
    };
    let c = corpus()?;
    let work = tempfile::tempdir()?;
    // example.hsb line 3 has size `*` without the minimum FLEVEL field of
    // 73: clamscan refuses the whole database; Sandgate names the line.
    let hsb = ex.join("example.hsb");
    let refused = clamscan_detections(std::slice::from_ref(&hsb), &c.generated[..1]);
    let msg = format!(
        "{:#}",
        refused.err().context("clamscan accepted example.hsb")?
    );
    assert!(msg.contains("Malformed database"), "{msg}");
    let ours = compile_files(std::slice::from_ref(&hsb))?;
    assert_eq!(ours.errors.len(), 1, "{:#?}", ours.errors);
    let e = ours.errors[0].to_string();
    assert!(
        e.starts_with("example.hsb:3: signature Example.Clam.Exe.SHA256.AnySize:")
            && e.contains("at least 73"),
        "{e}"
    );
    // The same database with the FLEVEL field added loads on both sides.
    let text = std::fs::read_to_string(&hsb)?;
    let fixed: String = text
        .lines()
        .map(|l| {
            if l.contains(":*:") && !l.starts_with('#') {
                format!("{l}:73\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let hsb_fixed = write(work.path(), "example-fixed.hsb", &fixed)?;
    let dbs = vec![
        ex.join("example.hdb"),
        hsb_fixed,
        ex.join("example.ndb"),
        ex.join("example.ldb"),
    ];
    let clam = assert_parity(&dbs, &c.all)?;
    // The parity is not vacuous: every example signature but the one whose
    // gap is too short for clam.exe fires on clam.exe.
    let exe = clam
        .get(Path::new("/usr/share/clamav-testfiles/clam.exe"))
        .context("clam.exe scanned")?;
    for name in [
        "Example.Clam.Exe.MD5",
        "Example.Clam.Exe.SHA1",
        "Example.Clam.Exe.SHA256.AnySize",
        "Example.Ldb.TwoStrings",
        "Example.Ndb.EntryBytes",
        "Example.Ndb.Alternation",
        "Example.Ndb.AtOffset0",
        "Example.Ndb.Star",
    ] {
        assert!(exe.contains(name), "clam.exe: {name} missing from {exe:?}");
    }
    assert!(!exe.contains("Example.Ndb.Wildcards"));
    Ok(())
}

#[test]
fn every_claimed_construct_detects_like_clamscan() -> anyhow::Result<()> {
    let c = corpus()?;
    let (hdb, hsb) = hash_dbs(&c.dir)?;
    let work = tempfile::tempdir()?;
    // clamscan applies an .ign2 to databases loaded after it (as when it
    // loads a database directory, where ignore lists go first); Sandgate
    // applies it to every database of the build.
    let dbs = vec![
        write(work.path(), "gen.ign2", GEN_IGN2)?,
        write(work.path(), "gen.ndb", GEN_NDB)?,
        write(work.path(), "gen.ldb", GEN_LDB)?,
        write(work.path(), "gen.hdb", &hdb)?,
        write(work.path(), "gen.hsb", &hsb)?,
    ];
    let clam = assert_parity(&dbs, &c.all)?;

    // Every positive case fires (on both sides, by the parity above) and the
    // near misses do not: the corpus really exercises each construct.
    let expect = |file: &str, names: &[&str]| {
        let got = &clam[&c.dir.join(file)];
        let want: std::collections::BTreeSet<String> =
            names.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, &want, "{file}");
    };
    expect("exact.bin", &["Gen.Exact"]);
    expect("exact-edge.bin", &["Gen.Exact"]);
    expect("exact-miss.bin", &[]);
    expect("nibble.bin", &["Gen.Nibble"]);
    expect("nibble-miss.bin", &[]);
    expect("anybyte.bin", &["Gen.AnyByte"]);
    expect("star.bin", &["Gen.Star"]);
    expect("star-miss.bin", &[]);
    expect("range.bin", &["Gen.Range"]);
    expect("range-miss.bin", &[]);
    expect("range-multi.bin", &["Gen.Range"]);
    expect("range-multi-miss.bin", &[]);
    expect("atleast.bin", &["Gen.AtLeast"]);
    expect("atleast-miss.bin", &[]);
    expect("atmost.bin", &["Gen.AtMost"]);
    expect("atmost-miss.bin", &[]);
    expect("exactly.bin", &["Gen.Exactly"]);
    expect("exactly-miss.bin", &[]);
    expect("alt.bin", &["Gen.Alt"]);
    expect("alt-miss.bin", &[]);
    expect("altbyte.bin", &["Gen.AltByte"]);
    expect("altbyte-miss.bin", &[]);
    expect("varalt.bin", &["Gen.VarAlt"]);
    expect("varalt-nibble.bin", &["Gen.VarAlt"]);
    expect("varalt-miss.bin", &[]);
    expect("notalt.bin", &["Gen.NotAlt", "Gen.NotAltMulti"]);
    expect("notalt-miss.bin", &[]);
    expect("anchor.bin", &["Gen.Anchor"]);
    expect("anchor-miss.bin", &[]);
    expect(
        "offset0.bin",
        &["Gen.Offset0", "Gen.Offset100", "Gen.Float"],
    );
    expect("offset-miss.bin", &[]);
    expect("float-edge.bin", &["Gen.Float"]);
    expect("eof.bin", &["Gen.Eof", "Gen.EofFloat"]);
    expect("eof-miss.bin", &[]);
    expect("eof-far.bin", &["Gen.EofFloat"]);
    expect("boundary.bin", &["Gen.Boundary", "Gen.StarBoundary"]);
    expect("boundary-tail.bin", &["Gen.Boundary"]);
    expect("levels.bin", &["Gen.Levels"]);
    expect("ldb-gapcount.bin", &["Gen.Ldb.GapCount"]);
    expect("ldb-gapcount-miss.bin", &[]);
    expect("ldb-wide.bin", &["Gen.Ldb.Wide"]);
    expect("ldb-wide-miss.bin", &[]);
    expect("ldb-wideascii.bin", &["Gen.Ldb.WideAscii"]);
    expect("ldb-wideascii-miss.bin", &[]);
    expect("ldb-widenocase.bin", &["Gen.Ldb.WideNocase"]);
    expect("ldb-widegap.bin", &["Gen.Ldb.WideGap"]);
    expect("ldb-and.bin", &["Gen.Ldb.And"]);
    expect("ldb-or.bin", &["Gen.Ldb.Or"]);
    expect("ldb-count3.bin", &["Gen.Ldb.Eq"]);
    expect("ldb-count4.bin", &["Gen.Ldb.Gt"]);
    expect("ldb-gt3.bin", &[]);
    expect("ldb-lt.bin", &["Gen.Ldb.Lt"]);
    expect("ldb-lt-many.bin", &[]);
    expect("ldb-distinct.bin", &["Gen.Ldb.Distinct"]);
    expect("ldb-distinct-miss.bin", &[]);
    expect("ldb-nested.bin", &["Gen.Ldb.Nested"]);
    expect("ldb-nested-miss.bin", &[]);
    expect("ldb-offsets.bin", &["Gen.Ldb.Offsets"]);
    expect("ldb-offsets-miss.bin", &[]);
    expect("ldb-size.bin", &["Gen.Ldb.FileSize"]);
    expect("ldb-size-miss.bin", &[]);
    expect("ldb-nocase.bin", &["Gen.Ldb.Nocase"]);
    expect("ldb-wild.bin", &["Gen.Ldb.Wild"]);
    expect("ldb-wild-miss.bin", &[]);
    expect("hash-a.bin", &["Gen.Hash.Md5.A"]);
    expect("hash-b.bin", &["Gen.Hash.Md5.AnySize", "Gen.Hash.Sha1.B"]);
    expect(
        "hash-c.bin",
        &["Gen.Hash.Sha256.C", "Gen.Hash.Sha1.AnySize"],
    );
    expect("tiny.bin", &[]);
    expect("empty.bin", &[]);
    Ok(())
}
