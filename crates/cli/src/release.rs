//! `tripwire release`: lift containment. Detaches the tripwire's managed policies and
//! removes its inline policies through the member stack's release role (the containment
//! role may only add denies), then closes the incident so the next burst opens a new
//! one. Standard credential chain; honours `AWS_ENDPOINT_URL*`.

use anyhow::{Context, Result};
use tripwire_aws::alerter::Alerter;
use tripwire_aws::brake::Organizations;
use tripwire_aws::config::{process_env, release_role, TABLE};
use tripwire_aws::contain::Containment;
use tripwire_aws::store::WindowStore;
use tripwire_engine::principal::iam_entity;
use tripwire_pipeline::{Release, SystemClock};

/// The alert destination the functions use: the alert topic (`TRIPWIRE_TOPIC_ARN`) and
/// the alert bus (`TRIPWIRE_ALERT_BUS`), where the PagerDuty rule resolves the page and
/// the findings function archives the finding. `None` without a topic.
fn alerter(sdk: &aws_config::SdkConfig) -> Result<Option<Alerter>> {
    let Some(topic) = process_env(tripwire_aws::config::TOPIC_ARN) else {
        return Ok(None);
    };
    let bus = tripwire_aws::config::alert_bus(&process_env)?
        .map(|b| tripwire_aws::bus::AlertBus::new(tripwire_aws::client(sdk), b));
    Ok(Some(
        Alerter::new(tripwire_aws::client(sdk), topic).with_bus(bus),
    ))
}

/// The account and principal of incident `id`, as the page names it: only the key's
/// current incident, which names one principal, is released this way.
pub fn of_incident(id: &str, table: Option<String>) -> Result<(String, String)> {
    let (current, is_current) = crate::incident::by_id(table, id)?;
    let i = &current.incident;
    if !is_current {
        anyhow::bail!(
            "incident {id} was closed and {} opened since for the same key: release that one (tripwire release --incident {})",
            current.open.id,
            current.open.id
        );
    }
    let Some(principal) = i.principal_arn() else {
        anyhow::bail!(
            "incident {id} names no one principal (a service's or an account's burst): it contained no one, so there is nothing to release"
        );
    };
    Ok((i.account.clone(), principal.to_owned()))
}

/// Releases `principal` for the incident in `account` (where the instances died).
pub fn run(
    account: &str,
    principal: &str,
    table: Option<String>,
    role: Option<String>,
    reactivate_keys: bool,
) -> Result<()> {
    // Where the release role is assumed: the principal's account. The root user has no
    // IAM entity (its release detaches the account brake only), but an account.
    let (partition, principal_account) = match iam_entity(principal) {
        Ok(e) => (e.partition, e.account),
        Err(why) => {
            let root = tripwire_engine::principal::principal_of(principal, "Root")
                .map_err(|_| anyhow::Error::msg(why))?;
            (root.partition, root.account.unwrap_or_default())
        }
    };
    let role = match role {
        Some(r) => r,
        None => release_role(&process_env)?,
    };
    let table = table
        .or_else(|| process_env(TABLE))
        .with_context(|| format!("pass --table or set {TABLE}"))?;
    // The window only words the alert's threshold sentence: the stack's policy when this
    // shell has it (TRIPWIRE_POLICY), else the default.
    let window = match tripwire_aws::config::policy(&process_env) {
        Ok(tripwire_aws::config::PolicySource::Loaded(p)) => p.policy.window,
        _ => tripwire_engine::Policy::from_toml("")?.window,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // An operator's machine: its own trust store, which a TLS-inspecting proxy needs.
        let sdk = tripwire_aws::load_sdk_config(tripwire_aws::TlsRoots::System).await?;
        let containment = Containment::release_via(&sdk, &role);
        let via = containment.role_arn(&partition, &principal_account);
        let alerts = alerter(&sdk)?;
        let announced = alerts.is_some();
        let store = WindowStore::new(tripwire_aws::client(&sdk), table);
        let release = Release::new(containment, store, alerts, SystemClock, window)
            .with_brakes(Organizations::new(tripwire_aws::client(&sdk)));
        let done = release
            .run(account, principal, reactivate_keys)
            .await
            .with_context(|| format!("releasing {principal} (policies via {via})"))?;
        if done.removed.is_empty() {
            println!("{principal}: no tripwire policies were attached");
        } else {
            println!("{principal}: removed {}", done.removed.join(", "));
        }
        if !done.keys.is_empty() {
            if done.keys_reactivated {
                println!("{principal}: reactivated access keys {}", done.keys.join(", "));
            } else {
                println!(
                    "{principal}: access keys {} stay inactive (rotate them, or pass --reactivate-keys)",
                    done.keys.join(", ")
                );
            }
        }
        println!(
            "incident for {principal} in {account}: {}",
            if done.closed { "closed" } else { "none recorded" }
        );
        match (&done.alert, done.closed, announced) {
            (Some(id), _, _) => println!("released alert sent ({id})"),
            (None, true, false) => println!(
                "no released alert sent: set {} (and {}) to send it",
                tripwire_aws::config::TOPIC_ARN,
                tripwire_aws::config::ALERT_BUS
            ),
            _ => {}
        }
        Ok(())
    })
}
