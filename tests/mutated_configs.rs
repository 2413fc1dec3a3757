//! Hostile and mutated configs (issue #16): deterministic mutations of the fixture
//! blubber.yaml and config.yaml files go through both front ends, thousands through the
//! library's load and validate functions and a few hundred through the `flense` binary.
//! Every one must end as success or invalid input (exit 0 or 2), never a panic (exit
//! 101) and never a hang. A failing input is saved under the temp dir for reproduction.
//! The cargo-fuzz targets in `fuzz/` do the same without bounds (docs/fuzzing.md).

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use support::cli::flense_bin;

/// Mutations of each kind through the library (a few ms each in a debug build).
const LIBRARY_MUTATIONS: usize = 2500;
/// Mutations of each kind through the binary.
const BINARY_MUTATIONS: usize = 150;
/// Longest a single input may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(20);

/// xorshift64*: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Text that YAML, the schema or the interpolation lexer treat specially.
const TOKENS: &[&[u8]] = &[
    b"${",
    b"}",
    b"${setup.x}",
    b"${a|b}",
    b"${.}",
    b"<<: *a\n",
    b"&a ",
    b"*a",
    b"*nope",
    b"- ",
    b": ",
    b"\n  ",
    b"\n- - - ",
    b"!!binary ",
    b"!!map ",
    b"!custom ",
    b"~",
    b"null",
    b"[]",
    b"{}",
    b"[[[[[[[[",
    b"{{{{{{{{",
    b"99999999999999999999999",
    b"-1",
    b"1e400",
    b".inf",
    b"0x10",
    b"yes",
    b"\xef\xbb\xbf",
    b"\t",
    b"? ",
    b"%YAML 1.1\n",
    b"---\n",
    b"...\n",
    b"|\n",
    b">-\n",
    b"\"\\u",
    b"'",
    b"\"",
    b"#",
    b"\xff",
    b"\xc3",
    b"\0",
    b"\r",
    b"../../",
    b"/",
    b"variants:",
    b"includes: [",
    b"copies: ",
    b"stages:",
    b"execution:",
    b"pipelines:",
];

const BYTES: &[u8] = b":-\n\t {}[]&*!|>'\"#$%@`,?\\\x00\xff\xc3\x80";

/// One random edit of `data`.
fn mutate_once(data: &mut Vec<u8>, rng: &mut Rng) {
    let len = data.len();
    let at = rng.below(len + 1);
    match rng.below(9) {
        0 if len > 0 => data[at.min(len - 1)] ^= 1 << rng.below(8),
        1 if len > 0 => data[at.min(len - 1)] = BYTES[rng.below(BYTES.len())],
        2 => {
            let token = TOKENS[rng.below(TOKENS.len())];
            data.splice(at..at, token.iter().copied());
        }
        3 if len > 0 => {
            let end = (at + 1 + rng.below(32)).min(len);
            data.drain(at.min(len - 1)..end);
        }
        4 if len > 0 => {
            let from = rng.below(len);
            let end = (from + 1 + rng.below(200)).min(len);
            let piece = data[from..end].to_vec();
            data.splice(at..at, piece);
        }
        5 => {
            let mut lines: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
            lines.swap(a, b);
            *data = lines.join(&b'\n');
        }
        6 => {
            // Indent or dedent one line by two spaces.
            let start = data[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            if data[start..].starts_with(b"  ") && rng.below(2) == 0 {
                data.drain(start..start + 2);
            } else {
                data.splice(start..start, *b"  ");
            }
        }
        7 => data.truncate(at),
        _ => {
            // Repeat a piece many times (deep nesting, long scalars, many aliases).
            let from = rng.below(len.max(1));
            let end = (from + 1 + rng.below(16)).min(len);
            let piece = data
                .get(from..end)
                .unwrap_or(b"[")
                .repeat(1 + rng.below(500));
            data.splice(at..at, piece);
        }
    }
}

/// `count` mutated inputs made from `seeds` (round robin), each 1 to 4 edits away.
fn mutations(seeds: &[(PathBuf, Vec<u8>)], count: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|i| {
            let (path, text) = &seeds[i % seeds.len()];
            let mut data = text.clone();
            for _ in 0..1 + rng.below(4) {
                mutate_once(&mut data, &mut rng);
            }
            (format!("mutation {i} of {}", path.display()), data)
        })
        .collect()
}

/// Every `*.yaml` under the fixture directories `dirs` (relative to the crate).
fn fixture_files(dirs: &[&str]) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(PathBuf, Vec<u8>)> = dirs
        .iter()
        .flat_map(|d| walkdir::WalkDir::new(root.join(d)))
        .map(|e| e.expect("fixture dir readable"))
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "yaml"))
        .map(|e| {
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() > 10, "fixtures missing under {dirs:?}");
    files
}

fn blubber_seeds() -> Vec<(PathBuf, Vec<u8>)> {
    fixture_files(&[
        "fixtures/blubber-examples",
        "fixtures/plan",
        "fixtures/corpus/blubber",
    ])
}

fn pipeline_seeds() -> Vec<(PathBuf, Vec<u8>)> {
    fixture_files(&[
        "fixtures/pipeline-examples/pipelinelib-repo",
        "fixtures/pipeline-examples/realworld",
        "fixtures/corpus/pipeline",
    ])
}

/// The config.yaml front end (lenient schema only: `--strict` doubles the time).
fn pipeline_front_end(data: &[u8]) {
    flense::fuzzing::pipeline_front_end(data, false);
}

/// Saves a failing input where a developer can feed it to `flense` again.
fn save(what: &str, data: &[u8]) -> PathBuf {
    let file = std::env::temp_dir().join(format!(
        "flense-mutated-{}.yaml",
        what.replace(['/', ' '], "_")
    ));
    std::fs::write(&file, data).unwrap();
    file
}

/// Runs `check` on every input on a worker thread; fails on a panic, or when one input
/// takes longer than [`HANG`].
fn run_guarded(inputs: Vec<(String, Vec<u8>)>, check: fn(&[u8])) {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let mut failures = Vec::new();
        for (what, data) in &inputs {
            tx.send(what.clone()).unwrap();
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(data))) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!(
                    "{what} panicked ({message}): {}",
                    save(what, data).display()
                ));
            }
        }
        failures
    });
    let mut current = String::new();
    loop {
        match rx.recv_timeout(HANG) {
            Ok(what) => current = what,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("{current} hangs (over {HANG:?})"),
        }
    }
    let failures = worker.join().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mutated_blubber_files_are_valid_or_invalid_input_through_the_library() {
    let inputs = mutations(&blubber_seeds(), LIBRARY_MUTATIONS, 0x5eed_b1bb);
    run_guarded(inputs, flense::fuzzing::blubber_front_end);
}

#[test]
fn mutated_pipeline_configs_are_valid_or_invalid_input_through_the_library() {
    let inputs = mutations(&pipeline_seeds(), LIBRARY_MUTATIONS, 0x5eed_c0f1);
    run_guarded(inputs, pipeline_front_end);
}

/// Runs the binary on each input (written to `file`), asserting exit 0 or 2 in time.
fn run_binary(inputs: &[(String, Vec<u8>)], file: &Path, args: &[&str]) {
    let store = tempfile::tempdir().unwrap();
    let mut exits = [0usize; 2];
    for (what, data) in inputs {
        std::fs::write(file, data).unwrap();
        let out = assert_cmd::Command::new(flense_bin())
            .env_remove("FLENSE_ROOT")
            .arg("--root")
            .arg(store.path())
            .args(args)
            .timeout(HANG)
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => exits[0] += 1,
            Some(2) => {
                assert!(!stderr.contains("panicked"), "{what}: {stderr}");
                exits[1] += 1;
            }
            code => panic!(
                "{what} ({}): exit {code:?}, want 0 or 2\n{stderr}",
                save(what, data).display()
            ),
        }
    }
    // The mutations must exercise both outcomes, or the test proves little.
    assert!(exits[0] > 0 && exits[1] > 0, "exits 0/2: {exits:?}");
}

#[test]
fn mutated_blubber_files_exit_0_or_2_through_flense_validate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blubber.yaml");
    let inputs = mutations(&blubber_seeds(), BINARY_MUTATIONS, 0xb1bb_0002);
    run_binary(&inputs, &file, &["validate", "-f", file.to_str().unwrap()]);
}

#[test]
fn mutated_pipeline_configs_exit_0_or_2_through_flense_pipeline_list() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".pipeline")).unwrap();
    let file = dir.path().join(".pipeline/config.yaml");
    let inputs = mutations(&pipeline_seeds(), BINARY_MUTATIONS, 0xc0f1_0002);
    let project = dir.path().to_str().unwrap();
    run_binary(&inputs, &file, &["pipeline", "--list", "-C", project]);
}
