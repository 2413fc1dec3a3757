//! Stage outputs handed from one CI job to the next: `flense pipeline P --stage S
//! --dotenv FILE` writes the stage's namespace as dotenv variables (GitLab's
//! `artifacts:reports:dotenv`), and a later job's `--stage` reads its ancestors'
//! namespaces back from the environment.
//!
//! Per stage the file holds `FLENSE_OUTPUTS_<PIPELINE>_<STAGE>`: the whole namespace
//! as JSON in URL-safe base64 (GitLab keeps dotenv values verbatim, gitlab-ci-local's
//! parser cuts at `#` and both expand `$`: base64 has none of these, nor newlines).
//! Beside it, readable copies for scripts and for Kokkuri's naming:
//! `<STAGE>_IMAGE_REF` (the published image, else the image reference later jobs
//! pull), `<STAGE>_IMAGE_ID`, `<STAGE>_IMAGE_NAME`, `<STAGE>_IMAGE_TAG`, and
//! `<STAGE>_<EXPORT>` for each `exports` value that is plain text.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::error::{PipelineError, Result};
use super::interp::{stringify, Namespace};
use super::model::Stage;

/// GitLab's limit on the variables of one dotenv report.
pub const MAX_VARIABLES: usize = 20;

/// GitLab's limit on the size of one dotenv report, in bytes.
pub const MAX_BYTES: usize = 5 * 1024;

/// A name as an environment variable name part: upper case, `[A-Z0-9_]`.
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The variable carrying the namespace of `stage` of `pipeline`.
pub fn outputs_variable(pipeline: &str, stage: &str) -> String {
    format!("FLENSE_OUTPUTS_{}_{}", env_name(pipeline), env_name(stage))
}

/// The namespace as the value of [`outputs_variable`].
pub fn encode(ns: &Namespace) -> String {
    let json = serde_json::to_vec(ns).expect("YAML values serialise as JSON");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// The namespace back from [`encode`]'s text; `None` when it is not such a text.
pub fn decode(text: &str) -> Option<Namespace> {
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()?;
    serde_json::from_slice(&json).ok()
}

/// A value safe to write unencoded in a dotenv file for both GitLab and gitlab-ci-local.
fn plain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 255
        && value.trim() == value
        && !value.contains(['\n', '\r', '#', '$', '"', '\'', '`', '\\'])
}

/// The dotenv text of `stage`'s outputs (`ns` is its namespace after its steps); the
/// encoded namespace comes first, readable copies follow while the limits allow.
pub fn dotenv(pipeline: &str, stage: &Stage, ns: &Namespace) -> String {
    let text = |k: &str| ns.get(k).map(stringify).unwrap_or_default();
    let prefix = env_name(&stage.name);
    let image_ref = Some(text("publishedImage"))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| text("imageLocalName"));
    let mut lines = vec![format!(
        "{}={}",
        outputs_variable(pipeline, &stage.name),
        encode(ns)
    )];
    let mut readable = vec![
        ("IMAGE_REF".to_string(), image_ref),
        ("IMAGE_ID".to_string(), text("imageID")),
        ("IMAGE_NAME".to_string(), text("imageName")),
        ("IMAGE_TAG".to_string(), text("imageTag")),
    ];
    for key in stage.exports.iter().flat_map(|e| e.keys()) {
        let key = stringify(key);
        readable.push((env_name(&key), text(&key)));
    }
    let mut size = lines[0].len() + 1;
    for (name, value) in readable {
        let line = format!("{prefix}_{name}={value}");
        if plain(&value) && lines.len() < MAX_VARIABLES && size + line.len() < MAX_BYTES {
            size += line.len() + 1;
            lines.push(line);
        }
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// The namespaces of `ancestors` of `stage`, read with `lookup` (the environment).
pub fn read_ancestors(
    pipeline: &str,
    stage: &str,
    ancestors: &[String],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Namespace>> {
    let mut out = BTreeMap::new();
    for ancestor in ancestors {
        let variable = outputs_variable(pipeline, ancestor);
        let missing = |reason: &str| PipelineError::StageOutputs {
            stage: stage.to_string(),
            ancestor: ancestor.clone(),
            variable: variable.clone(),
            reason: reason.to_string(),
        };
        let text = lookup(&variable).ok_or_else(|| {
            missing("it is not set: run the job of that stage first and pass on its dotenv report (as `flense export gitlab-ci` does)")
        })?;
        let ns = decode(&text)
            .ok_or_else(|| missing("it is not what `flense pipeline --stage --dotenv` writes"))?;
        out.insert(ancestor.clone(), ns);
    }
    Ok(out)
}

/// Image IDs of `namespaces` with the reference a later job fetches them by
/// (`imageLocalName`: the pushed image when the stage ran with a registry).
pub fn images_of(namespaces: &BTreeMap<String, Namespace>) -> Vec<(String, String)> {
    namespaces
        .values()
        .filter_map(|ns| {
            let id = ns.get("imageID").map(stringify)?;
            let reference = ns.get("imageLocalName").map(stringify)?;
            (!id.is_empty() && !reference.is_empty()).then_some((id, reference))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml::Value;

    fn stage(yaml: &str) -> Stage {
        let cfg: Value = serde_yaml::from_str(yaml).unwrap();
        Stage::from_value(cfg.as_mapping().unwrap())
    }

    #[test]
    fn namespaces_round_trip_through_dotenv() {
        let mut ns = Namespace::new();
        ns.insert("imageID".into(), Value::String("ab".repeat(32)));
        ns.insert(
            "imageLocalName".into(),
            Value::String("reg:5000/p-test:sha256-ab".into()),
        );
        ns.insert(
            "output".into(),
            Value::String("line #1 $HOME \"q\"\nline 2\n".into()),
        );
        ns.insert("answer".into(), Value::String("42".into()));
        let st = stage("{name: build-it, exports: {answer: '42'}}");
        let text = dotenv("my-pipe", &st, &ns);
        let mut vars = BTreeMap::new();
        for line in text.lines() {
            let (k, v) = line.split_once('=').unwrap();
            assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            assert!(!v.contains(['#', '$', '"', '\n']), "{line}");
            vars.insert(k.to_string(), v.to_string());
        }
        assert_eq!(vars["BUILD_IT_IMAGE_REF"], "reg:5000/p-test:sha256-ab");
        assert_eq!(vars["BUILD_IT_ANSWER"], "42");
        let back = read_ancestors("my-pipe", "later", &["build-it".into()], |k| {
            vars.get(k).cloned()
        })
        .unwrap();
        assert_eq!(back["build-it"], ns);
        assert_eq!(
            images_of(&back),
            vec![("ab".repeat(32), "reg:5000/p-test:sha256-ab".to_string())]
        );
    }

    #[test]
    fn a_missing_ancestor_names_the_variable() {
        let err = read_ancestors("p", "b", &["a".into()], |_| None).unwrap_err();
        assert!(err.to_string().contains("$FLENSE_OUTPUTS_P_A"), "{err}");
        let err = read_ancestors("p", "b", &["a".into()], |_| Some("%%".into())).unwrap_err();
        assert!(err.to_string().contains("stage 'a'"), "{err}");
    }
}
