//! Personalisation cost of one TS.48 package (about 12 KB): the SM-DP+ runs
//! this once per profile download.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrosim_saip::{Iccid, Imsi, Key128, Personalisation, Pin, ProfilePackage, Puk};

const PACKAGE: &[u8] = include_bytes!("../../../testdata/upp/TS48V2-SAIP2-1-BERTLV-UNIQUE.der");

fn personalisation() -> Personalisation {
    let mut p = Personalisation::new(Iccid::from_body("894944000000000001").expect("valid body"));
    p.imsi = Some(Imsi::new("001010000000001").expect("valid IMSI"));
    p.k = Some(Key128::new([0x11; 16]));
    p.opc = Some(Key128::new([0x22; 16]));
    p.pin1 = Some(Pin::new("PIN1", "1234").expect("valid PIN"));
    p.puk1 = Some(Puk::new("PUK1", "12345678").expect("valid PUK"));
    p
}

fn bench(c: &mut Criterion) {
    let package = ProfilePackage::parse(PACKAGE).expect("fixture parses");
    let p = personalisation();
    c.bench_function("saip/parse 12KB package", |b| {
        b.iter(|| ProfilePackage::parse(black_box(PACKAGE)))
    });
    c.bench_function("saip/personalise 12KB package", |b| {
        b.iter(|| package.personalise(black_box(&p)))
    });
    c.bench_function("saip/parse+personalise+reparse 12KB package", |b| {
        b.iter(|| {
            let package = ProfilePackage::parse(black_box(PACKAGE)).expect("fixture parses");
            package.personalised(black_box(&p))
        })
    });
    c.bench_function("saip/summary 12KB package", |b| {
        b.iter(|| package.summary())
    });
    c.bench_function("saip/validate_schema 12KB package", |b| {
        b.iter(|| package.validate_schema())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
