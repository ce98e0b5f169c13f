//! Sends rendered alerts to SNS, with one message per protocol and filterable attributes.

use crate::{aws_error, Error};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use tripwire_engine::alert::Alert;

/// The SNS alerter for one topic.
#[derive(Debug, Clone)]
pub struct Alerter {
    client: Client,
    topic_arn: String,
}

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
        .map_err(|e| Error::Data(e.to_string()))
}

impl Alerter {
    /// An alerter for `topic_arn`.
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Alerter {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// Publishes `alert`; returns the SNS message ID.
    pub async fn publish(&self, alert: &Alert) -> Result<String, Error> {
        let message = serde_json::to_string(&PerProtocol {
            default: &alert.text,
            email: &alert.text,
            sqs: &alert.json,
            lambda: &alert.json,
            https: &alert.json,
        })
        .map_err(|e| Error::Data(e.to_string()))?;
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&alert.subject)
            .message(message)
            .message_structure("json")
            .message_attributes("severity", attribute(alert.kind.severity())?)
            .message_attributes("account", attribute(&alert.account)?)
            .message_attributes("kind", attribute(alert.kind.as_str())?)
            .send()
            .await
            .map_err(|e| aws_error("sns:Publish", e))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}
