//! Generates random-value constructors (`Gen` impls) for every generated type,
//! used by the crate's property tests (`crates/asn1/tests/support/`).
//!
//! Each structure is built through its `new` constructor with one random value
//! per field, each CHOICE picks a random alternative, each newtype wraps a
//! random inner value. SIZE and value constraints written on the type or the
//! field are honoured, since rasn checks them when encoding and decoding.

/// Writes the `Gen` impls for one generated module (file name `file`), and
/// adds a `visit` call per type to `visits`.
pub fn gen_impls(file: &str, code: &str, visits: &mut String) -> Result<String, String> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = String::new();
    let mut attrs: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with("#[") {
            attrs.push(line);
            i += 1;
            continue;
        }
        let rasn_attr = attrs
            .iter()
            .filter(|a| a.starts_with("#[rasn("))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let (item, next) = collect_item(&lines, i)?;
            let name = ident(rest);
            out.push_str(&struct_impl(file, name, &rasn_attr, &item)?);
            visits.push_str(&visit(file, name));
            i = next;
        } else if let Some(rest) = line.strip_prefix("pub enum ") {
            let (item, next) = collect_item(&lines, i)?;
            let name = ident(rest);
            out.push_str(&enum_impl(file, name, &rasn_attr, &item)?);
            visits.push_str(&visit(file, name));
            i = next;
        } else {
            i += 1;
        }
        attrs.clear();
    }
    Ok(out)
}

fn visit(file: &str, name: &str) -> String {
    format!("    v.visit::<ferrosim_asn1::generated::{file}::{name}>(\"{file}::{name}\");\n")
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The lines of one item, from its header to its closing line.
fn collect_item<'a>(lines: &[&'a str], start: usize) -> Result<(Vec<&'a str>, usize), String> {
    let header = lines[start];
    if header.ends_with(';') || header.ends_with("{}") {
        return Ok((vec![header], start + 1));
    }
    let mut item = vec![header];
    for (j, line) in lines.iter().enumerate().skip(start + 1) {
        item.push(line);
        if *line == "}" || *line == ");" {
            return Ok((item, j + 1));
        }
    }
    Err(format!("unterminated item: {header}"))
}

/// Fields whose random value is restricted: `(file, type, field, expression)`.
const FIELD_OVERRIDES: &[(&str, &str, &str, &str)] = &[
    // rasn 0.30 decodes an absent untagged OPTIONAL CHOICE as an error when
    // another component follows (it tries the CHOICE on the next element).
    // RFC 5280 5.1.2.5: conforming CRL issuers always include nextUpdate.
    (
        "pkix_explicit88",
        "TBSCertList",
        "next_update",
        "Some(Gen::generate(r, d + 1))",
    ),
];

fn struct_impl(file: &str, name: &str, attr: &str, item: &[&str]) -> Result<String, String> {
    let header = item[0];
    let path = format!("ferrosim_asn1::generated::{file}::{name}");
    let body = if header.contains('(') {
        // Newtype: `pub struct X(pub T);` on one or several lines.
        let joined: String = item.iter().map(|l| l.trim()).collect();
        let inner = joined
            .split_once("(pub ")
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map(|(t, _)| t.trim().trim_end_matches(',').to_string())
            .ok_or_else(|| format!("cannot read newtype {name}"))?;
        format!("Self({})", value_expr(&inner, attr))
    } else if header.ends_with("{}") {
        "Self::new()".to_string()
    } else {
        let mut args = Vec::new();
        let mut field_attr = String::new();
        let mut pending = String::new();
        for line in &item[1..] {
            // A long field declaration is wrapped after its colon.
            if line.trim().starts_with("pub ") && line.trim().ends_with(':') {
                pending = format!("{} ", line.trim());
                continue;
            }
            let joined = format!("{pending}{}", line.trim());
            pending.clear();
            let l = joined.as_str();
            if l.starts_with("#[rasn(") {
                field_attr = l.to_string();
            } else if let Some(field) = l.strip_prefix("pub ") {
                let ty = field
                    .split_once(": ")
                    .map(|(_, t)| t.trim_end_matches(','))
                    .ok_or_else(|| format!("cannot read field of {name}: {l}"))?;
                let field_name = field.split(':').next().unwrap_or_default();
                let overridden = FIELD_OVERRIDES
                    .iter()
                    .find(|(f, t, n, _)| *f == file && *t == name && *n == field_name);
                match overridden {
                    Some((_, _, _, expr)) => args.push((*expr).to_string()),
                    None => args.push(value_expr(ty, &field_attr)),
                }
                field_attr.clear();
            } else if !l.starts_with("#[") && !l.is_empty() && l != "}" {
                return Err(format!("unexpected line in {name}: {l}"));
            }
        }
        format!("Self::new({})", args.join(", "))
    };
    Ok(format!(
        "impl Gen for {path} {{\n    fn generate(r: &mut Rng, d: u32) -> Self {{\n        \
         let _ = (&r, d);\n        {body}\n    }}\n}}\n"
    ))
}

fn enum_impl(file: &str, name: &str, attr: &str, item: &[&str]) -> Result<String, String> {
    let path = format!("ferrosim_asn1::generated::{file}::{name}");
    let mut arms = Vec::new();
    let mut variant_attr = String::new();
    let mut pending = String::new();
    for line in &item[1..] {
        // A long variant is wrapped inside its parentheses.
        pending.push_str(line.trim());
        if pending.matches('(').count() != pending.matches(')').count() {
            continue;
        }
        let joined = std::mem::take(&mut pending);
        let l = joined.trim_end_matches(',').trim();
        if l.starts_with("#[rasn(") {
            variant_attr = l.to_string();
            continue;
        }
        if l.starts_with("#[") || l == "}" || l.is_empty() {
            continue;
        }
        if attr.contains("enumerated") {
            let variant = ident(l);
            arms.push(format!("Self::{variant}"));
        } else {
            let (variant, ty) = l
                .split_once('(')
                .and_then(|(v, t)| t.strip_suffix(')').map(|t| (v, t)))
                .ok_or_else(|| format!("cannot read variant of {name}: {l}"))?;
            arms.push(format!(
                "Self::{variant}({})",
                value_expr(ty, &variant_attr)
            ));
        }
        variant_attr.clear();
    }
    if arms.is_empty() {
        return Err(format!("enum {name} without variants"));
    }
    let arms: Vec<String> = arms
        .iter()
        .enumerate()
        .map(|(k, a)| format!("            {k} => {a},"))
        .collect();
    Ok(format!(
        "impl Gen for {path} {{\n    fn generate(r: &mut Rng, d: u32) -> Self {{\n        \
         let _ = d;\n        match r.below({n}) {{\n{arms}\n            \
         _ => unreachable!(),\n        }}\n    }}\n}}\n",
        n = arms.len(),
        arms = arms.join("\n")
    ))
}

/// The expression producing a random value of type `ty` under the
/// constraints written in `attr` (a `#[rasn(...)]` attribute or empty).
fn value_expr(ty: &str, attr: &str) -> String {
    let optional = ty.starts_with("Option<");
    let (min, max) = if let Some(size) = constraint(attr, "size(\"") {
        bounds(&size)
    } else if let Some(value) = constraint(attr, "value(\"") {
        let (lo, hi) = bounds(&value);
        return if optional {
            format!("opt_valued(r, d, {lo}, {hi})")
        } else {
            format!("valued(r, d, {lo}, {hi})")
        };
    } else {
        return "Gen::generate(r, d + 1)".to_string();
    };
    if optional {
        format!("opt_sized(r, d, {min}, {max})")
    } else {
        format!("sized(r, d, {min}, {max})")
    }
}

fn constraint(attr: &str, key: &str) -> Option<String> {
    let start = attr.find(key)? + key.len();
    let end = attr[start..].find('"')? + start;
    Some(attr[start..end].to_string())
}

/// `"N"`, `"N..=M"`, `"N.."` -> inclusive bounds (open upper bound capped).
fn bounds(range: &str) -> (i64, i64) {
    const OPEN: i64 = 40;
    match range.split_once("..") {
        None => {
            let n = range.parse().unwrap_or(0);
            (n, n)
        }
        Some((lo, hi)) => {
            let lo: i64 = lo.parse().unwrap_or(0);
            let hi: i64 = hi
                .trim_start_matches('=')
                .parse()
                .unwrap_or(lo.max(0) + OPEN);
            (lo, hi)
        }
    }
}
