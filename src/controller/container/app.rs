//! The process of an application container (`spec.app`): validated (pure), its `valueFrom`
//! values read from Secrets and ConfigMaps, and mapped to Proxmox's `entrypoint` and `env`.
//!
//! Proxmox sets both from the image at create (and ignores what the create call passes), so the
//! operator creates app containers stopped and sets them with the first config update, before
//! the first start (see `converge`). Values read from Secrets never reach status, Events or logs:
//! messages name the entry (`app.env[2] (DB_PASSWORD)`), never its value, and change summaries
//! say `env changed`.

use crate::controller::InvalidSpec;
use crate::crd::lxc_container::*;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// Whether `name` is a Proxmox env name (`\w+`, ASCII).
pub fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `value` is a Proxmox env or entrypoint value: no control characters but tabs
/// (`[^\x00-\x08\x0a-\x1F\x7F]`).
pub fn valid_env_value(value: &str) -> bool {
    !value.chars().any(|c| c != '\t' && (c.is_ascii_control()))
}

/// Checks `spec.app` (pure): it goes with `source.image`; `args` need `command`; names match
/// `\w+`; literal values and command items have no control characters; each entry has exactly
/// one of `value` or `valueFrom`, each `valueFrom` exactly one source; no name twice.
pub fn validate(spec: &LxcContainerSpec) -> Result<(), InvalidSpec> {
    let Some(app) = &spec.app else { return Ok(()) };
    if spec.source.image.is_none() && spec.source.template.is_none() {
        return Err(invalid(
            "app",
            "spec.app sets the process of an application container: it needs spec.source.image (or source.template, an LxcTemplate built from an OCI image)",
        ));
    }
    if !app.args.is_empty() && app.command.is_empty() {
        return Err(invalid(
            "app.args",
            "args need command: Proxmox keeps the image's entrypoint and command as one string, so the image's command cannot be replaced on its own; set app.command too",
        ));
    }
    for (list, items) in [("command", &app.command), ("args", &app.args)] {
        for (i, a) in items.iter().enumerate() {
            if !valid_env_value(a) {
                return Err(invalid(
                    format!("app.{list}[{i}]"),
                    "contains a line break or another control character (Proxmox refuses them in the entrypoint)",
                ));
            }
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, e) in app.env.iter().enumerate() {
        let field = format!("app.env[{i}]");
        if !valid_env_name(&e.name) {
            return Err(invalid(
                format!("{field}.name"),
                format!(
                    "{:?} is not a valid name: Proxmox accepts letters, digits and _ only (\\w+; no . or -)",
                    e.name
                ),
            ));
        }
        if !names.insert(e.name.as_str()) {
            return Err(invalid(format!("{field}.name"), format!("{} is set twice", e.name)));
        }
        match (&e.value, &e.value_from) {
            (Some(v), None) if !valid_env_value(v) => {
                return Err(invalid(
                    format!("{field}.value"),
                    format!(
                        "the value of {} contains a line break or another control character (Proxmox refuses them; tabs are allowed)",
                        e.name
                    ),
                ))
            }
            (Some(_), None) => {}
            (None, Some(src)) => {
                if src.secret_key_ref.is_some() == src.config_map_key_ref.is_some() {
                    return Err(invalid(
                        format!("{field}.valueFrom"),
                        "set exactly one of secretKeyRef or configMapKeyRef",
                    ));
                }
            }
            _ => return Err(invalid(field, "set exactly one of value or valueFrom")),
        }
    }
    Ok(())
}

/// `PVE::Tools::cmd2string`: each argument shell-quoted (`String::ShellQuote`), joined by
/// spaces — the form Proxmox stores the image's entrypoint in.
pub fn entrypoint(command: &[String], args: &[String]) -> Option<String> {
    if command.is_empty() {
        return None;
    }
    let quote = |a: &String| {
        let safe = |c: char| c.is_alphanumeric() || "_!%+,-./:=@^".contains(c);
        if a.is_empty() {
            "''".to_string()
        } else if !a.contains('=') && a.chars().all(safe) {
            a.clone()
        } else {
            let q = format!("'{}'", a.replace('\'', "'\\''"));
            let q = q.strip_prefix("''").unwrap_or(&q);
            q.strip_suffix("''").unwrap_or(q).to_string()
        }
    };
    Some(command.iter().chain(args).map(quote).collect::<Vec<_>>().join(" "))
}

/// The `env` to set: the container's current list (the image's, after create) with the values
/// of `wanted` names replaced in place and the other `wanted` names appended, NUL-separated.
pub fn merge_env(current: Option<&str>, wanted: &[(String, String)]) -> String {
    let mut out: Vec<(String, String)> = current
        .unwrap_or_default()
        .split('\0')
        .filter(|e| !e.is_empty())
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.to_string(), String::new()),
        })
        .collect();
    for (k, v) in wanted {
        match out.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\0")
}

/// `spec.app` with every value known (deliberately not `Debug`: it holds Secret values).
pub struct ResolvedApp {
    /// The `entrypoint` to set, when `command` is given.
    pub entrypoint: Option<String>,
    /// The variables to set over the image's, in spec order.
    pub env: Vec<(String, String)>,
}

/// Whether the container is restarted now to apply process settings waiting for a restart
/// (`restartPolicy: OnChange` and `entrypoint` or `env` among `pending`).
pub fn restart_now(spec: &LxcContainerSpec, pending: &[String]) -> bool {
    spec.app
        .as_ref()
        .is_some_and(|a| a.restart_policy == AppRestartPolicy::OnChange)
        && pending.iter().any(|k| k == "entrypoint" || k == "env")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(app: AppSpec) -> LxcContainerSpec {
        LxcContainerSpec {
            source: ContainerSource {
                image: Some(ImageSource {
                    reference: "nginx:1.27".into(),
                    storage: "local".into(),
                }),
                ..Default::default()
            },
            app: Some(Box::new(app)),
            ..Default::default()
        }
    }

    fn var(name: &str, value: &str) -> AppEnvVar {
        AppEnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    #[test]
    fn env_names_outside_w_are_refused_naming_the_entry() {
        for bad in ["MY-VAR", "my.var", "", "A B"] {
            let e = validate(&spec(AppSpec {
                env: vec![var("OK_1", "x"), var(bad, "1")],
                ..Default::default()
            }))
            .unwrap_err();
            assert_eq!(e.field, "app.env[1].name", "{bad:?}");
            assert!(e.message.contains("letters, digits and _"), "{e}");
        }
        validate(&spec(AppSpec {
            env: vec![var("A_1", "tab\there"), var("b", "")],
            ..Default::default()
        }))
        .unwrap();
    }

    #[test]
    fn values_with_line_breaks_are_refused_without_echoing_them() {
        let e = validate(&spec(AppSpec {
            env: vec![var("TOKEN", "s3cret\nline")],
            ..Default::default()
        }))
        .unwrap_err();
        assert_eq!(e.field, "app.env[0].value");
        assert!(e.message.contains("TOKEN") && !e.message.contains("s3cret"), "{e}");
    }

    #[test]
    fn args_without_command_and_app_without_an_image_are_refused() {
        let e = validate(&spec(AppSpec {
            args: vec!["-x".into()],
            ..Default::default()
        }))
        .unwrap_err();
        assert_eq!(e.field, "app.args");
        let mut s = spec(AppSpec::default());
        s.source = ContainerSource {
            os_template: Some("local:vztmpl/x.tar.zst".into()),
            ..Default::default()
        };
        assert_eq!(validate(&s).unwrap_err().field, "app");
    }

    #[test]
    fn entries_need_exactly_one_value_source_and_names_are_unique() {
        let both = AppEnvVar {
            value_from: Some(AppEnvVarSource::default()),
            ..var("A", "1")
        };
        assert_eq!(
            validate(&spec(AppSpec {
                env: vec![both],
                ..Default::default()
            }))
            .unwrap_err()
            .field,
            "app.env[0]"
        );
        let none = AppEnvVar {
            value_from: Some(AppEnvVarSource::default()),
            ..AppEnvVar::default()
        };
        let mut none = none;
        none.name = "A".into();
        assert_eq!(
            validate(&spec(AppSpec {
                env: vec![none],
                ..Default::default()
            }))
            .unwrap_err()
            .field,
            "app.env[0].valueFrom"
        );
        let e = validate(&spec(AppSpec {
            env: vec![var("A", "1"), var("A", "2")],
            ..Default::default()
        }))
        .unwrap_err();
        assert!(e.message.contains("set twice"), "{e}");
    }

    #[test]
    fn command_and_args_become_one_shell_quoted_entrypoint() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            entrypoint(&s(&["nginx"]), &s(&["-g", "daemon off;"])).as_deref(),
            Some("nginx -g 'daemon off;'")
        );
        assert_eq!(
            entrypoint(&s(&["/bin/echo"]), &s(&["it's", "a=b", ""])).as_deref(),
            Some("/bin/echo 'it'\\''s' 'a=b' ''")
        );
        assert_eq!(entrypoint(&[], &s(&["x"])), None);
    }

    #[test]
    fn env_is_merged_over_the_images_nul_separated() {
        let image = "PATH=/usr/bin\0NGINX_VERSION=1.27.5";
        let wanted = vec![
            ("NGINX_VERSION".to_string(), "custom".to_string()),
            ("DB_URL".to_string(), "postgres://db".to_string()),
        ];
        assert_eq!(
            merge_env(Some(image), &wanted),
            "PATH=/usr/bin\0NGINX_VERSION=custom\0DB_URL=postgres://db"
        );
        // applying it again changes nothing
        let once = merge_env(Some(image), &wanted);
        assert_eq!(merge_env(Some(&once), &wanted), once);
        assert_eq!(merge_env(None, &wanted[1..]), "DB_URL=postgres://db");
    }

    #[test]
    fn only_on_change_restarts_and_only_for_process_settings() {
        let mut s = spec(AppSpec::default());
        assert!(!restart_now(&s, &["env".into()]));
        s.app.as_mut().unwrap().restart_policy = AppRestartPolicy::OnChange;
        assert!(restart_now(&s, &["entrypoint".into()]));
        assert!(!restart_now(&s, &["memory".into()]));
    }
}
