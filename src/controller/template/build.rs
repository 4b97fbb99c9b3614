//! What an `LxcTemplate` spec asks for (pure): the image to build from, the container settings
//! baked into the template, the fingerprint that decides when a new template must be built, and
//! how linked clones of a template are recognized in a storage listing.

use crate::controller::container::desired::{identity_tag, InvalidSpec};
use crate::controller::container::settings::{self, ContainerSettings, ValidSettings};
use crate::crd::lxc_template::LxcTemplateSpec;
use crate::crd::DeletionPolicy;
use crate::pve::{self, AplInfo, StorageVolume};
use sha2::{Digest, Sha256};

/// The storage that holds images when `spec.imageStorage` is omitted.
pub const DEFAULT_IMAGE_STORAGE: &str = "local";

/// Where the OS image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// A volume that must exist already.
    Volid(String),
    /// An entry of the node's appliance index, downloaded to `storage` when absent.
    Appliance {
        /// Name as the user wrote it (package name or file name).
        name: String,
    },
    /// An OCI image pulled to `storage` (under the operator's file name for it).
    Oci {
        /// The image reference.
        reference: String,
    },
    /// A URL downloaded to `storage` as `file_name`, verified with the checksum.
    Url {
        /// Source URL.
        url: String,
        /// Checksum algorithm (`sha256`, ...).
        algorithm: String,
        /// Expected checksum, hex.
        checksum: String,
        /// File name in the storage.
        file_name: String,
    },
}

/// A valid template spec: the image, where images live, the container settings and the fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePlan {
    /// The OS image.
    pub image: Image,
    /// Storage for downloaded images (content `vztmpl`).
    pub image_storage: String,
    /// The container settings (resources, rootfs, network, features, tags, ...), checked and
    /// encoded exactly as a container's are.
    pub settings: ValidSettings,
    /// The identity tag `k8s-<uid>`.
    pub identity_tag: String,
    /// The pool to create the template in (the tenant's, set after admission).
    pub pool: Option<String>,
    /// The nodes the tenant may use (any when empty; set after admission).
    pub allowed_nodes: Vec<String>,
    /// Fingerprint of every spec field that shapes the template (all but `deletionPolicy`).
    pub hash: String,
    /// The tenant's vmid range, when one applies (set after admission).
    pub vmid_range: Option<crate::crd::proxmox_tenant::VmidRange>,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// The fingerprint of a template spec: every field but `deletionPolicy` (changing what happens
/// on deletion does not make a new template).
pub fn build_hash(spec: &LxcTemplateSpec) -> String {
    let mut s = spec.clone();
    s.deletion_policy = DeletionPolicy::default();
    let json = serde_json::to_string(&s).unwrap_or_default();
    hex::encode(&Sha256::digest(json.as_bytes())[..8])
}

/// Checks the spec of the template named `name` with uid `uid`.
pub fn plan(spec: &LxcTemplateSpec, name: &str, uid: &str) -> Result<TemplatePlan, InvalidSpec> {
    let image_storage = spec
        .image_storage
        .clone()
        .unwrap_or_else(|| DEFAULT_IMAGE_STORAGE.into());
    if !is_storage_id(&image_storage) {
        return Err(invalid(
            "imageStorage",
            format!("{image_storage:?} is not a storage id"),
        ));
    }
    let image = image(&spec.image)?;
    Ok(TemplatePlan {
        image,
        image_storage,
        settings: settings::validate(&ContainerSettings::from(spec), name)?,
        identity_tag: identity_tag(uid),
        pool: None,
        allowed_nodes: Vec::new(),
        hash: build_hash(spec),
        vmid_range: None,
    })
}

/// The OS image: exactly one of `appliance`, `url`, `volid` or `oci`, each checked.
fn image(i: &crate::crd::lxc_template::TemplateImage) -> Result<Image, InvalidSpec> {
    let set = [
        i.appliance.is_some(),
        i.url.is_some(),
        i.volid.is_some(),
        i.oci.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if set != 1 {
        return Err(invalid(
            "image",
            format!("set exactly one of appliance, url, volid or oci ({set} are set)"),
        ));
    }
    let image = if let Some(r) = &i.oci {
        crate::controller::container::image::check_reference("image.oci", r)?;
        Image::Oci { reference: r.clone() }
    } else if let Some(v) = &i.volid {
        let ok = v
            .split_once(":vztmpl/")
            .is_some_and(|(st, f)| is_storage_id(st) && is_file_name(f));
        if !ok {
            return Err(invalid(
                "image.volid",
                format!("{v:?} is not a volume id like local:vztmpl/NAME.tar.zst"),
            ));
        }
        Image::Volid(v.clone())
    } else if let Some(a) = &i.appliance {
        if a.is_empty()
            || !a
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'))
        {
            return Err(invalid("image.appliance", format!("{a:?} is not an appliance name")));
        }
        Image::Appliance { name: a.clone() }
    } else {
        let u = i.url.as_ref().expect("counted above");
        let rest = u.url.strip_prefix("https://").or_else(|| u.url.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty()) || u.url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("image.url.url", format!("{:?} is not an http(s) URL", u.url)));
        }
        let (algorithm, checksum) = u
            .checksum
            .split_once(':')
            .ok_or_else(|| invalid("image.url.checksum", "write it as ALGORITHM:HEX, e.g. sha256:..."))?;
        if !["md5", "sha1", "sha224", "sha256", "sha384", "sha512"].contains(&algorithm) {
            return Err(invalid(
                "image.url.checksum",
                format!("{algorithm:?} is not one of md5, sha1, sha224, sha256, sha384, sha512"),
            ));
        }
        if checksum.is_empty() || !checksum.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid("image.url.checksum", "the checksum must be hexadecimal"));
        }
        let file_name = match &u.file_name {
            Some(f) => f.clone(),
            None => url_file_name(&u.url).ok_or_else(|| {
                invalid(
                    "image.url.fileName",
                    format!("cannot take a file name from {:?}: set fileName", u.url),
                )
            })?,
        };
        if !is_file_name(&file_name) || !is_image_name(&file_name) {
            return Err(invalid(if u.file_name.is_some() { "image.url.fileName" } else { "image.url.url" }, format!("{file_name:?} is not an image file name (.tar.gz, .tar.xz, .tar.zst, .tar.bz2, .tgz, .txz or .tar)")));
        }
        let checksum = checksum.to_ascii_lowercase();
        Image::Url {
            url: u.url.clone(),
            algorithm: algorithm.into(),
            file_name: content_addressed(&checksum, &file_name),
            checksum,
        }
    };
    Ok(image)
}

fn is_storage_id(s: &str) -> bool {
    s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_file_name(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 255
        && !f.starts_with('.')
        && f.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'))
}

fn is_image_name(f: &str) -> bool {
    [".tar.gz", ".tar.xz", ".tar.zst", ".tar.bz2", ".tgz", ".txz", ".tar"]
        .iter()
        .any(|e| f.ends_with(e))
}

/// The last path segment of `url` (without query or fragment), if it is a usable file name.
pub fn url_file_name(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let (_, after_scheme) = path.split_once("://")?;
    let (_, p) = after_scheme.split_once('/')?;
    let last = p.rsplit('/').next()?;
    is_file_name(last).then(|| last.to_string())
}

/// The file name a URL image is stored under: the checksum's first 16 digits, then the name.
/// A file already present under it is reused without a download: only a download checked
/// against that checksum can have made it, so nobody (another tenant) can plant a file that
/// someone else's template then uses by name.
pub fn content_addressed(checksum: &str, file_name: &str) -> String {
    let short: String = checksum.chars().take(16).collect();
    format!("{short}-{file_name}")
}

/// The volume id an image has in `storage`.
pub fn image_volid(storage: &str, file_name: &str) -> String {
    format!("{storage}:vztmpl/{file_name}")
}

/// The appliance index entry `name` designates: the exact file name, or the newest entry of
/// that package (`debian-12-standard` → `debian-12-standard_12.7-1_amd64.tar.zst`).
pub fn pick_appliance<'a>(index: &'a [AplInfo], name: &str) -> Option<&'a AplInfo> {
    if let Some(a) = index.iter().find(|a| a.template == name) {
        return Some(a);
    }
    let prefix = format!("{name}_");
    index
        .iter()
        .filter(|a| a.apl_type.as_deref().is_none_or(|t| t == "lxc"))
        .filter(|a| a.package.as_deref() == Some(name) || a.template.starts_with(&prefix))
        .max_by(|a, b| version_key(&a.template).cmp(&version_key(&b.template)))
}

/// Orders file names by their numbers, so `12.10` sorts after `12.9`.
fn version_key(s: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut num = String::new();
    let mut text = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                out.push((0, std::mem::take(&mut text)));
            }
            num.push(c);
        } else {
            if !num.is_empty() {
                out.push((num.parse().unwrap_or(u64::MAX), String::new()));
                num.clear();
            }
            text.push(c);
        }
    }
    if !num.is_empty() {
        out.push((num.parse().unwrap_or(u64::MAX), String::new()));
    }
    if !text.is_empty() {
        out.push((0, text));
    }
    out
}

/// Whether `vol` is a linked clone of a disk of template `vmid`: its name (or its `parent`)
/// refers to a `base-<vmid>-disk-N` volume, and it is not that base volume itself
/// (`local-lvm:base-100-disk-0/vm-101-disk-0`, `local:100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2`).
pub fn is_linked_clone_of(vol: &StorageVolume, vmid: u32) -> bool {
    let base = format!("base-{vmid}-disk-");
    if vol.vmid == Some(vmid) {
        return false;
    }
    let name = vol.volid.split_once(':').map(|x| x.1).unwrap_or(&vol.volid);
    let by_name = name.find(&base).is_some_and(|i| name[i..].contains('/'));
    let by_parent = vol.parent.as_deref().is_some_and(|p| p.contains(&base));
    by_name || by_parent
}

/// The vmid owning a volume: the listing's `vmid`, else the number in `vm-<vmid>-disk-N`.
pub fn volume_owner(vol: &StorageVolume) -> Option<u32> {
    vol.vmid.or_else(|| {
        let i = vol.volid.rfind("vm-")?;
        vol.volid[i + 3..].split('-').next()?.parse().ok()
    })
}

pub use crate::controller::guest::disk_storages;

/// Create parameters of the template container: the image, the settings, our tags, stopped.
pub fn create_params(plan: &TemplatePlan, vmid: u32, ostemplate: &str) -> pve::LxcCreateParams {
    let s = &plan.settings;
    pve::LxcCreateParams {
        rootfs: settings::rootfs_param(s.rootfs.as_ref()),
        networks: settings::net_params(&s.nets),
        unprivileged: Some(s.unprivileged),
        pool: plan.pool.clone(),
        tags: Some(s.all_tags(&plan.identity_tag).join(";")),
        start: Some(false),
        ..s.config.create_params(vmid, ostemplate)
    }
}

#[cfg(test)]
mod tests {
    use super::super::footprint::container_spec;
    use super::*;
    use crate::crd::lxc_container::{Resources, RootFs};
    use crate::crd::lxc_template::{ImageUrl, TemplateImage};
    use crate::crd::ByteQuantity;

    fn spec(image: TemplateImage) -> LxcTemplateSpec {
        LxcTemplateSpec {
            image,
            unprivileged: true,
            ..Default::default()
        }
    }

    fn appliance(name: &str) -> LxcTemplateSpec {
        spec(TemplateImage {
            appliance: Some(name.into()),
            ..Default::default()
        })
    }

    #[test]
    fn an_oci_image_is_a_template_source_with_proxmoxs_reference_rule() {
        let ok = spec(TemplateImage {
            oci: Some("docker.io/library/nginx:1.27".into()),
            ..Default::default()
        });
        assert_eq!(
            plan(&ok, "t", "uid").unwrap().image,
            Image::Oci {
                reference: "docker.io/library/nginx:1.27".into()
            }
        );
        let untagged = spec(TemplateImage {
            oci: Some("docker.io/library/nginx".into()),
            ..Default::default()
        });
        let e = plan(&untagged, "t", "uid").unwrap_err();
        assert_eq!(e.field, "image.oci");
        assert!(e.message.contains("a tag is required"), "{e}");
    }

    fn apl(template: &str) -> AplInfo {
        serde_json::from_value(
            serde_json::json!({"template": template, "package": template.split('_').next().unwrap(), "type": "lxc"}),
        )
        .unwrap()
    }

    fn vol(volid: &str, vmid: Option<u32>, parent: Option<&str>) -> StorageVolume {
        serde_json::from_value(serde_json::json!({"volid": volid, "vmid": vmid, "parent": parent})).unwrap()
    }

    #[test]
    fn an_appliance_template_gets_its_settings_checked_like_a_container() {
        let mut s = appliance("debian-12-standard");
        s.resources = Some(Resources {
            cores: Some(2),
            memory: Some(ByteQuantity::new("1Gi")),
            ..Default::default()
        });
        s.rootfs = Some(RootFs {
            storage: "local-lvm".into(),
            size: ByteQuantity::new("4Gi"),
        });
        s.tags = vec!["Base".into()];
        let p = plan(&s, "debian-base", "UID-1").unwrap();
        assert_eq!(
            p.image,
            Image::Appliance {
                name: "debian-12-standard".into()
            }
        );
        assert_eq!(p.image_storage, "local");
        assert_eq!(p.settings.config.cores, Some(2));
        assert_eq!(p.settings.config.memory_mib, Some(1024));
        assert_eq!(p.settings.config.hostname, "debian-base");
        assert_eq!(p.settings.all_tags(&p.identity_tag), vec!["base", "k8s-uid-1"]);
        let c = create_params(&p, 9000, "local:vztmpl/x.tar.zst");
        assert_eq!(c.rootfs.as_deref(), Some("local-lvm:4"));
        assert_eq!(c.start, Some(false));
        assert_eq!(c.tags.as_deref(), Some("base;k8s-uid-1"));
    }

    #[test]
    fn a_template_asks_proxmox_for_the_same_settings_as_a_container_with_the_same_fields() {
        let mut t = appliance("debian-12-standard");
        t.description = Some("base image\n".into());
        t.tags = vec!["Base".into()];
        t.resources = Some(Resources {
            cores: Some(2),
            cpu_limit: Some("1.5".into()),
            memory: Some(ByteQuantity::new("1Gi")),
            ..Default::default()
        });
        t.rootfs = Some(RootFs {
            storage: "local-lvm".into(),
            size: ByteQuantity::new("4Gi"),
        });
        t.network = vec![crate::crd::lxc_container::NetworkInterface {
            name: "eth0".into(),
            bridge: "vmbr0".into(),
            ..Default::default()
        }];
        t.features = Some(crate::crd::lxc_container::Features {
            nesting: Some(true),
            ..Default::default()
        });
        let template = plan(&t, "base", "uid").unwrap();
        let mut c = container_spec(&t);
        c.source.os_template = Some("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into());
        let container = crate::controller::container::desired::validate(&c, "base", "uid").unwrap();
        assert_eq!(template.settings.config, container.config);
        assert_eq!(template.settings.rootfs, container.rootfs);
        assert_eq!(template.settings.nets, container.nets);
        assert_eq!(template.settings.all_tags(&template.identity_tag), container.all_tags());
        let from_template = create_params(&template, 9000, "local:vztmpl/x.tar.zst");
        let from_container = container.create_params(9000, "local:vztmpl/x.tar.zst");
        assert_eq!(
            from_template,
            pve::LxcCreateParams {
                start: Some(false),
                ..from_container
            }
        );
    }

    #[test]
    fn bad_settings_name_the_field() {
        let mut s = appliance("debian-12-standard");
        s.rootfs = Some(RootFs {
            storage: "local,size=1".into(),
            size: ByteQuantity::new("4Gi"),
        });
        assert_eq!(plan(&s, "t", "u").unwrap_err().field, "rootfs.storage");
        let s = spec(TemplateImage {
            volid: Some("local:iso/x.iso".into()),
            ..Default::default()
        });
        assert_eq!(plan(&s, "t", "u").unwrap_err().field, "image.volid");
        let s = spec(TemplateImage {
            appliance: Some("a".into()),
            volid: Some("local:vztmpl/a.tar.zst".into()),
            ..Default::default()
        });
        assert_eq!(plan(&s, "t", "u").unwrap_err().field, "image");
    }

    #[test]
    fn a_url_image_takes_its_file_name_from_the_url_and_splits_the_checksum() {
        let s = spec(TemplateImage {
            url: Some(ImageUrl {
                url: "https://x.org/img/alpine-3.20_amd64.tar.xz?dl=1".into(),
                checksum: "SHA256:ABCDEF0123456789abcdef0123456789".into(),
                file_name: None,
            }),
            ..Default::default()
        });
        assert!(plan(&s, "t", "u").is_err(), "upper-case algorithm is refused");
        let s = spec(TemplateImage {
            url: Some(ImageUrl {
                url: "https://x.org/img/alpine-3.20_amd64.tar.xz?dl=1".into(),
                checksum: "sha256:ABCDEF0123456789abcdef0123456789".into(),
                file_name: None,
            }),
            ..Default::default()
        });
        match plan(&s, "t", "u").unwrap().image {
            Image::Url {
                file_name,
                algorithm,
                checksum,
                ..
            } => {
                assert_eq!(file_name, "abcdef0123456789-alpine-3.20_amd64.tar.xz");
                assert_eq!(algorithm, "sha256");
                assert_eq!(checksum, "abcdef0123456789abcdef0123456789");
            }
            other => panic!("{other:?}"),
        }
        let s = spec(TemplateImage {
            url: Some(ImageUrl {
                url: "https://x.org/download".into(),
                checksum: "sha256:00".into(),
                file_name: None,
            }),
            ..Default::default()
        });
        assert_eq!(plan(&s, "t", "u").unwrap_err().field, "image.url.url");
    }

    #[test]
    fn the_newest_appliance_of_a_package_is_picked_and_exact_file_names_work() {
        let index = vec![
            apl("debian-12-standard_12.9-1_amd64.tar.zst"),
            apl("debian-12-standard_12.10-1_amd64.tar.zst"),
            apl("debian-13-standard_13.1-2_amd64.tar.zst"),
        ];
        assert_eq!(
            pick_appliance(&index, "debian-12-standard").unwrap().template,
            "debian-12-standard_12.10-1_amd64.tar.zst"
        );
        assert_eq!(
            pick_appliance(&index, "debian-12-standard_12.9-1_amd64.tar.zst")
                .unwrap()
                .template,
            "debian-12-standard_12.9-1_amd64.tar.zst"
        );
        assert!(pick_appliance(&index, "debian-1").is_none());
        assert!(pick_appliance(&index, "nonexistent").is_none());
    }

    #[test]
    fn linked_clones_are_recognized_by_name_or_parent_but_not_the_base_itself() {
        assert!(is_linked_clone_of(
            &vol("local-lvm:base-100-disk-0/vm-101-disk-0", Some(101), None),
            100
        ));
        assert!(is_linked_clone_of(
            &vol(
                "local:100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2",
                Some(101),
                None
            ),
            100
        ));
        assert!(is_linked_clone_of(
            &vol("local-zfs:subvol-101-disk-0", Some(101), Some("base-100-disk-0")),
            100
        ));
        assert!(!is_linked_clone_of(
            &vol("local-lvm:base-100-disk-0", Some(100), None),
            100
        ));
        assert!(!is_linked_clone_of(
            &vol("local-lvm:base-1000-disk-0/vm-101-disk-0", Some(101), None),
            100
        ));
        assert!(!is_linked_clone_of(
            &vol("local-lvm:vm-101-disk-0", Some(101), None),
            100
        ));
        assert_eq!(
            volume_owner(&vol("local-lvm:base-100-disk-0/vm-101-disk-0", None, None)),
            Some(101)
        );
    }

    #[test]
    fn the_fingerprint_ignores_the_deletion_policy_and_nothing_else() {
        let a = appliance("debian-12-standard");
        let mut b = a.clone();
        b.deletion_policy = DeletionPolicy::Retain;
        assert_eq!(build_hash(&a), build_hash(&b));
        b.description = Some("x".into());
        assert_ne!(build_hash(&a), build_hash(&b));
    }

    #[test]
    fn url_file_names_need_a_path() {
        assert_eq!(url_file_name("https://h/a/b.tar.zst#x").as_deref(), Some("b.tar.zst"));
        assert_eq!(url_file_name("https://h"), None);
    }
}
