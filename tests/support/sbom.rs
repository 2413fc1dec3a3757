//! Checks of SBOM documents: the purls of an SPDX document, SPDX validity by the
//! `spdx-tools` validator (`pyspdxtools -i`, installed by scripts/test into
//! `${FLENSE_FIXTURE_CACHE:-~/.cache/flense-fixtures}/spdx-tools`) and CycloneDX 1.5
//! validity by its JSON schema (fixtures/cyclonedx/).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The sorted purls of an SPDX document's packages.
pub fn purls(spdx: &Value) -> Vec<String> {
    let mut out: Vec<String> = spdx["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["referenceType"] == "purl")
        .map(|r| r["referenceLocator"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// `pyspdxtools`: `$FLENSE_PYSPDXTOOLS`, the venv scripts/test makes, or the PATH's.
fn pyspdxtools() -> PathBuf {
    if let Some(path) = std::env::var_os("FLENSE_PYSPDXTOOLS") {
        return path.into();
    }
    let cache = std::env::var_os("FLENSE_FIXTURE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/flense-fixtures")
        });
    let venv = cache.join("spdx-tools/bin/pyspdxtools");
    if venv.is_file() {
        return venv;
    }
    PathBuf::from("pyspdxtools")
}

/// Asserts that `pyspdxtools -i FILE` accepts the SPDX JSON document in `file`.
pub fn assert_valid_spdx(file: &Path) {
    let tool = pyspdxtools();
    let out = Command::new(&tool)
        .arg("-i")
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): scripts/test installs the PyPI package spdx-tools \
                 into ~/.cache/flense-fixtures/spdx-tools",
                tool.display()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("validation"),
        "pyspdxtools rejects {}:\n{text}",
        file.display()
    );
}

/// Asserts that `doc` is valid against the CycloneDX 1.5 JSON schema.
pub fn assert_valid_cyclonedx(doc: &Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cyclonedx");
    let load = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
    };
    let registry = jsonschema::Registry::new()
        .add(
            "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json",
            load("spdx.SNAPSHOT.schema.json"),
        )
        .unwrap()
        .add(
            "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json",
            load("jsf-0.82.SNAPSHOT.schema.json"),
        )
        .unwrap()
        .prepare()
        .unwrap();
    let schema = load("bom-1.5.SNAPSHOT.schema.json");
    let validator = jsonschema::options()
        .with_registry(&registry)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the CycloneDX schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "CycloneDX schema errors: {errors:#?}");
}
