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
use tripwire_engine::destination::{asff, workflow, Finding, FindingContext};

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

/// A batch call that answered 200 but refused its one finding.
fn refused(op: &'static str, code: Option<&str>, message: Option<&str>) -> Error {
    Error::Aws {
        port: Port::Alerts,
        op,
        code: code.unwrap_or("Refused").to_owned(),
        message: message.unwrap_or_default().to_owned(),
        transient: false,
    }
}

/// The SDK's finding from the engine's, field by field.
fn to_sdk(f: &Finding) -> AwsSecurityFinding {
    let severity = &f.finding_provider_fields.severity;
    let mut b = AwsSecurityFinding::builder()
        .schema_version(f.schema_version)
        .id(&f.id)
        .product_arn(&f.product_arn)
        .generator_id(&f.generator_id)
        .aws_account_id(&f.aws_account_id)
        .created_at(&f.created_at)
        .updated_at(&f.updated_at)
        .first_observed_at(&f.first_observed_at)
        .last_observed_at(&f.last_observed_at)
        .title(&f.title)
        .description(&f.description)
        .finding_provider_fields(
            FindingProviderFields::builder()
                .severity(
                    FindingProviderSeverity::builder()
                        .label(SeverityLabel::from(severity.label))
                        .original(severity.original)
                        .build(),
                )
                .set_types(Some(
                    f.finding_provider_fields
                        .types
                        .iter()
                        .map(|t| (*t).to_owned())
                        .collect(),
                ))
                .build(),
        )
        .remediation(
            Remediation::builder()
                .recommendation(
                    Recommendation::builder()
                        .text(&f.remediation.recommendation.text)
                        .build(),
                )
                .build(),
        )
        .record_state(RecordState::from(f.record_state));
    for (k, v) in &f.product_fields {
        b = b.product_fields(k, v);
    }
    for r in &f.resources {
        b = b.resources(
            Resource::builder()
                .r#type(&r.kind)
                .id(&r.id)
                .partition(Partition::from(r.partition.as_str()))
                .region(&r.region)
                .build(),
        );
    }
    b.build()
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
        let Some(finding) = asff(alert, &self.ctx) else {
            return Ok(Recorded::skipped("not_an_incident"));
        };
        let out = self
            .client
            .batch_import_findings()
            .findings(to_sdk(&finding))
            .send()
            .await
            .map_err(|e| aws_error(Port::Alerts, "securityhub:BatchImportFindings", e))?;
        if let Some(f) = out.failed_findings().first() {
            return Err(refused(
                "securityhub:BatchImportFindings",
                f.error_code(),
                f.error_message(),
            ));
        }
        let Some((status, note)) = workflow(alert) else {
            return Ok(Recorded {
                finding: Some(finding.id),
                workflow: None,
                skipped: None,
            });
        };
        let out = self
            .client
            .batch_update_findings()
            .finding_identifiers(
                AwsSecurityFindingIdentifier::builder()
                    .id(&finding.id)
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
            return Err(refused(
                "securityhub:BatchUpdateFindings",
                f.error_code(),
                f.error_message(),
            ));
        }
        Ok(Recorded {
            finding: Some(finding.id),
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_securityhub::operation::batch_import_findings::BatchImportFindingsOutput;
    use aws_sdk_securityhub::operation::batch_update_findings::BatchUpdateFindingsOutput;
    use aws_sdk_securityhub::types::ImportFindingsError;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use tripwire_engine::alert::{AlertKind, Card};

    fn ctx() -> FindingContext {
        FindingContext {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            partition: "aws".into(),
        }
    }

    fn alert(kind: AlertKind) -> Alert {
        Alert {
            kind,
            subject: "TRIPWIRE CONTAINED: role/x".into(),
            text: String::new(),
            json: "{}".into(),
            account: "222222222222".into(),
            tamper: false,
            card: Card {
                key: "inc-1".into(),
                rule: tripwire_engine::alert::Rule::Lane(tripwire_engine::window::Lane::Burst),
                title: "t".into(),
                description: "d".into(),
                resources: vec![(
                    "AwsIamRole".into(),
                    "arn:aws:iam::222222222222:role/x".into(),
                )],
                region: "us-east-1".into(),
                ..Default::default()
            },
        }
    }

    #[tokio::test]
    async fn containment_imports_the_finding_then_moves_its_workflow() {
        let import = mock!(Client::batch_import_findings)
            .match_requests(|r| {
                let f = &r.findings()[0];
                f.id() == Some("tripwire/inc-1")
                    && f.aws_account_id() == Some("123456789012")
                    && f.resources()[0].r#type() == Some("AwsIamRole")
                    && f.finding_provider_fields()
                        .and_then(|p| p.severity())
                        .and_then(|s| s.label())
                        == Some(&SeverityLabel::Critical)
            })
            .then_output(|| {
                BatchImportFindingsOutput::builder()
                    .success_count(1)
                    .failed_count(0)
                    .build()
            });
        let update = mock!(Client::batch_update_findings)
            .match_requests(|r| {
                r.finding_identifiers()[0].id() == Some("tripwire/inc-1")
                    && r.workflow().and_then(|w| w.status()) == Some(&WorkflowStatus::Notified)
            })
            .then_output(|| BatchUpdateFindingsOutput::builder().build());
        let client = mock_client!(
            aws_sdk_securityhub,
            RuleMode::Sequential,
            [&import, &update]
        );
        let r = Findings::new(client, ctx())
            .record(&alert(AlertKind::Contained))
            .await
            .unwrap();
        assert_eq!(r.workflow, Some("NOTIFIED"));
        assert_eq!((import.num_calls(), update.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_refused_finding_is_an_error_and_its_workflow_is_left_alone() {
        let import = mock!(Client::batch_import_findings).then_output(|| {
            BatchImportFindingsOutput::builder()
                .success_count(0)
                .failed_count(1)
                .failed_findings(
                    ImportFindingsError::builder()
                        .id("tripwire/inc-1")
                        .error_code("InvalidInput")
                        .error_message("bad")
                        .build(),
                )
                .build()
        });
        let update = mock!(Client::batch_update_findings)
            .then_output(|| BatchUpdateFindingsOutput::builder().build());
        let client = mock_client!(
            aws_sdk_securityhub,
            RuleMode::Sequential,
            [&import, &update]
        );
        let err = Findings::new(client, ctx())
            .record(&alert(AlertKind::Contained))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("InvalidInput"), "{err}");
        assert_eq!(update.num_calls(), 0);
    }
}
