//! Suricata's list grammar for rule addresses and ports, and its evaluation.
//!
//! Both header fields share one syntax: a comma-separated list of elements,
//! each optionally negated with `!`, where an element is a bracketed sub-list,
//! a `$VARIABLE` from the vars file, or a leaf (`10.0.0.0/8`, `1024:`, `any`).
//!
//! Evaluation follows Suricata's `DetectAddressParse2`/`DetectPortParseDo`:
//! inside one list, positive elements go to an *include* set and negated ones
//! to an *exclude* set; a plain sub-list or variable is flattened into the same
//! two sets, while a negated sub-list or variable is evaluated on its own and
//! its result added to the exclude set. A list with only negations starts from
//! "everything" (per address family for addresses, see [`Domain::fill`]). The
//! result is `include \ exclude`; a result that is empty, or an exclude set
//! that covers everything, is an error, as in Suricata.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::options::near;
use super::set::RangeSet;
use super::vars::Vars;

/// How deep brackets and variable expansions may nest before the input is
/// refused; Suricata stops at 64 too, and it keeps recursion bounded on
/// garbage input.
pub(crate) const MAX_DEPTH: usize = 64;

/// Which vars section a name is looked up in, and what is being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VarGroup {
    /// `vars.address-groups`; rule source and destination addresses.
    Address,
    /// `vars.port-groups`; rule source and destination ports.
    Port,
}

impl VarGroup {
    /// The key of this section in suricata.yaml.
    pub fn yaml_key(self) -> &'static str {
        match self {
            VarGroup::Address => "address-groups",
            VarGroup::Port => "port-groups",
        }
    }
}

impl fmt::Display for VarGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VarGroup::Address => "address",
            VarGroup::Port => "port",
        })
    }
}

/// Why an address or port specification could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Syntax or value error; `value` is the offending element (or the whole
    /// list when the error concerns the list as a whole).
    #[error("bad {group} \"{value}\": {why}")]
    Invalid {
        group: VarGroup,
        value: String,
        why: String,
    },
    /// `$name` is not defined in the matching vars section.
    #[error("undefined variable ${name} (not in vars.{})", group.yaml_key())]
    UndefinedVariable { group: VarGroup, name: String },
    /// Variables refer to each other in a loop; `cycle` reads `$A -> $B -> $A`.
    #[error("variable cycle: {cycle}")]
    VariableCycle { group: VarGroup, cycle: String },
}

/// One list element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) negated: bool,
    pub(crate) node: Node,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Leaf(String),
    Var(String),
    Group(Vec<Entry>),
}

/// Parses list syntax into a tree; the error is a reason for the whole text.
pub(crate) fn parse_list(text: &str) -> Result<Vec<Entry>, String> {
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    let entries = cursor.entries(0, false)?;
    Ok(entries)
}

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Takes bytes up to (not including) the next byte in `stop` or the end.
    fn take_until(&mut self, stop: &[u8]) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(|b| !stop.contains(&b)) {
            self.pos += 1;
        }
        // `stop` holds ASCII only, so both ends are char boundaries.
        self.text.get(start..self.pos).unwrap_or("")
    }

    fn entries(&mut self, depth: usize, closing: bool) -> Result<Vec<Entry>, String> {
        if depth > MAX_DEPTH {
            return Err(format!("lists nested deeper than {MAX_DEPTH} levels"));
        }
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            let mut negated = false;
            if self.peek() == Some(b'!') {
                self.pos += 1;
                negated = true;
                self.skip_ws();
                if self.peek() == Some(b'!') {
                    return Err("double negation \"!!\"".into());
                }
            }
            let node = match self.peek() {
                Some(b'[') => {
                    self.pos += 1;
                    let inner = self.entries(depth + 1, true)?;
                    Node::Group(inner)
                }
                Some(b'$') => {
                    self.pos += 1;
                    let name = self.take_until(b",[]! \t\r\n");
                    if name.is_empty() {
                        return Err("'$' without a variable name".into());
                    }
                    Node::Var(name.to_owned())
                }
                _ => {
                    let leaf = self.take_until(b",[]").trim().to_owned();
                    if leaf.is_empty() {
                        return Err(if negated {
                            "'!' without anything to negate".into()
                        } else {
                            "empty list element".into()
                        });
                    }
                    if self.peek() == Some(b'[') {
                        return Err(format!("unexpected '[' after \"{leaf}\""));
                    }
                    Node::Leaf(leaf)
                }
            };
            out.push(Entry { negated, node });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') if closing => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b']') => return Err("unmatched ']'".into()),
                None if closing => return Err("missing closing ']'".into()),
                None => return Ok(out),
                Some(_) => {
                    let rest = self.text.get(self.pos..).unwrap_or("");
                    let near: String = rest.chars().take(16).collect();
                    return Err(format!("unexpected \"{near}\" after list element"));
                }
            }
        }
    }
}

/// What the list elements denote: addresses or ports.
pub(crate) trait Domain {
    const GROUP: VarGroup;
    /// Parses one leaf such as `10.0.0.0/8` or `1024:`.
    fn leaf(text: &str) -> Result<RangeSet, String>;
    /// Suricata's step 0 of merging negations: where the include set has
    /// nothing but the exclude set has something, start from "everything".
    fn fill(include: &mut RangeSet, exclude: &RangeSet);
    /// Exclude sets that cover this much negate everything; Suricata refuses
    /// them outright (`!any`).
    fn everything_negated(exclude: &RangeSet) -> bool;
}

/// Resolves a list (with variables) to a set.
pub(crate) fn resolve<D: Domain>(text: &str, vars: &Vars) -> Result<RangeSet, SpecError> {
    let entries = parse_list(text).map_err(|why| SpecError::Invalid {
        group: D::GROUP,
        value: near(text),
        why,
    })?;
    let mut resolver = Resolver::<D> {
        vars,
        stack: Vec::new(),
        _domain: std::marker::PhantomData,
    };
    resolver.eval(text, &entries, 0)
}

struct Resolver<'v, D> {
    vars: &'v Vars,
    /// Variables being expanded, outermost first.
    stack: Vec<String>,
    _domain: std::marker::PhantomData<D>,
}

impl<D: Domain> Resolver<'_, D> {
    fn invalid(&self, value: &str, why: impl Into<String>) -> SpecError {
        let mut why = why.into();
        if let Some(var) = self.stack.last() {
            why.push_str(&format!(" (in ${var})"));
        }
        SpecError::Invalid {
            group: D::GROUP,
            value: near(value),
            why,
        }
    }

    fn eval(&mut self, text: &str, entries: &[Entry], depth: usize) -> Result<RangeSet, SpecError> {
        let mut include = RangeSet::new();
        let mut exclude = RangeSet::new();
        self.collect(entries, &mut include, &mut exclude, depth)?;
        if D::everything_negated(&exclude) {
            return Err(self.invalid(text, "negation excludes everything (e.g. !any)"));
        }
        D::fill(&mut include, &exclude);
        let result = include.subtract(&exclude);
        if result.is_empty() {
            let noun = match D::GROUP {
                VarGroup::Address => "addresses",
                VarGroup::Port => "ports",
            };
            return Err(self.invalid(text, format!("no {noun} left after applying negations")));
        }
        Ok(result)
    }

    fn collect(
        &mut self,
        entries: &[Entry],
        include: &mut RangeSet,
        exclude: &mut RangeSet,
        depth: usize,
    ) -> Result<(), SpecError> {
        if depth > MAX_DEPTH {
            let at = self
                .stack
                .last()
                .map_or_else(|| "[...]".to_owned(), |v| format!("${v}"));
            return Err(self.invalid(
                &at,
                format!("lists and variables nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        for entry in entries {
            match &entry.node {
                Node::Leaf(text) => {
                    let set = D::leaf(text).map_err(|why| self.invalid(text, why))?;
                    let target = if entry.negated {
                        &mut *exclude
                    } else {
                        &mut *include
                    };
                    *target = target.union(&set);
                }
                Node::Group(inner) if entry.negated => {
                    let set = self.eval("[...]", inner, depth + 1)?;
                    *exclude = exclude.union(&set);
                }
                Node::Group(inner) => self.collect(inner, include, exclude, depth + 1)?,
                Node::Var(name) => self.expand(name, entry.negated, include, exclude, depth)?,
            }
        }
        Ok(())
    }

    fn expand(
        &mut self,
        name: &str,
        negated: bool,
        include: &mut RangeSet,
        exclude: &mut RangeSet,
        depth: usize,
    ) -> Result<(), SpecError> {
        if let Some(first) = self.stack.iter().position(|n| n == name) {
            let mut cycle: Vec<String> = self.stack[first..]
                .iter()
                .map(|n| format!("${n}"))
                .collect();
            cycle.push(format!("${name}"));
            return Err(SpecError::VariableCycle {
                group: D::GROUP,
                cycle: cycle.join(" -> "),
            });
        }
        let value = self
            .vars
            .get(D::GROUP, name)
            .ok_or_else(|| SpecError::UndefinedVariable {
                group: D::GROUP,
                name: name.to_owned(),
            })?;
        self.stack.push(name.to_owned());
        let result = match parse_list(value) {
            Err(why) => Err(self.invalid(value, why)),
            Ok(entries) if negated => self.eval(value, &entries, depth + 1).map(|set| {
                *exclude = exclude.union(&set);
            }),
            Ok(entries) => self.collect(&entries, include, exclude, depth + 1),
        };
        self.stack.pop();
        result
    }
}
