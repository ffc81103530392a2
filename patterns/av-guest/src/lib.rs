//! The AV module guest: [`sandgate_matcher::av::Scanner`] behind the
//! `sandgate:pattern@1.1.0` `av-module` world.
//!
//! Built once, when Sandgate itself is built, to a core wasm module for
//! `wasm32-unknown-unknown` (no WASI). The pattern compiler appends the
//! serialised [`AvDb`] as a data segment, patches the [`DESCRIPTOR`] to
//! point at it and wraps the result as a component — compiling signatures
//! never invokes rustc. Same scheme as the rules guest, with its own magic
//! words so the two descriptors are never confused.
//!
//! The data is a postcard `(name, version)` header followed by the
//! [`AvDb`] bytes. Each `scan` resource owns one streaming scanner over the
//! database, which is decoded once per instance (the engine's warm-up scan
//! pays for it).

use std::cell::RefCell;
use std::sync::OnceLock;

use sandgate_matcher::av::{AvDb, LimitKind, ScanLimits, Scanner};

wit_bindgen::generate!({
    path: "../../wit/v1.1.0",
    world: "av-module",
});

use exports::sandgate::pattern::scanner::{
    Detection, Guest, GuestScan, ScanLimit, ScanOptions, ScanResult,
};
use sandgate::pattern::types::{Action, ModuleInfo, ModuleKind, RuleInfo};

/// First magic word of the descriptor (must match the compiler's).
pub const MAGIC0: u32 = 0xa5c4_11e0;
/// Second magic word of the descriptor.
pub const MAGIC1: u32 = 0x5ca7_da7a;

/// Where the compiler tells this module its signature data lives.
#[used]
static mut DESCRIPTOR: [u32; 4] = [MAGIC0, MAGIC1, 0, 0];

/// Fixed fuel per call (`finish` evaluates hashes and logical signatures).
const FUEL_PER_CALL: u64 = 100_000;
/// Fuel per fed byte: prefilter, part verification, incremental hashes.
/// Measured ~42 per byte with `../shared/data/clamav/`'s example databases
/// on random, zero and text content; the budget leaves room for large
/// databases (many prefilter candidates), it is not a consumption figure.
const FUEL_PER_BYTE: u64 = 400;

fn signature_data() -> &'static [u8] {
    // SAFETY: the descriptor is only written by the compiler, before the
    // module runs; volatile so the optimiser cannot fold the placeholder.
    let d = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(DESCRIPTOR)) };
    let (ptr, len) = (d[2] as usize, d[3] as usize);
    if ptr == 0 || len == 0 || !cfg!(target_arch = "wasm32") {
        return &[];
    }
    // SAFETY: the compiler placed `len` bytes at `ptr`, in pages the
    // allocator never hands out (they lie below the initial memory size).
    unsafe { core::slice::from_raw_parts(ptr as *const u8, len) }
}

/// The module's name and version, and its database.
struct Loaded {
    name: String,
    version: String,
    db: AvDb,
}

fn loaded() -> Result<&'static Loaded, String> {
    static DATA: OnceLock<Result<Loaded, String>> = OnceLock::new();
    DATA.get_or_init(|| {
        let ((name, version), rest): ((String, String), &[u8]) =
            postcard::take_from_bytes(signature_data())
                .map_err(|e| format!("decoding the module header failed: {e}"))?;
        let db = AvDb::from_bytes(rest).map_err(|e| e.to_string())?;
        Ok(Loaded { name, version, db })
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn db() -> Result<&'static AvDb, String> {
    loaded().map(|l| &l.db)
}

struct AvModule;

impl Guest for AvModule {
    type Scan = Scan;

    fn describe() -> ModuleInfo {
        let (name, version, rules) = match loaded() {
            Ok(l) => (
                l.name.clone(),
                l.version.clone(),
                l.db.names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| RuleInfo {
                        gid: 1,
                        sid: u32::try_from(i + 1).unwrap_or(u32::MAX),
                        rev: 1,
                        action: Action::Alert,
                        msg: n.clone(),
                        classtype: None,
                        priority: None,
                        references: Vec::new(),
                        metadata: Vec::new(),
                        thresholds: Vec::new(),
                    })
                    .collect(),
            ),
            // Without usable data it declares nothing; `finish` reports why.
            Err(_) => ("invalid".to_string(), String::new(), Vec::new()),
        };
        ModuleInfo {
            name,
            version,
            kind: ModuleKind::Av,
            rules,
            fuel_per_packet: FUEL_PER_CALL,
            fuel_per_byte: FUEL_PER_BYTE,
        }
    }
}

/// One scan: the scanner until `finish` takes it.
struct Scan {
    scanner: RefCell<Option<Scanner<'static>>>,
}

impl GuestScan for Scan {
    fn new(options: ScanOptions) -> Self {
        let limits = ScanLimits {
            max_file_size: if options.max_file_size == 0 {
                u64::MAX
            } else {
                options.max_file_size
            },
            all_match: options.all_match,
        };
        Scan {
            scanner: RefCell::new(db().ok().map(|db| Scanner::new(db, limits))),
        }
    }

    fn feed(&self, chunk: Vec<u8>) -> bool {
        match self.scanner.borrow_mut().as_mut() {
            Some(s) => {
                s.feed(&chunk);
                s.done()
            }
            None => true,
        }
    }

    fn finish(&self) -> Result<ScanResult, String> {
        let scanner = self.scanner.borrow_mut().take();
        let Some(scanner) = scanner else {
            return Err(match db() {
                Err(e) => e,
                Ok(_) => "scan already finished".to_string(),
            });
        };
        let outcome = scanner.finish();
        Ok(ScanResult {
            detections: outcome
                .detections
                .iter()
                .map(|d| Detection {
                    signature: d.signature,
                    offset: d.offset,
                })
                .collect(),
            limit_exceeded: outcome.limit_exceeded.map(|l| match l {
                LimitKind::MaxFileSize => ScanLimit::MaxFileSize,
            }),
        })
    }
}

export!(AvModule);
