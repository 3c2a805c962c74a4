//! Dev keys: the API key/secret a server without configured keys generates once and keeps in its data dir.
//!
//! Owns `DATA_DIR/dev-keys.json` (`{"key": "dev-…", "secret": "…"}`, mode 0600): creating it, reading it, and
//! refusing a corrupt one with a clear error. It never overwrites an existing file. Whether dev mode applies at all
//! is decided by `config.rs`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use crate::auth::{ApiKey, MIN_SECRET_BYTES};

/// File name of the dev keys inside the data dir.
pub const DEV_KEYS_FILE: &str = "dev-keys.json";
/// Length of a generated secret, in characters (ASCII alphanumeric).
pub const DEV_SECRET_CHARS: usize = 48;
/// Length of the random part of a generated key id (`dev-` + this many characters).
const DEV_KEY_RANDOM_CHARS: usize = 12;

/// Why the dev keys could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DevKeysError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "dev keys file {} is corrupt ({reason}); fix it, or delete it to generate new dev keys",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
}

/// The dev keys in use, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevKeys {
    pub api_key: ApiKey,
    /// The `dev-keys.json` they are stored in.
    pub path: PathBuf,
    /// True when this call generated them (first start in this data dir).
    pub created: bool,
}

/// On-disk layout. Kept separate from `ApiKey` so the file format is owned here.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevKeysFile {
    key: String,
    secret: String,
}

/// Where the dev keys of `data_dir` live.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(DEV_KEYS_FILE)
}

/// Reads the dev keys of `data_dir`; `Ok(None)` if there are none yet.
pub fn load(data_dir: &Path) -> Result<Option<DevKeys>, DevKeysError> {
    let path = path(data_dir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(DevKeysError::Corrupt {
                path,
                reason: "not UTF-8".into(),
            })
        }
        Err(source) => {
            return Err(DevKeysError::Io {
                action: "read",
                path,
                source,
            })
        }
    };
    let api_key = parse(&text).map_err(|reason| DevKeysError::Corrupt {
        path: path.clone(),
        reason,
    })?;
    Ok(Some(DevKeys {
        api_key,
        path,
        created: false,
    }))
}

/// Reads the dev keys of `data_dir`, generating and saving new ones (creating the directory) if there are none.
pub fn load_or_create(data_dir: &Path) -> Result<DevKeys, DevKeysError> {
    if let Some(existing) = load(data_dir)? {
        return Ok(existing);
    }
    create_dir(data_dir)?;
    let api_key = generate();
    let path = path(data_dir);
    match write_new(&path, &api_key) {
        Ok(()) => Ok(DevKeys {
            api_key,
            path,
            created: true,
        }),
        // Another process created it between our read and our write: use theirs.
        Err(DevKeysError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
            load(data_dir)?.ok_or_else(|| DevKeysError::Corrupt {
                path,
                reason: "it vanished while being created".into(),
            })
        }
        Err(e) => Err(e),
    }
}

/// A fresh random dev key: id `dev-` + 12 alphanumerics, secret of 48 alphanumerics.
pub fn generate() -> ApiKey {
    let mut rng = rand::rng();
    ApiKey {
        key: format!(
            "dev-{}",
            Alphanumeric.sample_string(&mut rng, DEV_KEY_RANDOM_CHARS)
        ),
        secret: Alphanumeric.sample_string(&mut rng, DEV_SECRET_CHARS),
    }
}

fn parse(text: &str) -> Result<ApiKey, String> {
    let file: DevKeysFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.key.trim().is_empty() {
        return Err("empty `key`".into());
    }
    if file.secret.len() < MIN_SECRET_BYTES {
        return Err(format!("`secret` shorter than {MIN_SECRET_BYTES} bytes"));
    }
    Ok(ApiKey {
        key: file.key,
        secret: file.secret,
    })
}

fn create_dir(dir: &Path) -> Result<(), DevKeysError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| DevKeysError::Io {
        action: "create directory",
        path: dir.to_owned(),
        source,
    })
}

/// Writes `api_key` to a file that must not exist yet, readable by its owner only.
fn write_new(path: &Path, api_key: &ApiKey) -> Result<(), DevKeysError> {
    let io_err = |source| DevKeysError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    };
    let file = DevKeysFile {
        key: api_key.key.clone(),
        secret: api_key.secret.clone(),
    };
    let mut text = serde_json::to_string_pretty(&file).map_err(|e| io_err(io::Error::other(e)))?;
    text.push('\n');

    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut out = options.open(path).map_err(io_err)?;
    let written = out.write_all(text.as_bytes()).and_then(|()| out.sync_all());
    if let Err(source) = written {
        // Do not leave a half-written file behind to be reported as corrupt next time.
        drop(out);
        let _ = fs::remove_file(path);
        return Err(io_err(source));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::temp_dir::TempDir;
    use super::*;

    #[test]
    fn create_then_reload_gives_same_key() {
        let dir = TempDir::new("dev-keys-reload");
        let data_dir = dir.path().join("nested").join("data");
        assert!(load(&data_dir).expect("load").is_none());
        let first = load_or_create(&data_dir).expect("create");
        assert!(first.created);
        assert!(first.api_key.key.starts_with("dev-"));
        assert_eq!(first.api_key.key.len(), 4 + DEV_KEY_RANDOM_CHARS);
        assert_eq!(first.api_key.secret.len(), DEV_SECRET_CHARS);
        assert!(first
            .api_key
            .secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric()));
        let second = load_or_create(&data_dir).expect("reload");
        assert!(!second.created);
        assert_eq!(first.api_key, second.api_key);
        assert_eq!(second.path, path(&data_dir));
        // The keys are usable as-is.
        crate::auth::KeyStore::new(vec![second.api_key]).expect("valid key");
    }

    #[cfg(unix)]
    #[test]
    fn file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("dev-keys-mode");
        let keys = load_or_create(dir.path()).expect("create");
        let mode = fs::metadata(&keys.path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn corrupt_file_is_an_error_and_kept() {
        let dir = TempDir::new("dev-keys-corrupt");
        let file = path(dir.path());
        for bad in [
            "not json",
            "{\"key\": \"dev-x\"}",
            "{\"key\": \"dev-x\", \"secret\": \"short\"}",
            "{\"key\": \"\", \"secret\": \"0123456789abcdef0123456789abcdef\"}",
        ] {
            fs::write(&file, bad).expect("write");
            let err = load_or_create(dir.path()).expect_err("corrupt");
            assert!(matches!(err, DevKeysError::Corrupt { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("dev-keys.json"), "{err}");
            assert_eq!(
                fs::read_to_string(&file).expect("read"),
                bad,
                "never overwritten"
            );
        }
        fs::write(&file, [0xff, 0xfe, 0x00]).expect("write");
        assert!(matches!(
            load(dir.path()),
            Err(DevKeysError::Corrupt { .. })
        ));
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(generate(), generate());
    }
}

/// A self-deleting scratch directory for tests in this crate (config tests use it too).
#[cfg(test)]
pub(crate) mod temp_dir {
    use std::path::{Path, PathBuf};

    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(label: &str) -> TempDir {
            use rand::distr::{Alphanumeric, SampleString};
            let name = format!(
                "chorus-test-{label}-{}-{}",
                std::process::id(),
                Alphanumeric.sample_string(&mut rand::rng(), 8)
            );
            let path = std::env::temp_dir().join(name);
            std::fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
