//! The "New container" wizard: source, root disk, CPU and memory, network, firewall and node,
//! with pickers filled from the cluster's status; checked by the operator's own validation
//! ([`crate::controller::container::desired::validate`]) and a server-side dry run before a
//! confirm step. Each complaint is shown once, next to its field where one matches.

use super::pages::{self, api, render, resource, valid_name, Chrome, Filter};
use super::{UiError, User};
use crate::controller::container::desired;
use crate::crd::proxmox_cluster::DEFAULT_CLUSTER_ANNOTATION;
use crate::crd::{LxcBackup, LxcContainer, LxcContainerSpec, LxcTemplate, ProxmoxCluster};
use askama::Template;
use axum::extract::{Form, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use kube::api::{DynamicObject, PostParams};
use serde::Deserialize;
use serde_json::{json, Value};

/// What the user's cluster status offers the pickers.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Inventory {
    /// ProxmoxCluster names the user may read.
    pub clusters: Vec<String>,
    /// The cluster the pickers below describe.
    pub cluster: String,
    /// Online nodes.
    pub nodes: Vec<String>,
    /// Storages with content `rootdir` or `images` (container disks).
    pub disk_storages: Vec<String>,
    /// Storages with content `vztmpl` (OS templates and OCI images).
    pub template_storages: Vec<String>,
    /// Bridges of the online nodes (`status.nodes[].bridges`), the virtual-nodes bridge, and
    /// `vmbr0` (Proxmox's default, before the status has any).
    pub bridges: Vec<String>,
    /// `LxcTemplate`s in the namespace.
    pub templates: Vec<String>,
    /// Completed `LxcBackup`s in the namespace.
    pub backups: Vec<String>,
    /// OS template volumes other objects in the namespace use (suggestions).
    pub os_templates: Vec<String>,
    /// Why the cluster pickers are empty (the user may not read ProxmoxClusters), or empty.
    pub note: String,
}

/// An interface's `ipv4` from the form fields the wizard and the edit form share: `static`
/// with the address (and the gateway when given), else DHCP.
pub(super) fn ipv4(ip: &str, address: &str, gateway: &str) -> Value {
    if ip != "static" {
        return json!({"dhcp": true});
    }
    let mut v = json!({"address": address.trim()});
    if !gateway.trim().is_empty() {
        v["gateway"] = gateway.trim().into();
    }
    v
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !s.is_empty() && !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

impl Inventory {
    /// The pickers of `cluster` (or the default cluster) among `clusters` (ProxmoxCluster JSON).
    pub fn of(clusters: &[Value], cluster: &str) -> Inventory {
        let mut inv = Inventory::default();
        for c in clusters {
            push_unique(&mut inv.clusters, c["metadata"]["name"].as_str().unwrap_or(""));
        }
        let chosen = clusters
            .iter()
            .find(|c| !cluster.is_empty() && c["metadata"]["name"] == cluster)
            .or_else(|| {
                clusters
                    .iter()
                    .find(|c| c["metadata"]["annotations"][DEFAULT_CLUSTER_ANNOTATION] == "true")
            })
            .or_else(|| clusters.iter().find(|c| c["metadata"]["name"] == "default"))
            .or_else(|| clusters.first());
        let Some(c) = chosen else {
            inv.bridges.push("vmbr0".into());
            return inv;
        };
        inv.cluster = c["metadata"]["name"].as_str().unwrap_or("").to_string();
        for n in c["status"]["nodes"].as_array().into_iter().flatten() {
            if n["online"].as_bool().unwrap_or(false) {
                push_unique(&mut inv.nodes, n["name"].as_str().unwrap_or(""));
                // the bridges the cluster observer read from the node's network config
                for b in n["bridges"].as_array().into_iter().flatten() {
                    push_unique(&mut inv.bridges, b.as_str().unwrap_or(""));
                }
            }
        }
        for s in c["status"]["storages"].as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap_or("");
            let content: Vec<&str> = s["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if content.iter().any(|c| *c == "rootdir" || *c == "images") {
                push_unique(&mut inv.disk_storages, name);
            }
            if content.contains(&"vztmpl") {
                push_unique(&mut inv.template_storages, name);
            }
        }
        push_unique(&mut inv.bridges, "vmbr0");
        push_unique(
            &mut inv.bridges,
            c["spec"]["virtualNodes"]["bridge"].as_str().unwrap_or(""),
        );
        inv
    }
}

/// The wizard's form (every step's fields; the confirm step carries them hidden).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct NewForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// `check` (validate, dry run, then the confirm step), `create`, or `back` (edit again).
    #[serde(default)]
    pub mode: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// `ProxmoxCluster` name (empty: the default).
    #[serde(default)]
    pub cluster: String,
    /// Node (empty: the operator places it).
    #[serde(default)]
    pub node: String,
    /// `os`, `template`, `image` or `backup`.
    #[serde(default)]
    pub source: String,
    /// Proxmox OS template volume.
    #[serde(default)]
    pub os_template: String,
    /// `LxcTemplate` name.
    #[serde(default)]
    pub template: String,
    /// OCI image reference.
    #[serde(default)]
    pub image: String,
    /// Storage the image is pulled into.
    #[serde(default)]
    pub image_storage: String,
    /// `LxcBackup` name.
    #[serde(default)]
    pub backup: String,
    /// Root disk storage (empty: Proxmox's default).
    #[serde(default)]
    pub storage: String,
    /// Root disk size in GiB.
    #[serde(default)]
    pub disk_gib: String,
    /// Cores.
    #[serde(default)]
    pub cores: String,
    /// Memory in MiB.
    #[serde(default)]
    pub memory_mib: String,
    /// Bridge (empty: no network interface).
    #[serde(default)]
    pub bridge: String,
    /// `dhcp` or `static`.
    #[serde(default)]
    pub ip: String,
    /// Static address in CIDR form.
    #[serde(default)]
    pub address: String,
    /// Static gateway.
    #[serde(default)]
    pub gateway: String,
    /// `on` when the firewall is wanted.
    #[serde(default)]
    pub firewall: String,
    /// `Running` or `Stopped`.
    #[serde(default)]
    pub state: String,
}

/// A number as JSON when it reads as one, else the text (so the schema, not the UI, judges it).
fn number_or_text(s: &str) -> Value {
    s.parse::<i64>().map(Value::from).unwrap_or_else(|_| s.into())
}

/// A size field with a unit appended when it is a bare number.
fn quantity(s: &str, unit: &str) -> Value {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        format!("{s}{unit}").into()
    } else {
        s.into()
    }
}

/// The `spec` the form describes.
pub fn new_spec(f: &NewForm) -> Value {
    let t = |s: &String| s.trim().to_string();
    let mut spec = json!({"state": if f.state.is_empty() { "Running" } else { f.state.as_str() }});
    if !t(&f.cluster).is_empty() {
        spec["clusterRef"] = json!({"name": t(&f.cluster)});
    }
    if !t(&f.node).is_empty() {
        spec["node"] = t(&f.node).into();
    }
    spec["source"] = match f.source.as_str() {
        "template" => json!({"template": {"name": t(&f.template)}}),
        "image" => {
            let mut i = json!({"reference": t(&f.image)});
            if !t(&f.image_storage).is_empty() {
                i["storage"] = t(&f.image_storage).into();
            }
            json!({"image": i})
        }
        "backup" => json!({"backup": {"name": t(&f.backup)}}),
        _ => json!({"osTemplate": t(&f.os_template)}),
    };
    if !t(&f.storage).is_empty() || !t(&f.disk_gib).is_empty() {
        spec["rootfs"] = json!({"storage": t(&f.storage), "size": quantity(&t(&f.disk_gib), "Gi")});
    }
    let mut resources = serde_json::Map::new();
    if !t(&f.cores).is_empty() {
        resources.insert("cores".into(), number_or_text(&t(&f.cores)));
    }
    if !t(&f.memory_mib).is_empty() {
        resources.insert("memory".into(), quantity(&t(&f.memory_mib), "Mi"));
    }
    if !resources.is_empty() {
        spec["resources"] = Value::Object(resources);
    }
    if !t(&f.bridge).is_empty() {
        let mut nic = json!({"name": "eth0", "bridge": t(&f.bridge), "ipv4": ipv4(&f.ip, &f.address, &f.gateway)});
        if f.firewall == "on" {
            nic["firewall"] = true.into();
        }
        spec["network"] = json!([nic]);
    }
    if f.firewall == "on" {
        spec["firewall"] = json!({"enabled": true});
    }
    spec
}

/// The object the form describes.
pub fn new_object(f: &NewForm) -> Value {
    let ar = resource::<LxcContainer>();
    json!({"apiVersion": ar.api_version, "kind": ar.kind,
           "metadata": {"name": f.name.trim(), "namespace": f.namespace.trim()}, "spec": new_spec(f)})
}

/// The form field a path (`metadata.name`, `spec.resources.memory`, ...) belongs to.
pub fn field_of(path: &str) -> &'static str {
    const MAP: &[(&str, &str)] = &[
        ("metadata.namespace", "namespace"),
        ("metadata.name", "name"),
        ("spec.clusterRef", "cluster"),
        ("spec.node", "node"),
        ("spec.source.osTemplate", "os_template"),
        ("spec.source.template", "template"),
        ("spec.source.image.storage", "image_storage"),
        ("spec.source.image", "image"),
        ("spec.source.backup", "backup"),
        ("spec.source", "source"),
        ("spec.rootfs.storage", "storage"),
        ("spec.rootfs", "disk_gib"),
        ("spec.resources.cores", "cores"),
        ("spec.resources.memory", "memory_mib"),
        ("spec.network[0].ipv4.address", "address"),
        ("spec.network[0].ipv4.gateway", "gateway"),
        ("spec.network[0].ipv4", "ip"),
        ("spec.network", "bridge"),
        ("spec.firewall", "firewall"),
        ("spec.state", "state"),
        ("spec.hostname", "name"),
    ];
    let path = path.replace(".network.", ".network[0].");
    MAP.iter()
        .find(|(p, _)| path.starts_with(p))
        .map(|(_, f)| *f)
        .unwrap_or("")
}

/// The apiserver's 422 text split into its causes (`spec.x: Invalid value: ...`), each with the
/// field it names; causes that name no form field come back with an empty field.
pub fn causes(message: &str) -> Vec<(&'static str, String)> {
    let body = message
        .split_once(" is invalid: ")
        .map(|(_, b)| b)
        .unwrap_or(message)
        .trim();
    let body = body.strip_prefix('[').and_then(|b| b.strip_suffix(']')).unwrap_or(body);
    let mut starts: Vec<usize> = Vec::new();
    for p in ["spec.", "metadata."] {
        for (i, _) in body.match_indices(p) {
            if i == 0 || body[..i].ends_with(", ") {
                starts.push(i);
            }
        }
    }
    starts.sort_unstable();
    if starts.first() != Some(&0) {
        return vec![("", message.to_string())];
    }
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map(|e| e - 2).unwrap_or(body.len());
        let cause = body[s..end].trim().to_string();
        out.push((field_of(&cause), cause));
    }
    out
}

/// The operator's own check of `spec` (the controller's [`desired::validate`]) and the
/// inventory: the complaint with the form field it is about.
pub fn preflight(f: &NewForm, spec: &Value, inv: &Inventory) -> Result<(), (&'static str, String)> {
    // a value of the wrong type is left to the apiserver's schema, whose answer names the field
    let Ok(typed) = serde_json::from_value::<LxcContainerSpec>(spec.clone()) else {
        return Ok(());
    };
    desired::validate(&typed, f.name.trim(), "").map_err(|e| {
        let path = format!("spec.{}", e.field);
        (field_of(&path), format!("{path}: {}", e.message))
    })?;
    let known = |list: &[String], v: &str| list.is_empty() || v.is_empty() || list.iter().any(|x| x == v);
    if !known(&inv.nodes, f.node.trim()) {
        let msg = format!(
            "spec.node: {} is not an online node of ProxmoxCluster {} ({})",
            f.node.trim(),
            inv.cluster,
            inv.nodes.join(", ")
        );
        return Err(("node", msg));
    }
    if !known(&inv.disk_storages, f.storage.trim()) {
        let msg = format!(
            "spec.rootfs.storage: {} has no content rootdir or images (use one of {})",
            f.storage.trim(),
            inv.disk_storages.join(", ")
        );
        return Err(("storage", msg));
    }
    if f.source == "template" && !inv.templates.iter().any(|t| t == f.template.trim()) {
        return Err((
            "template",
            format!(
                "spec.source.template.name: no LxcTemplate {:?} in namespace {}",
                f.template.trim(),
                f.namespace.trim()
            ),
        ));
    }
    if f.source == "backup" && !inv.backups.iter().any(|t| t == f.backup.trim()) {
        return Err((
            "backup",
            format!(
                "spec.source.backup.name: no completed LxcBackup {:?} in namespace {}",
                f.backup.trim(),
                f.namespace.trim()
            ),
        ));
    }
    Ok(())
}

/// One field of the wizard.
pub struct Field {
    /// Form name.
    pub name: &'static str,
    /// Label.
    pub label: &'static str,
    /// Hint after the label.
    pub hint: String,
    /// Value (as typed).
    pub value: String,
    /// `text`, `number`, `select`, `checkbox` or `list` (text with suggestions).
    pub kind: &'static str,
    /// Choices: (value, label).
    pub options: Vec<(String, String)>,
    /// The complaint about this field (shown once, here).
    pub error: String,
}

/// One step of the wizard.
pub struct Step {
    /// Heading.
    pub title: &'static str,
    /// Fields.
    pub fields: Vec<Field>,
}

fn field(name: &'static str, label: &'static str, kind: &'static str, value: &str, hint: &str) -> Field {
    Field {
        name,
        label,
        hint: hint.into(),
        value: value.into(),
        kind,
        options: Vec::new(),
        error: String::new(),
    }
}

fn pick(mut fd: Field, empty: &str, list: &[String]) -> Field {
    if list.is_empty() {
        fd.kind = "text";
        return fd;
    }
    fd.kind = "select";
    if !empty.is_empty() {
        fd.options.push((String::new(), empty.into()));
    }
    fd.options.extend(list.iter().map(|x| (x.clone(), x.clone())));
    if !fd.value.is_empty() && !list.contains(&fd.value) {
        fd.options.push((fd.value.clone(), fd.value.clone()));
    }
    fd
}

/// The wizard's steps for form `f` and inventory `inv`.
pub fn steps(f: &NewForm, inv: &Inventory) -> Vec<Step> {
    let mut source = field("source", "Source", "select", &f.source, "");
    source.options = [
        ("os", "OS template"),
        ("template", "LxcTemplate (clone)"),
        ("image", "OCI image"),
        ("backup", "LxcBackup (restore)"),
    ]
    .iter()
    .map(|(v, l)| (v.to_string(), l.to_string()))
    .collect();
    let mut os = field(
        "os_template",
        "OS template",
        "list",
        &f.os_template,
        "e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    );
    os.options = inv.os_templates.iter().map(|t| (t.clone(), t.clone())).collect();
    let mut ip = field("ip", "IPv4", "select", &f.ip, "");
    ip.options = vec![("dhcp".into(), "DHCP".into()), ("static".into(), "Static".into())];
    let mut state = field("state", "After creation", "select", &f.state, "");
    state.options = vec![
        ("Running".into(), "Start it (Running)".into()),
        ("Stopped".into(), "Leave it stopped".into()),
    ];
    vec![
        Step {
            title: "General",
            fields: vec![
                field("namespace", "Namespace", "text", &f.namespace, ""),
                field("name", "Name", "text", &f.name, "a DNS label; also the hostname"),
                pick(
                    field("cluster", "ProxmoxCluster", "text", &f.cluster, "empty: the default"),
                    "(the default)",
                    &inv.clusters,
                ),
                pick(
                    field("node", "Node", "text", &f.node, "optional: the operator places it"),
                    "(any: the operator places it)",
                    &inv.nodes,
                ),
                state,
            ],
        },
        Step {
            title: "Source",
            fields: vec![
                source,
                os,
                pick(
                    field(
                        "template",
                        "LxcTemplate",
                        "text",
                        &f.template,
                        "when the source is an LxcTemplate",
                    ),
                    "(choose)",
                    &inv.templates,
                ),
                field(
                    "image",
                    "OCI image",
                    "text",
                    &f.image,
                    "when the source is an OCI image, e.g. docker.io/library/nginx:1.27",
                ),
                pick(
                    field(
                        "image_storage",
                        "Image storage",
                        "text",
                        &f.image_storage,
                        "content vztmpl; empty: local",
                    ),
                    "(local)",
                    &inv.template_storages,
                ),
                pick(
                    field("backup", "LxcBackup", "text", &f.backup, "when the source is a backup"),
                    "(choose)",
                    &inv.backups,
                ),
            ],
        },
        Step {
            title: "Root disk",
            fields: vec![
                pick(
                    field(
                        "storage",
                        "Storage",
                        "text",
                        &f.storage,
                        "content rootdir or images; empty: Proxmox's default",
                    ),
                    "(Proxmox's default)",
                    &inv.disk_storages,
                ),
                field(
                    "disk_gib",
                    "Size (GiB)",
                    "number",
                    &f.disk_gib,
                    "empty: the template's size",
                ),
            ],
        },
        Step {
            title: "CPU and memory",
            fields: vec![
                field("cores", "Cores", "number", &f.cores, ""),
                field(
                    "memory_mib",
                    "Memory (MiB)",
                    "number",
                    &f.memory_mib,
                    "whole MiB, e.g. 512",
                ),
            ],
        },
        Step {
            title: "Network",
            fields: vec![
                pick(
                    field("bridge", "Bridge", "text", &f.bridge, "empty: no network interface"),
                    "(no network)",
                    &inv.bridges,
                ),
                ip,
                field(
                    "address",
                    "Address (CIDR)",
                    "text",
                    &f.address,
                    "static only, e.g. 10.0.0.5/24",
                ),
                field("gateway", "Gateway", "text", &f.gateway, "static only, optional"),
            ],
        },
        Step {
            title: "Firewall",
            fields: vec![field(
                "firewall",
                "Enable the Proxmox firewall (on the container and its interface)",
                "checkbox",
                &f.firewall,
                "",
            )],
        },
    ]
}

#[derive(Template)]
#[template(path = "wizard.html")]
struct WizardPage {
    chrome: Chrome,
    error: String,
    steps: Vec<Step>,
    /// The confirm step: the YAML to create (empty: still editing).
    confirm: String,
    /// The form's values, carried by the confirm step.
    hidden: Vec<(&'static str, String)>,
    /// Why the pickers are free text, or empty.
    note: String,
}

fn hidden(f: &NewForm) -> Vec<(&'static str, String)> {
    let v = |s: &String| s.clone();
    vec![
        ("namespace", v(&f.namespace)),
        ("name", v(&f.name)),
        ("cluster", v(&f.cluster)),
        ("node", v(&f.node)),
        ("source", v(&f.source)),
        ("os_template", v(&f.os_template)),
        ("template", v(&f.template)),
        ("image", v(&f.image)),
        ("image_storage", v(&f.image_storage)),
        ("backup", v(&f.backup)),
        ("storage", v(&f.storage)),
        ("disk_gib", v(&f.disk_gib)),
        ("cores", v(&f.cores)),
        ("memory_mib", v(&f.memory_mib)),
        ("bridge", v(&f.bridge)),
        ("ip", v(&f.ip)),
        ("address", v(&f.address)),
        ("gateway", v(&f.gateway)),
        ("firewall", v(&f.firewall)),
        ("state", v(&f.state)),
    ]
}

async fn names(user: &User, ar: &kube::api::ApiResource, ns: &str, ok: impl Fn(&Value) -> bool) -> Vec<Value> {
    if ns.is_empty() {
        return Vec::new();
    }
    pages::list(&user.0.client, ar, ns)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|o| ok(o))
        .collect()
}

async fn inventory(user: &User, f: &NewForm) -> Inventory {
    let listed = pages::list(&user.0.client, &resource::<ProxmoxCluster>(), "").await;
    let note = match &listed {
        Err(_) => "Your account may not read ProxmoxClusters (cluster-scoped, the platform admin's), so cluster, node, storage and bridge are typed by hand.".to_string(),
        Ok(_) => String::new(),
    };
    let mut inv = Inventory::of(&listed.unwrap_or_default(), f.cluster.trim());
    inv.note = note;
    let ns = f.namespace.trim();
    let name = |o: &Value| o["metadata"]["name"].as_str().unwrap_or("").to_string();
    let templates = names(user, &resource::<LxcTemplate>(), ns, |_| true).await;
    inv.templates = templates.iter().map(name).collect();
    inv.backups = names(user, &resource::<LxcBackup>(), ns, |b| {
        b["status"]["phase"] == "Completed"
    })
    .await
    .iter()
    .map(name)
    .collect();
    let containers = names(user, &resource::<LxcContainer>(), ns, |_| true).await;
    for o in templates.iter().chain(&containers) {
        for t in [&o["spec"]["osTemplate"], &o["spec"]["source"]["osTemplate"]] {
            push_unique(&mut inv.os_templates, t.as_str().unwrap_or(""));
        }
    }
    inv
}

async fn page(
    user: &User,
    f: &NewForm,
    status: StatusCode,
    complaints: Vec<(&'static str, String)>,
    confirm: String,
) -> Result<Response, UiError> {
    let inv = inventory(user, f).await;
    let mut steps = steps(f, &inv);
    let mut top = Vec::new();
    for (name, msg) in complaints {
        let target = steps
            .iter_mut()
            .flat_map(|s| s.fields.iter_mut())
            .find(|fd| !name.is_empty() && fd.name == name);
        match target {
            Some(fd) if fd.error.is_empty() => fd.error = msg,
            Some(fd) => fd.error = format!("{}; {msg}", fd.error),
            None => top.push(msg),
        }
    }
    let hidden = if confirm.is_empty() { Vec::new() } else { hidden(f) };
    render(
        status,
        &WizardPage {
            chrome: Chrome::new("New container", user, f.namespace.trim()).at("new"),
            error: top.join("\n"),
            steps,
            confirm,
            hidden,
            note: inv.note,
        },
    )
}

/// `GET /ui/new?ns=`: the wizard.
pub async fn new_form(user: User, Query(q): Query<Filter>) -> Result<Response, UiError> {
    let f = NewForm {
        namespace: q.namespace(&user)?,
        state: "Running".into(),
        source: "os".into(),
        ip: "dhcp".into(),
        bridge: "vmbr0".into(),
        cores: "1".into(),
        memory_mib: "512".into(),
        ..Default::default()
    };
    page(&user, &f, StatusCode::OK, Vec::new(), String::new()).await
}

fn post_params(dry_run: bool) -> PostParams {
    PostParams {
        dry_run,
        field_manager: Some(super::actions::FIELD_MANAGER.into()),
    }
}

/// `POST /ui/new`: the operator's own validation and a server-side dry run (`dryRun=All`);
/// when both pass, the confirm step (`check`) or the creation (`create`).
pub async fn create(user: User, Form(f): Form<NewForm>) -> Result<Response, UiError> {
    user.check_csrf(&f.csrf)?;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    if f.mode == "back" {
        return page(&user, &f, StatusCode::OK, Vec::new(), String::new()).await;
    }
    let ns = f.namespace.trim().to_string();
    if !valid_name(&ns) {
        let msg = "give the namespace to create the container in".to_string();
        return page(&user, &f, unprocessable, vec![("namespace", msg)], String::new()).await;
    }
    let object = new_object(&f);
    let inv = inventory(&user, &f).await;
    if let Err(c) = preflight(&f, &object["spec"], &inv) {
        return page(&user, &f, unprocessable, vec![c], String::new()).await;
    }
    let obj: DynamicObject =
        serde_json::from_value(object.clone()).map_err(|e| UiError::Refused(StatusCode::BAD_REQUEST, e.to_string()))?;
    let api = api(&user.0.client, &resource::<LxcContainer>(), &ns);
    if let Err(e) = api.create(&post_params(true), &obj).await {
        let e = UiError::from(e);
        return page(&user, &f, e.status(), causes(&e.message()), String::new()).await;
    }
    if f.mode != "create" {
        let yaml = super::model::yaml(&object);
        return page(&user, &f, StatusCode::OK, Vec::new(), yaml).await;
    }
    match api.create(&post_params(false), &obj).await {
        Ok(_) => {
            let name = f.name.trim();
            user.0.flash(
                false,
                format!("Created {ns}/{name}: the operator creates it in Proxmox now; this page follows it."),
            );
            Ok(Redirect::to(&format!("/ui/containers/{ns}/{name}")).into_response())
        }
        Err(e) => {
            let e = UiError::from(e);
            page(&user, &f, e.status(), causes(&e.message()), String::new()).await
        }
    }
}

#[cfg(test)]
#[path = "wizard_tests.rs"]
mod tests;
