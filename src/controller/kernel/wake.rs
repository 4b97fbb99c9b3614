//! The wake channels of each kind's controllers: how an object is sent for a pass when what it
//! waits for (a task slot, a queue place) frees.

use super::slots::Waker;
use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// A controller's wake channel and the namespace it watches (`None`: all).
type Route<K> = (Option<String>, mpsc::UnboundedSender<ObjectRef<K>>);

/// The wake channels of a kind's controllers, by the namespace each watches (`None`: all).
pub struct WakeRoutes<K: Resource> {
    routes: Mutex<Vec<Route<K>>>,
}

impl<K: Resource> Default for WakeRoutes<K> {
    fn default() -> Self {
        Self {
            routes: Mutex::default(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + 'static> WakeRoutes<K> {
    /// Adds the channel of a controller watching `scope`.
    pub fn add(&self, scope: Option<String>, tx: mpsc::UnboundedSender<ObjectRef<K>>) {
        super::recover(self.routes.lock(), "the wake routes").push((scope, tx));
    }

    /// A waker that sends `obj` to its controller (does nothing when none watches it).
    pub fn waker(&self, obj: &K) -> Waker {
        let r = ObjectRef::from_obj(obj);
        let tx = {
            let routes = super::recover(self.routes.lock(), "the wake routes");
            routes
                .iter()
                .find(|(scope, _)| scope.is_none() || *scope == r.namespace)
                .map(|(_, tx)| tx.clone())
        };
        Arc::new(move || {
            if let Some(tx) = &tx {
                let _ = tx.send(r.clone());
            }
        })
    }
}
