//! `tripwire report` and `tripwire status --html`: one self-contained HTML file (styles
//! inline, charts as SVG drawn here, no script, nothing fetched), so it opens from disk,
//! mails as an attachment and prints.
//!
//! Large organizations stay readable by aggregating and folding, never by dropping: the
//! timeline bins incidents per account and day-slice (the busiest accounts get a row
//! each, the rest share one); the first rows of every long table show and the rest fold
//! under a `<details>`; the heatmap keeps every account, worst first, and scrolls.
//! Every number a test compares carries a `data-` attribute.

use crate::backtest::Report;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use tripwire_engine::armed::Coverage;
use tripwire_engine::replay::Series;
use tripwire_engine::time::{format_duration, format_millis, Millis};
use tripwire_engine::tune::Suggestion;
use tripwire_engine::Incident;

/// Rows a long table shows before folding the rest.
const SHOWN: usize = 100;
/// Accounts with a timeline row of their own; the rest share one.
const TIMELINE_ROWS: usize = 30;
/// Incidents drawn with their burst against the threshold.
const BURST_CHARTS: usize = 12;
/// Principal groups in the peaks chart; the rest are in its table.
const PEAK_BARS: usize = 30;
/// The canary's default interval: a gap under two of them is a delivery's jitter.
const CANARY_INTERVAL: Millis = 10 * 60_000;

/// HTML-escaped text.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2430;background:#fff}
header{background:#1d2430;color:#fff;padding:16px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9d1dc}nav{padding:8px 24px;border-bottom:1px solid #dde3ea}
nav a{margin-right:16px;color:#2457a6;text-decoration:none}main{padding:0 24px 40px}
section{margin-top:28px}h2{font-size:17px;border-bottom:1px solid #dde3ea;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;text-align:left;border-bottom:1px solid #eef1f5;white-space:nowrap}
th{background:#f5f7fa;position:sticky;top:0}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
dl.counts{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:6px 18px}
dl.counts div{border:1px solid #eef1f5;border-radius:4px;padding:6px 10px}dt{color:#5b6676;font-size:12px}dd{margin:0;font-size:18px;font-variant-numeric:tabular-nums}
td.g{width:124px;background:linear-gradient(90deg,transparent 19px,#1d2430 19px,#1d2430 21px,transparent 21px) no-repeat}
td.g i{display:inline-block;height:9px;background:#c0392b;vertical-align:middle}td.g i.under{background:#7f8c9a}
.note{color:#5b6676;font-size:12px}.scroll{max-height:640px;overflow:auto;border:1px solid #eef1f5}
.heat td{width:14px;height:14px;padding:0;border:1px solid #fff}.heat th{font-weight:normal;font-size:11px}
.heat th.r{writing-mode:vertical-rl;transform:rotate(180deg);height:90px;vertical-align:bottom}
.ok,.armed{background:#2e9e5b}.gap,.late{background:#f0b429}.long,.lost{background:#d64545}.none,.never_seen{background:#c4cbd4}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
svg text{font:11px system-ui,sans-serif;fill:#1d2430}svg .axis{stroke:#9aa5b4}svg .thr{stroke:#1d2430;stroke-dasharray:4 3}
svg .sug{stroke:#2e9e5b;stroke-width:2}svg .peak{fill:#c0392b}svg .peak.under{fill:#7f8c9a}svg .count{fill:none;stroke:#c0392b;stroke-width:1.5}
p.headline{font-size:15px;margin:18px 0 0}details summary{cursor:pointer;color:#2457a6;margin:6px 0}td.w{white-space:normal;min-width:420px}
";

/// The page around `body`: title, what it was made from, and the section links.
fn page(title: &str, subtitle: &str, sections: &[(&str, &str)], body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 4096);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\
         <header><h1>{t}</h1><p>{s}</p></header><nav>",
        t = esc(title),
        s = esc(subtitle)
    );
    for (id, name) in sections {
        let _ = write!(out, "<a href=\"#{id}\">{}</a>", esc(name));
    }
    out.push_str("</nav><main>");
    out.push_str(body);
    out.push_str("</main></body></html>\n");
    out
}

/// Opens a table of `rows` whose first [`SHOWN`] show; `row` writes one `<tr>`.
fn folded<T>(out: &mut String, head: &str, rows: &[T], mut row: impl FnMut(&mut String, &T)) {
    let _ = write!(out, "<table><thead>{head}</thead><tbody>");
    for r in rows.iter().take(SHOWN) {
        row(out, r);
    }
    out.push_str("</tbody></table>");
    if rows.len() > SHOWN {
        let _ = write!(
            out,
            "<details><summary>{} more</summary><table><thead>{head}</thead><tbody>",
            rows.len() - SHOWN
        );
        for r in &rows[SHOWN..] {
            row(out, r);
        }
        out.push_str("</tbody></table></details>");
    }
}

/// What a backtest report is made from.
pub struct Inputs<'a> {
    pub report: &'a Report,
    pub suggestions: &'a [Suggestion],
    pub policy_file: &'a str,
    pub policy_sha256: &'a str,
}

/// The backtest report page.
pub fn backtest_page(i: &Inputs) -> String {
    let r = i.report;
    let res = &r.result;
    let mut body = String::new();
    let _ = write!(
        body,
        "<p class=\"headline\"><b>{}</b> incident(s), <b>{}</b> shutdown wave(s), <b>{}</b> tamper event(s), heartbeats from \
         <b>{}</b> account-region(s); {} destructive calls read (the counts are at the end).</p>",
        res.incidents.len(),
        res.waves.len(),
        res.tampers.len(),
        res.coverage.len(),
        res.counts.terminate_calls
    );
    timeline(&mut body, &res.incidents);
    incidents(&mut body, &res.incidents, &res.series);
    waves(&mut body, &res.waves);
    peaks(&mut body, i.suggestions);
    let cells: Vec<Cell> = res.coverage.iter().map(coverage_cell).collect();
    body.push_str("<section id=\"coverage\"><h2>Coverage</h2>");
    let _ = write!(
        body,
        "<p class=\"note\">The canary's heartbeats in the history, per account and region: \
         the longest silence between two (green under {}, amber under 6h, red longer; grey: \
         no heartbeat from that region of that account). Drill results are not in CloudTrail; <code>tripwire status --html</code> \
         shows the live table.</p>",
        format_duration(2 * CANARY_INTERVAL)
    );
    heatmap(
        &mut body,
        &cells,
        &[("ok", "steady"), ("gap", "gap"), ("long", "long gap")],
    );
    body.push_str("</section>");
    tampers(&mut body, &res.tampers);
    summary(&mut body, r);
    let span = tripwire_engine::tune::span(&res.series)
        .map(|s| {
            format!(
                "; counted calls from {} to {}",
                &format_millis(s.first)[..10],
                &format_millis(s.last)[..10]
            )
        })
        .unwrap_or_default();
    page(
        "tripwire report",
        &format!(
            "{} files, {:.1} MB, under {} (sha256 {}){span}. Made by tripwire {}.",
            r.files,
            r.bytes as f64 / 1e6,
            i.policy_file,
            &i.policy_sha256[..12.min(i.policy_sha256.len())],
            env!("CARGO_PKG_VERSION")
        ),
        &[
            ("timeline", "Timeline"),
            ("incidents", "Incidents"),
            ("waves", "Shutdown waves"),
            ("peaks", "Peaks and thresholds"),
            ("coverage", "Coverage"),
            ("tamper", "Tamper"),
            ("summary", "Counts"),
        ],
        &body,
    )
}

fn summary(out: &mut String, r: &Report) {
    let v = serde_json::to_value(crate::output::summary(r)).unwrap_or_default();
    out.push_str("<section id=\"summary\"><h2>Counts</h2><dl class=\"counts\">");
    let mut maps = Vec::new();
    if let Some(o) = v.as_object() {
        for (k, v) in o {
            match v {
                serde_json::Value::Number(n) => {
                    let _ = write!(
                        out,
                        "<div><dt>{}</dt><dd data-key=\"{k}\">{n}</dd></div>",
                        esc(&k.replace('_', " "))
                    );
                }
                serde_json::Value::Object(m) if !m.is_empty() => maps.push((k, m)),
                _ => {}
            }
        }
    }
    out.push_str("</dl>");
    for (k, m) in maps {
        let _ = write!(out, "<h3>{}</h3><table><tbody>", esc(&k.replace('_', " ")));
        for (reason, n) in m {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"n\" data-key=\"{k}.{reason}\">{n}</td></tr>",
                esc(reason)
            );
        }
        out.push_str("</tbody></table>");
    }
    if !r.corrupt_files.is_empty() {
        let _ = write!(
            out,
            "<h3>corrupt files</h3><p data-key=\"corrupt_files\">{} file(s) could not be read: {}</p>",
            r.corrupt_files.len(),
            esc(&r
                .corrupt_files
                .iter()
                .take(20)
                .map(|c| c.path.as_str())
                .collect::<Vec<_>>()
                .join(", "))
        );
    }
    out.push_str("</section>");
}

fn principal_of(i: &Incident) -> String {
    i.principal_arn().map_or_else(
        || format!("({} principals)", i.principals.len()),
        str::to_owned,
    )
}

/// Incidents per account over time: one row per account (the busiest
/// [`TIMELINE_ROWS`]; the rest share one), binned so 10,000 incidents stay a few
/// thousand marks.
fn timeline(out: &mut String, incidents: &[Incident]) {
    out.push_str("<section id=\"timeline\"><h2>Incidents on a timeline, per account</h2>");
    if incidents.is_empty() {
        out.push_str("<p>No incident.</p></section>");
        return;
    }
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for i in incidents {
        *per.entry(&i.account).or_default() += 1;
    }
    let mut accounts: Vec<(&str, usize)> = per.into_iter().collect();
    accounts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let own: HashMap<&str, usize> = accounts
        .iter()
        .take(TIMELINE_ROWS)
        .enumerate()
        .map(|(row, (a, _))| (*a, row))
        .collect();
    let others = accounts.len().saturating_sub(TIMELINE_ROWS);
    let rows = own.len() + usize::from(others > 0);
    let (t0, t1) = incidents
        .iter()
        .fold((Millis::MAX, Millis::MIN), |(a, b), i| {
            (a.min(i.trigger_time), b.max(i.trigger_time))
        });
    // At least an hour, so a lone incident is a mark, not the whole axis.
    let span = (t1 - t0).max(3_600_000);
    const W: i64 = 900;
    const BIN: i64 = 6;
    const LEFT: i64 = 190;
    const ROW: i64 = 18;
    let mut bins: BTreeMap<(usize, i64), (usize, Millis, Millis)> = BTreeMap::new();
    for i in incidents {
        let row = own
            .get(i.account.as_str())
            .copied()
            .unwrap_or(TIMELINE_ROWS);
        let x = (i.trigger_time - t0) * (W - BIN) / span / BIN * BIN;
        let b = bins
            .entry((row.min(rows - 1), x))
            .or_insert((0, i.trigger_time, i.trigger_time));
        b.0 += 1;
        b.1 = b.1.min(i.trigger_time);
        b.2 = b.2.max(i.trigger_time);
    }
    let most = bins.values().map(|b| b.0).max().unwrap_or(1);
    let h = rows as i64 * ROW + 30;
    let _ = write!(
        out,
        "<svg id=\"timeline-chart\" role=\"img\" aria-label=\"incidents per account over time\" \
         width=\"{}\" height=\"{h}\" viewBox=\"0 0 {} {h}\">",
        LEFT + W + 10,
        LEFT + W + 10
    );
    for (row, (account, n)) in accounts.iter().take(TIMELINE_ROWS).enumerate() {
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\">{} ({n})</text>",
            row as i64 * ROW + 13,
            esc(account)
        );
    }
    if others > 0 {
        let n: usize = accounts[TIMELINE_ROWS..].iter().map(|a| a.1).sum();
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\">{others} other accounts ({n})</text>",
            (rows - 1) as i64 * ROW + 13
        );
    }
    for ((row, x), (n, a, b)) in &bins {
        // Darker for more: a bin's share of the busiest bin, never invisible.
        let opacity = 0.35 + 0.65 * (*n as f64 / most as f64);
        let when = if a == b {
            format_millis(*a)
        } else {
            format!("{} to {}", format_millis(*a), format_millis(*b))
        };
        let _ = write!(
            out,
            "<rect class=\"bin\" data-count=\"{n}\" x=\"{}\" y=\"{}\" width=\"{BIN}\" height=\"{}\" \
             fill=\"#c0392b\" fill-opacity=\"{opacity:.2}\"><title>{n} incident(s), {when}</title></rect>",
            LEFT + x,
            *row as i64 * ROW + 2,
            ROW - 4
        );
    }
    let axis = rows as i64 * ROW + 4;
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{axis}\" y2=\"{axis}\"/>\
         <text x=\"{LEFT}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text></svg>",
        LEFT + W,
        axis + 16,
        format_millis(t0),
        LEFT + W,
        axis + 16,
        format_millis(t1)
    );
    let _ = write!(
        out,
        "<p class=\"note\">Each mark is the incidents triggered in one {} slice of the span; \
         darker is more. {} account(s) with incidents{}.</p></section>",
        format_duration((span * BIN / W / 1000).max(1) * 1000),
        accounts.len(),
        if others > 0 {
            format!(
                "; the {TIMELINE_ROWS} busiest have a row each, the other {others} share the last"
            )
        } else {
            String::new()
        }
    );
}

/// The busiest incidents' window counts against their threshold, then every incident.
fn incidents(out: &mut String, incidents: &[Incident], series: &[Series]) {
    let _ = write!(
        out,
        "<section id=\"incidents\"><h2>Incidents (<span data-key=\"incident_rows\">{}</span>)</h2>",
        incidents.len()
    );
    let by_key: HashMap<(&str, &str, &str), &Series> = series
        .iter()
        .map(|s| {
            (
                (
                    s.principal_arn.as_str(),
                    s.key.account.as_str(),
                    s.key.kind.as_str(),
                ),
                s,
            )
        })
        .collect();
    let mut biggest: Vec<&Incident> = incidents.iter().collect();
    biggest.sort_by(|a, b| {
        b.instances()
            .cmp(&a.instances())
            .then(a.trigger_time.cmp(&b.trigger_time))
    });
    let charted: Vec<(&Incident, &Series)> = biggest
        .into_iter()
        .filter_map(|i| {
            let p = i.principal_arn()?;
            by_key
                .get(&(p, i.account.as_str(), i.resource_type.as_str()))
                .map(|s| (i, *s))
        })
        .take(BURST_CHARTS)
        .collect();
    if !charted.is_empty() {
        out.push_str(
            "<h3>The largest bursts against their threshold</h3><p class=\"note\">The key's \
             window count at each of its calls (red) and the threshold (dashed), from one \
             window before the incident to one after.</p><div>",
        );
        for (i, s) in charted {
            burst_chart(out, i, s);
        }
        out.push_str("</div>");
    }
    let head = "<tr><th>triggered</th><th>account</th><th>principal</th><th>kind</th><th>type</th>\
                <th class=\"n\">resources</th><th class=\"n\">trigger / threshold</th><th>against the threshold</th>\
                <th>containment</th><th>incident</th></tr>";
    // Compact rows (closing `</td>` is optional in HTML): 10,000 of them stay ~3 MB.
    folded(out, head, incidents, |out, i| {
        let ratio = f64::from(i.trigger_count) / f64::from(i.threshold.max(1));
        let _ = write!(
            out,
            "<tr class=\"incident\" data-id=\"{id}\" data-instances=\"{n}\"><td>{t}<td>{a}<td>{p}<td>{k}<td>{rt}\
             <td class=\"n\">{n}<td class=\"n\">{tc} / {th}<td class=\"g\"><i{u} style=\"width:{w}px\"></i><td>{c}<td>{id}</tr>",
            id = esc(&i.id),
            n = i.instances(),
            tc = i.trigger_count,
            th = i.threshold,
            t = format_millis(i.trigger_time),
            a = esc(&i.account),
            p = esc(&principal_of(i)),
            k = i.kind().kind(),
            rt = esc(&i.resource_type),
            u = if i.trigger_count < i.threshold { " class=\"under\"" } else { "" },
            // The threshold is the mark at 12 px; ten times it fills the cell.
            w = (ratio.min(10.0) * 12.0).round() as u32,
            c = esc(&format!("{:?}", i.containment.action).to_lowercase()),
        );
    });
    out.push_str("</section>");
}

/// One incident's key: its window count over time, with the threshold.
fn burst_chart(out: &mut String, i: &Incident, s: &Series) {
    const W: f64 = 280.0;
    const H: f64 = 70.0;
    let (from, to) = (
        i.first_event_time - s.window,
        i.last_event_time.saturating_add(s.window),
    );
    let lo = s.samples.partition_point(|&(t, _)| t < from);
    let hi = s.samples.partition_point(|&(t, _)| t <= to);
    let samples = &s.samples[lo..hi];
    let top = samples
        .iter()
        .map(|&(_, c)| c)
        .max()
        .unwrap_or(0)
        .max(i.threshold)
        .max(1) as f64
        * 1.1;
    let span = (to - from).max(1) as f64;
    let x = |t: Millis| 4.0 + (t - from) as f64 / span * (W - 8.0);
    let y = |c: f64| H - 14.0 - c / top * (H - 24.0);
    let mut points = String::new();
    let mut last = 0.0;
    for &(t, c) in samples {
        // A step: the count holds until the next call.
        let _ = write!(
            points,
            "{:.1},{:.1} {:.1},{:.1} ",
            x(t),
            y(last),
            x(t),
            y(f64::from(c))
        );
        last = f64::from(c);
    }
    let _ = write!(
        out,
        "<svg class=\"burst\" data-id=\"{id}\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
         <title>{id}: {n} resources, peak window {peak} against {th}</title>\
         <line class=\"thr\" x1=\"4\" x2=\"{x2}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\"/>\
         <polyline class=\"count\" points=\"{points}\"/>\
         <text x=\"4\" y=\"{ly}\">{acct} {who}</text></svg>",
        id = esc(&i.id),
        n = i.instances(),
        peak = samples.iter().map(|&(_, c)| c).max().unwrap_or(0),
        th = i.threshold,
        x2 = W - 4.0,
        ty = y(f64::from(i.threshold)),
        ly = H - 2.0,
        acct = esc(&i.account),
        who = esc(principal_of(i).rsplit('/').next().unwrap_or_default()),
    );
}

/// Per principal group: the peak against the threshold and the suggestion, on a log
/// scale so a nightly 340 and a lone 2 share one chart.
fn peaks(out: &mut String, suggestions: &[Suggestion]) {
    out.push_str("<section id=\"peaks\"><h2>Peaks against thresholds</h2>");
    let mut rows: Vec<&Suggestion> = suggestions.iter().filter(|s| s.principal != "*").collect();
    rows.sort_by(|a, b| b.peak.cmp(&a.peak).then(a.principal.cmp(&b.principal)));
    if rows.is_empty() {
        out.push_str("<p>No counted call.</p></section>");
        return;
    }
    out.push_str(
        "<p class=\"note\">Per principal (one row across the accounts a name works from) and \
         type: the busiest window (bar, red where it reached the threshold), the threshold \
         (dashed) and what <code>tripwire tune</code> suggests (green). Log scale.</p>",
    );
    let shown = &rows[..rows.len().min(PEAK_BARS)];
    let max = shown
        .iter()
        .map(|s| {
            s.peak
                .max(s.threshold)
                .max(s.suggested_threshold.unwrap_or(0))
        })
        .max()
        .unwrap_or(1)
        .max(2);
    let scale = (f64::from(max) * 1.3).log10();
    const LEFT: f64 = 420.0;
    const W: f64 = 520.0;
    const ROW: f64 = 20.0;
    let x = |v: u32| LEFT + (f64::from(v.max(1))).log10() / scale * W;
    let h = shown.len() as f64 * ROW + 24.0;
    let _ = write!(
        out,
        "<svg id=\"peaks-chart\" role=\"img\" aria-label=\"peaks against thresholds\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">",
        w = LEFT + W + 90.0
    );
    for (n, s) in shown.iter().enumerate() {
        let top = n as f64 * ROW;
        // The end of a long ARN says the most; cut on characters, never inside one.
        let n = s.principal.chars().count();
        let label: String = if n > 62 {
            format!("…{}", s.principal.chars().skip(n - 60).collect::<String>())
        } else {
            s.principal.clone()
        };
        let _ = write!(
            out,
            "<g class=\"peak-row\" data-principal=\"{p}\" data-type=\"{t}\" data-peak=\"{peak}\" data-threshold=\"{th}\">\
             <text x=\"0\" y=\"{ty:.0}\">{l} {t}</text>\
             <rect class=\"peak{u}\" x=\"{LEFT}\" y=\"{ry:.0}\" width=\"{bw:.1}\" height=\"{bh}\"><title>peak {peak} in {win}; threshold {th}</title></rect>\
             <line class=\"thr\" x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{ry:.0}\" y2=\"{ly:.0}\"/>",
            p = esc(&s.principal),
            t = esc(&s.resource_type),
            peak = s.peak,
            th = s.threshold,
            ty = top + 14.0,
            l = esc(&label),
            u = if s.incidents == 0 { " under" } else { "" },
            ry = top + 4.0,
            bw = x(s.peak) - LEFT,
            bh = ROW - 8.0,
            win = esc(&s.window),
            tx = x(s.threshold),
            ly = top + ROW - 2.0,
        );
        if let Some(sug) = s.suggested_threshold {
            let _ = write!(
                out,
                "<line class=\"sug\" x1=\"{sx:.1}\" x2=\"{sx:.1}\" y1=\"{a:.0}\" y2=\"{b:.0}\"><title>suggested {sug}</title></line>",
                sx = x(sug),
                a = top + 2.0,
                b = top + ROW,
            );
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.0}\">{}</text></g>",
            LEFT + W + 6.0,
            top + 14.0,
            s.peak
        );
    }
    let _ = write!(out, "</svg>");
    let head = "<tr><th>principal</th><th>type</th><th class=\"n\">peak</th><th>window</th><th class=\"n\">threshold</th>\
                <th class=\"n\">paged days</th><th class=\"n\">suggested</th><th>finding</th></tr>";
    folded(out, head, &rows, |out, s| {
        let _ = write!(
            out,
            "<tr class=\"suggestion\" data-principal=\"{p}\" data-peak=\"{pk}\"><td>{p}</td><td>{t}</td><td class=\"n\">{pk}</td><td>{w}</td><td class=\"n\">{th}</td>\
             <td class=\"n\">{d}/{a}</td><td class=\"n\">{sug}</td><td class=\"w\">{r}</td></tr>",
            p = esc(&s.principal),
            t = esc(&s.resource_type),
            pk = s.peak,
            w = esc(&s.window),
            th = s.threshold,
            d = s.days_paged,
            a = s.days_active,
            sug = s.suggested_threshold.map_or_else(|| "-".into(), |t| t.to_string()),
            r = esc(&s.reason),
        );
    });
    out.push_str("</section>");
}

/// One heatmap cell: (account, region), its class, and what hovering says.
pub struct Cell {
    pub account: String,
    pub region: String,
    pub class: &'static str,
    pub title: String,
}

fn coverage_cell(c: &Coverage) -> Cell {
    let class = if c.max_gap_s * 1000 <= 2 * CANARY_INTERVAL {
        "ok"
    } else if c.max_gap_s <= 6 * 3600 {
        "gap"
    } else {
        "long"
    };
    Cell {
        account: c.account.clone(),
        region: c.region.clone(),
        class,
        title: format!(
            "{} {}: {} heartbeats, {} to {}, longest silence {}",
            c.account,
            c.region,
            c.heartbeats,
            format_millis(c.first),
            format_millis(c.last),
            format_duration(c.max_gap_s * 1000)
        ),
    }
}

/// Accounts × regions, every account a row, the worst first (by `legend` order: the
/// last classes are the worst), scrolling past a screenful.
pub fn heatmap(out: &mut String, cells: &[Cell], legend: &[(&str, &str)]) {
    if cells.is_empty() {
        out.push_str("<p>No heartbeat in this history.</p>");
        return;
    }
    let regions: BTreeSet<&str> = cells.iter().map(|c| c.region.as_str()).collect();
    let mut by: BTreeMap<&str, BTreeMap<&str, &Cell>> = BTreeMap::new();
    for c in cells {
        by.entry(&c.account).or_default().insert(&c.region, c);
    }
    let rank = |class: &str| legend.iter().position(|(c, _)| *c == class).unwrap_or(0);
    let mut accounts: Vec<(&str, usize)> = by
        .iter()
        .map(|(a, row)| {
            let worst = regions
                .iter()
                .map(|r| row.get(r).map_or(legend.len(), |c| rank(c.class)))
                .max()
                .unwrap_or(0);
            (*a, worst)
        })
        .collect();
    accounts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    out.push_str("<p class=\"legend\">");
    for (class, name) in legend {
        let n = cells.iter().filter(|c| c.class == *class).count();
        let _ = write!(
            out,
            "<span class=\"{class}\"></span>{} (<b data-key=\"cells.{class}\">{n}</b>)",
            esc(name)
        );
    }
    let missing = by.len() * regions.len() - cells.len();
    let _ = write!(
        out,
        "<span class=\"none\"></span>not listed (<b data-key=\"cells.missing\">{missing}</b>)</p>\
         <div class=\"scroll\"><table class=\"heat\" id=\"heatmap\" data-accounts=\"{}\" data-regions=\"{}\"><thead><tr><th></th>",
        by.len(),
        regions.len()
    );
    for r in &regions {
        let _ = write!(out, "<th class=\"r\">{}</th>", esc(r));
    }
    out.push_str("</tr></thead><tbody>");
    for (account, _) in accounts {
        let row = &by[account];
        let _ = write!(out, "<tr><th>{}</th>", esc(account));
        for r in &regions {
            match row.get(r) {
                // The first class is the good one: its cells carry no title, so 20,000
                // of them stay small; the row and column say where it is.
                Some(c) if c.class == legend[0].0 => {
                    let _ = write!(out, "<td class=\"{}\"></td>", c.class);
                }
                Some(c) => {
                    let _ = write!(
                        out,
                        "<td class=\"{}\" title=\"{}\"></td>",
                        c.class,
                        esc(&c.title)
                    );
                }
                None => out.push_str("<td class=\"none\"></td>"),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
}

/// Shutdown waves: EC2's own events, and who the CloudTrail records say ended them.
fn waves(out: &mut String, waves: &[tripwire_engine::wave::Wave]) {
    let _ = write!(
        out,
        "<section id=\"waves\"><h2>Shutdown waves (<span data-key=\"wave_rows\">{}</span>)</h2>\
         <p class=\"note\">Instances EC2's state-change events show going away in one account \
         and region, whatever ended them; claimed by the principals whose calls named them, \
         the rest unclaimed.</p>",
        waves.len()
    );
    if waves.is_empty() {
        out.push_str("<p>None in this history.</p></section>");
        return;
    }
    let head =
        "<tr><th>triggered</th><th>account</th><th>region</th><th class=\"n\">instances</th>\
                <th>claimed by</th><th class=\"n\">unclaimed</th><th>wave</th></tr>";
    folded(out, head, waves, |out, w| {
        let claimed: Vec<String> = w
            .claimed_by
            .iter()
            .map(|c| format!("{} ({})", c.principal_arn, c.instances))
            .collect();
        let _ = write!(
            out,
            "<tr class=\"wave\" data-id=\"{id}\" data-instances=\"{n}\"><td>{t}<td>{a}<td>{r}<td class=\"n\">{n}\
             <td class=\"w\">{c}<td class=\"n\">{u}<td>{id}</tr>",
            id = esc(&w.id),
            n = w.instances,
            t = format_millis(w.trigger_time),
            a = esc(&w.account),
            r = esc(&w.region),
            c = esc(&claimed.join(", ")),
            u = w.unclaimed.len(),
        );
    });
    out.push_str("</section>");
}

fn tampers(out: &mut String, tampers: &[tripwire_engine::armed::Tamper]) {
    let _ = write!(
        out,
        "<section id=\"tamper\"><h2>Tamper events (<span data-key=\"tamper_rows\">{}</span>)</h2>",
        tampers.len()
    );
    if tampers.is_empty() {
        out.push_str(
            "<p>None: nothing in this history disarmed part of the tripwire.</p></section>",
        );
        return;
    }
    let head = "<tr><th>time</th><th>account</th><th>region</th><th>call</th><th>principal</th><th>target</th><th>error</th></tr>";
    folded(out, head, tampers, |out, t| {
        let _ = write!(
            out,
            "<tr class=\"tamper\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            format_millis(t.event_time),
            esc(&t.account),
            esc(&t.region),
            esc(&t.event_name),
            esc(&t.principal_arn),
            esc(&t.target.to_string()),
            esc(t.error_code.as_deref().unwrap_or("")),
        );
    });
    out.push_str("</section>");
}

/// The `tripwire status --html` page: the deployed policy and the live heatmap.
pub fn status_page(policies: &[(String, String)], cells: &[Cell], made: &str) -> String {
    let mut body = String::from("<section id=\"policy\"><h2>Policy</h2>");
    if policies.is_empty() {
        body.push_str("<p>No function has recorded the policy it loaded.</p>");
    } else {
        body.push_str("<table><tbody>");
        for (function, line) in policies {
            let _ = write!(
                body,
                "<tr><th>{}</th><td>{}</td></tr>",
                esc(function),
                esc(line)
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section><section id=\"coverage\"><h2>Coverage</h2>");
    heatmap(
        &mut body,
        cells,
        &[
            ("armed", "armed"),
            ("late", "late"),
            ("lost", "lost"),
            ("never_seen", "never seen"),
        ],
    );
    body.push_str("</section>");
    page(
        "tripwire status",
        made,
        &[("policy", "Policy"), ("coverage", "Coverage")],
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn the_heatmap_keeps_every_account_worst_first() {
        let cell = |a: &str, r: &str, class| Cell {
            account: a.into(),
            region: r.into(),
            class,
            title: format!("{a} {r}"),
        };
        let cells = [
            cell("111111111111", "us-east-1", "ok"),
            cell("111111111111", "eu-west-1", "ok"),
            cell("222222222222", "us-east-1", "long"),
            cell("222222222222", "eu-west-1", "ok"),
            cell("333333333333", "us-east-1", "gap"),
        ];
        let mut out = String::new();
        heatmap(
            &mut out,
            &cells,
            &[("ok", "steady"), ("gap", "gap"), ("long", "long gap")],
        );
        let at = |a: &str| out.find(&format!("<th>{a}</th>")).unwrap();
        // A region never heard from is worse than any class; then the long gap.
        assert!(at("333333333333") < at("222222222222"), "{out}");
        assert!(at("222222222222") < at("111111111111"), "{out}");
        assert!(out.contains("data-key=\"cells.missing\">1<"), "{out}");
        assert!(out.contains("data-key=\"cells.ok\">3<"), "{out}");
        assert!(
            out.contains("data-accounts=\"3\" data-regions=\"2\""),
            "{out}"
        );
    }
}
