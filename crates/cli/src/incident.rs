//! `tripwire incident export`: the recovery manifest of one incident, every instance (or
//! other resource, named by its `resource_type`) it destroyed with the call that did it,
//! as CSV or JSON lines. `tripwire incident show`: where an incident stands, from the ID
//! on the page. From the table the functions write; standard credential chain; honours
//! `AWS_ENDPOINT_URL*`.

use anyhow::{bail, Context, Result};
use std::io::Write;
use tripwire_aws::config::{process_env, TABLE};
use tripwire_aws::store::WindowStore;
use tripwire_engine::time::format_millis;

/// Writes the manifest of incident `id` to stdout.
pub fn export(table: Option<String>, id: &str, format: &str) -> Result<()> {
    if !matches!(format, "csv" | "jsonl") {
        bail!("--format `{format}`: csv or jsonl");
    }
    let rows = with_store(table, |store| async move { store.export(id).await })?;
    let Some(rows) = rows else {
        bail!("no incident {id} in the table (or its calls have expired: they are kept a day past the window)");
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if format == "csv" {
        writeln!(
            out,
            "instance_id,terminated_at,region,event_id,principal_arn,account,confirmed,resource_type"
        )?;
        for r in &rows {
            writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                csv(&r.instance_id),
                format_millis(r.terminated_at),
                csv(&r.region),
                csv(&r.event_id),
                csv(&r.principal_arn),
                csv(&r.account),
                r.confirmed,
                csv(&r.resource_type)
            )?;
        }
    } else {
        for r in &rows {
            serde_json::to_writer(&mut out, r)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    eprintln!(
        "{} {}",
        rows.len(),
        rows.first()
            .map_or("instances", |r| tripwire_engine::catalogue::of_kind(
                &r.resource_type
            )
            .words
            .nouns)
    );
    Ok(())
}

/// Runs `read` on the table (`--table`, else `$TRIPWIRE_TABLE`) with the operator's
/// credentials, to completion.
fn with_store<T, F, Fut>(table: Option<String>, read: F) -> Result<T>
where
    F: FnOnce(WindowStore) -> Fut,
    Fut: std::future::Future<Output = Result<T, tripwire_aws::Error>>,
{
    let table = table
        .or_else(|| process_env(TABLE))
        .with_context(|| format!("pass --table or set {TABLE}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sdk = tripwire_aws::load_sdk_config(tripwire_aws::TlsRoots::System).await?;
        read(WindowStore::new(tripwire_aws::client(&sdk), table))
            .await
            .map_err(anyhow::Error::from)
    })
}

/// Incident `id` as the page names it: its key's current incident, and whether that is
/// the one (`false`: closed, and another opened since). An unknown ID is an error.
pub fn by_id(table: Option<String>, id: &str) -> Result<(tripwire_pipeline::StoredIncident, bool)> {
    let found = with_store(table, |store| async move { store.incident_by_id(id).await })?;
    found.with_context(|| format!("no incident {id} in the table (check the ID on the page)"))
}

/// Prints where incident `id` stands (open or closed, containment, the steps taken),
/// then its page as the tripwire renders it now: the timeline, the scope, the plan and
/// what to check. `window` words the threshold sentence (the policy's).
pub fn show(table: Option<String>, id: &str, window: tripwire_engine::time::Millis) -> Result<()> {
    use tripwire_engine::alert::{render, AlertKind, ContainmentStatus};
    use tripwire_pipeline::{Clock, SystemClock};
    let (current, is_current) = by_id(table, id)?;
    if !is_current {
        println!(
            "incident   {id}: closed; its key's current incident is {} (tripwire incident show {})",
            current.open.id, current.open.id
        );
        return Ok(());
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    let state = current
        .containment_state
        .map_or("none recorded", |s| s.as_str());
    println!("incident   {id}: open");
    println!(
        "state      containment {state}; detected alert sent {}; responder asked {}; last containment alert {}",
        yes(current.alerted),
        yes(current.invoked),
        current.containment_alerted.map_or("none", |s| s.as_str())
    );
    if let Some(at) = current.opened_at {
        println!("opened     {}", format_millis(at));
    }
    println!("next       tripwire incident export {id} > manifest.csv   (what to restore)");
    if current.incident.principal_arn().is_some()
        && !matches!(
            current.containment_state,
            Some(tripwire_engine::alert::ContainmentState::Released) | None
        )
    {
        println!(
            "           tripwire release --incident {id}   (once the principal is safe again)"
        );
    }
    let mut status = ContainmentStatus::from_plan(&current.incident);
    if let Some(s) = current.containment_state {
        status.state = s;
    }
    let page = render(
        AlertKind::Detected,
        &current.incident,
        &status,
        window,
        SystemClock.now(),
        false,
    );
    println!(
        "\n--- the page, as of now ---\nSubject: {}\n\n{}",
        page.subject, page.text
    );
    Ok(())
}

/// A CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_with_separators_are_quoted() {
        assert_eq!(super::csv("i-0abc"), "i-0abc");
        assert_eq!(super::csv("a,b"), "\"a,b\"");
        assert_eq!(super::csv("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
