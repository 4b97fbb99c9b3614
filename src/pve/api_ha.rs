//! HA operations on [`Client`]: `/cluster/ha/resources` and `/cluster/ha/rules`.
//!
//! These are synchronous configuration calls (no task): the HA stack carries out what they ask
//! on its own, so callers watch the container (inventory `hastate`, node, status) afterwards.

use reqwest::Method;
use serde_json::Value;

use super::api::Params;
use super::client::{encode_segment as seg, Client};
use super::error::{Error, Result};
use super::types::*;

/// The HA resource id of container `vmid` (`ct:100`).
pub fn ct_sid(vmid: u32) -> String {
    format!("ct:{vmid}")
}

fn resource_params(p: &mut Params, r: &HaResourceParams) {
    p.opt_str("state", &r.state)
        .opt("max_restart", r.max_restart)
        .opt("max_relocate", r.max_relocate)
        .flag("failback", r.failback)
        .opt_str("comment", &r.comment);
}

impl Client {
    async fn ha_unit(&self, method: Method, path: &str, p: &Params) -> Result<()> {
        let _: Value = self.request(method, path, p.as_slice()).await?;
        Ok(())
    }

    /// A GET whose "no such ..." answer means `None`.
    async fn ha_get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        match self.request(Method::GET, path, &[]).await {
            Ok(r) => Ok(Some(r)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /cluster/ha/resources/{sid}`; `None` when HA does not manage it.
    pub async fn ha_resource(&self, sid: &str) -> Result<Option<HaResource>> {
        self.ha_get(&format!("/cluster/ha/resources/{}", seg(sid))).await
    }

    /// `POST /cluster/ha/resources`.
    pub async fn ha_resource_create(&self, sid: &str, r: &HaResourceParams) -> Result<()> {
        let mut p = Params::new();
        p.set("sid", sid);
        resource_params(&mut p, r);
        self.ha_unit(Method::POST, "/cluster/ha/resources", &p).await
    }

    /// `PUT /cluster/ha/resources/{sid}` with the digest read before.
    pub async fn ha_resource_update(&self, sid: &str, r: &HaResourceParams, digest: Option<&str>) -> Result<()> {
        let mut p = Params::new();
        resource_params(&mut p, r);
        p.opt("digest", digest);
        self.ha_unit(Method::PUT, &format!("/cluster/ha/resources/{}", seg(sid)), &p)
            .await
    }

    /// `DELETE /cluster/ha/resources/{sid}` (also from every rule, `purge=1`). `Ok(false)` when
    /// HA did not manage it.
    pub async fn ha_resource_delete(&self, sid: &str) -> Result<bool> {
        let mut p = Params::new();
        p.flag("purge", Some(true));
        match self
            .ha_unit(Method::DELETE, &format!("/cluster/ha/resources/{}", seg(sid)), &p)
            .await
        {
            Ok(()) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `POST /cluster/ha/resources/{sid}/migrate`: asks HA to move the resource to `node`.
    pub async fn ha_migrate(&self, sid: &str, node: &str) -> Result<()> {
        let mut p = Params::new();
        p.set("node", node);
        self.ha_unit(Method::POST, &format!("/cluster/ha/resources/{}/migrate", seg(sid)), &p)
            .await
    }

    /// `GET /cluster/ha/rules/{rule}`; `None` when there is no such rule.
    pub async fn ha_rule(&self, rule: &str) -> Result<Option<HaRule>> {
        self.ha_get(&format!("/cluster/ha/rules/{}", seg(rule))).await
    }

    /// `POST /cluster/ha/rules` (`type=node-affinity`).
    pub async fn ha_node_affinity_create(&self, rule: &str, r: &HaNodeAffinityParams) -> Result<()> {
        let mut p = Params::new();
        p.set("rule", rule)
            .set("type", "node-affinity")
            .set("resources", &r.resources)
            .set("nodes", &r.nodes)
            .flag("strict", Some(r.strict))
            .opt_str("comment", &r.comment);
        self.ha_unit(Method::POST, "/cluster/ha/rules", &p).await
    }

    /// `PUT /cluster/ha/rules/{rule}` of a node-affinity rule, with the digest read before.
    pub async fn ha_node_affinity_update(
        &self,
        rule: &str,
        r: &HaNodeAffinityParams,
        digest: Option<&str>,
    ) -> Result<()> {
        let mut p = Params::new();
        p.set("type", "node-affinity")
            .set("resources", &r.resources)
            .set("nodes", &r.nodes)
            .flag("strict", Some(r.strict))
            .opt_str("comment", &r.comment)
            .opt("digest", digest);
        self.ha_unit(Method::PUT, &format!("/cluster/ha/rules/{}", seg(rule)), &p)
            .await
    }

    /// `DELETE /cluster/ha/rules/{rule}`; `Ok(false)` when there was no such rule.
    pub async fn ha_rule_delete(&self, rule: &str) -> Result<bool> {
        match self
            .ha_unit(
                Method::DELETE,
                &format!("/cluster/ha/rules/{}", seg(rule)),
                &Params::new(),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
