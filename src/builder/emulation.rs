//! Build steps of a foreign platform (`--platform linux/arm64` on an amd64 machine) run
//! under QEMU user emulation: the kernel's binfmt_misc hands the foreign binaries to
//! the interpreter registered for their architecture. Inside user namespaces and
//! chroots the interpreter's path is not visible, so the handler must be registered
//! with the fix-binary flag `F` (the kernel opens the interpreter at registration), as
//! Debian's `qemu-user-static` does. [`check_binfmt`] checks the handler before the
//! first step, so a build fails with how to fix it instead of an `Exec format error`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::image::platform::Platform;

/// Where binfmt_misc is mounted.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// The binfmt_misc directory [`check_foreign_platform`] reads: `$FLENSE_BINFMT_MISC`
/// when set (tests point it at a fake one), else [`BINFMT_DIR`].
pub fn binfmt_dir() -> PathBuf {
    std::env::var_os("FLENSE_BINFMT_MISC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BINFMT_DIR))
}

/// [`check_binfmt`] of [`binfmt_dir`] for `platform`, when it is not this machine's.
pub fn check_foreign_platform(platform: &Platform) -> Result<(), EmulationError> {
    if platform.is_host() {
        return Ok(());
    }
    check_binfmt(&binfmt_dir(), platform)
}

/// Why steps of a platform cannot run on this machine.
#[derive(Debug, thiserror::Error)]
#[error("cannot run build steps for {platform} under emulation: {problem}\nhint: {fix}")]
pub struct EmulationError {
    /// The foreign platform.
    pub platform: String,
    /// What is missing or unusable.
    pub problem: String,
    /// The commands (as root) that fix it.
    pub fix: String,
}

/// QEMU's name of an architecture (Go's GOARCH name), as in `qemu-<name>`.
fn qemu_name(architecture: &str) -> Option<&'static str> {
    Some(match architecture {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "arm" => "arm",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// Checks that binfmt_misc under `dir` (normally [`BINFMT_DIR`]) has a usable QEMU
/// handler for `platform`: registered as `qemu-<arch>`, enabled, with the fix-binary
/// flag, its interpreter present.
pub fn check_binfmt(dir: &Path, platform: &Platform) -> Result<(), EmulationError> {
    let fail = |problem: String, fix: String| EmulationError {
        platform: platform.to_string(),
        problem,
        fix,
    };
    let Some(qemu) = qemu_name(&platform.architecture) else {
        return Err(fail(
            format!(
                "flense knows no QEMU emulator for the architecture {:?}",
                platform.architecture
            ),
            "build this platform on a machine of that architecture".into(),
        ));
    };
    let install = format!(
        "apt-get install qemu-user-static binfmt-support; update-binfmts --enable qemu-{qemu}"
    );
    if !dir.join("register").exists() {
        return Err(fail(
            format!("binfmt_misc is not mounted at {}", dir.display()),
            format!(
                "mount -t binfmt_misc binfmt_misc {}; {install}",
                dir.display()
            ),
        ));
    }
    let handler = dir.join(format!("qemu-{qemu}"));
    let Ok(text) = fs::read_to_string(&handler) else {
        return Err(fail(
            format!("no binfmt_misc handler {} is registered", handler.display()),
            install,
        ));
    };
    let handler = Handler::parse(&text);
    if !handler.enabled {
        return Err(fail(
            format!("the binfmt_misc handler qemu-{qemu} is disabled"),
            format!("update-binfmts --enable qemu-{qemu}"),
        ));
    }
    if !handler.flags.contains('F') {
        return Err(fail(
            format!(
                "the binfmt_misc handler qemu-{qemu} lacks the fix-binary flag F (flags: {:?}), \
                 so its interpreter cannot be found inside the build's namespaces",
                handler.flags
            ),
            format!(
                "register it with the F flag, as Debian's qemu-user-static does: \
                 update-binfmts --disable qemu-{qemu}; {install}"
            ),
        ));
    }
    match handler.interpreter {
        Some(path) if path.exists() => Ok(()),
        Some(path) => Err(fail(
            format!(
                "the interpreter {} of qemu-{qemu} does not exist",
                path.display()
            ),
            "apt-get install --reinstall qemu-user-static".into(),
        )),
        None => Err(fail(
            format!("the binfmt_misc handler qemu-{qemu} names no interpreter"),
            install,
        )),
    }
}

/// The fields of a binfmt_misc handler file that matter here.
struct Handler {
    enabled: bool,
    interpreter: Option<PathBuf>,
    flags: String,
}

impl Handler {
    fn parse(text: &str) -> Self {
        let mut handler = Handler {
            enabled: false,
            interpreter: None,
            flags: String::new(),
        };
        for line in text.lines() {
            if line == "enabled" {
                handler.enabled = true;
            } else if let Some(path) = line.strip_prefix("interpreter ") {
                handler.interpreter = Some(PathBuf::from(path));
            } else if let Some(flags) = line.strip_prefix("flags:") {
                handler.flags = flags.trim().to_string();
            }
        }
        handler
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARM64: &str = "linux/arm64";

    fn binfmt_dir(handler: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("register"), "").unwrap();
        fs::write(dir.path().join("status"), "enabled\n").unwrap();
        if let Some(text) = handler {
            fs::write(dir.path().join("qemu-aarch64"), text).unwrap();
        }
        dir
    }

    fn handler(enabled: &str, interpreter: &Path, flags: &str) -> String {
        format!(
            "{enabled}\ninterpreter {}\nflags: {flags}\noffset 0\nmagic 7f454c46\n",
            interpreter.display()
        )
    }

    fn check(dir: &Path) -> Result<(), EmulationError> {
        check_binfmt(dir, &ARM64.parse().unwrap())
    }

    #[test]
    fn a_usable_handler_passes() {
        let interpreter = tempfile::NamedTempFile::new().unwrap();
        let dir = binfmt_dir(Some(&handler("enabled", interpreter.path(), "PF")));
        check(dir.path()).unwrap();
    }

    #[test]
    fn each_problem_says_how_to_fix_it() {
        let interpreter = tempfile::NamedTempFile::new().unwrap();
        let unmounted = tempfile::tempdir().unwrap();
        let err = check(unmounted.path()).unwrap_err().to_string();
        assert!(
            err.contains("not mounted") && err.contains("mount -t binfmt_misc"),
            "{err}"
        );
        assert!(err.contains("linux/arm64"), "{err}");

        let missing = binfmt_dir(None);
        let err = check(missing.path()).unwrap_err().to_string();
        assert!(err.contains("no binfmt_misc handler"), "{err}");
        assert!(
            err.contains("apt-get install qemu-user-static binfmt-support"),
            "{err}"
        );
        assert!(
            err.contains("update-binfmts --enable qemu-aarch64"),
            "{err}"
        );

        let disabled = binfmt_dir(Some(&handler("disabled", interpreter.path(), "PF")));
        let err = check(disabled.path()).unwrap_err().to_string();
        assert!(err.contains("is disabled"), "{err}");

        let no_f = binfmt_dir(Some(&handler("enabled", interpreter.path(), "P")));
        let err = check(no_f.path()).unwrap_err().to_string();
        assert!(err.contains("fix-binary flag F"), "{err}");

        let gone = binfmt_dir(Some(&handler(
            "enabled",
            Path::new("/nonexistent/qemu"),
            "F",
        )));
        let err = check(gone.path()).unwrap_err().to_string();
        assert!(
            err.contains("interpreter /nonexistent/qemu of qemu-aarch64 does not exist"),
            "{err}"
        );
    }

    #[test]
    fn unknown_architectures_are_named() {
        let dir = binfmt_dir(None);
        let err = check_binfmt(dir.path(), &"linux/vax".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("\"vax\""), "{err}");
    }
}
