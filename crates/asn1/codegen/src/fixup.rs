//! Fixes applied to rasn-compiler 0.16 output before it is committed.
//!
//! Each fix says which rule of X.680 or which compiler defect it addresses.
//! Every targeted fix must match exactly once, so a compiler upgrade that
//! changes the output makes generation fail loudly instead of silently
//! producing wrong tags.

/// The ASN.1 module name behind a generated file.
pub fn asn1_name(file: &str) -> &'static str {
    match file {
        "pkix_explicit88" => "PKIX1Explicit88 (RFC 5280)",
        "pkix_implicit88" => "PKIX1Implicit88 (RFC 5280)",
        "pe" => "PEDefinitions (TCA SAIP v3)",
        "rsp" => "RSPDefinitions (GSMA SGP.22 v2.5)",
        "sgp32" => "SGP32Definitions (GSMA SGP.32 v1.2)",
        "sgp32_v1_0" => "SGP32Definitions (GSMA SGP.32 v1.0)",
        _ => "unknown",
    }
}

/// Applies all fixes for one generated module.
pub fn apply(file: &str, body: &str, automatic_tags: bool) -> Result<String, String> {
    let mut code = rename_module_paths(&join_attributes(body));
    code = explicit_choice_tags(&code);
    if automatic_tags {
        code = automatic_tags_for_tagged_types(&code);
    }
    for fix in TARGETED.iter().filter(|f| f.file == file) {
        code = replace_once(&code, fix.old, fix.new, fix.why)?;
    }
    for fix in FUNCTIONS.iter().filter(|f| f.file == file) {
        code = replace_function(&code, fix.old, fix.new, fix.why)?;
    }
    Ok(code)
}

/// One exact text replacement in one generated file.
struct Fix {
    file: &'static str,
    why: &'static str,
    old: &'static str,
    new: &'static str,
}

const TARGETED: &[Fix] = &[
    // X.680 SEQUENCE OF [N] T: the tag belongs to every element. The compiler
    // drops it, so `BF36 { A0 { 87 .. } }` would decode as `A0 { 04 .. }`.
    Fix {
        file: "rsp",
        why: "BoundProfilePackage firstSequenceOf87: elements are [7] OCTET STRING",
        old: "#[rasn(delegate, identifier = \"OCTET_STRING\")]\npub struct AnonymousBoundProfilePackageFirstSequenceOf87",
        new: "#[rasn(delegate, tag(context, 7), identifier = \"OCTET_STRING\")]\npub struct AnonymousBoundProfilePackageFirstSequenceOf87",
    },
    Fix {
        file: "rsp",
        why: "BoundProfilePackage sequenceOf88: elements are [8] OCTET STRING",
        old: "#[rasn(delegate, identifier = \"OCTET_STRING\")]\npub struct AnonymousBoundProfilePackageSequenceOf88",
        new: "#[rasn(delegate, tag(context, 8), identifier = \"OCTET_STRING\")]\npub struct AnonymousBoundProfilePackageSequenceOf88",
    },
    Fix {
        file: "rsp",
        why: "BoundProfilePackage secondSequenceOf87: elements are [7] OCTET STRING",
        old: "#[rasn(delegate, identifier = \"OCTET_STRING\")]\npub struct AnonymousBoundProfilePackageSecondSequenceOf87",
        new: "#[rasn(delegate, tag(context, 7), identifier = \"OCTET_STRING\")]\npub struct AnonymousBoundProfilePackageSecondSequenceOf87",
    },
    Fix {
        file: "rsp",
        why: "BoundProfilePackage sequenceOf86: elements are [6] OCTET STRING",
        old: "#[rasn(delegate, identifier = \"OCTET_STRING\")]\npub struct AnonymousBoundProfilePackageSequenceOf86",
        new: "#[rasn(delegate, tag(context, 6), identifier = \"OCTET_STRING\")]\npub struct AnonymousBoundProfilePackageSequenceOf86",
    },
    // SGP32Definitions (both versions) imports UICCCapability through
    // RSPDefinitions' import list; RSPDefinitions only imports it privately
    // from PEDefinitions.
    Fix {
        file: "sgp32_v1_0",
        why: "UICCCapability comes from PEDefinitions",
        old: " UICCCapability, VersionType,",
        new: " VersionType,",
    },
    Fix {
        file: "sgp32_v1_0",
        why: "UICCCapability comes from PEDefinitions",
        old: "use super::pkix_explicit88::",
        new: "use super::pe::UICCCapability;\nuse super::pkix_explicit88::",
    },
    Fix {
        file: "sgp32",
        why: "UICCCapability comes from PEDefinitions",
        old: " TransactionId, UICCCapability,",
        new: " TransactionId,",
    },
    Fix {
        file: "sgp32",
        why: "UICCCapability comes from PEDefinitions",
        old: "use super::pkix_explicit88::",
        new: "use super::pe::UICCCapability;\nuse super::pkix_explicit88::",
    },
    // DEFAULT values of subtypes: the compiler returns the base value.
    Fix {
        file: "pe",
        why: "keyCompontents macLength DEFAULT 8 is a UInt8",
        old: "fn anonymous_key_object_key_compontents_mac_length_default() -> UInt8 {\n    8\n}",
        new: "fn anonymous_key_object_key_compontents_mac_length_default() -> UInt8 {\n    UInt8(8)\n}",
    },
];

/// Whole functions replaced: `old` is the signature line, `new` the function.
const FUNCTIONS: &[Fix] = &[Fix {
    file: "pe",
    why: "PE-AKAParameter sqnInit DEFAULT is 32 x '000000000000'H of the SEQUENCE OF newtype",
    old: "fn peakaparameter_sqn_init_default() -> SequenceOf<OctetString> {",
    new: "fn peakaparameter_sqn_init_default() -> PEAKAParameterSqnInit {\n    \
          PEAKAParameterSqnInit(alloc::vec![AnonymousPEAKAParameterSqnInit(FixedOctetString::new([0; 6])); 32])\n}",
}];

fn replace_function(code: &str, signature: &str, new: &str, why: &str) -> Result<String, String> {
    if code.matches(signature).count() != 1 {
        return Err(format!("fix `{why}`: signature not found exactly once"));
    }
    let start = code.find(signature).ok_or(why)?;
    let len = code[start..]
        .find("\n}\n")
        .ok_or_else(|| format!("fix `{why}`: end of function not found"))?;
    let end = start + len + 2;
    Ok(format!("{}{}{}", &code[..start], new, &code[end..]))
}

fn replace_once(code: &str, old: &str, new: &str, why: &str) -> Result<String, String> {
    match code.matches(old).count() {
        1 => Ok(code.replacen(old, new, 1)),
        n => Err(format!("fix `{why}` matched {n} times (expected once)")),
    }
}

/// Puts every attribute on one line (rustfmt wraps long `#[rasn(...)]`), so
/// the line-based fixes below see each attribute whole.
fn join_attributes(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut pending: Option<String> = None;
    for line in code.lines() {
        if let Some(acc) = pending.as_mut() {
            let part = line.trim();
            if !acc.ends_with('(') && !part.starts_with(')') {
                acc.push(' ');
            }
            acc.push_str(part);
            if line.trim_start().starts_with(")]") {
                out.push_str(acc);
                out.push('\n');
                pending = None;
            }
        } else if line.trim_start().starts_with("#[") && !line.ends_with(']') {
            pending = Some(line.to_string());
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(acc) = pending {
        out.push_str(&acc);
    }
    out
}

/// Module paths as the compiler names them -> our file names.
fn rename_module_paths(code: &str) -> String {
    code.replace("super::pedefinitions", "super::pe")
        .replace("super::pkix1_explicit88", "super::pkix_explicit88")
        .replace("super::pkix1_implicit88", "super::pkix_implicit88")
        .replace("super::rspdefinitions", "super::rsp")
        .replace("super::sgp32_definitions", "super::sgp32")
}

/// X.680 31.2.7: a tag on a CHOICE type is always explicit, whatever the
/// module's tagging default. The compiler emits it as implicit, which rasn
/// rejects (`[33] CHOICE` must be `BF21 { A0 .. }`).
fn explicit_choice_tags(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    for line in code.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("#[rasn(choice, tag(")
            && !rest.starts_with("explicit(")
            && let Some(end) = rest.find(')')
        {
            out.push_str("#[rasn(choice, tag(explicit(");
            out.push_str(&rest[..end]);
            out.push(')');
            out.push_str(&rest[end..]);
            continue;
        }
        out.push_str(line);
    }
    out
}

/// X.680 25.3: in an AUTOMATIC TAGS module, the components of a SEQUENCE,
/// SET or CHOICE are numbered [0], [1], ... unless one of them is tagged in
/// the source. The compiler forgets this when the type itself carries a tag
/// (`CancelSessionRequest ::= [65] SEQUENCE { transactionId .., reason .. }`
/// is `BF41 { 80 .., 81 .. }`), so add `automatic_tags` to every tagged
/// structure or choice none of whose components has a tag.
fn automatic_tags_for_tagged_types(code: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if needs_automatic_tags(&lines, i) {
            out.push(line.replacen("#[rasn(", "#[rasn(automatic_tags, ", 1));
        } else {
            out.push((*line).to_string());
        }
    }
    out.join("\n") + "\n"
}

fn needs_automatic_tags(lines: &[&str], i: usize) -> bool {
    let Some(attr) = lines[i]
        .strip_prefix("#[rasn(")
        .and_then(|a| a.strip_suffix(")]"))
    else {
        return false;
    };
    if !attr.contains("tag(") || attr.contains("automatic_tags") || attr.contains("delegate") {
        return false;
    }
    let mut j = i + 1;
    while j < lines.len() && lines[j].starts_with("#[") {
        j += 1;
    }
    let Some(header) = lines.get(j) else {
        return false;
    };
    let is_item = (header.starts_with("pub struct ") || header.starts_with("pub enum "))
        && header.ends_with(" {");
    if !is_item {
        return false;
    }
    let mut has_component = false;
    for line in &lines[j + 1..] {
        if *line == "}" {
            break;
        }
        if line.starts_with("    #[rasn(") && line.contains("tag(") {
            return false;
        }
        if !line.trim_start().starts_with("#[") {
            has_component = true;
        }
    }
    has_component
}
