//! Running the `ferrosim` binary in a test: a command that ignores the
//! developer's shell (no instance settings inherited from the environment),
//! its output as one text, and an instance in a temporary directory
//! ([`Instance`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// The instance settings `ferrosim` reads from the environment. A test that
/// runs the binary clears them, so that an exported `FERROSIM_DATA_DIR` (or
/// any other) cannot point the test at a real instance.
pub const INSTANCE_ENV: &[&str] = &[
    "FERROSIM_CONFIG",
    "FERROSIM_DATA_DIR",
    "FERROSIM_DATABASE_URL",
    "FERROSIM_SMDP_ADDRESS",
    "FERROSIM_PKI_DIR",
    "FERROSIM_DURABILITY",
    "FERROSIM_LISTEN",
    "FERROSIM_KEK_FILE",
];

/// `program` (the test's `env!("CARGO_BIN_EXE_ferrosim")`) with the
/// [`INSTANCE_ENV`] settings cleared, no backtraces on errors and
/// warnings-only logs; arguments and further settings are the caller's.
pub fn ferrosim_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command
        .env("RUST_BACKTRACE", "0")
        .env("FERROSIM_LOG", "warn");
    for var in INSTANCE_ENV {
        command.env_remove(var);
    }
    command
}

/// Standard output followed by standard error, as text (what a user sees).
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `ferrosim` instance in a temporary directory, created by `ferrosim
/// init --smdp-address smdp.example.com`; every command run through it gets
/// `--data-dir` of that instance.
pub struct Instance {
    program: PathBuf,
    root: TempDir,
    data: String,
}

impl Instance {
    /// A fresh instance of `program` (the test's
    /// `env!("CARGO_BIN_EXE_ferrosim")`).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let data = root
            .path()
            .join("data")
            .to_str()
            .unwrap_or_else(|| panic!("temporary path is not UTF-8"))
            .to_owned();
        let me = Self {
            program: PathBuf::from(program.as_ref()),
            root,
            data,
        };
        me.ok(&["init", "--smdp-address", "smdp.example.com"]);
        me
    }

    /// [`Instance::new`] with operator `acme`, profile type `ts48` (the
    /// TS.48 v2 BER-TLV fixture) and `count` profiles from ICCID
    /// 8944000000000000019 and IMSI 001-01-0000000001 on.
    pub fn stocked(program: impl AsRef<OsStr>, count: u32) -> Self {
        let package = crate::testdata().join("upp/TS48V2-SAIP2-1-BERTLV-UNIQUE.der");
        let i = Self::new(program);
        i.ok(&["operator", "add", "--id", "acme"]);
        i.ok(&[
            "profile-type",
            "import",
            "--operator",
            "acme",
            "--name",
            "ts48",
            "--package",
            package
                .to_str()
                .unwrap_or_else(|| panic!("testdata path is not UTF-8")),
        ]);
        i.ok(&[
            "profiles",
            "generate",
            "--operator",
            "acme",
            "--type",
            "ts48",
            "--count",
            &count.to_string(),
            "--first-iccid",
            "8944000000000000019",
            "--first-imsi",
            "001-01-0000000001",
        ]);
        i
    }

    /// The temporary directory holding the instance (its data directory
    /// is `data` in it); free for the test's own files.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Runs `ferrosim ARGS --data-dir DIR` to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--data-dir", &self.data]);
        ferrosim_command(&self.program)
            .args(&all)
            .output()
            .unwrap_or_else(|e| panic!("running ferrosim: {e}"))
    }

    /// [`Instance::run`], which must succeed; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ferrosim {args:?} failed: {}",
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// [`Instance::run`], which must fail with `expected` in what it
    /// printed, without panicking; returns what it printed.
    pub fn refused(&self, args: &[&str], expected: &str) -> String {
        let out = self.run(args);
        let t = output_text(&out);
        assert!(!out.status.success(), "ferrosim {args:?} succeeded: {t}");
        assert!(!t.contains("panicked"), "ferrosim {args:?} panicked: {t}");
        assert!(
            t.contains(expected),
            "ferrosim {args:?}: expected `{expected}` in: {t}"
        );
        t
    }
}

/// The EIDs of the eUICCs a test PKI holds (`DIR/eUICC/<EID>.pem`, beside
/// their `<EID>.key.pem`), sorted, so a test can take one it did not name.
pub fn euicc_eids(pki_dir: &Path) -> Vec<String> {
    let mut eids: Vec<String> = std::fs::read_dir(pki_dir.join("eUICC"))
        .expect("the test PKI's eUICC directory")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".pem")
                .filter(|n| !n.ends_with(".key"))
                .map(str::to_owned)
        })
        .collect();
    eids.sort();
    eids
}
