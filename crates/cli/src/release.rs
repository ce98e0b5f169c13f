//! `tripwire release`: lift containment. Detaches the tripwire's managed policies and
//! removes its inline policies through the member stack's release role (the containment
//! role may only add denies), then closes the incident so the next burst opens a new
//! one. Standard credential chain; honours `AWS_ENDPOINT_URL*`.

use anyhow::{Context, Result};
use tripwire_aws::config::{process_env, release_role, TABLE};
use tripwire_aws::contain::Containment;
use tripwire_aws::store::WindowStore;
use tripwire_engine::principal::iam_entity;
use tripwire_engine::Key;
use tripwire_pipeline::{Alerts, Clock, IncidentStore, SystemClock};

/// Sends the `released` alert the way the functions send theirs: to the alert topic
/// (`TRIPWIRE_TOPIC_ARN`) and the alert bus (`TRIPWIRE_ALERT_BUS`), where the PagerDuty
/// rule resolves the page and the findings function archives the finding. Without a
/// topic it says so and sends nothing.
async fn announce(
    sdk: &aws_config::SdkConfig,
    incident: &tripwire_engine::incident::Incident,
    now: tripwire_engine::time::Millis,
) -> Result<()> {
    use tripwire_engine::alert::{render, AlertKind, ContainmentState, ContainmentStatus};
    let Some(topic) = process_env(tripwire_aws::config::TOPIC_ARN) else {
        println!(
            "no released alert sent: set {} (and {}) to send it",
            tripwire_aws::config::TOPIC_ARN,
            tripwire_aws::config::ALERT_BUS
        );
        return Ok(());
    };
    let status = ContainmentStatus {
        state: ContainmentState::Released,
        detail: "tripwire release lifted containment and closed the incident.".into(),
    };
    // The window only words the text's threshold sentence: the stack's policy when this
    // shell has it (TRIPWIRE_POLICY), else the default.
    let window = match tripwire_aws::config::policy(&process_env) {
        Ok(p) => p.window,
        Err(_) => tripwire_engine::Policy::from_toml("")?.window,
    };
    let alert = render(AlertKind::Released, incident, &status, window, now, false);
    let bus = tripwire_aws::config::alert_bus(&process_env)?
        .map(|b| tripwire_aws::bus::AlertBus::new(tripwire_aws::client(sdk), b));
    let id = tripwire_aws::alerter::Alerter::new(tripwire_aws::client(sdk), topic)
        .with_bus(bus)
        .publish(&alert)
        .await
        .context("sending the released alert")?;
    println!("released alert sent ({id})");
    Ok(())
}

/// Releases `principal` for the incident in `account` (where the instances died).
pub fn run(
    account: &str,
    principal: &str,
    table: Option<String>,
    role: Option<String>,
    reactivate_keys: bool,
) -> Result<()> {
    let entity = iam_entity(principal).map_err(anyhow::Error::msg)?;
    let role = match role {
        Some(r) => r,
        None => release_role(&process_env)?,
    };
    let table = table
        .or_else(|| process_env(TABLE))
        .with_context(|| format!("pass --table or set {TABLE}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // An operator's machine: its own trust store, which a TLS-inspecting proxy needs.
        let sdk = tripwire_aws::load_sdk_config(tripwire_aws::TlsRoots::System).await?;
        let containment = Containment::release_via(&sdk, &role);
        let removed = containment.release(&entity).await.with_context(|| {
            format!(
                "removing policies via {}",
                containment.role_arn(&entity.partition, &entity.account)
            )
        })?;
        let store = WindowStore::new(tripwire_aws::client(&sdk), table);
        let key = Key::new(tripwire_engine::window::Lane::Burst, principal, account);
        // The keys the incident's plan deactivated, read before the incident is closed.
        let stored = store.incident(&key).await?;
        let keys = stored
            .as_ref()
            .map(|s| s.incident.containment.deactivate_keys.clone())
            .unwrap_or_default();
        let now = SystemClock.now();
        let closed = store.release(&key, now).await?;
        if removed.is_empty() {
            println!("{principal}: no tripwire policies were attached");
        } else {
            println!("{principal}: removed {}", removed.join(", "));
        }
        if !keys.is_empty() {
            if reactivate_keys {
                containment
                    .reactivate_keys(&entity, &keys)
                    .await
                    .context("reactivating access keys")?;
                println!("{principal}: reactivated access keys {}", keys.join(", "));
            } else {
                println!(
                    "{principal}: access keys {} stay inactive (rotate them, or pass --reactivate-keys)",
                    keys.join(", ")
                );
            }
        }
        println!(
            "incident for {principal} in {account}: {}",
            if closed { "closed" } else { "none recorded" }
        );
        if let (true, Some(s)) = (closed, stored) {
            announce(&sdk, &s.incident, now).await?;
        }
        Ok(())
    })
}
