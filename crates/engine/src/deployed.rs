//! The policy as deployed: one file, published whole (`tripwire publish-policy`), read by
//! every function at cold start with the stack's own keys layered on, and compared with
//! the local file by `tripwire status`.

use crate::policy::{Policy, PolicyError};
use sha2::{Digest, Sha256};

/// Keys only the stack knows (its own KMS keys and topics): the stack passes them beside
/// the published file, and they join the file's own lists.
pub const STACK_LIST_KEYS: [&str; 3] = ["tripwire_keys", "tripwire_topics", "tripwire_scps"];

/// The SHA-256 of a policy file's bytes, lower-case hex: the hash the functions log and
/// record at cold start, and `tripwire status` compares.
pub fn policy_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse(what: &str, text: &str) -> Result<toml::Table, PolicyError> {
    text.parse::<toml::Table>().map_err(|e| PolicyError {
        key: what.to_owned(),
        message: e.message().to_owned(),
    })
}

/// The published file with the stack's keys layered on: a list key both set is the union
/// (file order first), and any other key both set is an error, so neither silently wins.
///
/// `containment` from the stack is its `ContainmentMode`, the one switch the deploy
/// guide turns: `off` keeps every rule alert-only, the file's `[principals]` and
/// `[resources]` containment included, so a first deploy of a file that says `revoke`
/// only alerts; any other value arms the file's own settings as written.
pub fn with_stack_keys(file: &str, stack: &str) -> Result<Policy, PolicyError> {
    let mut merged = parse("(policy file)", file)?;
    let mut stack = parse("(stack keys)", stack)?;
    match stack.remove("containment") {
        None => {}
        Some(toml::Value::String(m)) if m == "off" => {
            merged.insert("containment".into(), toml::Value::String(m));
            for rules in ["principals", "resources"] {
                if let Some(toml::Value::Table(t)) = merged.get_mut(rules) {
                    for (_, rule) in t.iter_mut() {
                        if let toml::Value::Table(rule) = rule {
                            rule.remove("containment");
                        }
                    }
                }
            }
        }
        Some(_) => {}
    }
    for (key, value) in stack {
        match (merged.get_mut(&key), value) {
            (None, value) => {
                merged.insert(key, value);
            }
            (Some(toml::Value::Array(mine)), toml::Value::Array(theirs))
                if STACK_LIST_KEYS.contains(&key.as_str()) =>
            {
                for v in theirs {
                    if !mine.contains(&v) {
                        mine.push(v);
                    }
                }
            }
            (Some(_), _) => {
                return Err(PolicyError {
                    key,
                    message: "is set by both the published policy file and the stack".into(),
                })
            }
        }
    }
    Policy::from_toml(&merged.to_string())
}

/// The dotted keys two policy files differ in (`threshold`, `principals."role/x*".window`),
/// sorted; empty when they mean the same though their bytes differ (comments, layout).
pub fn differing_keys(a: &str, b: &str) -> Result<Vec<String>, PolicyError> {
    let (a, b) = (parse("(first)", a)?, parse("(second)", b)?);
    let mut out = Vec::new();
    diff(&a, &b, "", &mut out);
    out.sort();
    Ok(out)
}

fn diff(a: &toml::Table, b: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let name = if k
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            format!("{prefix}{k}")
        } else {
            format!("{prefix}{k:?}")
        };
        match (a.get(k), b.get(k)) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                diff(x, y, &format!("{name}."), out)
            }
            (x, y) if x != y => out.push(name),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_files_bytes_sha256() {
        // FIPS 180-2's "abc" test vector.
        assert_eq!(
            policy_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_stacks_lists_join_the_files_and_anything_else_both_set_is_refused() {
        let file = "threshold = 3\ntripwire_keys = [\"1234abcd-12ab-34cd-56ef-1234567890ab\"]\n[principals.\"arn:*:iam::*:role/karpenter-*\"]\nthreshold = 500\n";
        let p = with_stack_keys(file, "tripwire_keys = [\"0000abcd-12ab-34cd-56ef-1234567890ab\", \"1234abcd-12ab-34cd-56ef-1234567890ab\"]\ntripwire_topics = [\"arn:aws:sns:us-east-1:111111111111:t\"]").unwrap();
        assert_eq!(p.threshold, 3);
        assert_eq!(
            p.tripwire_keys,
            [
                "1234abcd-12ab-34cd-56ef-1234567890ab",
                "0000abcd-12ab-34cd-56ef-1234567890ab"
            ]
        );
        assert_eq!(p.tripwire_topics, ["arn:aws:sns:us-east-1:111111111111:t"]);
        assert_eq!(p.principals[0].threshold, Some(500));
        let e = with_stack_keys(file, "threshold = 4").unwrap_err();
        assert_eq!(e.key, "threshold");
        let e = with_stack_keys("threshold = ", "").unwrap_err();
        assert_eq!(e.key, "(policy file)");
    }

    #[test]
    fn the_stacks_containment_off_keeps_every_rule_alert_only_and_on_arms_the_files() {
        use crate::policy::Mode;
        let file = "containment = \"revoke\"\n[principals.\"arn:*:iam::*:role/ci-*\"]\ncontainment = \"quarantine\"\nthreshold = 50\n[resources.\"rds:db\"]\ncontainment = \"brake\"\n";
        let off = with_stack_keys(file, "containment = \"off\"").unwrap();
        assert_eq!(off.containment, Mode::Off);
        assert_eq!(off.principals[0].containment, None, "inherits off");
        assert_eq!(
            off.principals[0].threshold,
            Some(50),
            "the rest of the rule stays"
        );
        assert!(off.resources.values().all(|r| r.containment.is_none()));
        let on = with_stack_keys(file, "containment = \"brake\"").unwrap();
        assert_eq!(on.containment, Mode::Revoke, "the file's own");
        assert_eq!(on.principals[0].containment, Some(Mode::Quarantine));
        assert_eq!(with_stack_keys(file, "").unwrap(), on);
    }

    /// A policy file setting every key the policy has, none to its default.
    const EVERY_KEY: &str = r#"threshold = 7
window = "3m"
cross_account_threshold = 2
service_threshold = 900
attempt_threshold = 40
account_threshold = 400
allowed_accounts = ["111111111111"]
ignore_principals = ["arn:aws:iam::*:role/sandbox-*"]
protected_principals = ["arn:aws:iam::*:role/BreakGlass*"]
containment = "brake"
deny_actions = ["ec2:TerminateInstances"]
deactivate_keys = true
tripwire_keys = ["1234abcd-12ab-34cd-56ef-1234567890ab"]
tripwire_topics = ["arn:aws:sns:us-east-1:123456789012:tripwire-alerts"]
tripwire_scps = ["p-abcd1234"]
recontain = true
account_brake_policy = "p-brake0001"
account_brake_for = ["root", "identity_center", "control_tower"]
containment_role = "ops-containment"
max_delivery_delay = "30m"
state_change_threshold = 120
state_change_window = "2m"

[accounts."333333333333"]
threshold = 3
cross_account_threshold = 1

[principals."arn:aws:iam::*:role/karpenter-*"]
threshold = 500
cross_account_threshold = 600
window = "10m"
containment = "off"

[resources."rds:db"]
threshold = 2
window = "1h"
containment = "quarantine"

[[change_windows]]
principal = "arn:aws:iam::222222222222:role/deploy/ci-deployer"
account = "222222222222"
from = "2026-12-05T22:00:00Z"
until = "2026-12-06T02:00:00Z"
"#;

    #[test]
    fn every_key_of_the_file_reaches_what_the_functions_read() {
        // What the functions read (the published file, the stack's keys layered on) is
        // the file itself, key for key; the stack's lists only add.
        let read = with_stack_keys(EVERY_KEY, "").unwrap();
        assert_eq!(read, Policy::from_toml(EVERY_KEY).unwrap());
        let with_stack = with_stack_keys(
            EVERY_KEY,
            "containment = \"revoke\"\ntripwire_topics = [\"arn:aws:sns:us-east-1:123456789012:tripwire-alarms\"]",
        )
        .unwrap();
        assert_eq!(with_stack.tripwire_topics.len(), 2);
        assert_eq!(
            Policy {
                tripwire_topics: read.tripwire_topics.clone(),
                ..with_stack
            },
            read
        );
        // Each key of the file counts: none is read and dropped.
        let table: toml::Table = EVERY_KEY.parse().unwrap();
        for key in table.keys() {
            let mut without = table.clone();
            without.remove(key);
            let p = Policy::from_toml(&without.to_string()).unwrap();
            assert_ne!(p, read, "{key} changed nothing");
        }
        // And every field of the policy is one of them: a new key left out of EVERY_KEY
        // fails here (the pretty Debug form puts each field at one indent).
        let fields = format!("{:#?}", Policy::from_toml("").unwrap())
            .lines()
            .filter(|l| l.starts_with("    ") && !l.starts_with("     ") && l.contains(": "))
            .count();
        assert_eq!(fields, table.len());
    }

    #[test]
    fn differing_keys_names_each_changed_key_and_ignores_comments() {
        let a =
            "# ours\nthreshold = 10\nwindow = \"5m\"\n[principals.\"role/a*\"]\nthreshold = 5\n";
        let b = "threshold = 10\nwindow = \"5m\"\n\n[principals.\"role/a*\"]\nthreshold = 5\n";
        assert_eq!(differing_keys(a, b).unwrap(), Vec::<String>::new());
        let c = "threshold = 3\n[principals.\"role/a*\"]\nthreshold = 6\n[accounts.\"111111111111\"]\nthreshold = 1\n";
        assert_eq!(
            differing_keys(a, c).unwrap(),
            [
                "accounts",
                "principals.\"role/a*\".threshold",
                "threshold",
                "window"
            ]
        );
    }
}
