//! Alerts as people and machines read them: an SNS subject, a text body for pagers and
//! e-mail, a JSON body for queues and functions, and filterable attributes. Rendering
//! only; the SNS adapter sends what this returns.

use crate::armed::Armed;
use crate::catalogue::{self, Watched};
use crate::containment::Action;
use crate::incident::Incident;
use crate::time::{format_millis, Millis};
use crate::window::Lane;
use serde::Serialize;
use std::fmt::Write as _;

/// The watched call an incident's resource type is destroyed by: how its alerts speak
/// (the call's name, the nouns, the verb, a burst in a sentence, the runbook's look).
fn call_of(i: &Incident) -> &'static Watched {
    catalogue::of_kind(&i.resource_type)
}

/// What an alert reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A burst crossed the threshold: an incident opened.
    Detected,
    /// More terminations joined an open incident.
    Update,
    /// The containment policies are in place.
    Contained,
    /// Containment was attempted and failed, or was refused.
    ContainmentFailed,
    /// Someone disarmed part of the tripwire (see [`crate::armed`]).
    Tamper,
    /// An account and region that sent heartbeats fell silent for three intervals.
    CoverageLost,
    /// It speaks again.
    CoverageRestored,
    /// `tripwire release` lifted containment and closed the incident.
    Released,
    /// EC2's own events saw instances go away in one account and region faster than
    /// the wave threshold allows, whoever ended them: the first page, its updates, and
    /// who CloudTrail says terminated them.
    ShutdownWave,
    /// The weekly drill could not contain its role in an account: containment there is
    /// not proven to work (see [`crate::drill`]).
    ContainmentUnproven,
}

/// The runbook, in the tripwire's repository: one section per alert kind, headed by the
/// page's own words, anchored by the kind's name.
pub const RUNBOOK: &str = "docs/runbook.md";

/// `text` with the line that points at `kind`'s section of the runbook.
pub(crate) fn with_runbook(mut text: String, kind: AlertKind) -> String {
    let _ = writeln!(
        text,
        "\nRunbook: {RUNBOOK}#{} (in the tripwire repository)",
        kind.as_str()
    );
    text
}

impl AlertKind {
    /// The stable snake_case name (also the `kind` message attribute).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Detected => "detected",
            AlertKind::Update => "update",
            AlertKind::Contained => "contained",
            AlertKind::ContainmentFailed => "containment_failed",
            AlertKind::Tamper => "tamper",
            AlertKind::CoverageLost => "coverage_lost",
            AlertKind::CoverageRestored => "coverage_restored",
            AlertKind::Released => "released",
            AlertKind::ShutdownWave => "shutdown_wave",
            AlertKind::ContainmentUnproven => "containment_unproven",
        }
    }

    /// The tripwire's own alarms (tamper, coverage): they go to the second channel,
    /// which does not depend on the tripwire's key they may report disabled.
    pub fn is_own_alarm(self) -> bool {
        matches!(
            self,
            AlertKind::Tamper
                | AlertKind::CoverageLost
                | AlertKind::CoverageRestored
                | AlertKind::ContainmentUnproven
        )
    }

    /// `critical` pages someone; `high` and `info` can be routed elsewhere.
    pub fn severity(self) -> &'static str {
        match self {
            AlertKind::Detected | AlertKind::ContainmentFailed | AlertKind::ShutdownWave => {
                "critical"
            }
            AlertKind::Update
            | AlertKind::Tamper
            | AlertKind::CoverageLost
            | AlertKind::ContainmentUnproven => "high",
            AlertKind::Contained | AlertKind::CoverageRestored | AlertKind::Released => "info",
        }
    }
}

/// A rendered alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// What it reports.
    pub kind: AlertKind,
    /// SNS subject: ASCII, no control characters, under 100 characters.
    pub subject: String,
    /// Text for pagers, e-mail and SMS.
    pub text: String,
    /// JSON for SQS, Lambda and HTTPS subscribers.
    pub json: String,
    /// The account where the instances died (message attribute `account`).
    pub account: String,
    /// What the chat card, the page and the finding show ([`crate::destination`]).
    pub card: Card,
    /// Also a tamper alarm: an incident's page about a burst by one of the tripwire's
    /// own member roles, whose credentials are being misused. It goes to the alarm
    /// channel as well as the first.
    pub tamper: bool,
}

/// Which rule raised an alert: an incident's lane, a tamper call, or coverage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// An incident of this lane.
    Lane(Lane),
    /// A call that disarmed part of the tripwire.
    Tamper,
    /// The canary fell silent, or spoke again.
    Coverage,
    /// EC2's own events: a shutdown wave.
    Wave,
}

impl Default for Rule {
    fn default() -> Self {
        Rule::Lane(Lane::Burst)
    }
}

impl Rule {
    /// The name findings and their generator IDs use (`burst`, …, `tamper`, `coverage`).
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Lane(l) => l.kind(),
            Rule::Tamper => "tamper",
            Rule::Coverage => "coverage",
            Rule::Wave => crate::wave::KIND,
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alert as the other destinations show it: chat, PagerDuty, Security Hub.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Card {
    /// The same for every alert about one incident (its ID) or one alarm (the tamper
    /// call, the account and region that fell silent): chat threads on it, PagerDuty
    /// deduplicates on it, and Security Hub's finding is named by it.
    pub key: String,
    /// Which rule raised it.
    pub rule: Rule,
    /// One line: the alert's subject.
    pub title: String,
    /// What the incident (or alarm) is, whatever this alert says about it: a finding's
    /// title, which stays the same while its alerts come and go.
    pub headline: String,
    /// What happened, who, the counts and containment, in markdown lines.
    pub description: String,
    /// The runbook's steps.
    pub next_steps: Vec<String>,
    /// Short tags a chat channel can search for.
    pub keywords: Vec<String>,
    /// What it is about: the principal, the account, as ASFF resource types and IDs
    /// (`AwsIamRole` and its ARN, `AwsAccount` and `AWS::::Account:ID`, …).
    pub resources: Vec<(String, String)>,
    /// Extra facts, as key and value.
    pub context: Vec<(String, String)>,
    /// The region the alert is about.
    pub region: String,
    /// The first and the latest event it counts.
    pub first_seen: Millis,
    /// The latest event it counts.
    pub last_seen: Millis,
    /// When the incident opened (the same in every one of its alerts); for an alarm, its event.
    pub opened: Millis,
    /// The alert's time.
    pub time: Millis,
    /// It ends what the key began: release, coverage restored.
    pub resolves: bool,
}

/// Where containment of an incident stands. The snake_case names are in the alerts'
/// JSON (`containment_status.state`) and the incident item (`containment_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainmentState {
    /// Opened; the responder has not reported yet.
    Pending,
    /// The responder was asked to contain.
    Requested,
    /// The plan asks for no containment; the detail says why.
    NotAttempted,
    /// The policies are in place.
    Contained,
    /// IAM or STS refused.
    Failed,
    /// The responder refused the plan.
    Refused,
    /// `tripwire release` is lifting containment: nothing may be written back now.
    Releasing,
    /// `tripwire release` lifted containment and closed the incident.
    Released,
    /// An update alert: containment was reported in its own alert.
    SeeEarlierAlerts,
}

impl ContainmentState {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainmentState::Pending => "pending",
            ContainmentState::Requested => "requested",
            ContainmentState::NotAttempted => "not_attempted",
            ContainmentState::Contained => "contained",
            ContainmentState::Failed => "failed",
            ContainmentState::Refused => "refused",
            ContainmentState::Releasing => "releasing",
            ContainmentState::Released => "released",
            ContainmentState::SeeEarlierAlerts => "see_earlier_alerts",
        }
    }

    /// The state named `s`, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        ALL_STATES.into_iter().find(|c| c.as_str() == s)
    }
}

const ALL_STATES: [ContainmentState; 9] = [
    ContainmentState::Pending,
    ContainmentState::Requested,
    ContainmentState::NotAttempted,
    ContainmentState::Contained,
    ContainmentState::Failed,
    ContainmentState::Refused,
    ContainmentState::Releasing,
    ContainmentState::Released,
    ContainmentState::SeeEarlierAlerts,
];

/// What the alert says about containment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ContainmentStatus {
    /// Where containment stands.
    pub state: ContainmentState,
    /// Why, in a sentence.
    pub detail: String,
}

impl ContainmentStatus {
    /// The status implied by a fresh plan: requested, or not attempted and why.
    pub fn from_plan(incident: &Incident) -> Self {
        ContainmentStatus {
            state: match incident.containment.action {
                Action::None => ContainmentState::NotAttempted,
                _ => ContainmentState::Requested,
            },
            detail: incident.containment.reason.clone(),
        }
    }
}

/// Instance IDs shown in the text body.
const TEXT_SAMPLE: usize = 10;
/// Instance IDs carried in the JSON body; SNS messages are limited to 256 KB and the JSON
/// goes out three times (sqs, lambda, https).
const JSON_SAMPLE: usize = 500;
/// SNS subjects must be shorter than 100 characters.
const SUBJECT_MAX: usize = 99;

#[derive(Serialize)]
struct Machine<'a> {
    kind: AlertKind,
    #[serde(flatten)]
    incident: crate::incident::View<'a>,
    instance_ids_truncated: bool,
    containment_status: &'a ContainmentStatus,
    #[serde(with = "crate::time::rfc3339")]
    alert_time: Millis,
    window_degraded: bool,
}

/// The part of a principal ARN people recognise: `role/vendor/cleanup-task`, `user/alice`, `root`.
fn short_principal(arn: &str) -> &str {
    arn.splitn(6, ':').nth(5).unwrap_or(arn)
}

/// SNS rejects non-ASCII and control characters in subjects; identities can carry both.
pub(crate) fn subject_safe(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if out.len() > SUBJECT_MAX {
        out.truncate(SUBJECT_MAX - 3);
        out.push_str("...");
    }
    out
}

/// Renders an alert for `incident`. `window` is the policy window in ms, `now` the alert time.
pub fn render(
    kind: AlertKind,
    incident: &Incident,
    status: &ContainmentStatus,
    window: Millis,
    now: Millis,
    window_degraded: bool,
) -> Alert {
    let subject = incident_subject(kind, incident);
    let text = with_runbook(
        text_body(kind, incident, status, window, now, window_degraded),
        kind,
    );
    let machine = Machine {
        kind,
        incident: incident.alert_view(JSON_SAMPLE),
        instance_ids_truncated: incident.instances() > JSON_SAMPLE,
        containment_status: status,
        alert_time: now,
        window_degraded,
    };
    Alert {
        kind,
        card: incident_card(kind, incident, status, &subject, now),
        subject: subject_safe(&subject),
        text,
        json: serde_json::to_string(&machine).unwrap_or_default(),
        account: incident.account.clone(),
        // A principal burst only: the canary's own calls are heartbeats, never counted.
        tamper: kind == AlertKind::Detected
            && matches!(&incident.subject, crate::incident::Subject::Burst(p)
                if crate::principal::iam_entity(p)
                    .is_ok_and(|e| e.is_role && crate::names::is_member_role(&e.name))),
    }
}

/// The subject of `kind`'s alert about `incident`, before SNS's rules are applied.
fn incident_subject(kind: AlertKind, incident: &Incident) -> String {
    let call = call_of(incident);
    let name = call.event_name;
    let nouns = call.words.nouns;
    let verb = call.words.verb;
    let who = match incident.kind() {
        Lane::Account => "every principal",
        _ => short_principal(incident.principal_arn().unwrap_or_default()),
    };
    let n = incident.instances();
    match (kind, incident.kind()) {
        (AlertKind::Detected | AlertKind::Update, Lane::Attempt) => format!(
            "TRIPWIRE: {} failed {name} calls by {who} in {}",
            incident.attempts, incident.account
        ),
        (AlertKind::Detected | AlertKind::Update, Lane::Account) => format!(
            "TRIPWIRE: {n} {nouns} {verb} in {} by {} principals",
            incident.account,
            incident.principals.len()
        ),
        (AlertKind::Detected, _) => format!(
            "TRIPWIRE: {n} {nouns} {verb} by {who} in {}",
            incident.account
        ),
        // The tripwire's own alerts name no incident: render_tamper and render_coverage
        // render them, never this.
        (
            AlertKind::Update
            | AlertKind::Tamper
            | AlertKind::CoverageLost
            | AlertKind::CoverageRestored
            | AlertKind::ShutdownWave
            | AlertKind::ContainmentUnproven,
            _,
        ) => format!(
            "TRIPWIRE update: {n} {nouns} {verb} by {who} in {}",
            incident.account
        ),
        (AlertKind::Contained, _) => format!(
            "TRIPWIRE CONTAINED: {who} ({n} {nouns} in {})",
            incident.account
        ),
        (AlertKind::ContainmentFailed, _) => {
            format!("TRIPWIRE CONTAINMENT FAILED: {who} in {}", incident.account)
        }
        (AlertKind::Released, _) => {
            format!("TRIPWIRE RELEASED: {who} in {}", incident.account)
        }
    }
}

/// The runbook's first looks: the incident's call's, or for a precursor burst one per
/// kind of call it counted (they differ: instances, databases, buckets).
fn runbooks(i: &Incident) -> Vec<&'static str> {
    if i.kind() != Lane::Precursor {
        return vec![call_of(i).runbook];
    }
    let mut out: Vec<&'static str> = Vec::new();
    for p in &i.precursors {
        if let Some(w) = catalogue::PRECURSORS
            .iter()
            .find(|w| w.event_name == p.event_name)
        {
            if !out.contains(&w.runbook) {
                out.push(w.runbook);
            }
        }
    }
    if out.is_empty() {
        out.push(call_of(i).runbook);
    }
    out
}

/// The most resources an ASFF finding holds.
pub const ASFF_RESOURCES: usize = 32;

/// The ASFF resource type of what an incident's calls destroyed (Security Hub's own
/// names, where it has one; `Other` where it has none, and for a precursor burst,
/// whose resources are of several types).
fn asff_resource_type(i: &Incident) -> &'static str {
    if i.kind() == Lane::Precursor {
        return "Other";
    }
    match i.resource_type.as_str() {
        "ec2:instance" => "AwsEc2Instance",
        "ec2:volume" => "AwsEc2Volume",
        "rds:db" => "AwsRdsDbInstance",
        "rds:cluster" => "AwsRdsDbCluster",
        "rds:snapshot" => "AwsRdsDbSnapshot",
        "rds:cluster-snapshot" => "AwsRdsDbClusterSnapshot",
        "dynamodb:table" => "AwsDynamoDbTable",
        "s3:bucket" => "AwsS3Bucket",
        "kms:key" => "AwsKmsKey",
        "backup:recoveryPoint" => "AwsBackupRecoveryPoint",
        "backup:backupVault" => "AwsBackupBackupVault",
        "eks:cluster" => "AwsEksCluster",
        "lambda:function" => "AwsLambdaFunction",
        "secretsmanager:Secret" => "AwsSecretsManagerSecret",
        "route53:hostedzone" => "AwsRoute53HostedZone",
        _ => "Other",
    }
}

/// The ASFF resource type of a principal ARN.
fn resource_type(arn: &str) -> &'static str {
    match short_principal(arn).split('/').next() {
        Some("role") => "AwsIamRole",
        Some("user") => "AwsIamUser",
        _ => "Other",
    }
}

pub(crate) fn account_resource(account: &str) -> (String, String) {
    ("AwsAccount".into(), format!("AWS::::Account:{account}"))
}

fn incident_card(
    kind: AlertKind,
    i: &Incident,
    status: &ContainmentStatus,
    subject: &str,
    now: Millis,
) -> Card {
    let call = call_of(i);
    let name = call.event_name;
    let noun = call.words.noun;
    let verb = call.words.verb;
    let lane = i.kind().kind();
    let mut d = String::new();
    let who = match i.kind() {
        Lane::Account => format!("{} principal(s)", i.principals.len()),
        _ => format!("`{}`", i.principal_arn().unwrap_or_default()),
    };
    let _ = match i.kind() {
        Lane::Attempt => writeln!(
            d,
            "*{who}* made *{}* failed {name} calls in account `{}`; nothing was terminated.",
            i.attempts, i.account
        ),
        Lane::Precursor => writeln!(
            d,
            "*{who}* removed *{}* protection(s) in account `{}`, crossing the threshold of {}: nothing is destroyed yet. Alert only.",
            i.instances(),
            i.account,
            i.threshold
        ),
        _ => writeln!(
            d,
            "*{who}* {verb} *{}* {noun}(s) in account `{}` ({}), crossing the threshold of {}.",
            i.instances(),
            i.account,
            i.regions.iter().cloned().collect::<Vec<_>>().join(", "),
            i.threshold
        ),
    };
    let _ = writeln!(
        d,
        "First termination {}, threshold crossed {}, latest {}.",
        format_millis(i.first_event_time),
        format_millis(i.trigger_time),
        format_millis(i.last_event_time)
    );
    if i.cross_account {
        let _ = writeln!(d, "The session was chained from another account.");
    }
    if let Some(arn) = i.origin.as_ref().and_then(|o| o.principal_arn.as_ref()) {
        let _ = writeln!(d, "The session chain began with `{arn}`.");
    }
    if let (Some(v), Some(n)) = (&i.via, &i.initiator) {
        let _ = writeln!(
            d,
            "`{}` terminated them for its `{}` at {}: counted as its own.",
            v.service,
            n.event_name,
            format_millis(n.event_time)
        );
    }
    if !i.precursors.is_empty() {
        let names: Vec<&str> = i.precursors.iter().map(|p| p.event_name.as_str()).collect();
        let _ = writeln!(
            d,
            "Protections removed first: {} call(s) ({}), the first at {}.",
            i.precursors.len(),
            crate::catalogue::PRECURSORS
                .iter()
                .map(|w| w.event_name)
                .filter(|n| names.contains(n))
                .collect::<Vec<_>>()
                .join(", "),
            format_millis(i.precursors[0].event_time)
        );
    }
    let _ = writeln!(
        d,
        "*Containment: {}.* {}",
        status.state.as_str().replace('_', " "),
        status.detail
    );
    let mut next_steps = vec![format!(
        "Verify the {name} calls in CloudTrail ({}, from {}) and ask the owner of {who} what it runs.",
        i.region,
        format_millis(i.first_event_time)
    )];
    if kind == AlertKind::Released {
        next_steps.push("Containment is lifted; a new burst opens a new incident.".into());
    } else {
        next_steps.push(format!(
            "If it is legitimate: `tripwire release --incident {}`",
            i.id
        ));
        next_steps.push(format!("If not: keep it contained, rotate its credentials, restore the {} (`tripwire incident export {}` lists them).", call.words.nouns, i.id));
    }
    let mut resources = Vec::new();
    if let Some(p) = i.principal_arn() {
        resources.push((resource_type(p).into(), p.to_owned()));
    }
    resources.push(account_resource(&i.account));
    // What was destroyed, as far as a finding holds (ASFF takes 32 resources); the
    // recovery manifest lists every one.
    let destroyed = asff_resource_type(i);
    for id in i
        .instance_ids
        .iter()
        .chain(&i.unconfirmed_ids)
        .take(ASFF_RESOURCES - resources.len())
    {
        resources.push((destroyed.into(), id.clone()));
    }
    Card {
        key: i.id.clone(),
        rule: Rule::Lane(i.kind()),
        title: subject.into(),
        headline: incident_subject(AlertKind::Detected, i),
        description: d,
        next_steps,
        keywords: vec![
            "tripwire".into(),
            kind.as_str().into(),
            lane.into(),
            i.account.clone(),
        ],
        resources,
        context: vec![
            ("incident".into(), i.id.clone()),
            ("account".into(), i.account.clone()),
            ("instances".into(), i.instances().to_string()),
            ("containment".into(), status.state.as_str().into()),
            ("trigger_event".into(), i.trigger_event_id.clone()),
        ],
        region: i.region.clone(),
        first_seen: i.first_event_time,
        last_seen: i.last_event_time,
        opened: i.trigger_time,
        time: now,
        resolves: kind == AlertKind::Released,
    }
}

/// The JSON of a tamper alert: the backtest's `tamper` line, with the alert's time.
#[derive(Serialize)]
struct TamperJson<'a> {
    #[serde(rename = "type")]
    record_type: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    tamper: &'a crate::armed::Tamper,
    #[serde(skip_serializing_if = "Option::is_none")]
    recontain: Option<&'a str>,
    #[serde(with = "crate::time::rfc3339")]
    alert_time: Millis,
}

/// Renders the alert for a call that disarmed part of the tripwire; `recontain` says what
/// the tripwire did about it, if anything.
pub fn render_tamper(t: &crate::armed::Tamper, recontain: Option<&str>, now: Millis) -> Alert {
    let who = short_principal(&t.principal_arn);
    let attempted = if t.error_code.is_some() {
        " (attempted)"
    } else {
        ""
    };
    let subject = format!(
        "TRIPWIRE TAMPER{attempted}: {} on {} in {} by {who}",
        t.event_name, t.target, t.account
    );
    let mut text = String::new();
    let _ = writeln!(
        text,
        "TRIPWIRE TAMPER: a call{} that disarms part of the tripwire.\n",
        if t.error_code.is_some() {
            " was attempted"
        } else {
            " was made"
        }
    );
    let _ = writeln!(text, "What   {} ({})", t.event_name, t.event_source);
    let _ = writeln!(text, "On     {}", t.target);
    let _ = writeln!(text, "Who    {}", t.principal_arn);
    let _ = writeln!(text, "Where  account {}, region {}", t.account, t.region);
    let _ = writeln!(text, "When   {}", format_millis(t.event_time));
    if let Some(code) = &t.error_code {
        let _ = writeln!(
            text,
            "Result failed with {code}: nothing changed, but someone tried"
        );
    }
    if let Some(note) = recontain {
        let _ = writeln!(text, "Recontain {note}");
    }
    let _ = writeln!(text, "\nRunbook");
    let _ = writeln!(
        text,
        "  1. Ask {who} whether this was planned; deployments of the tripwire itself never page."
    );
    let _ = writeln!(
        text,
        "  2. If not, restore it (redeploy the member stack, restart logging, re-enable the key) and treat {who} as compromised."
    );
    let _ = writeln!(
        text,
        "  3. The call is in CloudTrail: event {} at {}.",
        t.event_id,
        format_millis(t.event_time)
    );
    let json = TamperJson {
        record_type: "tamper",
        kind: AlertKind::Tamper.as_str(),
        tamper: t,
        recontain,
        alert_time: now,
    };
    let card = Card {
        key: format!("tamper-{}", t.event_id),
        rule: Rule::Tamper,
        title: subject.clone(),
        headline: subject.clone(),
        description: format!(
            "*{}* ({}) on `{}` by `{}` in account `{}` {}{}.\n{}",
            t.event_name,
            t.event_source,
            t.target,
            t.principal_arn,
            t.account,
            t.region,
            t.error_code
                .as_ref()
                .map_or_else(String::new, |c| format!(", failed with {c}")),
            recontain.map_or_else(String::new, |n| format!("Recontain: {n}"))
        ),
        next_steps: vec![
            format!("Ask the owner of {who} whether this was planned."),
            "If not, restore the tripwire (redeploy the member stack, restart logging, re-enable the key) and treat the caller as compromised.".into(),
        ],
        keywords: vec!["tripwire".into(), "tamper".into(), t.event_name.clone(), t.account.clone()],
        resources: vec![
            (resource_type(&t.principal_arn).into(), t.principal_arn.clone()),
            account_resource(&t.account),
        ],
        context: vec![
            ("event_id".into(), t.event_id.clone()),
            ("target".into(), t.target.to_string()),
        ],
        region: t.region.clone(),
        first_seen: t.event_time,
        last_seen: t.event_time,
        opened: t.event_time,
        time: now,
        resolves: false,
    };
    let text = with_runbook(text, AlertKind::Tamper);
    Alert {
        tamper: false,
        kind: AlertKind::Tamper,
        card,
        subject: subject_safe(&subject),
        text,
        json: serde_json::to_string(&json).unwrap_or_default(),
        account: t.account.clone(),
    }
}

/// Instance IDs a wave's text lists.
const TEXT_IDS: usize = 20;

/// Which page of a shutdown wave this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveStage {
    /// The wave crossed the threshold.
    Opened,
    /// More instances went.
    Grew,
    /// CloudTrail named a caller the wave's pages had not named yet.
    Claimed,
    /// `max_delivery_delay` after the wave's last instance, some instances were never
    /// named by a record: they went some other way.
    Closed,
}

/// The JSON of a wave's page: the backtest's wave line (its `instance_ids` and
/// `unclaimed` a sample, the counts whole), with the page's stage and time.
#[derive(Serialize)]
struct WaveJson<'a> {
    #[serde(flatten)]
    wave: &'a crate::wave::Wave,
    stage: WaveStage,
    unclaimed_count: usize,
    #[serde(with = "crate::time::rfc3339")]
    alert_time: Millis,
}

/// Renders a shutdown wave's page. `w.instance_ids` and `w.unclaimed` may be a sample;
/// `unclaimed_count` is the whole: instances no CloudTrail record has named so far.
pub fn render_wave(
    w: &crate::wave::Wave,
    stage: WaveStage,
    unclaimed_count: usize,
    max_delivery_delay: Millis,
    now: Millis,
) -> Alert {
    let kind = AlertKind::ShutdownWave;
    let callers = |n: usize| -> String {
        let mut names: Vec<&str> = w
            .claimed_by
            .iter()
            .take(n)
            .map(|c| short_principal(&c.principal_arn))
            .collect();
        if w.claimed_by.len() > n {
            names.push("others");
        }
        names.join(", ")
    };
    let headline = format!(
        "TRIPWIRE SHUTDOWN WAVE: instances going away in {} {}",
        w.account, w.region
    );
    let subject = match stage {
        WaveStage::Opened => format!(
            "TRIPWIRE SHUTDOWN WAVE: {} instances going away in {} {}",
            w.instances, w.account, w.region
        ),
        WaveStage::Grew => format!(
            "TRIPWIRE SHUTDOWN WAVE UPDATE: {} instances gone in {} {}",
            w.instances, w.account, w.region
        ),
        WaveStage::Claimed => format!(
            "TRIPWIRE SHUTDOWN WAVE: {} instances in {} {} by {}",
            w.instances,
            w.account,
            w.region,
            callers(2)
        ),
        WaveStage::Closed => format!(
            "TRIPWIRE SHUTDOWN WAVE CLOSED: {unclaimed_count} of {} instances in {} {} unclaimed",
            w.instances, w.account, w.region
        ),
    };
    let mut text = String::new();
    let _ = writeln!(
        text,
        "TRIPWIRE SHUTDOWN WAVE: EC2 reports instances shutting down or terminated in one account and region, faster than {} in {}. EC2's events name no caller; CloudTrail's records, which come later, do.\n",
        w.threshold, w.window
    );
    let _ = writeln!(text, "Wave   {}", w.id);
    let _ = writeln!(text, "Where  account {}, region {}", w.account, w.region);
    let _ = writeln!(
        text,
        "Count  {} instances ({} in the window that crossed the threshold)",
        w.instances, w.trigger_count
    );
    let _ = writeln!(
        text,
        "When   {} to {} (threshold crossed at {})",
        format_millis(w.first_event_time),
        format_millis(w.last_event_time),
        format_millis(w.trigger_time)
    );
    if w.claimed_by.is_empty() {
        let _ = writeln!(text, "Who    no CloudTrail record has named a caller yet");
    } else {
        let _ = writeln!(
            text,
            "Who    from the CloudTrail records naming the instances:"
        );
        for c in &w.claimed_by {
            let _ = writeln!(
                text,
                "         {} ({} instances)",
                c.principal_arn, c.instances
            );
        }
    }
    let bound = crate::time::format_duration(max_delivery_delay);
    if stage == WaveStage::Closed {
        let _ = writeln!(
            text,
            "Unclaimed {unclaimed_count} instances no CloudTrail record named within {bound} of the wave: they went some other way (a Spot interruption, an OS shutdown with shutdown behaviour terminate, a path the tripwire does not watch)"
        );
    } else {
        let _ = writeln!(
            text,
            "Unclaimed {unclaimed_count} instances no record names yet (records may take up to {bound}; after that: Spot interruptions, OS shutdowns, a path not watched)"
        );
    }
    // A page stays readable on a phone: twenty IDs at most; the JSON has the sample.
    let listed = |ids: &[String]| -> String {
        let mut s = ids
            .iter()
            .take(TEXT_IDS)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if ids.len() > TEXT_IDS {
            let _ = write!(s, " and {} more", ids.len() - TEXT_IDS);
        }
        s
    };
    if !w.unclaimed.is_empty() {
        let _ = writeln!(text, "         e.g. {}", listed(&w.unclaimed));
    }
    let _ = writeln!(
        text,
        "Containment none from this page: the principals CloudTrail names are counted and contained as usual."
    );
    let _ = writeln!(text, "\nInstances: {}", listed(&w.instance_ids));
    let json = WaveJson {
        wave: w,
        stage,
        unclaimed_count,
        alert_time: now,
    };
    let mut resources = vec![account_resource(&w.account)];
    resources.extend(w.claimed_by.iter().take(8).map(|c| {
        (
            resource_type(&c.principal_arn).into(),
            c.principal_arn.clone(),
        )
    }));
    resources.extend(
        w.instance_ids
            .iter()
            .take(ASFF_RESOURCES.saturating_sub(resources.len()))
            .map(|id| ("AwsEc2Instance".to_owned(), id.clone())),
    );
    let card = Card {
        key: w.id.clone(),
        rule: Rule::Wave,
        title: subject.clone(),
        headline,
        description: format!(
            "*{}* instances shutting down or terminated in account `{}` {} since {}. Callers so far: {}. Unclaimed: {unclaimed_count}.",
            w.instances,
            w.account,
            w.region,
            format_millis(w.first_event_time),
            if w.claimed_by.is_empty() { "none yet".to_owned() } else { callers(4) },
        ),
        next_steps: vec![
            "Check whether a scale-in, a deployment or a Spot reclaim is under way in this account and region.".into(),
            "If not, read who the CloudTrail records name (the next page) and stop them; the tripwire contains a principal whose burst crosses its threshold.".into(),
        ],
        keywords: vec![
            "tripwire".into(),
            kind.as_str().into(),
            w.account.clone(),
            w.region.clone(),
        ],
        resources,
        context: vec![
            ("wave".into(), w.id.clone()),
            ("instances".into(), w.instances.to_string()),
            ("unclaimed".into(), unclaimed_count.to_string()),
        ],
        region: w.region.clone(),
        first_seen: w.first_event_time,
        last_seen: w.last_event_time,
        opened: w.trigger_time,
        time: now,
        resolves: false,
    };
    Alert {
        kind,
        card,
        subject: subject_safe(&subject),
        text: with_runbook(text, kind),
        json: serde_json::to_string(&json).unwrap_or_default(),
        account: w.account.clone(),
        tamper: false,
    }
}

/// The JSON of a coverage alert.
#[derive(Serialize)]
struct CoverageJson<'a> {
    #[serde(rename = "type")]
    record_type: &'static str,
    kind: &'static str,
    /// `lost` or `armed`; `never_seen` is [`NeverSeenJson`].
    state: Armed,
    account: &'a str,
    region: &'a str,
    #[serde(with = "crate::time::rfc3339")]
    last_heartbeat: Millis,
    silent_s: i64,
    interval_s: i64,
    #[serde(with = "crate::time::rfc3339")]
    alert_time: Millis,
}

/// Renders `coverage_lost` or `coverage_restored` for a pair whose last heartbeat is `s`.
pub fn render_coverage(
    kind: AlertKind,
    s: &crate::armed::HeartbeatState,
    now: Millis,
    interval: Millis,
) -> Alert {
    let lost = kind == AlertKind::CoverageLost;
    let silent = (now - s.last) / 1000;
    let subject = if lost {
        format!(
            "TRIPWIRE COVERAGE LOST: {} {} silent for {} min",
            s.account,
            s.region,
            silent / 60
        )
    } else {
        format!("TRIPWIRE COVERAGE RESTORED: {} {}", s.account, s.region)
    };
    let mut text = String::new();
    if lost {
        let _ = writeln!(
            text,
            "TRIPWIRE COVERAGE LOST: no canary heartbeat from account {} in {} for {} minutes (the canary calls every {} minutes).\n",
            s.account,
            s.region,
            silent / 60,
            interval / 60_000
        );
        let _ = writeln!(
            text,
            "Until it speaks again, a burst of terminations there may not reach the tripwire."
        );
        let _ = writeln!(text, "Last heartbeat  {}", format_millis(s.last));
        let _ = writeln!(text, "\nCheck, in that account and region");
        numbered(&mut text, &LOST_CHECKS);
    } else {
        let _ = writeln!(
            text,
            "TRIPWIRE COVERAGE RESTORED: account {} in {} sends heartbeats again (last {}).",
            s.account,
            s.region,
            format_millis(s.last)
        );
    }
    let json = CoverageJson {
        record_type: "coverage_alert",
        kind: kind.as_str(),
        state: if lost { Armed::Lost } else { Armed::Armed },
        account: &s.account,
        region: &s.region,
        last_heartbeat: s.last,
        silent_s: silent,
        interval_s: interval / 1000,
        alert_time: now,
    };
    let checks: &[&str] = if lost { &LOST_CHECKS } else { &[] };
    let card = coverage_card(&s.account, &s.region, &subject, &text, checks, s.last, now);
    let text = with_runbook(text, kind);
    Alert {
        tamper: false,
        kind,
        card,
        subject: subject_safe(&subject),
        text,
        json: serde_json::to_string(&json).unwrap_or_default(),
        account: s.account.clone(),
    }
}

/// The JSON of a `coverage_lost` alert for a pair that never sent a heartbeat.
#[derive(Serialize)]
struct NeverSeenJson<'a> {
    #[serde(rename = "type")]
    record_type: &'static str,
    kind: &'static str,
    state: Armed,
    account: &'a str,
    region: &'a str,
    stack_instance_status: &'a str,
    #[serde(with = "crate::time::rfc3339")]
    listed: Millis,
    silent_s: i64,
    #[serde(with = "crate::time::rfc3339")]
    alert_time: Millis,
}

/// Renders `coverage_lost` for a StackSet instance `d` that has sent no heartbeat since
/// the watchdog first listed it at `listed`.
pub fn render_never_seen(d: &crate::armed::Deployed, listed: Millis, now: Millis) -> Alert {
    let silent = (now - listed) / 1000;
    let subject = format!(
        "TRIPWIRE COVERAGE LOST: {} {} never sent a heartbeat ({} min)",
        d.account,
        d.region,
        silent / 60
    );
    let mut text = String::new();
    let _ = writeln!(
        text,
        "TRIPWIRE COVERAGE LOST: the member StackSet has an instance in account {} {}, and no canary heartbeat has come from there in the {} minutes since it was first listed.\n",
        d.account,
        d.region,
        silent / 60
    );
    let _ = writeln!(
        text,
        "Until it speaks, a burst of terminations there may not reach the tripwire."
    );
    let _ = writeln!(text, "Stack instance  {}", d.status);
    let _ = writeln!(text, "Listed since    {}", format_millis(listed));
    let _ = writeln!(text, "\nCheck");
    numbered(&mut text, &NEVER_SEEN_CHECKS);
    let json = NeverSeenJson {
        record_type: "coverage_alert",
        kind: AlertKind::CoverageLost.as_str(),
        state: Armed::NeverSeen,
        account: &d.account,
        region: &d.region,
        stack_instance_status: &d.status,
        listed,
        silent_s: silent,
        alert_time: now,
    };
    let card = coverage_card(
        &d.account,
        &d.region,
        &subject,
        &text,
        &NEVER_SEEN_CHECKS,
        listed,
        now,
    );
    let text = with_runbook(text, AlertKind::CoverageLost);
    Alert {
        tamper: false,
        kind: AlertKind::CoverageLost,
        card,
        subject: subject_safe(&subject),
        text,
        json: serde_json::to_string(&json).unwrap_or_default(),
        account: d.account.clone(),
    }
}

/// What to check for a region that fell silent.
const LOST_CHECKS: [&str; 4] = [
    "the rules tripwire-forward-* are enabled and target the central bus;",
    "the schedule tripwire-canary and the role tripwire-canary exist;",
    "the organization trail is logging management events;",
    "CloudTrail for tamper events there (StopLogging, DisableRule, DeleteSchedule).",
];

/// What to check for a StackSet instance that never spoke.
const NEVER_SEEN_CHECKS: [&str; 4] = [
    "the StackSet operation for that account and region succeeded (a failed or skipped deployment is the usual cause);",
    "there, the rules tripwire-forward-* are enabled and target the central bus;",
    "there, the schedule tripwire-canary and the role tripwire-canary exist;",
    "the organization trail records management events in that region.",
];

/// Writes `steps` as the text's numbered list.
fn numbered(text: &mut String, steps: &[&str]) {
    for (n, step) in steps.iter().enumerate() {
        let _ = writeln!(text, "  {}. {step}", n + 1);
    }
}

/// A coverage alarm's card: keyed by the account and region, so `coverage_restored`
/// resolves the page `coverage_lost` opened. The description is the text's first
/// paragraph; the next steps are its `checks`, and an alarm with none to make is a
/// region's return.
fn coverage_card(
    account: &str,
    region: &str,
    subject: &str,
    text: &str,
    checks: &[&str],
    since: Millis,
    now: Millis,
) -> Card {
    let description = text.split("\n\n").next().unwrap_or_default().to_owned();
    let next_steps = checks.iter().map(|c| (*c).to_owned()).collect();
    Card {
        key: format!("coverage-{account}-{region}"),
        rule: Rule::Coverage,
        title: subject.into(),
        headline: format!("TRIPWIRE COVERAGE: {account} {region}"),
        description,
        next_steps,
        keywords: vec![
            "tripwire".into(),
            "coverage".into(),
            account.into(),
            region.into(),
        ],
        resources: vec![account_resource(account)],
        context: vec![
            ("account".into(), account.into()),
            ("region".into(), region.into()),
        ],
        region: region.into(),
        first_seen: since,
        last_seen: since,
        opened: since,
        time: now,
        resolves: checks.is_empty(),
    }
}

fn text_body(
    kind: AlertKind,
    i: &Incident,
    status: &ContainmentStatus,
    window: Millis,
    now: Millis,
    degraded: bool,
) -> String {
    let call = call_of(i);
    let name = call.event_name;
    let noun = call.words.noun;
    let verb = call.words.verb;
    let burst = call.words.burst;
    let mut t = String::new();
    let headline = match kind {
        AlertKind::Detected => format!("TRIPWIRE DETECTED a burst of {burst}."),
        AlertKind::Update
        | AlertKind::Tamper
        | AlertKind::CoverageLost
        | AlertKind::CoverageRestored
        | AlertKind::ShutdownWave
        | AlertKind::ContainmentUnproven => "TRIPWIRE UPDATE: the burst is still going.".into(),
        AlertKind::Contained => {
            format!("TRIPWIRE CONTAINED the principal behind a burst of {burst}.")
        }
        AlertKind::ContainmentFailed => {
            "TRIPWIRE CONTAINMENT FAILED: the principal is NOT contained. Act now.".into()
        }
        AlertKind::Released => {
            "TRIPWIRE RELEASED: containment was lifted and the incident closed.".into()
        }
    };
    let _ = writeln!(t, "{headline}\n");
    let _ = writeln!(t, "What happened");
    match i.kind() {
        Lane::Attempt => {
            let _ = writeln!(
                t,
                "  {} made {} failed {name} call(s) in account {}, crossing {} within {}s (error codes: {}). Nothing was terminated; this is probing or a script aimed at the wrong IDs. Alert only.",
                i.principal_arn().unwrap_or_default(),
                i.attempts,
                i.account,
                i.threshold,
                window / 1000,
                i.error_codes.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        Lane::Account => {
            let _ = writeln!(
                t,
                "  {} {noun}(s) {verb} in account {} by {} principal(s), crossing the account threshold {} within {}s: {}. Alert only.",
                i.instances(),
                i.account,
                i.principals.len(),
                i.threshold,
                window / 1000,
                i.principals.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        Lane::Precursor => {
            let _ = writeln!(
                t,
                "  {} removed {} protection(s) in account {}, crossing {} within {}s. Nothing is destroyed yet: this is how a wipe is prepared (protections off, instances set to terminate on shutdown, buckets set to empty themselves). Alert only.",
                i.principal_arn().unwrap_or_default(),
                i.instances(),
                i.account,
                i.threshold,
                window / 1000,
            );
        }
        lane => {
            let _ = writeln!(
                t,
                "  {} {verb} {} {noun}(s) in account {}; the burst crossed {} within {}s{}{}.",
                i.principal_arn().unwrap_or_default(),
                i.instances(),
                i.account,
                i.threshold,
                window / 1000,
                if i.cross_account {
                    " (a session chained from another account)"
                } else {
                    ""
                },
                if lane == Lane::Service {
                    " (an AWS service acting on its own: alert only)"
                } else {
                    ""
                }
            );
        }
    }
    if degraded {
        let _ = writeln!(
            t,
            "  The shared window was unavailable: this alert rests on this one call alone."
        );
    }
    if i.attempts > 0 {
        let _ = writeln!(t, "  {} further call(s) were denied or failed.", i.attempts);
    }
    let _ = writeln!(t, "\nTimeline (UTC)");
    let _ = writeln!(
        t,
        "  first termination   {}",
        format_millis(i.first_event_time)
    );
    let _ = writeln!(t, "  threshold crossed   {}", format_millis(i.trigger_time));
    let _ = writeln!(
        t,
        "  latest termination  {}",
        format_millis(i.last_event_time)
    );
    let _ = writeln!(t, "  this alert          {}", format_millis(now));
    let join = |s: &std::collections::BTreeSet<String>| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    let _ = writeln!(t, "\nWho");
    let _ = writeln!(
        t,
        "  principal   {} ({})",
        i.principal_arn().unwrap_or_default(),
        i.principal_type
    );
    let _ = writeln!(
        t,
        "  its account {}",
        i.principal_account.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(t, "  source IP   {}", join(&i.source_ips));
    let _ = writeln!(t, "  user agent  {}", join(&i.user_agents));
    let _ = writeln!(t, "  region(s)   {}", join(&i.regions));
    if let Some(o) = &i.origin {
        let who = o
            .principal_arn
            .as_deref()
            .or(o.principal_id.as_deref())
            .or(o.subject.as_deref())
            .unwrap_or("unknown");
        let _ = writeln!(
            t,
            "  origin      {who} in {} via {} ({} hop(s)){}{}",
            o.account
                .as_deref()
                .or(o.provider.as_deref())
                .unwrap_or("unknown"),
            o.via,
            o.hops,
            o.subject
                .as_deref()
                .map(|s| format!(", subject {s}"))
                .unwrap_or_default(),
            o.source_identity
                .as_deref()
                .map(|s| format!(", source identity {s}"))
                .unwrap_or_default()
        );
    }
    if let Some(n) = &i.initiator {
        let _ = writeln!(
            t,
            "  decided by  {} ({} at {})",
            n.principal_arn,
            n.event_name,
            format_millis(n.event_time)
        );
    }
    if let Some(v) = &i.via {
        let _ = writeln!(
            t,
            "  carried out {} terminated them as {}: counted as the principal's own",
            v.service, v.principal_arn
        );
    }
    if !i.sessions.is_empty() {
        let mut v: Vec<(&String, &u64)> = i.sessions.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let list: Vec<String> = v
            .iter()
            .take(crate::incident::SESSIONS_LISTED)
            .map(|(n, c)| format!("{n} ({c})"))
            .collect();
        let _ = writeln!(t, "  sessions    {}", list.join(", "));
    }
    let a = &i.attribution;
    for (label, set) in [
        ("principal ID", &a.principal_ids),
        ("source ID  ", &a.source_identities),
        ("access key ", &a.access_key_ids),
        ("VPC endpoint", &a.vpc_endpoint_ids),
        ("web identity", &a.web_identity_providers),
        ("invoked by ", &a.invoked_by),
    ] {
        if !set.is_empty() {
            let _ = writeln!(t, "  {label} {}", join(set));
        }
    }
    if a.from_console {
        let _ = writeln!(
            t,
            "  console     some calls used console session credentials"
        );
    }
    if a.instance_profile {
        let _ = writeln!(t, "  instance profile  some calls used instance-profile credentials: every instance sharing the profile holds them");
    }
    if !i.precursors.is_empty() {
        let _ = writeln!(
            t,
            "\nPrecursors: protections the principal removed ({})",
            i.precursors.len()
        );
        for p in i.precursors.iter().take(TEXT_SAMPLE) {
            let _ = writeln!(
                t,
                "  {}  {}  {}",
                format_millis(p.event_time),
                p.event_name,
                p.resources.join(", ")
            );
        }
    }
    let shown = i.instance_ids.len().min(TEXT_SAMPLE);
    // "Instances", "DB instances", "EBS volumes": the type's own noun, capitalised.
    let heading = {
        let nouns = call.words.nouns;
        let mut c = nouns.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    };
    // A precursor burst's resources are its precursors', listed above.
    if i.kind() != Lane::Precursor {
        let _ = writeln!(t, "\n{heading} ({}; {} shown)", i.instances(), shown);
        for id in i.instance_ids.iter().take(TEXT_SAMPLE) {
            let _ = writeln!(t, "  {id}");
        }
    }
    let _ = writeln!(
        t,
        "\nContainment: {}",
        status.state.as_str().replace('_', " ").to_uppercase()
    );
    let _ = writeln!(t, "  {}", status.detail);
    let user = short_principal(i.principal_arn().unwrap_or_default())
        .rsplit('/')
        .next()
        .unwrap_or("");
    let _ = writeln!(t, "\nRunbook");
    let _ = writeln!(t, "  1. Verify: the calls are in CloudTrail, e.g.");
    for runbook in runbooks(i) {
        let _ = writeln!(
            t,
            "     {}",
            runbook
                .replace("{region}", &i.region)
                .replace("{start}", &format_millis(i.first_event_time))
        );
    }
    let _ = writeln!(
        t,
        "     and look for userIdentity {user}. Ask its owner what it is running."
    );
    if i.kind() == Lane::Precursor {
        let _ = writeln!(
            t,
            "  2. If it is not legitimate, turn the protections listed above back on and contain the principal by hand: this lane never contains, and the wipe it prepares has not begun."
        );
        let _ = writeln!(t, "\nIncident {}", i.id);
        return t;
    }
    let _ = writeln!(
        t,
        "  2. If it is legitimate, lift containment (detaches the tripwire-* managed policies and removes only the tripwire-* inline ones):"
    );
    // The page's own ID: the table knows the account and the principal.
    let _ = writeln!(t, "     tripwire release --incident {}", i.id);
    let _ = writeln!(
        t,
        "  3. If not, keep it contained, rotate its credentials, and restore the {} from your deployment tooling (tripwire incident export {} lists them).",
        call.words.nouns, i.id
    );
    let _ = writeln!(t, "\nIncident {}", i.id);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containment::{Plan, Target};
    use std::collections::BTreeSet;

    fn incident(arn: &str, n: usize) -> Incident {
        let ids: BTreeSet<String> = (0..n).map(|k| format!("i-{k:017x}")).collect();
        Incident {
            record_type: "incident".into(),
            id: "inc-1".into(),
            subject: crate::incident::Subject::Burst(arn.into()),
            principal_type: "AssumedRole".into(),
            principal_account: Some("222222222222".into()),
            resource_type: "ec2:instance".into(),
            account: "222222222222".into(),
            region: "us-east-1".into(),
            regions: ["us-east-1".to_string()].into(),
            instance_ids: ids,
            unconfirmed_ids: BTreeSet::new(),
            unlisted: Default::default(),
            trigger_count: 10,
            threshold: 10,
            cross_account: false,
            first_event_time: 1_515_535_740_000,
            trigger_time: 1_515_535_753_500,
            last_event_time: 1_515_535_828_500,
            trigger_event_id: "e10".into(),
            attempts: 0,
            source_ips: ["10.20.0.15".to_string()].into(),
            user_agents: BTreeSet::new(),
            containment: Plan {
                action: Action::Revoke,
                restriction: Some(crate::containment::Restriction {
                    target: Target::Role("cleanup-task".into()),
                    account: "222222222222".into(),
                    scope: crate::containment::Scope::Role,
                    condition: None,
                    partition: None,
                    principal_arn: None,
                }),
                managed: vec![],
                reason: "revoke".into(),
                tags: Default::default(),
                origin: None,
                deactivate_keys: vec![],
            },
            origin: None,
            via: None,
            initiator: None,
            precursors: Vec::new(),
            sessions: Default::default(),
            principals: BTreeSet::new(),
            error_codes: BTreeSet::new(),
            attribution: Default::default(),
        }
    }

    #[test]
    fn the_subject_reads_like_the_example_and_stays_within_sns_rules() {
        let i = incident("arn:aws:iam::222222222222:role/vendor/cleanup-task", 37);
        let s = ContainmentStatus::from_plan(&i);
        let a = render(
            AlertKind::Detected,
            &i,
            &s,
            300_000,
            1_515_535_754_000,
            false,
        );
        assert_eq!(
            a.subject,
            "TRIPWIRE: 37 instances terminated by role/vendor/cleanup-task in 222222222222"
        );
        let hostile = incident(
            &format!(
                "arn:aws:iam::222222222222:role/{}\u{7}é\nx",
                "a".repeat(200)
            ),
            1,
        );
        for kind in [
            AlertKind::Detected,
            AlertKind::Update,
            AlertKind::Contained,
            AlertKind::ContainmentFailed,
        ] {
            let a = render(kind, &hostile, &s, 300_000, 0, false);
            assert!(
                a.subject.len() < 100
                    && a.subject.is_ascii()
                    && !a.subject.chars().any(|c| c.is_control()),
                "{:?}",
                a.subject
            );
        }
    }

    #[test]
    fn every_page_points_at_its_runbook_section_headed_by_the_pages_own_words() {
        let runbook = include_str!("../../../docs/runbook.md");
        let i = incident("arn:aws:iam::222222222222:role/vendor/cleanup-task", 37);
        let s = ContainmentStatus::from_plan(&i);
        let mut pages: Vec<Alert> = [
            AlertKind::Detected,
            AlertKind::Update,
            AlertKind::Contained,
            AlertKind::ContainmentFailed,
            AlertKind::Released,
        ]
        .into_iter()
        .map(|k| render(k, &i, &s, 300_000, 1_515_535_754_000, false))
        .collect();
        let tamper: crate::armed::Tamper = serde_json::from_value(serde_json::json!({
            "event_id": "e", "event_name": "StopLogging", "event_source": "cloudtrail.amazonaws.com",
            "principal_arn": "arn:aws:iam::1:role/x", "account": "1", "region": "r",
            "target": "org-trail", "event_time": "2018-01-09T22:09:00Z"}))
        .unwrap();
        pages.push(render_tamper(&tamper, None, 0));
        let beat = crate::armed::HeartbeatState {
            account: "222222222222".into(),
            region: "eu-west-1".into(),
            last: 0,
            arrived: 0,
            heartbeats: 3,
            lost_paged: None,
        };
        for kind in [AlertKind::CoverageLost, AlertKind::CoverageRestored] {
            pages.push(render_coverage(kind, &beat, 40 * 60_000, 10 * 60_000));
        }
        let wave = crate::wave::Wave::stored(
            "wave-1".into(),
            "222222222222".into(),
            "us-east-1".into(),
            (0, 1000, 2000),
            50,
            50,
            "5m".into(),
            60,
            Vec::new(),
        );
        pages.push(render_wave(&wave, WaveStage::Opened, 60, 3_600_000, 3000));
        pages.push(crate::drill::render_unproven(
            &crate::drill::Drilled {
                account: "222222222222".into(),
                ok: false,
                reason: Some("AccessDenied".into()),
                simulated: None,
                brake: None,
                at: 0,
            },
            60_000,
        ));
        assert_eq!(pages.len(), 10, "every kind");
        for page in &pages {
            let kind = page.kind.as_str();
            let link = format!("Runbook: {RUNBOOK}#{kind} (in the tripwire repository)");
            assert!(
                page.text.trim_end().ends_with(&link),
                "{kind}: {}",
                page.text
            );
            let anchor = format!("<a id=\"{kind}\"></a>\n## ");
            let at = runbook
                .find(&anchor)
                .unwrap_or_else(|| panic!("{kind}: no section"));
            let heading = runbook[at + anchor.len()..].lines().next().unwrap();
            // The page's words: its subject up to the first colon (the update's text
            // says TRIPWIRE UPDATE, its subject `TRIPWIRE update`).
            let words = page.subject.split(':').next().unwrap().to_uppercase();
            assert!(
                heading.to_uppercase().starts_with(&words),
                "{kind}: {heading} / {words}"
            );
        }
    }

    #[test]
    fn the_bodies_carry_what_a_responder_needs() {
        let i = incident("arn:aws:iam::222222222222:role/vendor/cleanup-task", 1200);
        let s = ContainmentStatus::from_plan(&i);
        let a = render(
            AlertKind::Detected,
            &i,
            &s,
            300_000,
            1_515_535_754_000,
            false,
        );
        for needle in [
            "first termination   2018-01-09T22:09:00Z",
            "threshold crossed   2018-01-09T22:09:13.500Z",
            "10.20.0.15",
            "us-east-1",
            "tripwire release --incident inc-1",
            "REQUESTED",
            "(1200; 10 shown)",
        ] {
            assert!(a.text.contains(needle), "missing {needle}:\n{}", a.text);
        }
        let v: serde_json::Value = serde_json::from_str(&a.json).unwrap();
        assert_eq!(v["kind"], "detected");
        assert_eq!(v["instances"], 1200);
        assert_eq!(v["instance_ids"].as_array().unwrap().len(), JSON_SAMPLE);
        assert_eq!(v["instance_ids_truncated"], true);
        assert_eq!(v["containment"]["role_name"], "cleanup-task");
        assert_eq!(v["containment_status"]["state"], "requested");
        assert!(a.json.len() * 3 + a.text.len() < 256 * 1024);
    }
}
