//! The container's edit form: cores, memory, power state, the first network interface and the
//! firewall, applied as a JSON merge patch with the user's own token after the operator's own
//! validation and a server-side dry run.

use super::actions::FIELD_MANAGER;
use super::pages::{api, checked, render, resource, to_json, Chrome};
use super::wizard::{causes, field_of};
use super::{UiError, User};
use crate::controller::container::desired;
use crate::crd::{LxcContainer, LxcContainerSpec};
use askama::Template;
use axum::extract::{Form, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use kube::api::{Patch, PatchParams};
use serde::Deserialize;
use serde_json::{json, Value};

/// The edit form.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
pub struct EditForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// Cores (empty: Proxmox's default).
    #[serde(default)]
    pub cores: String,
    /// Memory: whole MiB, or a quantity like `1Gi`.
    #[serde(default)]
    pub memory: String,
    /// `Running` or `Stopped`.
    #[serde(default)]
    pub state: String,
    /// Bridge of `eth0`/the first interface (empty: no interface).
    #[serde(default)]
    pub bridge: String,
    /// `dhcp` or `static`.
    #[serde(default)]
    pub ip: String,
    /// Static address (CIDR).
    #[serde(default)]
    pub address: String,
    /// Static gateway.
    #[serde(default)]
    pub gateway: String,
    /// `on`: the firewall is enabled.
    #[serde(default)]
    pub firewall: String,
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

impl EditForm {
    /// The form filled from the object's spec.
    pub fn of(spec: &Value) -> EditForm {
        let nic = &spec["network"][0];
        let memory = s(&spec["resources"]["memory"]);
        EditForm {
            csrf: String::new(),
            cores: s(&spec["resources"]["cores"]),
            memory: memory.strip_suffix("Mi").map(String::from).unwrap_or(memory),
            state: spec["state"].as_str().unwrap_or("Running").to_string(),
            bridge: s(&nic["bridge"]),
            ip: if nic["ipv4"]["address"].is_string() {
                "static".into()
            } else {
                "dhcp".into()
            },
            address: s(&nic["ipv4"]["address"]),
            gateway: s(&nic["ipv4"]["gateway"]),
            firewall: if spec["firewall"]["enabled"] == true {
                "on".into()
            } else {
                String::new()
            },
        }
    }
}

fn quantity(v: &str) -> Value {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        format!("{v}Mi").into()
    } else {
        v.into()
    }
}

/// The merge patch (of `spec`) that takes `spec` to what the form says; the other interfaces
/// and the firewall's rules are kept.
pub fn patch(spec: &Value, f: &EditForm) -> Value {
    let mut p = json!({"state": f.state.trim()});
    let cores = f.cores.trim();
    let mut resources = json!({
        "cores": if cores.is_empty() { Value::Null } else { cores.parse::<i64>().map(Value::from).unwrap_or_else(|_| cores.into()) },
        "memory": if f.memory.trim().is_empty() { Value::Null } else { quantity(f.memory.trim()) },
    });
    if resources["cores"] == spec["resources"]["cores"] {
        resources.as_object_mut().map(|r| r.remove("cores"));
    }
    p["resources"] = resources;
    let mut nics: Vec<Value> = spec["network"].as_array().cloned().unwrap_or_default();
    let bridge = f.bridge.trim();
    if bridge.is_empty() {
        if !nics.is_empty() {
            nics.remove(0);
        }
    } else {
        let mut nic = nics.first().cloned().unwrap_or_else(|| json!({"name": "eth0"}));
        nic["bridge"] = bridge.into();
        nic["ipv4"] = super::wizard::ipv4(&f.ip, &f.address, &f.gateway);
        if f.firewall == "on" || nic.get("firewall").is_some() {
            nic["firewall"] = (f.firewall == "on").into();
        }
        if nics.is_empty() {
            nics.push(nic);
        } else {
            nics[0] = nic;
        }
    }
    if Value::Array(nics.clone()) != spec["network"] && !(nics.is_empty() && spec["network"].is_null()) {
        p["network"] = Value::Array(nics);
    }
    let on = f.firewall == "on";
    if on || spec["firewall"].is_object() {
        p["firewall"] = json!({"enabled": on});
    }
    p
}

/// `spec` with the merge patch `p` applied (RFC 7396).
fn merged(spec: &Value, p: &Value) -> Value {
    let mut out = spec.clone();
    json_patch_merge(&mut out, p);
    out
}

fn json_patch_merge(target: &mut Value, p: &Value) {
    let Value::Object(pm) = p else {
        *target = p.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in pm {
        if v.is_null() {
            t.remove(k);
        } else {
            json_patch_merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The operator's own validation of the edited spec: the complaint with its form field.
pub fn preflight(name: &str, spec: &Value, p: &Value) -> Result<(), (&'static str, String)> {
    // a value of the wrong type is left to the apiserver's schema, whose answer names the field
    let Ok(typed) = serde_json::from_value::<LxcContainerSpec>(merged(spec, p)) else {
        return Ok(());
    };
    desired::validate(&typed, name, "").map(|_| ()).map_err(|e| {
        let path = format!("spec.{}", e.field);
        (edit_field(field_of(&path)), format!("{path}: {}", e.message))
    })
}

/// The edit form's name of a wizard field.
fn edit_field(wizard: &'static str) -> &'static str {
    match wizard {
        "memory_mib" => "memory",
        "cores" | "state" | "bridge" | "ip" | "address" | "gateway" | "firewall" => wizard,
        _ => "",
    }
}

#[derive(Template)]
#[template(path = "edit.html")]
struct EditPage {
    chrome: Chrome,
    ns: String,
    name: String,
    form: EditForm,
    error: String,
    /// Per field: (name, message), each shown once next to its field.
    errors: Vec<(&'static str, String)>,
}

impl EditPage {
    fn error_of(&self, field: &str) -> String {
        self.errors
            .iter()
            .filter(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn page(
    user: &User,
    (ns, name): (&str, &str),
    form: EditForm,
    status: StatusCode,
    complaints: Vec<(&'static str, String)>,
) -> Result<Response, UiError> {
    let (errors, top): (Vec<_>, Vec<_>) = complaints.into_iter().partition(|(f, _)| !f.is_empty());
    render(
        status,
        &EditPage {
            chrome: Chrome::new(&format!("Edit {name}"), user, ns).at("containers"),
            ns: ns.into(),
            name: name.into(),
            form,
            error: top.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("\n"),
            errors,
        },
    )
}

async fn spec_of(user: &User, ns: &str, name: &str) -> Result<Value, UiError> {
    let ar = resource::<LxcContainer>();
    let obj = api(&user.0.client, &ar, ns).get(name).await?;
    Ok(to_json(&obj, &ar)["spec"].clone())
}

/// `GET /ui/containers/{ns}/{name}/edit`: the edit form, filled from the spec.
pub async fn edit_form(user: User, Path((ns, name)): Path<(String, String)>) -> Result<Response, UiError> {
    checked(&ns, &name)?;
    let spec = spec_of(&user, &ns, &name).await?;
    page(&user, (&ns, &name), EditForm::of(&spec), StatusCode::OK, Vec::new())
}

/// `POST /ui/containers/{ns}/{name}/edit`: the operator's validation, a dry-run merge patch,
/// then the patch; a refusal shows the form again with the message at its field.
pub async fn apply(
    user: User,
    Path((ns, name)): Path<(String, String)>,
    Form(f): Form<EditForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&f.csrf)?;
    checked(&ns, &name)?;
    let spec = spec_of(&user, &ns, &name).await?;
    let p = patch(&spec, &f);
    if let Err(c) = preflight(&name, &spec, &p) {
        return page(&user, (&ns, &name), f, StatusCode::UNPROCESSABLE_ENTITY, vec![c]);
    }
    let objects = api(&user.0.client, &resource::<LxcContainer>(), &ns);
    let body = Patch::Merge(json!({"spec": p}));
    let mut params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let dry = params.clone().dry_run();
    let result = match objects.patch(&name, &dry, &body).await {
        Ok(_) => {
            params.dry_run = false;
            objects.patch(&name, &params, &body).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
            user.0.flash(
                false,
                format!("Saved {ns}/{name}: the operator applies the change in Proxmox now."),
            );
            Ok(Redirect::to(&format!("/ui/containers/{ns}/{name}")).into_response())
        }
        Err(e) => {
            let e = UiError::from(e);
            let complaints = causes(&e.message())
                .into_iter()
                .map(|(f, m)| (edit_field(f), m))
                .collect();
            page(&user, (&ns, &name), f, e.status(), complaints)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Value {
        json!({"state": "Running", "source": {"osTemplate": "local:vztmpl/d.tar.zst"},
               "resources": {"cores": 1, "memory": "512Mi"},
               "network": [{"name": "eth0", "bridge": "vmbr0", "ipv4": {"dhcp": true}},
                           {"name": "eth1", "bridge": "vmbr1", "ipv4": {"dhcp": true}}],
               "firewall": {"enabled": false, "rules": [{"action": "ACCEPT", "direction": "in"}]}})
    }

    #[test]
    fn an_unchanged_form_patches_nothing_but_the_state_and_resources_it_already_has() {
        let s = spec();
        let f = EditForm::of(&s);
        assert_eq!(f.memory, "512");
        let p = patch(&s, &f);
        assert_eq!(merged(&s, &p), s);
        assert!(p.get("network").is_none(), "{p}");
    }

    #[test]
    fn editing_memory_and_the_first_nic_keeps_the_other_nic_and_the_firewall_rules() {
        let s = spec();
        let mut f = EditForm::of(&s);
        f.memory = "1024".into();
        f.ip = "static".into();
        f.address = "10.0.0.9/24".into();
        f.firewall = "on".into();
        let m = merged(&s, &patch(&s, &f));
        assert_eq!(m["resources"]["memory"], "1024Mi");
        assert_eq!(m["network"][0]["ipv4"], json!({"address": "10.0.0.9/24"}));
        assert_eq!(m["network"][1]["name"], "eth1");
        assert_eq!(
            m["firewall"],
            json!({"enabled": true, "rules": [{"action": "ACCEPT", "direction": "in"}]})
        );
        assert_eq!(preflight("web", &s, &patch(&s, &f)), Ok(()));
    }

    #[test]
    fn memory_that_is_not_whole_mib_is_refused_at_the_memory_field_before_any_patch() {
        let s = spec();
        let mut f = EditForm::of(&s);
        f.memory = "1G".into();
        assert_eq!(preflight("web", &s, &patch(&s, &f)).unwrap_err().0, "memory");
    }
}
