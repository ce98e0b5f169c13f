//! Security Hub: one finding per incident, imported from the alerts the alert bus
//! carries (the findings function's rule), updated by each later alert, its workflow set
//! on containment and release, archived on release.

use crate::error::{aws_error, Error, Port};
use aws_sdk_securityhub::types::AwsSecurityFinding;
use aws_sdk_securityhub::types::{
    AwsSecurityFindingIdentifier, FindingProviderFields, FindingProviderSeverity, NoteUpdate,
    Partition, Recommendation, RecordState, Remediation, Resource, SeverityLabel, WorkflowStatus,
    WorkflowUpdate,
};
use aws_sdk_securityhub::Client;
use serde_json::Value;
use tripwire_engine::alert::Alert;
use tripwire_engine::destination::{asff, workflow, FindingContext};

/// What one event did to its finding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recorded {
    /// The finding's ID, or `None` for an alert that is not an incident's.
    pub finding: Option<String>,
    /// The workflow status set, if any.
    pub workflow: Option<&'static str>,
    /// Why the event was acknowledged without touching a finding, if it was.
    pub skipped: Option<String>,
}

impl Recorded {
    fn skipped(why: impl Into<String>) -> Self {
        Recorded {
            finding: None,
            workflow: None,
            skipped: Some(why.into()),
        }
    }
}

/// The importer: the central account's default product.
#[derive(Debug, Clone)]
pub struct Findings {
    client: Client,
    ctx: FindingContext,
}

fn bad(what: &str) -> Error {
    Error::encoding("a finding", what)
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The SDK's finding from the engine's ASFF document (the fields [`asff`] writes).
fn to_sdk(v: &Value) -> Result<AwsSecurityFinding, Error> {
    let fpf = &v["FindingProviderFields"];
    let label = fpf["Severity"]["Label"].as_str().unwrap_or("HIGH");
    let mut b = AwsSecurityFinding::builder()
        .set_schema_version(text(v, "SchemaVersion"))
        .set_id(text(v, "Id"))
        .set_product_arn(text(v, "ProductArn"))
        .set_generator_id(text(v, "GeneratorId"))
        .set_aws_account_id(text(v, "AwsAccountId"))
        .set_created_at(text(v, "CreatedAt"))
        .set_updated_at(text(v, "UpdatedAt"))
        .set_first_observed_at(text(v, "FirstObservedAt"))
        .set_last_observed_at(text(v, "LastObservedAt"))
        .set_title(text(v, "Title"))
        .set_description(text(v, "Description"))
        .finding_provider_fields(
            FindingProviderFields::builder()
                .severity(
                    FindingProviderSeverity::builder()
                        .label(SeverityLabel::from(label))
                        .original(label)
                        .build(),
                )
                .set_types(fpf["Types"].as_array().map(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                }))
                .build(),
        )
        .remediation(
            Remediation::builder()
                .recommendation(
                    Recommendation::builder()
                        .set_text(
                            v["Remediation"]["Recommendation"]["Text"]
                                .as_str()
                                .map(str::to_owned),
                        )
                        .build(),
                )
                .build(),
        )
        .record_state(RecordState::from(
            v["RecordState"].as_str().unwrap_or("ACTIVE"),
        ));
    for (k, val) in v["ProductFields"].as_object().into_iter().flatten() {
        b = b.product_fields(k, val.as_str().unwrap_or_default());
    }
    for r in v["Resources"]
        .as_array()
        .ok_or_else(|| bad("no Resources"))?
    {
        b = b.resources(
            Resource::builder()
                .set_type(text(r, "Type"))
                .set_id(text(r, "Id"))
                .set_partition(text(r, "Partition").map(|p| Partition::from(p.as_str())))
                .set_region(text(r, "Region"))
                .build(),
        );
    }
    Ok(b.build())
}

impl Findings {
    /// Imports into `ctx`'s default product.
    pub fn new(client: Client, ctx: FindingContext) -> Self {
        Findings { client, ctx }
    }

    /// Imports or updates `alert`'s finding, then sets its workflow when the alert
    /// reports containment or a release. A refused finding is an error (the event is
    /// retried, then dead-lettered), never a silent drop.
    pub async fn record(&self, alert: &Alert) -> Result<Recorded, Error> {
        let Some(doc) = asff(alert, &self.ctx) else {
            return Ok(Recorded::skipped("not_an_incident"));
        };
        let id = text(&doc, "Id").unwrap_or_default();
        let out = self
            .client
            .batch_import_findings()
            .findings(to_sdk(&doc)?)
            .send()
            .await
            .map_err(|e| aws_error(Port::Alerts, "securityhub:BatchImportFindings", e))?;
        if let Some(f) = out.failed_findings().first() {
            return Err(Error::Aws {
                port: Port::Alerts,
                op: "securityhub:BatchImportFindings",
                code: f.error_code().unwrap_or("Failed").to_owned(),
                message: f.error_message().unwrap_or_default().to_owned(),
                transient: false,
            });
        }
        let Some((status, note)) = workflow(alert) else {
            return Ok(Recorded {
                finding: Some(id),
                workflow: None,
                skipped: None,
            });
        };
        let out = self
            .client
            .batch_update_findings()
            .finding_identifiers(
                AwsSecurityFindingIdentifier::builder()
                    .id(&id)
                    .product_arn(self.ctx.product_arn())
                    .build(),
            )
            .workflow(
                WorkflowUpdate::builder()
                    .status(WorkflowStatus::from(status))
                    .build(),
            )
            .note(
                NoteUpdate::builder()
                    .text(note)
                    .updated_by("tripwire")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error(Port::Alerts, "securityhub:BatchUpdateFindings", e))?;
        if let Some(f) = out.unprocessed_findings().first() {
            return Err(Error::Aws {
                port: Port::Alerts,
                op: "securityhub:BatchUpdateFindings",
                code: f.error_code().unwrap_or("Unprocessed").to_owned(),
                message: f.error_message().unwrap_or_default().to_owned(),
                transient: false,
            });
        }
        Ok(Recorded {
            finding: Some(id),
            workflow: Some(status),
            skipped: None,
        })
    }

    /// Handles one alert-bus event as the rule delivers it. Only the tripwire's own
    /// events from this account are read: the rule matches them, and this checks again,
    /// so an event put by anyone else can never open, move or archive a finding.
    /// Anything else is acknowledged with the reason, not retried.
    pub async fn handle_event(&self, event: &str) -> Result<Recorded, Error> {
        let Ok(v) = serde_json::from_str::<Value>(event) else {
            return Ok(Recorded::skipped("not_json"));
        };
        if v["source"] != crate::bus::SOURCE {
            return Ok(Recorded::skipped("not_from_tripwire"));
        }
        if v["account"] != self.ctx.account.as_str() {
            return Ok(Recorded::skipped("not_from_this_account"));
        }
        // The window only words the page's text, which a finding does not carry.
        match tripwire_engine::destination::alert_from_json(&v["detail"], 0) {
            Ok(alert) => self.record(&alert).await,
            Err(e) => Ok(Recorded::skipped(format!("not_an_alert: {e:?}"))),
        }
    }
}
