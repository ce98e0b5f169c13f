//! `PL` / `<function>`: the policy each function loaded at its last cold start (its hash,
//! text and source), so `tripwire status` compares what runs, not what a template says.

use super::{get_n, get_s, n, s, WindowStore};
use crate::config::LoadedPolicy;
use crate::error::{aws_error, Error, Port};
use tripwire_engine::time::Millis;

const LOADED_PK: &str = "PL";

/// What one function loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedRecord {
    /// `detector`, `responder` or `watchdog`.
    pub function: String,
    /// The policy file's SHA-256.
    pub sha256: String,
    /// The file's text.
    pub text: String,
    /// The parameter version or variable it came from.
    pub source: String,
    /// When, in ms.
    pub loaded: Millis,
}

impl WindowStore {
    /// Notes that `function` loaded `p` at `now`.
    pub async fn record_loaded_policy(
        &self,
        function: &str,
        p: &LoadedPolicy,
        now: Millis,
    ) -> Result<(), Error> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(LOADED_PK))
            .item("sk", s(function))
            .item("sha256", s(&p.sha256))
            .item("text", s(&p.text))
            .item("source", s(&p.source))
            .item("loaded", n(now))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error(Port::State, "dynamodb:PutItem", e))
    }

    /// What every function loaded last, by function name.
    pub async fn loaded_policies(&self) -> Result<Vec<LoadedRecord>, Error> {
        let items = self.range(LOADED_PK.into(), "0".into(), "~".into()).await?;
        items
            .iter()
            .map(|item| {
                Ok(LoadedRecord {
                    function: get_s(item, "sk")?.to_owned(),
                    sha256: get_s(item, "sha256")?.to_owned(),
                    text: get_s(item, "text")?.to_owned(),
                    source: get_s(item, "source")?.to_owned(),
                    loaded: get_n(item, "loaded")?,
                })
            })
            .collect()
    }
}
