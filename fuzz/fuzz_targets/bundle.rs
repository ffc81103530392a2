//! Bundle bytes → parsed and verified bundle, or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandgate_patterns::bundle::Bundle;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Bundle::from_bytes(data, "fuzz.bundle") {
        // What was read must write back to something that reads again.
        let again = Bundle::from_bytes(&b.to_bytes(), "fuzz.bundle");
        assert!(again.is_ok(), "a bundle that parsed does not round-trip");
    }
});
