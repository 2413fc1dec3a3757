//! `flense build --output`: writing the built image as an OCI layout directory, an
//! oci-archive or a docker-archive.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};

use flense::builder::stage::BuiltImage;
use flense::store::Store;

/// Where `--output` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OutputDest {
    OciDir(PathBuf),
    OciArchive(PathBuf),
    DockerArchive(PathBuf),
}

pub(super) fn parse_output(dest: &str) -> anyhow::Result<OutputDest> {
    let (kind, path) = dest.split_once(':').ok_or_else(|| {
        anyhow!("--output {dest:?}: expected oci:DIR, oci-archive:FILE or docker-archive:FILE")
    })?;
    if path.is_empty() {
        return Err(anyhow!("--output {dest:?}: the path is empty"));
    }
    let path = PathBuf::from(path);
    match kind {
        "oci" => Ok(OutputDest::OciDir(path)),
        "oci-archive" => Ok(OutputDest::OciArchive(path)),
        "docker-archive" => Ok(OutputDest::DockerArchive(path)),
        other => Err(anyhow!(
            "--output {dest:?}: unknown kind {other:?} (oci, oci-archive, docker-archive)"
        )),
    }
}

pub(super) fn export(store: &Store, built: &BuiltImage, dest: &str) -> anyhow::Result<()> {
    use flense::store::archive::ArchiveFormat;
    let reference = built
        .reference
        .clone()
        .ok_or_else(|| anyhow!("the image has no tag to export"))?;
    let image = store.image(&reference)?;
    let name = image.reference.clone().unwrap_or(reference);
    let images = vec![(name, image)];
    match parse_output(dest)? {
        OutputDest::OciArchive(path) => store.save(&images, ArchiveFormat::OciArchive, &path)?,
        OutputDest::DockerArchive(path) => {
            store.save(&images, ArchiveFormat::DockerArchive, &path)?
        }
        OutputDest::OciDir(dir) => {
            let tmp = store.temp_file()?;
            store.save(&images, ArchiveFormat::OciArchive, tmp.path())?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            unpack_layout(tmp.path(), &dir)?;
        }
    }
    Ok(())
}

fn unpack_layout(archive: &Path, dir: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(archive)?;
    let mut tar = tar::Archive::new(file);
    tar.unpack(dir)
        .with_context(|| format!("writing the OCI layout to {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_destinations() {
        assert_eq!(
            parse_output("oci:out").unwrap(),
            OutputDest::OciDir("out".into())
        );
        assert_eq!(
            parse_output("docker-archive:/tmp/x.tar").unwrap(),
            OutputDest::DockerArchive("/tmp/x.tar".into())
        );
        assert!(parse_output("zip:x").is_err());
        assert!(parse_output("oci:").is_err());
        assert!(parse_output("nothing").is_err());
    }
}
