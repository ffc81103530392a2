//! Test vectors: a capture shipped with each module and the alerts it must
//! produce, as `(sid, count)` pairs. An AV module's vectors are files
//! instead ([`pack_files`]): the expectation counts, per signature sid
//! (index + 1), the files it must be detected in.
//!
//! `sandgate-patc build --vectors PCAP` records what the freshly built module
//! reports on the capture; `sandgate-patc matrix` and the appliance's
//! self-test replay the capture and compare with [`check`]. Both sides count
//! alerts the same way (one per emitted alert, after thresholds), so the
//! expectation is exact: a missing, extra or unexpected sid is a mismatch.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Packs named files as an AV module's test vectors (postcard).
pub fn pack_files(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    postcard::to_allocvec(files).unwrap_or_default()
}

/// The named files of AV test vectors; an error names what is wrong.
pub fn unpack_files(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("AV test vectors are malformed: {e}"))
}

/// One sid and how many alerts it must raise on the vector capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExpectedAlert {
    pub sid: u32,
    pub count: u64,
}

/// Alert counts by sid.
pub type AlertCounts = BTreeMap<u32, u64>;

/// The expectation for `counts`, sorted by sid.
pub fn expectation(counts: &AlertCounts) -> Vec<ExpectedAlert> {
    counts
        .iter()
        .filter(|(_, &count)| count > 0)
        .map(|(&sid, &count)| ExpectedAlert { sid, count })
        .collect()
}

/// What a vector run produced that it should not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub expected: AlertCounts,
    pub got: AlertCounts,
}

/// `{sid: count, …}` in sid order; `{}` for no alerts.
pub fn show_counts(counts: &AlertCounts) -> String {
    let items: Vec<String> = counts
        .iter()
        .map(|(sid, n)| format!("sid {sid}×{n}"))
        .collect();
    format!("{{{}}}", items.join(", "))
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {}, got {}",
            show_counts(&self.expected),
            show_counts(&self.got)
        )
    }
}

/// Compare observed alert counts with the expectation; exact match only.
pub fn check(expected: &[ExpectedAlert], got: &AlertCounts) -> Result<(), Mismatch> {
    let want: AlertCounts = expected.iter().map(|e| (e.sid, e.count)).collect();
    let got: AlertCounts = got
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(&s, &n)| (s, n))
        .collect();
    if want == got {
        Ok(())
    } else {
        Err(Mismatch {
            expected: want,
            got,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn av_vector_files_round_trip_and_garbage_is_refused() {
        let files = vec![
            ("eicar.com".to_string(), b"X5O!P%@AP".to_vec()),
            ("clean.txt".to_string(), Vec::new()),
        ];
        assert_eq!(unpack_files(&pack_files(&files)), Ok(files));
        let err = unpack_files(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(err.starts_with("AV test vectors are malformed"), "{err}");
    }

    #[test]
    fn only_an_exact_match_passes() {
        let want = [
            ExpectedAlert { sid: 1, count: 2 },
            ExpectedAlert { sid: 5, count: 1 },
        ];
        let got: AlertCounts = [(1, 2), (5, 1)].into();
        assert_eq!(check(&want, &got), Ok(()));
        for bad in [
            AlertCounts::from([(1, 2)]),
            AlertCounts::from([(1, 2), (5, 1), (9, 1)]),
            AlertCounts::from([(1, 3), (5, 1)]),
        ] {
            let e = check(&want, &bad).expect_err("mismatch");
            assert!(
                e.to_string()
                    .starts_with("expected {sid 1×2, sid 5×1}, got"),
                "{e}"
            );
        }
        assert_eq!(expectation(&got), want);
    }
}
