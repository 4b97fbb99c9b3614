//! Per-container firewall rules and options.

use super::*;

/// One rule as Proxmox lists it: its fields, `pos`, and the digest of the whole rule set
/// (what a later update or delete passes back as `digest`).
pub(super) fn rule_json(pos: usize, r: &Map<String, Value>, digest: &str) -> Value {
    let mut m = r.clone();
    m.insert("pos".into(), json!(pos));
    m.insert("digest".into(), json!(digest));
    Value::Object(m)
}

pub(super) fn fw_rules_digest(ct: &Ct) -> String {
    hex::encode(Sha1::digest(
        serde_json::to_string(&ct.fw_rules).unwrap_or_default().as_bytes(),
    ))
}

pub(super) fn fw_options_digest(ct: &Ct) -> String {
    hex::encode(Sha1::digest(format!("{:?}", ct.fw_options).as_bytes()))
}

pub(super) fn check_fw_digest(ct: &Ct, p: &Params) -> ApiResult<()> {
    if let Some(d) = p.str("digest") {
        if d != fw_rules_digest(ct) {
            return Err(ApiError::e500(
                "detected modified configuration - file changed by other user? Try again.",
            ));
        }
    }
    Ok(())
}

pub(super) fn rule_fields(p: &Params, into: &mut Map<String, Value>) {
    for (k, v) in &p.0 {
        if ["node", "vmid", "pos", "digest", "delete", "moveto"].contains(&k.as_str()) {
            continue;
        }
        let t = scalar_text(v).unwrap_or_default();
        let val = if k == "enable" {
            t.parse::<i64>().map(Value::from).unwrap_or(json!(t))
        } else {
            json!(t)
        };
        into.insert(k.clone(), val);
    }
}

pub(super) fn fw_rule_create(st: &mut State, p: &Params) -> ApiResult {
    let ct = st.ct_on_mut(&p.node(), p.vmid())?;
    check_fw_digest(ct, p)?;
    let mut r = Map::new();
    rule_fields(p, &mut r);
    r.entry("enable").or_insert(json!(0));
    let pos = p.u64("pos").map(|x| x as usize).unwrap_or(0).min(ct.fw_rules.len());
    ct.fw_rules.insert(pos, r);
    Ok(Value::Null)
}

pub(super) fn fw_rule_update(st: &mut State, p: &Params) -> ApiResult {
    let ct = st.ct_on_mut(&p.node(), p.vmid())?;
    check_fw_digest(ct, p)?;
    let pos = p.u64("pos").unwrap_or(0) as usize;
    if pos >= ct.fw_rules.len() {
        return Err(ApiError::e500("no rule at position"));
    }
    if let Some(to) = p.u64("moveto") {
        let r = ct.fw_rules.remove(pos);
        let to = (to as usize).min(ct.fw_rules.len());
        ct.fw_rules.insert(to, r);
        return Ok(Value::Null);
    }
    let r = &mut ct.fw_rules[pos];
    for k in propstr::split_list(&p.str("delete").unwrap_or_default()) {
        r.remove(&k);
    }
    rule_fields(p, r);
    Ok(Value::Null)
}

pub(super) fn fw_rule_list(st: &State, p: &Params) -> ApiResult {
    let ct = st.ct_on(&p.node(), p.vmid())?;
    let digest = fw_rules_digest(ct);
    Ok(Value::Array(
        ct.fw_rules
            .iter()
            .enumerate()
            .map(|(i, r)| rule_json(i, r, &digest))
            .collect(),
    ))
}

pub(super) fn fw_rule_get(st: &State, p: &Params) -> ApiResult {
    let ct = st.ct_on(&p.node(), p.vmid())?;
    let pos = p.u64("pos").unwrap_or(0) as usize;
    ct.fw_rules
        .get(pos)
        .map(|r| rule_json(pos, r, &fw_rules_digest(ct)))
        .ok_or_else(|| ApiError::param("pos", "no rule at position"))
}

pub(super) fn fw_rule_delete(st: &mut State, p: &Params) -> ApiResult {
    let ct = st.ct_on_mut(&p.node(), p.vmid())?;
    check_fw_digest(ct, p)?;
    let pos = p.u64("pos").unwrap_or(0) as usize;
    if pos >= ct.fw_rules.len() {
        return Err(ApiError::e500("no rule at position"));
    }
    ct.fw_rules.remove(pos);
    Ok(Value::Null)
}

pub(super) fn fw_options_get(st: &State, p: &Params) -> ApiResult {
    let ct = st.ct_on(&p.node(), p.vmid())?;
    let mut m = Map::new();
    for (k, v) in &ct.fw_options {
        m.insert(k.clone(), v.parse::<i64>().map(Value::from).unwrap_or(json!(v)));
    }
    m.insert("digest".into(), json!(fw_options_digest(ct)));
    Ok(Value::Object(m))
}

pub(super) fn fw_options_put(st: &mut State, p: &Params) -> ApiResult {
    let ct = st.ct_on_mut(&p.node(), p.vmid())?;
    if let Some(d) = p.str("digest") {
        if d != fw_options_digest(ct) {
            return Err(ApiError::e500(
                "detected modified configuration - file changed by other user? Try again.",
            ));
        }
    }
    for k in propstr::split_list(&p.str("delete").unwrap_or_default()) {
        ct.fw_options.remove(&k);
    }
    for (k, v) in &p.0 {
        if ["node", "vmid", "digest", "delete"].contains(&k.as_str()) {
            continue;
        }
        ct.fw_options.insert(k.clone(), scalar_text(v).unwrap_or_default());
    }
    Ok(Value::Null)
}
