//! `tripwire tune` output: JSON lines (`{"type":"suggestion"}`, the stable interface) or a
//! table with each finding in words.

use std::io::{Result, Write};
use tripwire_engine::tune::Suggestion;

/// One JSON object per suggestion.
pub fn json(w: &mut impl Write, suggestions: &[Suggestion]) -> Result<()> {
    for s in suggestions {
        serde_json::to_writer(&mut *w, s)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// The first `top` rows (all with 0), then each row's finding.
pub fn table(w: &mut impl Write, suggestions: &[Suggestion], top: usize) -> Result<()> {
    let rows = if top == 0 {
        suggestions.len()
    } else {
        top.min(suggestions.len())
    };
    writeln!(
        w,
        "{:<56} {:<14} {:>6} {:>6} {:>9} {:>10} {:>9} {:>6}",
        "PRINCIPAL", "TYPE", "PEAK", "WINDOW", "THRESHOLD", "PAGED DAYS", "SUGGESTED", "MARGIN"
    )?;
    for s in &suggestions[..rows] {
        writeln!(
            w,
            "{:<56} {:<14} {:>6} {:>6} {:>9} {:>10} {:>9} {:>6}",
            s.principal,
            s.resource_type,
            s.peak,
            s.window,
            s.threshold,
            format!("{}/{}", s.days_paged, s.days_active),
            s.suggested_threshold
                .map_or_else(|| "-".into(), |t| t.to_string()),
            s.margin_pct.map_or_else(|| "-".into(), |m| format!("{m}%")),
        )?;
    }
    if rows < suggestions.len() {
        writeln!(
            w,
            "… {} more (--top 0 shows every row)",
            suggestions.len() - rows
        )?;
    }
    writeln!(w)?;
    for s in suggestions[..rows]
        .iter()
        .filter(|s| s.incidents > 0 || s.suggested_threshold.is_some())
    {
        writeln!(w, "- {}", s.reason)?;
        let ladder: Vec<String> = s
            .candidates
            .iter()
            .map(|c| format!("{}: {}", c.threshold, c.incidents))
            .collect();
        if !ladder.is_empty() {
            writeln!(w, "  incidents by threshold: {}", ladder.join(", "))?;
        }
    }
    w.flush()
}
