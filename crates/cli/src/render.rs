//! `tripwire render`: what each destination receives for incident or alert JSON lines,
//! through the same renderers the functions send with.

use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use tripwire_engine::destination::{
    alert_from_json, render_for, Destination, FindingContext, NotAnAlert, Rendered,
};
use tripwire_engine::time::Millis;

/// A destination's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The page: SNS subject and text (e-mail, SMS, the `default` protocol).
    Text,
    /// The JSON SQS, Lambda and HTTPS subscribers get.
    Json,
    /// An Amazon Q Developer in chat applications custom notification.
    Chatbot,
    /// A PagerDuty Events API v2 event, without the routing key.
    Pagerduty,
    /// A Security Hub finding (ASFF), for incidents.
    Asff,
}

impl Format {
    /// The destination of the registry this format renders for.
    fn destination(self) -> Destination {
        match self {
            Format::Text => Destination::Page,
            Format::Json => Destination::Subscribers,
            Format::Chatbot => Destination::Chat,
            Format::Pagerduty => Destination::PagerDuty,
            Format::Asff => Destination::SecurityHub,
        }
    }
}

/// What a run read.
#[derive(Debug, Default)]
pub struct Counts {
    /// Lines rendered.
    pub rendered: u64,
    /// Lines skipped, by reason (`summary`, `peak`, … records; `not_an_incident` for asff).
    pub skipped: BTreeMap<String, u64>,
    /// Lines that are neither, with their line number and why.
    pub invalid: Vec<(usize, String)>,
}

/// Renders each line of `input` to `out` in `format`. `window` words the page;
/// `ctx` is where findings would be imported.
pub fn run(
    format: Format,
    window: Millis,
    ctx: &FindingContext,
    input: impl BufRead,
    out: &mut impl Write,
) -> Result<Counts> {
    let mut c = Counts::default();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                c.invalid.push((n + 1, format!("not JSON: {e}")));
                continue;
            }
        };
        let alert = match alert_from_json(&unwrapped(v), window) {
            Ok(a) => a,
            Err(NotAnAlert::Other(t)) => {
                *c.skipped.entry(t).or_default() += 1;
                continue;
            }
            Err(NotAnAlert::Invalid(why)) => {
                c.invalid.push((n + 1, why));
                continue;
            }
        };
        let doc = match render_for(format.destination(), &alert, Some(ctx)) {
            Rendered::Text { subject, text } => {
                writeln!(out, "Subject: {subject}\n\n{text}")?;
                c.rendered += 1;
                continue;
            }
            Rendered::Json(doc) => doc,
            Rendered::NotFor(why) => {
                *c.skipped.entry(why.into()).or_default() += 1;
                continue;
            }
        };
        serde_json::to_writer(&mut *out, &doc)?;
        writeln!(out)?;
        c.rendered += 1;
    }
    Ok(c)
}

/// The alert inside what a subscriber holds: an alert-bus event's `detail`, an SNS
/// notification's `Message` (as an SQS subscriber without raw delivery gets it); else
/// the line itself.
fn unwrapped(mut v: serde_json::Value) -> serde_json::Value {
    if v.get("detail-type").is_some() && v.get("detail").is_some() {
        return v["detail"].take();
    }
    if v["Type"] == "Notification" {
        if let Some(inner) = v["Message"]
            .as_str()
            .and_then(|m| serde_json::from_str(m).ok())
        {
            return inner;
        }
    }
    v
}

/// Reports `c` on stderr; fails when a line was neither an alert nor a known record.
pub fn report(c: &Counts) -> Result<()> {
    for (n, why) in &c.invalid {
        eprintln!("line {n}: {why}");
    }
    let skipped: Vec<String> = c.skipped.iter().map(|(k, v)| format!("{v} {k}")).collect();
    eprintln!(
        "rendered {}, skipped {}{}, invalid {}",
        c.rendered,
        c.skipped.values().sum::<u64>(),
        if skipped.is_empty() {
            String::new()
        } else {
            format!(" ({})", skipped.join(", "))
        },
        c.invalid.len()
    );
    if !c.invalid.is_empty() {
        bail!("{} line(s) were not incidents or alerts", c.invalid.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_destination_has_its_format_and_back() {
        use tripwire_engine::destination::DESTINATIONS;
        for e in DESTINATIONS {
            let f = Format::from_str(e.format, false).unwrap_or_else(|_| panic!("{}", e.format));
            assert_eq!(f.destination(), e.destination, "{}", e.format);
        }
        assert_eq!(Format::value_variants().len(), DESTINATIONS.len());
    }
}
