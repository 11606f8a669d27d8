//! The layout the code is held to (docs/architecture.md, "Module map"): domain
//! files know no HTTP, and no source file imports a file that imports it back.
//!
//! Both read the source tree, not the compiled crate, so a new file or a new
//! `use` line is checked the moment it is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files whose job is HTTP: an area's edge, and the edge modules themselves.
fn is_edge(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    matches!(name, "routes.rs" | "ping_routes.rs" | "api_routes.rs")
        || [
            "error.rs",
            "state.rs",
            "openapi.rs",
            "app.rs",
            "background.rs",
            "main.rs",
            "lib.rs",
        ]
        .contains(&rel)
        || ["http/", "mcp/", "dashboard/"]
            .iter()
            .any(|dir| rel.starts_with(dir))
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, by its path relative to `src/`.
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy();
                let text = std::fs::read_to_string(&path).expect("source is UTF-8");
                out.insert(rel.replace('\\', "/"), text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&src_dir(), &src_dir(), &mut out);
    out
}

/// The code of a file without its `#[cfg(test)]` module (test-only imports make
/// no production dependency) and without `//` comments.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_domain_file_mentions_axum_the_app_state_or_the_api_error() {
    let mut offenders = Vec::new();
    for (rel, text) in sources() {
        if is_edge(&rel) {
            continue;
        }
        let code = code_of(&text);
        for word in ["axum", "AppState", "ApiError"] {
            if code.contains(word) {
                offenders.push(format!("{rel} mentions {word}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "domain files must not know HTTP (docs/architecture.md):\n{}",
        offenders.join("\n")
    );
}

/// The module path a file defines: `jobs/mod.rs` → `jobs`, `jobs/engine.rs` →
/// `jobs::engine`, `lib.rs` → the crate root.
fn module_of(rel: &str) -> Vec<String> {
    let stem = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// Every `crate::…` and `super::…` path a file's code names, expanded over
/// `use a::{b, c}` groups (one level deep, which is all this crate writes).
fn paths_named(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let flat = code.replace('\n', " ");
    let mut rest = flat.as_str();
    while let Some(i) = rest.find("use ") {
        let after = &rest[i + 4..];
        let Some(end) = after.find(';') else { break };
        let body = after[..end].trim();
        if let Some((head, group)) = body.split_once('{') {
            let head = head.trim().trim_end_matches("::");
            for item in group.trim_end_matches('}').split(',') {
                let item = item.split(" as ").next().unwrap_or("").trim();
                let full = if item.is_empty() || item == "self" {
                    head.to_string()
                } else {
                    format!("{head}::{item}")
                };
                out.push(split_path(&full));
            }
        } else {
            out.push(split_path(body.split(" as ").next().unwrap_or(body)));
        }
        rest = &after[end..];
    }
    // Paths written inline (`crate::jobs::Engine::new(..)`).
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = flat[from..].find(start) {
            let at = from + i;
            let path: String = flat[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(split_path(&path));
            from = at + start.len();
        }
    }
    out
}

fn split_path(path: &str) -> Vec<String> {
    path.split("::")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The file-level import graph: file → files it names.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let by_module: BTreeMap<Vec<String>, String> = files
        .keys()
        .map(|rel| (module_of(rel), rel.clone()))
        .collect();
    let resolve = |mut path: Vec<String>| -> Option<String> {
        while !path.is_empty() {
            if let Some(rel) = by_module.get(&path) {
                return Some(rel.clone());
            }
            path.pop();
        }
        None
    };
    let mut graph = BTreeMap::new();
    for (rel, text) in &files {
        let module = module_of(rel);
        let is_dir_module = rel.ends_with("mod.rs") || module.is_empty();
        let mut targets = BTreeSet::new();
        for path in paths_named(&code_of(text)) {
            let target = match path.first().map(String::as_str) {
                Some("crate") => path[1..].to_vec(),
                Some("super") => {
                    let mut base = if is_dir_module {
                        module.clone()
                    } else {
                        module[..module.len().saturating_sub(1)].to_vec()
                    };
                    let mut rest = &path[..];
                    while rest.first().is_some_and(|s| s == "super") {
                        rest = &rest[1..];
                        if rest.first().is_some_and(|s| s == "super") {
                            base.pop();
                        }
                    }
                    base.extend(rest.iter().cloned());
                    base
                }
                _ => continue,
            };
            if let Some(to) = resolve(target) {
                if &to != rel && !module_of(&to).is_empty() {
                    targets.insert(to);
                }
            }
        }
        graph.insert(rel.clone(), targets);
    }
    graph
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn no_source_file_imports_a_file_that_imports_it_back() {
    let found = cycles(&import_graph());
    assert!(
        found.is_empty(),
        "module cycles (docs/architecture.md, Module map):\n{}",
        found
            .iter()
            .map(|c| c.join(" -> "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_cycle_check_finds_a_cycle_when_there_is_one() {
    // The check itself must be able to fail: two files naming each other.
    let mut graph = import_graph();
    graph
        .entry("jobs/engine.rs".into())
        .or_default()
        .insert("monitor/ping.rs".into());
    graph
        .entry("monitor/ping.rs".into())
        .or_default()
        .insert("jobs/engine.rs".into());
    assert!(!cycles(&graph).is_empty());
    let code = code_of("use crate::jobs::{engine::Engine, Job};\nfn f() { super::x::y(); }\n");
    let named = paths_named(&code);
    assert!(named.contains(&split_path("crate::jobs::engine::Engine")));
    assert!(named.contains(&split_path("crate::jobs::Job")));
    assert!(named.contains(&split_path("super::x::y")));
}
