//! The shape of the service's modules, checked from its source: every path that
//! names a module of the crate (`crate::x`, `use crate::{x, y::z}`) makes an edge
//! between top-level modules. The graph must have no cycle, `decode` must be a
//! leaf, only the config assembly and the run may name `config`, and `app.rs` names
//! no particular source, step or sink.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for the crate root
/// and the binaries, which sit above every module).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?.to_string();
    match first.as_str() {
        "lib.rs" | "main.rs" | "bin" => None,
        name => Some(name.trim_end_matches(".rs").to_string()),
    }
}

/// The top-level modules a piece of code names through `crate::`, including the
/// members of `crate::{…}` groups.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(found) = code[at..].find("crate::") {
        let start = at + found + "crate::".len();
        at = start;
        // `synaptic_telemetry::crate::` does not occur; a preceding identifier
        // character means another word (`foo_crate::`).
        if start > "crate::".len() {
            let before = bytes[start - "crate::".len() - 1];
            if before.is_ascii_alphanumeric() || before == b'_' {
                continue;
            }
        }
        if code[start..].starts_with('{') {
            let end = code[start..].find('}').map_or(code.len(), |e| start + e);
            for member in code[start + 1..end].split(',') {
                let name: String =
                    member.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String =
                code[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Top-level module → the top-level modules it names (itself excluded).
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = top_module(&src, &file) else { continue };
        let code = std::fs::read_to_string(&file).expect("read a source file");
        let edges = graph.entry(module.clone()).or_default();
        for named in named_modules(&code) {
            if named != module {
                edges.insert(named);
            }
        }
    }
    graph
}

/// A cycle through `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // Depth-first search with an explicit stack: white (unseen), grey (on the
    // path), black (done).
    let mut colour: BTreeMap<&str, u8> = graph.keys().map(|k| (k.as_str(), 0)).collect();
    for root in graph.keys() {
        if colour[root.as_str()] != 0 {
            continue;
        }
        let mut path: Vec<(&str, Vec<&str>)> =
            vec![(root.as_str(), graph[root].iter().map(String::as_str).collect())];
        colour.insert(root, 1);
        while let Some((node, pending)) = path.last_mut() {
            let node = *node;
            match pending.pop() {
                Some(next) => match colour.get(next).copied() {
                    Some(1) => {
                        let from = path.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[from..].iter().map(|(n, _)| n.to_string()).collect();
                        cycle.push(next.to_string());
                        return Some(cycle);
                    }
                    Some(0) => {
                        colour.insert(next, 1);
                        path.push((next, graph[next].iter().map(String::as_str).collect()));
                    }
                    _ => {}
                },
                None => {
                    colour.insert(node, 2);
                    path.pop();
                }
            }
        }
    }
    None
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let graph = module_graph();
    assert!(graph.len() > 10, "the graph was read: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle between top-level modules: {}\n{graph:#?}", cycle.join(" → "));
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let edges = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), edges(&["b"]));
    graph.insert("b".to_string(), edges(&["c"]));
    graph.insert("c".to_string(), edges(&["a"]));
    graph.insert("d".to_string(), edges(&["a"]));
    assert_eq!(find_cycle(&graph).map(|c| c.len()), Some(4), "a → b → c → a");
    graph.insert("c".to_string(), edges(&[]));
    assert_eq!(find_cycle(&graph), None);
    assert_eq!(
        named_modules("use crate::{a::B, c};\nlet x = crate::d::e(); my_crate::f();"),
        ["a", "c", "d"].iter().map(|s| s.to_string()).collect()
    );
}

#[test]
fn decode_is_a_leaf_and_only_the_assembly_names_config() {
    let graph = module_graph();
    assert_eq!(graph.get("decode"), Some(&BTreeSet::new()), "decode imports nothing from the crate");
    let naming_config: Vec<&String> =
        graph.iter().filter(|(m, edges)| edges.contains("config") && *m != "app").map(|(m, _)| m).collect();
    assert!(naming_config.is_empty(), "only app.rs runs the assembled config: {naming_config:?}");
}

#[test]
fn the_app_names_no_particular_component() {
    let graph = module_graph();
    let app = graph.get("app").expect("app.rs");
    let components = ["source", "sink", "step", "plugin", "alert", "metrics", "pipeline", "scrub"];
    let named: Vec<&&str> = components.iter().filter(|c| app.contains(**c)).collect();
    assert!(named.is_empty(), "app.rs names {named:?}");
}
