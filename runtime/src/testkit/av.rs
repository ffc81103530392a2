//! Hand-written AV test modules (`av-module`, 1.1.0): a naive scanner whose
//! `feed` behaviour is chosen per test, so runtime and host tests can meet
//! loops, traps and lies without a Rust guest.
//!
//! Layouts (wasm32, canonical ABI): `scan-options` flattens to `(i64 i32)`;
//! `detection` (size 16, align 8): signature 0, offset 8; the
//! `result<scan-result, string>` return area (size 16): tag 0, detections
//! ptr 4 and len 8 (or the error string), `option<scan-limit>` tag 12 and
//! case 13. Resource handles come from `[resource-new]scan`; methods get
//! the representation (here always 1: one scan at a time).

use super::abi::{self, Data, RuleData};
use super::{component_from_wat, TestkitError};

/// The released 1.1.0 WIT, byte for byte.
pub const WIT_1_1_0: &str = include_str!("../../../wit/v1.1.0/pattern.wit");

/// What the generated `feed` does with a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedBody {
    /// Detects signature `signature` (offset: where `needle` starts) when
    /// the *content* (across chunks) contains `needle`; keeps the last `needle.len() - 1` bytes between
    /// chunks so a match spanning two chunks is found.
    MatchBytes {
        /// Bytes to look for (at most 64).
        needle: Vec<u8>,
        /// Signature index to report.
        signature: u32,
    },
    /// Loops until its fuel runs out.
    LoopForever,
    /// Traps with `unreachable`.
    Unreachable,
    /// Grows memory 1 MiB at a time until growth fails, then traps.
    GrowMemory,
    /// Traps when the chunk contains `trap_on`, else behaves like
    /// `MatchBytes` with `needle`/`signature`.
    TrapOn {
        /// Chunk bytes that make `feed` trap.
        trap_on: Vec<u8>,
        /// Bytes to detect otherwise.
        needle: Vec<u8>,
        /// Signature index to report.
        signature: u32,
    },
}

/// What the generated `finish` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishBody {
    /// The detections `feed` recorded.
    Detections,
    /// A detection naming signature `u32` whatever was fed (a lie when it
    /// is out of range).
    Claims(u32),
    /// `err(message)`.
    Error(String),
}

/// Options for [`av_component`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvOptions {
    /// Signatures declared by `describe` (`msg` = `Testkit.Sig-N`, sid N+1).
    /// Default 2.
    pub signatures: u32,
    /// `feed`'s behaviour. Default: detect `EICAR-LIKE` as signature 0.
    pub feed: FeedBody,
    /// `finish`'s behaviour. Default [`FinishBody::Detections`].
    pub finish: FinishBody,
}

impl Default for AvOptions {
    fn default() -> Self {
        Self {
            signatures: 2,
            feed: FeedBody::MatchBytes {
                needle: b"EICAR-LIKE".to_vec(),
                signature: 0,
            },
            finish: FinishBody::Detections,
        }
    }
}

/// Return area of `finish` and `describe`'s static answer live in data.
const RET: u32 = 16;
/// Carried tail of the previous chunk (at most 63 bytes) + the chunk start.
const TAIL: u32 = 1024;
const WINDOW: u32 = 2048;
const WINDOW_CAP: u32 = 64 * 1024;

/// An AV component implementing `av-module` at 1.1.0.
pub fn av_component(opts: &AvOptions) -> Result<Vec<u8>, TestkitError> {
    let mut data = Data::new();
    let rules: Vec<RuleData> = (0..opts.signatures)
        .map(|i| RuleData {
            sid: i + 1,
            action: 0,
            msg: format!("Testkit.Sig-{i}"),
            classtype: None,
            priority: None,
            references: Vec::new(),
            metadata: Vec::new(),
        })
        .collect();
    let info = abi::module_info(&mut data, "testkit-av", "1", 1, &rules, 0, 0);
    let detection = data.alloc(16, 8);
    let (needle, signature, trap_on) = match &opts.feed {
        FeedBody::MatchBytes { needle, signature } => (needle.clone(), *signature, Vec::new()),
        FeedBody::TrapOn {
            trap_on,
            needle,
            signature,
        } => (needle.clone(), *signature, trap_on.clone()),
        _ => (Vec::new(), 0, Vec::new()),
    };
    let needle = data.bytes(&needle[..needle.len().min(64)]);
    let trap = data.bytes(&trap_on);
    let feed = match &opts.feed {
        FeedBody::LoopForever => "(loop $forever (br $forever)) (i32.const 0)".to_string(),
        FeedBody::Unreachable => "unreachable".to_string(),
        FeedBody::GrowMemory => "(loop $grow
      (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable"
            .to_string(),
        FeedBody::MatchBytes { .. } => "(call $match (local.get $ptr) (local.get $len))".into(),
        FeedBody::TrapOn { .. } => format!(
            "(if (call $contains (local.get $ptr) (local.get $len) (i32.const {}) (i32.const {}))
               (then unreachable))
             (call $match (local.get $ptr) (local.get $len))",
            trap.0, trap.1
        ),
    };
    let (err_ptr, err_len) = match &opts.finish {
        FinishBody::Error(m) => data.bytes(m.as_bytes()),
        _ => (0, 0),
    };
    let claims = match &opts.finish {
        FinishBody::Claims(s) => {
            format!("(global.set $found (i32.const 1)) (global.set $sig (i32.const {s}))")
        }
        _ => String::new(),
    };
    let finish = match &opts.finish {
        FinishBody::Error(_) => format!(
            "(i32.store8 (i32.const {RET}) (i32.const 1))
             (i32.store offset=4 (i32.const {RET}) (i32.const {err_ptr}))
             (i32.store offset=8 (i32.const {RET}) (i32.const {err_len}))"
        ),
        _ => format!(
            "{claims}
             (i32.store8 (i32.const {RET}) (i32.const 0))
             (i32.store (i32.const {detection}) (global.get $sig))
             (i64.store offset=8 (i32.const {detection}) (global.get $offset))
             (i32.store offset=4 (i32.const {RET}) (i32.const {detection}))
             (i32.store offset=8 (i32.const {RET}) (global.get $found))
             (i32.store8 offset=12 (i32.const {RET}) (i32.const 0))"
        ),
    };
    if 64 + data.raw().len() as u32 > TAIL {
        return Err(TestkitError(format!(
            "{} signatures do not fit below the scan window",
            opts.signatures
        )));
    }
    let bytes = data_bytes(&data);
    let heap = 128 * 1024;
    let wat = format!(
        r#"(module
  (import "[export]sandgate:pattern/scanner@1.1.0" "[resource-new]scan" (func $new (param i32) (result i32)))
  (memory (export "memory") 4)
  (data (i32.const 64) {bytes})
  (global $heap (mut i32) (i32.const {heap}))
  (global $found (mut i32) (i32.const 0))
  (global $sig (mut i32) (i32.const {signature}))
  (global $offset (mut i64) (i64.const 0))
  (global $total (mut i64) (i64.const 0))
  (global $tail (mut i32) (i32.const 0))

  (func (export "cabi_realloc")
        (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    (local.set $ptr (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.shr_u
                (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535))
                (i32.const 16)))
              (i32.const -1))
          (then unreachable))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  ;; Index just past the first occurrence of needle in hay, or 0.
  (func $find (param $hay i32) (param $hay_len i32) (param $needle i32) (param $needle_len i32) (result i32)
    (local $i i32) (local $j i32)
    (if (i32.eqz (local.get $needle_len)) (then (return (i32.const 0))))
    (if (i32.lt_u (local.get $hay_len) (local.get $needle_len)) (then (return (i32.const 0))))
    (block $none
      (loop $outer
        (br_if $none (i32.gt_u (local.get $i) (i32.sub (local.get $hay_len) (local.get $needle_len))))
        (local.set $j (i32.const 0))
        (block $mismatch
          (loop $inner
            (br_if $mismatch (i32.ne
              (i32.load8_u (i32.add (local.get $hay) (i32.add (local.get $i) (local.get $j))))
              (i32.load8_u (i32.add (local.get $needle) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (if (i32.eq (local.get $j) (local.get $needle_len))
              (then (return (i32.add (local.get $i) (local.get $j)))))
            (br $inner)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (i32.const 0))

  (func $contains (param $hay i32) (param $hay_len i32) (param $needle i32) (param $needle_len i32) (result i32)
    (i32.ne (call $find (local.get $hay) (local.get $hay_len) (local.get $needle) (local.get $needle_len))
            (i32.const 0)))

  ;; Scans (carried tail ++ chunk) in slices that fit the window; returns
  ;; 1 once a detection is recorded.
  (func $match (param $ptr i32) (param $len i32) (result i32)
    (local $take i32) (local $at i32) (local $n i32) (local $keep i32)
    (if (global.get $found) (then (return (i32.const 1))))
    (block $done
      (loop $slice
        (br_if $done (i32.eqz (local.get $len)))
        (local.set $take (select (local.get $len) (i32.const {WINDOW_CAP})
          (i32.lt_u (local.get $len) (i32.const {WINDOW_CAP}))))
        (memory.copy (i32.add (i32.const {WINDOW}) (global.get $tail)) (local.get $ptr) (local.get $take))
        (memory.copy (i32.const {WINDOW}) (i32.const {TAIL}) (global.get $tail))
        (local.set $n (i32.add (global.get $tail) (local.get $take)))
        (local.set $at (call $find (i32.const {WINDOW}) (local.get $n) (i32.const {needle_ptr}) (i32.const {needle_len})))
        (if (local.get $at)
          (then
            (global.set $found (i32.const 1))
            (global.set $offset (i64.sub (i64.add (global.get $total)
                (i64.extend_i32_u (i32.sub (local.get $at) (i32.const {needle_len}))))
              (i64.extend_i32_u (global.get $tail))))
            (global.set $total (i64.add (global.get $total) (i64.extend_i32_u (local.get $take))))
            (return (i32.const 1))))
        (global.set $total (i64.add (global.get $total) (i64.extend_i32_u (local.get $take))))
        (local.set $keep (select (i32.sub (i32.const {needle_len}) (i32.const 1)) (i32.const 0)
          (i32.gt_u (i32.const {needle_len}) (i32.const 0))))
        (local.set $keep (select (local.get $keep) (local.get $n) (i32.lt_u (local.get $keep) (local.get $n))))
        (memory.copy (i32.const {TAIL}) (i32.sub (i32.add (i32.const {WINDOW}) (local.get $n)) (local.get $keep)) (local.get $keep))
        (global.set $tail (local.get $keep))
        (local.set $ptr (i32.add (local.get $ptr) (local.get $take)))
        (local.set $len (i32.sub (local.get $len) (local.get $take)))
        (br $slice)))
    (i32.const 0))

  (func (export "sandgate:pattern/scanner@1.1.0#describe") (result i32)
    (i32.const {info}))
  (func (export "sandgate:pattern/scanner@1.1.0#[constructor]scan")
        (param $max i64) (param $all i32) (result i32)
    (global.set $found (i32.const 0))
    (global.set $sig (i32.const {signature}))
    (global.set $offset (i64.const 0))
    (global.set $total (i64.const 0))
    (global.set $tail (i32.const 0))
    (call $new (i32.const 1)))
  (func (export "sandgate:pattern/scanner@1.1.0#[method]scan.feed")
        (param $self i32) (param $ptr i32) (param $len i32) (result i32)
    {feed})
  (func (export "sandgate:pattern/scanner@1.1.0#[method]scan.finish")
        (param $self i32) (result i32)
    (global.set $heap (i32.const {heap}))
    {finish}
    (i32.const {RET}))
  (func (export "sandgate:pattern/scanner@1.1.0#[dtor]scan") (param $rep i32))
)"#,
        needle_ptr = needle.0,
        needle_len = needle.1,
    );
    component_from_wat(&[WIT_1_1_0], "av-module", &wat)
}

fn data_bytes(data: &Data) -> String {
    let mut s = String::from("\"");
    for b in data.raw() {
        s.push_str(&format!("\\{b:02x}"));
    }
    s.push('"');
    s
}
