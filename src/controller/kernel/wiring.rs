//! What a kind needs to wire its controller, so that kinds depend on the kernel and the runner
//! (`run.rs`) depends on the kinds, never the other way round.

use futures::Stream;
use tokio::sync::mpsc;

/// A controller's run loop.
pub type ControllerFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A stream of what arrives on `rx`.
pub fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::UnboundedReceiver<T>) -> impl Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
