//! Logical signature pieces: the target description block and the logical
//! expression (`0&1`, `(0|1)>2`, `0=1,2`, …).

use sandgate_matcher::av::{CmpOp, Expr};

/// Parsed `Key:Value` pairs of a target description block.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tdb {
    pub engine: Option<(u32, u32)>,
    pub target: Option<u32>,
    pub file_size: Option<(u64, u64)>,
    /// Keywords Sandgate does not evaluate (reported as unsupported).
    pub unsupported: Vec<String>,
    /// A keyword other than `Target` and `Engine` is present.
    pub new_attributes: bool,
}

/// ClamAV demands `Engine:51-…` (0.96) of logical signatures that use any
/// target description keyword besides `Target` and `Engine`.
pub const NEW_ATTRIBUTES_FLEVEL: u32 = 51;

/// `min-max` or a single value `n` (treated as `n-n`).
fn range<T: std::str::FromStr + Copy>(v: &str) -> Option<(T, T)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => {
            let n = v.parse().ok()?;
            Some((n, n))
        }
    }
}

pub fn parse_tdb(text: &str) -> Result<Tdb, String> {
    let mut tdb = Tdb::default();
    for kv in text.split(',') {
        let Some((k, v)) = kv.split_once(':') else {
            return Err(format!("target description entry `{kv}` is not Key:Value"));
        };
        if k != "Engine" && k != "Target" {
            tdb.new_attributes = true;
        }
        match k {
            "Engine" => {
                tdb.engine =
                    Some(range(v).ok_or_else(|| format!("Engine range `{v}` is not min-max"))?)
            }
            "Target" => {
                tdb.target = Some(
                    v.parse()
                        .map_err(|_| format!("Target `{v}` is not a number"))?,
                )
            }
            "FileSize" => {
                tdb.file_size =
                    Some(range(v).ok_or_else(|| format!("FileSize `{v}` is not min-max"))?)
            }
            "EntryPoint" | "NumberOfSections" | "Container" | "Intermediates" | "IconGroup1"
            | "IconGroup2" | "HandlerType" => tdb.unsupported.push(format!("{k}:{v}")),
            _ => return Err(format!("unknown target description keyword `{k}`")),
        }
    }
    if tdb.new_attributes
        && tdb
            .engine
            .is_none_or(|(min, _)| min < NEW_ATTRIBUTES_FLEVEL)
    {
        return Err(format!(
            "keywords other than Target need `Engine:{NEW_ATTRIBUTES_FLEVEL}-…` or higher as the first keyword; ClamAV rejects this database"
        ));
    }
    Ok(tdb)
}

/// Parse a logical expression over `subsigs` subsignatures. `|` binds
/// weaker than `&`; a count modifier applies to the index or parenthesised
/// group right before it.
pub fn parse_expr(text: &str, subsigs: usize) -> Result<Expr, String> {
    let mut p = ExprParser {
        s: text.as_bytes(),
        i: 0,
        subsigs,
        depth: 0,
    };
    let e = p.or()?;
    if p.i != p.s.len() {
        return Err(format!(
            "unexpected `{}` at character {} of the logical expression",
            p.s[p.i] as char,
            p.i + 1
        ));
    }
    Ok(e)
}

struct ExprParser<'a> {
    s: &'a [u8],
    i: usize,
    subsigs: usize,
    depth: usize,
}

impl ExprParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.peek() == Some(b'|') {
            self.i += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.counted()?;
        while self.peek() == Some(b'&') {
            self.i += 1;
            e = Expr::And(Box::new(e), Box::new(self.counted()?));
        }
        Ok(e)
    }

    fn number(&mut self) -> Result<u64, String> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("expected a number at character {}", start + 1))
    }

    fn counted(&mut self) -> Result<Expr, String> {
        let e = self.primary()?;
        let op = match self.peek() {
            Some(b'=') => CmpOp::Eq,
            Some(b'>') => CmpOp::Gt,
            Some(b'<') => CmpOp::Lt,
            _ => return Ok(e),
        };
        self.i += 1;
        let count = self.number()?;
        let distinct = if self.peek() == Some(b',') {
            self.i += 1;
            Some(self.number()?)
        } else {
            None
        };
        Ok(Expr::Count {
            expr: Box::new(e),
            op,
            count,
            distinct,
        })
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(b'(') => {
                self.depth += 1;
                if self.depth > 64 {
                    return Err("logical expression nested too deeply".into());
                }
                self.i += 1;
                let e = self.or()?;
                if self.peek() != Some(b')') {
                    return Err(format!("missing `)` at character {}", self.i + 1));
                }
                self.i += 1;
                self.depth -= 1;
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() => {
                let at = self.i;
                let n = self.number()?;
                if n as usize >= self.subsigs || n > 63 {
                    return Err(format!(
                        "subsignature {n} (character {}) does not exist ({} given)",
                        at + 1,
                        self.subsigs
                    ));
                }
                Ok(Expr::Sub(n as u8))
            }
            _ => Err(format!(
                "expected a subsignature index or `(` at character {}",
                self.i + 1
            )),
        }
    }
}
