//! The published policy: the whole policy file in one SSM parameter, written by
//! `tripwire publish-policy` and read, pinned to a version, by every function at cold
//! start.
//!
//! Why SSM: Lambda's environment holds 4 KB in all and a CloudFormation parameter 4 KB, and
//! a policy with per-principal rules outgrows both; an SSM parameter (advanced tier, which
//! Intelligent-Tiering picks past 4 KB) holds 8 KB, keeps every version, and reading a
//! pinned version makes a write behind the deploy's back change nothing until a deploy
//! names it. The parameter is under the security account's guard, and writing it pages
//! `tamper`.

use crate::config::{LoadedPolicy, PolicySource};
use crate::error::{aws_error, Error, Port};
use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use aws_sdk_ssm::Client;
use tripwire_engine::deployed::{policy_hash, with_stack_keys};
use tripwire_engine::Policy;

/// The parameter `make deploy` publishes to and the guard reserves.
pub const DEFAULT_PARAMETER: &str = "/tripwire/policy";

/// SSM's largest parameter value (advanced tier), in bytes.
pub const MAX_POLICY_BYTES: usize = 8192;

/// The policy `source` names: read now when it is a published version.
pub async fn resolve(client: &Client, source: PolicySource) -> Result<LoadedPolicy, Error> {
    let (selector, stack_keys) = match source {
        PolicySource::Loaded(p) => return Ok(*p),
        PolicySource::Parameter {
            selector,
            stack_keys,
        } => (selector, stack_keys),
    };
    let out = client
        .get_parameter()
        .name(&selector)
        .send()
        .await
        .map_err(|e| aws_error(Port::State, "ssm:GetParameter", e))?;
    let text = out
        .parameter()
        .and_then(|p| p.value())
        .ok_or_else(|| Error::Config(format!("{selector}: the parameter has no value")))?
        .to_owned();
    let policy = with_stack_keys(&text, &stack_keys)
        .map_err(|e| Error::Config(format!("{selector}: {e}")))?;
    Ok(LoadedPolicy {
        policy,
        sha256: policy_hash(&text),
        text,
        source: selector,
    })
}

/// Validates `text` and writes it as the parameter's next version; its `NAME:VERSION`,
/// the pin the stack takes.
pub async fn publish(client: &Client, name: &str, text: &str) -> Result<String, Error> {
    Policy::from_toml(text).map_err(|e| Error::Config(e.to_string()))?;
    if text.len() > MAX_POLICY_BYTES {
        return Err(Error::Config(format!(
            "the policy file is {} bytes; an SSM parameter holds at most {MAX_POLICY_BYTES} (drop comments, or move per-account rules into fewer globs)",
            text.len()
        )));
    }
    let out = client
        .put_parameter()
        .name(name)
        .value(text)
        .r#type(ParameterType::String)
        .tier(ParameterTier::IntelligentTiering)
        .description("tripwire policy file (tripwire publish-policy)")
        .overwrite(true)
        .send()
        .await
        .map_err(|e| aws_error(Port::State, "ssm:PutParameter", e))?;
    Ok(format!("{name}:{}", out.version()))
}
