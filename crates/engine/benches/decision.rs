//! Per-record decision cost: one typical EventBridge TerminateInstances event through
//! parse + classify + window decision + plan, beside a bare `serde_json::Value` parse
//! measured in the same run, and a call no catalogue entry names (most of a trail).

mod shared;

use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let input = shared::input();
    let mut g = c.benchmark_group("decision");
    g.bench_function("parse+classify+decide+plan", |b| {
        b.iter(|| black_box(shared::decision(&input)))
    });
    g.bench_function("baseline: serde_json::Value parse only", |b| {
        b.iter(|| black_box(shared::baseline(&input)))
    });
    g.bench_function("another call: parse and look up, not watched", |b| {
        b.iter(|| black_box(shared::other(&input)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
