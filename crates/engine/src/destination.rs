//! What each destination beyond SNS receives for an alert: an Amazon Q Developer in chat
//! applications custom notification, a PagerDuty Events API v2 event, a Security Hub
//! finding (ASFF), and the EventBridge event that carries the first two to their rules.
//! Rendering only, from the alert's [`Card`]; `tripwire render` and the functions call
//! the same functions, so what a user tests is what is sent.
//!
//! Reading alerts back ([`alert_from_json`]) turns the JSON the alerts carry and the
//! backtest's incident and tamper lines into the same [`Alert`] the functions render.

use crate::alert::{
    render, render_coverage, render_never_seen, render_tamper, Alert, AlertKind, ContainmentStatus,
};
use crate::armed::{Deployed, HeartbeatState, Tamper};
use crate::incident::Incident;
use crate::time::{format_millis, Millis};
use crate::window::Lane;
use serde_json::{json, Map, Value};

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
                "context": c.context.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
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

fn finding_severity(rule: &str) -> &'static str {
    match rule {
        "burst" => "CRITICAL",
        "attempt_burst" => "MEDIUM",
        _ => "HIGH",
    }
}

/// The Security Hub finding (ASFF) an incident's alert imports or updates: `None` for
/// the tripwire's own alarms, which are not incidents. With the default product ARN the
/// finding must be the importing account's (`AwsAccountId`); the account where the
/// instances died is a resource. Severity and types go in `FindingProviderFields`, the
/// only way a provider may set them on an existing finding; a release archives it.
pub fn asff(a: &Alert, ctx: &FindingContext) -> Option<Value> {
    let c = &a.card;
    if !is_incident(a.kind) {
        return None;
    }
    let product_fields: Map<String, Value> = c
        .context
        .iter()
        .map(|(k, v)| (format!("tripwire/{k}"), Value::String(v.clone())))
        .chain([
            ("tripwire/alert".to_owned(), a.kind.as_str().into()),
            ("tripwire/rule".to_owned(), c.rule.clone().into()),
        ])
        .collect();
    let resources: Vec<Value> = c
        .resources
        .iter()
        .map(|(kind, id)| {
            json!({"Type": kind, "Id": id, "Partition": ctx.partition, "Region": c.region})
        })
        .collect();
    let severity = finding_severity(&c.rule);
    Some(json!({
        "SchemaVersion": "2018-10-08",
        "Id": finding_id(&c.key),
        "ProductArn": ctx.product_arn(),
        "GeneratorId": format!("tripwire/{}", c.rule),
        "AwsAccountId": ctx.account,
        "CreatedAt": format_millis(c.opened),
        "UpdatedAt": format_millis(c.time),
        "FirstObservedAt": format_millis(c.first_seen),
        "LastObservedAt": format_millis(c.last_seen),
        "FindingProviderFields": {
            "Severity": {"Label": severity, "Original": severity},
            "Types": FINDING_TYPES,
        },
        "Title": cut(&c.title, FINDING_TITLE_MAX),
        "Description": cut(&plain(&c.description), FINDING_DESCRIPTION_MAX),
        "Remediation": {"Recommendation": {"Text": cut(&plain(&c.next_steps.join(" ")), FINDING_RECOMMENDATION_MAX)}},
        "ProductFields": product_fields,
        "Resources": resources,
        "RecordState": if c.resolves { "ARCHIVED" } else { "ACTIVE" },
    }))
}

/// ASFF types: the calls destroy resources, and a principal behaves unlike itself.
pub const FINDING_TYPES: [&str; 2] = ["TTPs/Impact", "Unusual Behaviors/User"];

fn is_incident(kind: AlertKind) -> bool {
    !matches!(
        kind,
        AlertKind::Tamper | AlertKind::CoverageLost | AlertKind::CoverageRestored
    )
}

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

/// The `detail` of the EventBridge event an alert puts on the alert bus: the alert's
/// JSON (what SQS and Lambda subscribers get), plus `destinations` with the chat card
/// and the PagerDuty event, which the central stack's rules send on as they are.
pub fn bus_detail(a: &Alert) -> String {
    let mut detail = match serde_json::from_str::<Value>(&a.json) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    detail.insert(
        "destinations".into(),
        json!({"chatbot": chatbot(a), "pagerduty": pagerduty(a)}),
    );
    Value::Object(detail).to_string()
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

fn incident_alert(v: &Value, window: Millis) -> Result<Alert, NotAnAlert> {
    let mut incident: Incident = from(v, "incident")?;
    // An alert's `kind` is the alert's; the incident's is `incident_kind`.
    let alert_kind = match v.get("incident_kind") {
        Some(lane) => {
            incident.kind = from::<Lane>(lane, "incident_kind")?;
            Some(from::<AlertKind>(field(v, "kind")?, "kind")?)
        }
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
