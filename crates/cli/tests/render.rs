//! `tripwire render` as a user runs it: the backtest's lines in, what each destination
//! receives out; other records skipped by name, broken lines named by number.

use std::io::Write;
use std::process::{Command, Stdio};

fn render(format: &str, input: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tripwire"))
        .args(["render", "--format", format])
        .args(if format == "asff" {
            &["--finding-account", "123456789012"][..]
        } else {
            &[]
        })
        .env_remove("TRIPWIRE_FINDINGS_ACCOUNT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const TAMPER: &str = r#"{"type":"tamper","event_id":"ev-1","event_name":"StopLogging","event_source":"cloudtrail.amazonaws.com","principal_arn":"arn:aws:iam::222222222222:role/admin","account":"222222222222","region":"us-east-1","target":"org-trail","event_time":"2018-01-09T22:09:00Z"}"#;

#[test]
fn other_records_are_skipped_by_name_and_a_tamper_line_is_paged_but_never_a_finding() {
    let input =
        format!("{TAMPER}\n{{\"type\":\"summary\",\"files\":1}}\n\n{{\"type\":\"peak\"}}\n");
    let (ok, out, err) = render("pagerduty", &input);
    assert!(ok, "{err}");
    let page: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(page["dedup_key"], "tamper-ev-1");
    assert_eq!(page["payload"]["severity"], "error");
    assert!(
        err.contains("rendered 1, skipped 2 (1 peak, 1 summary), invalid 0"),
        "{err}"
    );
    let (ok, out, err) = render("asff", &input);
    assert!(ok && out.is_empty(), "{out}{err}");
    assert!(err.contains("1 not_an_incident"), "{err}");
    let (ok, out, _) = render("text", TAMPER);
    assert!(
        ok && out.starts_with("Subject: TRIPWIRE TAMPER: StopLogging on org-trail"),
        "{out}"
    );
}

#[test]
fn a_broken_line_is_named_by_its_number_and_fails_the_run_after_the_rest() {
    let input = format!("{TAMPER}\nnot json\n{{\"type\":\"incident\",\"id\":\"x\"}}\n{TAMPER}\n");
    let (ok, out, err) = render("chatbot", &input);
    assert!(!ok);
    assert_eq!(out.lines().count(), 2, "the good lines are still rendered");
    assert!(err.contains("line 2: not JSON"), "{err}");
    assert!(err.contains("line 3: incident:"), "{err}");
}

#[test]
fn what_a_subscriber_holds_renders_as_the_alert_inside_it() {
    let alert: serde_json::Value = serde_json::from_str(TAMPER).unwrap();
    let event = serde_json::json!({"source": "tripwire", "detail-type": "tamper", "detail": alert});
    let sns = serde_json::json!({"Type": "Notification", "Subject": "s", "Message": TAMPER});
    let (_, want, _) = render("chatbot", TAMPER);
    for wrapped in [event, sns] {
        let (ok, out, err) = render("chatbot", &format!("{wrapped}\n"));
        assert!(ok, "{err}");
        assert_eq!(out, want);
    }
}

#[test]
fn a_finding_names_a_real_account_or_none_is_rendered() {
    let out = Command::new(env!("CARGO_BIN_EXE_tripwire"))
        .args(["render", "--format", "asff"])
        .env_remove("TRIPWIRE_FINDINGS_ACCOUNT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--finding-account"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_tripwire"))
        .args(["render", "--format", "asff", "--finding-account", "1234"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an account ID"));
}
