//! The shape of the code that CONTRIBUTING.md promises, checked: no source file over 800 lines,
//! no function over 80 lines in the container controller, and the long functions elsewhere in
//! `src/controller` only ever get shorter (a ratchet: the list below may lose entries, never gain);
//! no two files of `src/controller` import each other, even through others.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(lines, function name)` of each function defined in `text` outside its `mod tests`: from the
/// `fn` line to the closing brace at the same indentation.
fn functions(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("mod tests") {
            break;
        }
        let indent = &line[..line.len() - trimmed.len()];
        let rest = ["pub(crate) ", "pub(super) ", "pub ", "async ", "const ", "unsafe "]
            .iter()
            .fold(trimmed, |t, p| t.strip_prefix(p).unwrap_or(t));
        let rest = rest.strip_prefix("async ").unwrap_or(rest);
        let Some(sig) = rest.strip_prefix("fn ") else { continue };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let name: String = sig.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            out.push((end + 2, name));
        }
    }
    out
}

#[test]
fn no_source_file_is_longer_than_800_lines() {
    let mut files = Vec::new();
    sources(&root().join("src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let n = std::fs::read_to_string(p).unwrap().lines().count();
            (n > 800).then(|| format!("{} ({n} lines)", p.strip_prefix(root()).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "split these files: {long:?}");
}

/// Functions in `src/controller` outside the container controller that are longer than 80 lines
/// today, with their length: each may shrink (lower the figure or drop the row), none may grow,
/// and no other function may pass 80 lines.
const LONG_FUNCTIONS: &[(&str, &str, usize)] = &[
    ("template/reconcile.rs", "build_current", 256),
    ("cluster/observer.rs", "run", 201),
    ("backup/lxc_backup.rs", "start", 197),
    ("vnode/translate.rs", "translate", 189),
    ("run.rs", "run", 186),
    ("vnode/node.rs", "desired_node", 152),
    ("template/reconcile.rs", "resolve_image", 143),
    ("backup/lxc_backup.rs", "cleanup", 116),
    ("template/cleanup.rs", "cleanup", 112),
    ("backup/lxc_backup.rs", "poll", 105),
    ("vnode/status.rs", "container_state", 104),
    ("cluster/reconcile.rs", "resolve", 103),
    ("vnode/node.rs", "pass", 102),
    ("vnode/bind.rs", "bind", 97),
    ("schedule/pass.rs", "reconcile_inner", 97),
    ("schedule/calendar.rs", "parse_calendar", 95),
    ("tenancy/policy.rs", "check_container", 87),
    ("vnode/pod.rs", "reconcile", 85),
    ("cluster/preflight.rs", "usage_of", 84),
    ("cluster/preflight.rs", "required", 82),
    ("vnode/logs.rs", "logs", 81),
];

#[test]
fn no_controller_function_is_longer_than_80_lines_and_the_known_long_ones_only_shrink() {
    let base = root().join("src/controller");
    let mut files = Vec::new();
    sources(&base, &mut files);
    let mut grown = Vec::new();
    for path in files.iter().filter(|p| !p.to_string_lossy().ends_with("_tests.rs")) {
        let rel = path.strip_prefix(&base).unwrap().to_string_lossy().replace('\\', "/");
        for (n, name) in functions(&std::fs::read_to_string(path).unwrap()) {
            let allowed = match LONG_FUNCTIONS.iter().find(|(f, fname, _)| *f == rel && *fname == name) {
                Some((_, _, max)) if !rel.starts_with("container/") => *max,
                _ => 80,
            };
            if n > allowed {
                grown.push(format!("{rel}: fn {name} is {n} lines (at most {allowed})"));
            }
        }
    }
    assert!(grown.is_empty(), "split these into named steps: {grown:#?}");
}

#[test]
fn the_function_reader_measures_from_the_signature_to_the_closing_brace() {
    let text =
        "pub async fn a() {\n    x();\n}\n\n    fn b(\n        y: u8,\n    ) -> u8 {\n        y\n    }\nfn c();\n";
    assert_eq!(functions(text), vec![(3, "a".to_string()), (5, "b".to_string())]);
}

// ---------------------------------------------------------------------------------------------
// One-way imports: no circle of files in `src/controller`.
// ---------------------------------------------------------------------------------------------

use std::collections::{BTreeMap, BTreeSet};

/// The text of a Rust source with comments, string and char literals blanked out (replaced by
/// spaces, so nothing in them reads as a path).
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(i + k).copied().unwrap_or('\0');
        if at(0) == '/' && at(1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(0) == '/' && at(1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if at(0) == 'r'
            && (at(1) == '"' || (at(1) == '#' && (at(2) == '"' || at(2) == '#')))
            && !(i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
        {
            let mut hashes = 0;
            i += 1;
            while c[i] == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            while i < c.len() && !c[i..].iter().collect::<String>().starts_with(&close) {
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if at(0) == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if at(0) == '\'' && (at(2) == '\'' || (at(1) == '\\' && at(1) != '\0')) {
            // a char literal ('x', '\n', '\u{1F600}'); a lifetime ('a) has no closing quote
            i += 1;
            while i < c.len() && c[i] != '\'' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The tokens of `code`: identifiers, `::`, and single punctuation characters.
fn tokens(code: &str) -> Vec<String> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_alphanumeric() || c[i] == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(c[start..i].iter().collect());
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            if !c[i].is_whitespace() {
                out.push(c[i].to_string());
            }
            i += 1;
        }
    }
    out
}

/// One path a source file names: its segments as written (`super`, `crate`, ... included), the
/// module it is written in, and how it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Named {
    /// The module the path is written in (inline `mod x { }` blocks included).
    scope: Vec<String>,
    /// The segments; a glob ends in `*`.
    path: Vec<String>,
    /// `Some(name)` for a `use` (the name it binds), `None` for a path in code.
    binds: Option<String>,
    /// A `pub use` (any visibility): a re-export.
    public: bool,
    /// Written inside an inline `#[cfg(test)] mod … { }`.
    test: bool,
    /// For a `pub use`: the name it binds is also used by the file's own code.
    used_here: bool,
}

/// Parses one `use` tree at `t[*i]` with `prefix` already read; pushes each leaf.
fn use_tree(t: &[String], i: &mut usize, prefix: Vec<String>, leaves: &mut Vec<(Vec<String>, String)>) {
    let mut path = prefix;
    loop {
        match t.get(*i).map(String::as_str) {
            Some("{") => {
                *i += 1;
                while t.get(*i).is_some_and(|s| s != "}") {
                    use_tree(t, i, path.clone(), leaves);
                    if t.get(*i).is_some_and(|s| s == ",") {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            Some("*") => {
                *i += 1;
                path.push("*".into());
                leaves.push((path, "*".into()));
                return;
            }
            Some(seg) if seg.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                path.push(seg.to_string());
                *i += 1;
                if t.get(*i).is_some_and(|s| s == "::") {
                    *i += 1;
                    continue;
                }
                let mut name = path.last().cloned().unwrap_or_default();
                if name == "self" {
                    path.pop();
                    name = path.last().cloned().unwrap_or_default();
                }
                if t.get(*i).is_some_and(|s| s == "as") {
                    name = t[*i + 1].clone();
                    *i += 2;
                }
                leaves.push((path, name));
                return;
            }
            _ => return,
        }
    }
}

/// Every path named in the code of a file whose module is `module`: `use` trees (each leaf) and
/// paths in code of two or more segments (`super::x::y`, `crate::a::b`, `child::f`), with the
/// inline module each is written in. Comments and strings are not read.
fn named_paths(text: &str, module: &[String]) -> Vec<Named> {
    let t = tokens(&code_only(text));
    let mut out = Vec::new();
    // inline modules: (name, brace depth at which its block closes, whether `#[cfg(test)]`)
    let mut inline: Vec<(String, usize, bool)> = Vec::new();
    let mut depth = 0usize;
    let scope = |inline: &[(String, usize, bool)]| -> Vec<String> {
        module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _, _)| n.clone()))
            .collect()
    };
    let test = |inline: &[(String, usize, bool)]| inline.iter().any(|m| m.2);
    let mut in_use = BTreeSet::new();
    let mut i = 0;
    while i < t.len() {
        match t[i].as_str() {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d, _)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if t.get(i + 2).is_some_and(|s| s == "{") => {
                let cfg_test = i >= 7 && t[i - 7..i].join("") == "#[cfg(test)]";
                inline.push((t[i + 1].clone(), depth, cfg_test));
                depth += 1;
                i += 3;
                continue;
            }
            "use" => {
                let public = i > 0 && (t[i - 1] == "pub" || t[i - 1] == ")");
                let start = i;
                i += 1;
                if t.get(i).is_some_and(|s| s == "::") {
                    i += 1;
                }
                let mut leaves = Vec::new();
                use_tree(&t, &mut i, Vec::new(), &mut leaves);
                in_use.extend(start..i);
                for (path, name) in leaves {
                    out.push(Named {
                        scope: scope(&inline),
                        path,
                        binds: Some(name),
                        public,
                        test: test(&inline),
                        used_here: false,
                    });
                }
                continue;
            }
            seg if seg.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
                && t.get(i + 1).is_some_and(|s| s == "::")
                && !(i > 0 && (t[i - 1] == "::" || t[i - 1] == "."))
                && t.get(i + 2)
                    .is_some_and(|s| s.chars().all(|c| c.is_alphanumeric() || c == '_')) =>
            {
                let mut path = vec![seg.to_string()];
                let mut j = i + 1;
                while t.get(j).is_some_and(|s| s == "::")
                    && t.get(j + 1)
                        .is_some_and(|s| s.chars().all(|c| c.is_alphanumeric() || c == '_'))
                {
                    path.push(t[j + 1].clone());
                    j += 2;
                }
                out.push(Named {
                    scope: scope(&inline),
                    path,
                    binds: None,
                    public: false,
                    test: test(&inline),
                    used_here: false,
                });
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let own: BTreeSet<&str> = t
        .iter()
        .enumerate()
        .filter(|(k, _)| !in_use.contains(k))
        .map(|(_, s)| s.as_str())
        .collect();
    for n in out.iter_mut().filter(|n| n.public) {
        n.used_here = n.binds.as_deref().is_some_and(|b| own.contains(b));
    }
    out
}

/// The module graph of a set of files: which file each module is, and what each module's `use`
/// declarations bind (so a path through a re-export or an import resolves to where the item is).
struct Modules {
    /// Module path → file (relative to the crate root).
    files: BTreeMap<Vec<String>, String>,
    /// (module, name) → the absolute path it binds to (from a `use`, public or not).
    binds: BTreeMap<(Vec<String>, String), Vec<String>>,
}

impl Modules {
    /// `path` as written in `scope`, made absolute (from the crate root), or `None` for a path
    /// outside the crate (`std::`, `kube::`, a local variable's enum, ...).
    fn absolute(&self, scope: &[String], path: &[String]) -> Option<Vec<String>> {
        let mut base: Vec<String> = scope.to_vec();
        let mut rest = path;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("super") | Some("self") => {
                while let Some(first) = rest.first() {
                    match first.as_str() {
                        "super" => {
                            base.pop()?;
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
            }
            Some(first) => {
                // a child module of the scope, or a name a `use` in the scope binds
                let mut child = scope.to_vec();
                child.push(first.to_string());
                if self.files.contains_key(&child) {
                    return Some(child.into_iter().chain(rest[1..].iter().cloned()).collect());
                }
                let bound = self.binds.get(&(scope.to_vec(), first.to_string()))?;
                return Some(bound.iter().chain(rest[1..].iter()).cloned().collect());
            }
            None => return None,
        }
        Some(base.into_iter().chain(rest.iter().cloned()).collect())
    }

    /// The file an absolute path's item lives in: the longest module prefix, followed through
    /// the `use` bindings of that module (a re-export points on to where the item is defined).
    fn file_of(&self, path: &[String], hops: usize) -> Option<String> {
        if hops > 16 {
            return None;
        }
        let n = (0..=path.len()).rev().find(|n| self.files.contains_key(&path[..*n]))?;
        let module = &path[..n];
        if let Some(name) = path.get(n).filter(|s| *s != "*") {
            if let Some(target) = self.binds.get(&(module.to_vec(), name.clone())) {
                if target.as_slice() != &path[..=n] {
                    let onward: Vec<String> = target.iter().chain(path[n + 1..].iter()).cloned().collect();
                    return self.file_of(&onward, hops + 1);
                }
            }
        }
        self.files.get(module).cloned()
    }
}

/// The module path of a file, from its path relative to `src/` (`a/b.rs` and `a/b/mod.rs` are
/// `a::b`).
fn module_of(rel: &str) -> Vec<String> {
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let rel = rel.strip_suffix("/mod").unwrap_or(rel);
    rel.split('/').map(str::to_string).collect()
}

/// The import graph of `sources` (path relative to `src/` → text): an edge `a → b` when `a`
/// names an item of file `b` in its code or in a private `use`. Rules:
/// - a `pub use` is a re-export, not an edge (unless the file's own code uses the name): a path
///   through it resolves to the file that defines the item (a child importing a sibling through
///   its parent's `pub use` is an edge to the sibling, not to the parent). A private `use` is an
///   edge and, for child modules' `super::` paths, also a binding that is followed the same way.
/// - a `use` of a module (`use super::kernel;`) is only a binding: the paths through it
///   (`kernel::task::start`) are the edges. A glob (`use super::*`) is an edge to that module.
/// - `mod x;` declarations are not edges; `#[path = "x_tests.rs"] mod tests;` makes that file
///   the module `tests` of the declaring file.
/// - the code of an inline `#[cfg(test)] mod tests { }` is a node of its own, `file (tests)`
///   (like a `#[path]` test file): tests sit above what they test and nothing imports them, so
///   a test that builds its input with a higher module is not a circle.
///
/// It reads text, not types: a method called on a value is not an edge (the file that names the
/// value's type, or the function that returns it, has one).
fn import_graph(sources: &BTreeMap<String, String>) -> Graph {
    let mut files: BTreeMap<Vec<String>, String> = sources.keys().map(|rel| (module_of(rel), rel.clone())).collect();
    for (rel, text) in sources {
        let dir = rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let t = tokens(&code_only(text));
        for w in t.windows(9) {
            if w[0] == "#" && w[2] == "path" && w[4] == "\"" && w[7] == "mod" {
                // `#[path = "f.rs"] mod x;` — the literal itself was blanked, find it in the text
                let name = &w[8];
                let needle = format!("mod {name};");
                if let Some(at) = text.find(&needle) {
                    let before = &text[..at];
                    if let Some(p) = before.rfind("#[path = \"") {
                        let lit = &before[p + 10..];
                        let lit = &lit[..lit.find('"').unwrap()];
                        let mut m = module_of(rel);
                        m.push(name.clone());
                        let file = format!("{dir}/{lit}");
                        files.remove(&module_of(&file));
                        files.insert(m, file);
                    }
                }
            }
        }
    }
    let mut modules = Modules {
        files,
        binds: BTreeMap::new(),
    };
    let by_file: BTreeMap<String, Vec<String>> = modules.files.iter().map(|(m, f)| (f.clone(), m.clone())).collect();
    let named: BTreeMap<String, Vec<Named>> = sources
        .iter()
        .map(|(rel, text)| {
            (
                rel.clone(),
                named_paths(text, by_file.get(rel).unwrap_or(&module_of(rel))),
            )
        })
        .collect();
    // bindings first (in two rounds, so a `use` through another file's `use` resolves)
    for _ in 0..2 {
        for list in named.values() {
            for n in list {
                if let Some(name) = n.binds.as_ref().filter(|b| *b != "*") {
                    if let Some(abs) = modules.absolute(&n.scope, &n.path) {
                        modules.binds.insert((n.scope.clone(), name.clone()), abs);
                    }
                }
            }
        }
    }
    let mut graph = Graph::new();
    for (rel, list) in &named {
        graph.entry(rel.clone()).or_default();
        for n in list {
            if n.public && !n.used_here {
                continue;
            }
            let from = if n.test { format!("{rel} (tests)") } else { rel.clone() };
            let edges = graph.entry(from).or_default();
            let Some(abs) = modules.absolute(&n.scope, &n.path) else {
                continue;
            };
            if n.binds.as_ref().is_some_and(|b| b != "*") && modules.files.contains_key(&abs) {
                continue; // a module imported by name: its uses are the edges
            }
            if let Some(file) = modules.file_of(&abs, 0) {
                if &file != rel && sources.contains_key(&file) {
                    edges.entry(file).or_insert_with(|| n.path.join("::"));
                }
            }
        }
    }
    graph
}

/// An import graph: file → (file it imports → the first path, as written, that imports it).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// The strongly connected components of more than one node (Tarjan), each sorted.
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// The sources the import rule covers: every file under `src/controller` and `src/metrics.rs`,
/// by path relative to `src/`.
fn controller_sources() -> BTreeMap<String, String> {
    let src = root().join("src");
    let mut files = Vec::new();
    sources(&src.join("controller"), &mut files);
    files.push(src.join("metrics.rs"));
    files
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
            (rel, std::fs::read_to_string(p).unwrap())
        })
        .collect()
}

/// No two files of `src/controller` (with `src/metrics.rs`) import each other, directly or
/// through others: the imports run one way, so a file can be read knowing only the files below
/// it. The edges are read by [`import_graph`] (see there how re-exports and module imports count).
#[test]
fn no_two_files_in_src_controller_import_each_other_even_through_others() {
    let graph = import_graph(&controller_sources());
    let found = circles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|c| {
            let inside: BTreeSet<&String> = c.iter().collect();
            let arrows: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    graph[a]
                        .iter()
                        .filter(|(b, _)| inside.contains(b))
                        .map(move |(b, why)| format!("{a} -> {b} ({why})"))
                })
                .collect();
            format!("{} files:\n  {}", c.len(), arrows.join("\n  "))
        })
        .collect();
    assert!(
        described.is_empty(),
        "break these circles of imports:\n{}",
        described.join("\n")
    );
}

#[test]
fn the_metrics_module_does_not_import_the_controller() {
    let graph = import_graph(&controller_sources());
    let into: Vec<&String> = graph["metrics.rs"]
        .keys()
        .filter(|f| f.starts_with("controller/"))
        .collect();
    assert!(into.is_empty(), "metrics.rs imports {into:?}");
}

#[test]
fn the_import_reader_resolves_uses_reexports_and_paths_in_code_but_not_comments() {
    let files: BTreeMap<String, String> = [
        ("c/mod.rs", "pub mod k;\npub mod a;\npub mod b;\npub use k::Pass;\n"),
        ("c/k/mod.rs", "pub mod pass;\npub use pass::{Pass, Other as Renamed};\npub fn recover() {}\n"),
        ("c/k/pass.rs", "pub struct Pass;\npub struct Other;\n"),
        ("c/k/uses.rs", "pub use super::pass::Pass;\npub use super::pass::Other;\nfn f(p: Pass) {}\n"),
        (
            "c/a.rs",
            "use super::k;\nuse crate::c::Pass;\n// use super::b::Gone;\nfn f() { let s = \"super::b::x\"; k::recover(); }\n",
        ),
        (
            "c/b.rs",
            "use super::{k::Renamed, a as alias};\n#[path = \"b_tests.rs\"]\nmod tests;\nfn g() { alias::f(); }\n",
        ),
        ("c/b_tests.rs", "use super::*;\n"),
    ]
    .into_iter()
    .map(|(p, t)| (p.to_string(), t.to_string()))
    .collect();
    let graph = import_graph(&files);
    let edges = |f: &str| graph[f].keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        edges("c/a.rs"),
        ["c/k/mod.rs", "c/k/pass.rs"],
        "a re-export resolves to its source"
    );
    assert_eq!(
        edges("c/b.rs"),
        ["c/a.rs", "c/k/pass.rs"],
        "a renamed re-export and a module alias"
    );
    assert_eq!(
        edges("c/b_tests.rs"),
        ["c/b.rs"],
        "a #[path] test module is a child of its file"
    );
    assert!(
        edges("c/mod.rs").is_empty() && edges("c/k/mod.rs").is_empty(),
        "re-exports are not edges"
    );
    assert_eq!(
        edges("c/k/uses.rs"),
        ["c/k/pass.rs"],
        "unless the file uses what it re-exports"
    );
    assert!(circles(&graph).is_empty());
    let mut circular = graph.clone();
    circular
        .get_mut("c/k/pass.rs")
        .unwrap()
        .insert("c/a.rs".into(), "super::super::a::f".into());
    assert_eq!(
        circles(&circular),
        [vec!["c/a.rs".to_string(), "c/k/pass.rs".to_string()]]
    );
}
