//! Sends rendered alerts to SNS, with one message per protocol and filterable
//! attributes (the page), and then onto the alert bus when one is configured, under the
//! pipeline's alerting rule.

use crate::bus::AlertBus;
use crate::error::{aws_error, Error, Port};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use tripwire_engine::alert::Alert;
use tripwire_pipeline::{Alerting, Alerts, Page};

/// The SNS topic that pages: the alert topic, and for the tripwire's own alarms the
/// second channel when one is configured.
#[derive(Debug, Clone)]
pub struct SnsTopic {
    client: Client,
    topic_arn: String,
    alarm_topic_arn: Option<String>,
}

/// The functions' alerts: the page on SNS, then the alert bus when one is configured,
/// under the pipeline's rule ([`Alerting`]).
#[derive(Debug, Clone)]
pub struct Alerter(Alerting<SnsTopic, Option<AlertBus>>);

#[derive(serde::Serialize)]
struct PerProtocol<'a> {
    default: &'a str,
    email: &'a str,
    sqs: &'a str,
    lambda: &'a str,
    https: &'a str,
}

fn attribute(value: &str) -> Result<MessageAttributeValue, Error> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| Error::encoding("a message attribute", e))
}

impl Alerter {
    /// An alerter for `topic_arn`.
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        let topic = SnsTopic {
            client,
            topic_arn: topic_arn.into(),
            alarm_topic_arn: None,
        };
        Alerter(Alerting::new(topic, None))
    }

    /// Also puts every alert on `bus` (chat, PagerDuty and Security Hub rules read it).
    pub fn with_bus(self, bus: Option<AlertBus>) -> Self {
        let (topic, _) = self.0.into_parts();
        Alerter(Alerting::new(topic, bus))
    }

    /// Sends the tripwire's own alarms ([`AlertKind::is_own_alarm`]) to `topic_arn`
    /// instead: a topic without the tripwire's key, so "the key was disabled" still
    /// reaches someone.
    ///
    /// [`AlertKind::is_own_alarm`]: tripwire_engine::alert::AlertKind::is_own_alarm
    pub fn with_alarm_topic(self, topic_arn: Option<String>) -> Self {
        let (mut topic, bus) = self.0.into_parts();
        topic.alarm_topic_arn = topic_arn;
        Alerter(Alerting::new(topic, bus))
    }
}

impl Alerts for Alerter {
    /// Publishes `alert` on SNS, then puts it on the bus; returns the SNS message ID.
    /// Only SNS fails the publish (the pipeline's rule).
    async fn publish(&self, alert: &Alert) -> Result<String, Error> {
        self.0.publish(alert).await
    }
}

impl Page for SnsTopic {
    async fn page(&self, alert: &Alert) -> Result<String, Error> {
        let message = serde_json::to_string(&PerProtocol {
            default: &alert.text,
            email: &alert.text,
            sqs: &alert.json,
            lambda: &alert.json,
            https: &alert.json,
        })
        .map_err(|e| Error::encoding("the alert", e))?;
        // The tripwire's own alarms take the second channel; a burst by one of its own
        // roles pages both (the alarm first: a failed one fails the page, and its retry
        // may repeat the alarm, never lose it).
        let topics: &[&String] = match &self.alarm_topic_arn {
            Some(alarms) if alert.kind.is_own_alarm() => &[alarms],
            Some(alarms) if alert.tamper => &[alarms, &self.topic_arn],
            _ => &[&self.topic_arn],
        };
        let mut id = String::new();
        for topic in topics {
            let out = self
                .client
                .publish()
                .topic_arn(*topic)
                .subject(&alert.subject)
                .message(&message)
                .message_structure("json")
                .message_attributes("severity", attribute(alert.kind.severity())?)
                .message_attributes("account", attribute(&alert.account)?)
                .message_attributes("kind", attribute(alert.kind.as_str())?)
                .send()
                .await
                .map_err(|e| aws_error(Port::Alerts, "sns:Publish", e))?;
            id = out.message_id().unwrap_or_default().to_owned();
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sns::operation::publish::PublishOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use tripwire_engine::alert::{Alert, AlertKind};
    use tripwire_pipeline::alerting::BROADCAST_DEADLINE as BUS_DEADLINE;

    /// An alert of `kind` for account 222222222222 with bodies `t` and `{}`.
    fn alert(kind: AlertKind) -> Alert {
        Alert {
            kind,
            subject: "s".into(),
            text: "t".into(),
            json: "{}".into(),
            account: "222222222222".into(),
            tamper: false,
            card: Default::default(),
        }
    }

    #[tokio::test]
    async fn one_message_per_protocol_with_filterable_attributes() {
        let publish = mock!(Client::publish)
            .match_requests(|r| {
                let m: serde_json::Value =
                    serde_json::from_str(r.message().unwrap_or("{}")).unwrap_or_default();
                let attr = |k: &str| {
                    r.message_attributes()
                        .and_then(|a| a.get(k))
                        .and_then(|v| v.string_value())
                        .map(str::to_owned)
                };
                r.topic_arn() == Some("arn:aws:sns:us-east-1:123456789012:t")
                    && r.message_structure() == Some("json")
                    && r.subject() == Some("TRIPWIRE: test")
                    && m["default"] == "text"
                    && m["email"] == "text"
                    && m["sqs"] == "{\"a\":1}"
                    && m["lambda"] == "{\"a\":1}"
                    && m["https"] == "{\"a\":1}"
                    && attr("severity").as_deref() == Some("critical")
                    && attr("kind").as_deref() == Some("detected")
                    && attr("account").as_deref() == Some("222222222222")
            })
            .then_output(|| PublishOutput::builder().message_id("m-1").build());
        let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, [&publish]);
        let alert = Alert {
            kind: AlertKind::Detected,
            subject: "TRIPWIRE: test".into(),
            text: "text".into(),
            json: "{\"a\":1}".into(),
            account: "222222222222".into(),
            tamper: false,
            card: Default::default(),
        };
        let id = Alerter::new(client, "arn:aws:sns:us-east-1:123456789012:t")
            .publish(&alert)
            .await
            .unwrap();
        assert_eq!(id, "m-1");
    }

    #[tokio::test]
    async fn the_tripwires_own_alarms_take_the_second_channel() {
        let to = |topic: &'static str, kind: &'static str| {
            mock!(Client::publish)
                .match_requests(move |r| {
                    let k = r
                        .message_attributes()
                        .and_then(|a| a.get("kind"))
                        .and_then(|v| v.string_value());
                    r.topic_arn() == Some(topic) && k == Some(kind)
                })
                .then_output(|| PublishOutput::builder().message_id("m").build())
        };
        let main = "arn:aws:sns:us-east-1:123456789012:alerts";
        let alarms = "arn:aws:sns:us-east-1:123456789012:alarms";
        let rules = [
            to(main, "detected"),
            to(alarms, "tamper"),
            to(alarms, "coverage_lost"),
            // A burst by one of the tripwire's own roles: both channels, the alarm first.
            to(alarms, "detected"),
            to(main, "detected"),
        ];
        let client = mock_client!(
            aws_sdk_sns,
            RuleMode::Sequential,
            [&rules[0], &rules[1], &rules[2], &rules[3], &rules[4]]
        );
        let alerter = Alerter::new(client, main).with_alarm_topic(Some(alarms.into()));
        for (kind, tamper) in [
            (AlertKind::Detected, false),
            (AlertKind::Tamper, false),
            (AlertKind::CoverageLost, false),
            (AlertKind::Detected, true),
        ] {
            let alert = Alert {
                tamper,
                ..alert(kind)
            };
            alerter.publish(&alert).await.unwrap();
        }
        assert_eq!(
            rules.iter().map(|r| r.num_calls()).collect::<Vec<_>>(),
            [1, 1, 1, 1, 1]
        );
    }

    #[tokio::test]
    async fn a_refusing_bus_leaves_the_page_standing_and_is_not_retried() {
        use aws_sdk_eventbridge::operation::put_events::PutEventsError;
        let publish = mock!(Client::publish)
            .then_output(|| PublishOutput::builder().message_id("m-1").build());
        let put = mock!(aws_sdk_eventbridge::Client::put_events)
            .then_error(|| PutEventsError::unhandled("the bus is gone"));
        let sns = mock_client!(aws_sdk_sns, RuleMode::Sequential, [&publish]);
        let events = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, [&put]);
        let alert = alert(AlertKind::Detected);
        let id = Alerter::new(sns, "arn:aws:sns:us-east-1:123456789012:t")
            .with_bus(Some(AlertBus::new(events, "tripwire-alerts")))
            .publish(&alert)
            .await
            .unwrap();
        assert_eq!(id, "m-1");
        assert_eq!((publish.num_calls(), put.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_bus_that_never_answers_does_not_hold_the_page() {
        // A bus endpoint that accepts the connection and never answers, and a client
        // without the SDK's timeouts: only the alerter's own deadline ends the wait.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let events = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::Config::builder()
                .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
                .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
                .endpoint_url(endpoint)
                .credentials_provider(aws_sdk_eventbridge::config::Credentials::for_tests())
                .build(),
        );
        let publish = mock!(Client::publish)
            .then_output(|| PublishOutput::builder().message_id("m-1").build());
        let sns = mock_client!(aws_sdk_sns, RuleMode::Sequential, [&publish]);
        let alert = alert(AlertKind::Detected);
        let alerter = Alerter::new(sns, "arn:aws:sns:us-east-1:123456789012:t")
            .with_bus(Some(AlertBus::new(events, "tripwire-alerts")));
        let sent = tokio::time::timeout(BUS_DEADLINE * 3, alerter.publish(&alert)).await;
        assert_eq!(
            sent.expect("the alerter gave up on the bus").unwrap(),
            "m-1"
        );
        drop(listener);
    }
}
