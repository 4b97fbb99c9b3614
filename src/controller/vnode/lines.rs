//! The lines of a Pod's log and the query that picks them (pure): what the console keeps
//! ([`super::console`]) and what the kubelet endpoint sends ([`super::logs`]) share this.

/// The query of `/containerLogs` (as the kubelet reads it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogQuery {
    /// `tailLines`: only the last N lines.
    pub tail_lines: Option<usize>,
    /// `limitBytes`: stop after this many bytes.
    pub limit_bytes: Option<usize>,
    /// `timestamps`: each line starts with an RFC 3339 time.
    pub timestamps: bool,
    /// `follow`: keep the stream open.
    pub follow: bool,
    /// `sinceSeconds` / `sinceTime`, as epoch seconds.
    pub since: Option<i64>,
    /// `previous`: the run before the last restart.
    pub previous: bool,
}

/// Parses the query string (pure); both since* at once is an error, as at a kubelet.
pub fn parse_query(q: &str, now: i64) -> Result<LogQuery, String> {
    let mut out = LogQuery::default();
    let mut since_seconds = None;
    let mut since_time = None;
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        let num = |v: &str| v.parse::<i64>().map_err(|_| format!("{k}: {v:?} is not a number"));
        match k.as_ref() {
            "tailLines" => out.tail_lines = Some(num(&v)?.max(0) as usize),
            "limitBytes" => out.limit_bytes = Some(num(&v)?.max(1) as usize),
            "timestamps" => out.timestamps = v == "true" || v == "1",
            "follow" => out.follow = v == "true" || v == "1",
            "previous" => out.previous = v == "true" || v == "1",
            "sinceSeconds" => since_seconds = Some(num(&v)?),
            "sinceTime" => {
                let t: jiff::Timestamp = v.parse().map_err(|_| format!("sinceTime: {v:?} is not RFC 3339"))?;
                since_time = Some(t.as_second());
            }
            _ => {}
        }
    }
    out.since = match (since_seconds, since_time) {
        (Some(_), Some(_)) => return Err("at most one of sinceTime or sinceSeconds may be specified".into()),
        (Some(s), None) => Some(now - s),
        (None, t) => t,
    };
    Ok(out)
}

/// One log line: when (its task's start, or when the console sent it) and the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Epoch seconds.
    pub at: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
    /// Text, without the newline.
    pub text: String,
}

/// The lines to send (pure): since, then the tail, then rendered with or without times, then
/// cut at `limitBytes`.
pub fn render(lines: &[Line], q: &LogQuery) -> String {
    let kept: Vec<&Line> = lines.iter().filter(|l| q.since.is_none_or(|s| l.at >= s)).collect();
    let start = q.tail_lines.map(|n| kept.len().saturating_sub(n)).unwrap_or(0);
    let mut out = String::new();
    for l in &kept[start..] {
        if q.timestamps {
            let t = jiff::Timestamp::new(l.at, l.nanos as i32).unwrap_or_default();
            out.push_str(&format!("{} ", t.strftime("%Y-%m-%dT%H:%M:%S%.9fZ")));
        }
        out.push_str(&l.text);
        out.push('\n');
    }
    if let Some(max) = q.limit_bytes {
        if out.len() > max {
            let mut cut = max;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
        }
    }
    out
}
