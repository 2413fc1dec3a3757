//! Fixture base images (rootfs tarballs made by `fixtures/base-images/*.sh`, cached
//! between runs) and the hostile layers of `fixtures/hostile/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cli::{flense, ok_stdout};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A copy of the busybox fixture's rootfs tarball in `dir`, where the unprivileged test
/// user can read it (`dir` is made 0755, the copy 0644).
pub fn busybox_tar_for_test_user(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tar = dir.join("busybox.tar");
    std::fs::copy(rootfs_tar("busybox"), &tar).unwrap();
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    tar
}

/// The rootfs tarball of fixture base image `name` (`busybox`, `bookworm`,
/// `nodejs-devel`), building it first when the cache has none. `build.sh` serialises
/// concurrent callers with a lock file per image, so parallel tests build it once.
pub fn rootfs_tar(name: &str) -> PathBuf {
    let script = fixtures_dir().join("base-images/build.sh");
    let out = Command::new(&script)
        .arg(name)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {name} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        path.is_file(),
        "{} printed {}, which is not a file",
        script.display(),
        path.display()
    );
    path
}

/// Imports fixture base image `name` into the store at `store_root` through the CLI and
/// returns its reference (`localhost/<name>:latest`).
pub fn import_fixture(store_root: &Path, name: &str) -> String {
    let tar = rootfs_tar(name);
    let reference = format!("localhost/{name}:latest");
    ok_stdout(
        flense(store_root)
            .arg("import")
            .arg(&tar)
            .args(["--tag", &reference]),
    );
    reference
}

/// Path of a hostile layer tarball in `fixtures/hostile/`.
pub fn hostile_tar(name: &str) -> PathBuf {
    fixtures_dir().join("hostile").join(name)
}

/// A copy of the Node sample project (`examples/node-service`, without `node_modules`)
/// in `dir`; returns its path.
pub fn node_sample(dir: &Path) -> PathBuf {
    let from = fixtures_dir().join("../examples/node-service");
    let to = dir.join("node-service");
    for entry in walkdir::WalkDir::new(&from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(&from).unwrap();
        if rel.starts_with("node_modules") {
            continue;
        }
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
    to
}

/// Changes the Node sample's lockfile (and package.json) in `project`: its version
/// 1.0.0 becomes 1.0.1, so the requirements copy and npm run again.
pub fn relock_node_sample(project: &Path) {
    for name in ["package.json", "package-lock.json"] {
        let f = project.join(name);
        let t = std::fs::read_to_string(&f).unwrap();
        std::fs::write(
            &f,
            t.replacen("\"version\": \"1.0.0\"", "\"version\": \"1.0.1\"", 2),
        )
        .unwrap();
    }
}
