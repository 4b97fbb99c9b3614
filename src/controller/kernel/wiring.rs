//! What a kind needs to wire its controller, so that kinds depend on the kernel and the runner
//! (`run.rs`) depends on the kinds, never the other way round.

use futures::Stream;
use kube::runtime::watcher;
use tokio::sync::mpsc;

/// A controller's run loop.
pub type ControllerFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A stream of what arrives on `rx`.
pub fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::UnboundedReceiver<T>) -> impl Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// What a cache keeps of an object: every object is kept, so not what no controller reads:
/// managedFields (at 10,000 objects tens of MiB alone) and the annotations of other tools
/// (kubectl's last-applied copy of the whole object, up to 256 KiB each, GitOps tracking); ours
/// (`pve.lxc.dev/…`) stay. Used by every cache of a namespaced kind a tenant writes.
pub fn slim_for_cache<K: kube::Resource>(o: &mut K) {
    let meta = o.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.retain(|k, _| k.starts_with("pve.lxc.dev/"));
        if a.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Objects per page of a cache's list (the first one, and every relist after a watch expired).
/// A page is held twice while it is decoded (the response body and the objects), and two
/// watches list `LxcContainer`s at start (the cache and the template controller's), so with
/// objects of up to 512 KiB (the schema's bounds) kube's default of 500 per page made the
/// start-up list the process's peak (200 maximal objects: 299 MiB, over the chart's 256 MiB
/// limit; 236 MiB with 50 per page). 20 per page keeps it to ~10 MiB per list, at 500 list calls
/// for 10,000 objects.
pub const CACHE_LIST_PAGE: u32 = 20;

/// The watch configuration of the caches of namespaced kinds ([`CACHE_LIST_PAGE`]).
pub fn cache_watch_config() -> watcher::Config {
    watcher::Config::default().page_size(CACHE_LIST_PAGE)
}
