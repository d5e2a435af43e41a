//! A throw-away PostgreSQL for the tests that need one: initdb and pg_ctl from Debian's postgresql package into a
//! temporary directory, on a free loopback port, no unix socket. As root (CI) the server runs as the `postgres`
//! user, since PostgreSQL refuses to run as root. Where it cannot start, the tests say why and skip.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestPostgres {
    pub url: String,
    bin: PathBuf,
    data: PathBuf,
    /// The server's command-line options, to start it again on the same port.
    options: String,
    run_as: Option<String>,
    _dir: tempfile::TempDir,
}

/// The newest installed `/usr/lib/postgresql/<version>/bin` with initdb.
fn binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestPostgres {
    /// Starts a server, or prints why it cannot and returns `None` (the caller skips).
    pub fn start() -> Option<TestPostgres> {
        Self::start_with("")
    }

    /// A server that acknowledges a commit only once its WAL record is written, so one stopped with
    /// [`Self::stop_immediately`] keeps every commit it acknowledged, as a production server would. (fsync stays
    /// off: the operating system's cache survives a killed server.)
    pub fn start_durable() -> Option<TestPostgres> {
        Self::start_with("-c synchronous_commit=on")
    }

    fn start_with(extra_options: &str) -> Option<TestPostgres> {
        let Some(bin) = binaries() else {
            eprintln!("SKIPPED: no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql; .ci/run does)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        let run_as = if root {
            let Some((uid, gid)) = user_ids("postgres") else {
                eprintln!("SKIPPED: running as root and there is no `postgres` user to run PostgreSQL as");
                return None;
            };
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            Some("postgres".to_owned())
        } else {
            None
        };
        let data = dir.path().join("data");
        let mut server = TestPostgres { url: String::new(), bin, data, options: String::new(), run_as, _dir: dir };
        let initdb = server.run("initdb", &["-D", path(&server.data), "-U", "loket", "--auth=trust", "-E", "UTF8"]);
        if !initdb.status.success() {
            eprintln!("SKIPPED: initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
            return None;
        }
        let port = free_port();
        // Durability settings off: these databases die with the test; loket's own kill -9 is what is tested.
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 {extra_options}"
        );
        server.options = options;
        if let Err(why) = server.start_again() {
            eprintln!("SKIPPED: PostgreSQL did not start: {why}");
            return None;
        }
        server.url = format!("postgres://loket@127.0.0.1:{port}/postgres");
        Some(server)
    }

    /// Starts the stopped server again, on the same port with the same data; waits until it accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        let log = self.data.with_file_name("postgres.log");
        let started =
            self.run("pg_ctl", &["-D", path(&self.data), "-l", path(&log), "-o", &self.options, "-w", "start"]);
        match started.status.success() {
            true => Ok(()),
            false => Err(format!(
                "{}{}",
                String::from_utf8_lossy(&started.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            )),
        }
    }

    /// Stops the server the hard way (`pg_ctl stop -m immediate`: every connection dropped, no checkpoint), as a
    /// crash or a failover would.
    pub fn stop_immediately(&self) {
        let stopped = self.run("pg_ctl", &["-D", path(&self.data), "-m", "immediate", "-w", "stop"]);
        assert!(stopped.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&stopped.stderr));
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        command.args(args).current_dir(self.data.parent().unwrap()).output().expect("run a PostgreSQL program")
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", path(&self.data), "-m", "immediate", "-w", "stop"]);
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let output = Command::new("id").args([flag, user]).output().ok()?;
        String::from_utf8(output.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}
