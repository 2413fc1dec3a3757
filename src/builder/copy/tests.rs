//! Unit tests of the parent module.
use super::*;
use crate::builder::copy::context::BuildContext;
use crate::builder::layers::view::{EmptyView, LayerStackView};
use crate::image::LayerEntry;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

fn context() -> (tempfile::TempDir, BuildContext) {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    fs::create_dir_all(r.join("src/lib")).unwrap();
    fs::write(r.join("package.json"), "{}").unwrap();
    fs::write(r.join("package-lock.json"), "{}").unwrap();
    fs::write(r.join("src/index.js"), "i").unwrap();
    fs::write(r.join("src/lib/util.js"), "u").unwrap();
    fs::write(r.join("src/lib/util.test.js"), "t").unwrap();
    symlink("src/index.js", r.join("main.js")).unwrap();
    let ctx = BuildContext::open(r).unwrap();
    (tmp, ctx)
}

fn run(
    view: &dyn ImageView,
    src: &dyn ImageView,
    sources: &[&str],
    dest: &str,
    owner: Owner,
    exclude: &[&str],
) -> Result<Vec<LayerEntry>, CopyError> {
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
    let mut set = EntrySet::new(view, 0);
    copy_into(
        &mut set,
        src,
        &CopyRequest {
            sources: &sources,
            source_base: Path::new("/"),
            destination: dest,
            workdir: Path::new("/srv/app"),
            owner,
            exclude: &exclude,
        },
    )?;
    Ok(set.into_entries())
}

fn paths(entries: &[LayerEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e.path.to_string_lossy().into_owned())
        .collect()
}

fn base_with_app() -> (tempfile::TempDir, LayerStackView) {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("srv/app")).unwrap();
    let v = LayerStackView::new(vec![tmp.path().to_path_buf()]);
    (tmp, v)
}

#[test]
fn local_dot_copies_contents_into_workdir_with_owner() {
    let (_t, ctx) = context();
    let (_b, base) = base_with_app();
    let e = run(&base, &ctx, &["."], ".", Owner::Chown(65533, 65533), &[]).unwrap();
    assert!(paths(&e).contains(&"srv/app/src/lib/util.js".to_string()));
    assert!(paths(&e).contains(&"srv/app/package.json".to_string()));
    let f = e
        .iter()
        .find(|x| x.path == Path::new("srv/app/src/index.js"))
        .unwrap();
    assert_eq!((f.uid, f.gid), (65533, 65533));
    let link = e
        .iter()
        .find(|x| x.path == Path::new("srv/app/main.js"))
        .unwrap();
    assert_eq!(link.kind, EntryKind::Symlink("src/index.js".into()));
    // The existing workdir keeps its own metadata (root-owned here).
    let app = e.iter().find(|x| x.path == Path::new("srv/app")).unwrap();
    assert_eq!(
        app.uid,
        fs::metadata(_b.path().join("srv/app"))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap()
    );
}

#[test]
fn several_files_go_into_a_directory() {
    let (_t, ctx) = context();
    let (_b, base) = base_with_app();
    let e = run(
        &base,
        &ctx,
        &["package.json", "package-lock.json"],
        "./",
        Owner::Chown(1, 1),
        &[],
    )
    .unwrap();
    assert_eq!(
        paths(&e),
        vec![
            "srv",
            "srv/app",
            "srv/app/package-lock.json",
            "srv/app/package.json"
        ]
    );
}

#[test]
fn a_file_becomes_a_destination_without_trailing_slash() {
    let (_t, ctx) = context();
    let e = run(
        &EmptyView,
        &ctx,
        &["src/index.js"],
        "/bin/app.js",
        Owner::Root,
        &[],
    )
    .unwrap();
    assert_eq!(paths(&e), vec!["bin", "bin/app.js"]);
    assert_eq!(e[0].uid, 0);
    let e = run(
        &EmptyView,
        &ctx,
        &["src/index.js"],
        "/bin/",
        Owner::Root,
        &[],
    )
    .unwrap();
    assert_eq!(paths(&e), vec!["bin", "bin/index.js"]);
}

#[test]
fn new_parent_directories_belong_to_the_copy_owner() {
    let (_t, ctx) = context();
    let e = run(
        &EmptyView,
        &ctx,
        &["src/lib/util.js"],
        "/a/b/",
        Owner::Chown(7, 8),
        &[],
    )
    .unwrap();
    for x in &e {
        assert_eq!((x.uid, x.gid), (7, 8), "{:?}", x.path);
    }
}

#[test]
fn symlinked_source_is_followed() {
    let (_t, ctx) = context();
    let e = run(&EmptyView, &ctx, &["main.js"], "/x/", Owner::Root, &[]).unwrap();
    let f = e
        .iter()
        .find(|x| x.path == Path::new("x/index.js"))
        .unwrap();
    assert!(matches!(f.kind, EntryKind::File(_)));
}

#[test]
fn wildcards_and_empty_wildcards() {
    let (_t, ctx) = context();
    let e = run(&EmptyView, &ctx, &["package*.json"], "/d", Owner::Root, &[]).unwrap();
    assert_eq!(
        paths(&e),
        vec!["d", "d/package-lock.json", "d/package.json"]
    );
    let e = run(&EmptyView, &ctx, &["*.none"], "/d", Owner::Root, &[]).unwrap();
    assert!(e.is_empty());
}

#[test]
fn missing_source_is_an_error_naming_it() {
    let (_t, ctx) = context();
    let err = run(&EmptyView, &ctx, &["nope.txt"], ".", Owner::Root, &[]).unwrap_err();
    assert!(err.to_string().contains("nope.txt"));
}

#[test]
fn excludes_apply_relative_to_the_source() {
    let (_t, ctx) = context();
    let e = run(
        &EmptyView,
        &ctx,
        &["src"],
        "/out",
        Owner::Root,
        &["**/*.test.js", "lib/util.js"],
    )
    .unwrap();
    assert_eq!(paths(&e), vec!["out", "out/index.js", "out/lib"]);
    let e = run(
        &EmptyView,
        &ctx,
        &["src"],
        "/out",
        Owner::Root,
        &["lib", "!lib/util.js"],
    )
    .unwrap();
    assert_eq!(
        paths(&e),
        vec!["out", "out/index.js", "out/lib", "out/lib/util.js"]
    );
}

#[test]
fn copy_from_an_image_keeps_source_ownership_without_chown() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("src")).unwrap();
    fs::write(tmp.path().join("src/hello"), "bin").unwrap();
    let other = LayerStackView::new(vec![tmp.path().to_path_buf()]);
    let sources = vec!["hello".to_string()];
    let mut set = EntrySet::new(&EmptyView, 0);
    copy_into(
        &mut set,
        &other,
        &CopyRequest {
            sources: &sources,
            source_base: Path::new("/src"),
            destination: "/hello-world",
            workdir: Path::new("/"),
            owner: Owner::Keep,
            exclude: &[],
        },
    )
    .unwrap();
    let e = set.into_entries();
    let me = nix::unistd::getuid().as_raw();
    assert_eq!(paths(&e), vec!["hello-world"]);
    assert_eq!(e[0].uid, me);
}

/// The request of `run` (workdir /srv/app, sources from the root).
fn request<'a>(
    sources: &'a [String],
    dest: &'a str,
    owner: Owner,
    exclude: &'a [String],
) -> CopyRequest<'a> {
    CopyRequest {
        sources,
        source_base: Path::new("/"),
        destination: dest,
        workdir: Path::new("/srv/app"),
        owner,
        exclude,
    }
}

#[test]
fn rebasing_the_listing_onto_empty_gives_the_listing_onto_the_view() {
    let (_c, ctx) = context();
    let base = tempfile::tempdir().unwrap();
    let b = base.path();
    fs::create_dir_all(b.join("srv/app/src")).unwrap();
    fs::create_dir_all(b.join("opt")).unwrap();
    fs::set_permissions(b.join("srv"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(b.join("srv/app/old"), "o").unwrap();
    symlink("/opt", b.join("link")).unwrap();
    let stage = LayerStackView::new(vec![b.to_path_buf()]);
    let views: [&dyn ImageView; 2] = [&EmptyView, &stage];
    let owners = [Owner::Root, Owner::Chown(900, 901)];
    let dests = [".", "/", "/srv/app/", "out", "/new/deep", "/link/x", "/opt"];
    let sources = [".", "src", "/src/", "./src/lib/.."];
    let exclude = vec!["lib".to_string(), "!lib/util.js".to_string()];
    for (view, owner, dest, source) in iproduct(&views, &owners, &dests, &sources) {
        let sources = vec![source.to_string()];
        let req = request(&sources, dest, *owner, &exclude);
        let mut set = EntrySet::new(&EmptyView, 0);
        copy_into(&mut set, &ctx, &req).unwrap();
        let onto_empty = set.into_entries();
        let mut set = EntrySet::new(*view, 0);
        copy_into(&mut set, &ctx, &req).unwrap();
        let want = set.into_entries();
        let got = rebase(EntrySet::new(*view, 0), &ctx, &req, onto_empty).unwrap();
        assert_eq!(
            format!("{got:?}"),
            format!("{want:?}"),
            "{source} -> {dest}"
        );
    }
}

#[test]
fn copies_of_other_forms_are_not_rebased() {
    let (_c, ctx) = context();
    for sources in [
        vec!["src", "package.json"],
        vec!["src/*"],
        vec!["package.json"],
    ] {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let req = request(&sources, "/out/", Owner::Root, &[]);
        let mut set = EntrySet::new(&EmptyView, 0);
        copy_into(&mut set, &ctx, &req).unwrap();
        let onto_empty = set.into_entries();
        let rebased = rebase(EntrySet::new(&EmptyView, 0), &ctx, &req, onto_empty);
        assert!(rebased.is_none(), "{sources:?}");
    }
}

/// Every combination of one item of each slice.
fn iproduct<'a, A, B, C, D>(
    a: &'a [A],
    b: &'a [B],
    c: &'a [C],
    d: &'a [D],
) -> impl Iterator<Item = (&'a A, &'a B, &'a C, &'a D)> {
    a.iter().flat_map(move |a| {
        b.iter().flat_map(move |b| {
            c.iter()
                .flat_map(move |c| d.iter().map(move |d| (a, b, c, d)))
        })
    })
}
