//! The option body of a rule: `(keyword:value; keyword; ...)`.
//!
//! Splitting follows Suricata's `SigParseOptions`:
//!
//! * An option ends at the first `;` that is not directly preceded by `\`.
//!   Quotes do **not** protect a `;`: `content:"a;b";` ends the option after
//!   `"a` and fails as an unterminated quoted value, exactly as in Suricata,
//!   which wants `content:"a\;b";` or `content:"a|3B|b";`. Like Suricata the
//!   check looks at one byte only, so `\\;` also counts as an escaped `;`.
//! * The keyword is everything before the first `:`, trimmed; it is stored
//!   lowercased (Suricata looks keywords up case-insensitively).
//! * The value is everything after that `:`, trimmed. A leading `!` (with
//!   optional blanks after it) is negation; a value that then starts with `"`
//!   must end with an unescaped `"`, and both quotes are stripped.
//!
//! [`RuleOption::value`] is the value with quotes stripped and escapes
//! resolved, with negation kept as a leading `!`. How escapes are resolved
//! depends on the keyword, as in Suricata:
//!
//! * `content`, `uricontent`, `replace`, `filename`, `fileext`, `filemagic`
//!   (Suricata's `DetectContentDataParse`): `\;` `\"` `\\` `\:` become the
//!   character; any other escape, or an unescaped `"`, is an error. Text
//!   between `|` pipes (hex) is kept verbatim: `content:"|3B|"` has the value
//!   `|3B|`, left for the content lowering.
//! * `msg` (`DetectMsgSetup`): a backslash before any character is dropped.
//! * `pcre`, `pcrexform`: kept verbatim; the regex engine reads the escapes.
//! * Any other keyword: `\;` `\"` `\\` `\:` become the character, other
//!   backslashes are kept.
//!
//! [`RuleOption::raw_value`] keeps the text as written (quotes, `!`, escapes).

use serde::{Deserialize, Serialize};

use super::error::RuleErrorKind;

/// One `keyword[:value];` option of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RuleOption {
    /// The keyword, lowercased.
    pub keyword: String,
    /// The value with quotes stripped and escapes resolved (see the module
    /// docs); a negated value (`content:!"x"`) starts with `!`. `None` for a
    /// bare keyword such as `nocase`, `Some("")` for `nocase:;`.
    pub value: Option<String>,
    /// The value exactly as written after the `:`, trimmed.
    pub raw_value: Option<String>,
}

impl RuleOption {
    /// Whether the value was written negated (`!` before it). Use this rather
    /// than `value.starts_with('!')`: `content:"!x"` is not negated but its
    /// value starts with `!` too.
    pub fn is_negated(&self) -> bool {
        self.raw_value
            .as_deref()
            .is_some_and(|raw| raw.starts_with('!'))
    }

    /// The value without the negation mark.
    pub fn unnegated_value(&self) -> Option<&str> {
        let value = self.value.as_deref()?;
        Some(if self.is_negated() {
            value.strip_prefix('!').unwrap_or(value)
        } else {
            value
        })
    }
}

/// How a keyword's value is unescaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escaping {
    Content,
    Msg,
    Regex,
    Generic,
}

fn escaping(keyword: &str) -> Escaping {
    match keyword {
        "content" | "uricontent" | "replace" | "filename" | "fileext" | "filemagic" => {
            Escaping::Content
        }
        "msg" => Escaping::Msg,
        "pcre" | "pcrexform" => Escaping::Regex,
        _ => Escaping::Generic,
    }
}

/// At most 40 characters of `text`, for error messages.
pub(crate) fn near(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if out.len() < text.len() {
        out.push_str("...");
    }
    out
}

/// Splits and decodes the text between the rule's parentheses.
pub(crate) fn parse_options(body: &str) -> Result<Vec<RuleOption>, RuleErrorKind> {
    let mut options = Vec::new();
    let mut rest = body;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(options);
        }
        let end = option_end(rest)
            .ok_or_else(|| RuleErrorKind::UnterminatedOption { near: near(rest) })?;
        let (opt, tail) = (&rest[..end], &rest[end + 1..]);
        rest = tail;
        options.push(parse_option(opt)?);
    }
}

/// Byte index of the first `;` not preceded by `\`.
fn option_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    bytes
        .iter()
        .enumerate()
        .position(|(i, &b)| b == b';' && (i == 0 || bytes[i - 1] != b'\\'))
}

fn parse_option(opt: &str) -> Result<RuleOption, RuleErrorKind> {
    let (name, raw) = match opt.split_once(':') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (opt.trim(), None),
    };
    if name.is_empty() {
        return Err(RuleErrorKind::BadOptionSyntax {
            near: near(opt),
            why: "empty option keyword".into(),
        });
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(RuleErrorKind::BadOptionSyntax {
            near: near(opt),
            why: format!("'{bad}' in keyword \"{}\"", near(name)),
        });
    }
    let keyword = name.to_ascii_lowercase();
    let value = raw.map(|raw| decode_value(&keyword, raw)).transpose()?;
    Ok(RuleOption {
        keyword,
        value,
        raw_value: raw.map(str::to_owned),
    })
}

fn decode_value(keyword: &str, raw: &str) -> Result<String, RuleErrorKind> {
    let syntax = |why: &str| RuleErrorKind::BadOptionSyntax {
        near: near(&format!("{keyword}:{raw}")),
        why: why.to_owned(),
    };
    let (negated, body) = match raw.strip_prefix('!') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, raw),
    };
    if negated && body.is_empty() {
        return Err(syntax("'!' without a value"));
    }
    let inner = if let Some(quoted) = body.strip_prefix('"') {
        let Some(inner) = quoted.strip_suffix('"') else {
            return Err(syntax(
                "quoted value does not end with '\"' (missing ';' or unescaped ';' inside?)",
            ));
        };
        let trailing_backslashes = inner.bytes().rev().take_while(|&b| b == b'\\').count();
        if trailing_backslashes % 2 == 1 {
            return Err(syntax(
                "closing '\"' is escaped (missing ';' or unescaped ';' inside?)",
            ));
        }
        if inner.is_empty() {
            return Err(syntax("empty quoted value"));
        }
        inner
    } else {
        body
    };
    let mut value = String::with_capacity(inner.len() + 1);
    if negated {
        value.push('!');
    }
    match escaping(keyword) {
        Escaping::Content => {
            unescape_content(inner, &mut value).map_err(|why| RuleErrorKind::BadEscape {
                keyword: keyword.to_owned(),
                value: near(raw),
                why,
            })?
        }
        Escaping::Msg => unescape_msg(inner, &mut value),
        Escaping::Regex => value.push_str(inner),
        Escaping::Generic => unescape_generic(inner, &mut value),
    }
    Ok(value)
}

fn is_option_escape(c: char) -> bool {
    matches!(c, ';' | '"' | '\\' | ':')
}

fn unescape_content(text: &str, out: &mut String) -> Result<(), String> {
    let mut chars = text.chars();
    let mut hex = false;
    while let Some(c) = chars.next() {
        match c {
            '|' => {
                hex = !hex;
                out.push(c);
            }
            _ if hex => out.push(c),
            '\\' => match chars.next() {
                Some(e) if is_option_escape(e) => out.push(e),
                Some(e) => {
                    return Err(format!(
                        "'\\{e}' is not a valid escape (only \\; \\\" \\\\ \\: are)"
                    ))
                }
                None => return Err("value ends with a lone '\\'".into()),
            },
            '"' => return Err("'\"' must be escaped as \\\" or written |22|".into()),
            _ => out.push(c),
        }
    }
    Ok(())
}

fn unescape_msg(text: &str, out: &mut String) {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next().unwrap_or('\\'));
        } else {
            out.push(c);
        }
    }
}

fn unescape_generic(text: &str, out: &mut String) {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&e) = chars.peek().filter(|&&e| is_option_escape(e)) {
                out.push(e);
                chars.next();
                continue;
            }
        }
        out.push(c);
    }
}
