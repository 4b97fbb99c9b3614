//! OCI image references as the pulls read them (pure; shared by the container kind and the
//! tenant policy, so neither imports the other for it).

/// The reference as skopeo's `docker://` transport reads it: `nginx:1` is
/// `docker.io/library/nginx:1`.
pub fn canonical_reference(reference: &str) -> String {
    let (name, tag) = match reference.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (reference, None),
    };
    let mut parts: Vec<&str> = name.split('/').collect();
    let first = parts[0];
    let explicit_host = parts.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost");
    let host = if explicit_host { parts.remove(0) } else { "docker.io" };
    if host == "docker.io" && parts.len() == 1 {
        parts.insert(0, "library");
    }
    let repo = format!("{host}/{}", parts.join("/"));
    match tag {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    }
}
