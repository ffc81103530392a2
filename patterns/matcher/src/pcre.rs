//! `pcre` lowered to DFAs: Suricata's `/regex/flags` is translated from PCRE
//! syntax to `regex-syntax` syntax and compiled, when rules are compiled, into
//! a forward and a reverse sparse DFA (so both ends of a match are known).
//! The module only deserialises and searches them; it never compiles a regex.
//!
//! PCRE features a DFA cannot express (backreferences, lookaround, atomic
//! groups, possessive quantifiers, `\K`, recursion, ...) are refused with a
//! [`PcreError::Unsupported`] naming the construct, as are Suricata's HTTP
//! buffer flags. Matching is on bytes, like PCRE without UTF mode.

use regex_automata::dfa::{dense, regex::Regex as DfaRegex, sparse};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::Input;
use serde::{Deserialize, Serialize};

/// Largest DFA (forward plus reverse, serialised) a `pcre` may compile to.
pub const MAX_DFA_BYTES: usize = 2 << 20;

/// Why a `pcre` value could not be lowered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PcreError {
    /// Not of the form `/regex/flags`.
    Syntax(String),
    /// A PCRE construct or Suricata flag this engine does not support.
    Unsupported(String),
    /// The DFA would exceed [`MAX_DFA_BYTES`].
    TooBig,
    /// The regex engine refused the translated pattern.
    Build(String),
}

impl core::fmt::Display for PcreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PcreError::Syntax(s) => write!(f, "{s}"),
            PcreError::Unsupported(s) => write!(f, "{s} is not supported"),
            PcreError::TooBig => write!(f, "DFA larger than {MAX_DFA_BYTES} bytes"),
            PcreError::Build(s) => write!(f, "regex does not compile: {s}"),
        }
    }
}

impl std::error::Error for PcreError {}

/// A parsed `pcre:"/.../flags"` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcreSpec {
    pub regex: Regex,
    /// `R`: search from the end of the previous match.
    pub relative: bool,
}

/// Parse and compile a `pcre` value (without its negation `!`).
pub fn compile_pcre(value: &str) -> Result<PcreSpec, PcreError> {
    let body = value
        .strip_prefix('/')
        .ok_or_else(|| PcreError::Syntax("must start with `/`".into()))?;
    let end = body
        .rfind('/')
        .ok_or_else(|| PcreError::Syntax("no closing `/`".into()))?;
    let (pattern, flags) = (&body[..end], &body[end + 1..]);
    let mut f = Flags::default();
    let mut relative = false;
    for c in flags.chars() {
        match c {
            'i' => f.caseless = true,
            's' => f.dotall = true,
            'm' => f.multiline = true,
            'x' => f.extended = true,
            'A' => f.anchored = true,
            'E' => f.dollar_endonly = true,
            'G' => f.ungreedy = true,
            'R' => relative = true,
            // rawbytes, and "override the match limit": nothing to do for a DFA.
            'B' | 'O' => {}
            'U' | 'I' | 'P' | 'Q' | 'H' | 'D' | 'M' | 'C' | 'K' | 'S' | 'Y' | 'V' | 'W' | 'Z' => {
                return Err(PcreError::Unsupported(format!(
                    "flag `{c}` (an HTTP/app-layer buffer)"
                )))
            }
            other => return Err(PcreError::Syntax(format!("unknown flag `{other}`"))),
        }
    }
    let translated = translate(pattern, &f)?;
    Ok(PcreSpec {
        regex: Regex::build(value, &translated, &f)?,
        relative,
    })
}

/// PCRE compile options from the flag letters.
#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    caseless: bool,
    dotall: bool,
    multiline: bool,
    extended: bool,
    anchored: bool,
    dollar_endonly: bool,
    ungreedy: bool,
}

/// A compiled regex: forward and reverse DFAs, searchable without
/// allocation. Serialises as its source text and the two DFAs' bytes;
/// deserialising validates them (corrupt data is an error, never UB).
#[derive(Clone, Serialize, Deserialize)]
#[serde(into = "RegexData", try_from = "RegexData")]
pub struct Regex {
    source: String,
    re: DfaRegex<sparse::DFA<Vec<u8>>>,
}

#[derive(Serialize, Deserialize)]
struct RegexData {
    source: String,
    forward: Vec<u8>,
    reverse: Vec<u8>,
}

impl From<Regex> for RegexData {
    fn from(r: Regex) -> Self {
        RegexData {
            source: r.source,
            forward: r.re.forward().to_bytes_little_endian(),
            reverse: r.re.reverse().to_bytes_little_endian(),
        }
    }
}

impl TryFrom<RegexData> for Regex {
    type Error = String;

    fn try_from(d: RegexData) -> Result<Self, String> {
        let load = |bytes: &[u8]| {
            sparse::DFA::from_bytes(bytes)
                .map(|(dfa, _)| dfa.to_owned())
                .map_err(|e| format!("pcre {}: {e}", d.source))
        };
        let (forward, reverse) = (load(&d.forward)?, load(&d.reverse)?);
        Ok(Regex {
            re: DfaRegex::builder().build_from_dfas(forward, reverse),
            source: d.source,
        })
    }
}

impl core::fmt::Debug for Regex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Regex({})", self.source)
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Regex {}

impl Regex {
    fn build(source: &str, pattern: &str, f: &Flags) -> Result<Self, PcreError> {
        let syntax = syntax::Config::new()
            .unicode(false)
            .utf8(false)
            .octal(false)
            .case_insensitive(f.caseless)
            .multi_line(f.multiline)
            .dot_matches_new_line(f.dotall)
            .ignore_whitespace(f.extended)
            .swap_greed(f.ungreedy)
            .nest_limit(200);
        let dense = dense::Config::new()
            .dfa_size_limit(Some(MAX_DFA_BYTES))
            .determinize_size_limit(Some(4 * MAX_DFA_BYTES));
        let re = DfaRegex::builder()
            .syntax(syntax)
            .thompson(
                thompson::Config::new()
                    .utf8(false)
                    .nfa_size_limit(Some(MAX_DFA_BYTES)),
            )
            .dense(dense)
            .build_sparse(pattern)
            .map_err(|e| {
                if e.to_string().contains("exceeded") || e.to_string().contains("limit") {
                    PcreError::TooBig
                } else {
                    PcreError::Build(e.to_string())
                }
            })?;
        let size = re.forward().memory_usage() + re.reverse().memory_usage();
        if size > MAX_DFA_BYTES {
            return Err(PcreError::TooBig);
        }
        Ok(Regex {
            source: source.to_string(),
            re,
        })
    }

    /// The `pcre` value this was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The leftmost-first match in `hay` starting at or after `start`, as
    /// `(start, end)`. Look-behind assertions (`^`, `\b`) see `hay` before
    /// `start`. `None` also when the search gives up (it does not here: no
    /// quit bytes are configured).
    pub fn find_at(&self, hay: &[u8], start: usize) -> Option<(usize, usize)> {
        if start > hay.len() {
            return None;
        }
        let input = Input::new(hay).range(start..);
        match self.re.try_search(&input) {
            Ok(Some(m)) => Some((m.start(), m.end())),
            _ => None,
        }
    }
}

/// Translate PCRE syntax into `regex-syntax` syntax (bytes mode).
fn translate(p: &str, f: &Flags) -> Result<String, PcreError> {
    let unsupported = |what: &str| Err(PcreError::Unsupported(what.to_string()));
    let chars: Vec<char> = p.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut out = String::with_capacity(p.len() + 8);
    if f.anchored {
        out.push_str("\\A(?:");
    }
    let mut i = 0;
    let mut in_class = false;
    while let Some(c) = at(i) {
        if in_class {
            match c {
                '\\' => i += escape(&chars, i, true, f, &mut out)?,
                ']' => {
                    in_class = false;
                    out.push(']');
                    i += 1;
                }
                '[' if at(i + 1) == Some(':') => {
                    // POSIX class `[:alpha:]`: copy through `:]`.
                    let rest: String = chars[i..].iter().collect();
                    match rest.find(":]") {
                        Some(end) => {
                            out.push_str(&rest[..end + 2]);
                            i += rest[..end + 2].chars().count();
                        }
                        None => {
                            out.push_str("\\[");
                            i += 1;
                        }
                    }
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                    i += 1;
                }
                '-' if at(i + 1) == Some('-') => {
                    out.push_str("\\-");
                    i += 1;
                }
                _ if !c.is_ascii() => {
                    push_utf8(c, &mut out);
                    i += 1;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
            continue;
        }
        match c {
            '\\' => i += escape(&chars, i, false, f, &mut out)?,
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if at(i) == Some('^') {
                    out.push('^');
                    i += 1;
                }
                if at(i) == Some(']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            '(' => {
                if at(i + 1) == Some('*') {
                    return unsupported("backtracking verb `(*...)`");
                }
                if at(i + 1) == Some('?') {
                    match (at(i + 2), at(i + 3)) {
                        (Some('='), _) | (Some('!'), _) => {
                            return unsupported("lookahead `(?=`/`(?!`")
                        }
                        (Some('<'), Some('=')) | (Some('<'), Some('!')) => {
                            return unsupported("lookbehind `(?<=`/`(?<!`")
                        }
                        (Some('>'), _) => return unsupported("atomic group `(?>`"),
                        (Some('|'), _) => return unsupported("branch reset `(?|`"),
                        (Some('('), _) => return unsupported("conditional `(?(`"),
                        (Some('R'), _) | (Some('&'), _) | (Some('0'..='9'), _) | (Some('+'), _) => {
                            return unsupported("recursion / subroutine call")
                        }
                        (Some('P'), Some('>')) | (Some('P'), Some('=')) => {
                            return unsupported("named backreference / subroutine")
                        }
                        (Some('C'), _) => return unsupported("callout `(?C`"),
                        (Some('#'), _) => {
                            // Comment: drop through the closing `)`.
                            while let Some(ch) = at(i) {
                                i += 1;
                                if ch == ')' {
                                    break;
                                }
                            }
                            continue;
                        }
                        (Some('\''), _) => {
                            out.push_str("(?P<");
                            i += 3;
                            while let Some(ch) = at(i) {
                                i += 1;
                                if ch == '\'' {
                                    break;
                                }
                                out.push(ch);
                            }
                            out.push('>');
                            continue;
                        }
                        _ => {}
                    }
                }
                out.push('(');
                i += 1;
            }
            '{' => {
                let close = quantifier_end(&chars, i);
                match close {
                    Some(end) => {
                        out.extend(&chars[i..=end]);
                        i = end + 1;
                        if at(i) == Some('+') {
                            return unsupported("possessive quantifier");
                        }
                    }
                    None => {
                        out.push_str("\\{");
                        i += 1;
                    }
                }
            }
            '*' | '+' | '?' => {
                out.push(c);
                i += 1;
                if at(i) == Some('+') {
                    return unsupported("possessive quantifier");
                }
            }
            '$' if !f.multiline && !f.dollar_endonly => {
                // PCRE's `$` also matches before a final newline.
                out.push_str("(?:\\n?\\z)");
                i += 1;
            }
            _ if !c.is_ascii() => {
                push_utf8(c, &mut out);
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    if in_class {
        return Err(PcreError::Syntax("unterminated `[`".into()));
    }
    if f.anchored {
        out.push(')');
    }
    Ok(out)
}

/// Index of the `}` closing a valid `{n}`, `{n,}` or `{n,m}` at `i`.
fn quantifier_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i + 1;
    let digits = |j: &mut usize| {
        let s = *j;
        while chars.get(*j).is_some_and(char::is_ascii_digit) {
            *j += 1;
        }
        *j > s
    };
    if !digits(&mut j) {
        return None;
    }
    if chars.get(j) == Some(&',') {
        j += 1;
        digits(&mut j);
    }
    (chars.get(j) == Some(&'}')).then_some(j)
}

/// A literal character, escaped so `regex-syntax` reads it as itself.
fn push_lit(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else if !c.is_ascii() {
        push_utf8(c, out);
    } else {
        out.push_str(&format!("\\x{:02X}", c as u32));
    }
}

/// A non-ASCII character as its UTF-8 bytes: PCRE without UTF mode sees bytes.
fn push_utf8(c: char, out: &mut String) {
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        out.push_str(&format!("\\x{b:02X}"));
    }
}

/// A byte value; `\xHH` (not `\x{..}`, which means a code point).
fn push_byte(v: u32, out: &mut String) -> Result<(), PcreError> {
    if v > 0xff {
        return Err(PcreError::Unsupported(format!(
            "code point {v:#x} (bytes mode)"
        )));
    }
    out.push_str(&format!("\\x{v:02X}"));
    Ok(())
}

/// Translate the escape at `chars[i] == '\\'`; returns how many chars it used.
fn escape(
    chars: &[char],
    i: usize,
    in_class: bool,
    f: &Flags,
    out: &mut String,
) -> Result<usize, PcreError> {
    let unsupported = |what: String| Err(PcreError::Unsupported(what));
    let Some(&e) = chars.get(i + 1) else {
        return Err(PcreError::Syntax("pattern ends with `\\`".into()));
    };
    let class = |members: &str, negated: bool, out: &mut String| -> Result<(), PcreError> {
        match (in_class, negated) {
            (true, false) => out.push_str(members),
            (true, true) => {
                return Err(PcreError::Unsupported(
                    "negated class escape inside `[...]`".into(),
                ))
            }
            (false, false) => {
                out.push('[');
                out.push_str(members);
                out.push(']');
            }
            (false, true) => {
                out.push_str("[^");
                out.push_str(members);
                out.push(']');
            }
        }
        Ok(())
    };
    let mut used = 2;
    match e {
        '1'..='9' => return unsupported(format!("backreference `\\{e}`")),
        'g' | 'k' => return unsupported(format!("backreference `\\{e}`")),
        'K' => return unsupported("`\\K`".into()),
        'G' => return unsupported("`\\G`".into()),
        'X' | 'C' | 'p' | 'P' | 'u' | 'L' | 'l' | 'U' => {
            return unsupported(format!("escape `\\{e}`"))
        }
        '0' => {
            let mut v = 0u32;
            while used < 4 && chars.get(i + used).is_some_and(|c| ('0'..='7').contains(c)) {
                v = v * 8 + chars.get(i + used).and_then(|c| c.to_digit(8)).unwrap_or(0);
                used += 1;
            }
            push_byte(v, out)?;
        }
        'o' if chars.get(i + 2) == Some(&'{') => {
            let end = chars[i..].iter().position(|&c| c == '}').map(|p| p + i);
            let Some(end) = end else {
                return Err(PcreError::Syntax("unterminated `\\o{`".into()));
            };
            let digits: String = chars[i + 3..end].iter().collect();
            let v = u32::from_str_radix(&digits, 8)
                .map_err(|_| PcreError::Syntax(format!("bad octal `\\o{{{digits}}}`")))?;
            push_byte(v, out)?;
            used = end - i + 1;
        }
        'x' => {
            if chars.get(i + 2) == Some(&'{') {
                let end = chars[i..].iter().position(|&c| c == '}').map(|p| p + i);
                let Some(end) = end else {
                    return Err(PcreError::Syntax("unterminated `\\x{`".into()));
                };
                let digits: String = chars[i + 3..end].iter().collect();
                let v = u32::from_str_radix(&digits, 16)
                    .map_err(|_| PcreError::Syntax(format!("bad hex `\\x{{{digits}}}`")))?;
                push_byte(v, out)?;
                used = end - i + 1;
            } else {
                let mut v = 0u32;
                while used < 4 && chars.get(i + used).is_some_and(char::is_ascii_hexdigit) {
                    v = v * 16
                        + chars
                            .get(i + used)
                            .and_then(|c| c.to_digit(16))
                            .unwrap_or(0);
                    used += 1;
                }
                push_byte(v, out)?;
            }
        }
        'c' => {
            let Some(&x) = chars.get(i + 2).filter(|c| c.is_ascii()) else {
                return Err(PcreError::Syntax("`\\c` without a character".into()));
            };
            push_byte(u32::from(x.to_ascii_uppercase() as u8 ^ 0x40), out)?;
            used = 3;
        }
        'e' => push_byte(0x1b, out)?,
        'a' => push_byte(0x07, out)?,
        'f' | 'n' | 'r' | 't' | 'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
            out.push('\\');
            out.push(e);
        }
        'h' => class("\\t\\x20\\xA0", false, out)?,
        'H' => class("\\t\\x20\\xA0", true, out)?,
        'v' => class("\\n\\x0B\\x0C\\r\\x85", false, out)?,
        'V' => class("\\n\\x0B\\x0C\\r\\x85", true, out)?,
        'N' if !in_class => out.push_str("[^\\n]"),
        'R' if !in_class => out.push_str("(?:\\r\\n|[\\n\\x0B\\x0C\\r\\x85])"),
        'b' if in_class => push_byte(0x08, out)?,
        'b' | 'B' | 'A' | 'z' if !in_class => {
            out.push('\\');
            out.push(e);
        }
        'Z' if !in_class => out.push_str("(?:\\n?\\z)"),
        'E' => {}
        'Q' => {
            let mut j = i + 2;
            while let Some(&c) = chars.get(j) {
                if c == '\\' && chars.get(j + 1) == Some(&'E') {
                    j += 2;
                    break;
                }
                push_lit(c, out);
                j += 1;
            }
            used = j - i;
        }
        c if c.is_ascii_alphanumeric() => return unsupported(format!("escape `\\{c}`")),
        c => push_lit(c, out),
    }
    let _ = f;
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(pcre: &str, hay: &[u8]) -> Option<(usize, usize)> {
        compile_pcre(pcre).expect("compiles").regex.find_at(hay, 0)
    }

    #[test]
    fn flags_and_positions() {
        assert_eq!(find("/b+c/", b"abbbcd"), Some((1, 5)));
        assert_eq!(find("/B+C/i", b"abbbcd"), Some((1, 5)));
        assert_eq!(find("/a.c/", b"a\nc"), None);
        assert_eq!(find("/a.c/s", b"a\nc"), Some((0, 3)));
        assert_eq!(find("/^x/", b"a\nx"), None);
        assert_eq!(find("/^x/m", b"a\nx"), Some((2, 3)));
        assert_eq!(find("/a b/x", b"ab"), Some((0, 2)));
        assert_eq!(find("/\\x41\\x{42}C\\011/", b"ABC\t"), Some((0, 4)));
        assert_eq!(find("/[^\\x00-\\x1f]+/", b"\x01ab\x02"), Some((1, 3)));
        assert_eq!(find("/\\xff/", b"\x00\xff"), Some((1, 2)));
        assert_eq!(find("/a{/", b"a{"), Some((0, 2)));
        assert_eq!(find("/\\/x\\;/", b"/x;"), Some((0, 3)));
        assert_eq!(find("/x$/", b"ax\n"), Some((1, 3)));
        assert_eq!(find("/a.+?b/", b"aXbXb"), Some((0, 3)));
    }

    #[test]
    fn unsupported_constructs_name_themselves() {
        for (p, what) in [
            ("/(a)\\1/", "backreference"),
            ("/a(?=b)/", "lookahead"),
            ("/(?<!a)b/", "lookbehind"),
            ("/(?>a)/", "atomic"),
            ("/a++/", "possessive"),
            ("/a\\Kb/", "\\K"),
            ("/a/U", "flag `U`"),
        ] {
            let err = compile_pcre(p).expect_err(p).to_string();
            assert!(err.contains(what), "{p}: {err}");
        }
    }

    #[test]
    fn serde_round_trip_searches_the_same() {
        let spec = compile_pcre("/fo+/R").expect("compiles");
        assert!(spec.relative);
        let bytes = postcard::to_allocvec(&spec.regex).expect("serialises");
        let back: Regex = postcard::from_bytes(&bytes).expect("loads");
        assert_eq!(back.find_at(b"xxfooo", 0), Some((2, 6)));
        let mut corrupt = bytes.clone();
        if let Some(b) = corrupt.get_mut(bytes.len() / 2) {
            *b ^= 0xff;
        }
        let _ = postcard::from_bytes::<Regex>(&corrupt);
    }
}
