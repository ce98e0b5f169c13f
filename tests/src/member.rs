//! The member stack's forwarding rule, as CloudFormation (moto's) creates it from
//! infra/member.yaml, with a queue beside its target: what the rule forwards from an
//! account is what reaches the detector, so a test can see a parameter change silence it.

use crate::stack::{repo, Stack, CENTRAL};
use aws_sdk_cloudformation::types::{Capability, Parameter};
use serde_json::Value;

const STACK: &str = "tripwire-member-e2e";
const RULE: &str = "tripwire-forward-terminate-instances";
const QUEUE: &str = "tripwire-member-forwarded";

impl Stack {
    /// (Re)creates the member stack in the central account (moto's) with the member
    /// stack's `AllowedAccounts` set to `allowed`, and a queue receiving what its
    /// forwarding rule matches.
    pub async fn member_stack(&self, allowed: &str) {
        let cf = aws_sdk_cloudformation::Client::new(&self.sdk);
        let _ = cf.delete_stack().stack_name(STACK).send().await;
        let param = |k: &str, v: &str| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        };
        cf.create_stack()
            .stack_name(STACK)
            .template_body(std::fs::read_to_string(repo().join("infra/member.yaml")).unwrap())
            .capabilities(Capability::CapabilityNamedIam)
            .parameters(param("OrgId", "o-abcdefghij"))
            .parameters(param(
                "ResponderRoleArn",
                &format!("arn:aws:iam::{CENTRAL}:role/tripwire-responder"),
            ))
            .parameters(param(
                "CentralEventBusArn",
                &format!("arn:aws:events:us-east-1:{CENTRAL}:event-bus/tripwire"),
            ))
            .parameters(param("AllowedAccounts", allowed))
            .send()
            .await
            .expect("CreateStack infra/member.yaml");
        // The central bus the rule targets (moto delivers to it too); made once.
        let _ = aws_sdk_eventbridge::Client::new(&self.sdk)
            .create_event_bus()
            .name("tripwire")
            .send()
            .await;
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        sqs.create_queue()
            .queue_name(QUEUE)
            .send()
            .await
            .expect("CreateQueue");
        aws_sdk_eventbridge::Client::new(&self.sdk)
            .put_targets()
            .rule(RULE)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("e2e-queue")
                    .arn(format!("arn:aws:sqs:us-east-1:{CENTRAL}:{QUEUE}"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("PutTargets on the member rule");
    }

    /// Puts `envelope`'s event on the central account's default bus, as CloudTrail does
    /// for a call there; the events the member rule forwarded, as delivered.
    pub async fn forwarded(&self, envelope: &Value) -> Vec<Value> {
        aws_sdk_eventbridge::Client::new(&self.sdk)
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .source(envelope["source"].as_str().unwrap())
                    .detail_type(envelope["detail-type"].as_str().unwrap())
                    .detail(envelope["detail"].to_string())
                    .build(),
            )
            .send()
            .await
            .expect("PutEvents");
        let url = aws_sdk_sqs::Client::new(&self.sdk)
            .get_queue_url()
            .queue_name(QUEUE)
            .send()
            .await
            .expect("GetQueueUrl")
            .queue_url
            .unwrap();
        self.drain(&url)
            .await
            .iter()
            .map(|m| serde_json::from_str(m).expect("an event"))
            .collect()
    }
}
