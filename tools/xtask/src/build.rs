//! Building the kernel and the user programs for their target, and packing
//! the boot image from the manifest (`image.toml` at the workspace root).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::BuildArgs;
use crate::prereq::TARGET;

/// Code generation for user programs: they live in the low half, so they
/// need the small code model (the target's default, `kernel`, assumes the
/// top 2 GiB), and are linked at a fixed address.
const USER_RUSTFLAGS: &str = "-Ccode-model=small\u{1f}-Crelocation-model=static";

/// What a boot needs.
pub struct Artifacts {
    pub kernel: PathBuf,
    pub image: PathBuf,
    /// The refcount strategy the manifest names: the one a boot without
    /// `--strategy` runs.
    pub strategy: abi::process::Strategy,
}

/// `image.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    image: ImageSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageSection {
    #[allow(dead_code, reason = "names the image for people; the kernel reads it from the packed file")]
    name: String,
    programs: Vec<String>,
    /// The memory and process servers' refcount strategy
    /// (`abi::process::Strategy` name).
    strategy: String,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("tools/xtask is two levels down").to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(workspace_root()).env_remove("RUSTFLAGS");
    command
}

pub fn build(args: &BuildArgs) -> Result<Artifacts> {
    build_flavour(args, Flavour::Standard)
}

/// Which kernel to build.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Standard,
    /// Without trace points (`--no-default-features`), in its own target directory.
    NoTrace,
}

pub fn build_flavour(args: &BuildArgs, flavour: Flavour) -> Result<Artifacts> {
    let profile = if args.release { "release" } else { "debug" };
    let manifest_path = workspace_root().join("image.toml");
    let manifest_text = std::fs::read_to_string(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
    let manifest: Manifest = toml::from_str(&manifest_text).with_context(|| format!("parsing {}", manifest_path.display()))?;
    let strategy = crate::cmdline::parse_strategy(&manifest.image.strategy)
        .map_err(|error| anyhow::anyhow!("{}: {error}", manifest_path.display()))?;

    let kernel_dir = match flavour {
        Flavour::Standard => target_dir(),
        Flavour::NoTrace => target_dir().join("notrace"),
    };
    let mut kernel = cargo();
    kernel.args(["build", "--package", "microkernel", "--target", TARGET, "--target-dir"]).arg(&kernel_dir);
    if flavour == Flavour::NoTrace {
        kernel.arg("--no-default-features");
    }
    run_cargo(kernel, args.release, "the kernel")?;

    let user_dir = target_dir().join("user");
    let mut user = cargo();
    user.args(["build", "--target", TARGET, "--target-dir"]).arg(&user_dir);
    user.env("CARGO_ENCODED_RUSTFLAGS", USER_RUSTFLAGS);
    for program in &manifest.image.programs {
        user.args(["--package", program]);
    }
    if !manifest.image.programs.is_empty() {
        run_cargo(user, args.release, "the user programs")?;
    }

    let mut files = vec![(bootimage::MANIFEST.to_string(), manifest_text.into_bytes())];
    for program in &manifest.image.programs {
        let path = user_dir.join(TARGET).join(profile).join(program);
        let elf = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        files.push((program.clone(), elf));
    }
    let entries: Vec<(&str, &[u8])> = files.iter().map(|(name, data)| (name.as_str(), data.as_slice())).collect();
    let packed = bootimage::pack(&entries).map_err(anyhow::Error::msg)?;
    let out = target_dir().join(TARGET).join(profile);
    let image = out.join("boot.img");
    std::fs::write(&image, packed).with_context(|| format!("writing {}", image.display()))?;
    Ok(Artifacts { kernel: kernel_dir.join(TARGET).join(profile).join("microkernel"), image, strategy })
}

fn run_cargo(mut command: Command, release: bool, what: &str) -> Result<()> {
    if release {
        command.arg("--release");
    }
    if !command.status().context("running cargo")?.success() {
        bail!("building {what} failed");
    }
    Ok(())
}
