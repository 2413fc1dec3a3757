//! `key generate` and `verify`, plus the helpers `push --sign-by`, `build --sign-by` and
//! `pull --verify-key` use: reading the key password and opening key files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use p256::ecdsa::{SigningKey, VerifyingKey};

use super::images::{registry_client, registry_error, RegistryArgs};
use super::Globals;
use flense::image::reference::Reference;
use flense::sign::keys::{self, KeyError};
use flense::sign::verify::{verify_image, Verified, VerifyError};

/// Environment variable holding the password of a private key.
pub const PASSWORD_ENV: &str = "FLENSE_KEY_PASSWORD";

/// Subcommands of this area.
#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Manage signing keys (cosign's file formats).
    #[command(subcommand)]
    Key(KeyCommands),
    /// Check that an image in a registry carries a valid cosign/sigstore signature by a
    /// key; exit 1 with the reason otherwise.
    Verify(VerifyArgs),
}

/// `flense key` subcommands.
#[derive(Subcommand, Debug)]
pub enum KeyCommands {
    /// Write a new ECDSA P-256 key pair: PREFIX.key (encrypted, cosign's format, mode
    /// 0600) and PREFIX.pub (PEM). Password from $FLENSE_KEY_PASSWORD, else asked on
    /// the terminal.
    Generate(GenerateArgs),
}

/// Arguments of `key generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Path prefix of the two files.
    pub prefix: PathBuf,
    /// Accept an empty password (the private key is then readable by anyone who can
    /// read the file).
    #[arg(long)]
    pub allow_empty_password: bool,
}

/// Arguments of `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Image reference in a registry (tag or digest).
    pub reference: String,
    /// The public key (PEM), e.g. from `flense key generate` or `cosign generate-key-pair`.
    #[arg(long, value_name = "PUB")]
    pub key: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs a subcommand of this area.
pub fn run(command: Commands, _globals: &Globals) -> anyhow::Result<ExitCode> {
    match command {
        Commands::Key(KeyCommands::Generate(args)) => generate(args),
        Commands::Verify(args) => verify(args),
    }
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let password = new_password(args.allow_empty_password)?;
    let (private, public) =
        keys::write_key_pair(&args.prefix, password.as_bytes()).map_err(key_error)?;
    eprintln!("private key written to {}", private.display());
    eprintln!("public key written to {}", public.display());
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(&args.reference).map_err(crate::cli::invalid)?;
    let key = open_public_key(&args.key)?;
    let client = registry_client(args.registry.registries_config.as_deref())?;
    let verified = verify_reference(&client, &reference, &key)?;
    for identity in &verified.identities {
        eprintln!("valid signature for {identity}");
    }
    println!("{}", verified.digest);
    Ok(ExitCode::SUCCESS)
}

/// Verifies `reference`'s signatures with `key` (exit 1 when not verified, 2 when the
/// reference is bad).
pub fn verify_reference(
    client: &flense::registry::Client,
    reference: &Reference,
    key: &VerifyingKey,
) -> anyhow::Result<Verified> {
    verify_image(client, reference, key).map_err(|e| match e {
        VerifyError::Registry(e) => registry_error(e),
        e => anyhow::Error::new(e).context("signature verification failed"),
    })
}

/// Reads a public key file (a bad or missing file is invalid input: exit 2).
pub fn open_public_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    keys::read_public_key(path).map_err(key_error)
}

/// Reads a private key file and opens it with the password from $FLENSE_KEY_PASSWORD
/// or the terminal.
pub fn open_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        key_error(KeyError::Io {
            path: path.to_path_buf(),
            source,
        })
    })?;
    let password = match std::env::var(PASSWORD_ENV) {
        Ok(password) => password,
        Err(_) => prompt(&format!("Password for {}: ", path.display()))?,
    };
    keys::decrypt_private_key(&text, password.as_bytes(), &path.display().to_string())
        .map_err(key_error)
}

/// A password for a new key: $FLENSE_KEY_PASSWORD, else asked twice on the terminal.
fn new_password(allow_empty: bool) -> anyhow::Result<String> {
    let password = match std::env::var(PASSWORD_ENV) {
        Ok(password) => password,
        Err(_) => {
            let first = prompt("Password for the new private key: ")?;
            let again = prompt("Password again: ")?;
            if first != again {
                return Err(crate::cli::invalid(anyhow::anyhow!(
                    "the two passwords differ"
                )));
            }
            first
        }
    };
    if password.is_empty() && !allow_empty {
        return Err(crate::cli::invalid(anyhow::anyhow!(
            "empty password: the private key would be readable by anyone who can read \
             the file (give --allow-empty-password to accept that)"
        )));
    }
    Ok(password)
}

fn prompt(text: &str) -> anyhow::Result<String> {
    read_password_without_echo(text)
        .with_context(|| {
            format!("cannot ask for the password on a terminal: set ${PASSWORD_ENV} instead")
        })
        .map_err(crate::cli::invalid)
}

/// Shows `prompt` on the terminal and reads one line with echo off. As OpenSSH's
/// readpassphrase, echo goes off before the prompt appears (and what was typed ahead is
/// discarded), so nothing typed in answer to the prompt is ever echoed.
fn read_password_without_echo(prompt: &str) -> std::io::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let saved = tcgetattr(&tty)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet)?;
    let read = (|| -> std::io::Result<String> {
        (&tty).write_all(prompt.as_bytes())?;
        let mut line = String::new();
        std::io::BufReader::new(&tty).read_line(&mut line)?;
        Ok(line)
    })();
    tcsetattr(&tty, SetArg::TCSAFLUSH, &saved)?;
    let line = read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Key file problems are the user's input: exit 2.
fn key_error(err: KeyError) -> anyhow::Error {
    crate::cli::invalid(err)
}

/// Signs `digest`, just pushed to `dest`, with `key` and reports the signature tag.
pub fn sign_pushed(
    client: &flense::registry::Client,
    dest: &Reference,
    digest: &flense::image::digest::Digest,
    key: &SigningKey,
) -> anyhow::Result<()> {
    let tag = flense::sign::sign_pushed_image(client, dest, digest, key)
        .with_context(|| format!("signing {dest}"))?;
    eprintln!("signed {dest} ({tag})");
    Ok(())
}

/// `pull --verify-key`: verifies `reference` with the public key at `key` and returns
/// it pinned to the verified digest (tag kept, so the store names it as asked), so the
/// pull fetches exactly what was verified.
pub fn verified_pin(
    client: &flense::registry::Client,
    reference: &Reference,
    key: &Path,
) -> anyhow::Result<Reference> {
    let key = open_public_key(key)?;
    let verified = verify_reference(client, reference, &key)?;
    let pinned = match reference.tag() {
        Some(tag) => format!("{}:{tag}@{}", reference.name(), verified.digest),
        None => format!("{}@{}", reference.name(), verified.digest),
    };
    Reference::parse(&pinned).map_err(crate::cli::invalid)
}

/// `build --push --sign-by`: signs the manifest `digest` that `build` pushed to `dest`.
pub fn sign_after_build(
    registries_config: Option<&Path>,
    dest: &str,
    digest: &str,
    key: &SigningKey,
) -> anyhow::Result<()> {
    let dest = Reference::parse(dest).map_err(crate::cli::invalid)?;
    let digest = digest
        .parse()
        .with_context(|| format!("pushed digest {digest:?}"))?;
    let client = registry_client(registries_config)?;
    sign_pushed(&client, &dest, &digest, key)
}
