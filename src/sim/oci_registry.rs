//! The fixture OCI registry behind the simulated `skopeo`: a few images with their image
//! configs, reference parsing like skopeo's `docker://` transport, and the switches tests use
//! to make pulls fail (no skopeo on the node, an unreachable registry).
//!
//! Proxmox shells out to `skopeo copy docker://$reference oci-archive:$path/$tmp` for
//! `oci-registry-pull` and to `skopeo list-tags` for `query-oci-repo-tags`; what those commands
//! would print is modelled here.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The parts of an OCI image config (`config` of the image's config blob) that Proxmox maps.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OciImage {
    /// Canonical repository (`docker.io/library/nginx`).
    pub repo: &'static str,
    /// Tag (`1.27`).
    pub tag: &'static str,
    /// `Entrypoint`.
    pub entrypoint: &'static [&'static str],
    /// `Cmd`.
    pub cmd: &'static [&'static str],
    /// `Env` (`K=V`).
    pub env: &'static [&'static str],
    /// `User` (empty = none).
    pub user: &'static str,
    /// `WorkingDir` (empty = none).
    pub working_dir: &'static str,
    /// `ExposedPorts` keys (`80/tcp`).
    pub exposed_ports: &'static [&'static str],
    /// `StopSignal` (empty = none: Proxmox uses SIGTERM).
    pub stop_signal: &'static str,
    /// Size of the `oci-archive` file in bytes.
    pub size: u64,
    /// The entrypoint runs to completion and exits (a job-like app), rather than serving.
    pub exits: bool,
}

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const fn nginx(repo: &'static str, tag: &'static str, env: &'static [&'static str]) -> OciImage {
    OciImage {
        repo,
        tag,
        entrypoint: &["/docker-entrypoint.sh"],
        cmd: &["nginx", "-g", "daemon off;"],
        env,
        user: "",
        working_dir: "",
        exposed_ports: &["80/tcp"],
        stop_signal: "SIGQUIT",
        size: 72_000_000,
        exits: false,
    }
}

/// The images the fixture registry serves.
pub(crate) const IMAGES: &[OciImage] = &[
    nginx(
        "docker.io/library/nginx",
        "1.27",
        &[
            PATH_ENV,
            "NGINX_VERSION=1.27.5",
            "NJS_VERSION=0.8.10",
            "PKG_RELEASE=1~bookworm",
        ],
    ),
    nginx(
        "docker.io/library/nginx",
        "1.28",
        &[
            PATH_ENV,
            "NGINX_VERSION=1.28.0",
            "NJS_VERSION=0.9.0",
            "PKG_RELEASE=1~bookworm",
        ],
    ),
    // two different repositories whose last path part is the same (`nginx:1`)
    nginx("docker.io/a/nginx", "1", &[PATH_ENV]),
    nginx("docker.io/b/nginx", "1", &[PATH_ENV]),
    OciImage {
        repo: "docker.io/library/alpine",
        tag: "3.20",
        entrypoint: &[],
        cmd: &["/bin/sh"],
        env: &[PATH_ENV],
        user: "",
        working_dir: "",
        exposed_ports: &[],
        stop_signal: "",
        size: 8_300_000,
        exits: false,
    },
    OciImage {
        repo: "ghcr.io/example/batch-job",
        tag: "1.0",
        entrypoint: &["/app/run-once"],
        cmd: &["--input", "/data/in.csv"],
        env: &[PATH_ENV, "JOB_MODE=once", "LOG_LEVEL=info"],
        user: "1000:1000",
        working_dir: "/app",
        exposed_ports: &[],
        stop_signal: "",
        size: 15_000_000,
        exits: true,
    },
    // prints `counter pid <pid>: line <n>` every COUNTER_INTERVAL_MS; exits after COUNTER_LINES
    // (0: runs on); see api::console
    OciImage {
        repo: "ghcr.io/example/counter",
        tag: "1.0",
        entrypoint: &["/app/counter"],
        cmd: &[],
        env: &[PATH_ENV, "COUNTER_INTERVAL_MS=1000", "COUNTER_LINES=0"],
        user: "",
        working_dir: "",
        exposed_ports: &[],
        stop_signal: "",
        size: 2_000_000,
        exits: false,
    },
    OciImage {
        repo: "ghcr.io/example/web-app",
        tag: "2.1.0",
        entrypoint: &["/usr/local/bin/web-app"],
        cmd: &["serve", "--listen", ":8080"],
        env: &[PATH_ENV, "APP_ENV=production", "GREETING=hello world"],
        user: "app",
        working_dir: "/srv",
        exposed_ports: &["8080/tcp", "9090/tcp"],
        stop_signal: "SIGINT",
        size: 25_000_000,
        exits: false,
    },
];

/// Switches of the simulated skopeo and registries (`POST /_sim/oci`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct OciSwitches {
    /// `/usr/bin/skopeo` is installed on the nodes.
    pub skopeo: bool,
    /// Registry hosts that cannot be reached (hosts without fixture images never can).
    pub unreachable: BTreeSet<String>,
}

impl Default for OciSwitches {
    fn default() -> Self {
        OciSwitches {
            skopeo: true,
            unreachable: BTreeSet::new(),
        }
    }
}

/// A reference split like skopeo's `docker://` transport does: `nginx:1.27` is
/// `docker.io/library/nginx:1.27`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OciRef {
    /// Registry host (with port).
    pub host: String,
    /// Canonical repository `host/path`.
    pub repo: String,
    /// Tag, if given.
    pub tag: Option<String>,
}

/// Split `reference` (already checked against the schema pattern) into host, repository, tag.
pub(crate) fn parse_ref(reference: &str) -> OciRef {
    let (name, tag) = match reference.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
        _ => (reference, None),
    };
    let mut parts: Vec<&str> = name.split('/').collect();
    let first = parts[0];
    let host = if parts.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost") {
        parts.remove(0).to_string()
    } else {
        "docker.io".to_string()
    };
    if host == "docker.io" && parts.len() == 1 {
        parts.insert(0, "library");
    }
    OciRef {
        repo: format!("{host}/{}", parts.join("/")),
        host,
        tag,
    }
}

/// Hosts the fixture registry serves.
fn known_host(host: &str) -> bool {
    IMAGES.iter().any(|i| i.repo.split('/').next() == Some(host))
}

/// What `skopeo` says on stderr when it cannot reach `host`.
fn unreachable_text(host: &str) -> String {
    format!(
        "time=\"2026-01-01T00:00:00Z\" level=fatal msg=\"pinging container registry {host}: Get \\\"https://{host}/v2/\\\": dial tcp: lookup {host}: no such host\""
    )
}

/// `skopeo copy docker://REF …`: the image, or skopeo's error line.
pub(crate) fn resolve(sw: &OciSwitches, reference: &str) -> Result<&'static OciImage, String> {
    let r = parse_ref(reference);
    if !known_host(&r.host) || sw.unreachable.contains(&r.host) {
        return Err(unreachable_text(&r.host));
    }
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    if !IMAGES.iter().any(|i| i.repo == r.repo) {
        return Err(format!(
            "time=\"2026-01-01T00:00:00Z\" level=fatal msg=\"initializing source docker://{}:{tag}: reading manifest {tag} in {}: requested access to the resource is denied\"",
            r.repo, r.repo
        ));
    }
    IMAGES.iter().find(|i| i.repo == r.repo && i.tag == tag).ok_or_else(|| {
        format!(
            "time=\"2026-01-01T00:00:00Z\" level=fatal msg=\"initializing source docker://{}:{tag}: reading manifest {tag} in {}: manifest unknown\"",
            r.repo, r.repo
        )
    })
}

/// `skopeo list-tags docker://REPO`: the tags, or skopeo's error line.
pub(crate) fn list_tags(sw: &OciSwitches, reference: &str) -> Result<Vec<String>, String> {
    let r = parse_ref(reference);
    if !known_host(&r.host) || sw.unreachable.contains(&r.host) {
        return Err(unreachable_text(&r.host));
    }
    let tags: Vec<String> = IMAGES
        .iter()
        .filter(|i| i.repo == r.repo)
        .map(|i| i.tag.to_string())
        .collect();
    if tags.is_empty() {
        return Err(
            "time=\"2026-01-01T00:00:00Z\" level=fatal msg=\"Error listing repository tags: fetching tags list: requested access to the resource is denied\""
        .to_string());
    }
    Ok(tags)
}

/// The image stored under `canonical` (`docker.io/library/nginx:1.27`), as recorded on a pulled volume.
pub(crate) fn image(canonical: &str) -> Option<&'static OciImage> {
    let (repo, tag) = canonical.rsplit_once(':')?;
    IMAGES.iter().find(|i| i.repo == repo && i.tag == tag)
}

/// The fixture images with their configs, as `GET /_sim/oci` lists them (OCI config names).
pub(crate) fn images_json() -> serde_json::Value {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    IMAGES
        .iter()
        .map(|i| {
            serde_json::json!({
                "reference": format!("{}:{}", i.repo, i.tag),
                "Entrypoint": i.entrypoint, "Cmd": i.cmd, "Env": i.env, "User": opt(i.user),
                "WorkingDir": opt(i.working_dir), "ExposedPorts": i.exposed_ports,
                "StopSignal": opt(i.stop_signal), "size": i.size, "exits": i.exits,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_docker_hub_names_are_expanded_like_skopeo_does() {
        let r = parse_ref("nginx:1.27");
        assert_eq!(
            (r.host.as_str(), r.repo.as_str()),
            ("docker.io", "docker.io/library/nginx")
        );
        assert_eq!(r.tag.as_deref(), Some("1.27"));
        let r = parse_ref("localhost:5000/team/app:v1");
        assert_eq!(
            (r.host.as_str(), r.repo.as_str()),
            ("localhost:5000", "localhost:5000/team/app")
        );
        assert_eq!(parse_ref("ghcr.io/example/web-app").tag, None);
    }

    #[test]
    fn unknown_tags_repositories_and_hosts_fail_with_skopeo_texts() {
        let sw = OciSwitches::default();
        assert_eq!(resolve(&sw, "docker.io/library/nginx:1.27").unwrap().tag, "1.27");
        assert!(resolve(&sw, "nginx:9.9").unwrap_err().contains("manifest unknown"));
        assert!(resolve(&sw, "docker.io/nobody/none:1")
            .unwrap_err()
            .contains("requested access"));
        assert!(resolve(&sw, "registry.invalid/x:1")
            .unwrap_err()
            .contains("no such host"));
        assert_eq!(list_tags(&sw, "docker.io/library/nginx").unwrap(), vec!["1.27", "1.28"]);
    }
}
