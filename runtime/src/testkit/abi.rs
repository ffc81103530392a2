//! Canonical-ABI layout of the `ips-module` types and the WAT of a core
//! module that implements the world by hand.
//!
//! Layouts (wasm32, canonical ABI; sizes match the `bindgen!` assertions):
//! - `module-info` (size 48, align 8): name 0, version 8, kind 16 (u8),
//!   rules 20 (ptr, len), fuel-per-packet 32, fuel-per-byte 40.
//! - `rule-info` (size 68, align 4): gid 0, sid 4, rev 8, action 12 (u8),
//!   msg 16, classtype 24 (tag u8, ptr 28, len 32), priority 36 (tag u8,
//!   value 40), references 44, metadata 52, thresholds 60.
//! - `packet` (size 88, align 8): flow-id 0, direction 8, flow-flags 12,
//!   ip-version 16, protocol 17, src-addr 24, dst-addr 40, src-port 56,
//!   dst-port 58, l3-offset 60, l3-len 64, l4-offset 68, payload-offset 72,
//!   payload-len 76, timestamp-us 80.
//! - `hit` (size 12, align 4): packet 0, rule 4, action 8 (u8).
//! - `result<list<hit>, string>` return area (size 12): tag 0, ptr 4, len 8.
//! - `inspect` core signature: `(buf_ptr buf_len pkts_ptr pkts_len) -> retptr`;
//!   `describe`: `() -> retptr`; `flow-state.get`: `(i64 retptr)` with
//!   `option<list<u8>>` written as tag 0, ptr 4, len 8.

use std::fmt::Write as _;

/// Return area for `inspect`.
const RET: u32 = 16;
/// Return area for imported `flow-state.get` (12 bytes) and one state byte.
const SCRATCH: u32 = 32;
/// Start of the static data segment.
const DATA_BASE: u32 = 64;
/// Most hits one call can report.
pub(crate) const MAX_HITS: u32 = 4096;
const HIT_SIZE: u32 = 12;
const PAGE: u32 = 65536;

/// Static data laid out in guest memory from `DATA_BASE`.
pub(crate) struct Data {
    bytes: Vec<u8>,
}

impl Data {
    pub(crate) fn new() -> Self {
        Data { bytes: Vec::new() }
    }

    /// The laid-out bytes (placed at address 64).
    pub(crate) fn raw(&self) -> &[u8] {
        &self.bytes
    }

    fn end(&self) -> u32 {
        DATA_BASE + self.bytes.len() as u32
    }

    /// Reserves `size` zeroed bytes aligned to `align`; returns the address.
    pub(crate) fn alloc(&mut self, size: u32, align: u32) -> u32 {
        let addr = self.end().div_ceil(align) * align;
        self.bytes.resize((addr + size - DATA_BASE) as usize, 0);
        addr
    }

    fn at(&mut self, addr: u32) -> &mut [u8] {
        &mut self.bytes[(addr - DATA_BASE) as usize..]
    }

    pub(crate) fn u8(&mut self, addr: u32, v: u8) {
        self.at(addr)[0] = v;
    }

    pub(crate) fn u32(&mut self, addr: u32, v: u32) {
        self.at(addr)[..4].copy_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, addr: u32, v: u64) {
        self.at(addr)[..8].copy_from_slice(&v.to_le_bytes());
    }

    /// Copies bytes in; returns `(ptr, len)`.
    pub(crate) fn bytes(&mut self, b: &[u8]) -> (u32, u32) {
        let addr = self.alloc(b.len() as u32, 1);
        self.at(addr)[..b.len()].copy_from_slice(b);
        (addr, b.len() as u32)
    }

    /// Writes a `(ptr, len)` pair at `addr`.
    pub(crate) fn pair(&mut self, addr: u32, (ptr, len): (u32, u32)) {
        self.u32(addr, ptr);
        self.u32(addr + 4, len);
    }

    /// A list of strings; returns `(ptr, len)` of the list.
    pub(crate) fn strings(&mut self, items: &[String]) -> (u32, u32) {
        let list = self.alloc(8 * items.len() as u32, 4);
        for (i, s) in items.iter().enumerate() {
            let p = self.bytes(s.as_bytes());
            self.pair(list + 8 * i as u32, p);
        }
        (list, items.len() as u32)
    }
}

/// One rule for the static `describe` answer.
pub(crate) struct RuleData {
    pub sid: u32,
    pub action: u8,
    pub msg: String,
    pub classtype: Option<String>,
    pub priority: Option<u32>,
    pub references: Vec<String>,
    pub metadata: Vec<String>,
}

/// Lays out a `module-info` record; returns its address.
pub(crate) fn module_info(
    data: &mut Data,
    name: &str,
    version: &str,
    kind: u8,
    rules: &[RuleData],
    fuel_per_packet: u64,
    fuel_per_byte: u64,
) -> u32 {
    let info = data.alloc(48, 8);
    let n = data.bytes(name.as_bytes());
    data.pair(info, n);
    let v = data.bytes(version.as_bytes());
    data.pair(info + 8, v);
    data.u8(info + 16, kind);
    let list = data.alloc(68 * rules.len() as u32, 4);
    data.pair(info + 20, (list, rules.len() as u32));
    data.u64(info + 32, fuel_per_packet);
    data.u64(info + 40, fuel_per_byte);
    for (i, r) in rules.iter().enumerate() {
        let at = list + 68 * i as u32;
        data.u32(at, 1);
        data.u32(at + 4, r.sid);
        data.u32(at + 8, 1);
        data.u8(at + 12, r.action);
        let msg = data.bytes(r.msg.as_bytes());
        data.pair(at + 16, msg);
        if let Some(c) = &r.classtype {
            data.u8(at + 24, 1);
            let c = data.bytes(c.as_bytes());
            data.pair(at + 28, c);
        }
        if let Some(p) = r.priority {
            data.u8(at + 36, 1);
            data.u32(at + 40, p);
        }
        let refs = data.strings(&r.references);
        data.pair(at + 44, refs);
        let meta = data.strings(&r.metadata);
        data.pair(at + 52, meta);
        data.pair(at + 60, (0, 0));
    }
    info
}

/// How the core module's inspector export looks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum InspectorAbi {
    /// `inspect: func(batch: batch) -> result<list<hit>, string>`.
    Standard,
    /// `inspect: func(batch: list<u8>) -> ...` (a wrong-type test module).
    ListU8,
    /// No inspector export at all.
    None,
    /// 1.2.0 `flat-inspector`: `inspect: func(data: list<u8>, entries:
    /// list<u32>, buffers: list<u32>) -> ...`; `$run` gets the data as
    /// `$buf`, the entries as `$pkts` with `$n` entries, the buffer
    /// descriptors in globals `$bufs`/`$nbufs` (descriptor count).
    Flat,
}

/// Entry layout the generated loops walk.
#[derive(Clone, Copy)]
pub(crate) struct Layout {
    /// Bytes per entry.
    pub stride: u32,
    /// Offset of the payload offset field; the length follows 4 bytes later.
    pub payload: u32,
}

/// 1.0.0 `packet` records.
pub(crate) const PACKET_LAYOUT: Layout = Layout {
    stride: 88,
    payload: 72,
};

/// 1.2.0 flat entries (24 u32 words, payload in words 17 and 18).
pub(crate) const FLAT_LAYOUT: Layout = Layout {
    stride: 96,
    payload: 68,
};

impl InspectorAbi {
    pub(crate) fn layout(self) -> Layout {
        match self {
            InspectorAbi::Flat => FLAT_LAYOUT,
            _ => PACKET_LAYOUT,
        }
    }
}

/// Everything the WAT generator needs.
pub(crate) struct CoreSpec {
    pub version: String,
    pub data: Data,
    pub describe_body: String,
    pub inspect_body: String,
    pub inspector: InspectorAbi,
    /// Extra `(import ...)` lines (functions the engine may lack).
    pub extra_imports: String,
}

/// Byte string in WAT syntax.
fn wat_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3 + 2);
    s.push('"');
    for byte in b {
        let _ = write!(s, "\\{byte:02x}");
    }
    s.push('"');
    s
}

/// The WAT of a core module implementing `ips-module` at `spec.version`.
pub(crate) fn core_wat(spec: &CoreSpec) -> String {
    let v = &spec.version;
    let hits = spec.data.end().div_ceil(8) * 8;
    let heap = (hits + MAX_HITS * HIT_SIZE).div_ceil(16) * 16;
    let pages = (heap + PAGE).div_ceil(PAGE);
    let data = wat_bytes(&spec.data.bytes);
    let inspect_export = match spec.inspector {
        InspectorAbi::Standard => format!(
            r#"
  (func (export "sandgate:pattern/inspector@{v}#describe") (result i32)
    {describe})
  (func (export "sandgate:pattern/inspector@{v}#inspect")
        (param $buf i32) (param $buf_len i32) (param $pkts i32) (param $n i32) (result i32)
    (call $run (local.get $buf) (local.get $buf_len) (local.get $pkts) (local.get $n))
    (call $finish))"#,
            describe = spec.describe_body
        ),
        InspectorAbi::ListU8 => format!(
            r#"
  (func (export "sandgate:pattern/inspector@{v}#describe") (result i32)
    {describe})
  (func (export "sandgate:pattern/inspector@{v}#inspect")
        (param $buf i32) (param $buf_len i32) (result i32)
    (call $run (local.get $buf) (local.get $buf_len) (i32.const 0) (i32.const 0))
    (call $finish))"#,
            describe = spec.describe_body
        ),
        InspectorAbi::Flat => format!(
            r#"
  (func (export "sandgate:pattern/flat-inspector@{v}#describe") (result i32)
    {describe})
  (func (export "sandgate:pattern/flat-inspector@{v}#inspect")
        (param $data i32) (param $data_len i32) (param $entries i32) (param $words i32)
        (param $bd i32) (param $bwords i32) (result i32)
    (global.set $bufs (local.get $bd))
    (global.set $nbufs (i32.div_u (local.get $bwords) (i32.const 3)))
    (call $run (local.get $data) (local.get $data_len) (local.get $entries)
      (i32.div_u (local.get $words) (i32.const 24)))
    (call $finish))"#,
            describe = spec.describe_body
        ),
        InspectorAbi::None => String::new(),
    };
    format!(
        r#"(module
  (import "sandgate:pattern/log@{v}" "log" (func $log (param i32 i32 i32)))
  (import "sandgate:pattern/flow-state@{v}" "get" (func $flow_get (param i64 i32)))
  (import "sandgate:pattern/flow-state@{v}" "set" (func $flow_set (param i64 i32 i32) (result i32)))
  {extra_imports}
  (memory (export "memory") {pages})
  (data (i32.const {DATA_BASE}) {data})
  (global $heap (mut i32) (i32.const {heap}))
  (global $nhits (mut i32) (i32.const 0))
  (global $err_ptr (mut i32) (i32.const 0))
  (global $err_len (mut i32) (i32.const -1))
  (global $bufs (mut i32) (i32.const 0))
  (global $nbufs (mut i32) (i32.const 0))

  ;; Bump allocator; the heap is reset after every inspect call.
  (func $realloc (export "cabi_realloc")
        (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    (local.set $ptr (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (local.set $have (i32.mul (memory.size) (i32.const {PAGE})))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.shr_u
                (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535))
                (i32.const 16)))
              (i32.const -1))
          (then unreachable))))
    (if (local.get $old)
      (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  ;; Report hit (packet, rule) with action alert; beyond {MAX_HITS} hits are dropped.
  (func $hit (param $packet i32) (param $rule i32)
    (local $at i32)
    (if (i32.ge_u (global.get $nhits) (i32.const {MAX_HITS})) (then return))
    (local.set $at (i32.add (i32.const {hits}) (i32.mul (global.get $nhits) (i32.const {HIT_SIZE}))))
    (i32.store (local.get $at) (local.get $packet))
    (i32.store offset=4 (local.get $at) (local.get $rule))
    (i32.store8 offset=8 (local.get $at) (i32.const 0))
    (global.set $nhits (i32.add (global.get $nhits) (i32.const 1))))

  ;; Make this call return err(string at ptr, len).
  (func $fail (param $ptr i32) (param $len i32)
    (global.set $err_ptr (local.get $ptr))
    (global.set $err_len (local.get $len)))

  ;; 1 when hay[0..hay_len] contains needle[0..needle_len].
  (func $contains (param $hay i32) (param $hay_len i32) (param $needle i32) (param $needle_len i32) (result i32)
    (local $i i32) (local $j i32)
    (if (i32.eqz (local.get $needle_len)) (then (return (i32.const 1))))
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
            (if (i32.eq (local.get $j) (local.get $needle_len)) (then (return (i32.const 1))))
            (br $inner)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (i32.const 0))

  ;; First byte of the flow's state, 0 when it has none.
  (func $flow_get_u8 (param $flow i64) (result i32)
    (call $flow_get (local.get $flow) (i32.const {SCRATCH}))
    (if (result i32) (i32.and
          (i32.eq (i32.load8_u (i32.const {SCRATCH})) (i32.const 1))
          (i32.ne (i32.load (i32.const {scratch_len})) (i32.const 0)))
      (then (i32.load8_u (i32.load (i32.const {scratch_ptr}))))
      (else (i32.const 0))))

  ;; Store one byte as the flow's state; returns the engine's answer.
  (func $flow_set_u8 (param $flow i64) (param $v i32) (result i32)
    (i32.store8 (i32.const {scratch_byte}) (local.get $v))
    (call $flow_set (local.get $flow) (i32.const {scratch_byte}) (i32.const 1)))

  (func $recurse (param $depth i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get $depth) (i32.const 1))) (i32.const 1)))

  ;; The variable part: runs over the batch and calls $hit / $fail.
  (func $run (param $buf i32) (param $buf_len i32) (param $pkts i32) (param $n i32)
    (local $i i32) (local $p i32) (local $x i32) (local $k i32) (local $end i32)
    {inspect})

  ;; Writes result<list<hit>, string> to the return area, resets the heap.
  (func $finish (result i32)
    (global.set $heap (i32.const {heap}))
    (if (i32.ge_s (global.get $err_len) (i32.const 0))
      (then
        (i32.store8 (i32.const {RET}) (i32.const 1))
        (i32.store offset=4 (i32.const {RET}) (global.get $err_ptr))
        (i32.store offset=8 (i32.const {RET}) (global.get $err_len)))
      (else
        (i32.store8 (i32.const {RET}) (i32.const 0))
        (i32.store offset=4 (i32.const {RET}) (i32.const {hits}))
        (i32.store offset=8 (i32.const {RET}) (global.get $nhits))))
    (global.set $nhits (i32.const 0))
    (global.set $err_len (i32.const -1))
    (i32.const {RET}))
  {inspect_export}
)"#,
        extra_imports = spec.extra_imports,
        inspect = spec.inspect_body,
        scratch_ptr = SCRATCH + 4,
        scratch_len = SCRATCH + 8,
        scratch_byte = SCRATCH + 12,
    )
}

/// WAT that runs `body` for every packet: `$i` is the index, `$p` the
/// packet's address; `(call $payload)`-style access is spelled out inline.
pub(crate) fn for_each_packet(layout: Layout, body: &str) -> String {
    let stride = layout.stride;
    format!(
        r#"(local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $p (i32.add (local.get $pkts) (i32.mul (local.get $i) (i32.const {stride}))))
        {body}
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))"#
    )
}

/// WAT expression: 1 when packet `$p`'s payload contains the `len` bytes at `ptr`.
pub(crate) fn payload_contains(layout: Layout, ptr: u32, len: u32) -> String {
    let (off, len_off) = (layout.payload, layout.payload + 4);
    format!(
        "(call $contains (i32.add (local.get $buf) (i32.load offset={off} (local.get $p))) \
         (i32.load offset={len_off} (local.get $p)) (i32.const {ptr}) (i32.const {len}))"
    )
}

/// WAT (flat entries only) that runs `body` for every buffer descriptor of
/// entry `$p` with id `id`: `$k` is the descriptor's address.
pub(crate) fn for_each_buffer(id: u32, body: &str) -> String {
    format!(
        r#"(local.set $k (i32.add (global.get $bufs) (i32.mul (i32.load offset=84 (local.get $p)) (i32.const 12))))
        (local.set $end (i32.add (local.get $k) (i32.mul (i32.load offset=88 (local.get $p)) (i32.const 12))))
        (block $bdone
          (loop $bnext
            (br_if $bdone (i32.ge_u (local.get $k) (local.get $end)))
            (if (i32.eq (i32.load (local.get $k)) (i32.const {id}))
              (then {body}))
            (local.set $k (i32.add (local.get $k) (i32.const 12)))
            (br $bnext)))"#
    )
}

/// WAT expression: 1 when the buffer at descriptor `$k` contains the `len`
/// bytes at `ptr`.
pub(crate) fn buffer_contains(ptr: u32, len: u32) -> String {
    format!(
        "(call $contains (i32.add (local.get $buf) (i32.load offset=4 (local.get $k))) \
         (i32.load offset=8 (local.get $k)) (i32.const {ptr}) (i32.const {len}))"
    )
}
