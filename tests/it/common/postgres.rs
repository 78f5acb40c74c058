//! A throwaway PostgreSQL cluster for a test: `initdb` in a temp dir, a free port on
//! loopback, TLS with a certificate from a CA made here, password (SCRAM) auth for TCP.
//! The server refuses to run as root, so when the tests do (CI), it runs as the
//! `postgres` user the distribution's package creates. Stopped and removed on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The password of the cluster's `gitops` superuser.
pub const PASSWORD: &str = "state-store-s3cret";

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    run_as: Option<String>,
}

/// Where the server's programs are: Debian keeps them out of `PATH`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|dir| dir.join("initdb").exists());
    versions.sort();
    versions
        .pop()
        .unwrap_or_else(|| panic!("PostgreSQL's server is not installed (apt install postgresql)"))
}

fn running_as_root() -> bool {
    let id = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&id.stdout).trim() == "0"
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// A new cluster, started.
    pub fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("slack-gitops-pg-")
            .tempdir()
            .unwrap();
        let run_as = running_as_root().then(|| "postgres".to_string());
        let cluster = Cluster {
            port: free_port(),
            bin: bin_dir(),
            run_as,
            dir,
        };
        cluster.init();
        cluster.start_server();
        cluster
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs one of the server's programs, as the server's user.
    fn program(&self, name: &str, args: &[&str]) -> std::process::Output {
        let program = self.bin.join(name);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{name} {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
        );
        output
    }

    fn init(&self) {
        std::fs::write(self.path("password"), PASSWORD).unwrap();
        write_tls(self.dir.path());
        if let Some(user) = &self.run_as {
            let owner = format!("{user}:");
            let chown = Command::new("chown")
                .args(["-R", &owner])
                .arg(self.dir.path())
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let data = self.path("data");
        let pwfile = self.path("password");
        self.program(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "gitops",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let hba = self.path("data/pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).unwrap();
        rules.push_str("hostssl all all 127.0.0.1/32 scram-sha-256\n");
        std::fs::write(&hba, rules).unwrap();
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            self.port,
            self.dir.path().display(),
            self.path("server.pem").display(),
            self.path("server.key").display(),
        );
        let data = self.path("data");
        let log = self.path("server.log");
        self.program(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once (open connections are cut).
    pub fn stop(&self) {
        let data = self.path("data");
        self.program(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    /// Stops and starts the server: every connection is cut.
    pub fn restart(&self) {
        self.stop();
        self.start_server();
    }

    /// A new database, and its URL (without the password), over TLS checked against the
    /// cluster's CA.
    pub fn database(&self, name: &str) -> String {
        self.create(name);
        format!(
            "{}?sslmode=require&sslrootcert={}",
            self.bare_url(name),
            self.ca_file().display()
        )
    }

    /// The database's URL with no TLS settings.
    pub fn bare_url(&self, name: &str) -> String {
        format!("postgres://gitops@127.0.0.1:{}/{name}", self.port)
    }

    fn create(&self, name: &str) {
        let socket = self.dir.path().to_str().unwrap().to_string();
        let port = self.port.to_string();
        self.program(
            "createdb",
            &["-h", &socket, "-p", &port, "-U", "gitops", name],
        );
    }

    /// The CA that signed the server's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The server's log, for assertions about what it saw.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.path("data");
        let _ = Command::new(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
        if let Some(user) = &self.run_as {
            let _ = Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(self.bin.join("pg_ctl"))
                .args([
                    "-D",
                    data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ])
                .output();
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, the key mode 0600.
fn write_tls(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "slack-gitops test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let cert = server.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    let key_path = dir.join("server.key");
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
