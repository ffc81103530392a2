//! Index bytes → verified and parsed index, or a typed error; never a panic.
//!
//! An appliance parses an index only after its signature verifies, so the
//! target signs the fuzzed bytes with a key generated at start-up (mode 0) to
//! reach the JSON parser and the selection code; mode 1 feeds arbitrary bytes
//! as the detached signature block instead.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sandgate_patterns::index::{rollout_selected, Index};
use sandgate_patterns::sign::{generate_key, PrivateKey};

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| match generate_key() {
        Ok(k) => k,
        Err(e) => panic!("key generation: {e}"),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = key();
    let parsed = if mode & 1 == 0 {
        let sig = Index::sign_bytes(rest, key).to_bytes();
        Index::from_signed(rest, &sig, &key.verifying_key())
    } else {
        let split = usize::from(mode >> 1).min(rest.len());
        let (sig, index) = rest.split_at(split);
        Index::from_signed(index, sig, &key.verifying_key())
    };
    if let Ok(index) = parsed {
        let offered = ["1.0.0".to_string(), "1.1.0".to_string()];
        let _ = index.selected("fuzz-appliance");
        let _ = rollout_selected("fuzz-appliance", index.bundle_version, 50);
        if let Some(entry) = index.entry_for(&offered) {
            let _ = entry.check_download(rest);
        }
    }
});
