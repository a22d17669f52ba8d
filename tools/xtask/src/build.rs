//! Building the kernel for its target and packing the boot image from the
//! manifest (`image.toml` at the workspace root).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::BuildArgs;
use crate::prereq::TARGET;

/// What a boot needs.
pub struct Artifacts {
    pub kernel: PathBuf,
    pub image: PathBuf,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("tools/xtask is two levels down").to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

pub fn build(args: &BuildArgs) -> Result<Artifacts> {
    let profile = if args.release { "release" } else { "debug" };
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(workspace_root()).args(["build", "--package", "microkernel", "--target", TARGET]);
    if args.release {
        cargo.arg("--release");
    }
    if !cargo.status().context("running cargo")?.success() {
        bail!("building the kernel failed");
    }
    let kernel = target_dir().join(TARGET).join(profile).join("microkernel");
    let image = target_dir().join(TARGET).join(profile).join("boot.img");
    pack_image(&image)?;
    Ok(Artifacts { kernel, image })
}

/// Packs the manifest (and, as the system grows, the programs it names)
/// into the boot image.
fn pack_image(out: &Path) -> Result<()> {
    let manifest_path = workspace_root().join("image.toml");
    let manifest = std::fs::read(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
    std::str::from_utf8(&manifest).context("image.toml is not UTF-8")?;
    let image = bootimage::pack(&[(bootimage::MANIFEST, &manifest)]).map_err(anyhow::Error::msg)?;
    std::fs::write(out, image).with_context(|| format!("writing {}", out.display()))
}
