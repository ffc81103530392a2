//! Lowering the payload keywords besides `content`: `pcre` (compiled to DFAs
//! here, at rule-compile time), `isdataat`, `byte_test`, `byte_jump` and
//! `byte_extract` (whose variables later keywords may use).

use sandgate_matcher::ir::MAX_VARS;
use sandgate_matcher::pcre::PcreError;
use sandgate_matcher::{
    ByteExtract, ByteJump, ByteOp, ByteRead, ByteTest, Endian, IsDataAt, JumpFrom, NumBase, Op,
    Pcre, Value,
};

use super::batch::PcreCache;
use super::{bad, RuleBuilder, SkipReason};
use crate::rules::RuleOption;

fn unsupported(keyword: &str, what: impl Into<String>) -> SkipReason {
    SkipReason::UnsupportedFeature {
        keyword: keyword.into(),
        what: what.into(),
    }
}

/// Lower one of `pcre`, `isdataat`, `byte_test`, `byte_jump`, `byte_extract`;
/// `pcre` values are compiled through `pcres`.
pub(super) fn lower(
    kw: &str,
    opt: &RuleOption,
    b: &mut RuleBuilder,
    pcres: &PcreCache,
) -> Result<(), SkipReason> {
    let value = opt
        .unnegated_value()
        .map(str::trim)
        .ok_or_else(|| bad(kw, "missing value"))?;
    let op = match kw {
        "pcre" => {
            let spec = pcres.compile(value).map_err(|e| match e {
                PcreError::Unsupported(what) => unsupported(kw, what),
                PcreError::TooBig => unsupported(kw, e.to_string()),
                other => bad(kw, other.to_string()),
            })?;
            Op::Pcre(Box::new(Pcre {
                regex: spec.regex,
                relative: spec.relative,
                negated: opt.is_negated(),
            }))
        }
        "isdataat" => {
            let mut parts = value.split(',').map(str::trim);
            let at = b.value(kw, parts.next().unwrap_or(""))?;
            if matches!(at, Value::Const(n) if !(0..=65535).contains(&n)) {
                return Err(bad(kw, "must be between 0 and 65535"));
            }
            let mut relative = false;
            for p in parts {
                match p {
                    "relative" => relative = true,
                    "rawbytes" => {}
                    other => return Err(bad(kw, format!("unknown option `{other}`"))),
                }
            }
            Op::IsDataAt(IsDataAt {
                at,
                relative,
                negated: opt.is_negated(),
            })
        }
        "byte_test" => Op::ByteTest(byte_test(value, b)?),
        "byte_jump" => Op::ByteJump(byte_jump(value, b)?),
        "byte_extract" => Op::ByteExtract(byte_extract(value, b)?),
        other => return Err(SkipReason::UnsupportedKeyword(other.to_string())),
    };
    b.ops.push(op);
    Ok(())
}

/// A number as C's `strtoull(.., 0)` reads it: `0x` hex, leading-`0` octal,
/// else decimal.
fn c_number(kw: &str, v: &str) -> Result<u64, SkipReason> {
    let v = v.trim();
    let parsed = if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16)
    } else if v.len() > 1 && v.starts_with('0') {
        u64::from_str_radix(&v[1..], 8)
    } else {
        v.parse()
    };
    parsed.map_err(|_| bad(kw, format!("`{v}` is not a valid number")))
}

/// The options shared by the three `byte_*` keywords, after their
/// positional arguments.
struct ByteOptions {
    relative: bool,
    endian: Endian,
    string: bool,
    base: Option<NumBase>,
    bitmask: Option<u64>,
    multiplier: Option<u32>,
    align: bool,
    align_to: Option<u8>,
    from: JumpFrom,
    post_offset: Option<i32>,
}

fn byte_options<'a>(
    kw: &str,
    parts: impl Iterator<Item = &'a str>,
) -> Result<ByteOptions, SkipReason> {
    let mut o = ByteOptions {
        relative: false,
        endian: Endian::Big,
        string: false,
        base: None,
        bitmask: None,
        multiplier: None,
        align: false,
        align_to: None,
        from: JumpFrom::Read,
        post_offset: None,
    };
    for part in parts {
        let mut words = part.split_whitespace();
        let name = words.next().unwrap_or("");
        let arg = words.next();
        let need = || arg.ok_or_else(|| bad(kw, format!("`{name}` needs a value")));
        match name {
            "relative" => o.relative = true,
            "big" => o.endian = Endian::Big,
            "little" => o.endian = Endian::Little,
            "string" => o.string = true,
            "hex" => o.base = Some(NumBase::Hex),
            "dec" => o.base = Some(NumBase::Dec),
            "oct" => o.base = Some(NumBase::Oct),
            "dce" => return Err(unsupported(kw, "`dce` (needs the DCERPC parser)")),
            "bitmask" => {
                let m = c_number(kw, need()?)?;
                if m == 0 {
                    return Err(bad(kw, "bitmask 0 masks everything"));
                }
                o.bitmask = Some(m);
            }
            "multiplier" => {
                let m: u32 = need()?
                    .parse()
                    .map_err(|_| bad(kw, "multiplier must be a number"))?;
                if m == 0 {
                    return Err(bad(kw, "multiplier must be at least 1"));
                }
                o.multiplier = Some(m);
            }
            "align" => match arg {
                None => o.align = true,
                Some("2") => o.align_to = Some(2),
                Some("4") => o.align_to = Some(4),
                Some(other) => return Err(bad(kw, format!("align {other} (2 or 4)"))),
            },
            "from_beginning" => o.from = JumpFrom::Beginning,
            "from_end" => o.from = JumpFrom::End,
            "post_offset" => {
                let p: i32 = need()?
                    .parse()
                    .map_err(|_| bad(kw, "post_offset must be a number"))?;
                o.post_offset = Some(p);
            }
            "" => return Err(bad(kw, "empty option")),
            other => return Err(bad(kw, format!("unknown option `{other}`"))),
        }
    }
    if o.base.is_some() && !o.string {
        return Err(bad(kw, "hex/dec/oct without `string`"));
    }
    Ok(o)
}

fn byte_read(
    kw: &str,
    nbytes: &str,
    offset: Value,
    o: &ByteOptions,
) -> Result<ByteRead, SkipReason> {
    let n: u8 = nbytes
        .trim()
        .parse()
        .map_err(|_| bad(kw, format!("`{nbytes}` is not a byte count")))?;
    let max = if o.string { 23 } else { 8 };
    if n == 0 || n > max {
        return Err(bad(kw, format!("{n} bytes (1 to {max})")));
    }
    if !o.relative && matches!(offset, Value::Const(v) if v < 0) {
        return Err(bad(kw, "negative offset without `relative`"));
    }
    Ok(ByteRead {
        nbytes: n,
        offset,
        relative: o.relative,
        endian: o.endian,
        string: o.string.then(|| o.base.unwrap_or(NumBase::Dec)),
        bitmask: o.bitmask,
    })
}

fn positional<'a>(
    kw: &str,
    value: &'a str,
    n: usize,
) -> Result<(Vec<&'a str>, Vec<&'a str>), SkipReason> {
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    if parts.len() < n {
        return Err(bad(kw, format!("needs at least {n} arguments")));
    }
    let (head, tail) = parts.split_at(n);
    Ok((head.to_vec(), tail.to_vec()))
}

fn byte_test(value: &str, b: &RuleBuilder) -> Result<ByteTest, SkipReason> {
    let kw = "byte_test";
    let (head, tail) = positional(kw, value, 4)?;
    let o = byte_options(kw, tail.into_iter())?;
    let op_text = head.get(1).copied().unwrap_or("");
    let (negated, op_text) = match op_text.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, op_text),
    };
    let op = match op_text {
        "=" => ByteOp::Eq,
        "" if negated => ByteOp::Eq,
        "<" => ByteOp::Lt,
        ">" => ByteOp::Gt,
        "<=" => ByteOp::Le,
        ">=" => ByteOp::Ge,
        "&" => ByteOp::And,
        "^" => ByteOp::Xor,
        other => return Err(bad(kw, format!("unknown operator `{other}`"))),
    };
    let value_text = head.get(2).copied().unwrap_or("");
    let value = match c_number(kw, value_text) {
        Ok(n) => Value::Const(i64::try_from(n).map_err(|_| bad(kw, "value too large"))?),
        Err(_) => b.value(kw, value_text)?,
    };
    let offset = b.value(kw, head.get(3).copied().unwrap_or(""))?;
    if o.multiplier.is_some()
        || o.align
        || o.align_to.is_some()
        || o.post_offset.is_some()
        || o.from != JumpFrom::Read
    {
        return Err(bad(
            kw,
            "option of byte_jump/byte_extract used in byte_test",
        ));
    }
    Ok(ByteTest {
        read: byte_read(kw, head.first().copied().unwrap_or(""), offset, &o)?,
        op,
        negated,
        value,
    })
}

fn byte_jump(value: &str, b: &RuleBuilder) -> Result<ByteJump, SkipReason> {
    let kw = "byte_jump";
    let (head, tail) = positional(kw, value, 2)?;
    let o = byte_options(kw, tail.into_iter())?;
    if o.align_to.is_some() {
        return Err(bad(kw, "`align` takes no value here"));
    }
    let offset = b.value(kw, head.get(1).copied().unwrap_or(""))?;
    Ok(ByteJump {
        read: byte_read(kw, head.first().copied().unwrap_or(""), offset, &o)?,
        multiplier: o.multiplier.unwrap_or(1),
        align: o.align,
        from: o.from,
        post_offset: o.post_offset.unwrap_or(0),
    })
}

fn byte_extract(value: &str, b: &mut RuleBuilder) -> Result<ByteExtract, SkipReason> {
    let kw = "byte_extract";
    let (head, tail) = positional(kw, value, 3)?;
    let o = byte_options(kw, tail.into_iter())?;
    if o.align || o.post_offset.is_some() || o.from != JumpFrom::Read {
        return Err(bad(kw, "option of byte_jump used in byte_extract"));
    }
    let offset = b.value(kw, head.get(1).copied().unwrap_or(""))?;
    let read = byte_read(kw, head.first().copied().unwrap_or(""), offset, &o)?;
    let name = head.get(2).copied().unwrap_or("");
    if name.is_empty()
        || name.parse::<i64>().is_ok()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(bad(kw, format!("`{name}` is not a variable name")));
    }
    if b.vars.iter().any(|v| v == name) {
        return Err(bad(kw, format!("variable `{name}` defined twice")));
    }
    if b.vars.len() >= MAX_VARS {
        return Err(bad(
            kw,
            format!("more than {MAX_VARS} variables in one rule"),
        ));
    }
    b.vars.push(name.to_string());
    Ok(ByteExtract {
        read,
        var: (b.vars.len() - 1) as u8,
        multiplier: o.multiplier.unwrap_or(1),
        align: o.align_to.unwrap_or(0),
    })
}
