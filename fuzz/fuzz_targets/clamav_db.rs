//! ClamAV database text → compiled `AvDb` → a scan of the same bytes in two
//! chunkings: never a panic, and the detections do not depend on where the
//! chunks split. The first byte picks the database kind by extension.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandgate_matcher::av::{ScanLimits, Scanner};
use sandgate_patterns::av::{compile_databases, DbFile, CLAMAV_FLEVEL};

const NAMES: [&str; 5] = ["f.ndb", "f.ldb", "f.hdb", "f.hsb", "f.ign2"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let out = compile_databases(&[DbFile { name, text }], CLAMAV_FLEVEL);
    for e in &out.errors {
        let _ = e.to_string();
    }
    for s in &out.skipped {
        let _ = s.to_string();
    }
    // The database must survive its own serialisation (what the module loads).
    let db = match sandgate_matcher::av::AvDb::from_bytes(&out.db.to_bytes()) {
        Ok(db) => db,
        Err(e) => panic!("compiled database does not read back: {}", e.0),
    };
    let limits = || ScanLimits {
        max_file_size: 1 << 20,
        all_match: true,
    };
    let whole = {
        let mut s = Scanner::new(&db, limits());
        s.feed(rest);
        s.finish()
    };
    let split = {
        let mut s = Scanner::new(&db, limits());
        for chunk in rest.chunks(3) {
            s.feed(chunk);
        }
        s.finish()
    };
    let sigs = |o: &sandgate_matcher::av::ScanOutcome| {
        let mut v: Vec<u32> = o.detections.iter().map(|d| d.signature).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    assert_eq!(sigs(&whole), sigs(&split), "detections depend on chunking");
});
