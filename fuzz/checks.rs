// The invariants the fuzz targets assert, shared with the regression test in
// crates/engine/tests/fuzz_regressions.rs (both `include!` this file).

use std::collections::{HashMap, HashSet};
use tripwire_engine::containment::{plan, Action, Culprit};
use tripwire_engine::principal::{iam_entity, FederationIssuer, PrincipalKind};
use tripwire_engine::replay::replay_events;
use tripwire_engine::window::{classify, Classification, Key, Lane};
use tripwire_engine::{scan_events, Events, Policy, ScanCounts};

const POLICY: &str = r#"threshold = 3
window = "5m"
cross_account_threshold = 1
allowed_accounts = ["111111111111"]
ignore_principals = ["arn:aws:iam::*:role/ignored*"]
protected_principals = ["arn:aws:iam::*:role/BreakGlass*"]
containment = "revoke"
service_threshold = 3
attempt_threshold = 3
account_threshold = 4
"#;

/// Any text, as any input form: no panic, nothing lost, consistent terminations.
pub fn check_parse(text: &str) {
    let mut counts = ScanCounts::default();
    let mut events = Events::default();
    let _ = scan_events(text, &mut counts, &mut events);
    let terms = &events.terminations;
    // Role assumptions and initiator calls are usable records of other calls.
    assert!(events.assumptions.len() + events.initiations.len() <= counts.other_events as usize);
    // Nothing lost: every record found is a termination, another event, or a named skip.
    let skipped: u64 = counts.skipped.values().sum();
    assert_eq!(counts.records, terms.len() as u64 + counts.other_events + skipped);
    for t in terms {
        assert!(t.event_time >= 0);
        let mut ids = t.instance_ids.clone();
        ids.dedup();
        assert_eq!(ids.len(), t.instance_ids.len(), "instance IDs are distinct");
        assert!(!t.event_id.is_empty());
    }
}

/// Decisions over any text: plans only ever target the caller's own account and name,
/// ignored or protected principals never get one, no count exceeds the IDs seen.
pub fn check_decide(text: &str) {
    let policy = Policy::from_toml(POLICY).expect("the fuzz policy is valid");
    let mut counts = ScanCounts::default();
    let mut events = Events::default();
    let _ = scan_events(text, &mut counts, &mut events);
    let terms = events.terminations.clone();
    for t in &terms {
        let p = plan(&policy, &t.principal, &Culprit::of_call(t), t.kind());
        if p.action != Action::None {
            // Only the caller: its own account, and the name its own ARN carries.
            let entity = iam_entity(&t.principal.arn).expect("a planned principal has a valid IAM ARN");
            assert_eq!(p.restriction.as_ref().map(|r| r.account.as_str()), Some(entity.account.as_str()));
            assert_eq!(t.principal.account.as_deref(), Some(entity.account.as_str()));
            let name = p.target().map(|t| t.name());
            assert_eq!(name, Some(entity.name.as_str()));
            assert!(matches!(t.principal.kind, PrincipalKind::Role { .. } | PrincipalKind::User { .. } | PrincipalKind::FederatedUser { issuer: FederationIssuer::User { .. } }));
            assert!(!policy.is_protected(&t.principal.arn), "protected principal got a plan");
            assert!(!t.principal.is_service_linked_role() && !t.principal.is_identity_center_role());
        }
        if policy.is_ignored(&t.principal.arn) {
            assert!(matches!(classify(&policy, t), Classification::NotCounted(_)));
        }
    }
    // Every ID seen per key, over all copies: a forged record may reuse an eventID with
    // other content, and the replay keeps the earliest copy, not necessarily the first.
    // Keyed as the window keys them: a role by account and name, whatever the path, per
    // lane and resource type. Peaks name no type, so they are bounded by a principal's
    // IDs of every type; a service's terminations credited to an initiator, by the
    // account's.
    let mut distinct: HashMap<Key, HashSet<String>> = HashMap::new();
    let mut every_type: HashMap<Key, HashSet<String>> = HashMap::new();
    let mut account_wide: HashMap<String, HashSet<String>> = HashMap::new();
    let mut callers: HashSet<String> = HashSet::new();
    for t in terms.iter().filter(|t| !t.is_attempt()) {
        callers.insert(t.principal.arn.clone());
        let lane = if t.call.precursor.is_some() { Lane::Precursor } else { Lane::Burst };
        let typed = t.instance_ids.iter().map(|id| format!("{}/{id}", t.kind()));
        for k in [Key::of(lane, &t.principal.arn, &t.account, t.kind()), Key::new(Lane::Account, "", &t.account)] {
            distinct.entry(k).or_default().extend(t.instance_ids.iter().cloned());
        }
        every_type.entry(Key::new(Lane::Burst, &t.principal.arn, &t.account)).or_default().extend(typed.clone());
        account_wide.entry(t.account.clone()).or_default().extend(typed);
    }
    let result = replay_events(&policy, events);
    for i in &result.incidents {
        if i.kind() == Lane::Attempt {
            assert_eq!(i.instances(), 0, "an attempt burst names no instance");
        } else if i.kind() != Lane::Service {
            let ids = if i.via.is_some() {
                account_wide[&i.account].len()
            } else {
                distinct.get(&i.key()).unwrap_or_else(|| panic!("no counted call under {:?}", i.key())).len()
            };
            assert!(i.instances() <= ids && i.trigger_count as usize <= ids);
        }
        if i.kind() != Lane::Burst || policy.is_protected(i.principal_arn().unwrap_or_default()) {
            assert_eq!(i.containment.action, Action::None, "only the burst lane contains");
        }
        if i.containment.action != Action::None {
            // Never a containment of someone who did not act: origins and initiators
            // are evidence, the target is a caller of the terminations.
            // A service's terminations credited to a principal: that principal made the
            // deciding call the incident names.
            match (&i.via, &i.initiator) {
                (Some(_), Some(n)) => assert_eq!(Some(n.principal_arn.as_str()), i.principal_arn()),
                _ => assert!(callers
                    .iter()
                    .any(|c| Key::of(Lane::Burst, c, &i.account, &i.resource_type) == i.key())),
            }
        }
        if i.kind() == Lane::Burst {
            assert!(!policy.is_ignored(i.principal_arn().unwrap_or_default()));
        }
    }
    for p in &result.peaks {
        let ids = every_type
            .get(&Key::new(Lane::Burst, &p.principal_arn, &p.account))
            .or_else(|| account_wide.get(&p.account))
            .map_or(0, HashSet::len);
        assert!(p.peak as usize <= ids, "a peak above the IDs its principal named");
    }
}
