//! Reading the values `spec.app` names (Secrets marked for it, ConfigMaps of the object's
//! namespace): the async half of `spec.app`, which halts the pass while a source is missing or
//! a value would be refused. The pure half (rules, entrypoint, env merge) is [`super::app`].

use super::app::{entrypoint, valid_env_value, ResolvedApp};
use super::pass::P;
use crate::controller::error::KubeOp;
use crate::controller::kernel::{Halt, Reason, Step};
use crate::controller::{jitter, Error, InvalidSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::time::Duration;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// Reads every value of `spec.app` (Secrets and ConfigMaps of the object's namespace).
/// Halts the pass on a source that does not exist yet (waiting, reason `EnvSourceNotFound`)
/// or a value Proxmox would refuse (`InvalidSpec`). `None` without `spec.app`.
pub(super) async fn resolve(p: &mut P<'_>) -> Step<Option<ResolvedApp>> {
    let Some(app) = p.obj.spec.app.clone() else {
        return Ok(None);
    };
    let ns = p.obj.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(p.ctx.kube.clone(), &ns);
    let maps: Api<ConfigMap> = Api::namespaced(p.ctx.kube.clone(), &ns);
    let mut env = Vec::new();
    for (i, e) in app.env.iter().enumerate() {
        let (value, what, optional) = match (&e.value, &e.value_from) {
            (Some(v), _) => (Some(v.clone()), String::new(), false),
            (None, Some(src)) => match (&src.secret_key_ref, &src.config_map_key_ref) {
                (Some(r), _) => {
                    let s = secrets.get_opt(&r.name).await.op("read an app.env Secret")?;
                    if let Some(a) = super::tenancy::unmarked_secret(p, s.as_ref(), i).await? {
                        return Err(Halt::Done(a));
                    }
                    let v = s.and_then(|s| s.data?.get(&r.key).map(|v| v.0.clone()));
                    let v = v.map(|b| String::from_utf8(b).map_err(|_| ()));
                    match v {
                        Some(Err(())) => {
                            let message = format!(
                                "the value of {} (Secret {} key {}) is not UTF-8 text",
                                e.name, r.name, r.key
                            );
                            return Err(Halt::end(refused_value(p, i, message).await));
                        }
                        other => (
                            other.and_then(Result::ok),
                            format!("Secret {} key {}", r.name, r.key),
                            r.optional,
                        ),
                    }
                }
                (None, Some(r)) => {
                    let m = maps.get_opt(&r.name).await.op("read an app.env ConfigMap")?;
                    let v = m.and_then(|m| m.data?.get(&r.key).cloned());
                    (v, format!("ConfigMap {} key {}", r.name, r.key), r.optional)
                }
                (None, None) => (None, String::new(), true),
            },
            (None, None) => (None, String::new(), true),
        };
        match value {
            Some(v) if !valid_env_value(&v) => {
                let message = format!(
                    "the value of {} from {what} contains a line break or another control character (Proxmox refuses them; tabs are allowed)",
                    e.name
                );
                return Err(Halt::end(refused_value(p, i, message).await));
            }
            Some(v) => env.push((e.name.clone(), v)),
            None if optional => {}
            None => {
                let msg = format!("app.env[{i}] ({}): {what} does not exist (yet)", e.name);
                let wait = p.retry(Reason::EnvSourceNotFound);
                return Err(Halt::end(p.not_ready(Reason::EnvSourceNotFound, msg, wait).await));
            }
        }
    }
    Ok(Some(ResolvedApp {
        entrypoint: entrypoint(&app.command, &app.args),
        env,
    }))
}

/// How often a refused value is read again.
const VALUE_RECHECK: Duration = Duration::from_secs(60);

/// A value read from a Secret or ConfigMap that Proxmox would refuse: `InvalidSpec` naming the
/// entry (never the value), looked at again every minute (the source may be fixed without a
/// spec change).
async fn refused_value(p: &mut P<'_>, i: usize, message: String) -> Result<Action, Error> {
    p.invalid(invalid(format!("app.env[{i}].valueFrom"), message)).await?;
    Ok(Action::requeue(jitter(VALUE_RECHECK)))
}
