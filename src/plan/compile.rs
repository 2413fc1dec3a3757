//! The compiler: an expanded variant, through Blubber's five phases (§5.1), into a
//! [`Stage`]; a variant and everything it copies or mounts from into a [`Plan`].

use std::collections::BTreeMap;

use crate::config::{Config, VariantConfig};

use super::instruction::{EnvVar, Phase};
use super::stage::StageState;
use super::{
    apt, builders, copies, users, version_label, CompileOptions, Plan, PlanError, Platform, Stage,
    LABEL_VARIANT, LABEL_VERSION,
};

/// What a stage's compilation needs to know about the rest of the config.
pub struct StageEnv<'a> {
    /// The expanded variant being compiled.
    pub variant: &'a VariantConfig,
    /// Names of all variants defined in the config.
    defined: &'a [String],
    /// Final working directories of the stages compiled so far.
    workdirs: &'a BTreeMap<String, String>,
}

impl StageEnv<'_> {
    /// True when `name` is a variant of the config (not an image reference).
    pub fn is_variant(&self, name: &str) -> bool {
        self.defined.iter().any(|v| v == name)
    }

    /// The final working directory of an already compiled variant.
    pub fn final_workdir(&self, variant: &str) -> Option<String> {
        self.workdirs.get(variant).cloned()
    }
}

const PHASES: [Phase; 5] = [
    Phase::Privileged,
    Phase::PrivilegeDropped,
    Phase::PreInstall,
    Phase::Install,
    Phase::PostInstall,
];

/// The platform variables of §5.3.
pub fn platform_env(platform: &Platform) -> Vec<EnvVar> {
    let mut env = Vec::new();
    for prefix in ["BUILD", "TARGET"] {
        env.push(EnvVar::new(
            format!("{prefix}PLATFORM"),
            platform.to_string(),
        ));
        env.push(EnvVar::new(format!("{prefix}OS"), platform.os.clone()));
        env.push(EnvVar::new(
            format!("{prefix}ARCH"),
            platform.architecture.clone(),
        ));
        env.push(EnvVar::new(
            format!("{prefix}VARIANT"),
            platform.variant.clone().unwrap_or_default(),
        ));
    }
    env
}

/// Proxy variables among the build arguments (names compared case-insensitively).
fn proxy_env(build_args: &BTreeMap<String, String>) -> Vec<EnvVar> {
    const PROXIES: [&str; 5] = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "FTP_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
    ];
    build_args
        .iter()
        .filter(|(k, _)| PROXIES.contains(&k.to_ascii_uppercase().as_str()))
        .map(|(k, v)| EnvVar::new(k.clone(), v.clone()))
        .collect()
}

/// Compiles one expanded variant into a stage.
pub fn compile_stage(
    variant: &VariantConfig,
    defined: &[String],
    workdirs: &BTreeMap<String, String>,
    options: &CompileOptions,
    platform_env: &[EnvVar],
) -> Result<Stage, PlanError> {
    let env = StageEnv {
        variant,
        defined,
        workdirs,
    };
    let scratch = variant.is_scratch();
    let base = (!scratch).then(|| variant.common.base.clone().unwrap_or_default());
    let base_env = base.as_ref().and_then(|b| options.base_env.get(b));
    let mut state = StageState::new(
        &variant.name,
        scratch,
        &options.build_args,
        base_env,
        platform_env,
    );
    let common = &variant.common;
    for phase in PHASES {
        state.phase = phase;
        if phase == Phase::Privileged {
            state.base(base.clone());
        }
        if !scratch {
            users::switch_user(&mut state, variant);
            if phase == Phase::Privileged {
                for (name, default) in &common.arguments {
                    state.arg(name, super::ArgDefault::Str(default.clone()));
                }
            }
            apt::emit(&mut state, &common.apt);
            for entry in &common.builders {
                builders::entry(&mut state, &env, entry)?;
            }
            builders::node(&mut state, &env, &common.node)?;
            builders::php(&mut state, &env, &common.php)?;
            builders::python(&mut state, &env, &common.python)?;
            if let Some(builder) = &common.builder {
                builders::custom(&mut state, &env, builder)?;
            }
            users::lives(&mut state, variant);
            users::runs(&mut state, &common.runs);
        }
        if phase == Phase::PostInstall {
            if let Some(entrypoint) = common.entrypoint.as_ref().filter(|e| !e.is_empty()) {
                state.entrypoint(entrypoint.clone());
            }
        }
        if phase == Phase::Install {
            let owner = users::phase_owner(&state, variant)?;
            copies::emit_copies(&mut state, &env, &variant.expanded_copies, owner);
        }
    }
    state.image.labels = vec![
        EnvVar::new(LABEL_VARIANT, variant.name.clone()),
        EnvVar::new(LABEL_VERSION, version_label()),
    ];
    Ok(Stage {
        variant: variant.name.clone(),
        base,
        depends_on_variants: state.depends_on,
        build_args: state.build_args_declared,
        steps: state.steps,
        image: state.image,
    })
}

/// Compiles `target` and every variant it depends on (leaves first) into a plan.
pub fn compile(config: &Config, target: &str, options: &CompileOptions) -> Result<Plan, PlanError> {
    let defined: Vec<String> = config.variants.iter().map(|v| v.name.clone()).collect();
    let mut order = config.copies_dependencies(target)?;
    order.push(target.to_string());
    let mut expanded = BTreeMap::new();
    for name in &order {
        expanded.insert(name.clone(), config.expand(name)?);
    }

    let platform = options.platform.clone().unwrap_or_else(Platform::host);
    let platform_env = platform_env(&platform);
    let mut workdirs = BTreeMap::new();
    let mut stages = Vec::new();
    for name in &order {
        let variant = &expanded[name];
        let stage = compile_stage(variant, &defined, &workdirs, options, &platform_env)?;
        workdirs.insert(name.clone(), stage.image.working_dir.clone());
        stages.push(stage);
    }
    let labels = stages
        .last()
        .map(|s| s.image.labels.clone())
        .unwrap_or_default();
    Ok(Plan {
        target: target.to_string(),
        stages,
        platform_env,
        proxy_env: proxy_env(&options.build_args),
        labels,
    })
}

/// The base image of each stage [`compile`] makes for `target`, in build order (scratch
/// stages have none): what a builder resolves before compiling, so that the plan
/// expands the variables of the bases' `Env`.
pub fn base_images(config: &Config, target: &str) -> Result<Vec<String>, PlanError> {
    let mut order = config.copies_dependencies(target)?;
    order.push(target.to_string());
    let mut bases = Vec::new();
    for name in &order {
        let variant = config.expand(name)?;
        if !variant.is_scratch() {
            bases.push(variant.common.base.clone().unwrap_or_default());
        }
    }
    Ok(bases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BuilderEntry, Cache, CommonConfig, CustomBuilder, PythonConfig};
    use crate::plan::Instruction;

    fn variant(name: &str, base: &str) -> VariantConfig {
        VariantConfig {
            name: name.into(),
            common: CommonConfig {
                base: Some(base.into()),
                ..crate::config::defaults()
            },
            copies: vec![],
            expanded_copies: vec![],
            includes: vec![],
        }
    }

    fn options(base: &str, env: &[&str]) -> CompileOptions {
        let mut options = CompileOptions::default();
        options
            .base_env
            .insert(base.into(), env.iter().map(|s| s.to_string()).collect());
        options
    }

    #[test]
    fn base_image_env_expands_python_path_and_caches() {
        let mut v = variant("hello", "python:3");
        v.common.python = PythonConfig {
            version: "python3".into(),
            requirements: Some(vec![]),
            ..Default::default()
        };
        v.common.builders = vec![BuilderEntry::Custom(CustomBuilder {
            command: Some(crate::config::Command::Shell("echo $GOPATH $NOPE".into())),
            caches: Some(vec![Cache {
                destination: "${GOPATH}/pkg".into(),
                ..Default::default()
            }]),
            ..Default::default()
        })];
        let opts = options("python:3", &["PATH=/usr/local/bin:/usr/bin", "GOPATH=/go"]);
        let stage = compile_stage(&v, &[], &BTreeMap::new(), &opts, &[]).unwrap();
        let path = stage.image.env.iter().find(|e| e.name == "PATH").unwrap();
        assert_eq!(path.value, "/opt/lib/venv/bin:/usr/local/bin:/usr/bin");
        let run = stage
            .steps
            .iter()
            .find_map(|s| match &s.instruction {
                Instruction::Run {
                    effective, context, ..
                } if effective.starts_with("echo") => Some((effective.clone(), context.clone())),
                _ => None,
            })
            .unwrap();
        // Unknown variables become empty once the base env is known, like Blubber.
        assert_eq!(run.0, "echo /go ");
        assert_eq!(run.1.caches[0].destination, "/go/pkg");
        assert_eq!(run.1.caches[0].id, "/go/pkg");
    }

    #[test]
    fn image_env_values_expand_before_sibling_keys_apply() {
        let mut v = variant("hello", "debian");
        v.common.runs.environment = [
            ("A".to_string(), "/a".to_string()),
            ("B".to_string(), "$A/b".to_string()),
        ]
        .into();
        let opts = options("debian", &[]);
        let stage = compile_stage(&v, &[], &BTreeMap::new(), &opts, &[]).unwrap();
        let b = stage.image.env.iter().find(|e| e.name == "B").unwrap();
        assert_eq!(b.value, "/b", "quirk Q17: image value expanded first");
        let build_b = stage
            .steps
            .iter()
            .find_map(|s| match &s.instruction {
                Instruction::Env { build_values, .. } => {
                    build_values.iter().find(|e| e.name == "B").cloned()
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(build_b.value, "/a/b");
    }

    #[test]
    fn platform_variables_are_docker_style() {
        let env = platform_env(&Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        });
        let get = |n: &str| env.iter().find(|e| e.name == n).unwrap().value.clone();
        assert_eq!(get("TARGETPLATFORM"), "linux/arm64/v8");
        assert_eq!(get("BUILDARCH"), "arm64");
        assert_eq!(get("TARGETVARIANT"), "v8");
    }

    #[test]
    fn with_the_base_env_unknown_variables_expand_to_empty_like_blubber() {
        let text = include_str!(
            "../../fixtures/plan/examples/derived/04-command-compile-time-expansion.blubber.yaml"
        );
        let config = crate::config::load_str(text, "derived-04.yaml").unwrap();
        let opts = options("debian:bookworm", &["PATH=/usr/bin:/bin"]);
        let plan = compile(&config, "build", &opts).unwrap();
        let runs: Vec<String> = plan
            .target_stage()
            .steps
            .iter()
            .filter_map(|s| match &s.instruction {
                Instruction::Run { effective, .. } => Some(effective.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            runs,
            [
                "for t in a b; do echo hello ; done",
                "echo \"/home/somebody\" \"hello\""
            ]
        );
    }

    #[test]
    fn base_images_are_the_bases_compile_gives_its_stages() {
        let text = r#"
version: v4
variants:
  build:
    base: docker-registry.wikimedia.org/nodejs20-devel
  assets:
    base: docker-registry.wikimedia.org/nodejs20-devel
    copies: [build]
  production:
    base: docker-registry.wikimedia.org/nodejs20-slim
    copies: [assets, build]
"#;
        let config = crate::config::load_str(text, "bases.yaml").unwrap();
        let bases = base_images(&config, "production").unwrap();
        let plan = compile(&config, "production", &CompileOptions::default()).unwrap();
        let compiled: Vec<String> = plan.stages.iter().filter_map(|s| s.base.clone()).collect();
        assert_eq!(bases, compiled);
        assert_eq!(
            bases,
            [
                "docker-registry.wikimedia.org/nodejs20-devel",
                "docker-registry.wikimedia.org/nodejs20-devel",
                "docker-registry.wikimedia.org/nodejs20-slim"
            ]
        );
    }
}
