//! ClamAV signature databases lowered into the AV engine's [`AvDb`].
//!
//! [`compile_databases`] takes database texts (kind by extension: `.hdb`,
//! `.hsb`, `.ndb`, `.ldb`, `.ign2`) and a ClamAV functionality level
//! ([`CLAMAV_FLEVEL`] is the level Sandgate's AV interface implements).
//! Malformed lines become [`AvError`]s; valid signatures Sandgate cannot
//! evaluate (other target types, entry-point offsets, PCRE, …) and
//! signatures outside the functionality level become [`AvSkip`]s. Both name
//! database, line, signature and construct; the rest compiles. It never
//! panics, whatever the text. An `.ign2` disables its names in every
//! database of the call, wherever it appears in `files` (clamscan loading a
//! database directory reads ignore lists first, too).
//!
//! - [`hex`]: hex body signatures → parts and gaps.
//! - [`ldb`]: target description blocks and logical expressions.

pub mod hex;
pub mod ldb;

use std::collections::HashSet;

use sandgate_matcher::av::{
    AvDb, BodySig, HashKind, HashSig, LogicalSig, Offset, Owner, MAX_EOF_BACK,
};

/// ClamAV functionality level (FLEVEL) of clamscan 1.4.3, the level
/// Sandgate's AV interface 1.1.0 implements (see DESIGN.md).
pub const CLAMAV_FLEVEL: u32 = 213;

/// Minimum FLEVEL field ClamAV demands of a hash signature with size `*`.
const HASH_ANY_SIZE_FLEVEL: u32 = 73;

/// One database file: `name` (e.g. `example.ndb`) decides the kind.
#[derive(Debug, Clone, Copy)]
pub struct DbFile<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// The compiled database plus what did not make it in.
#[derive(Debug, Default)]
pub struct AvCompileOutput {
    pub db: AvDb,
    pub skipped: Vec<AvSkip>,
    pub errors: Vec<AvError>,
}

/// A valid signature that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{database}:{line}: signature {name} skipped: {construct}")]
pub struct AvSkip {
    pub database: String,
    pub line: usize,
    pub name: String,
    /// The construct (or level range) that caused the skip.
    pub construct: String,
}

/// A line that is not valid in its database format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{database}:{line}: {}{message}", name.as_deref().map(|n| format!("signature {n}: ")).unwrap_or_default())]
pub struct AvError {
    pub database: String,
    pub line: usize,
    /// Signature name, when the line got far enough to have one.
    pub name: Option<String>,
    pub message: String,
}

/// Database kinds recognised by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hdb,
    Hsb,
    Ndb,
    Ldb,
    Ign2,
}

fn kind_of(name: &str) -> Option<Kind> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "hdb" => Kind::Hdb,
        "hsb" => Kind::Hsb,
        "ndb" => Kind::Ndb,
        "ldb" => Kind::Ldb,
        "ign2" => Kind::Ign2,
        _ => return None,
    })
}

/// ClamAV target types (`Target:`/ndb field 2); only 0 is scanned today.
fn target_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0 => "any file",
        1 => "PE",
        2 => "OLE2",
        3 => "HTML",
        4 => "mail",
        5 => "graphics",
        6 => "ELF",
        7 => "ASCII text",
        8 => "unused",
        9 => "Mach-O",
        10 => "PDF",
        11 => "Flash",
        12 => "Java class",
        13 => "OLE2 container",
        14 => "internal",
        _ => return None,
    })
}

/// Why one line did not compile.
enum LineFail {
    Skip(String, String),
    Error(Option<String>, String),
}

fn skip(name: &str, construct: impl Into<String>) -> LineFail {
    LineFail::Skip(name.to_string(), construct.into())
}

fn error(name: Option<&str>, message: impl Into<String>) -> LineFail {
    LineFail::Error(name.map(str::to_string), message.into())
}

/// Compile `files` for functionality level `flevel`.
pub fn compile_databases(files: &[DbFile], flevel: u32) -> AvCompileOutput {
    let mut c = Compiler {
        out: AvCompileOutput::default(),
        flevel,
        ignored: HashSet::new(),
    };
    for f in files {
        if kind_of(f.name) == Some(Kind::Ign2) {
            for line in f.text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let name = line.split(':').next().unwrap_or(line);
                c.ignored.insert(name.to_string());
            }
        }
    }
    for f in files {
        let Some(kind) = kind_of(f.name) else {
            c.out.errors.push(AvError {
                database: f.name.to_string(),
                line: 0,
                name: None,
                message: "unknown database type (expected .hdb, .hsb, .ndb, .ldb or .ign2)".into(),
            });
            continue;
        };
        if kind == Kind::Ign2 {
            continue;
        }
        for (i, raw) in f.text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let res = match kind {
                Kind::Hdb | Kind::Hsb => c.hash_line(line, kind),
                Kind::Ndb => c.ndb_line(line),
                Kind::Ldb => c.ldb_line(line),
                Kind::Ign2 => Ok(()),
            };
            match res {
                Ok(()) => {}
                Err(LineFail::Skip(name, construct)) => c.out.skipped.push(AvSkip {
                    database: f.name.to_string(),
                    line: i + 1,
                    name,
                    construct,
                }),
                Err(LineFail::Error(name, message)) => c.out.errors.push(AvError {
                    database: f.name.to_string(),
                    line: i + 1,
                    name,
                    message,
                }),
            }
        }
    }
    c.out
}

struct Compiler {
    out: AvCompileOutput,
    flevel: u32,
    ignored: HashSet<String>,
}

fn parse_flevel(name: &str, field: Option<&str>, what: &str) -> Result<Option<u32>, LineFail> {
    match field {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<u32>().map(Some).map_err(|_| {
            error(
                Some(name),
                format!("{what} functionality level `{v}` is not a number"),
            )
        }),
    }
}

impl Compiler {
    /// Skip when the engine's level lies outside `min..=max`.
    fn level(&self, name: &str, min: Option<u32>, max: Option<u32>) -> Result<(), LineFail> {
        let lo = min.unwrap_or(0);
        let hi = max.unwrap_or(u32::MAX);
        if self.flevel < lo || self.flevel > hi {
            let range = match max {
                Some(m) => format!("{lo}-{m}"),
                None => format!("{lo}-"),
            };
            return Err(skip(
                name,
                format!(
                    "functionality level range {range} excludes this engine's level {}",
                    self.flevel
                ),
            ));
        }
        Ok(())
    }

    fn ignore(&self, name: &str) -> Result<(), LineFail> {
        if self.ignored.contains(name) {
            return Err(skip(name, "disabled by an .ign2 database"));
        }
        Ok(())
    }

    fn add_name(&mut self, name: &str) -> u32 {
        self.out.db.names.push(name.to_string());
        (self.out.db.names.len() - 1) as u32
    }

    /// `HASH:SIZE:NAME[:MIN_FLEVEL[:MAX_FLEVEL]]`.
    fn hash_line(&mut self, line: &str, kind: Kind) -> Result<(), LineFail> {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 3 || f.len() > 5 {
            return Err(error(
                None,
                format!(
                    "expected HASH:SIZE:NAME[:MIN_FLEVEL[:MAX_FLEVEL]], got {} fields",
                    f.len()
                ),
            ));
        }
        let name = f[2];
        if name.is_empty() {
            return Err(error(None, "empty signature name"));
        }
        let hash = f[0];
        let hk = match (kind, hash.len()) {
            (Kind::Hdb, 32) | (Kind::Hsb, 32) => HashKind::Md5,
            (_, 40) => HashKind::Sha1,
            (_, 64) => HashKind::Sha256,
            (_, n) => {
                return Err(error(
                    Some(name),
                    format!("hash `{hash}` has {n} hex digits (MD5 32, SHA1 40, SHA256 64)"),
                ))
            }
        };
        let digest = ::hex::decode(hash)
            .map_err(|_| error(Some(name), format!("hash `{hash}` is not hexadecimal")))?;
        let min = parse_flevel(name, f.get(3).copied(), "minimum")?;
        let max = parse_flevel(name, f.get(4).copied(), "maximum")?;
        let size = match f[1] {
            "*" => {
                if min.unwrap_or(0) < HASH_ANY_SIZE_FLEVEL {
                    return Err(error(
                        Some(name),
                        format!(
                            "size `*` needs a minimum functionality level field of at least {HASH_ANY_SIZE_FLEVEL} (e.g. `{hash}:*:{name}:{HASH_ANY_SIZE_FLEVEL}`); ClamAV rejects this database"
                        ),
                    ));
                }
                None
            }
            s => Some(s.parse::<u64>().map_err(|_| {
                error(
                    Some(name),
                    format!("file size `{s}` is not a number or `*`"),
                )
            })?),
        };
        self.level(name, min, max)?;
        self.ignore(name)?;
        let sig = self.add_name(name);
        self.out.db.hashes.push(HashSig {
            sig,
            kind: hk,
            digest,
            size,
        });
        Ok(())
    }

    /// `NAME:TARGET:OFFSET:HEX[:MIN_FLEVEL[:MAX_FLEVEL]]`.
    fn ndb_line(&mut self, line: &str) -> Result<(), LineFail> {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || f.len() > 6 {
            return Err(error(
                None,
                format!(
                    "expected NAME:TARGET:OFFSET:HEX[:MIN_FLEVEL[:MAX_FLEVEL]], got {} fields",
                    f.len()
                ),
            ));
        }
        let name = f[0];
        if name.is_empty() {
            return Err(error(None, "empty signature name"));
        }
        let target: u32 = f[1].parse().map_err(|_| {
            error(
                Some(name),
                format!("target type `{}` is not a number", f[1]),
            )
        })?;
        let min = parse_flevel(name, f.get(4).copied(), "minimum")?;
        let max = parse_flevel(name, f.get(5).copied(), "maximum")?;
        let offset = parse_offset(name, f[2])?;
        let variants = hex::parse_variants(f[3], false).map_err(|e| hex_fail(name, e))?;
        check_target(name, target)?;
        let offset = offset?;
        self.level(name, min, max)?;
        self.ignore(name)?;
        let sig = self.add_name(name);
        for body in variants {
            self.out.db.bodies.push(BodySig {
                owner: Owner::Sig(sig),
                offset,
                parts: body.parts,
                gaps: body.gaps,
            });
        }
        Ok(())
    }

    /// `NAME;TDB;EXPR;SUB0;SUB1;…`.
    fn ldb_line(&mut self, line: &str) -> Result<(), LineFail> {
        let f: Vec<&str> = line.split(';').collect();
        if f.len() < 4 {
            return Err(error(
                None,
                "expected NAME;TARGET_DESCRIPTION;LOGICAL_EXPRESSION;SUBSIG0[;SUBSIG1…]",
            ));
        }
        let name = f[0];
        if name.is_empty() {
            return Err(error(None, "empty signature name"));
        }
        let subs = &f[3..];
        if subs.len() > 64 {
            return Err(error(
                Some(name),
                format!("{} subsignatures (at most 64)", subs.len()),
            ));
        }
        let tdb = ldb::parse_tdb(f[1]).map_err(|m| error(Some(name), m))?;
        let expr = ldb::parse_expr(f[2], subs.len()).map_err(|m| error(Some(name), m))?;
        let Some(target) = tdb.target else {
            return Err(error(Some(name), "the target description has no Target"));
        };
        let mut bodies = Vec::new();
        let mut unsupported: Option<String> = None;
        for (k, sub) in subs.iter().enumerate() {
            match subsig(name, sub) {
                Ok(Ok((offset, body))) => bodies.push((k, offset, body)),
                Ok(Err(construct)) => {
                    unsupported.get_or_insert(format!("subsignature {k}: {construct}"));
                }
                Err(LineFail::Skip(_, construct)) => {
                    unsupported.get_or_insert(format!("subsignature {k}: {construct}"));
                }
                Err(LineFail::Error(n, m)) => {
                    return Err(LineFail::Error(n, format!("subsignature {k}: {m}")))
                }
            }
        }
        let (min, max) = match tdb.engine {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        self.level(name, min, max)?;
        check_target(name, target)?;
        if let Some(u) = tdb.unsupported.first() {
            return Err(skip(name, format!("target description {u}")));
        }
        if let Some(u) = unsupported {
            return Err(skip(name, u));
        }
        self.ignore(name)?;
        let sig = self.add_name(name);
        let logical = self.out.db.logical.len() as u32;
        self.out.db.logical.push(LogicalSig {
            sig,
            subsigs: subs.len() as u8,
            expr,
            file_size: tdb.file_size,
        });
        for (k, offset, variants) in bodies {
            for body in variants {
                self.out.db.bodies.push(BodySig {
                    owner: Owner::Sub {
                        logical,
                        index: k as u8,
                    },
                    offset,
                    parts: body.parts,
                    gaps: body.gaps,
                });
            }
        }
        Ok(())
    }
}

fn hex_fail(name: &str, e: hex::HexError) -> LineFail {
    match e {
        hex::HexError::Unsupported(c) => skip(name, c),
        hex::HexError::Malformed(m) => error(Some(name), m),
    }
}

fn check_target(name: &str, target: u32) -> Result<(), LineFail> {
    match target_name(target) {
        Some(_) if target == 0 => Ok(()),
        Some(t) => Err(skip(
            name,
            format!("target type {target} ({t}) needs file-type parsing Sandgate does not do yet"),
        )),
        None => Err(error(Some(name), format!("unknown target type {target}"))),
    }
}

/// An ldb subsignature: `[OFFSET:]HEX[::MODIFIERS]`. The inner result is
/// `Err(construct)` for valid but unsupported subsignatures.
#[allow(clippy::type_complexity)]
fn subsig(name: &str, text: &str) -> Result<Result<(Offset, Vec<hex::Body>), String>, LineFail> {
    let (main, mods) = match text.split_once("::") {
        Some((m, mods)) => (m, mods),
        None => (text, ""),
    };
    if main.contains('/') {
        return Ok(Err("PCRE subsignature".into()));
    }
    if main.starts_with("${") || main.contains('$') {
        return Ok(Err("macro subsignature".into()));
    }
    if main.contains('#') {
        return Ok(Err("byte-compare subsignature".into()));
    }
    let (mut nocase, mut wide, mut ascii) = (false, false, false);
    for m in mods.chars() {
        match m {
            'i' => nocase = true,
            'w' => wide = true,
            'a' => ascii = true,
            'f' => return Ok(Err(format!("subsignature modifier ::{m}"))),
            _ => {
                return Err(error(
                    Some(name),
                    format!("unknown subsignature modifier `{m}`"),
                ))
            }
        }
    }
    let (offset, hexs) = match main.rsplit_once(':') {
        Some((o, h)) => (parse_offset(name, o)?, h),
        None => (Ok(Offset::Any), main),
    };
    let offset = match offset {
        Ok(o) => o,
        Err(LineFail::Skip(_, c)) => return Ok(Err(c)),
        Err(e) => return Err(e),
    };
    match hex::parse(hexs, nocase) {
        // `::w` matches the UTF-16LE form, `::wa` both forms (their
        // matches count together).
        Ok(b) if wide && ascii => {
            let w = hex::widen(&b);
            Ok(Ok((offset, vec![b, w])))
        }
        Ok(b) if wide => Ok(Ok((offset, vec![hex::widen(&b)]))),
        Ok(b) => Ok(Ok((offset, vec![b]))),
        Err(hex::HexError::Unsupported(c)) => Ok(Err(c)),
        Err(hex::HexError::Malformed(m)) => Err(error(Some(name), m)),
    }
}

/// `*`, `n`, `n,m`, `EOF-n[,m]`; entry-point and section offsets are
/// recognised and reported as unsupported (inner `Err`).
fn parse_offset(name: &str, text: &str) -> Result<Result<Offset, LineFail>, LineFail> {
    if text == "*" {
        return Ok(Ok(Offset::Any));
    }
    let bad = || {
        error(
            Some(name),
            format!("offset `{text}` is not *, n, n,m or EOF-n[,m]"),
        )
    };
    let (head, shift) = match text.split_once(',') {
        Some((h, s)) => (h, s.parse::<u64>().map_err(|_| bad())?),
        None => (text, 0),
    };
    if let Some(n) = head.strip_prefix("EOF-") {
        let back = n.parse::<u64>().map_err(|_| bad())?;
        if back > MAX_EOF_BACK {
            return Ok(Err(skip(
                name,
                format!("offset {text} (Sandgate keeps at most {MAX_EOF_BACK} bytes of file tail)"),
            )));
        }
        return Ok(Ok(Offset::Eof { back, shift }));
    }
    if head.starts_with("EP+") || head.starts_with("EP-") {
        return Ok(Err(skip(
            name,
            format!("offset {text} (entry point; needs PE/ELF parsing)"),
        )));
    }
    if head.starts_with("SL+")
        || head.starts_with("SE")
        || (head.starts_with('S') && head.contains('+'))
    {
        return Ok(Err(skip(
            name,
            format!("offset {text} (section; needs PE/ELF parsing)"),
        )));
    }
    if head.starts_with("VI") || head.starts_with('$') {
        return Ok(Err(skip(name, format!("offset {text}"))));
    }
    let start = head.parse::<u64>().map_err(|_| bad())?;
    Ok(Ok(Offset::Abs { start, shift }))
}

#[cfg(test)]
mod tests;
