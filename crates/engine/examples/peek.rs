fn main() {
    for path in std::env::args().skip(1) {
        let text = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&text);
        let mut c = tripwire_engine::ScanCounts::default();
        let mut t = Vec::new();
        let r = tripwire_engine::scan(&text, &mut c, &mut t);
        println!(
            "{path}: err={:?} records={} other={} skipped={:?}",
            r.err().map(|e| e.to_string()),
            c.records,
            c.other_events,
            c.skipped
        );
        for x in t {
            println!(
                "   {} {:?} acct={:?} in={} ids={} err={:?} anomaly={:?}",
                x.principal.arn,
                x.principal.kind.type_name(),
                x.principal.account,
                x.account,
                x.instance_ids.len(),
                x.error_code,
                x.principal.anomaly
            );
        }
    }
}
