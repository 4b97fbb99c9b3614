//! The `LxcTemplate` controller: OS image (appliance download, URL download, or an existing
//! volume) → template container → `template` conversion → Ready; immutable builds kept while
//! linked clones use them; deletion refused while linked clones depend on the template.

pub mod build;
pub mod cleanup;
pub mod footprint;
pub mod pass;
pub mod reconcile;
pub mod tenancy;

use super::context::Context;
use super::kernel::wiring::ControllerFuture;
use crate::crd::{LxcContainer, LxcTemplate};
use futures::StreamExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{predicates, reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// The template a container clones from, when that container is going away: a template whose
/// deletion waits for its linked clones looks again then.
pub fn template_of_departing_container(c: &LxcContainer) -> Option<ObjectRef<LxcTemplate>> {
    c.metadata.deletion_timestamp.as_ref()?;
    let t = c.spec.source.template.as_ref()?;
    Some(ObjectRef::new(&t.name).within(&c.namespace()?))
}

/// The `LxcTemplate` controller of one namespace (or all): reacts to spec changes and deletion
/// of templates (not to its own status writes) and to departing containers cloned from them.
pub fn controller(
    client: &Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
) -> (ControllerFuture, Store<LxcTemplate>) {
    let (templates, containers): (Api<LxcTemplate>, Api<LxcContainer>) = match namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let (reader, writer) = reflector::store();
    let stream = watcher(templates, crate::controller::kernel::wiring::cache_watch_config())
        .default_backoff()
        .modify(crate::controller::kernel::wiring::slim_for_cache)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let (wake, wake_rx) = tokio::sync::mpsc::unbounded_channel();
    ctx.wakes.templates.add(namespace.map(str::to_string), wake);
    let run = Controller::for_stream(stream, reader.clone())
        .with_config(kube::runtime::controller::Config::default().debounce(Duration::from_millis(100)))
        .watches(
            containers,
            crate::controller::kernel::wiring::cache_watch_config(),
            |c| template_of_departing_container(&c),
        )
        .reconcile_on(crate::controller::kernel::wiring::tokio_stream_from(wake_rx))
        .graceful_shutdown_on(ctx.shutdown.triggered())
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|_| async {});
    (Box::pin(run), reader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::lxc_container::{ContainerSource, LxcContainerSpec, TemplateSource};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn container(deleting: bool, template: Option<&str>) -> LxcContainer {
        let mut c = LxcContainer::new(
            "web",
            LxcContainerSpec {
                source: ContainerSource {
                    template: template.map(|n| TemplateSource {
                        name: n.into(),
                        full: false,
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("ns".into());
        if deleting {
            c.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        }
        c
    }

    #[test]
    fn only_departing_containers_cloned_from_a_template_wake_it() {
        assert_eq!(
            template_of_departing_container(&container(true, Some("base"))),
            Some(ObjectRef::new("base").within("ns"))
        );
        assert_eq!(template_of_departing_container(&container(false, Some("base"))), None);
        assert_eq!(template_of_departing_container(&container(true, None)), None);
    }
}
