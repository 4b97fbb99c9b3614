//! The container image, built the way a user or CI builds it: the repository's `Containerfile`
//! with buildah (target `prebuilt`: the binary the test command built, assembled by
//! `packaging/rootfs.sh`, so nothing is compiled twice and no base image is pulled), pushed to an
//! OCI layout and unpacked with umoci. The binary then runs from the image's own root filesystem
//! (chroot) as the chart's user and serves `/healthz` against the test apiserver. buildah, umoci and
//! binutils come from tests/scripts/setup.sh; the storage is a temporary directory (vfs driver), so
//! the machine's own container storage is never touched.

mod common;

use common::{repo, ControlPlane};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit the test command builds from (tests/scripts/test.sh exports it; the operator binary
/// was compiled with the same environment).
const COMMIT: Option<&str> = option_env!("PLO_GIT_COMMIT");
/// Bounds for the image with the test command's (debug, stripped) binary; a release binary is
/// about half the size. Measured: 40.5 MiB unpacked when the image came; 56.3 MiB unpacked and
/// 17.0 MiB of layers once HA and snapshot schedules were in (2026-12-02).
const MAX_LAYERS_BYTES: u64 = 24 << 20;
const MAX_ROOTFS_BYTES: u64 = 72 << 20;

/// The built and unpacked image, made once per test binary.
struct Image {
    /// The image's root filesystem, unpacked from the OCI layout.
    rootfs: PathBuf,
    /// Its OCI image config (`config.User`, `config.Labels`, ...).
    config: Value,
    /// Compressed size of its layers, as a registry stores them.
    layers_bytes: u64,
    _dir: tempfile::TempDir,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run tests/scripts/setup.sh)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap()
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("plo-image-").tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        run(Command::new("sh")
            .arg(repo().join("packaging/rootfs.sh"))
            .arg(env!("CARGO_BIN_EXE_proxmox-lxc-operator"))
            .arg(ctx.join("rootfs")));
        let buildah = |args: &[&str]| {
            let mut c = Command::new("buildah");
            c.arg("--root")
                .arg(dir.path().join("storage"))
                .arg("--runroot")
                .arg(dir.path().join("run"))
                .args(["--storage-driver", "vfs"])
                .args(args);
            c
        };
        let started = std::time::Instant::now();
        let file = repo().join("Containerfile");
        run(buildah(&[
            "build",
            "--pull=never",
            "--target",
            "prebuilt",
            "--build-arg",
            "ROOTFS=rootfs",
        ])
        .args([
            "--build-arg",
            &format!("VERSION={VERSION}"),
            "--build-arg",
            &format!("REVISION={}", COMMIT.unwrap_or("unknown")),
        ])
        .arg("-f")
        .arg(&file)
        .args(["-t", "localhost/proxmox-lxc-operator:test"])
        .arg(&ctx));
        let layout = dir.path().join("oci");
        run(buildah(&["push", "localhost/proxmox-lxc-operator:test"]).arg(format!("oci:{}:test", layout.display())));
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:test", layout.display()))
            .arg(dir.path().join("bundle")));
        eprintln!(
            "image built, pushed to an OCI layout and unpacked in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let manifest: Value =
            serde_json::from_slice(&blob(&layout, index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
        let config: Value =
            serde_json::from_slice(&blob(&layout, manifest["config"]["digest"].as_str().unwrap())).unwrap();
        let layers_bytes = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["size"].as_u64().unwrap())
            .sum();
        Image {
            rootfs: dir.path().join("bundle/rootfs"),
            config,
            layers_bytes,
            _dir: dir,
        }
    })
}

/// `runAsUser:runAsGroup` of the chart's pod security context.
fn charts_user() -> String {
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo().join("charts/proxmox-lxc-operator/values.yaml")).unwrap(),
    )
    .unwrap();
    let psc = &values["podSecurityContext"];
    format!("{}:{}", psc["runAsUser"], psc["runAsGroup"])
}

/// The image's entrypoint run from its own root filesystem as the chart's user, with the image's
/// environment and nothing of ours but `env`.
fn in_image(img: &Image, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("chroot");
    cmd.arg(format!("--userspec={}", charts_user())).arg(&img.rootfs);
    cmd.args(
        img.config["config"]["Entrypoint"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap()),
    );
    cmd.args(args).env_clear();
    for kv in img.config["config"]["Env"].as_array().unwrap() {
        let (k, v) = kv.as_str().unwrap().split_once('=').unwrap();
        cmd.env(k, v);
    }
    cmd.envs(env.iter().copied());
    cmd
}

#[test]
fn the_image_runs_as_the_charts_non_root_user() {
    let img = image();
    let user = charts_user();
    assert_eq!(user, "65532:65532");
    assert_eq!(
        img.config["config"]["User"],
        user.as_str(),
        "the image's USER is the chart's runAsUser:runAsGroup"
    );
    let passwd = std::fs::read_to_string(img.rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "{passwd}"
    );
    assert_eq!(
        img.config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/proxmox-lxc-operator"])
    );
    assert_eq!(
        img.config["config"]["Cmd"],
        serde_json::json!(["run"]),
        "the chart passes `run` itself; a bare `docker run` runs the operator too"
    );
}

#[test]
fn the_image_holds_only_the_binary_its_libraries_and_ca_certificates_within_its_size_bound() {
    let img = image();
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut stack = vec![img.rootfs.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.len();
                files.push(
                    e.path()
                        .strip_prefix(&img.rootfs)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    files.sort();
    for f in &files {
        let known = [
            "usr/local/bin/proxmox-lxc-operator",
            "etc/ssl/certs/ca-certificates.crt",
            "etc/passwd",
            "etc/group",
        ]
        .contains(&f.as_str())
            || f.starts_with("lib/x86_64-linux-gnu/")
            || f.starts_with("lib/aarch64-linux-gnu/")
            || f.starts_with("lib64/ld-linux")
            || f.starts_with("lib/ld-linux");
        assert!(known, "unexpected file in the image: /{f} (all: {files:?})");
    }
    let ldd = run(Command::new("ldd").arg(img.rootfs.join("usr/local/bin/proxmox-lxc-operator")));
    for lib in ldd
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
    {
        assert!(
            img.rootfs.join(lib.trim_start_matches('/')).is_file(),
            "{lib} (needed by the binary) is not in the image"
        );
    }
    let ca = std::fs::read_to_string(img.rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(
        ca.matches("BEGIN CERTIFICATE").count() > 50,
        "the CA bundle holds the system roots"
    );
    let tmp = std::fs::metadata(img.rootfs.join("tmp")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        tmp.permissions().mode() & 0o7777,
        0o1777,
        "/tmp is writable for the non-root user"
    );
    eprintln!(
        "image: {} files, {:.1} MiB unpacked, {:.1} MiB of layers (bounds {} and {} MiB)",
        files.len(),
        total as f64 / 1048576.0,
        img.layers_bytes as f64 / 1048576.0,
        MAX_ROOTFS_BYTES >> 20,
        MAX_LAYERS_BYTES >> 20
    );
    assert!(total <= MAX_ROOTFS_BYTES, "the unpacked image is {total} bytes");
    assert!(
        img.layers_bytes <= MAX_LAYERS_BYTES,
        "the image's layers are {} bytes",
        img.layers_bytes
    );
}

#[test]
fn the_image_carries_the_oci_labels_source_version_revision_and_licence() {
    let labels = &image().config["config"]["Labels"];
    let want = [
        ("org.opencontainers.image.source", env!("CARGO_PKG_REPOSITORY")),
        ("org.opencontainers.image.version", VERSION),
        ("org.opencontainers.image.revision", COMMIT.unwrap_or("unknown")),
        ("org.opencontainers.image.licenses", env!("CARGO_PKG_LICENSE")),
        ("org.opencontainers.image.title", env!("CARGO_PKG_NAME")),
        ("org.opencontainers.image.description", env!("CARGO_PKG_DESCRIPTION")),
    ];
    for (key, value) in want {
        assert_eq!(labels[key], value, "label {key}: {labels}");
    }
}

#[test]
fn the_binary_in_the_image_prints_its_version_and_commit() {
    let out = run(&mut in_image(image(), &["--version"], &[]));
    assert_eq!(
        out.trim(),
        format!(
            "proxmox-lxc-operator {VERSION} (commit {})",
            COMMIT.filter(|c| !c.is_empty()).unwrap_or("unknown")
        )
    );
}

#[test]
fn the_binary_from_the_images_root_filesystem_serves_healthz_against_the_test_apiserver() {
    let img = image();
    let cp = ControlPlane::shared();
    let ns = cp.namespace("plo-image");
    let port = common::free_port();
    // The kubeconfig (certificates embedded) inside the image's /tmp, readable by the chart's user.
    let kubeconfig = format!("/tmp/kubeconfig-{port}");
    let inside = img.rootfs.join(kubeconfig.trim_start_matches('/'));
    std::fs::copy(&cp.kubeconfig, &inside).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = std::env::temp_dir().join(format!("plo-image-operator-{port}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let mut child = in_image(
        img,
        &["run", "--namespace", &ns, "--http-addr", &format!("127.0.0.1:{port}")],
        &[("KUBECONFIG", &kubeconfig), ("RUST_LOG", "info")],
    )
    .stdout(file.try_clone().unwrap())
    .stderr(file)
    .stdin(Stdio::null())
    .spawn()
    .expect("chroot");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let guard = Kill(&mut child);
    let get = |path: &str| {
        let out = Command::new("curl")
            .args(["-s", "-m", "2", &format!("http://127.0.0.1:{port}{path}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    common::wait_for(
        &format!("/healthz from the image's binary (log: {})", log.display()),
        Duration::from_secs(60),
        || (get("/healthz") == "ok\n").then_some(()),
    );
    // "operator running" comes after it read the CRDs through the apiserver (TLS, client
    // certificate, CA all from the kubeconfig): it really talks to it from inside the image.
    common::wait_for("the operator to reach the apiserver", Duration::from_secs(60), || {
        logs().contains("operator running").then_some(())
    });
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65532"; 4],
        "the operator runs as the chart's user: {uid}"
    );
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(
        exe,
        img.rootfs.join("usr/local/bin/proxmox-lxc-operator"),
        "the image's binary runs"
    );
    assert!(get("/metrics").contains("plo_"), "metrics served too");
    drop(guard);
    assert!(!logs().contains("Permission denied"), "{}", logs());
}

#[test]
fn the_containerfiles_ci_build_and_host_build_end_in_the_same_runtime() {
    let text = std::fs::read_to_string(repo().join("Containerfile")).unwrap();
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(
        stages,
        ["FROM scratch AS base", "FROM base AS prebuilt", "FROM ${RUST_IMAGE} AS builder", "FROM base AS runtime"],
        "the default (last) stage is the CI build; both it and `prebuilt` derive from `base` (user, labels, entrypoint)"
    );
    assert!(
        text.contains("sh packaging/rootfs.sh target/release/proxmox-lxc-operator /rootfs"),
        "the builder assembles the root filesystem with the same script"
    );
    assert!(text.contains("COPY --from=builder /rootfs/ /"));
    assert!(
        text.contains("ENV PLO_GIT_COMMIT=${REVISION}"),
        "the CI build puts the commit into --version"
    );
}
