//! Test packages: the GSMA TS.48 fixtures and the UPP of the BSP vectors.

#![allow(dead_code)]

use base64::Engine;

/// One package with the values it is known to carry.
pub struct Fixture {
    /// Where it comes from.
    pub name: &'static str,
    /// The package bytes.
    pub bytes: Vec<u8>,
    /// The ICCID of its header and EF.ICCID.
    pub iccid: &'static str,
}

fn testdata(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(path)
}

fn read(path: &str) -> Vec<u8> {
    let full = testdata(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

/// The unprotected profile package of `bpp_decode` in the BSP vectors.
pub fn vector_upp() -> Vec<u8> {
    let json: serde_json::Value =
        serde_json::from_slice(&read("vectors/bsp-kat.json")).expect("vectors parse");
    let b64 = json["bpp_decode"]["unprotected_profile_package_b64"]
        .as_str()
        .expect("vector has a UPP");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("UPP is base64")
}

/// All test packages.
pub fn fixtures() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "TS48V2-SAIP2-1-BERTLV-UNIQUE",
            bytes: read("upp/TS48V2-SAIP2-1-BERTLV-UNIQUE.der"),
            iccid: "8949449999999990049",
        },
        Fixture {
            name: "TS48V3-SAIP2-3-NOBERTLV-UNIQUE",
            bytes: read("upp/TS48V3-SAIP2-3-NOBERTLV-UNIQUE.der"),
            iccid: "8949449999999990098",
        },
        Fixture {
            name: "TS48V5-SAIP2-3-BERTLV-SUCI-UNIQUE",
            bytes: read("upp/TS48V5-SAIP2-3-BERTLV-SUCI-UNIQUE.der"),
            iccid: "8949449999999990163",
        },
        Fixture {
            name: "bsp-kat bpp_decode UPP",
            bytes: vector_upp(),
            iccid: "89000123456789012341",
        },
    ]
}
