//! The layer rules of DESIGN.md, checked on the source: codecs import no node, nodes do not
//! import the lab, the simulated UE imports no other node, and the top-level modules import
//! each other without a cycle.
//!
//! What counts as an import: every `crate::NAME` path in the library's code (`use crate::…`,
//! `use crate::{a, b::c}`, `crate::a::f()` in an expression, `$crate::…` in a macro), by the
//! top-level module it names. Not counted: comment and doc lines (intra-doc links are not
//! dependencies), `#[cfg(test)]` modules (inline ones and `#[cfg(test)] mod x;` files), and
//! `super::` paths (they stay inside one top-level module in this tree). The binary
//! (`src/main.rs`, `src/cli/`) sits above everything and is not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Wire formats, their state machines and the plain data below the nodes.
const CODECS: &[&str] = &[
    "sip",
    "diameter",
    "msrp",
    "cpim",
    "sdp",
    "rcs",
    "auth",
    "trace",
    "profile",
    "store",
    "config",
    "http_server",
    "http_client",
    "status",
    "sms",
    "presence",
    "conf",
    "fthttp",
    "smpp",
];
/// One module per IMS node, and the lab that starts them.
const NODES: &[&str] = &[
    "cscf", "focus", "hss", "im", "ps", "webrsf", "rtcweb", "content", "ue", "ums", "lab",
];

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The directory holding the child modules of the module in `file`.
fn child_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new(""));
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("mod") | Some("lib") | Some("main") => parent.to_path_buf(),
        Some(stem) => parent.join(stem),
        None => parent.to_path_buf(),
    }
}

/// `text` without comment lines and without `#[cfg(test)]` modules; the files of
/// `#[cfg(test)] mod x;` go to `test_files`.
fn code_of(file: &Path, text: &str, test_files: &mut BTreeSet<PathBuf>) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        if t.starts_with("#[cfg(test)]") {
            // The item it applies to: skip attribute lines after it.
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim_start().starts_with("#[") {
                j += 1;
            }
            let item = lines.get(j).map(|l| l.trim()).unwrap_or("");
            if let Some(name) = item
                .strip_prefix("mod ")
                .or_else(|| item.strip_prefix("pub mod "))
                .and_then(|r| r.strip_suffix(';'))
            {
                let dir = child_dir(file);
                test_files.insert(dir.join(format!("{name}.rs")));
                test_files.insert(dir.join(name).join("mod.rs"));
                i = j + 1;
                continue;
            }
            if item.ends_with('{') {
                // Skip to the brace that closes the item.
                let mut depth = 0i32;
                let mut k = j;
                while k < lines.len() {
                    depth += lines[k].matches('{').count() as i32;
                    depth -= lines[k].matches('}').count() as i32;
                    k += 1;
                    if depth <= 0 {
                        break;
                    }
                }
                i = k;
                continue;
            }
        }
        if !t.starts_with("//") {
            out.push_str(lines[i]);
            out.push('\n');
        }
        i += 1;
    }
    out
}

/// The top-level modules named by `crate::` paths in `code`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut refs = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        // `rcslab_crate::`, `my_crate::` are other names; `$crate::` counts.
        if start > 0 {
            let b = bytes[start - 1];
            if b.is_ascii_alphanumeric() || b == b'_' {
                continue;
            }
        }
        let rest = code[from..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::{c, d}}`: the first name of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        let name = ident(&group[i..]);
                        if !name.is_empty() {
                            refs.insert(name);
                        }
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                refs.insert(name);
            }
        }
    }
    refs
}

/// Top-level module -> the top-level modules its code names.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut texts = Vec::new();
    let mut test_files = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap_or(f);
        let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
        let first = parts.next().unwrap_or_default().to_string();
        let top = first.strip_suffix(".rs").unwrap_or(&first).to_string();
        if matches!(top.as_str(), "main" | "cli" | "lib") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let code = code_of(f, &text, &mut test_files);
        texts.push((f.clone(), top, code));
    }
    // `crate::name!` of a `#[macro_export]` macro counts as its module.
    let mut aliases: BTreeMap<String, String> = BTreeMap::new();
    for (_, top, code) in &texts {
        for part in code.split("#[macro_export]").skip(1) {
            if let Some(rest) = part.trim_start().strip_prefix("macro_rules!") {
                let name: String = rest
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                aliases.insert(name, top.clone());
            }
        }
    }
    // `crate::LabConfig` through a `pub use config::LabConfig;` of lib.rs counts as `config`.
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    for line in lib.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.trim_end_matches(';').split_once("::") else {
            continue;
        };
        for name in names.trim_matches(['{', '}']).split(',') {
            let name = name.rsplit("::").next().unwrap_or("").trim();
            aliases.insert(name.to_string(), module.to_string());
        }
    }
    let modules: BTreeSet<String> = texts.iter().map(|(_, top, _)| top.clone()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (f, top, code) in texts {
        if test_files.contains(&f) {
            continue;
        }
        let refs = graph.entry(top.clone()).or_default();
        for r in crate_refs(&code) {
            let r = aliases.get(&r).cloned().unwrap_or(r);
            assert!(
                modules.contains(&r),
                "{}: crate::{r} is no module",
                f.display()
            );
            if r != top {
                refs.insert(r);
            }
        }
    }
    graph
}

/// The edges `from -> to` of `graph` where `from` is in `froms` and `to` in `tos`.
fn edges(
    graph: &BTreeMap<String, BTreeSet<String>>,
    froms: &[&str],
    tos: &[&str],
) -> BTreeSet<String> {
    graph
        .iter()
        .filter(|(from, _)| froms.contains(&from.as_str()))
        .flat_map(|(from, to)| {
            to.iter()
                .filter(|t| tos.contains(&t.as_str()))
                .map(move |t| format!("{from} -> {t}"))
        })
        .collect()
}

#[test]
fn the_parser_reads_every_form_of_crate_path() {
    let code = "use crate::sip::{Message, Uri};\nuse crate::{diameter, msrp::{a, b}, lab::Lab};\nlet x = crate::hss::f();\n$crate::cli::up::X;\nuse my_crate::nope;\n";
    let got: Vec<String> = crate_refs(code).into_iter().collect();
    assert_eq!(got, ["cli", "diameter", "hss", "lab", "msrp", "sip"]);
    let mut t = BTreeSet::new();
    let text = "use crate::sip::X;\n/// [`crate::lab::Lab`]\n#[cfg(test)]\nmod tests {\n    use crate::lab::Lab;\n}\n#[cfg(test)]\nmod more;\nfn f() { crate::store::g() }\n";
    let code = code_of(Path::new("src/a/mod.rs"), text, &mut t);
    let got: Vec<String> = crate_refs(&code).into_iter().collect();
    assert_eq!(got, ["sip", "store"]);
    assert!(t.contains(Path::new("src/a/more.rs")));
}

#[test]
fn the_graph_sees_the_modules() {
    let g = import_graph();
    for m in ["sip", "diameter", "cscf", "hss", "lab", "ue", "trace"] {
        assert!(g.contains_key(m), "no module {m} in {g:?}");
    }
    // A known edge, so that an empty graph cannot pass the rules below.
    assert!(g["lab"].contains("hss"), "{:?}", g["lab"]);
}

/// Codec -> node imports that exist today, to be removed, and that must not grow (none left:
/// `config` defines `AuthLimits` and `ScscfSelection` itself, the nodes re-export them).
const KNOWN_CODEC_TO_NODE: &[&str] = &[];

/// Import edges that lie on a cycle today (each one's target reaches back to its source), to
/// be removed, and that must not grow. None left: `trace` (the recorder the transports write
/// into) imports no codec, its readers live in `trace_view` above the codecs. (The test passes
/// when edges are removed; take them out of this list then.)
const KNOWN_CYCLE_EDGES: &[&str] = &[];

/// Every module `from` reaches in `graph`.
fn reach(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(n) = todo.pop() {
        for m in graph.get(&n).into_iter().flatten() {
            if seen.insert(m.clone()) {
                todo.push(m.clone());
            }
        }
    }
    seen
}

#[test]
fn codecs_import_no_node() {
    let g = import_graph();
    let bad: Vec<String> = edges(&g, CODECS, NODES)
        .into_iter()
        .filter(|e| !KNOWN_CODEC_TO_NODE.contains(&e.as_str()))
        .collect();
    assert!(bad.is_empty(), "codec modules import nodes: {bad:?}");
}

#[test]
fn nodes_do_not_import_the_lab() {
    let g = import_graph();
    let bad = edges(&g, &NODES[..NODES.len() - 1], &["lab"]);
    assert!(bad.is_empty(), "nodes import the lab: {bad:?}");
}

#[test]
fn the_ue_imports_no_other_node() {
    let g = import_graph();
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != "ue").collect();
    let bad = edges(&g, &["ue"], &others);
    assert!(bad.is_empty(), "ue imports other nodes: {bad:?}");
}

#[test]
fn no_new_cycle_between_top_level_modules() {
    let g = import_graph();
    let mut on_cycle = BTreeSet::new();
    for (from, tos) in &g {
        for to in tos {
            if reach(&g, to).contains(from) {
                on_cycle.insert(format!("{from} -> {to}"));
            }
        }
    }
    let new: Vec<&String> = on_cycle
        .iter()
        .filter(|e| !KNOWN_CYCLE_EDGES.contains(&e.as_str()))
        .collect();
    assert!(
        new.is_empty(),
        "new import edges on a cycle: {new:?}\nall edges on cycles: {on_cycle:#?}"
    );
}

/// Files of the library allowed to return `Result<_, String>`, with how many times each may
/// write it: none any more (STYLE.md §7: typed error enums); keep it empty.
const KNOWN_STRING_ERRORS: &[(&str, usize)] = &[];

/// How many `Result<…, String>` types `code` writes (the error is the last top-level argument).
fn string_results(code: &str) -> usize {
    let mut n = 0;
    let mut from = 0;
    while let Some(at) = code[from..].find("Result<") {
        let start = from + at;
        from = start + "Result<".len();
        if start > 0 {
            let b = code.as_bytes()[start - 1];
            if b.is_ascii_alphanumeric() || b == b'_' {
                continue;
            }
        }
        let mut depth = 0;
        let mut last_arg = None;
        for (i, c) in code[from..].char_indices() {
            match c {
                '<' | '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                '>' if depth == 0 => {
                    if last_arg.is_some_and(|a| code[a..from + i].trim() == "String") {
                        n += 1;
                    }
                    break;
                }
                '>' => depth -= 1,
                ',' if depth == 0 => last_arg = Some(from + i + 1),
                ';' | '{' => break,
                _ => {}
            }
        }
    }
    n
}

#[test]
fn string_results_are_counted() {
    let code = "fn a() -> Result<Vec<u8>, String>\nfn b() -> Result<(), String>\nfn c() -> io::Result<String>\nfn d() -> Result<String, E>\nfn e() -> MyResult<u8, String>\n";
    assert_eq!(string_results(code), 2);
}

#[test]
fn no_new_string_errors() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut test_files = BTreeSet::new();
    let mut counts = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let code = code_of(f, &text, &mut test_files);
        let rel = f.strip_prefix(&src).unwrap_or(f);
        let rel = rel.to_string_lossy().replace('\\', "/");
        if rel == "main.rs" || rel.starts_with("cli/") {
            continue;
        }
        counts.insert(f.clone(), (rel, string_results(&code)));
    }
    let mut bad = Vec::new();
    for (f, (rel, n)) in &counts {
        if test_files.contains(f) || *n == 0 {
            continue;
        }
        let allowed = KNOWN_STRING_ERRORS
            .iter()
            .find(|(k, _)| *k == rel.as_str())
            .map_or(0, |(_, a)| *a);
        if *n > allowed {
            bad.push(format!("{rel}: {n} (allowed {allowed})"));
        }
    }
    assert!(
        bad.is_empty(),
        "new `Result<_, String>` in src/ (use a typed error enum): {bad:?}"
    );
}
