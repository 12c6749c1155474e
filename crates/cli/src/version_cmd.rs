//! `ferrosim version`: the version and what this binary can do. Every line
//! names code that is compiled in unconditionally (the binary has no
//! optional Cargo features: the PC/SC transport, both database backends and
//! PKCS#11 are always built), so nothing listed is missing at run time;
//! what is planned but not built is not listed.

/// The capabilities of this build, one `(area, what)` per line.
pub const FEATURES: &[(&str, &str)] = &[
    (
        "sm-dp+",
        "GSMA SGP.22 v2 ES9+ (devices) and ES2+ (operators, with callbacks) over HTTPS (rustls, aws-lc-rs)",
    ),
    ("databases", "SQLite (embedded, bundled), PostgreSQL"),
    (
        "keys",
        "PEM/DER key files; DPauth/DPpb in a PKCS#11 token (cryptoki)",
    ),
    ("pki", "GSMA RSP test PKI generation, chain verification"),
    (
        "profiles",
        "SAIP profile packages: parse, personalise, batch import",
    ),
    (
        "euicc",
        "virtual eUICC (ES10a/b/c over APDUs), as a PC/SC card through vsmartcard vpcd",
    ),
    ("lpa", "transports: in-process, vpcd, PC/SC (libpcsclite)"),
    ("tools", "demo, bench"),
];

/// Prints the version and [`FEATURES`].
pub fn run() {
    println!("ferrosim {}", env!("CARGO_PKG_VERSION"));
    for (area, what) in FEATURES {
        println!("  {area:<10} {what}");
    }
}
