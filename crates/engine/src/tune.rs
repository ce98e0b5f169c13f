//! Thresholds from the organization's own history: per principal (one row for a role or
//! user name across the accounts it works from) and resource type, the busiest window
//! it reached, how often each candidate threshold would have paged, and the
//! `[principals]`/`[resources]` rules that keep a routine quiet with a stated margin.
//!
//! A routine is what pages on many days; a burst that paged on one or two days is what
//! the tripwire is for, and nothing is suggested that would hide it.

use crate::catalogue::EC2_INSTANCE;
use crate::policy::Policy;
use crate::replay::Series;
use crate::time::{format_duration, format_millis, Millis};
use crate::wave::DailyPeak;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

const DAY: Millis = 86_400_000;

/// What counts as routine, and how much room a suggestion leaves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A group that would have paged on at least this many distinct days (UTC) is a
    /// routine; fewer is a burst to look at.
    pub min_days: usize,
    /// A suggested threshold is at least this much above the peak, in percent, rounded
    /// up to 1, 2 or 5 times a power of ten.
    pub margin_pct: u32,
    /// A resource type other than instances that this many routine principals share
    /// gets one `[resources]` rule instead of a rule each.
    pub type_rule_principals: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_days: 3,
            margin_pct: 25,
            type_rule_principals: 3,
        }
    }
}

/// How often one threshold would have paged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The threshold.
    pub threshold: u32,
    /// Incidents it would have opened.
    pub incidents: u32,
    /// Distinct days (UTC) on which it would have paged.
    pub days: u32,
}

/// One principal group and resource type: the `{"type":"suggestion"}` JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    /// Always `"suggestion"`.
    #[serde(rename = "type")]
    pub record_type: &'static str,
    /// The principal: its ARN, or a glob with the account as `*` when the same name
    /// works from several accounts; `*` for a `[resources]` rule.
    pub principal: String,
    /// What its calls destroy.
    pub resource_type: String,
    /// The accounts where it destroyed them.
    pub accounts: Vec<String>,
    /// The most resources it destroyed in one window.
    pub peak: u32,
    /// When that window ended.
    #[serde(with = "crate::time::rfc3339")]
    pub peak_time: Millis,
    /// The window, as the policy writes it.
    pub window: String,
    /// The window in milliseconds.
    pub window_ms: Millis,
    /// The threshold the policy applies now (the lowest among its accounts).
    pub threshold: u32,
    /// Distinct days (UTC) with a counted call.
    pub days_active: u32,
    /// Incidents the current threshold opened.
    pub incidents: u32,
    /// Distinct days on which the current threshold paged.
    pub days_paged: u32,
    /// The threshold suggested, when its routine pages; `null` when nothing should
    /// change.
    pub suggested_threshold: Option<u32>,
    /// How far the suggestion sits above the peak, in percent of the peak.
    pub margin_pct: Option<u32>,
    /// Incidents the suggestion would have opened over the same history.
    pub incidents_suggested: Option<u32>,
    /// Which table the rule goes in: `principals` or `resources`.
    pub rule: Option<&'static str>,
    /// The policy's rule that already matches this principal: edit it rather than
    /// append (the first matching rule applies).
    pub existing_rule: Option<String>,
    /// How often each threshold from the current one to above the peak would have paged.
    pub candidates: Vec<Candidate>,
    /// The finding, in words.
    pub reason: String,
}

/// The history's span, for the fragment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The first counted call.
    pub first: Millis,
    /// The last counted call.
    pub last: Millis,
}

/// The span the series cover, if any call was counted.
pub fn span(series: &[Series]) -> Option<Span> {
    let times = series
        .iter()
        .flat_map(|s| s.samples.iter().map(|&(t, _)| t));
    let (first, last) = times.fold(None, |acc: Option<(Millis, Millis)>, t| match acc {
        None => Some((t, t)),
        Some((a, b)) => Some((a.min(t), b.max(t))),
    })?;
    Some(Span { first, last })
}

/// The opening times of the incidents `threshold` would have opened over one key's
/// samples: the burst rule as the replay applies it (a call within one window of an
/// open incident's last call joins it; otherwise a count at the threshold opens one).
pub fn openings(samples: &[(Millis, u32)], window: Millis, threshold: u32) -> Vec<Millis> {
    let mut out = Vec::new();
    let mut last: Option<Millis> = None;
    for &(t, count) in samples {
        if let Some(l) = last.filter(|&l| t <= l.saturating_add(window)) {
            last = Some(l.max(t));
        } else if count >= threshold {
            out.push(t);
            last = Some(t);
        }
    }
    out
}

/// The smallest 1, 2 or 5 times a power of ten at or above `n`.
pub fn nice_up(n: u64) -> u64 {
    let mut scale = 1u64;
    loop {
        for step in [1, 2, 5] {
            let v = step * scale;
            if v >= n {
                return v;
            }
        }
        match scale.checked_mul(10) {
            Some(s) => scale = s,
            None => return n,
        }
    }
}

/// `arn` with its account as `*`, when it is an IAM ARN with an account.
fn any_account(arn: &str) -> Option<String> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (service == "iam" && !account.is_empty())
        .then(|| format!("arn:{partition}:{service}:{region}:*:{resource}"))
}

struct Group<'a> {
    members: Vec<&'a Series>,
    arns: BTreeSet<&'a str>,
}

struct Tally {
    incidents: u32,
    days: BTreeSet<i64>,
}

/// The incidents `threshold` would open over `members`; `None`: each key's own threshold
/// (accounts may differ), as the policy applies now.
fn tally(members: &[&Series], threshold: Option<u32>) -> Tally {
    let mut out = Tally {
        incidents: 0,
        days: BTreeSet::new(),
    };
    for s in members {
        for t in openings(&s.samples, s.window, threshold.unwrap_or(s.threshold)) {
            out.incidents += 1;
            out.days.insert(t.div_euclid(DAY));
        }
    }
    out
}

fn suggested(peak: u32, margin_pct: u32) -> u32 {
    let floor = (u64::from(peak) * u64::from(100 + margin_pct)).div_ceil(100);
    u32::try_from(nice_up(floor.max(u64::from(peak) + 1))).unwrap_or(u32::MAX)
}

fn plural(n: u32, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// One suggestion per principal group and resource type, those to act on first, then
/// by peak; then one per `[resources]` rule.
pub fn tune(policy: &Policy, series: &[Series], opts: Options) -> Vec<Suggestion> {
    let mut groups: BTreeMap<(String, &str), Group> = BTreeMap::new();
    for s in series {
        let name = any_account(&s.principal_arn).unwrap_or_else(|| s.principal_arn.clone());
        let g = groups.entry((name, s.key.kind.as_str())).or_insert(Group {
            members: Vec::new(),
            arns: BTreeSet::new(),
        });
        g.members.push(s);
        g.arns.insert(&s.principal_arn);
    }
    let mut out = Vec::new();
    for ((wild, kind), g) in &groups {
        let principal = match g.arns.iter().next() {
            Some(only) if g.arns.len() == 1 => (*only).to_owned(),
            _ => wild.clone(),
        };
        out.push(one(policy, &principal, kind, g, opts));
    }
    type_rules(policy, &mut out, &groups, opts);
    out.sort_by(|a, b| {
        (
            b.suggested_threshold.is_some(),
            b.peak,
            &a.principal,
            &a.resource_type,
        )
            .cmp(&(
                a.suggested_threshold.is_some(),
                a.peak,
                &b.principal,
                &b.resource_type,
            ))
    });
    out
}

fn one(policy: &Policy, principal: &str, kind: &str, g: &Group, opts: Options) -> Suggestion {
    let (peak, peak_time) = g
        .members
        .iter()
        .flat_map(|s| s.samples.iter())
        .map(|&(t, c)| (c, std::cmp::Reverse(t)))
        .max()
        .map(|(c, std::cmp::Reverse(t))| (c, t))
        .unwrap_or_default();
    let threshold = g.members.iter().map(|s| s.threshold).min().unwrap_or(0);
    let highest = g.members.iter().map(|s| s.threshold).max().unwrap_or(0);
    let current = if highest == threshold {
        format!("the threshold {threshold}")
    } else {
        format!("its thresholds ({threshold} to {highest} by account)")
    };
    let window = g.members.iter().map(|s| s.window).max().unwrap_or(0);
    let accounts: BTreeSet<&str> = g.members.iter().map(|s| s.key.account.as_str()).collect();
    let days_active: BTreeSet<i64> = g
        .members
        .iter()
        .flat_map(|s| s.samples.iter().map(|&(t, _)| t.div_euclid(DAY)))
        .collect();
    let now = tally(&g.members, None);
    let ceiling = suggested(peak, opts.margin_pct);
    let mut candidates = vec![threshold];
    let mut step = nice_up(u64::from(threshold) + 1);
    while step <= u64::from(ceiling) && candidates.len() < 12 {
        candidates.push(u32::try_from(step).unwrap_or(u32::MAX));
        step = nice_up(step + 1);
    }
    let candidates: Vec<Candidate> = candidates
        .into_iter()
        .map(|c| {
            let t = tally(&g.members, Some(c));
            Candidate {
                threshold: c,
                incidents: t.incidents,
                days: t.days.len() as u32,
            }
        })
        .collect();
    let existing_rule = g
        .arns
        .iter()
        .find_map(|a| policy.rule_for(a))
        .map(|r| r.glob.to_string());
    let is_root = g.arns.iter().all(|a| a.ends_with(":root"));
    // A rule's glob is the ARN itself: only characters IAM writes in one may go in it,
    // so a crafted record can neither widen a rule (`*`, `?`) nor break the TOML.
    let writable = g.arns.iter().all(|a| {
        a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":/+=,.@_-".contains(&b))
    });
    let days_paged = now.days.len() as u32;
    let what = format!(
        "{principal} peaks at {peak} {kind} in one {} window",
        format_duration(window)
    );
    let mut s = Suggestion {
        record_type: "suggestion",
        principal: principal.to_owned(),
        resource_type: kind.to_owned(),
        accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
        peak,
        peak_time,
        window: format_duration(window),
        window_ms: window,
        threshold,
        days_active: days_active.len() as u32,
        incidents: now.incidents,
        days_paged,
        suggested_threshold: None,
        margin_pct: None,
        incidents_suggested: None,
        rule: None,
        existing_rule,
        candidates,
        reason: String::new(),
    };
    s.reason = if now.incidents == 0 {
        format!(
            "{what}, under its threshold {threshold}: {}% headroom; nothing to change",
            (u64::from(threshold.saturating_sub(peak)) * 100) / u64::from(peak.max(1))
        )
    } else if is_root {
        format!(
            "{what} and paged {}: the root user is never given a rule; find who used it",
            plural(now.incidents, "time")
        )
    } else if !writable {
        format!(
            "{what} and paged {}: its ARN holds characters IAM never writes, so no rule is suggested",
            plural(now.incidents, "time")
        )
    } else if (days_paged as usize) < opts.min_days {
        let days: Vec<String> = now
            .days
            .iter()
            .map(|d| format_millis(d * DAY)[..10].to_owned())
            .collect();
        format!(
            "{what} and paged on {} ({}): a burst, not a routine; look at it before raising anything",
            plural(days_paged, "day"),
            days.join(", ")
        )
    } else {
        let t = tally(&g.members, Some(ceiling));
        s.suggested_threshold = Some(ceiling);
        s.margin_pct = Some(margin(ceiling, peak));
        s.incidents_suggested = Some(t.incidents);
        s.rule = Some("principals");
        let mut r = format!(
            "{what} and paged on {days_paged} of the {} days it worked: a rule at {ceiling} keeps a {}% margin; {current} would have paged {}",
            s.days_active,
            margin(ceiling, peak),
            plural(now.incidents, "time")
        );
        if let Some(e) = &s.existing_rule {
            r.push_str(&format!(
                "; the policy's rule \"{e}\" matches it first: edit that rule"
            ));
        }
        r
    };
    s
}

fn margin(threshold: u32, peak: u32) -> u32 {
    let extra = u64::from(threshold.saturating_sub(peak)) * 100 / u64::from(peak.max(1));
    u32::try_from(extra).unwrap_or(u32::MAX)
}

/// A type other than instances whose routine many principals share gets one
/// `[resources]` rule above all their peaks, and their own suggestions point to it.
fn type_rules(
    policy: &Policy,
    out: &mut Vec<Suggestion>,
    groups: &BTreeMap<(String, &str), Group>,
    opts: Options,
) {
    let mut by_kind: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in out.iter().enumerate() {
        if s.rule.is_some() && s.resource_type != EC2_INSTANCE && s.existing_rule.is_none() {
            by_kind.entry(s.resource_type.clone()).or_default().push(i);
        }
    }
    for (kind, routine) in by_kind {
        if routine.len() < opts.type_rule_principals || policy.resources.contains_key(&kind) {
            continue;
        }
        let peak = routine.iter().map(|&i| out[i].peak).max().unwrap_or(0);
        let peak_time = routine
            .iter()
            .map(|&i| &out[i])
            .filter(|s| s.peak == peak)
            .map(|s| s.peak_time)
            .min()
            .unwrap_or(0);
        let threshold = suggested(peak, opts.margin_pct);
        let members: Vec<&Series> = groups
            .iter()
            .filter(|((_, k), _)| *k == kind)
            .flat_map(|(_, g)| g.members.iter().copied())
            .collect();
        let now = tally(&members, None);
        let after = tally(&members, Some(threshold));
        let window = members.iter().map(|s| s.window).max().unwrap_or(0);
        let accounts: BTreeSet<String> = routine
            .iter()
            .flat_map(|&i| out[i].accounts.clone())
            .collect();
        let days: BTreeSet<i64> = members
            .iter()
            .flat_map(|s| s.samples.iter().map(|&(t, _)| t.div_euclid(DAY)))
            .collect();
        for &i in &routine {
            out[i].rule = Some("resources");
            out[i].suggested_threshold = Some(threshold);
            out[i].margin_pct = Some(margin(threshold, out[i].peak));
            out[i].reason.push_str(&format!(
                "; shared by {} routine principals, so one [resources.\"{kind}\"] rule at {threshold} covers it",
                routine.len()
            ));
        }
        out.push(Suggestion {
            record_type: "suggestion",
            principal: "*".into(),
            resource_type: kind.clone(),
            accounts: accounts.into_iter().collect(),
            peak,
            peak_time,
            window: format_duration(window),
            window_ms: window,
            threshold: members.iter().map(|s| s.threshold).min().unwrap_or(0),
            days_active: days.len() as u32,
            incidents: now.incidents,
            days_paged: now.days.len() as u32,
            suggested_threshold: Some(threshold),
            margin_pct: Some(margin(threshold, peak)),
            incidents_suggested: Some(after.incidents),
            rule: Some("resources"),
            existing_rule: None,
            candidates: Vec::new(),
            reason: format!(
                "{} routine principals destroy {kind} in bursts up to {peak} in {}: one rule at {threshold} keeps a {}% margin over them all (principals with their own rule keep it)",
                routine.len(),
                format_duration(window),
                margin(threshold, peak)
            ),
        });
    }
}

/// The shutdown-wave lane's threshold from the history's daily peaks: one line, with
/// `principal` `*` and `rule` `state_change_threshold`, when any state-change event was
/// read. The lane counts every instance going away, routine scale-ins too, so a routine
/// is what would have paged on at least `min_days` days; the suggestion sits above the
/// `min_days`-th busiest day, so a day busier than any routine still pages.
pub fn tune_waves(policy: &Policy, peaks: &[DailyPeak], opts: Options) -> Option<Suggestion> {
    let (peak, peak_time) = peaks
        .iter()
        .map(|p| (p.peak, std::cmp::Reverse(p.time)))
        .max()
        .map(|(p, std::cmp::Reverse(t))| (p, t))?;
    let mut busiest: BTreeMap<i64, u32> = BTreeMap::new();
    for p in peaks {
        let d = busiest.entry(p.day).or_default();
        *d = (*d).max(p.peak);
    }
    let window = policy.state_change_window;
    let threshold = policy.state_change_threshold;
    let paged = |t: u32| busiest.values().filter(|&&p| p >= t).count() as u32;
    let days_paged = threshold.map_or(0, paged);
    let accounts: BTreeSet<String> = peaks.iter().map(|p| p.account.clone()).collect();
    let what = format!(
        "EC2's state-change events peak at {peak} instances in one {} window of one account and region",
        format_duration(window)
    );
    let mut s = Suggestion {
        record_type: "suggestion",
        principal: "*".into(),
        resource_type: EC2_INSTANCE.into(),
        accounts: accounts.into_iter().collect(),
        peak,
        peak_time,
        window: format_duration(window),
        window_ms: window,
        threshold: threshold.unwrap_or(0),
        days_active: busiest.len() as u32,
        incidents: days_paged,
        days_paged,
        suggested_threshold: None,
        margin_pct: None,
        incidents_suggested: None,
        rule: None,
        existing_rule: None,
        candidates: Vec::new(),
        reason: String::new(),
    };
    let mut by_day: Vec<u32> = busiest.values().copied().collect();
    by_day.sort_unstable_by(|a, b| b.cmp(a));
    s.reason = match threshold {
        Some(t) if (days_paged as usize) < opts.min_days => format!(
            "{what}: state_change_threshold {t} would have paged on {}; nothing to change",
            plural(days_paged, "day")
        ),
        _ if by_day.len() < opts.min_days => format!(
            "{what}, on {}: too little history to call anything routine",
            plural(by_day.len() as u32, "day")
        ),
        _ => {
            let routine = by_day[opts.min_days - 1];
            let t = suggested(routine, opts.margin_pct);
            let still = paged(t);
            s.suggested_threshold = Some(t);
            s.margin_pct = Some(margin(t, routine));
            s.incidents_suggested = Some(still);
            s.rule = Some("state_change_threshold");
            format!(
                "{what}; {} of its {} days reach {routine}: state_change_threshold = {t} keeps a {}% margin over them{} (a top-level key: set it at the top of the policy file)",
                opts.min_days.max(by_day.iter().filter(|&&p| p >= routine).count()),
                by_day.len(),
                margin(t, routine),
                match (threshold, still) {
                    (Some(now), 0) => format!(", where {now} would have paged on {}", plural(days_paged, "day")),
                    (Some(now), n) => format!(", where {now} would have paged on {}; {} busier than any routine still page", plural(days_paged, "day"), plural(n, "day")),
                    (None, 0) => ", and turns the lane on".to_owned(),
                    (None, n) => format!(", turns the lane on, and pages on the {} busier than any routine", plural(n, "day")),
                }
            )
        }
    };
    Some(s)
}

/// The suggestions as TOML to append to the policy file as it is: only `[principals]`
/// and `[resources]` tables, one per glob or type (the highest suggestion when a
/// principal has several types), and a comment for each rule that needs editing.
pub fn toml_fragment(suggestions: &[Suggestion], span: Option<Span>) -> String {
    let mut out = String::from("# Suggested by `tripwire tune`");
    if let Some(s) = span {
        out.push_str(&format!(
            " from {} to {}",
            &format_millis(s.first)[..10],
            &format_millis(s.last)[..10]
        ));
    }
    out.push_str(
        ".\n# Append to the policy file as it is; `tripwire check-policy` checks it.\n\
         # A [principals] rule sets the principal's threshold for every type it destroys.\n",
    );
    let mut principals: BTreeMap<&str, (u32, Vec<&Suggestion>)> = BTreeMap::new();
    let mut edits = Vec::new();
    for s in suggestions {
        let Some(t) = s.suggested_threshold else {
            continue;
        };
        match (s.rule, &s.existing_rule) {
            (Some("principals"), None) => {
                let e = principals.entry(&s.principal).or_insert((0, Vec::new()));
                e.0 = e.0.max(t);
                e.1.push(s);
            }
            (Some("principals"), Some(rule)) => edits.push(comment(&format!(
                "# edit [principals.\"{}\"]: threshold = {t} ({} {})",
                quoted(rule),
                s.principal,
                s.resource_type
            ))),
            (Some("state_change_threshold"), _) => edits.push(comment(&format!(
                "# set at the top of the policy file (a top-level key cannot follow these tables): state_change_threshold = {t}"
            ))),
            (Some("resources"), _) if s.principal == "*" => {
                out.push_str(&format!(
                    "\n# {}\n[resources.\"{}\"]\nthreshold = {t}\n",
                    comment(&s.reason),
                    quoted(&s.resource_type)
                ));
            }
            _ => {}
        }
    }
    for (glob, (t, why)) in principals {
        out.push('\n');
        for s in why {
            out.push_str(&format!("# {}\n", comment(&s.reason)));
        }
        out.push_str(&format!(
            "[principals.\"{}\"]\nthreshold = {t}\n",
            quoted(glob)
        ));
    }
    if !edits.is_empty() {
        out.push('\n');
        for e in edits {
            out.push_str(&e);
            out.push('\n');
        }
    }
    out
}

/// A TOML basic string's content.
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// One comment line: a control character in a finding (a crafted record's name) would
/// end the comment and write TOML of its own.
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{Key, Lane};

    const MIN: Millis = 60_000;

    fn series(arn: &str, account: &str, kind: &str, samples: Vec<(Millis, u32)>) -> Series {
        Series {
            key: Key::of(Lane::Burst, arn, account, kind),
            principal_arn: arn.into(),
            threshold: 10,
            window: 5 * MIN,
            samples,
        }
    }

    /// One scale-in a night, `peak` instances reached by calls a minute apart.
    fn nightly(nights: i64, peak: u32) -> Vec<(Millis, u32)> {
        (0..nights)
            .flat_map(|n| {
                (1..=5).map(move |k| (n * DAY + 2 * 3_600_000 + i64::from(k) * MIN, peak * k / 5))
            })
            .collect()
    }

    #[test]
    fn openings_follow_the_burst_rule() {
        let s = [
            (0, 5),
            (MIN, 12),
            (2 * MIN, 30),
            (20 * MIN, 11),
            (40 * MIN, 3),
        ];
        assert_eq!(openings(&s, 5 * MIN, 10), vec![MIN, 20 * MIN]);
        assert_eq!(openings(&s, 5 * MIN, 31), Vec::<Millis>::new());
        // A call within one window of the last joined one keeps the incident open.
        let chain = [(0, 10), (4 * MIN, 10), (8 * MIN, 10), (12 * MIN, 10)];
        assert_eq!(openings(&chain, 5 * MIN, 10), vec![0]);
    }

    #[test]
    fn nice_numbers() {
        for (n, want) in [
            (0, 1),
            (1, 1),
            (3, 5),
            (11, 20),
            (425, 500),
            (500, 500),
            (501, 1000),
        ] {
            assert_eq!(nice_up(n), want, "{n}");
        }
    }

    #[test]
    fn a_nightly_routine_gets_a_rule_and_a_one_night_burst_does_not() {
        let policy = Policy::from_toml("").unwrap();
        let mut all = Vec::new();
        for account in ["222222222222", "333333333333"] {
            all.push(series(
                &format!("arn:aws:iam::{account}:role/KarpenterControllerRole"),
                account,
                EC2_INSTANCE,
                nightly(30, if account == "222222222222" { 340 } else { 120 }),
            ));
        }
        all.push(series(
            "arn:aws:iam::222222222222:role/vendor/cleanup-task",
            "222222222222",
            EC2_INSTANCE,
            nightly(1, 60),
        ));
        let got = tune(&policy, &all, Options::default());
        assert_eq!(got.len(), 2, "{got:#?}");
        let k = &got[0];
        assert_eq!(k.principal, "arn:aws:iam::*:role/KarpenterControllerRole");
        assert_eq!(
            (k.peak, k.suggested_threshold, k.margin_pct),
            (340, Some(500), Some(47))
        );
        assert_eq!((k.days_paged, k.days_active, k.incidents), (30, 30, 60));
        assert_eq!(k.incidents_suggested, Some(0));
        assert_eq!(k.accounts, ["222222222222", "333333333333"]);
        assert!(k.reason.contains("on 30 of the 30 days"), "{}", k.reason);
        let v = &got[1];
        assert_eq!(
            v.principal,
            "arn:aws:iam::222222222222:role/vendor/cleanup-task"
        );
        assert_eq!((v.suggested_threshold, v.days_paged), (None, 1));
        assert!(v.reason.contains("a burst, not a routine"), "{}", v.reason);
        let frag = toml_fragment(&got, span(&all));
        let text = format!("threshold = 10\n{frag}");
        let tuned = Policy::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            tuned.threshold_for(
                "arn:aws:iam::333333333333:role/KarpenterControllerRole",
                "333333333333",
                false,
                EC2_INSTANCE
            ),
            500
        );
        assert!(!frag.contains("cleanup-task\"]"), "{frag}");
    }

    #[test]
    fn an_existing_rule_is_named_for_editing_and_many_routines_of_a_type_share_one_rule() {
        let policy = Policy::from_toml(
            "[principals.\"arn:aws:iam::*:role/KarpenterControllerRole\"]\nthreshold = 50\n",
        )
        .unwrap();
        let mut all = vec![series(
            "arn:aws:iam::222222222222:role/KarpenterControllerRole",
            "222222222222",
            EC2_INSTANCE,
            nightly(10, 340),
        )];
        for team in ["a", "b", "c"] {
            all.push(series(
                &format!("arn:aws:iam::222222222222:role/backup-{team}"),
                "222222222222",
                "ec2:snapshot",
                nightly(10, 80),
            ));
        }
        let got = tune(&policy, &all, Options::default());
        let frag = toml_fragment(&got, None);
        assert!(
            frag.contains("# edit [principals.\"arn:aws:iam::*:role/KarpenterControllerRole\"]: threshold = 500"),
            "{frag}"
        );
        assert!(
            frag.contains("[resources.\"ec2:snapshot\"]\nthreshold = 100\n"),
            "{frag}"
        );
        assert!(!frag.contains("backup-a\"]"), "{frag}");
        Policy::from_toml(&frag).unwrap();
    }

    #[test]
    fn a_crafted_name_gets_no_rule_and_writes_no_toml() {
        let policy = Policy::from_toml("").unwrap();
        let crafted = [
            "arn:aws:iam::222222222222:role/x\n[principals.\"arn:aws:iam::*:role/*\"]\nthreshold = 100000",
            "arn:aws:iam::222222222222:role/*",
        ];
        let all: Vec<Series> = crafted
            .iter()
            .map(|arn| series(arn, "222222222222", EC2_INSTANCE, nightly(10, 40)))
            .collect();
        let got = tune(&policy, &all, Options::default());
        assert_eq!(got.len(), 2);
        for s in &got {
            assert_eq!(s.suggested_threshold, None, "{s:?}");
            assert!(
                s.reason.contains("characters IAM never writes"),
                "{}",
                s.reason
            );
        }
        let frag = toml_fragment(&got, span(&all));
        assert!(!frag.lines().any(|l| l.starts_with('[')), "{frag}");
        assert_eq!(Policy::from_toml(&frag).unwrap(), policy);
    }

    #[test]
    fn the_wave_threshold_sits_above_the_routine_days_and_a_wipe_day_still_pages() {
        let policy = Policy::from_toml("").unwrap();
        let mut peaks: Vec<DailyPeak> = (0..30)
            .map(|d| DailyPeak {
                account: "222222222222".into(),
                region: "us-east-1".into(),
                day: d,
                peak: 200 + (d as u32 * 7) % 140,
                time: d * DAY + 7_200_000,
            })
            .collect();
        // One day a wipe, far above any night.
        peaks[29].peak = 4000;
        let s = tune_waves(&policy, &peaks, Options::default()).unwrap();
        assert_eq!(
            (s.principal.as_str(), s.rule),
            ("*", Some("state_change_threshold"))
        );
        assert_eq!((s.peak, s.threshold, s.days_paged), (4000, 50, 30));
        // Above the third-busiest day (326): the wipe's day and the busiest night may page.
        assert_eq!(s.suggested_threshold, Some(500));
        assert_eq!(
            s.incidents_suggested,
            Some(1),
            "the wipe's day still pages, no night does"
        );
        let frag = toml_fragment(&[s], None);
        assert!(frag.contains("state_change_threshold = 500"), "{frag}");
        assert!(
            !frag.lines().any(|l| l.starts_with("state_change")),
            "a comment only: {frag}"
        );
        Policy::from_toml(&frag).unwrap();
        // Quiet history: nothing to change.
        let quiet: Vec<DailyPeak> = peaks
            .iter()
            .map(|p| DailyPeak {
                peak: 5,
                ..p.clone()
            })
            .collect();
        let s = tune_waves(&policy, &quiet, Options::default()).unwrap();
        assert_eq!(s.suggested_threshold, None);
        assert!(tune_waves(&policy, &[], Options::default()).is_none());
    }

    #[test]
    fn root_is_never_given_a_rule() {
        let policy = Policy::from_toml("").unwrap();
        let all = vec![series(
            "arn:aws:iam::222222222222:root",
            "222222222222",
            EC2_INSTANCE,
            nightly(10, 40),
        )];
        let got = tune(&policy, &all, Options::default());
        assert_eq!(got[0].suggested_threshold, None);
        assert!(got[0].reason.contains("root user"), "{}", got[0].reason);
    }
}
