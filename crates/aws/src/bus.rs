//! The alert bus: every alert as an EventBridge event (`source` `tripwire`, `detail-type`
//! the alert's kind), so any rule can route it. The central stack's rules send the chat
//! card to the chat topic, the PagerDuty event to an API destination, and incidents to
//! the findings function.

use crate::error::{aws_error, Error, Port};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use tripwire_engine::alert::Alert;
use tripwire_engine::destination::bus_detail;

/// The events' `source`.
pub const SOURCE: &str = "tripwire";

/// An EventBridge bus that takes the tripwire's alerts.
#[derive(Debug, Clone)]
pub struct AlertBus {
    client: Client,
    bus: String,
}

impl AlertBus {
    /// The bus named (or with the ARN) `bus`.
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        AlertBus {
            client,
            bus: bus.into(),
        }
    }

    /// Puts `alert` on the bus. PutEvents answers 200 with a failed entry when the event
    /// is refused: that is an error too.
    pub async fn put(&self, alert: &Alert) -> Result<String, Error> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(alert.kind.as_str())
            .detail(bus_detail(alert))
            .resources_from(alert)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| aws_error(Port::Alerts, "events:PutEvents", e))?;
        match out.entries().first() {
            Some(e) if e.error_code().is_none() => Ok(e.event_id().unwrap_or_default().to_owned()),
            Some(e) => Err(Error::Aws {
                port: Port::Alerts,
                op: "events:PutEvents",
                code: e.error_code().unwrap_or_default().to_owned(),
                message: e.error_message().unwrap_or_default().to_owned(),
                transient: e.error_code() == Some("ThrottlingException")
                    || e.error_code() == Some("InternalFailure"),
            }),
            None => Err(Error::Aws {
                port: Port::Alerts,
                op: "events:PutEvents",
                code: "NoEntry".into(),
                message: "PutEvents answered without the entry".into(),
                transient: true,
            }),
        }
    }
}

/// The bus is best effort after the page.
impl tripwire_pipeline::Broadcast for AlertBus {
    async fn broadcast(&self, alert: &Alert) -> Result<(), Error> {
        self.put(alert).await.map(drop)
    }
}

trait ResourcesFrom {
    fn resources_from(self, alert: &Alert) -> Self;
}

impl ResourcesFrom for aws_sdk_eventbridge::types::builders::PutEventsRequestEntryBuilder {
    /// The event's `resources`: the ARNs the alert is about (a rule can match on them).
    fn resources_from(self, alert: &Alert) -> Self {
        alert
            .card
            .resources
            .iter()
            .filter(|(_, id)| id.starts_with("arn:"))
            .fold(self, |b, (_, id)| b.resources(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use tripwire_engine::alert::{AlertKind, Card};

    fn alert() -> Alert {
        Alert {
            kind: AlertKind::Detected,
            subject: "TRIPWIRE: test".into(),
            text: "text".into(),
            json: r#"{"type":"incident","id":"inc-1"}"#.into(),
            account: "222222222222".into(),
            tamper: false,
            card: Card {
                key: "inc-1".into(),
                resources: vec![
                    (
                        "AwsIamRole".into(),
                        "arn:aws:iam::222222222222:role/x".into(),
                    ),
                    ("AwsAccount".into(), "AWS::::Account:222222222222".into()),
                ],
                ..Default::default()
            },
        }
    }

    #[tokio::test]
    async fn one_event_per_alert_named_by_its_kind_carrying_the_destinations() {
        let put = mock!(Client::put_events)
            .match_requests(|r| {
                let e = &r.entries()[0];
                let d: serde_json::Value =
                    serde_json::from_str(e.detail().unwrap_or("{}")).unwrap_or_default();
                e.event_bus_name() == Some("tripwire-alerts")
                    && e.source() == Some("tripwire")
                    && e.detail_type() == Some("detected")
                    && e.resources() == ["arn:aws:iam::222222222222:role/x"]
                    && d["id"] == "inc-1"
                    && d["destinations"]["pagerduty"]["dedup_key"] == "inc-1"
                    && d["destinations"]["chatbot"]["metadata"]["threadId"] == "inc-1"
            })
            .then_output(|| {
                PutEventsOutput::builder()
                    .entries(PutEventsResultEntry::builder().event_id("ev-1").build())
                    .build()
            });
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, [&put]);
        let id = AlertBus::new(client, "tripwire-alerts")
            .put(&alert())
            .await
            .unwrap();
        assert_eq!(id, "ev-1");
    }

    #[tokio::test]
    async fn a_refused_entry_is_an_error_not_a_success() {
        let put = mock!(Client::put_events).then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(
                    PutEventsResultEntry::builder()
                        .error_code("AccessDeniedException")
                        .error_message("no")
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, [&put]);
        let err = AlertBus::new(client, "b").put(&alert()).await.unwrap_err();
        assert!(err.to_string().contains("AccessDeniedException"), "{err}");
    }
}
