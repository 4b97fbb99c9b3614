//! What one object of a kind a tenant writes can weigh: every list, map and string of its spec
//! is bounded in the schema, and the sum of those bounds (in bytes, as the operator holds the
//! object) stays under [`MAX_OBJECT_BYTES`]. The operator caches every object it watches, so
//! without bounds a namespace's objects (up to the apiserver's 1.5 MiB each) could push the
//! shared operator out of its memory limit (security review N5).

use serde_json::Value;

/// The most a maximal object of a namespaced kind may weigh, by its schema's bounds: 200 of them
/// (a busy namespace) fit in the chart's default memory limit (256 MiB) with the operator's own
/// ~40 MiB.
pub const MAX_OBJECT_BYTES: u64 = 512 * 1024;

/// Where a spec's schema leaves something a tenant writes unbounded: a string without
/// `maxLength` (or `enum`), a list without `maxItems`, a map without `maxProperties`.
pub fn unbounded(schema: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    walk(schema, path, &mut out);
    out
}

fn walk(s: &Value, path: &str, out: &mut Vec<String>) {
    if s.get("x-kubernetes-int-or-string").is_some() {
        if s.get("maxLength").is_none() {
            out.push(format!("{path} (int-or-string)"));
        }
        return;
    }
    match s.get("type").and_then(Value::as_str) {
        Some("string") if s.get("maxLength").is_none() && s.get("enum").is_none() && s.get("format").is_none() => {
            out.push(format!("{path} (string)"))
        }
        Some("array") => {
            if s.get("maxItems").is_none() {
                out.push(format!("{path} (list)"));
            }
            if let Some(items) = s.get("items") {
                walk(items, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
    if let Some(ap) = s.get("additionalProperties").filter(|v| v.is_object()) {
        if s.get("maxProperties").is_none() {
            out.push(format!("{path} (map)"));
        }
        walk(ap, &format!("{path}{{}}"), out);
    }
    if let Some(Value::Object(props)) = s.get("properties") {
        for (k, v) in props {
            walk(v, &format!("{path}.{k}"), out);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(alts)) = s.get(key) {
            for a in alts {
                walk(a, path, out);
            }
        }
    }
}

/// Bytes of an object at most, by `schema`'s bounds: a string's `maxLength` characters at 4 bytes
/// each (UTF-8) unless its pattern admits only ASCII, every field present, every list and map
/// full, plus each value's own size in memory (a `String` or `Vec` is 24 bytes, rounded up as
/// malloc does). An unbounded part counts as 1.5 MiB (the apiserver's limit of a whole object).
pub fn worst_case_bytes(s: &Value) -> u64 {
    const UNBOUNDED: u64 = 3 * 512 * 1024;
    const HEADER: u64 = 32;
    if s.get("x-kubernetes-int-or-string").is_some() {
        return HEADER + s.get("maxLength").and_then(Value::as_u64).unwrap_or(UNBOUNDED);
    }
    let own = match s.get("type").and_then(Value::as_str) {
        Some("string") => {
            if let Some(Value::Array(e)) = s.get("enum") {
                return HEADER
                    + e.iter()
                        .filter_map(Value::as_str)
                        .map(|v| v.len() as u64)
                        .max()
                        .unwrap_or(0);
            }
            let chars = s.get("maxLength").and_then(Value::as_u64).unwrap_or(UNBOUNDED);
            let ascii = s.get("pattern").and_then(Value::as_str).is_some_and(ascii_only);
            return HEADER + chars * if ascii { 1 } else { 4 };
        }
        Some("array") => {
            let n = s.get("maxItems").and_then(Value::as_u64).unwrap_or(UNBOUNDED);
            let item = s.get("items").map(worst_case_bytes).unwrap_or(HEADER);
            return HEADER + n.saturating_mul(item).min(UNBOUNDED * 4);
        }
        Some("integer") | Some("number") | Some("boolean") => return 16,
        _ => HEADER,
    };
    let mut total = own;
    if let Some(Value::Object(props)) = s.get("properties") {
        total += props.values().map(worst_case_bytes).sum::<u64>();
    }
    if let Some(ap) = s.get("additionalProperties").filter(|v| v.is_object()) {
        let n = s.get("maxProperties").and_then(Value::as_u64).unwrap_or(UNBOUNDED);
        // a key is a label key or a name: 317 ASCII characters at most
        total += n.saturating_mul(HEADER + 317 + worst_case_bytes(ap)).min(UNBOUNDED * 4);
    }
    total
}

/// Whether every string `pattern` matches is ASCII: no negated class (`[^…]`), no `.` outside a
/// class, no `\S`/`\W`/`\D`.
fn ascii_only(pattern: &str) -> bool {
    let mut in_class = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if matches!(n, 'S' | 'W' | 'D' | 'p' | 'P') {
                        return false;
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                if chars.peek() == Some(&'^') {
                    return false;
                }
            }
            ']' if in_class => in_class = false,
            '.' if !in_class => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec schemas of the kinds a tenant writes (namespaced), by kind.
    fn tenant_specs() -> Vec<(String, Value)> {
        crate::crd::all_crds()
            .into_iter()
            .filter(|(_, crd)| crd.spec.scope == "Namespaced")
            .map(|(_, crd)| {
                let v = &crd.spec.versions[0];
                let schema =
                    serde_json::to_value(v.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap()).unwrap();
                (crd.spec.names.kind.clone(), schema["properties"]["spec"].clone())
            })
            .collect()
    }

    #[test]
    fn every_list_map_and_string_a_tenant_controls_is_bounded() {
        let mut open = Vec::new();
        for (kind, spec) in tenant_specs() {
            open.extend(unbounded(&spec, &format!("{kind}.spec")));
        }
        assert!(open.is_empty(), "unbounded in the schema: {open:#?}");
    }

    #[test]
    fn a_maximal_object_of_any_kind_a_tenant_writes_stays_under_the_per_object_budget() {
        for (kind, spec) in tenant_specs() {
            let bytes = worst_case_bytes(&spec);
            println!("a maximal {kind}: {bytes} bytes");
            assert!(
                bytes <= MAX_OBJECT_BYTES,
                "a maximal {kind} weighs {bytes} bytes by its schema, over {MAX_OBJECT_BYTES}"
            );
        }
    }

    #[test]
    fn a_pattern_admits_only_ascii_unless_it_negates_a_class_or_has_a_dot() {
        assert!(ascii_only(r"^[a-zA-Z0-9_.-]+$"));
        assert!(ascii_only(r"^net[0-9]{1,2}\.x$"));
        assert!(!ascii_only(r"^[^\x00-\x1f]*$"));
        assert!(!ascii_only(r"^a.b$"));
        assert!(!ascii_only(r"^\S+$"));
    }

    #[test]
    fn an_unbounded_string_list_or_map_is_named_with_its_path() {
        let s = serde_json::json!({"type": "object", "properties": {
            "a": {"type": "string"},
            "b": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 3}},
            "c": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 1}},
            "d": {"type": "string", "enum": ["x"]}}});
        assert_eq!(
            unbounded(&s, "spec"),
            vec!["spec.a (string)".to_string(), "spec.c (map)".to_string()]
        );
    }
}
