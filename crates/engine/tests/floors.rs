//! The engine's floors (docs/architecture.md) and the workspace's import graph, read
//! from the sources: a module imports only modules of its own floor or below, nothing
//! reaches a sibling through the crate root, and no crate has an import circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top. A new module goes on the lowest floor whose modules it needs.
const FLOORS: [(&str, &[&str]); 4] = [
    (
        "names and records",
        &[
            "time",
            "skip",
            "names",
            "record",
            "principal",
            "policy",
            "deployed",
            "catalogue",
        ],
    ),
    (
        "facts",
        &["termination", "provenance", "initiator", "armed", "scan"],
    ),
    ("counting", &["window"]),
    (
        "decisions",
        &[
            "containment",
            "incident",
            "lifecycle",
            "alert",
            "destination",
            "replay",
            "tune",
            "wave",
            "drill",
        ],
    ),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The code of a source file: comments dropped, the unit-test module cut off (tests may
/// reach anywhere).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            // `//` inside a string literal ("https://…") is not a comment.
            Some(i) if l[..i].matches('"').count() % 2 == 0 => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segment after every `crate::`, including each element of a
/// `crate::{a, b::c}` group.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // `tripwire_crate::` or `my_crate::` are not this crate.
        if code[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()).to_owned());
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()).to_owned());
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest).to_owned());
        }
    }
    out.remove("");
    out
}

/// Module name → the modules of the same crate it refers to, for a crate's `src/`.
/// The root (`lib.rs`/`main.rs`) is `""`; a reference to anything that is not a module
/// goes through the root.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(src);
    // A module in a folder (`store/mod.rs`, `store/calls.rs`) counts as its top module.
    let module = |p: &Path| {
        let first = p.strip_prefix(src).unwrap().components().next().unwrap();
        let name = first.as_os_str().to_string_lossy();
        let name = name.trim_end_matches(".rs");
        if name == "lib" || name == "main" {
            String::new()
        } else {
            name.to_owned()
        }
    };
    let modules: BTreeSet<String> = files.iter().map(|p| module(p)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &files {
        let m = module(p);
        let deps = crate_refs(&code(p))
            .into_iter()
            .map(|r| {
                if modules.contains(&r) {
                    r
                } else {
                    String::new()
                }
            })
            .filter(|d| *d != m)
            .collect::<Vec<_>>();
        g.entry(m).or_default().extend(deps);
    }
    g
}

/// Every `.rs` file below `dir` but the binaries of `src/bin` (crates of their own).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() && !p.ends_with("bin") {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Every library's and function's `src/` (the test crate's binaries aside).
fn crate_srcs() -> Vec<PathBuf> {
    let mut srcs = Vec::new();
    for parent in ["crates", "functions"] {
        for e in std::fs::read_dir(root().join(parent)).unwrap() {
            let src = e.unwrap().path().join("src");
            if src.is_dir() {
                srcs.push(src);
            }
        }
    }
    srcs
}

/// A circle of imports, if the graph has one.
fn circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, d, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

#[test]
fn every_engine_module_stands_on_its_floor_or_below() {
    let g = graph(&root().join("crates/engine/src"));
    let floor_of: BTreeMap<&str, usize> = FLOORS
        .iter()
        .enumerate()
        .flat_map(|(k, (_, ms))| ms.iter().map(move |m| (*m, k)))
        .collect();
    let mut wrong = Vec::new();
    for (m, deps) in &g {
        if m.is_empty() {
            continue;
        }
        let Some(&mine) = floor_of.get(m.as_str()) else {
            wrong.push(format!(
                "{m} is on no floor: add it to FLOORS and docs/architecture.md"
            ));
            continue;
        };
        for d in deps {
            if d.is_empty() {
                wrong.push(format!(
                    "{m} reaches an item through the crate root; name its module"
                ));
            } else if floor_of
                .get(d.as_str())
                .is_some_and(|&theirs| theirs > mine)
            {
                wrong.push(format!(
                    "{m} ({}) imports {d} ({}), a floor above",
                    FLOORS[mine].0,
                    FLOORS[floor_of[d.as_str()]].0
                ));
            }
        }
    }
    for (_, ms) in FLOORS {
        for m in ms {
            assert!(
                g.contains_key(*m),
                "FLOORS names {m}, which is not a module"
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_crate_in_the_workspace_has_an_import_circle() {
    let mut srcs = crate_srcs();
    srcs.push(root().join("tests/src"));
    assert!(srcs.len() >= 10, "found only {srcs:?}");
    let circles: Vec<String> = srcs
        .iter()
        .filter_map(|s| circle(&graph(s)).map(|c| format!("{}: {}", s.display(), c.join(" -> "))))
        .collect();
    assert!(circles.is_empty(), "{}", circles.join("\n"));
}

#[test]
fn the_reader_sees_groups_paths_and_no_comments() {
    let refs = crate_refs(
        "use crate::{a, b::{c, d}, e as f};\nlet x = crate::g::h();\nuse other_crate::z;",
    );
    assert_eq!(
        refs,
        ["a", "b", "e", "g"].iter().map(|s| s.to_string()).collect()
    );
    let g = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(circle(&g).map(|c| c.len()), Some(3));
}

#[test]
fn no_watched_call_is_named_outside_the_catalogue() {
    use tripwire_engine::catalogue::WATCHED;
    let mut found = Vec::new();
    for src in crate_srcs() {
        for path in rust_files(&src) {
            if path.ends_with("catalogue.rs") {
                continue;
            }
            for (n, line) in code(&path).lines().enumerate() {
                for w in WATCHED {
                    if line.contains(w.event_name) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "read these from the catalogue:\n{}",
        found.join("\n")
    );
}
