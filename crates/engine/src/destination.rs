//! What each destination beyond SNS receives for an alert: an Amazon Q Developer in chat
//! applications custom notification, a PagerDuty Events API v2 event, a Security Hub
//! finding (ASFF), and the EventBridge event that carries the first two to their rules.
//! Rendering only, from the alert's [`Card`]; `tripwire render` and the functions call
//! the same functions, so what a user tests is what is sent.
//!
//! Reading alerts back ([`alert_from_json`]) turns the JSON the alerts carry and the
//! backtest's incident and tamper lines into the same [`Alert`] the functions render.

use crate::alert::{
    render, render_coverage, render_never_seen, render_tamper, render_wave, Alert, AlertKind,
    ContainmentStatus, Rule, WaveStage,
};
use crate::armed::{Deployed, HeartbeatState, Tamper};
use crate::incident::Incident;
use crate::time::{format_millis, Millis};
use crate::window::Lane;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The custom notification's description: chat clients cut long messages, and the
/// instance IDs are in the SNS JSON and the manifest, not here.
const CHAT_DESCRIPTION_MAX: usize = 3_000;
/// PagerDuty truncates `summary` at 1,024 characters.
const PAGE_SUMMARY_MAX: usize = 1_024;
/// ASFF limits (BatchImportFindings rejects a finding past them).
const FINDING_TITLE_MAX: usize = 256;
const FINDING_DESCRIPTION_MAX: usize = 1_024;
const FINDING_RECOMMENDATION_MAX: usize = 512;

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The card's markdown as plain text (Security Hub shows text as is).
fn plain(s: &str) -> String {
    s.replace(['*', '`'], "")
}

/// An Amazon Q Developer in chat applications custom notification: publish it as the
/// message of a topic a chat channel is subscribed to. Threaded by the card's key.
pub fn chatbot(a: &Alert) -> Value {
    let c = &a.card;
    let context: Map<String, Value> = c
        .context
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .chain([
            ("severity".to_owned(), a.kind.severity().into()),
            ("time".to_owned(), format_millis(c.time).into()),
        ])
        .collect();
    json!({
        "version": "1.0",
        "source": "custom",
        "id": format!("{}:{}:{}", c.key, a.kind.as_str(), c.time),
        "content": {
            "textType": "client-markdown",
            "title": format!("{} {}", emoji(a.kind), c.title),
            "description": cut(&c.description, CHAT_DESCRIPTION_MAX),
            "nextSteps": c.next_steps,
            "keywords": c.keywords,
        },
        "metadata": {
            "threadId": c.key,
            "summary": a.subject,
            "eventType": a.kind.as_str(),
            "relatedResources": c.resources.iter().map(|(_, id)| id).collect::<Vec<_>>(),
            "additionalContext": context,
        },
    })
}

fn emoji(kind: AlertKind) -> &'static str {
    match kind.severity() {
        "critical" => ":rotating_light:",
        "high" => ":warning:",
        _ => ":information_source:",
    }
}

/// PagerDuty's severity for a tripwire severity: it knows critical, error, warning, info.
fn page_severity(kind: AlertKind) -> &'static str {
    match kind.severity() {
        "critical" => "critical",
        "high" => "error",
        _ => "info",
    }
}

/// A PagerDuty Events API v2 event, without `routing_key` (the EventBridge connection
/// adds it from Secrets Manager). `trigger` for everything but a release or a restored
/// region, which `resolve` the page their key opened; `dedup_key` is the card's key, so
/// an incident's updates and its containment land on its one page.
pub fn pagerduty(a: &Alert) -> Value {
    let c = &a.card;
    if c.resolves {
        return json!({
            "event_action": "resolve",
            "dedup_key": c.key,
        });
    }
    let component = c
        .resources
        .first()
        .map_or(a.account.as_str(), |(_, id)| id.as_str());
    json!({
        "event_action": "trigger",
        "dedup_key": c.key,
        "client": "tripwire",
        "payload": {
            "summary": cut(&a.subject, PAGE_SUMMARY_MAX),
            "source": format!("aws:{}:{}", a.account, c.region),
            "severity": page_severity(a.kind),
            "timestamp": format_millis(c.time),
            "component": component,
            "group": a.account,
            "class": a.kind.as_str(),
            "custom_details": {
                "description": plain(&c.description),
                "next_steps": c.next_steps,
                "context": c.context.iter().cloned().collect::<BTreeMap<_, _>>(),
            },
        },
    })
}

/// Where findings are imported: the account and region calling BatchImportFindings, and
/// their partition (the default product is `product/ACCOUNT/default` there).
#[derive(Debug, Clone)]
pub struct FindingContext {
    /// The importing (central) account.
    pub account: String,
    /// Its region.
    pub region: String,
    /// `aws`, `aws-us-gov`, `aws-cn`.
    pub partition: String,
}

impl FindingContext {
    /// The account's default product, which every account may import findings for.
    pub fn product_arn(&self) -> String {
        format!(
            "arn:{}:securityhub:{}:{}:product/{}/default",
            self.partition, self.region, self.account, self.account
        )
    }
}

/// The finding's ID for an incident: one per incident, updated by each of its alerts.
pub fn finding_id(key: &str) -> String {
    format!("tripwire/{key}")
}

fn finding_severity(rule: Rule) -> &'static str {
    match rule {
        Rule::Lane(Lane::Burst) => "CRITICAL",
        Rule::Lane(Lane::Attempt) => "MEDIUM",
        _ => "HIGH",
    }
}

/// A Security Hub finding (ASFF): the fields the tripwire sets, named as ASFF names
/// them, so its JSON is what `tripwire render --format asff` prints and the importer
/// maps each field to the SDK's by type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Finding {
    pub schema_version: &'static str,
    pub id: String,
    pub product_arn: String,
    pub generator_id: String,
    pub aws_account_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub first_observed_at: String,
    pub last_observed_at: String,
    pub finding_provider_fields: ProviderFields,
    pub title: String,
    pub description: String,
    pub remediation: Remediation,
    pub product_fields: BTreeMap<String, String>,
    pub resources: Vec<FindingResource>,
    /// `ACTIVE`, or `ARCHIVED` once released.
    pub record_state: &'static str,
}

/// The fields only a finding's provider sets on an existing finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProviderFields {
    pub severity: Severity,
    pub types: Vec<&'static str>,
}

/// A finding's severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Severity {
    pub label: &'static str,
    pub original: &'static str,
}

/// What to do about a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Remediation {
    pub recommendation: Recommendation,
}

/// The recommendation's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Recommendation {
    pub text: String,
}

/// A resource a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FindingResource {
    #[serde(rename = "Type")]
    pub kind: String,
    pub id: String,
    pub partition: String,
    pub region: String,
}

/// The Security Hub finding (ASFF) an incident's alert imports or updates: `None` for
/// the tripwire's own alarms, which are not incidents. With the default product ARN the
/// finding must be the importing account's (`AwsAccountId`); the account where the
/// instances died is a resource. Severity and types go in `FindingProviderFields`, the
/// only way a provider may set them on an existing finding; a release archives it.
pub fn asff(a: &Alert, ctx: &FindingContext) -> Option<Finding> {
    if a.kind.is_own_alarm() {
        return None;
    }
    let c = &a.card;
    let product_fields = c
        .context
        .iter()
        .map(|(k, v)| (format!("tripwire/{k}"), v.clone()))
        .chain([
            ("tripwire/alert".to_owned(), a.kind.as_str().to_owned()),
            ("tripwire/rule".to_owned(), c.rule.as_str().to_owned()),
        ])
        .collect();
    let resources = c
        .resources
        .iter()
        .map(|(kind, id)| FindingResource {
            kind: kind.clone(),
            id: id.clone(),
            partition: ctx.partition.clone(),
            region: c.region.clone(),
        })
        .collect();
    let severity = finding_severity(c.rule);
    Some(Finding {
        schema_version: "2018-10-08",
        id: finding_id(&c.key),
        product_arn: ctx.product_arn(),
        generator_id: format!("tripwire/{}", c.rule),
        aws_account_id: ctx.account.clone(),
        created_at: format_millis(c.opened),
        updated_at: format_millis(c.time),
        first_observed_at: format_millis(c.first_seen),
        last_observed_at: format_millis(c.last_seen),
        finding_provider_fields: ProviderFields {
            severity: Severity {
                label: severity,
                original: severity,
            },
            types: FINDING_TYPES.to_vec(),
        },
        title: cut(&c.headline, FINDING_TITLE_MAX),
        description: cut(&plain(&c.description), FINDING_DESCRIPTION_MAX),
        remediation: Remediation {
            recommendation: Recommendation {
                text: cut(&plain(&c.next_steps.join(" ")), FINDING_RECOMMENDATION_MAX),
            },
        },
        product_fields,
        resources,
        record_state: if c.resolves { "ARCHIVED" } else { "ACTIVE" },
    })
}

/// ASFF types: the calls destroy resources, and a principal behaves unlike itself.
pub const FINDING_TYPES: [&str; 2] = ["TTPs/Impact", "Unusual Behaviors/User"];

/// The workflow status an incident's alert moves its finding to, with a note saying
/// why: BatchImportFindings may not change an existing finding's workflow, so the
/// importer sets it with BatchUpdateFindings. Detection and updates leave it as is
/// (`NEW`, or whatever an analyst set).
pub fn workflow(a: &Alert) -> Option<(&'static str, String)> {
    let status = match a.kind {
        AlertKind::Contained | AlertKind::ContainmentFailed => "NOTIFIED",
        AlertKind::Released => "RESOLVED",
        _ => return None,
    };
    Some((status, cut(&plain(&a.subject), FINDING_RECOMMENDATION_MAX)))
}

/// Where an alert goes. Each destination is one [`DESTINATIONS`] entry with its
/// renderer ([`render_for`]); the rule that the page must go out and the rest is best
/// effort lives once, in the pipeline's alerting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The page: the SNS topic's text, for e-mail, SMS and pagers.
    Page,
    /// The SNS topic's JSON, for SQS, Lambda and HTTPS subscribers.
    Subscribers,
    /// An Amazon Q Developer in chat applications custom notification.
    Chat,
    /// A PagerDuty Events API v2 event, without the routing key.
    PagerDuty,
    /// A Security Hub finding (ASFF), for incidents.
    SecurityHub,
}

/// How an alert reaches a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Published to SNS: the page. It must succeed, or the alert failed.
    Sns,
    /// Carried in the alert bus event's `destinations.<key>`, which a central stack rule
    /// sends on as it is.
    BusDetail(&'static str),
    /// Rendered from the alert bus event by its own function (the findings function).
    FromBus,
}

/// One destination, its `tripwire render --format` name and its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Which destination.
    pub destination: Destination,
    /// Its `--format` name.
    pub format: &'static str,
    /// How it is delivered.
    pub delivery: Delivery,
}

/// Every destination. Adding one is an entry here, a renderer in [`render_for`] and,
/// when it rides on the bus, a central stack rule.
pub const DESTINATIONS: [Entry; 5] = [
    Entry {
        destination: Destination::Page,
        format: "text",
        delivery: Delivery::Sns,
    },
    Entry {
        destination: Destination::Subscribers,
        format: "json",
        delivery: Delivery::Sns,
    },
    Entry {
        destination: Destination::Chat,
        format: "chatbot",
        delivery: Delivery::BusDetail("chatbot"),
    },
    Entry {
        destination: Destination::PagerDuty,
        format: "pagerduty",
        delivery: Delivery::BusDetail("pagerduty"),
    },
    Entry {
        destination: Destination::SecurityHub,
        format: "asff",
        delivery: Delivery::FromBus,
    },
];

/// What a destination receives for an alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    /// A subject and a text (the page).
    Text {
        /// The subject.
        subject: String,
        /// The text.
        text: String,
    },
    /// A JSON document.
    Json(Value),
    /// Nothing: this alert is not for this destination (an own alarm is no finding).
    NotFor(&'static str),
}

/// Renders `a` for `destination`; `ctx` is where findings are imported (without one,
/// there is no finding to render).
pub fn render_for(destination: Destination, a: &Alert, ctx: Option<&FindingContext>) -> Rendered {
    match destination {
        Destination::Page => Rendered::Text {
            subject: a.subject.clone(),
            text: a.text.clone(),
        },
        Destination::Subscribers => {
            Rendered::Json(serde_json::from_str(&a.json).unwrap_or_default())
        }
        Destination::Chat => Rendered::Json(chatbot(a)),
        Destination::PagerDuty => Rendered::Json(pagerduty(a)),
        Destination::SecurityHub => match ctx.map(|ctx| asff(a, ctx)) {
            Some(Some(f)) => Rendered::Json(serde_json::to_value(f).unwrap_or_default()),
            Some(None) => Rendered::NotFor("not_an_incident"),
            None => Rendered::NotFor("no_finding_context"),
        },
    }
}

/// The `detail` of the EventBridge event an alert puts on the alert bus: the alert's
/// JSON (what SQS and Lambda subscribers get), plus `destinations` with what each
/// [`Delivery::BusDetail`] destination receives, which the central stack's rules send on
/// as they are.
pub fn bus_detail(a: &Alert) -> String {
    let mut detail = match serde_json::from_str::<Value>(&a.json) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let carried: Map<String, Value> = DESTINATIONS
        .iter()
        .filter_map(|e| match (e.delivery, render_for(e.destination, a, None)) {
            (Delivery::BusDetail(key), Rendered::Json(v)) => Some((key.to_owned(), v)),
            _ => None,
        })
        .collect();
    detail.insert("destinations".into(), Value::Object(carried));
    Value::Object(detail).to_string()
}

/// The embedded-metric-format line a function logs when the alert bus refused an alert
/// whose page went out: `tripwire/AlertBusFailures`, which the central stack alarms on,
/// so chat, PagerDuty and Security Hub missing an alert is itself paged.
pub fn bus_failure_metric(kind: AlertKind, now: Millis) -> String {
    json!({
        "_aws": {
            "Timestamp": now,
            "CloudWatchMetrics": [{
                "Namespace": "tripwire",
                "Dimensions": [[]],
                "Metrics": [{"Name": "AlertBusFailures", "Unit": "Count"}]
            }]
        },
        "Kind": kind.as_str(),
        "AlertBusFailures": 1,
    })
    .to_string()
}

/// Why a JSON line is not an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAnAlert {
    /// A record of another type (the backtest's `summary`, `peak`, `coverage` lines):
    /// skipped by name.
    Other(String),
    /// An incident or alert that does not read as one: the reason.
    Invalid(String),
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, NotAnAlert> {
    v.get(name)
        .ok_or_else(|| NotAnAlert::Invalid(format!("no `{name}`")))
}

fn from<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> Result<T, NotAnAlert> {
    T::deserialize(v).map_err(|e| NotAnAlert::Invalid(format!("{what}: {e}")))
}

fn time(v: &Value, name: &str) -> Result<Millis, NotAnAlert> {
    field(v, name)?
        .as_str()
        .and_then(crate::time::parse_event_time)
        .ok_or_else(|| NotAnAlert::Invalid(format!("`{name}` is not a time")))
}

/// Reads an alert back from the JSON an alert carries (SNS's sqs/lambda/https body, the
/// alert bus's `detail`), or from a backtest line (`incident`: its `detected` alert at
/// the trigger time; `tamper`: its alert at the call's time). `window` is the policy
/// window in ms, which the incident text states.
pub fn alert_from_json(v: &Value, window: Millis) -> Result<Alert, NotAnAlert> {
    let record_type = v.get("type").and_then(Value::as_str).unwrap_or_default();
    match record_type {
        "incident" if v.get("kind").and_then(Value::as_str) == Some(crate::wave::KIND) => {
            wave_alert(v)
        }
        "incident" => incident_alert(v, window),
        "tamper" => {
            let t: Tamper = from(v, "tamper")?;
            let now = match v.get("alert_time") {
                Some(_) => time(v, "alert_time")?,
                None => t.event_time,
            };
            let recontain = v.get("recontain").and_then(Value::as_str);
            Ok(render_tamper(&t, recontain, now))
        }
        "drill_alert" => {
            let text = |name: &str| -> Result<String, NotAnAlert> {
                Ok(field(v, name)?.as_str().unwrap_or_default().to_owned())
            };
            let d = crate::drill::Drilled {
                account: text("account")?,
                ok: false,
                reason: Some(text("reason")?),
                simulated: None,
                brake: v
                    .get("brake")
                    .and_then(|b| serde_json::from_value(b.clone()).ok()),
                at: time(v, "drilled")?,
            };
            Ok(crate::drill::render_unproven(&d, time(v, "alert_time")?))
        }
        "coverage_alert" => {
            let now = time(v, "alert_time")?;
            let s = |name: &str| -> Result<String, NotAnAlert> {
                Ok(field(v, name)?.as_str().unwrap_or_default().to_owned())
            };
            match field(v, "state")?.as_str() {
                Some("never_seen") => {
                    let d = Deployed {
                        account: s("account")?,
                        region: s("region")?,
                        status: s("stack_instance_status")?,
                        stack_instance: true,
                    };
                    Ok(render_never_seen(&d, time(v, "listed")?, now))
                }
                Some(state @ ("lost" | "armed")) => {
                    let last = time(v, "last_heartbeat")?;
                    let h = HeartbeatState {
                        account: s("account")?,
                        region: s("region")?,
                        last,
                        arrived: last,
                        heartbeats: 0,
                        lost_paged: None,
                    };
                    let interval = field(v, "interval_s")?.as_i64().unwrap_or(600) * 1000;
                    let kind = if state == "lost" {
                        AlertKind::CoverageLost
                    } else {
                        AlertKind::CoverageRestored
                    };
                    Ok(render_coverage(kind, &h, now, interval))
                }
                other => Err(NotAnAlert::Invalid(format!(
                    "coverage_alert with state {other:?}"
                ))),
            }
        }
        "" => Err(NotAnAlert::Invalid("no `type`".into())),
        other => Err(NotAnAlert::Other(other.into())),
    }
}

/// A wave's page from its backtest line (the opening page, at the trigger time) or from
/// a page's own JSON (its stage and time).
fn wave_alert(v: &Value) -> Result<Alert, NotAnAlert> {
    let text = |name: &str| -> Result<String, NotAnAlert> {
        field(v, name)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| NotAnAlert::Invalid(format!("`{name}` is not a string")))
    };
    let count = |name: &str| -> Result<u64, NotAnAlert> {
        field(v, name)?
            .as_u64()
            .ok_or_else(|| NotAnAlert::Invalid(format!("`{name}` is not a count")))
    };
    let strings = |name: &str| -> Vec<String> {
        v.get(name)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let mut w = crate::wave::Wave::stored(
        text("id")?,
        text("account")?,
        text("region")?,
        (
            time(v, "first_event_time")?,
            time(v, "trigger_time")?,
            time(v, "last_event_time")?,
        ),
        u32::try_from(count("trigger_count")?).unwrap_or(u32::MAX),
        u32::try_from(count("threshold")?).unwrap_or(u32::MAX),
        text("window")?,
        usize::try_from(count("instances")?).unwrap_or(usize::MAX),
        strings("instance_ids"),
    );
    w.unclaimed = strings("unclaimed");
    w.claimed_by = from(
        v.get("claimed_by").unwrap_or(&Value::Array(Vec::new())),
        "claimed_by",
    )?;
    let stage = match v.get("stage") {
        Some(s) => from(s, "stage")?,
        None => WaveStage::Opened,
    };
    let now = match v.get("alert_time") {
        Some(_) => time(v, "alert_time")?,
        None => w.trigger_time,
    };
    let unclaimed = match v.get("unclaimed_count") {
        Some(_) => usize::try_from(count("unclaimed_count")?).unwrap_or(usize::MAX),
        None => w.unclaimed.len(),
    };
    // The page names the bound records may take; a line does not carry it: the
    // default policy's.
    let bound = crate::policy::Policy::from_toml("")
        .map(|p| p.max_delivery_delay)
        .unwrap_or(3_600_000);
    Ok(render_wave(&w, stage, unclaimed, bound, now))
}

fn incident_alert(v: &Value, window: Millis) -> Result<Alert, NotAnAlert> {
    let mut incident: Incident = from(v, "incident")?;
    // An alert's `kind` is the alert's; the incident's is `incident_kind` (which the
    // incident read as its lane).
    let alert_kind = match v.get("incident_kind") {
        Some(_) => Some(from::<AlertKind>(field(v, "kind")?, "kind")?),
        None => None,
    };
    // The JSON lists a sample of the IDs; the counts say how many there are.
    let count = |name: &str| v.get(name).and_then(Value::as_u64).unwrap_or(0);
    let unconfirmed = count("instances_unconfirmed");
    let listed = incident.instance_ids.len() as u64;
    incident.unlisted.unconfirmed = unconfirmed;
    incident.unlisted.confirmed = count("instances").saturating_sub(listed + unconfirmed);
    match alert_kind {
        Some(kind) => {
            let status: ContainmentStatus =
                from(field(v, "containment_status")?, "containment_status")?;
            let degraded = v
                .get("window_degraded")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(render(
                kind,
                &incident,
                &status,
                window,
                time(v, "alert_time")?,
                degraded,
            ))
        }
        None => {
            let status = ContainmentStatus::from_plan(&incident);
            let now = incident.trigger_time;
            Ok(render(
                AlertKind::Detected,
                &incident,
                &status,
                window,
                now,
                false,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wave_page_reads_back_from_its_json_and_a_backtest_line_as_its_first_page() {
        let w = crate::wave::Wave::stored(
            "wave-0123456789abcdef".into(),
            "222222222222".into(),
            "us-east-1".into(),
            (1_000_000, 1_030_000, 1_090_000),
            50,
            50,
            "5m".into(),
            60,
            vec!["i-0123456789abcdef0".into(), "i-0123456789abcdef1".into()],
        );
        let mut named = w.clone();
        named.claimed_by = crate::wave::tally(&["arn:aws:iam::222222222222:role/x".to_owned()]);
        named.unclaimed = vec!["i-0123456789abcdef1".into()];
        for (wave, stage) in [(&w, WaveStage::Opened), (&named, WaveStage::Claimed)] {
            let sent = render_wave(wave, stage, 59, 3_600_000, 1_100_000);
            let v: Value = serde_json::from_str(&sent.json).unwrap();
            assert_eq!(alert_from_json(&v, 0).unwrap(), sent);
        }
        // The backtest's line: its opening page at the trigger time.
        let mut line: Value = serde_json::to_value(&w).unwrap();
        line["unclaimed"] = serde_json::json!(["i-0123456789abcdef0", "i-0123456789abcdef1"]);
        let page = alert_from_json(&line, 0).unwrap();
        assert_eq!(page.kind, AlertKind::ShutdownWave);
        assert_eq!(page.card.time, 1_030_000);
        assert!(
            page.subject.contains("60 instances going away"),
            "{}",
            page.subject
        );
        let broken = serde_json::json!({"type": "incident", "kind": "shutdown_wave", "id": "w"});
        assert!(matches!(
            alert_from_json(&broken, 0),
            Err(NotAnAlert::Invalid(_))
        ));
    }
    use crate::alert::ContainmentState;

    /// A wipe as the backtest replays it: 600 instances by one role.
    fn seed() -> Incident {
        let policy = crate::Policy::from_toml("threshold = 10").unwrap();
        let mut counts = crate::ScanCounts::default();
        let mut events = crate::Events::default();
        crate::scan_events(&calls(), &mut counts, &mut events).unwrap();
        let r = crate::replay::replay_events(&policy, events);
        r.incidents
            .into_iter()
            .next()
            .expect("the seed opens an incident")
    }

    fn calls() -> String {
        // 600 one-instance TerminateInstances calls by one role, a second apart, as CloudTrail
        // records them (the engine's own parser reads them).
        let records: Vec<Value> = (0..600)
            .map(|k| {
                json!({
                    "eventVersion": "1.08",
                    "eventTime": format_millis(1_515_535_740_000 + k * 1_000),
                    "eventSource": "ec2.amazonaws.com",
                    "eventName": "TerminateInstances",
                    "awsRegion": "us-east-1",
                    "sourceIPAddress": "10.20.0.15",
                    "userAgent": "vendor-cleanup/2.3",
                    "eventID": format!("e{k}"),
                    "eventType": "AwsApiCall",
                    "recipientAccountId": "222222222222",
                    "userIdentity": {
                        "type": "AssumedRole",
                        "principalId": "AROAEXAMPLE:session",
                        "arn": "arn:aws:sts::222222222222:assumed-role/cleanup-task/session",
                        "accountId": "222222222222",
                        "sessionContext": {"sessionIssuer": {
                            "type": "Role",
                            "principalId": "AROAEXAMPLE",
                            "arn": "arn:aws:iam::222222222222:role/vendor/cleanup-task",
                            "accountId": "222222222222",
                            "userName": "cleanup-task"}}
                    },
                    "requestParameters": {"instancesSet": {"items": [{"instanceId": format!("i-{k:017x}")}]}},
                    "responseElements": {"instancesSet": {"items": [{"instanceId": format!("i-{k:017x}"),
                        "currentState": {"code": 32, "name": "shutting-down"},
                        "previousState": {"code": 16, "name": "running"}}]}}
                })
            })
            .collect();
        json!({ "Records": records }).to_string()
    }

    fn alerts(i: &Incident) -> Vec<Alert> {
        let status = |state, detail: &str| ContainmentStatus {
            state,
            detail: detail.into(),
        };
        [
            (
                AlertKind::Detected,
                status(ContainmentState::Requested, "revoke"),
            ),
            (
                AlertKind::Update,
                status(ContainmentState::SeeEarlierAlerts, ""),
            ),
            (
                AlertKind::Contained,
                status(ContainmentState::Contained, "in place"),
            ),
            (
                AlertKind::Released,
                status(ContainmentState::Released, "lifted"),
            ),
        ]
        .into_iter()
        .enumerate()
        .map(|(n, (kind, s))| {
            render(
                kind,
                i,
                &s,
                300_000,
                i.trigger_time + n as i64 * 1000,
                false,
            )
        })
        .collect()
    }

    #[test]
    fn an_alerts_json_reads_back_as_the_alert_it_was_rendered_from() {
        let i = seed();
        assert_eq!(i.instances(), 600);
        for a in alerts(&i) {
            let v: Value = serde_json::from_str(&a.json).unwrap();
            let back = alert_from_json(&v, 300_000).unwrap();
            // Past the 500-ID sample the counts come from the JSON's own `instances`.
            assert_eq!(back.subject, a.subject);
            assert_eq!(back.text, a.text, "{:?}", a.kind);
            assert_eq!(back.card, a.card, "{:?}", a.kind);
        }
        let t = Tamper {
            event_id: "ev-1".into(),
            event_name: "StopLogging".into(),
            event_source: "cloudtrail.amazonaws.com".into(),
            principal_arn: "arn:aws:iam::222222222222:role/x".into(),
            account: "222222222222".into(),
            region: "us-east-1".into(),
            target: crate::armed::Touched::Named("org-trail".into()),
            event_time: 1_000_000,
            error_code: None,
        };
        let h = HeartbeatState {
            account: "333333333333".into(),
            region: "eu-west-1".into(),
            last: 1_000_000,
            arrived: 1_000_000,
            heartbeats: 0,
            lost_paged: None,
        };
        let d = Deployed {
            account: "444444444444".into(),
            region: "us-west-2".into(),
            status: "OUTDATED FAILED".into(),
            stack_instance: true,
        };
        for a in [
            render_tamper(&t, Some("recontained"), 2_000_000),
            render_coverage(AlertKind::CoverageLost, &h, 3_000_000, 600_000),
            render_coverage(AlertKind::CoverageRestored, &h, 3_000_000, 600_000),
            render_never_seen(&d, 1_000_000, 5_000_000),
        ] {
            let back = alert_from_json(&serde_json::from_str(&a.json).unwrap(), 0).unwrap();
            assert_eq!(
                (back.kind, &back.subject, &back.text, &back.card),
                (a.kind, &a.subject, &a.text, &a.card)
            );
        }
    }

    #[test]
    fn other_records_are_named_and_broken_ones_say_why() {
        assert_eq!(
            alert_from_json(&json!({"type": "summary"}), 0).unwrap_err(),
            NotAnAlert::Other("summary".into())
        );
        for bad in [
            json!({}),
            json!({"type": "incident"}),
            json!({"type": "coverage_alert", "state": "x", "alert_time": "2018-01-09T22:09:00Z"}),
        ] {
            assert!(
                matches!(alert_from_json(&bad, 0), Err(NotAnAlert::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn one_incident_is_one_page_and_one_thread_and_a_release_resolves_it() {
        let i = seed();
        let all = alerts(&i);
        for a in &all {
            let p = pagerduty(a);
            assert_eq!(p["dedup_key"], i.id.as_str());
            assert!(
                p.get("routing_key").is_none(),
                "the connection adds the key"
            );
            let c = chatbot(a);
            assert_eq!(
                (c["version"].as_str(), c["source"].as_str()),
                (Some("1.0"), Some("custom"))
            );
            assert_eq!(c["metadata"]["threadId"], i.id.as_str());
            assert!(!c["content"]["description"].as_str().unwrap().is_empty());
        }
        let actions: Vec<_> = all
            .iter()
            .map(|a| pagerduty(a)["event_action"].clone())
            .collect();
        assert_eq!(actions, ["trigger", "trigger", "trigger", "resolve"]);
        let trigger = pagerduty(&all[0]);
        for field in ["summary", "source", "severity"] {
            assert!(
                trigger["payload"][field]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{field}"
            );
        }
        assert_eq!(trigger["payload"]["severity"], "critical");
        assert_eq!(pagerduty(&all[1])["payload"]["severity"], "error");
        // A silent region's page is resolved by its return.
        let h = HeartbeatState {
            account: "333333333333".into(),
            region: "eu-west-1".into(),
            last: 0,
            arrived: 0,
            heartbeats: 1,
            lost_paged: None,
        };
        let lost = pagerduty(&render_coverage(
            AlertKind::CoverageLost,
            &h,
            3_600_000,
            600_000,
        ));
        let back = pagerduty(&render_coverage(
            AlertKind::CoverageRestored,
            &h,
            3_700_000,
            600_000,
        ));
        assert_eq!(
            (lost["event_action"].as_str(), back["event_action"].as_str()),
            (Some("trigger"), Some("resolve"))
        );
        assert_eq!(lost["dedup_key"], back["dedup_key"]);
    }

    #[test]
    fn an_incident_is_one_finding_moved_through_its_workflow_and_archived_on_release() {
        let i = seed();
        let ctx = FindingContext {
            account: "999999999999".into(),
            region: "us-gov-west-1".into(),
            partition: "aws-us-gov".into(),
        };
        let all = alerts(&i);
        let docs: Vec<Value> = all
            .iter()
            .map(|a| serde_json::to_value(asff(a, &ctx).unwrap()).unwrap())
            .collect();
        for d in &docs {
            assert_eq!(d["Id"], format!("tripwire/{}", i.id));
            assert_eq!(d["AwsAccountId"], "999999999999");
            assert_eq!(d["CreatedAt"], docs[0]["CreatedAt"], "created once");
            assert_eq!(
                d["Title"], docs[0]["Title"],
                "one title while its alerts change"
            );
            assert_eq!(d["ProductArn"], "arn:aws-us-gov:securityhub:us-gov-west-1:999999999999:product/999999999999/default");
            assert!(d["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["Id"] == "AWS::::Account:222222222222"));
            // What was destroyed, as many as ASFF holds: the seed's 600 instances fill it.
            let resources = d["Resources"].as_array().unwrap();
            assert_eq!(resources.len(), crate::alert::ASFF_RESOURCES);
            let instances: Vec<&Value> = resources
                .iter()
                .filter(|r| r["Type"] == "AwsEc2Instance")
                .collect();
            assert_eq!(instances.len(), crate::alert::ASFF_RESOURCES - 2);
            assert_eq!(instances[0]["Id"], json!(i.instance_ids.first().unwrap()));
            assert_eq!(instances[0]["Region"], "us-east-1");
        }
        let states: Vec<_> = docs.iter().map(|d| d["RecordState"].clone()).collect();
        assert_eq!(states, ["ACTIVE", "ACTIVE", "ACTIVE", "ARCHIVED"]);
        let flows: Vec<_> = all.iter().map(|a| workflow(a).map(|(s, _)| s)).collect();
        assert_eq!(flows, [None, None, Some("NOTIFIED"), Some("RESOLVED")]);
        let t = render_coverage(
            AlertKind::CoverageLost,
            &HeartbeatState {
                account: "1".into(),
                region: "r".into(),
                last: 0,
                arrived: 0,
                heartbeats: 0,
                lost_paged: None,
            },
            0,
            600_000,
        );
        assert!(
            asff(&t, &ctx).is_none(),
            "the tripwire's own alarms are not findings"
        );
    }
}
