//! `byte_test`, `byte_jump` and `byte_extract`: reading numbers out of the
//! payload, binary (big or little endian) or as ASCII text, the way
//! Suricata's `detect-bytetest.c` / `detect-bytejump.c` /
//! `detect-byte-extract.c` do. A read that falls outside the buffer, or text
//! that is not a number, makes the keyword fail (negation does not apply).

use crate::ir::{ByteExtract, ByteJump, ByteOp, ByteRead, ByteTest, Endian, JumpFrom, NumBase};

/// Per-evaluation values: `byte_extract` variables, on the stack.
pub type Vars = [u64; crate::ir::MAX_VARS];

/// Resolve a [`crate::ir::Value`] against the variables.
pub fn value(v: crate::ir::Value, vars: &Vars) -> i64 {
    match v {
        crate::ir::Value::Const(c) => c,
        crate::ir::Value::Var(i) => vars
            .get(usize::from(i))
            .map_or(0, |&x| i64::try_from(x).unwrap_or(i64::MAX)),
    }
}

/// Read the number `r` describes; returns it and the end of the bytes read.
pub fn read(r: &ByteRead, buf: &[u8], cursor: usize, vars: &Vars) -> Option<(u64, usize)> {
    let base = if r.relative { cursor as i64 } else { 0 };
    let start = usize::try_from(base.checked_add(value(r.offset, vars))?).ok()?;
    let end = start.checked_add(usize::from(r.nbytes))?;
    let bytes = buf.get(start..end)?;
    let mut v = match r.string {
        None => binary(bytes, r.endian)?,
        Some(b) => text(bytes, b)?,
    };
    if let Some(mask) = r.bitmask {
        v &= mask;
        if v != 0 && mask != 0 {
            v >>= mask.trailing_zeros();
        }
    }
    Some((v, end))
}

fn binary(bytes: &[u8], endian: Endian) -> Option<u64> {
    if bytes.len() > 8 {
        return None;
    }
    let fold = |acc: u64, &b: &u8| (acc << 8) | u64::from(b);
    Some(match endian {
        Endian::Big => bytes.iter().fold(0, fold),
        Endian::Little => bytes.iter().rev().fold(0, fold),
    })
}

/// `strtoull` as Suricata uses it: leading blanks, an optional `+`, an
/// optional `0x` for hex, then at least one digit; stops at the first
/// non-digit; overflow fails.
fn text(bytes: &[u8], base: NumBase) -> Option<u64> {
    let radix = match base {
        NumBase::Hex => 16,
        NumBase::Dec => 10,
        NumBase::Oct => 8,
    };
    let mut i = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    if bytes.get(i) == Some(&b'+') {
        i += 1;
    }
    if radix == 16
        && bytes.get(i) == Some(&b'0')
        && matches!(bytes.get(i + 1), Some(b'x' | b'X'))
        && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        i += 2;
    }
    let mut v: u64 = 0;
    let mut any = false;
    while let Some(d) = bytes.get(i).and_then(|&b| char::from(b).to_digit(radix)) {
        v = v.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
        any = true;
        i += 1;
    }
    any.then_some(v)
}

/// `byte_test`.
pub fn test(t: &ByteTest, buf: &[u8], cursor: usize, vars: &Vars) -> bool {
    let Some((v, _)) = read(&t.read, buf, cursor, vars) else {
        return false;
    };
    let want = value(t.value, vars) as u64;
    let hit = match t.op {
        ByteOp::Lt => v < want,
        ByteOp::Gt => v > want,
        ByteOp::Eq => v == want,
        ByteOp::Le => v <= want,
        ByteOp::Ge => v >= want,
        ByteOp::And => v & want != 0,
        ByteOp::Xor => v ^ want != 0,
    };
    hit != t.negated
}

/// `byte_jump`: the new cursor, or `None` when the jump leaves the buffer.
pub fn jump(j: &ByteJump, buf: &[u8], cursor: usize, vars: &Vars) -> Option<usize> {
    let (v, read_end) = read(&j.read, buf, cursor, vars)?;
    let mut v = i64::try_from(v)
        .ok()?
        .checked_mul(i64::from(j.multiplier))?;
    if j.align && v % 4 != 0 {
        v = v.checked_add(4 - v % 4)?;
    }
    v = v.checked_add(i64::from(j.post_offset))?;
    let from = match j.from {
        JumpFrom::Read => read_end,
        JumpFrom::Beginning => 0,
        JumpFrom::End => buf.len(),
    };
    let to = usize::try_from((from as i64).checked_add(v)?).ok()?;
    // As Suricata: the landing point must be inside the buffer (not at its end).
    (to < buf.len()).then_some(to)
}

/// `byte_extract`: the value to store and the new cursor.
pub fn extract(e: &ByteExtract, buf: &[u8], cursor: usize, vars: &Vars) -> Option<(u64, usize)> {
    let (v, end) = read(&e.read, buf, cursor, vars)?;
    let mut v = v.checked_mul(u64::from(e.multiplier))?;
    let align = u64::from(e.align);
    if align > 1 && v % align != 0 {
        v = v.checked_add(align - v % align)?;
    }
    Some((v, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Value;

    fn r(nbytes: u8, offset: i64) -> ByteRead {
        ByteRead {
            nbytes,
            offset: Value::Const(offset),
            relative: false,
            endian: Endian::Big,
            string: None,
            bitmask: None,
        }
    }

    #[test]
    fn reads_binary_and_text() {
        let vars = [0; crate::ir::MAX_VARS];
        assert_eq!(read(&r(2, 0), b"\x01\x02", 0, &vars), Some((0x0102, 2)));
        let mut le = r(2, 0);
        le.endian = Endian::Little;
        assert_eq!(read(&le, b"\x01\x02", 0, &vars), Some((0x0201, 2)));
        assert_eq!(read(&r(3, 0), b"\x01\x02", 0, &vars), None);
        assert_eq!(read(&r(1, -1), b"\x01\x02", 0, &vars), None);
        let mut s = r(4, 0);
        s.string = Some(NumBase::Dec);
        assert_eq!(read(&s, b" 12x", 0, &vars).map(|x| x.0), Some(12));
        assert_eq!(read(&s, b"abcd", 0, &vars), None);
        s.string = Some(NumBase::Hex);
        assert_eq!(read(&s, b"0x1f", 0, &vars).map(|x| x.0), Some(0x1f));
        s.string = Some(NumBase::Oct);
        assert_eq!(read(&s, b"0017", 0, &vars).map(|x| x.0), Some(0o17));
        let mut m = r(1, 0);
        m.bitmask = Some(0xf0);
        assert_eq!(read(&m, b"\xab", 0, &vars).map(|x| x.0), Some(0xa));
    }
}
