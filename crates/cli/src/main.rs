//! `tripwire`: the command-line side of the tripwire. Wiring only; the work lives in
//! the engine (decisions) and in the modules below (files, output, archive generation).

mod backtest;
mod generate;
// FFI to libdeflate: the project's one unsafe boundary.
#[allow(unsafe_code)]
mod gunzip;
mod incident;
mod output;
mod reading;
mod release;
mod render;
mod report;
mod s3;
mod status;
mod tune;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use tripwire_engine::Policy;

#[derive(Parser)]
#[command(
    name = "tripwire",
    version,
    about = "Stop one bad script from deleting production."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum IncidentCommand {
    /// The recovery manifest: every instance the incident terminated, with its
    /// termination time, region, the call's eventID and principal.
    Export {
        /// DynamoDB table (default: $TRIPWIRE_TABLE).
        #[arg(long)]
        table: Option<String>,
        /// `csv` or `jsonl`.
        #[arg(long, default_value = "csv")]
        format: String,
        /// The incident's ID (as its alerts give it).
        id: String,
    },
    /// Where an incident stands, from the ID on the page: open or closed, containment,
    /// the steps taken, then its page as of now (timeline, scope, plan, what to check).
    Show {
        /// DynamoDB table (default: $TRIPWIRE_TABLE).
        #[arg(long)]
        table: Option<String>,
        /// The policy file: its window words the page (default: the default policy's).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The incident's ID (as its alerts give it).
        id: String,
    },
}

/// Which history to read, and under which policy: shared by the commands that replay.
#[derive(clap::Args)]
struct ArchiveArgs {
    /// The policy file (TOML).
    #[arg(long)]
    policy: PathBuf,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// The first day read (YYYY-MM-DD, UTC), by the CloudTrail key layout.
    #[arg(long)]
    since: Option<String>,
    /// The last day read (YYYY-MM-DD, UTC).
    #[arg(long)]
    until: Option<String>,
    /// Only these accounts' folders (comma-separated).
    #[arg(long, value_delimiter = ',')]
    accounts: Vec<String>,
    /// Only these regions' folders (comma-separated).
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// Files, folders and s3://BUCKET/PREFIX URIs: .json, .jsonl and their .gz forms,
    /// walked recursively.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

impl ArchiveArgs {
    /// Reads the history and replays it, saying on stderr what was read.
    fn replay(self) -> Result<(Policy, backtest::Report)> {
        let narrow = reading::Narrow {
            since: self.since.as_deref().map(reading::parse_day).transpose()?,
            until: self.until.as_deref().map(reading::parse_day).transpose()?,
            accounts: self
                .accounts
                .into_iter()
                .filter(|a| !a.is_empty())
                .collect(),
            regions: self.regions.into_iter().filter(|r| !r.is_empty()).collect(),
        };
        if let (Some(s), Some(u)) = (narrow.since, narrow.until) {
            anyhow::ensure!(s <= u, "--since is after --until");
        }
        let policy = load_policy(&self.policy)?;
        if let Some(n) = self.threads {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()?;
        }
        let report = backtest::run(&policy, &self.paths, &narrow)?;
        eprintln!(
            "read {} files, {:.1} MB in {:.2}s ({:.0} MB/s, {:.0} records/s): {} incident(s), {} shutdown wave(s)",
            report.files,
            report.bytes as f64 / 1e6,
            report.elapsed.as_secs_f64(),
            report.bytes as f64 / 1e6 / report.elapsed.as_secs_f64().max(1e-9),
            report.scan.records as f64 / report.elapsed.as_secs_f64().max(1e-9),
            report.result.incidents.len(),
            report.result.waves.len(),
        );
        Ok((policy, report))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Replay CloudTrail history through the policy and print what would have fired.
    Backtest {
        /// One JSON object per line (the stable interface) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        archive: ArchiveArgs,
    },
    /// Suggest thresholds from the organization's own history: per principal and
    /// resource type, the busiest window, how often each threshold would have paged,
    /// and `[principals]`/`[resources]` rules for the routines that page.
    Tune {
        /// One `{"type":"suggestion"}` JSON object per line instead of a table.
        #[arg(long, conflicts_with = "toml")]
        json: bool,
        /// Only the suggested `[principals]`/`[resources]` tables, to append to the
        /// policy file as it is.
        #[arg(long)]
        toml: bool,
        /// A principal that would have paged on at least this many days is a routine.
        #[arg(long, default_value_t = 3)]
        min_days: usize,
        /// How far above the peak a suggested threshold sits, at least, in percent.
        #[arg(long, default_value_t = 25)]
        margin: u32,
        /// Rows in the table (suggestions first, then by peak); 0 for all.
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[command(flatten)]
        archive: ArchiveArgs,
    },
    /// One self-contained HTML file to look at: incidents on a timeline per account, the
    /// largest bursts against their threshold, every principal's peak against its
    /// threshold and tune's suggestion, the coverage heatmap, tamper events, the counts.
    Report {
        /// Where to write the page.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        archive: ArchiveArgs,
    },
    /// Validate a policy file; errors name the offending key.
    CheckPolicy {
        /// The policy file (TOML).
        file: PathBuf,
        /// Print one key instead, a list comma-separated (`protected_principals`,
        /// `deny_actions`, `deactivate_keys`, `allowed_accounts`, `service_threshold`,
        /// `account_threshold`, `service_lane`): what the deploy scripts pass to the stacks;
        /// `event_patterns`, the stacks' EventBridge patterns as one JSON document; or
        /// `account_brake_scp`, the account brake's service control policy.
        #[arg(long)]
        get: Option<String>,
    },
    /// Print the managed policies containment attaches, as the member stack must create
    /// them for this policy: a JSON object of name to document.
    ManagedPolicies {
        /// The policy file (TOML).
        file: PathBuf,
    },
    /// Publish the whole policy file as the next version of its SSM parameter, which the
    /// functions read at cold start; prints `NAME:VERSION`, the central stack's
    /// PolicyParameter.
    PublishPolicy {
        /// The policy file (TOML); validated first.
        file: PathBuf,
        /// The SSM parameter.
        #[arg(long, default_value = tripwire_aws::published::DEFAULT_PARAMETER)]
        name: String,
    },
    /// Is it armed? Each account and region's last canary heartbeat, its age and state
    /// (armed, late, lost, never_seen) and delivery latency over the last day; and the
    /// policy each function loaded beside the local file's, with the keys that differ.
    Status {
        /// DynamoDB table (default: $TRIPWIRE_TABLE).
        #[arg(long)]
        table: Option<String>,
        /// The local policy file the deployed one is compared with (default:
        /// config/policy.toml, when there is one).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The member stacks' CanaryInterval, in minutes.
        #[arg(long, default_value_t = 10)]
        interval_minutes: u32,
        /// An ACCOUNT:REGION that should be armed (shown `never_seen` without a heartbeat);
        /// repeat it. The member StackSet's instances the watchdog listed are expected
        /// without it.
        #[arg(long)]
        expect: Vec<String>,
        /// One JSON object per line instead of a table.
        #[arg(long, conflicts_with = "html")]
        json: bool,
        /// One self-contained HTML page instead: the policy lines and the coverage
        /// heatmap (accounts × regions).
        #[arg(long)]
        html: bool,
    },
    /// An incident in the table.
    Incident {
        #[command(subcommand)]
        command: IncidentCommand,
    },
    /// Lift containment: detach the tripwire's managed policies, remove its inline
    /// policies and close the incident, through the release role in the principal's account.
    Release {
        /// The incident ID the page shows: the table knows its account and principal.
        #[arg(long, conflicts_with_all = ["account", "principal"])]
        incident: Option<String>,
        /// The account where the instances died (the incident's account).
        #[arg(long, required_unless_present = "incident", requires = "principal")]
        account: Option<String>,
        /// The contained role or user ARN (with path).
        #[arg(long, required_unless_present = "incident", requires = "account")]
        principal: Option<String>,
        /// DynamoDB table (default: $TRIPWIRE_TABLE).
        #[arg(long)]
        table: Option<String>,
        /// Release role name in the principal's account (default: $TRIPWIRE_RELEASE_ROLE,
        /// else `tripwire-release`, the member stack's).
        #[arg(long)]
        release_role: Option<String>,
        /// The role to assume instead of the release role (kept for scripts; the
        /// containment role may not detach or delete, so it works only on member stacks
        /// from before the release role).
        #[arg(long, hide = true)]
        containment_role: Option<String>,
        /// Also reactivate the access keys containment deactivated (`deactivate_keys`).
        /// Without it they stay inactive: a key a runaway used is better rotated.
        #[arg(long)]
        reactivate_keys: bool,
    },
    /// What each destination receives: reads incident or alert JSON lines on stdin (the
    /// backtest's `--json` lines, the alerts' JSON) and prints one document per line
    /// (`text`: the page), through the renderers the functions send with.
    Render {
        /// text, json, chatbot, pagerduty or asff.
        #[arg(long, value_enum, default_value = "text")]
        format: render::Format,
        /// The policy file: its window words the page (default: the default policy's).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// ASFF: the account importing the findings (the central stack's; default:
        /// $TRIPWIRE_FINDINGS_ACCOUNT). No placeholder: a finding names a real account.
        #[arg(long)]
        finding_account: Option<String>,
        /// ASFF: its region.
        #[arg(long, default_value = "us-east-1")]
        finding_region: String,
        /// ASFF: its partition.
        #[arg(long, default_value = "aws")]
        finding_partition: String,
    },
    /// Write a synthetic CloudTrail archive (S3 layout, .json.gz) holding the seed incident.
    #[command(hide = true)]
    Generate {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Approximate uncompressed size in MB.
        #[arg(long, default_value_t = 20)]
        size_mb: u64,
        /// Days of a node autoscaler's nightly scale-ins up to the scenario's day
        /// (history for `tripwire tune`).
        #[arg(long, default_value_t = 0)]
        days: u32,
    },
}

fn load_policy(path: &PathBuf) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading policy {}", path.display()))?;
    Policy::from_toml(&text).with_context(|| format!("invalid policy {}", path.display()))
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Backtest { json, archive } => {
            let (_, report) = archive.replay()?;
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            if json {
                output::json(&mut w, &report)?;
            } else {
                output::table(&mut w, &report)?;
            }
            Ok(())
        }
        Command::Tune {
            json,
            toml,
            min_days,
            margin,
            top,
            archive,
        } => {
            anyhow::ensure!(min_days >= 1, "--min-days is at least 1");
            let (policy, report) = archive.replay()?;
            let options = tripwire_engine::tune::Options {
                min_days,
                margin_pct: margin,
                ..Default::default()
            };
            let series = &report.result.series;
            let mut suggestions = tripwire_engine::tune::tune(&policy, series, options);
            suggestions.extend(tripwire_engine::tune::tune_waves(
                &policy,
                &report.result.wave_peaks,
                options,
            ));
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            if json {
                tune::json(&mut w, &suggestions)?;
            } else if toml {
                let span = tripwire_engine::tune::span(series);
                w.write_all(tripwire_engine::tune::toml_fragment(&suggestions, span).as_bytes())?;
            } else {
                tune::table(&mut w, &suggestions, top)?;
            }
            Ok(())
        }
        Command::Report { out, archive } => {
            let policy_file = archive.policy.display().to_string();
            let text = std::fs::read_to_string(&archive.policy)
                .with_context(|| format!("reading policy {policy_file}"))?;
            let (policy, report) = archive.replay()?;
            let suggestions = tripwire_engine::tune::tune(
                &policy,
                &report.result.series,
                tripwire_engine::tune::Options::default(),
            );
            let html = report::backtest_page(&report::Inputs {
                report: &report,
                suggestions: &suggestions,
                policy_file: &policy_file,
                policy_sha256: &tripwire_engine::deployed::policy_hash(&text),
            });
            std::fs::write(&out, html).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Command::CheckPolicy {
            file,
            get: Some(key),
        } => {
            let p = load_policy(&file)?;
            let values: Vec<String> = match key.as_str() {
                "protected_principals" => p
                    .protected_principals
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                "deny_actions" => p.deny_actions.clone(),
                "deactivate_keys" => vec![p.deactivate_keys.to_string()],
                "allowed_accounts" => p.allowed_accounts.iter().cloned().collect(),
                "service_threshold" => p.service_threshold.iter().map(u32::to_string).collect(),
                "account_threshold" => p.account_threshold.iter().map(u32::to_string).collect(),
                // The member stacks' ServiceLane: whether they forward the terminations
                // of AWS services and service-linked roles. Always: with the service lane
                // off they are still credited to the principal whose call decided them.
                "service_lane" => vec![true.to_string()],
                // The EventBridge patterns both stacks forward and match on, from the
                // catalogue of watched calls: one JSON document.
                "event_patterns" => vec![serde_json::to_string_pretty(
                    &tripwire_engine::catalogue::event_patterns(),
                )?],
                // The account brake's service control policy for this policy, minified
                // as Organizations counts its size; an error when it is too large.
                "account_brake_scp" => {
                    vec![tripwire_engine::containment::account_brake_scp(&p)
                        .map_err(anyhow::Error::msg)?]
                }
                other => {
                    anyhow::bail!("--get takes protected_principals, deny_actions, deactivate_keys, allowed_accounts, service_threshold, account_threshold, service_lane, event_patterns or account_brake_scp, not `{other}`")
                }
            };
            println!("{}", values.join(","));
            Ok(())
        }
        Command::ManagedPolicies { file } => {
            use tripwire_engine::containment::{
                brake_document, quarantine_document, scope_document,
            };
            use tripwire_engine::names::{BRAKE_POLICY, QUARANTINE_MANAGED_POLICY, SCOPE_POLICY};
            let p = load_policy(&file)?;
            let docs = serde_json::json!({
                BRAKE_POLICY: serde_json::from_str::<serde_json::Value>(&brake_document(&p.deny_actions))?,
                QUARANTINE_MANAGED_POLICY: serde_json::from_str::<serde_json::Value>(&quarantine_document())?,
                SCOPE_POLICY: serde_json::from_str::<serde_json::Value>(&scope_document())?,
            });
            println!("{}", serde_json::to_string_pretty(&docs)?);
            Ok(())
        }
        Command::CheckPolicy { file, get: None } => {
            let p = load_policy(&file)?;
            let mut out = String::new();
            writeln!(
                out,
                "ok: threshold {} in {}s (cross-account {}), containment {:?}, {} allowed account(s), {} override(s)",
                p.threshold,
                p.window / 1000,
                p.cross_account_threshold
                    .map_or_else(|| "the same".to_owned(), |t| t.to_string()),
                p.containment,
                p.allowed_accounts.len(),
                p.accounts.len()
            )?;
            let any_partition = p
                .protected_principals
                .iter()
                .chain(&p.ignore_principals)
                .filter(|g| g.any_partition())
                .count();
            if any_partition > 0 {
                writeln!(
                    out,
                    "note: {any_partition} glob(s) start `arn:aws:` and match every partition (aws, aws-us-gov, aws-cn, ...); name a partition, e.g. `arn:aws-us-gov:`, to match only that one"
                )?;
            }
            // What each door pages at, before `[principals]` rules (which apply to every
            // type) and, for instances, the `[accounts]` overrides.
            writeln!(
                out,
                "resource types (threshold in window, containment; calls):"
            )?;
            for kind in tripwire_engine::catalogue::kinds() {
                let calls: Vec<&str> = tripwire_engine::catalogue::every()
                    .filter(|w| w.resource.kind == kind)
                    .map(|w| w.deny_action)
                    .collect();
                // Precursors destroy nothing: their lane pages and never contains.
                let containment = if kind == tripwire_engine::catalogue::PRECURSOR {
                    "alert only".to_owned()
                } else {
                    format!("{:?}", p.containment_for("", kind))
                };
                writeln!(
                    out,
                    "  {kind:<30} {:>4} in {:>4}s, {containment}; {}{}",
                    p.threshold_for("", "", false, kind),
                    p.window_for("", kind) / 1000,
                    calls.join(", "),
                    if p.resources.contains_key(kind) {
                        " ([resources] rule)"
                    } else {
                        ""
                    }
                )?;
            }
            emit(&out)
        }
        Command::Generate { out, size_mb, days } => generate::run(&out, size_mb, days),
        Command::Render {
            format,
            policy,
            finding_account,
            finding_region,
            finding_partition,
        } => {
            let window = match policy {
                Some(p) => load_policy(&p)?.window,
                None => Policy::from_toml("")?.window,
            };
            let account = finding_account.or_else(|| {
                tripwire_aws::config::process_env(tripwire_aws::config::FINDINGS_ACCOUNT)
            });
            let account = match (format, account) {
                (_, Some(a)) if a.len() == 12 && a.bytes().all(|c| c.is_ascii_digit()) => a,
                (_, Some(a)) => anyhow::bail!("--finding-account `{a}` is not an account ID"),
                (render::Format::Asff, None) => anyhow::bail!(
                    "asff names the account importing the findings: pass --finding-account (the central stack's account) or set {}",
                    tripwire_aws::config::FINDINGS_ACCOUNT
                ),
                // Only a finding names it.
                (_, None) => String::new(),
            };
            let ctx = tripwire_engine::destination::FindingContext {
                account,
                region: finding_region,
                partition: finding_partition,
            };
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            let counts = render::run(format, window, &ctx, std::io::stdin().lock(), &mut w)?;
            std::io::Write::flush(&mut w)?;
            render::report(&counts)
        }
        Command::PublishPolicy { file, name } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading policy {}", file.display()))?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let pinned = runtime.block_on(async {
                let sdk = tripwire_aws::load_sdk_config(tripwire_aws::TlsRoots::System).await?;
                tripwire_aws::published::publish(&tripwire_aws::client(&sdk), &name, &text).await
            });
            println!(
                "{}",
                pinned.with_context(|| format!("publishing {}", file.display()))?
            );
            Ok(())
        }
        Command::Status {
            table,
            policy,
            interval_minutes,
            expect,
            json,
            html,
        } => {
            let format = match (json, html) {
                (true, _) => status::Format::Json,
                (_, true) => status::Format::Html,
                _ => status::Format::Table,
            };
            status::run(table, policy, interval_minutes, &expect, format)
        }
        Command::Incident {
            command: IncidentCommand::Export { table, format, id },
        } => incident::export(table, &id, &format),
        Command::Incident {
            command: IncidentCommand::Show { table, policy, id },
        } => {
            let window = match policy {
                Some(p) => load_policy(&p)?.window,
                None => Policy::from_toml("")?.window,
            };
            incident::show(table, &id, window)
        }
        Command::Release {
            incident,
            account,
            principal,
            table,
            release_role,
            containment_role,
            reactivate_keys,
        } => {
            let (account, principal) = match (incident, account, principal) {
                (Some(id), _, _) => release::of_incident(&id, table.clone())?,
                (None, Some(a), Some(p)) => (a, p),
                // clap requires both without --incident.
                _ => anyhow::bail!("pass --incident ID, or --account and --principal"),
            };
            release::run(
                &account,
                &principal,
                table,
                release_role.or(containment_role),
                reactivate_keys,
            )
        }
    }
}

/// Writes `text` to standard output. A reader that closed the pipe early (`| head`) has
/// read what it wanted: that is not a failure, and never a panic.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
