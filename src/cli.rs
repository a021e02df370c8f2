//! Command-line interface: flags, their validation, and dispatch to the commands.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::auth::AuthMode;

/// Mount an Azure Blob Storage container (or a prefix of it) read-only.
#[derive(Debug, Parser)]
#[command(name = "blobmount", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount SOURCE at MOUNTPOINT (returns once the mount answers, unless --foreground).
    Mount(Box<MountArgs>),
    /// Unmount a blobmount mount; its daemon then exits.
    Unmount(UnmountArgs),
    /// Run what a mount needs (credential, token, listing, one read) and explain failures.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// Container URL, optionally with a prefix:
    /// https://<account>.blob.core.windows.net/<container>[/<prefix>]
    /// (path-style for the emulator: http://127.0.0.1:10000/<account>/<container>[/<prefix>])
    pub source: String,
    /// Existing empty directory to mount on.
    pub mountpoint: PathBuf,
    /// Stay attached to the terminal (for systemd: Type=notify).
    #[arg(long)]
    pub foreground: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Let users other than the mounting user access the mount (needs user_allow_other in /etc/fuse.conf for non-root).
    #[arg(long)]
    pub allow_other: bool,
    /// Owner of every file and directory [default: the mounting user].
    #[arg(long)]
    pub uid: Option<u32>,
    /// Group of every file and directory [default: the mounting user's group].
    #[arg(long)]
    pub gid: Option<u32>,
    /// Permission bits of files, in octal.
    #[arg(long, default_value = "0444", value_parser = parse_mode)]
    pub file_mode: u16,
    /// Permission bits of directories, in octal.
    #[arg(long, default_value = "0555", value_parser = parse_mode)]
    pub dir_mode: u16,
    /// How long names, sizes and ETags are cached before asking the service again:
    /// seconds, or "indefinite" for datasets that never change.
    #[arg(long, default_value = "60", value_parser = parse_ttl)]
    pub metadata_ttl: Duration,
    /// Memory for cached blocks of file content (e.g. 512M, 2G); taken only as blocks are
    /// read, never reserved up front. Read-ahead in flight counts against it.
    #[arg(long, default_value = "512M", value_parser = parse_size)]
    pub cache_mem: u64,
    /// Size of a cached block: the least a read fetches (e.g. 1M).
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    pub block_size: u64,
    /// Log level: error, warn, info, debug or trace (RUST_LOG overrides).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Append logs to this file (the background daemon otherwise logs nowhere once mounted).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
}

/// How to authenticate: shared by `mount` and `check`.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// Credential source.
    #[arg(long, value_enum, default_value_t = AuthMode::Auto)]
    pub auth: AuthMode,
    /// SAS token (sv=...&sig=...). Prefer the environment variable: argv is visible to all users.
    #[arg(long, env = "AZURE_STORAGE_SAS_TOKEN", hide_env_values = true)]
    pub sas_token: Option<String>,
    /// Managed identity: the user-assigned identity's client id.
    #[arg(long, conflicts_with_all = ["object_id", "resource_id"])]
    pub client_id: Option<String>,
    /// Managed identity: the user-assigned identity's object (principal) id.
    #[arg(long, conflicts_with = "resource_id")]
    pub object_id: Option<String>,
    /// Managed identity: the user-assigned identity's ARM resource id.
    #[arg(long)]
    pub resource_id: Option<String>,
    /// Managed identity: the token endpoint to use instead of the one the environment
    /// implies (IMDS, MSI_ENDPOINT or IDENTITY_ENDPOINT).
    #[arg(long, env = "BLOBMOUNT_IDENTITY_ENDPOINT")]
    pub identity_endpoint: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Container URL, as for `mount`.
    pub source: String,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Debug, Args)]
pub struct UnmountArgs {
    /// The mountpoint to unmount.
    pub mountpoint: PathBuf,
}

fn parse_mode(text: &str) -> Result<u16, String> {
    let digits = text.trim_start_matches("0o");
    match u16::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(format!(
            "'{text}' is not an octal permission mode: give e.g. 0444 or 0555"
        )),
    }
}

/// Parses a byte size: a number with an optional K, M or G suffix (powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim().trim_end_matches(['B', 'b', 'i']);
    let (digits, shift) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    match digits.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n << shift),
        _ => Err(format!(
            "'{text}' is not a size: give e.g. 512M, 2G or 1048576"
        )),
    }
}

/// The longest TTL we hand the kernel; "indefinite" means this.
pub const INDEFINITE_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn parse_ttl(text: &str) -> Result<Duration, String> {
    if text == "indefinite" {
        return Ok(INDEFINITE_TTL);
    }
    text.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("'{text}' is not a TTL: give whole seconds (e.g. 60) or 'indefinite'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_ttls_parse() {
        assert_eq!(parse_mode("0444"), Ok(0o444));
        assert_eq!(parse_mode("755"), Ok(0o755));
        assert!(parse_mode("999").is_err());
        assert_eq!(parse_ttl("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_ttl("indefinite"), Ok(INDEFINITE_TTL));
        assert!(parse_ttl("-1").is_err());
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err() && parse_size("lots").is_err());
    }

    #[test]
    fn sas_env_value_is_hidden_from_help() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("mount")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("AZURE_STORAGE_SAS_TOKEN"));
        assert!(!help.contains("AZURE_STORAGE_SAS_TOKEN="));
    }
}
