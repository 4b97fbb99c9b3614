//! The API reference (`crds/API.md`), rendered as Markdown from the generated CRD schemas, and
//! the writer behind `proxmox-lxc-operator crds --out-dir DIR [--chart-dir CHART]`.
//!
//! The reference is built from the same `openAPIV3Schema` the apiserver enforces, so it cannot
//! say something the schema does not: every field path with its type, whether it is required,
//! its default, its constraints (pattern, bounds, lengths, enum, `oneOf`, CEL rules) and its
//! description.

use std::fmt::Write as _;
use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// File name of the API reference inside the CRD directory (`kubectl apply -f crds/` ignores it).
pub const API_MD: &str = "API.md";

/// The command that regenerates `crds/`, `crds/API.md` and the chart's CRD templates.
pub const GENERATE_COMMAND: &str = "cargo run -- crds --out-dir crds --chart-dir charts/proxmox-lxc-operator";

/// Where the chart's CRDs live inside the chart: templates (not Helm's `crds/`, which Helm installs
/// once and never upgrades), so `helm upgrade` brings new CRD versions along.
pub const CHART_CRD_DIR: &str = "templates/crds";

/// Writes every CRD as `<kind>.yaml` plus [`API_MD`] into `dir`; with `chart_dir`, also writes each
/// CRD as a Helm template ([`chart_crd_template`]) into `chart_dir/`[`CHART_CRD_DIR`] (and nothing
/// else there).
pub fn write_generated(dir: &Path, chart_dir: Option<&Path>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (file, crd) in super::all_crds() {
        std::fs::write(dir.join(file), super::crd_yaml(&crd)?)?;
    }
    std::fs::write(dir.join(API_MD), api_markdown())?;
    if let Some(chart) = chart_dir {
        let chart_crds = chart.join(CHART_CRD_DIR);
        std::fs::create_dir_all(&chart_crds)?;
        for (file, crd) in super::all_crds() {
            std::fs::write(chart_crds.join(file), chart_crd_template(&crd)?)?;
        }
    }
    Ok(())
}

/// One CRD as a chart template: the document of `crds/` wrapped in `crds.install`, with the
/// chart's labels and, with `crds.keep`, the `helm.sh/resource-policy: keep` annotation (so
/// `helm uninstall` never deletes the CRDs and with them every object of the kind), as cert-manager
/// does. Everything below `metadata` is byte for byte the `crds/` file.
pub fn chart_crd_template(crd: &CustomResourceDefinition) -> anyhow::Result<String> {
    let yaml = super::crd_yaml(crd)?;
    let name = crd.metadata.name.as_deref().unwrap_or_default();
    let plain_meta = format!("metadata:\n  name: {name}\nspec:\n");
    anyhow::ensure!(
        yaml.contains(&plain_meta) && !yaml.contains("{{"),
        "the CRD {name} has metadata besides its name, or template delimiters: the chart template cannot wrap it"
    );
    let meta = format!(
        "metadata:\n  name: {name}\n  labels:\n    {{{{- include \"plo.labels\" . | nindent 4 }}}}\n  \
         {{{{- if .Values.crds.keep }}}}\n  annotations:\n    helm.sh/resource-policy: keep\n  {{{{- end }}}}\nspec:\n"
    );
    let body = yaml
        .strip_prefix("---\n")
        .unwrap_or(&yaml)
        .replacen(&plain_meta, &meta, 1);
    Ok(format!(
        "{{{{- /* Generated from src/crd/ by `{GENERATE_COMMAND}`; do not edit. */}}}}\n\
         {{{{- if .Values.crds.install }}}}\n---\n{body}{{{{- end }}}}\n"
    ))
}

/// Renders the API reference of every kind (in [`super::all_crds`] order) as one Markdown page.
pub fn api_markdown() -> String {
    let crds: Vec<CustomResourceDefinition> = super::all_crds().into_iter().map(|(_, c)| c).collect();
    render(&crds)
}

/// Renders the API reference of `crds` as Markdown.
pub fn render(crds: &[CustomResourceDefinition]) -> String {
    let mut out = String::new();
    out.push_str("# API reference\n\n");
    out.push_str(&format!(
        "<!-- Generated from the CRD schemas by `{GENERATE_COMMAND}`; do not edit. -->\n\n"
    ));
    if let Some(first) = crds.first() {
        let versions: Vec<&str> = first.spec.versions.iter().map(|v| v.name.as_str()).collect();
        out.push_str(&format!(
            "Group `{}`, version `{}`. Every kind is namespaced and in the category `proxmox` \
             (`kubectl get proxmox`).\n\n",
            first.spec.group,
            versions.join("`, `")
        ));
    }
    out.push_str("| Kind | Short name | Plural | Description |\n| --- | --- | --- | --- |\n");
    for crd in crds {
        let names = &crd.spec.names;
        let root = root_schema(crd);
        let desc = root
            .as_ref()
            .and_then(|s| s.get("description"))
            .and_then(Value::as_str)
            .unwrap_or("");
        out.push_str(&format!(
            "| [`{kind}`](#{anchor}) | `{short}` | `{plural}` | {desc} |\n",
            kind = names.kind,
            anchor = names.kind.to_lowercase(),
            short = names.short_names.as_deref().unwrap_or_default().join("`, `"),
            plural = names.plural,
            desc = cell(desc),
        ));
    }
    out.push_str(
        "\nColumns of the field tables: **Type** (`[]T` is a list, `map[string]T` a map), \
         **Req.** (required in its parent object), **Default** (applied by the apiserver), \
         **Constraints** (checked by the apiserver; CEL rules from Kubernetes 1.25 on).\n",
    );
    for crd in crds {
        render_kind(&mut out, crd);
    }
    out
}

fn root_schema(crd: &CustomResourceDefinition) -> Option<Value> {
    let version = crd.spec.versions.first()?;
    let schema = version.schema.as_ref()?.open_api_v3_schema.as_ref()?;
    serde_json::to_value(schema).ok()
}

fn render_kind(out: &mut String, crd: &CustomResourceDefinition) {
    let names = &crd.spec.names;
    let Some(root) = root_schema(crd) else { return };
    let version = &crd.spec.versions[0];
    let _ = write!(out, "\n## {}\n\n", names.kind);
    if let Some(desc) = root.get("description").and_then(Value::as_str) {
        let _ = write!(out, "{}\n\n", desc.trim());
    }
    let _ = writeln!(
        out,
        "`apiVersion: {}/{}`, `kind: {}`; scope {}; short name `{}`; status subresource: {}.",
        crd.spec.group,
        version.name,
        names.kind,
        crd.spec.scope,
        names.short_names.as_deref().unwrap_or_default().join("`, `"),
        if version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some() {
            "yes"
        } else {
            "no"
        },
    );
    if let Some(cols) = &version.additional_printer_columns {
        let cols: Vec<String> = cols.iter().map(|c| format!("{} (`{}`)", c.name, c.json_path)).collect();
        let _ = writeln!(out, "\n`kubectl get` columns: {}.", cols.join(", "));
    }
    let props = root.get("properties").and_then(Value::as_object);
    for part in ["spec", "status"] {
        let Some(schema) = props.and_then(|p| p.get(part)) else {
            continue;
        };
        let _ = write!(out, "\n### {}.{part}\n\n", names.kind);
        if let Some(desc) = schema.get("description").and_then(Value::as_str) {
            let _ = write!(out, "{}\n\n", desc.trim());
        }
        let mut rows = Vec::new();
        collect_fields(part, schema, &mut rows);
        if rows.is_empty() {
            out.push_str("No fields.\n");
            continue;
        }
        out.push_str("| Field | Type | Req. | Default | Constraints | Description |\n");
        out.push_str("| --- | --- | --- | --- | --- | --- |\n");
        for row in rows {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                row.path,
                cell(&row.type_),
                if row.required { "yes" } else { "" },
                cell(&row.default),
                cell(&row.constraints),
                cell(&row.description)
            );
        }
    }
}

/// One line of a field table.
struct Row {
    path: String,
    type_: String,
    required: bool,
    default: String,
    constraints: String,
    description: String,
}

/// Adds a row for every property of the object `schema` at `path`, depth first in schema order
/// (alphabetical, as generated), descending into objects, list items and map values.
fn collect_fields(path: &str, schema: &Value, rows: &mut Vec<Row>) {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, field) in props {
            let field_path = format!("{path}.{name}");
            rows.push(Row {
                path: field_path.clone(),
                type_: type_name(field),
                required: required.contains(&name.as_str()),
                default: field
                    .get("default")
                    .map(|d| format!("`{}`", compact(d)))
                    .unwrap_or_default(),
                constraints: constraints(field),
                description: field
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            });
            descend(&field_path, field, rows);
        }
    }
}

/// Recurses into the object, list items or map values of `field`.
fn descend(path: &str, field: &Value, rows: &mut Vec<Row>) {
    match field.get("type").and_then(Value::as_str) {
        Some("object") if field.get("properties").is_some() => collect_fields(path, field, rows),
        Some("object") => {
            if let Some(values) = field.get("additionalProperties").filter(|v| v.is_object()) {
                descend(&format!("{path}.*"), values, rows);
            }
        }
        Some("array") => {
            if let Some(items) = field.get("items") {
                descend(&format!("{path}[]"), items, rows);
            }
        }
        _ => {}
    }
}

/// The field's type: `string (date-time)`, `[]object`, `map[string]string`, `int-or-string`.
fn type_name(field: &Value) -> String {
    if field.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return "int-or-string".into();
    }
    let base = match field.get("type").and_then(Value::as_str) {
        Some("array") => format!(
            "[]{}",
            field.get("items").map(type_name).unwrap_or_else(|| "any".into())
        ),
        Some("object") => match field.get("additionalProperties").filter(|v| v.is_object()) {
            Some(values) if field.get("properties").is_none() => {
                format!("map[string]{}", type_name(values))
            }
            _ if field
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true) =>
            {
                "object (any fields)".into()
            }
            _ => "object".into(),
        },
        Some(t) => t.to_string(),
        None if field
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true) =>
        {
            "any".into()
        }
        None => "any".into(),
    };
    match field.get("format").and_then(Value::as_str) {
        Some(format) if !base.starts_with('[') && !base.starts_with("map") => {
            format!("{base} ({format})")
        }
        _ => base,
    }
}

/// The validation rules of `field` in words; for lists of scalars, also those of the items.
fn constraints(field: &Value) -> String {
    let mut parts = own_constraints(field);
    if field.get("type").and_then(Value::as_str) == Some("array") {
        if let Some(items) = field.get("items").filter(|i| i.get("properties").is_none()) {
            parts.extend(own_constraints(items).into_iter().map(|c| format!("each: {c}")));
        }
    }
    parts.join("; ")
}

fn own_constraints(field: &Value) -> Vec<String> {
    let mut parts = Vec::new();
    let num = |key: &str| field.get(key).map(compact);
    if let Some(values) = field.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("`{}`", v.as_str().map(str::to_string).unwrap_or_else(|| compact(v))))
            .collect();
        parts.push(format!("one of {}", values.join(", ")));
    }
    if let Some(pattern) = field.get("pattern").and_then(Value::as_str) {
        parts.push(format!("pattern {}", code(pattern)));
    }
    let range = |min: Option<String>, max: Option<String>, what: &str| match (min, max) {
        (Some(a), Some(b)) => Some(format!("{what}{a}..{b}")),
        (Some(a), None) => Some(format!("{what}≥ {a}")),
        (None, Some(b)) => Some(format!("{what}≤ {b}")),
        (None, None) => None,
    };
    let count = |min: Option<String>, max: Option<String>, what: &str| match (min, max) {
        (Some(a), Some(b)) => Some(format!("{a}..{b} {what}")),
        (Some(a), None) => Some(format!("≥ {a} {what}")),
        (None, Some(b)) => Some(format!("≤ {b} {what}")),
        (None, None) => None,
    };
    let exclusive = |key: &str| field.get(key).and_then(Value::as_bool) == Some(true);
    let (min, max) = (num("minimum"), num("maximum"));
    if exclusive("exclusiveMinimum") || exclusive("exclusiveMaximum") {
        if let Some(a) = min {
            parts.push(format!("{} {a}", if exclusive("exclusiveMinimum") { ">" } else { "≥" }));
        }
        if let Some(b) = max {
            parts.push(format!("{} {b}", if exclusive("exclusiveMaximum") { "<" } else { "≤" }));
        }
    } else {
        parts.extend(range(min, max, ""));
    }
    parts.extend(range(num("minLength"), num("maxLength"), "length "));
    parts.extend(count(num("minItems"), num("maxItems"), "items"));
    parts.extend(count(num("minProperties"), num("maxProperties"), "keys"));
    if let Some(m) = num("multipleOf") {
        parts.push(format!("multiple of {m}"));
    }
    if field.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
        parts.push("unique items".into());
    }
    if let Some(list_type) = field.get("x-kubernetes-list-type").and_then(Value::as_str) {
        match field.get("x-kubernetes-list-map-keys").and_then(Value::as_array) {
            Some(keys) => {
                let keys: Vec<String> = keys
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|k| format!("`{k}`"))
                    .collect();
                parts.push(format!("list type `{list_type}`, unique by {}", keys.join(", ")));
            }
            None => parts.push(format!("list type `{list_type}`")),
        }
    }
    if let Some(one_of) = field.get("oneOf").and_then(Value::as_array) {
        let alts = alternatives(one_of);
        if !alts.is_empty() {
            parts.push(format!("exactly one of {}", alts.join(", ")));
        }
    }
    if let Some(any_of) = field.get("anyOf").and_then(Value::as_array) {
        let alts = alternatives(any_of);
        if !alts.is_empty() {
            parts.push(format!("at least one of {}", alts.join(", ")));
        }
    }
    if let Some(any_of) = field.get("not").and_then(|n| n.get("anyOf")).and_then(Value::as_array) {
        let alts = alternatives(any_of);
        if !alts.is_empty() {
            parts.push(format!("not together: {}", alts.join(", ")));
        }
    }
    if let Some(rules) = field.get("x-kubernetes-validations").and_then(Value::as_array) {
        for rule in rules {
            let text = rule.get("rule").and_then(Value::as_str).unwrap_or("");
            match rule.get("message").and_then(Value::as_str) {
                Some(message) => parts.push(format!("CEL {} ({message})", code(text))),
                None => parts.push(format!("CEL {}", code(text))),
            }
        }
    }
    parts
}

/// `oneOf`/`anyOf` alternatives written as the fields each requires: `a`, `b + c`.
fn alternatives(alts: &[Value]) -> Vec<String> {
    alts.iter()
        .filter_map(|alt| alt.get("required").and_then(Value::as_array))
        .map(|req| {
            req.iter()
                .filter_map(Value::as_str)
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .collect()
}

/// A JSON value on one line (`"x"` for strings, as written in YAML/JSON).
fn compact(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 && !n.is_i64() && !n.is_u64() => {
                format!("{}", f as i64)
            }
            _ => n.to_string(),
        },
        _ => serde_json::to_string(value).unwrap_or_default(),
    }
}

/// `text` as inline code, with a fence long enough for backticks inside it.
fn code(text: &str) -> String {
    let mut fence = "`".to_string();
    while text.contains(fence.as_str()) {
        fence.push('`');
    }
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// `text` fit for one table cell: no line breaks, `|` escaped.
fn cell(text: &str) -> String {
    let joined: Vec<&str> = text.split_whitespace().collect();
    joined.join(" ").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_read_like_go_types() {
        assert_eq!(
            type_name(&json!({"type": "string", "format": "date-time"})),
            "string (date-time)"
        );
        assert_eq!(
            type_name(&json!({"type": "array", "items": {"type": "object"}})),
            "[]object"
        );
        assert_eq!(
            type_name(&json!({"type": "object", "additionalProperties": {"type": "string"}})),
            "map[string]string"
        );
        assert_eq!(type_name(&json!({"x-kubernetes-int-or-string": true})), "int-or-string");
    }

    #[test]
    fn constraints_name_every_rule_and_escape_pipes_in_cells() {
        let c = constraints(&json!({
            "type": "string", "pattern": "^(a|b)$", "minLength": 1, "maxLength": 8,
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}]
        }));
        assert_eq!(c, "pattern `^(a|b)$`; length 1..8; CEL `self == oldSelf` (immutable)");
        assert_eq!(
            cell(&c),
            "pattern `^(a\\|b)$`; length 1..8; CEL `self == oldSelf` (immutable)"
        );
        let list = constraints(&json!({"type": "array", "maxItems": 3, "items": {"type": "integer", "minimum": 1}}));
        assert_eq!(list, "≤ 3 items; each: ≥ 1");
        assert_eq!(
            constraints(&json!({"type": "integer", "minimum": 1.0, "maximum": 64.0})),
            "1..64"
        );
        let one = constraints(&json!({"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}));
        assert_eq!(one, "exactly one of `a`, `b`");
    }

    #[test]
    fn reference_covers_every_kind_and_nested_field() {
        let md = api_markdown();
        for kind in [
            "ProxmoxCluster",
            "LxcContainer",
            "LxcTemplate",
            "LxcBackupSchedule",
            "LxcBackup",
            "LxcSnapshotSchedule",
        ] {
            assert!(md.contains(&format!("\n## {kind}\n")), "{kind} missing");
            assert!(md.contains(&format!("\n### {kind}.spec\n")), "{kind}.spec missing");
        }
        assert!(md.contains("| `spec.endpoints` | []string | yes |"), "{md}");
        assert!(md.contains("`spec.network[].bridge`"));
        assert!(md.contains("`spec.source.backup.volid`"));
        assert!(md.contains("| `spec.deletionPolicy` | string |  | `\"Delete\"` | one of `Delete`, `Retain` |"));
    }
}
