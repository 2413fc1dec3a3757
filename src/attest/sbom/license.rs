//! Declared licenses as SPDX expressions: a package's own text is kept when it is a
//! valid expression over SPDX license ids (what SPDX and CycloneDX validators accept),
//! Debian's machine-readable `copyright` files are read for their `License:` names.

/// `text` when it is a valid SPDX license expression naming only listed licenses
/// (`LicenseRef-`s would need their text in the document).
pub fn spdx_expression(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .filter(|t| !t.contains(['(', ')']))
        .unwrap_or(text);
    if text.is_empty() || text.contains("LicenseRef") || text.contains("DocumentRef") {
        return None;
    }
    spdx::Expression::parse(text).ok().map(|_| text.to_owned())
}

/// The licenses a Debian machine-readable `copyright` file names (`License:` fields,
/// mapped from Debian's short names to SPDX ids), joined with `AND`; `None` when the
/// file is not machine-readable or names no license SPDX knows.
pub fn debian_copyright(text: &str) -> Option<String> {
    if !text.starts_with("Format:") {
        return None;
    }
    let mut ids = std::collections::BTreeSet::new();
    for line in text.lines() {
        let Some(value) = line.strip_prefix("License:") else {
            continue;
        };
        for name in value.split(" or ").flat_map(|n| n.split(" and ")) {
            if let Some(id) = debian_short_name(name.trim().trim_end_matches(',')) {
                ids.insert(id);
            }
        }
    }
    (!ids.is_empty()).then(|| ids.into_iter().collect::<Vec<_>>().join(" AND "))
}

/// The SPDX id of one of Debian's short license names (`GPL-2+`, `Expat`, ...).
fn debian_short_name(name: &str) -> Option<String> {
    let (base, later) = match name.strip_suffix('+') {
        Some(b) => (b, true),
        None => (name, false),
    };
    let versioned = |family: &str, version: &str| {
        let version = if version.contains('.') {
            version.to_owned()
        } else {
            format!("{version}.0")
        };
        format!(
            "{family}-{version}-{}",
            if later { "or-later" } else { "only" }
        )
    };
    let id = match base {
        "Expat" | "MIT" => "MIT".to_owned(),
        "BSD-2-clause" | "BSD-2-Clause" => "BSD-2-Clause".to_owned(),
        "BSD-3-clause" | "BSD-3-Clause" => "BSD-3-Clause".to_owned(),
        "Apache-2.0" | "Apache-2" => "Apache-2.0".to_owned(),
        "Zlib" | "zlib" => "Zlib".to_owned(),
        "ISC" => "ISC".to_owned(),
        "MPL-2.0" => "MPL-2.0".to_owned(),
        "CC0-1.0" | "CC0" => "CC0-1.0".to_owned(),
        _ => {
            let (family, version) = base.rsplit_once('-')?;
            match family {
                "GPL" | "LGPL" | "AGPL" | "GFDL"
                    if version.chars().all(|c| c.is_ascii_digit() || c == '.') =>
                {
                    versioned(family, version)
                }
                _ => return None,
            }
        }
    };
    spdx::license_id(&id).map(|_| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_expressions_are_kept() {
        assert_eq!(spdx_expression("MIT").as_deref(), Some("MIT"));
        assert_eq!(
            spdx_expression("(MIT OR Apache-2.0)").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(spdx_expression("BSD"), None);
        assert_eq!(spdx_expression("SEE LICENSE IN LICENSE.md"), None);
        assert_eq!(spdx_expression("LicenseRef-x"), None);
    }

    #[test]
    fn debian_copyright_names_map_to_spdx_ids() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                    \nFiles: *\nLicense: GPL-2+\n\nFiles: a\nLicense: Expat or LGPL-2.1\n\
                    \nFiles: b\nLicense: public-domain\n";
        assert_eq!(
            debian_copyright(text).as_deref(),
            Some("GPL-2.0-or-later AND LGPL-2.1-only AND MIT")
        );
        assert_eq!(debian_copyright("This package was debianized by..."), None);
    }
}
