//! Lenient serde helpers: Proxmox sometimes sends numbers as strings (`"100"`), booleans as
//! `0`/`1`, and ids as numbers or strings depending on the version.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub(crate) fn value_to_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().filter(|f| *f >= 0.0).map(|f| f as u64))
        }
        Value::Bool(b) => Some(u64::from(*b)),
        _ => None,
    }
}

pub(crate) fn value_to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().map(|f| f as i64))
        }
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

pub(crate) fn value_to_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        // Proxmox never sends NaN or infinities; a string saying so is not a number (and NaN,
        // unequal to itself, would make every comparison with it a change)
        Value::String(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

pub(crate) fn value_to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => crate::pve::props::parse_bool(s.trim()),
        _ => None,
    }
}

pub(crate) fn value_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

macro_rules! lenient {
    ($name:ident, $t:ty, $conv:ident, $what:literal) => {
        pub(crate) fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$t>, D::Error> {
            let v = Value::deserialize(d)?;
            if v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty()) {
                return Ok(None);
            }
            $conv(&v)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("expected {}, got {v}", $what)))
        }
    };
}

lenient!(opt_u64, u64, value_to_u64, "an unsigned integer");
lenient!(opt_i64, i64, value_to_i64, "an integer");
lenient!(opt_f64, f64, value_to_f64, "a number");
lenient!(opt_bool, bool, value_to_bool, "a boolean");

pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(value_to_string(&v))
}

pub(crate) fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    opt_u64(d)?
        .map(|n| u32::try_from(n).map_err(serde::de::Error::custom))
        .transpose()
}

pub(crate) fn u64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    opt_u64(d)?.ok_or_else(|| serde::de::Error::custom("missing number"))
}

pub(crate) fn u32_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    opt_u32(d)?.ok_or_else(|| serde::de::Error::custom("missing number"))
}

pub(crate) fn bool_default_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(opt_bool(d)?.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_sent_as_nan_or_infinity_is_not_a_number() {
        for s in ["NaN", "inf", "-infinity"] {
            assert_eq!(value_to_f64(&Value::String(s.into())), None, "{s}");
        }
        assert_eq!(value_to_f64(&Value::String(" 1.5 ".into())), Some(1.5));
    }
}
