//! The functions' logs: structured JSON, fields first, then a sentence. Honours
//! Lambda's advanced logging controls, so an operator sets the level and format on the
//! function (`LoggingConfig`) without a redeploy of code.

use tracing_subscriber::EnvFilter;

/// Lambda's log level setting (`LoggingConfig.ApplicationLogLevel`).
pub const LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
/// Lambda's log format setting (`LoggingConfig.LogFormat`): `JSON` or `Text`.
pub const LAMBDA_LOG_FORMAT: &str = "AWS_LAMBDA_LOG_FORMAT";

/// What [`init_logging`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// An `EnvFilter` directive.
    pub filter: String,
    /// JSON lines (the default), or plain text.
    pub json: bool,
}

/// The settings from `env`: `RUST_LOG` wins (a developer's full directive); then
/// Lambda's `AWS_LAMBDA_LOG_LEVEL` (TRACE, DEBUG, INFO, WARN, ERROR, FATAL); else `info`.
/// The format is JSON unless `AWS_LAMBDA_LOG_FORMAT` is `Text`.
pub fn log_settings(env: crate::config::Env<'_>) -> LogSettings {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let filter = set("RUST_LOG")
        .or_else(|| {
            set(LAMBDA_LOG_LEVEL).map(|level| match level.trim().to_ascii_lowercase().as_str() {
                // tracing has no fatal; its errors are the closest.
                "fatal" => "error".to_owned(),
                l @ ("trace" | "debug" | "info" | "warn" | "error") => l.to_owned(),
                _ => "info".to_owned(),
            })
        })
        .unwrap_or_else(|| "info".to_owned());
    let json = !set(LAMBDA_LOG_FORMAT).is_some_and(|f| f.trim().eq_ignore_ascii_case("text"));
    LogSettings { filter, json }
}

/// Sets up the functions' logging from the process environment.
pub fn init_logging() {
    let s = log_settings(&crate::config::process_env);
    let filter = EnvFilter::try_new(&s.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .without_time();
    let _ = if s.json {
        // The runtime's per-invocation span carries `requestId` and `xrayTraceId` onto
        // every line logged inside an invocation, the pipelines' own warnings included.
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_logging_controls_are_honoured_and_rust_log_wins() {
        type Vars = &'static [(&'static str, &'static str)];
        // (environment, expected filter, JSON)
        let cases: &[(Vars, &str, bool)] = &[
            (&[], "info", true),
            (&[(LAMBDA_LOG_LEVEL, "DEBUG")], "debug", true),
            (&[(LAMBDA_LOG_LEVEL, "FATAL")], "error", true),
            (&[(LAMBDA_LOG_LEVEL, "loud")], "info", true),
            (&[(LAMBDA_LOG_FORMAT, "Text")], "info", false),
            (&[(LAMBDA_LOG_FORMAT, "JSON")], "info", true),
            (
                &[(LAMBDA_LOG_LEVEL, "WARN"), ("RUST_LOG", "tripwire=trace")],
                "tripwire=trace",
                true,
            ),
        ];
        for (vars, filter, json) in cases {
            let env = crate::config::env(vars);
            assert_eq!(
                log_settings(&env),
                LogSettings {
                    filter: filter.to_string(),
                    json: *json
                },
                "{vars:?}"
            );
        }
    }
}
