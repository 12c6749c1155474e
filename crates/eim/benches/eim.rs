//! One eUICC package end to end in memory: queue (eIM signs), poll, the
//! eUICC verifies and signs its result, provide (eIM verifies, stores,
//! acknowledges). Four EC operations per package, as on the wire.

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Lab, now, package_of};
use criterion::{Criterion, criterion_group, criterion_main};
use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_eim::{Operation, PackageContent};

fn package_cycle(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut lab = Lab::new();
    let mut device = runtime.block_on(lab.device(0, Sgp32Version::V1_2));
    let content = PackageContent::Psmos(vec![Operation::GetRat]);
    c.bench_function("eim/package_cycle_in_memory", |b| {
        b.iter(|| {
            runtime.block_on(async {
                lab.eim
                    .enqueue_package(&device.eid, &content, &mut lab.rng, now())
                    .await
                    .unwrap();
                let ran = device.run(&package_of(&lab.send(&device.get_eim_package()).await));
                lab.send(&device.provide(&ran.result)).await;
            })
        })
    });
}

criterion_group!(benches, package_cycle);
criterion_main!(benches);
