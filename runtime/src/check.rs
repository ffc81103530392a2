//! The load-time check: everything that can refuse a module before any of its
//! code runs, in the order of DESIGN.md.
//!
//! 1. size limit;
//! 2. parse (no compile): component or not, top-level imports and exports,
//!    the `sandgate-manifest` section;
//! 3. version gates (major on every `sandgate:pattern` name, minor on imports);
//! 4. import allow-list.
//!
//! Steps 1–4 are [`scan`] and [`gate`]. Step 5 (the linker) and step 6
//! (export types against a reference component built from the engine's own
//! WIT) run in [`Engine::load`](crate::Engine::load) with the helpers here.

use wasmparser::{Encoding, Parser, Payload};
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::Component;

use crate::config::Limits;
use crate::error::{ItemKind, LoadError};
use crate::version::{InterfaceName, InterfaceVersion, PACKAGE};

/// Name of the custom section that carries a module's JSON manifest.
pub const MANIFEST_SECTION: &str = "sandgate-manifest";

/// The interface every IPS module exports and the engine calls.
pub(crate) const INSPECTOR: &str = "inspector";

/// The interface every AV module exports and the engine calls (1.1.0).
pub(crate) const SCANNER: &str = "scanner";

/// The version that added [`SCANNER`].
pub const SCANNER_SINCE: InterfaceVersion = InterfaceVersion::new(1, 1, 0);

/// The interface flat IPS modules export (1.2.0): flat batch descriptors
/// plus application-layer buffers.
pub(crate) const FLAT_INSPECTOR: &str = "flat-inspector";

/// The version that added [`FLAT_INSPECTOR`].
pub const FLAT_INSPECTOR_SINCE: InterfaceVersion = InterfaceVersion::new(1, 2, 0);

/// Which engine-called interface a module exports; it decides what the
/// module is and how the engine runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Exports `inspector`: an IPS module, run per packet batch.
    Inspector,
    /// Exports `scanner` (and no `inspector`): an AV module, run per file or
    /// stream payload.
    Scanner,
    /// Exports `flat-inspector` (1.2.0): an IPS module run on flat batches
    /// with application-layer buffers. Preferred over `inspector` when a
    /// module has both and the engine offers 1.2.
    FlatInspector,
}

impl Role {
    /// The interface name (`inspector`, `scanner`).
    pub fn interface(self) -> &'static str {
        match self {
            Role::Inspector => INSPECTOR,
            Role::Scanner => SCANNER,
            Role::FlatInspector => FLAT_INSPECTOR,
        }
    }
}

/// What a component declares at its top level, read without compiling it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Top-level import names, e.g. `sandgate:pattern/log@1.0.0`.
    pub imports: Vec<String>,
    /// Top-level export names, e.g. `sandgate:pattern/inspector@1.0.0`.
    pub exports: Vec<String>,
    /// The raw bytes of the `sandgate-manifest` custom section, if any.
    pub manifest: Option<Vec<u8>>,
}

/// Steps 1 and 2: size, then a parse of the top level without compiling.
pub fn scan(module: &str, bytes: &[u8], limits: &Limits) -> Result<Inventory, LoadError> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > limits.max_module_bytes {
        return Err(LoadError::TooLarge {
            module: module.to_string(),
            size,
            max: limits.max_module_bytes,
        });
    }
    let malformed = |detail: String| LoadError::Malformed {
        module: module.to_string(),
        detail,
    };
    let mut inv = Inventory::default();
    // Nesting depth: 1 while reading the outer component's own sections.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| malformed(e.to_string()))?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Module {
                    return Err(LoadError::CoreModule {
                        module: module.to_string(),
                    });
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| malformed(e.to_string()))?;
                    inv.imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| malformed(e.to_string()))?;
                    inv.exports.push(export.name.name.to_string());
                }
            }
            Payload::CustomSection(section) if depth == 1 && section.name() == MANIFEST_SECTION => {
                if inv.manifest.is_some() {
                    return Err(malformed(format!(
                        "more than one `{MANIFEST_SECTION}` section"
                    )));
                }
                inv.manifest = Some(section.data().to_vec());
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(malformed("unexpected end of input".into()));
    }
    Ok(inv)
}

/// Steps 3 and 4: version gates on every `sandgate:pattern` name, then the
/// import allow-list. Returns the role the module takes (its `inspector`
/// export, else its `scanner` export) and that export's version (the
/// interface version the module was built against), if it has either.
///
/// A `scanner` export needs an engine offering [`SCANNER_SINCE`] or newer;
/// a 1.0-only engine refuses an AV module here, naming the export.
///
/// Policy: an import at a newer minor than the engine offers is refused even
/// when it only uses functions the engine has (wit-component keeps only used
/// imports, so such a module would link). A module built for 1.2 is shipped
/// to 1.2 engines; older engines get their own variant. Exports may carry a
/// newer minor: the engine calls only what its own version defines.
pub fn gate(
    module: &str,
    inv: &Inventory,
    offered: &[InterfaceVersion],
) -> Result<Option<(Role, InterfaceVersion)>, LoadError> {
    let names = inv
        .imports
        .iter()
        .map(|n| (ItemKind::Import, n))
        .chain(inv.exports.iter().map(|n| (ItemKind::Export, n)));
    let mut inspector_version = None;
    let mut scanner = None;
    let mut flat = None;
    // A newer-minor import is reported after the loop, so an AV module on a
    // 1.0-only engine is refused for what it is (its `scanner` export), not
    // for the `types@1.1.0` import that comes with it.
    let mut newer_import = None;
    for (direction, name) in names {
        let Some(parsed) = InterfaceName::parse(name).filter(InterfaceName::is_sandgate) else {
            continue;
        };
        let wanted = match &parsed.version {
            Some(Ok(v)) => *v,
            _ => {
                return Err(LoadError::Unversioned {
                    module: module.to_string(),
                    direction,
                    name: name.clone(),
                    offered: offered.to_vec(),
                })
            }
        };
        if !offered.iter().any(|o| o.major == wanted.major) {
            return Err(LoadError::MajorVersion {
                module: module.to_string(),
                direction,
                name: name.clone(),
                wanted,
                offered: offered.to_vec(),
            });
        }
        match direction {
            ItemKind::Import if !offered.iter().any(|o| o.satisfies(wanted)) => {
                newer_import.get_or_insert(LoadError::MinorVersion {
                    module: module.to_string(),
                    import: name.clone(),
                    wanted,
                    offered: offered.to_vec(),
                });
            }
            ItemKind::Export if parsed.interface == INSPECTOR => {
                inspector_version = inspector_version.max(Some(wanted));
            }
            ItemKind::Export
                if parsed.interface == SCANNER
                    && scanner.as_ref().is_none_or(|(v, _)| wanted > *v) =>
            {
                scanner = Some((wanted, name.clone()));
            }
            ItemKind::Export
                if parsed.interface == FLAT_INSPECTOR
                    && flat.as_ref().is_none_or(|(v, _)| wanted > *v) =>
            {
                flat = Some((wanted, name.clone()));
            }
            _ => {}
        }
    }
    let role = role(module, inspector_version, flat, scanner, offered)?;
    if let Some(err) = newer_import {
        return Err(err);
    }
    for name in &inv.imports {
        if !InterfaceName::parse(name).is_some_and(|n| n.is_sandgate()) {
            return Err(LoadError::ForbiddenImport {
                module: module.to_string(),
                import: name.clone(),
                offered: offered.to_vec(),
            });
        }
    }
    Ok(role)
}

/// The role from the engine-called exports the gate saw: `flat-inspector`
/// when the engine offers 1.2, else `inspector`, else `scanner`. A
/// `flat-inspector` (without `inspector`) on an engine without 1.2, or a
/// `scanner` on one without 1.1, is refused here, naming the export.
fn role(
    module: &str,
    inspector_version: Option<InterfaceVersion>,
    flat: Option<(InterfaceVersion, String)>,
    scanner: Option<(InterfaceVersion, String)>,
    offered: &[InterfaceVersion],
) -> Result<Option<(Role, InterfaceVersion)>, LoadError> {
    let offers = |since: InterfaceVersion| {
        offered
            .iter()
            .any(|o| o.major == since.major && *o >= since)
    };
    let newer = |name: String, since: InterfaceVersion| LoadError::NewerExport {
        module: module.to_string(),
        export: name,
        since,
        offered: offered.to_vec(),
    };
    match (flat, inspector_version) {
        (Some((v, _)), _) if offers(FLAT_INSPECTOR_SINCE) => {
            return Ok(Some((Role::FlatInspector, v)))
        }
        (_, Some(v)) => return Ok(Some((Role::Inspector, v))),
        (Some((_, name)), None) => return Err(newer(name, FLAT_INSPECTOR_SINCE)),
        (None, None) => {}
    }
    match scanner {
        None => Ok(None),
        Some((_, name)) if !offers(SCANNER_SINCE) => Err(newer(name, SCANNER_SINCE)),
        Some((v, _)) => Ok(Some((Role::Scanner, v))),
    }
}

/// The engine's own view of the interface, taken from a component built from
/// its WIT: the function types it provides and the ones it calls.
pub(crate) struct Reference {
    /// Host functions per imported interface (`sandgate:pattern/log`).
    pub imports: Vec<(String, Vec<(String, ComponentFunc)>)>,
    /// Functions of the inspector export the engine calls.
    pub inspector: Vec<(String, ComponentFunc)>,
    /// Functions (and resource methods) of the scanner export it calls.
    pub scanner: Vec<(String, ComponentFunc)>,
    /// Functions of the flat-inspector export it calls (1.2.0).
    pub flat: Vec<(String, ComponentFunc)>,
}

impl Reference {
    /// Reads the function types out of the reference components: `ips`
    /// built from world `ips-module`, `av` from world `av-module`, `flat`
    /// from world `flat-ips-module`.
    pub fn from_components(
        engine: &wasmtime::Engine,
        ips: &Component,
        av: &Component,
        flat: &Component,
    ) -> Result<Self, String> {
        let ty = ips.component_type();
        let mut imports = Vec::new();
        for (name, item) in ty.imports(engine) {
            if let (Some(parsed), ComponentItem::ComponentInstance(inst)) =
                (InterfaceName::parse(name), &item.ty)
            {
                imports.push((parsed.unversioned(), functions(engine, inst)));
            }
        }
        let exported = |component: &Component, interface: &str| {
            component
                .component_type()
                .exports(engine)
                .find_map(|(name, item)| {
                    let parsed = InterfaceName::parse(name)?;
                    match (&item.ty, parsed.interface == interface) {
                        (ComponentItem::ComponentInstance(inst), true) => {
                            Some(functions(engine, inst))
                        }
                        _ => None,
                    }
                })
                .ok_or_else(|| format!("reference component exports no `{PACKAGE}/{interface}`"))
        };
        Ok(Reference {
            imports,
            inspector: exported(ips, INSPECTOR)?,
            scanner: exported(av, SCANNER)?,
            flat: exported(flat, FLAT_INSPECTOR)?,
        })
    }

    fn calls(&self, role: Role) -> &[(String, ComponentFunc)] {
        match role {
            Role::Inspector => &self.inspector,
            Role::Scanner => &self.scanner,
            Role::FlatInspector => &self.flat,
        }
    }
}

fn functions(
    engine: &wasmtime::Engine,
    inst: &wasmtime::component::types::ComponentInstance,
) -> Vec<(String, ComponentFunc)> {
    inst.exports(engine)
        .filter_map(|(name, item)| match item.ty {
            ComponentItem::ComponentFunc(f) => Some((name.to_string(), f)),
            _ => None,
        })
        .collect()
}

/// Step 5: turns a linker refusal into an error naming the import and what
/// this engine lacks; falls back to wasmtime's message when the diff finds
/// nothing.
pub(crate) fn link_error(
    module: &str,
    err: &wasmtime::Error,
    engine: &wasmtime::Engine,
    component: &Component,
    reference: &Reference,
    offered: &[InterfaceVersion],
) -> LoadError {
    let ty = component.component_type();
    let wasmtime_msg = format!("{err:#}");
    let mut mentioned = None;
    for (name, item) in ty.imports(engine) {
        if mentioned.is_none() && wasmtime_msg.contains(&format!("`{name}`")) {
            mentioned = Some(name.to_string());
        }
        let (Some(parsed), ComponentItem::ComponentInstance(inst)) =
            (InterfaceName::parse(name), &item.ty)
        else {
            continue;
        };
        let host = reference
            .imports
            .iter()
            .find(|(iface, _)| *iface == parsed.unversioned())
            .map(|(_, funcs)| funcs.as_slice())
            .unwrap_or(&[]);
        for (fname, wanted) in functions(engine, inst) {
            let detail = match host.iter().find(|(h, _)| *h == fname) {
                None => Some(format!(
                    "it needs function `{fname}`, which this engine does not provide"
                )),
                Some((_, provided)) => func_diff(&fname, provided, &wanted)
                    .map(|d| format!("{d} (as imported; the engine provides its own type)")),
            };
            if let Some(detail) = detail {
                return LoadError::Link {
                    module: module.to_string(),
                    import: name.to_string(),
                    wanted: parsed.version.clone().and_then(Result::ok),
                    offered: offered.to_vec(),
                    detail,
                };
            }
        }
    }
    let import = mentioned.unwrap_or_else(|| "(unknown)".to_string());
    let wanted = InterfaceName::parse(&import).and_then(|n| n.version.and_then(Result::ok));
    LoadError::Link {
        module: module.to_string(),
        import,
        wanted,
        offered: offered.to_vec(),
        detail: wasmtime_msg,
    }
}

/// Step 6: every `sandgate:pattern/inspector` (or, for an AV module,
/// `scanner`) export with the engine's major must have exactly the function
/// types the engine calls. `role` is what the gate found; `None` reports the
/// missing inspector.
pub(crate) fn check_exports(
    module: &str,
    engine: &wasmtime::Engine,
    component: &Component,
    reference: &Reference,
    offered: &[InterfaceVersion],
    role: Option<Role>,
) -> Result<(), LoadError> {
    let role = role.unwrap_or(Role::Inspector);
    let wanted_iface = role.interface();
    let ty = component.component_type();
    let mut found = false;
    for (name, item) in ty.exports(engine) {
        let Some(parsed) = InterfaceName::parse(name).filter(InterfaceName::is_sandgate) else {
            continue;
        };
        if parsed.interface != wanted_iface {
            continue;
        }
        found = true;
        let wrong = |detail: String| LoadError::ExportType {
            module: module.to_string(),
            export: name.to_string(),
            offered: offered.to_vec(),
            detail,
        };
        let ComponentItem::ComponentInstance(inst) = &item.ty else {
            return Err(wrong(format!(
                "it is a {}, the engine expects an interface instance",
                item_kind(&item.ty)
            )));
        };
        let have = functions(engine, inst);
        for (fname, want) in reference.calls(role) {
            let Some((_, got)) = have.iter().find(|(n, _)| n == fname) else {
                return Err(wrong(format!("it has no function `{fname}`")));
            };
            if let Some(d) = func_diff(fname, want, got) {
                return Err(wrong(d));
            }
        }
    }
    if !found {
        return Err(LoadError::MissingExport {
            module: module.to_string(),
            export: format!("{PACKAGE}/{wanted_iface}"),
            offered: offered.to_vec(),
        });
    }
    Ok(())
}

fn item_kind(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) => "function",
        ComponentItem::CoreFunc(_) => "core function",
        ComponentItem::Module(_) => "core module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}

/// Describes how `got` differs from `want`, or `None` when they are equal.
fn func_diff(fname: &str, want: &ComponentFunc, got: &ComponentFunc) -> Option<String> {
    if want.async_() != got.async_() {
        return Some(format!("function `{fname}` differs in async-ness"));
    }
    let wp: Vec<(&str, Type)> = want.params().collect();
    let gp: Vec<(&str, Type)> = got.params().collect();
    if wp.len() != gp.len() {
        return Some(format!(
            "function `{fname}` takes {} parameter(s), the engine passes {}",
            gp.len(),
            wp.len()
        ));
    }
    for ((wname, wty), (_, gty)) in wp.iter().zip(&gp) {
        if !same(wty, gty) {
            return Some(format!(
                "function `{fname}` parameter `{wname}` is {}, the engine passes {}",
                show(gty, 2),
                show(wty, 2)
            ));
        }
    }
    let wr: Vec<Type> = want.results().collect();
    let gr: Vec<Type> = got.results().collect();
    if wr.len() != gr.len() || wr.iter().zip(&gr).any(|(w, g)| !same(w, g)) {
        let list = |r: &[Type]| match r {
            [] => "nothing".to_string(),
            r => r.iter().map(|t| show(t, 2)).collect::<Vec<_>>().join(", "),
        };
        return Some(format!(
            "function `{fname}` returns {}, the engine expects {}",
            list(&gr),
            list(&wr)
        ));
    }
    None
}

/// Type equality for the export check. A resource a module defines has its
/// own identity in every component, so handles compare by kind (own/borrow)
/// only; the function names (`[method]scan.feed`) pin the resource.
fn same(want: &Type, got: &Type) -> bool {
    match (want, got) {
        (Type::Own(_), Type::Own(_)) | (Type::Borrow(_), Type::Borrow(_)) => true,
        _ => want == got,
    }
}

/// The kind of a type in WIT words.
fn desc(ty: &Type) -> &'static str {
    match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        Type::List(_) => "list",
        Type::Map(_) => "map",
        Type::Record(_) => "record",
        Type::Tuple(_) => "tuple",
        Type::Variant(_) => "variant",
        Type::Enum(_) => "enum",
        Type::Option(_) => "option",
        Type::Result(_) => "result",
        Type::Flags(_) => "flags",
        Type::Own(_) => "own",
        Type::Borrow(_) => "borrow",
        Type::Future(_) => "future",
        Type::Stream(_) => "stream",
        Type::ErrorContext => "error-context",
        Type::FixedLengthList(_) => "fixed-length list",
    }
}

/// WIT-like rendering of a type, nested at most `depth` levels.
fn show(ty: &Type, depth: u32) -> String {
    let inner = |t: &Type| show(t, depth.saturating_sub(1));
    if depth == 0 {
        return desc(ty).to_string();
    }
    match ty {
        Type::List(l) => format!("list<{}>", inner(&l.ty())),
        Type::Option(o) => format!("option<{}>", inner(&o.ty())),
        Type::Result(r) => format!(
            "result<{}, {}>",
            r.ok().map_or("_".into(), |t| inner(&t)),
            r.err().map_or("_".into(), |t| inner(&t))
        ),
        Type::Record(r) => {
            let fields: Vec<String> = r
                .fields()
                .map(|f| format!("{}: {}", f.name, inner(&f.ty)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(t) => {
            let types: Vec<String> = t.types().map(|t| inner(&t)).collect();
            format!("tuple<{}>", types.join(", "))
        }
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        other => desc(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(imports: &[&str], exports: &[&str]) -> Inventory {
        Inventory {
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
            manifest: None,
        }
    }

    #[test]
    fn gates_in_order_major_before_allow_list() {
        let offered = [InterfaceVersion::new(1, 0, 0)];
        let err = gate(
            "m",
            &inv(
                &["wasi:cli/environment@0.2.0", "sandgate:pattern/log@2.0.0"],
                &[],
            ),
            &offered,
        )
        .unwrap_err();
        assert!(matches!(err, LoadError::MajorVersion { .. }), "{err}");
    }

    #[test]
    fn newer_export_minor_is_fine_newer_import_minor_is_not() {
        let offered = [InterfaceVersion::new(1, 0, 0)];
        let v = gate(
            "m",
            &inv(&[], &["sandgate:pattern/inspector@1.3.0"]),
            &offered,
        )
        .unwrap();
        assert_eq!(v, Some((Role::Inspector, InterfaceVersion::new(1, 3, 0))));
        let err = gate("m", &inv(&["sandgate:pattern/log@1.3.0"], &[]), &offered).unwrap_err();
        assert!(matches!(err, LoadError::MinorVersion { .. }), "{err}");
    }

    #[test]
    fn a_scanner_needs_an_engine_offering_1_1() {
        let av = inv(&[], &["sandgate:pattern/scanner@1.1.0"]);
        let err = gate("av", &av, &[InterfaceVersion::new(1, 0, 0)]).unwrap_err();
        assert!(matches!(err, LoadError::NewerExport { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("sandgate:pattern/scanner@1.1.0")
                && msg.contains("added in 1.1.0")
                && msg.contains("engine offers 1.0.0"),
            "{msg}"
        );
        let offered = [
            InterfaceVersion::new(1, 0, 0),
            InterfaceVersion::new(1, 1, 0),
        ];
        assert_eq!(
            gate("av", &av, &offered).unwrap(),
            Some((Role::Scanner, InterfaceVersion::new(1, 1, 0)))
        );
    }

    #[test]
    fn unversioned_and_plain_names() {
        let offered = [InterfaceVersion::new(1, 0, 0)];
        let err = gate("m", &inv(&["sandgate:pattern/log"], &[]), &offered).unwrap_err();
        assert!(matches!(err, LoadError::Unversioned { .. }), "{err}");
        let err = gate("m", &inv(&["run"], &[]), &offered).unwrap_err();
        assert!(matches!(err, LoadError::ForbiddenImport { .. }), "{err}");
    }
}
