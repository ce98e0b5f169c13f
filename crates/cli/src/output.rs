//! Backtest output: JSON lines (the stable interface, documented in docs/policy-and-backtest.md) or a table.

use crate::backtest::Report;
use std::io::{Result, Write};
use tripwire_engine::incident::Subject;
use tripwire_engine::time::format_millis;

#[derive(serde::Serialize)]
pub struct Summary<'a> {
    #[serde(rename = "type")]
    record_type: &'static str,
    files: usize,
    bytes: u64,
    records: u64,
    other_events: u64,
    terminate_calls: u64,
    duplicates: u64,
    attempts: u64,
    counted_calls: u64,
    skipped: &'a std::collections::BTreeMap<&'static str, u64>,
    not_counted: &'a std::collections::BTreeMap<&'static str, u64>,
    already_terminated_instances: u64,
    assume_role_records: u64,
    calls_with_origin: u64,
    provenance_skipped: &'a std::collections::BTreeMap<&'static str, u64>,
    initiator_records: u64,
    credited_calls: u64,
    precursor_calls: u64,
    identity_anomalies: &'a std::collections::BTreeMap<&'static str, u64>,
    corrupt_files: &'a [crate::reading::CorruptFile],
    incidents: usize,
    heartbeats: u64,
    tamper_events: usize,
    shutdown_waves: usize,
    #[serde(flatten)]
    waves: &'a tripwire_engine::wave::WaveCounts,
}

/// A tamper event's JSON line.
#[derive(serde::Serialize)]
struct TamperLine<'a> {
    #[serde(rename = "type")]
    record_type: &'static str,
    #[serde(flatten)]
    tamper: &'a tripwire_engine::armed::Tamper,
}

/// The summary line, as `--json` prints it and the report shows it.
pub fn summary(r: &Report) -> Summary<'_> {
    let c = &r.result.counts;
    Summary {
        record_type: "summary",
        files: r.files,
        bytes: r.bytes,
        records: r.scan.records,
        other_events: r.scan.other_events,
        terminate_calls: c.terminate_calls,
        duplicates: c.duplicates,
        attempts: c.attempts,
        counted_calls: c.counted_calls,
        skipped: &r.scan.skipped,
        not_counted: &c.not_counted,
        already_terminated_instances: c.already_terminated_instances,
        assume_role_records: c.assume_role_records,
        calls_with_origin: c.calls_with_origin,
        provenance_skipped: &c.provenance_skipped,
        initiator_records: c.initiator_records,
        credited_calls: c.credited_calls,
        precursor_calls: c.precursor_calls,
        identity_anomalies: &c.identity_anomalies,
        corrupt_files: &r.corrupt_files,
        incidents: r.result.incidents.len(),
        heartbeats: r.result.coverage.iter().map(|c| c.heartbeats).sum(),
        tamper_events: r.result.tampers.len(),
        shutdown_waves: r.result.waves.len(),
        waves: &r.result.wave_counts,
    }
}

/// Incidents, then peaks, coverage and tamper events, then one summary line.
pub fn json(w: &mut impl Write, r: &Report) -> Result<()> {
    for i in &r.result.incidents {
        serde_json::to_writer(&mut *w, i)?;
        writeln!(w)?;
    }
    for wave in &r.result.waves {
        serde_json::to_writer(&mut *w, wave)?;
        writeln!(w)?;
    }
    for p in &r.result.peaks {
        serde_json::to_writer(&mut *w, p)?;
        writeln!(w)?;
    }
    for c in &r.result.coverage {
        serde_json::to_writer(&mut *w, c)?;
        writeln!(w)?;
    }
    for t in &r.result.tampers {
        serde_json::to_writer(
            &mut *w,
            &TamperLine {
                record_type: "tamper",
                tamper: t,
            },
        )?;
        writeln!(w)?;
    }
    serde_json::to_writer(&mut *w, &summary(r))?;
    writeln!(w)
}

/// Peaks shown in the table; the JSON output has them all.
const TABLE_PEAKS: usize = 15;

/// A human-readable report.
pub fn table(w: &mut impl Write, r: &Report) -> Result<()> {
    let incidents = &r.result.incidents;
    writeln!(w, "INCIDENTS ({})", incidents.len())?;
    if !incidents.is_empty() {
        writeln!(
            w,
            "  {:<24} {:<13} {:>9} {:>9}  {:<44} CONTAINMENT",
            "TRIGGERED", "ACCOUNT", "INSTANCES", "TRIGGER", "PRINCIPAL"
        )?;
    }
    for i in incidents {
        let containment = match &i.containment.restriction {
            Some(r) => format!(
                "{:?} {} in {}",
                i.containment.action,
                r.target.name(),
                r.account
            )
            .to_lowercase(),
            None => format!("none: {}", i.containment.reason),
        };
        writeln!(
            w,
            "  {:<24} {:<13} {:>9} {:>9}  {:<44} {}",
            format_millis(i.trigger_time),
            i.account,
            i.instances(),
            format!("{}/{}", i.trigger_count, i.threshold),
            match &i.subject {
                Subject::Burst(p) => p.clone(),
                Subject::Account => {
                    format!("({}: {} principals)", i.kind().kind(), i.principals.len())
                }
                Subject::Service(p) | Subject::Attempt(p) | Subject::Precursor(p) => {
                    format!("{p} ({})", i.kind().kind())
                }
            },
            containment
        )?;
        if let Some(o) = &i.origin {
            writeln!(
                w,
                "    origin: {} via {}",
                o.account
                    .as_deref()
                    .or(o.provider.as_deref())
                    .unwrap_or("unknown"),
                o.via
            )?;
        }
        if let Some(n) = &i.initiator {
            writeln!(w, "    decided by: {} ({})", n.principal_arn, n.event_name)?;
        }
        for p in &i.precursors {
            writeln!(
                w,
                "    precursor: {} {} ({})",
                format_millis(p.event_time),
                p.event_name,
                p.resources.join(", ")
            )?;
        }
    }
    let waves = &r.result.waves;
    writeln!(
        w,
        "\nSHUTDOWN WAVES ({}; EC2's own events, whatever ended the instances)",
        waves.len()
    )?;
    for wave in waves {
        writeln!(
            w,
            "  {:<24} {:<13} {:<15} {:>9} {:>9}  {}",
            format_millis(wave.trigger_time),
            wave.account,
            wave.region,
            wave.instances,
            format!("{}/{}", wave.trigger_count, wave.threshold),
            wave.id
        )?;
        for c in &wave.claimed_by {
            writeln!(w, "    claimed by {} ({})", c.principal_arn, c.instances)?;
        }
        if !wave.unclaimed.is_empty() {
            writeln!(
                w,
                "    unclaimed: {} instance(s) no CloudTrail record named",
                wave.unclaimed.len()
            )?;
        }
    }
    let peaks = &r.result.peaks;
    writeln!(
        w,
        "\nPEAK WINDOWS (highest {} of {}; keep the threshold above legitimate peaks)",
        peaks.len().min(TABLE_PEAKS),
        peaks.len()
    )?;
    if !peaks.is_empty() {
        writeln!(
            w,
            "  {:>5} {:>9}  {:<24} {:<13} PRINCIPAL",
            "PEAK", "THRESHOLD", "WINDOW END", "ACCOUNT"
        )?;
    }
    for p in peaks.iter().take(TABLE_PEAKS) {
        writeln!(
            w,
            "  {:>5} {:>9}  {:<24} {:<13} {}",
            p.peak,
            p.threshold,
            format_millis(p.peak_time),
            p.account,
            p.principal_arn
        )?;
    }
    let coverage = &r.result.coverage;
    writeln!(
        w,
        "\nCOVERAGE ({} account-regions with canary heartbeats)",
        coverage.len()
    )?;
    if !coverage.is_empty() {
        writeln!(
            w,
            "  {:<13} {:<15} {:>10}  {:<24} {:<24} {:>9}",
            "ACCOUNT", "REGION", "HEARTBEATS", "FIRST", "LAST", "MAX GAP S"
        )?;
    }
    for c in coverage {
        writeln!(
            w,
            "  {:<13} {:<15} {:>10}  {:<24} {:<24} {:>9}",
            c.account,
            c.region,
            c.heartbeats,
            format_millis(c.first),
            format_millis(c.last),
            c.max_gap_s
        )?;
    }
    let tampers = &r.result.tampers;
    writeln!(w, "\nTAMPER ({})", tampers.len())?;
    for t in tampers {
        writeln!(
            w,
            "  {:<24} {:<13} {:<15} {:<18} {} by {}{}",
            format_millis(t.event_time),
            t.account,
            t.region,
            t.event_name,
            t.target,
            t.principal_arn,
            t.error_code
                .as_deref()
                .map(|c| format!(" (failed: {c})"))
                .unwrap_or_default()
        )?;
    }
    let s = summary(r);
    writeln!(w, "\nSUMMARY")?;
    writeln!(
        w,
        "  files {}  records {}  other events {}",
        s.files, s.records, s.other_events
    )?;
    writeln!(
        w,
        "  terminate calls {}  duplicates {}  failed attempts {}  counted {}",
        s.terminate_calls, s.duplicates, s.attempts, s.counted_calls
    )?;
    let list = |m: &std::collections::BTreeMap<&str, u64>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    writeln!(w, "  skipped: {}", list(s.skipped))?;
    writeln!(w, "  not counted: {}", list(s.not_counted))?;
    writeln!(
        w,
        "  role assumptions {}  calls with an origin {}  initiator calls {}  service calls credited to their initiator {}  precursors counted {}  provenance skipped: {}",
        s.assume_role_records,
        s.calls_with_origin,
        s.initiator_records,
        s.credited_calls,
        s.precursor_calls,
        list(s.provenance_skipped)
    )?;
    writeln!(
        w,
        "  identities that disagree (counted, never contained): {}",
        list(s.identity_anomalies)
    )?;
    writeln!(w, "  corrupt files: {}", s.corrupt_files.len())?;
    for c in s.corrupt_files {
        writeln!(w, "    {}: {}", c.path, c.error)?;
    }
    Ok(())
}
